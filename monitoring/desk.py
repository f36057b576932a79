"""The risk desk over HTTP: a FastAPI app mounted on each worker's web server under ``/desk``
(next to Faust's own pages such as ``/metrics``), with its OpenAPI document at
``/desk/openapi.json`` and the desk page at ``/desk/``.

It reads the Redis mirror and acts only by publishing commands (topic ``risk-commands``): the
stream stays the single writer of state. Every call needs a bearer token
(:mod:`monitoring.access`): viewers read, analysts release and reject holds, admins set limits,
the on-stop flag and emergency mode. Bad input gets a 4xx with the reason; a Redis outage a 503.
"""


import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from monitoring.access import DeskUser, Role, allows, who
from rules import RulebookError
from streams import sales_staff
from streams.audit import AuditTrail
from streams.contracts import InputEvent, RejectHold, ReleaseHold, SetCreditLimit, SetOnStop
from streams.contracts.common import Amount, CurrencyCode, Identifier
from streams.contracts.desk import Comment
from streams.settings import Settings

PREFIX = "/desk"
PAGE = Path(__file__).with_name("desk.html")
#: How often the live holds queue looks for changes, and sends a keep-alive when there are none.
POLL_S, KEEP_ALIVE_S = 1.0, 15.0


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resolution(_Body):
    """Why the hold is released or the order rejected (required)."""

    comment: Comment


class CreditLimitChange(_Body):
    credit_limit: Amount
    currency: CurrencyCode | None = Field(None, description="Defaults to the base currency.")
    comment: Comment


class StopChange(_Body):
    on_stop: bool
    comment: Comment


Segment = Annotated[str, Field(min_length=1, max_length=64)]


class EmergencySwitch(_Body):
    """Emergency mode on (segments to hold, limits to tighten) or off."""

    active: bool
    countries: list[Segment] = Field(default_factory=list, max_length=50)
    industries: list[Segment] = Field(default_factory=list, max_length=50)
    channels: list[Segment] = Field(default_factory=list, max_length=10)
    limit_factor: float | None = Field(None, gt=0, le=1)
    comment: Comment


@dataclass
class DeskBackend:
    """What the desk reads from and acts through. ``redis``: a ``redis.asyncio.Redis`` (None
    without ``SALESGUARD_REDIS_URL``); ``publish`` sends a command to ``risk-commands``;
    ``switch_emergency`` deploys the rulebook with emergency mode switched and returns its version."""

    settings: Settings
    redis: Any
    publish: Callable[[InputEvent], Awaitable[None]]
    switch_emergency: Callable[[bool, list[dict[str, str]], float | None], Awaitable[str]]
    audit: AuditTrail | None = None
    prefix: str = "sg:"
    clock: Callable[[], float] = time.time


