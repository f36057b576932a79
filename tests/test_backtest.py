"""Backtests on a small labelled event file whose counts are worked out by hand, and the
event file format."""

import json

from typer.testing import CliRunner

from rules import default_rulebook
from streams.backtest import backtest, changed_orders, rules_benchmark
from streams.cli import cli
from streams.event_file import read_messages, write_message
from streams.settings import Settings
from tests import events as ev
from tests import rulebooks


def labelled_file(path):
    """Limit 10,000 each (risk class B: 10 % tolerance). C1: 5,000 + 4,000 approved, then 2,000
    reaches 11,000 (review). C2 is on stop: held. C3 has no master data: held. The invoices of
    SO-1 (approved) and SO-5 (held) are written off later: 2 bad orders, 1 of them stopped.
    Plus one line that is not JSON."""
    events = [
        ev.customer("C1"), ev.customer("C2", on_stop=True),
        ev.order("C1", "SO-1", 5000.0, days=1), ev.order("C1", "SO-2", 4000.0, days=1.1),
        ev.order("C1", "SO-3", 2000.0, days=1.2), ev.order("C2", "SO-5", 1000.0, days=1.3),
        ev.order("C3", "SO-6", 1000.0, days=1.4),
        ev.invoice("C1", "INV-1", "SO-1", 5000.0, days=2), ev.invoice("C2", "INV-5", "SO-5", 1000.0, days=2),
        ev.write_off("C1", "INV-1", days=90), ev.write_off("C2", "INV-5", days=90),
    ]
    with path.open("w") as out:
        for event in events:
            write_message(out, ev.topic_of(event), event["customer_id"].encode(), ev.encode(event))
        out.write("this is not json\n")
    return path


def test_report_counts_outcomes_hits_and_precision_recall_of_holds(tmp_path):
    with labelled_file(tmp_path / "events.jsonl").open() as f:
        report = backtest(read_messages(f), default_rulebook(), Settings())
    summary = report.summary()
    assert summary["events"] == 12 and summary["orders"] == 5 and summary["dead_letters"] == 1
    assert summary["outcomes"] == {"approve": 2, "hold": 2, "review": 1} and summary["hold_rate"] == 0.4
    assert summary["hits"] == {"CREDIT_LIMIT_TOLERANCE": 1, "CUSTOMER_ON_STOP": 1, "NO_CREDIT_PROFILE": 1}
    assert summary["bad_orders"] == 2 and summary["precision"] == 0.5 and summary["recall"] == 0.5


def test_compare_lists_the_orders_whose_outcome_changed(tmp_path):
    path = labelled_file(tmp_path / "events.jsonl")
    strict = rulebooks.compiled(rulebooks.changed(CREDIT_LIMIT_TOLERANCE={"action": "reject"}))
    reports = []
    for book in (default_rulebook(), strict):
        with path.open() as f:
            reports.append(backtest(read_messages(f), book, Settings()))
    assert changed_orders(*reports) == [("SO-3", "review", "reject")]


def test_backtest_command_prints_both_reports_and_the_changes(tmp_path):
    path = labelled_file(tmp_path / "events.jsonl")
    strict = rulebooks.write(tmp_path / "strict.yaml", rulebooks.changed(CREDIT_LIMIT_TOLERANCE={"action": "hold"}))
    result = CliRunner().invoke(cli, ["backtest", "--events", str(path), "--compare", str(strict), "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    outcomes = [r["outcomes"] for r in out["reports"]]
    assert outcomes == [{"approve": 2, "hold": 2, "review": 1}, {"approve": 2, "hold": 3}]
    assert out["changed"] == [{"order_id": "SO-3", "outcome": "review", "compared": "hold"}]


def test_rules_bench_decides_the_recorded_rounds_again_and_restores_the_rulebook(tmp_path):
    path = labelled_file(tmp_path / "events.jsonl")
    book = default_rulebook()
    with path.open() as f:
        result = rules_benchmark(read_messages(f), book, Settings(), repeat=2)
    # C1's three orders wait for each other: three rounds (SO-1 with C2's and C3's, then SO-2, then SO-3)
    assert result["orders"] == 5 and result["rounds"] == 3 and result["orders_with_hits"] == 3
    assert len(result["runs_us_per_order"]) == 2 and result["us_per_order"] == min(result["runs_us_per_order"])
    assert "evaluate_many" not in vars(book)  # the recording wrapper is gone
    cli_result = CliRunner().invoke(cli, ["rules", "bench", "--events", str(path), "--repeat", "1"])
    assert cli_result.exit_code == 0, cli_result.stderr
    assert json.loads(cli_result.stdout)["orders"] == 5
