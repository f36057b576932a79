from streams.exposure import DAY, CustomerState, Profile


def fresh() -> CustomerState:
    state = CustomerState("C1")
    state.set_profile("p1", Profile("n", 1_000_00, "B", "DE", "retail", 30, False, 0.0))
    return state


def test_known_sequence_gives_hand_computed_exposure():
    s = fresh()
    s.place_order("SO-1", "e1", amount=500_00, at=0)
    s.place_order("SO-2", "e2", amount=300_00, at=0)
    s.issue_invoice("I-1", "e3", "SO-1", amount=500_00, due=30 * DAY, at=DAY)
    s.apply_payment("P-1", "I-1", amount=200_00, at=2 * DAY)
    s.cancel_order("SO-2", "e5", at=3 * DAY)
    # open orders: SO-1 fully invoiced, SO-2 cancelled -> 0; receivables: 500 - 200 = 300
    assert (s.open_orders(), s.receivables(), s.exposure()) == (0, 300_00, 300_00)


def test_every_event_kind_is_idempotent():
    s = fresh()
    steps = [
        lambda: s.place_order("SO-1", "e1", 500_00, 0),
        lambda: s.issue_invoice("I-1", "e2", "SO-1", 200_00, 30 * DAY, DAY),
        lambda: s.apply_payment("P-1", "I-1", 50_00, 2 * DAY),
        lambda: s.apply_credit_note("CN-1", "I-1", 10_00, 2 * DAY),
        lambda: s.cancel_order("SO-9", "e5", 0),
        lambda: s.write_off("I-1", "e6", 90 * DAY),
    ]
    for step in steps:
        assert step() is True
        before = s.to_dict()
        assert step() is False, "a repeated event must change nothing"
        assert s.to_dict() == before


def test_held_and_rejected_orders_are_not_exposure():
    s = fresh()
    s.place_order("SO-1", "e1", 400_00, at=0, status="held")
    s.place_order("SO-2", "e2", 400_00, at=0, status="rejected")
    assert s.exposure() == 0 and list(s.held_orders()) == ["SO-1"]


def test_payment_before_invoice_waits_then_applies():
    s = fresh()
    assert s.apply_payment("P-1", "I-1", 100_00, at=DAY)
    assert s.receivables() == 0 and "P-1" in s.pending_credits
    s.issue_invoice("I-1", "e2", None, 300_00, due=30 * DAY, at=0)
    assert s.receivables() == 200_00 and not s.pending_credits
    assert s.apply_payment("P-1", "I-1", 100_00, at=DAY) is False


def test_cancel_before_place_keeps_order_out_of_exposure():
    s = fresh()
    s.cancel_order("SO-1", "e1", at=0)
    assert s.place_order("SO-1", "e2", 500_00, at=0) is True
    assert s.exposure() == 0 and s.orders["SO-1"].status == "cancelled"


def test_overdue_follows_event_time_and_payment_history_records_lateness():
    s = fresh()
    s.issue_invoice("I-1", "e1", None, 100_00, due=10 * DAY, at=0)
    assert s.overdue(9 * DAY) == (0, 0)
    assert s.overdue(25 * DAY) == (100_00, 15)
    s.apply_payment("P-1", "I-1", 100_00, at=14 * DAY)
    assert s.overdue(25 * DAY) == (0, 0)
    assert (s.paid_late, s.days_late_total) == (1, 4.0)


def test_overpayment_is_kept_as_unapplied_cash_not_negative_receivable():
    s = fresh()
    s.issue_invoice("I-1", "e1", None, 100_00, due=10 * DAY, at=0)
    s.apply_payment("P-1", "I-1", 150_00, at=DAY)
    assert s.receivables() == 0 and s.unapplied_cash == 50_00


def test_older_master_data_does_not_overwrite_newer():
    s = fresh()
    s.set_profile("p2", Profile("n", 5_000_00, "A", "DE", "retail", 30, False, 100.0))
    s.set_profile("p3", Profile("n", 1_00, "E", "DE", "retail", 30, True, 50.0))
    assert s.profile is not None and s.profile.credit_limit == 5_000_00


def test_closed_items_are_forgotten_after_retention():
    s = fresh()
    s.place_order("SO-1", "e1", 100_00, at=0)
    s.cancel_order("SO-1", "e2", at=DAY)
    s.place_order("SO-2", "e3", 100_00, at=0)
    assert s.forget_closed(before=2 * DAY) == 1
    assert list(s.orders) == ["SO-2"]


def test_state_survives_a_serialization_round_trip():
    s = fresh()
    s.place_order("SO-1", "e1", 100_00, at=0)
    s.issue_invoice("I-1", "e2", "SO-1", 100_00, due=30 * DAY, at=DAY)
    s.apply_payment("P-9", "I-404", 5_00, at=DAY)
    assert CustomerState.from_dict(s.to_dict()) == s


def test_invoice_before_its_order_is_not_counted_twice():
    s = fresh()
    s.issue_invoice("I-1", "e1", "SO-1", 1_000_00, due=30 * DAY, at=DAY)
    s.place_order("SO-1", "e2", 1_000_00, at=0)
    assert (s.open_orders(), s.receivables()) == (0, 1_000_00)
