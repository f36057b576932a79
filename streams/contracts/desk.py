"""What the risk desk asks of the stream (topic ``risk-commands``) and what the stream tells the
ERP when a hold is resolved (topic ``order-holds``, next to the holds themselves).

The desk never writes state: it publishes a command, keyed by customer like every input, and
the worker that owns the customer applies it in order with the customer's other events.
``event_id`` is the command's idempotency key: a command delivered twice changes nothing the
second time, and releasing an order that is no longer held is a no-op, reported as such.

>>> from streams.contracts import parse_input
>>> command = parse_input("risk-commands", b'{"type": "hold.release", "event_id": "cmd-1", "customer_id": "C1",'
...     b' "event_time": "2026-01-01T00:00:00Z", "order_id": "SO-1", "actor": "alice", "comment": "Prepaid."}')
>>> type(command).__name__, command.order_id
('ReleaseHold', 'SO-1')
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from streams.contracts.common import SCHEMA_VERSION, Amount, Contract, CurrencyCode, Identifier, InputEvent

#: Why the desk acted: required, one paragraph at most.
Comment = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"\S")]


class _DeskCommandBody(InputEvent):
    actor: Identifier  #: who asked (the desk user the token belongs to)
    comment: Comment


class ReleaseHold(_DeskCommandBody):
    """Let a held order ship: it becomes open exposure."""

    type: Literal["hold.release"] = "hold.release"
    order_id: Identifier


class RejectHold(_DeskCommandBody):
    """Refuse a held order for good: it never becomes exposure."""

    type: Literal["hold.reject"] = "hold.reject"
    order_id: Identifier


class SetCreditLimit(_DeskCommandBody):
    """Set the customer's credit limit (until the CRM sends a newer master record)."""

    type: Literal["credit_limit.set"] = "credit_limit.set"
    credit_limit: Amount
    currency: CurrencyCode


class SetOnStop(_DeskCommandBody):
    """Put the customer on stop, or take it off."""

    type: Literal["on_stop.set"] = "on_stop.set"
    on_stop: bool


#: Any desk command, told apart by ``type``.
DeskCommand = Annotated[ReleaseHold | RejectHold | SetCreditLimit | SetOnStop, Field(discriminator="type")]


class HoldResolved(Contract):
    """Tells the ERP what became of a held order: ``hold.released`` (ship it) or
    ``order.rejected`` (do not). ``hold_id`` is the id of the hold it resolves."""

    schema_version: Literal[1] = SCHEMA_VERSION
    type: Literal["hold.released", "order.rejected"]
    hold_id: str
    order_id: str
    customer_id: str
    salesperson_id: str
    command_id: str
    actor: str
    comment: str
    resolved_at: datetime


class DeskAction(Contract):
    """What the stream did with one desk command: ``applied`` False when it changed nothing
    (e.g. the order was no longer held), with ``detail`` saying why. Goes to the audit trail."""

    command_id: str
    type: str
    customer_id: str
    actor: str
    comment: str
    order_id: str | None = None
    salesperson_id: str | None = None  #: who sold the order a hold command concerns
    applied: bool
    detail: str
    at: datetime
