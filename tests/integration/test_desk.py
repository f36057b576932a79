"""The risk desk against the embedded stack and a real worker: a held order is released
through the API, exposure changes exactly once, the ERP hears of it, the audit trail records
who did it and why; roles, bad input and the OpenAPI document."""

import asyncio
import time

import aiohttp
import pytest
import redis

from streams.audit import read_entries, verify
from tests import events as ev
from tests.integration.conftest import TOKENS

pytestmark = pytest.mark.integration


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


async def wait_for(check, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_release_flow_roles_audit_and_openapi(client, worker, settings):
    base = f"http://127.0.0.1:{worker.port}/desk"
    await client.onboard(ev.customer("C-DESK1", limit=1000.0))
    await client.send(ev.order("C-DESK1", "SO-DESK1", 1200.0, days=1))
    async with aiohttp.ClientSession() as http:
        async def held():
            async with http.get(f"{base}/api/holds", params={"customer_id": "C-DESK1"}, headers=auth("viewer")) as r:
                body = await r.json()
                return body["holds"] if r.status == 200 and body["total"] else None
        [hold] = await wait_for(held, what="the hold in the queue")
        assert hold["order_id"] == "SO-DESK1" and hold["salesperson_id"] == "S-01" and hold["age_s"] >= 0
        assert (await client.snapshot("C-DESK1"))["exposure"] == 0.0

        release = f"{base}/api/holds/SO-DESK1/release"
        async with http.post(release, json={"comment": "Prepaid."}) as r:
            assert r.status == 401 and (await r.json())["detail"] == "a bearer token is required"
        async with http.post(release, json={"comment": "Prepaid."}, headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401 and "nope" not in await r.text()
        async with http.post(release, json={"comment": "Prepaid."}, headers=auth("viewer")) as r:
            assert r.status == 403 and (await r.json())["detail"] == "viewer-1 has the viewer role; this needs analyst"
        async with http.post(release, json={"comment": "  "}, headers=auth("analyst")) as r:
            assert r.status == 422 and "comment" in await r.text()
        too_big = {**auth("analyst"), "Content-Type": "application/json"}
        async with http.post(release, data=b"x" * 20_000, headers=too_big) as r:
            assert r.status == 413
        bad_bodies = [b"not json", b"{}", b"[]", b'{"comment": 5}', b'{"comment": "x", "extra": 1}',
                      b'{"comment": "' + b"x" * 3000 + b'"}', b"\xff\xfe\x00", b'{"comment": null}', b"{" * 5000]
        for bad in bad_bodies:
            headers = {**auth("analyst"), "Content-Type": "application/json"}
            async with http.post(release, data=bad, headers=headers) as r:
                assert 400 <= r.status < 500, (bad[:40], r.status, await r.text())
        bad_id = f"{base}/api/holds/SO%20bad!/release"
        async with http.post(bad_id, json={"comment": "x"}, headers=auth("analyst")) as r:
            assert r.status == 422
        async with http.post(release, json={"comment": "Prepayment received."}, headers=auth("analyst")) as r:
            assert r.status == 202
            command_id = (await r.json())["command_id"]

        async def released():
            snap = await client.snapshot("C-DESK1")
            return snap if snap["exposure"] == 1200.0 and snap["open_holds"] == 0 else None
        await wait_for(released, what="the released order in exposure")
        async with http.get(f"{base}/api/holds", params={"customer_id": "C-DESK1"}, headers=auth("viewer")) as r:
            assert (await r.json())["total"] == 0
        async with http.post(release, json={"comment": "Again."}, headers=auth("analyst")) as r:
            assert r.status == 409 and "not on hold" in (await r.json())["detail"]
        resolutions = await client.collect(
            "hold-resolutions", lambda rs: any(x["command_id"] == command_id for x in rs))
        assert [(x["type"], x["actor"]) for x in resolutions if x["order_id"] == "SO-DESK1"] == [
            ("hold.released", "analyst-1")]

        async with http.get(f"{base}/api/customers/C-DESK1", headers=auth("viewer")) as r:
            profile = await r.json()
        assert profile["profile"]["exposure"] == 1200.0
        assert [d["outcome"] for d in profile["recent_decisions"]] == ["hold"]
        async with http.get(f"{base}/api/orders/SO-DESK1/decision", headers=auth("viewer")) as r:
            assert (await r.json())["reasons"][0]["code"] == "CREDIT_LIMIT_EXCEEDED"
        async with http.get(f"{base}/api/salespeople", headers=auth("viewer")) as r:
            staff = {row["salesperson_id"]: row for row in (await r.json())["salespeople"]}
        assert staff["S-01"]["holds"] >= 1 and staff["S-01"]["releases"] >= 1
        async with http.get(f"{base}/openapi.json") as r:
            paths = (await r.json())["paths"]
        assert {"/api/holds", "/api/holds/{order_id}/release", "/api/customers/{customer_id}/credit-limit",
                "/api/emergency"} <= set(paths)

    await asyncio.sleep(1.0)  # nothing else may change the exposure
    assert (await client.snapshot("C-DESK1"))["exposure"] == 1200.0
    trail = redis.Redis.from_url(settings.redis_url)
    assert verify(trail)[1] is None
    desk = [e["record"] for _, e in read_entries(trail) if e["record"]["kind"] == "desk"]
    assert any(r["command_id"] == command_id and r["actor"] == "analyst-1" and r["comment"] == "Prepayment received."
               and r["applied"] for r in desk)


async def test_admins_set_limits_stop_and_emergency_mode_analysts_cannot(client, worker, settings):
    base = f"http://127.0.0.1:{worker.port}/desk/api"
    await client.onboard(ev.customer("C-DESK2", limit=1000.0))
    async with aiohttp.ClientSession() as http:
        limit = f"{base}/customers/C-DESK2/credit-limit"
        async with http.put(limit, json={"credit_limit": 5000, "comment": "Review."}, headers=auth("analyst")) as r:
            assert r.status == 403
        async with http.put(limit, json={"credit_limit": -1, "comment": "Review."}, headers=auth("admin")) as r:
            assert r.status == 422 and "credit_limit" in await r.text()
        async with http.put(f"{base}/customers/C-NOBODY/credit-limit", json={"credit_limit": 1, "comment": "x"},
                            headers=auth("admin")) as r:
            assert r.status == 404
        review = {"credit_limit": 5000, "comment": "Annual review."}
        async with http.put(limit, json=review, headers=auth("admin")) as r:
            assert r.status == 202
        async with http.put(f"{base}/customers/C-DESK2/on-stop", json={"on_stop": True, "comment": "Dispute."},
                            headers=auth("admin")) as r:
            assert r.status == 202
        snapshot = await client.settled("C-DESK2", events_applied=3)
        assert snapshot["credit_limit"] == 5000.0 and snapshot["on_stop"] is True

        switch = {"active": True, "industries": ["no-such-industry"], "limit_factor": 0.9, "comment": "Drill."}
        async with http.put(f"{base}/emergency", json=switch, headers=auth("analyst")) as r:
            assert r.status == 403
        async with http.put(f"{base}/emergency", json={**switch, "limit_factor": 2}, headers=auth("admin")) as r:
            assert r.status == 422
        async with http.put(f"{base}/emergency", json=switch, headers=auth("admin")) as r:
            assert r.status == 202 and ":default@" in (await r.json())["rulebook_version"]
        async with http.put(f"{base}/emergency", json={"active": False, "comment": "Drill over."},
                            headers=auth("admin")) as r:
            assert r.status == 202
    trail = redis.Redis.from_url(settings.redis_url)
    records = [e["record"] for _, e in read_entries(trail)]
    assert [(r["actor"], r["active"]) for r in records if r["kind"] == "emergency"][-2:] == [
        ("admin-1", True), ("admin-1", False)]
    assert {r["detail"] for r in records if r["kind"] == "desk" and r["customer_id"] == "C-DESK2"} == {
        "credit limit set to 5,000.00 EUR", "put on stop"}


async def test_no_token_reaches_the_worker_log(client, worker):
    """After good and bad desk requests (a wrong token, a token in a query string), no token
    appears in what the worker logged."""
    wrong = "wrong-token-0123456789abcdef"
    base = f"http://127.0.0.1:{worker.port}/desk/api"
    async with aiohttp.ClientSession() as http:
        for headers in (auth("viewer"), {"Authorization": f"Bearer {wrong}"}):
            async with http.get(f"{base}/holds", headers=headers) as r:
                assert r.status in (200, 401)
        async with http.get(f"{base}/holds", params={"token": TOKENS["admin"]}) as r:
            assert r.status == 401
    await asyncio.sleep(1)  # the log is written as it goes
    logged = worker.process.log_path.read_text(errors="replace")
    assert "Ready" in logged  # the worker's log, from its start
    assert [t for t in (*TOKENS.values(), wrong) if t in logged] == []
