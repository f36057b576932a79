"""The Redis mirror against a real Redis server, including an outage and the catch-up after it."""

from datetime import UTC, datetime

import orjson
import redis

from monitoring.metrics import REDIS_ERRORS
from rules import Outcome
from streams.contracts import OrderHold
from streams.mirror import MirrorUpdate, RedisMirror
from streams.sales_staff import salesperson_view
from tests import events as ev
from tests.test_pipeline import Harness


def hold(order_id: str) -> OrderHold:
    return OrderHold(hold_id=f"h-{order_id}", decision_id=f"h-{order_id}", order_id=order_id, customer_id="C1",
                     salesperson_id="S-01",
                     outcome=Outcome.HOLD, reason_codes=["CUSTOMER_ON_STOP"], message="Hold.", order_amount=1.0,
                     base_currency="EUR", held_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_merge_keeps_the_latest_fate_of_each_hold():
    update = MirrorUpdate(customers={"C1"}, holds_opened={"SO-1": hold("SO-1")})
    update.merge(MirrorUpdate(customers={"C2"}, holds_closed={"SO-1"}))
    update.merge(MirrorUpdate(holds_opened={"SO-2": hold("SO-2")}))
    assert update.customers == {"C1", "C2"}
    assert set(update.holds_opened) == {"SO-2"} and update.holds_closed == {"SO-1"}


async def test_snapshots_and_holds_reach_redis_and_survive_an_outage(redis_server):
    snapshots = {"C1": {"exposure": 1.0, "events_applied": 1}}
    mirror = RedisMirror(f"redis://127.0.0.1:{redis_server.port}/0", snapshot=lambda cid: snapshots[cid])
    reader = redis.Redis(port=redis_server.port)
    assert await mirror.write(MirrorUpdate(customers={"C1"}, holds_opened={"SO-1": hold("SO-1")}))
    assert orjson.loads(reader.get("sg:customer:C1")) == {"exposure": 1.0, "events_applied": 1}
    assert reader.zrange("sg:holds", 0, -1) == [b"SO-1"]

    redis_server.stop()
    errors_before = REDIS_ERRORS._value.get()
    snapshots["C1"] = {"exposure": 2.0, "events_applied": 2}
    assert not await mirror.write(MirrorUpdate(customers={"C1"}, holds_closed={"SO-1"}))
    assert REDIS_ERRORS._value.get() == errors_before + 1

    redis_server.start()  # an empty server on the same port: the kept writes must arrive
    assert await mirror.write(MirrorUpdate())
    reader = redis.Redis(port=redis_server.port)
    assert orjson.loads(reader.get("sg:customer:C1")) == {"exposure": 2.0, "events_applied": 2}
    assert reader.zrange("sg:holds", 0, -1) == [] and reader.get("sg:hold:SO-1") is None
    await mirror.close()


async def test_an_older_snapshot_never_replaces_a_newer_one_and_a_customer_not_held_is_not_written(redis_server):
    """Two workers around a rebalance: the one that held the customer before writes late."""
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    new_owner = RedisMirror(url, snapshot=lambda cid: {"exposure": 3.0, "events_applied": 7})
    old_owner = RedisMirror(url, snapshot=lambda cid: {"exposure": 1.0, "events_applied": 5})
    gone = RedisMirror(url, snapshot=lambda cid: None)
    for mirror in (new_owner, old_owner, gone):
        assert await mirror.write(MirrorUpdate(customers={"C1"}))
    assert orjson.loads(redis.Redis(port=redis_server.port).get("sg:customer:C1"))["events_applied"] == 7
    for mirror in (new_owner, old_owner, gone):
        await mirror.close()


async def test_decisions_and_salesperson_signals_count_a_redelivered_decision_once(redis_server):
    h = Harness()
    h.feed(ev.customer("C1", limit=1000.0))
    first = h.feed(ev.order("C1", "SO-1", 1200.0), ev.order("C1", "SO-2", 100.0))
    released = h.feed(ev.desk("hold.release", "C1", order_id="SO-1"))
    mirror = RedisMirror(f"redis://127.0.0.1:{redis_server.port}/0", snapshot=lambda cid: None)
    for _ in range(2):  # the same batch delivered twice
        assert await mirror.write(MirrorUpdate(decisions=first.decisions, resolutions=released.resolutions))
    reader = redis.Redis(port=redis_server.port)
    assert orjson.loads(reader.get("sg:decision:SO-1"))["outcome"] == "hold"
    assert len(reader.lrange("sg:customer:C1:decisions", 0, -1)) == 4  # listed twice; the desk drops repeats
    day = first.decisions[0].decided_at.date()
    [row] = await salesperson_view(mirror.client, "sg:", day, days=1)
    assert row == {"salesperson_id": "S-01", "decisions": 2, "holds": 1, "releases": 0, "discount_exceptions": 0,
                   "anomalies": 0, "hold_rate": 0.5, "override_rate": 0.0, "discount_exception_rate": 0.0,
                   "anomaly_rate": 0.0}
    [row] = await salesperson_view(mirror.client, "sg:", released.resolutions[0].resolved_at.date(), days=1)
    assert (row["decisions"], row["releases"], row["override_rate"]) == (0, 1, None)  # released on its own day
    await mirror.close()


async def test_a_write_after_a_long_outage_with_thousands_of_one_salespersons_decisions_arrives(redis_server):
    h = Harness()
    h.feed(ev.customer("C1", limit=1e9))
    [decision] = h.feed(ev.order("C1", "SO-0", 10.0)).decisions
    piled_up = [decision.model_copy(update={"decision_id": f"d-{i}", "order_id": f"SO-{i}"}) for i in range(9000)]
    mirror = RedisMirror(f"redis://127.0.0.1:{redis_server.port}/0", snapshot=lambda cid: None)
    assert await mirror.write(MirrorUpdate(decisions=piled_up))
    reader = redis.Redis(port=redis_server.port)
    day = decision.decided_at.date().isoformat()
    assert reader.scard(f"sg:sales:{day}:S-01:decisions") == 9000
    recent = [orjson.loads(body)["order_id"] for body in reader.lrange("sg:customer:C1:decisions", 0, -1)]
    assert recent == [f"SO-{i}" for i in range(8999, 8979, -1)]  # the newest 20, newest first
    await mirror.close()