def desk_app(backend: DeskBackend) -> FastAPI:
    """The desk's ASGI app (routes relative to :data:`PREFIX`)."""
    settings, p = backend.settings, backend.prefix
    api = FastAPI(title="salesguard risk desk", version="1", docs_url=None, redoc_url=None,
                  description=__doc__, max_body_size=settings.desk_max_body_bytes)
    bearer = HTTPBearer(auto_error=False, description="A desk token (SALESGUARD_DESK_TOKENS).")

    def role(needed: Role) -> Callable[..., Awaitable[DeskUser]]:
        async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> DeskUser:
            if not settings.desk_tokens:
                raise HTTPException(401, "no desk users are configured (SALESGUARD_DESK_TOKENS)")
            if credentials is None:
                raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
            user = who(credentials.credentials, settings.desk_tokens)
            if user is None:
                raise HTTPException(401, "the token is not valid", headers={"WWW-Authenticate": "Bearer"})
            if not allows(user.role, needed):
                raise HTTPException(403, f"{user.user} has the {user.role} role; this needs {needed}")
            return user
        return check

    viewer, analyst, admin = Depends(role("viewer")), Depends(role("analyst")), Depends(role("admin"))

    def redis() -> Any:
        if backend.redis is None:
            raise HTTPException(503, "the desk reads Redis: set SALESGUARD_REDIS_URL")
        return backend.redis

    @api.exception_handler(RedisError)
    async def redis_down(request: Request, exc: RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"Redis is unavailable ({type(exc).__name__}); try again"}, 503)

    async def open_holds() -> list[dict[str, Any]]:
        client = redis()
        order_ids = [oid.decode() for oid in await client.zrange(f"{p}holds", 0, -1)]
        if not order_ids:
            return []
        bodies = await client.mget([f"{p}hold:{oid}" for oid in order_ids])
        now = backend.clock()
        holds = [orjson.loads(body) for body in bodies if body is not None]
        for hold in holds:
            hold["age_s"] = round(now - datetime.fromisoformat(hold["held_at"]).timestamp(), 1)
        return holds

    async def one_hold(order_id: str) -> dict[str, Any]:
        body = await redis().get(f"{p}hold:{order_id}")
        if body is None:
            raise HTTPException(409, f"order {order_id} is not on hold (released, rejected, cancelled or unknown)")
        return dict(orjson.loads(body))

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @api.get("/api/holds", summary="Open holds: filter, sort, page")
    async def holds(
        user: DeskUser = viewer,
        customer_id: str | None = None, salesperson_id: str | None = None,
        reason: str | None = Query(None, description="A reason code the hold carries."),
        min_age_s: float = Query(0, ge=0), max_age_s: float | None = Query(None, ge=0),
        sort: Literal["age_s", "order_amount", "customer_id"] = "age_s",
        order: Literal["asc", "desc"] = "desc",
        offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500),
    ) -> dict[str, Any]:
        found = [h for h in await open_holds()
                 if (customer_id is None or h["customer_id"] == customer_id)
                 and (salesperson_id is None or h.get("salesperson_id") == salesperson_id)
                 and (reason is None or reason in h["reason_codes"])
                 and h["age_s"] >= min_age_s and (max_age_s is None or h["age_s"] <= max_age_s)]
        found.sort(key=lambda h: (h[sort], h["order_id"]), reverse=order == "desc")
        return {"total": len(found), "offset": offset, "limit": limit, "holds": found[offset:offset + limit]}

    @api.get("/api/holds/stream", summary="The open holds as server-sent events, sent again on every change")
    async def holds_stream(user: DeskUser = viewer) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            last: list[tuple[str, str]] | None = None
            quiet = 0.0
            while True:
                try:
                    current = sorted(await open_holds(), key=lambda h: h["held_at"], reverse=True)
                except RedisError:
                    current = None
                marker = [(h["order_id"], h["held_at"]) for h in current] if current is not None else last
                if marker != last:
                    yield b"event: holds\ndata: " + orjson.dumps(current) + b"\n\n"
                    last, quiet = marker, 0.0
                elif quiet >= KEEP_ALIVE_S:
                    yield b": keep-alive\n\n"
                    quiet = 0.0
                await asyncio.sleep(POLL_S)
                quiet += POLL_S
        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @api.get("/api/orders/{order_id}/decision", summary="An order's latest decision, with reasons and scores")
    async def decision(order_id: Identifier, user: DeskUser = viewer) -> Any:
        body = await redis().get(f"{p}decision:{order_id}")
        if body is None:
            raise HTTPException(404, f"no decision for order {order_id}")
        return orjson.loads(body)

    @api.get("/api/customers/{customer_id}", summary="A customer's risk profile")
    async def customer(customer_id: Identifier, user: DeskUser = viewer) -> dict[str, Any]:
        client = redis()
        snapshot, recent = await asyncio.gather(client.get(f"{p}customer:{customer_id}"),
                                                client.lrange(f"{p}customer:{customer_id}:decisions", 0, -1))
        if snapshot is None:
            raise HTTPException(404, f"customer {customer_id} is not known")
        seen: set[str] = set()
        decisions = []
        for body in recent:
            d = orjson.loads(body)
            if d["decision_id"] not in seen:
                seen.add(d["decision_id"])
                decisions.append(d)
        trend = [{"decided_at": d["decided_at"], "order_id": d["order_id"], **d.get("scores", {})}
                 for d in reversed(decisions)]
        return {"profile": orjson.loads(snapshot), "recent_decisions": decisions, "score_history": trend,
                "open_holds": [h for h in await open_holds() if h["customer_id"] == customer_id]}

    async def send(command: InputEvent) -> dict[str, Any]:
        await backend.publish(command)
        return {"status": "accepted", "command_id": command.event_id, "customer_id": command.customer_id}

    def _now() -> datetime:
        return datetime.fromtimestamp(backend.clock(), tz=UTC)

    def _command_id() -> str:
        return f"cmd-{uuid.uuid4().hex}"

    @api.post("/api/holds/{order_id}/release", status_code=202, summary="Release a held order (analyst)")
    async def release(order_id: Identifier, body: Resolution, user: DeskUser = analyst) -> dict[str, Any]:
        hold = await one_hold(order_id)
        return await send(ReleaseHold(event_id=_command_id(), event_time=_now(), customer_id=hold["customer_id"],
                                      order_id=order_id, actor=user.user, comment=body.comment))

    @api.post("/api/holds/{order_id}/reject", status_code=202, summary="Reject a held order for good (analyst)")
    async def reject(order_id: Identifier, body: Resolution, user: DeskUser = analyst) -> dict[str, Any]:
        hold = await one_hold(order_id)
        return await send(RejectHold(event_id=_command_id(), event_time=_now(), customer_id=hold["customer_id"],
                                     order_id=order_id, actor=user.user, comment=body.comment))

    async def known(customer_id: str) -> None:
        if not await redis().exists(f"{p}customer:{customer_id}"):
            raise HTTPException(404, f"customer {customer_id} is not known")

    @api.put("/api/customers/{customer_id}/credit-limit", status_code=202, summary="Set a credit limit (admin)")
    async def set_limit(customer_id: Identifier, body: CreditLimitChange, user: DeskUser = admin) -> dict[str, Any]:
        await known(customer_id)
        currency = body.currency or settings.base_currency
        if currency not in settings.fx_rates:
            raise HTTPException(422, f"unknown currency {currency}")
        return await send(SetCreditLimit(event_id=_command_id(), event_time=_now(), customer_id=customer_id,
                                         credit_limit=body.credit_limit, currency=currency, actor=user.user,
                                         comment=body.comment))

    @api.put("/api/customers/{customer_id}/on-stop", status_code=202, summary="Set the on-stop flag (admin)")
    async def set_stop(customer_id: Identifier, body: StopChange, user: DeskUser = admin) -> dict[str, Any]:
        await known(customer_id)
        return await send(SetOnStop(event_id=_command_id(), event_time=_now(), customer_id=customer_id,
                                    on_stop=body.on_stop, actor=user.user, comment=body.comment))

    @api.put("/api/emergency", status_code=202, summary="Switch emergency mode (admin)")
    async def emergency(body: EmergencySwitch, user: DeskUser = admin) -> dict[str, Any]:
        segments = ([{"country": c} for c in body.countries] + [{"industry": i} for i in body.industries]
                    + [{"channel": c} for c in body.channels])
        if body.active and not segments and body.limit_factor is None:
            raise HTTPException(422, "say what the emergency is: segments to hold and/or a limit_factor")
        try:
            version = await backend.switch_emergency(body.active, segments, body.limit_factor)
        except RulebookError as exc:
            raise HTTPException(422, "; ".join(exc.errors)) from None
        if backend.audit is not None:
            await backend.audit.append([{"kind": "emergency", "at": _now().isoformat(), "actor": user.user,
                                         "comment": body.comment, "active": body.active, "segments": segments,
                                         "limit_factor": body.limit_factor, "rulebook_version": version}])
        return {"status": "applied", "rulebook_version": version}

    @api.get("/api/salespeople", summary="Hold, override, discount-exception and anomaly rates per salesperson")
    async def salespeople(days: int = Query(7, ge=1, le=sales_staff.RETENTION_DAYS),
                          user: DeskUser = viewer) -> dict[str, Any]:
        today = datetime.fromtimestamp(backend.clock(), tz=UTC).date()
        rows = await sales_staff.salesperson_view(redis(), p, today, days)
        return {"days": days, "until": today.isoformat(), "salespeople": rows}

    return api


def mount(web_app: Any, app: FastAPI) -> None:
    """Serve ``app`` under :data:`PREFIX` on an aiohttp application (Faust's web server), as an
    ordinary route, so that aiohttp middleware such as Faust's CORS setup sees a normal match."""
    from aiohttp_asgi.resource import ASGIContext

    class Context(ASGIContext):  # type: ignore[misc]
        """aiohttp-asgi answers every ``receive()`` after the request body with another empty
        body at once; a streamed response (server-sent events) listens for the disconnect
        with ``receive()`` in a loop and would spin. Here, once the body is read, ``receive()``
        waits until the client has gone and then says so."""

        body_read = False

        async def on_receive(self) -> dict[str, Any]:
            if self.body_read:
                while self.request.transport is not None and not self.request.transport.is_closing():
                    await asyncio.sleep(POLL_S)
                return {"type": "http.disconnect"}
            message: dict[str, Any] = await super().on_receive()
            self.body_read = message["type"] == "http.request" and not message.get("more_body")
            return message

    async def handle(request: Any) -> Any:
        return await Context(app, request, PREFIX).get_response()

    web_app.router.add_route("*", PREFIX + "{tail:(/.*)?}", handle)
