"""Typed, frozen event contracts (pydantic v2), JSON on the wire, with a ``schema_version``.

Inputs are discriminated by ``type``:

>>> from streams.contracts import parse_input
>>> parse_input("orders", b'{"type": "order.cancelled", "event_id": "e1", "customer_id": "C1",'
...             b' "event_time": "2026-01-01T00:00:00Z", "order_id": "SO-1"}').order_id
'SO-1'
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from streams.contracts.common import SCHEMA_VERSION, InputEvent
from streams.contracts.control import RulebookApplied
from streams.contracts.customers import CustomerCreated, CustomerEvent, CustomerUpdated
from streams.contracts.dead_letters import DeadLetter, DeadLetterCode
from streams.contracts.decisions import Decision, OrderHold, Reason, decision_id_for
from streams.contracts.desk import (
    DeskAction,
    DeskCommand,
    HoldResolved,
    RejectHold,
    ReleaseHold,
    SetCreditLimit,
    SetOnStop,
)
from streams.contracts.learning import EXAMPLE_RECORD, ModelAlert, TrainingExample
from streams.contracts.ledger import CreditNoteIssued, InvoiceIssued, InvoiceWrittenOff, LedgerEvent, PaymentReceived
from streams.contracts.orders import OrderAmended, OrderCancelled, OrderEvent, OrderLine, OrderPlaced


def _adapter(union: Any) -> TypeAdapter[Any]:
    """A validator for a discriminated union of events."""
    return TypeAdapter(union)


#: Input topic (unprefixed name) -> the union of events it carries.
INPUT_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "orders": _adapter(OrderEvent),
    "ledger": _adapter(LedgerEvent),
    "customers": _adapter(CustomerEvent),
    "risk-commands": _adapter(DeskCommand),
}

#: Every contract by name, for ``salesguard schemas`` and the docs.
CONTRACTS: dict[str, type[BaseModel] | TypeAdapter[Any]] = {
    "orders": INPUT_ADAPTERS["orders"],
    "ledger": INPUT_ADAPTERS["ledger"],
    "customers": INPUT_ADAPTERS["customers"],
    "risk-commands": INPUT_ADAPTERS["risk-commands"],
    "decisions": Decision,
    "order-holds": OrderHold,
    "hold-resolutions": HoldResolved,
    "dead-letters": DeadLetter,
    "model-examples": EXAMPLE_RECORD,
    "model-alerts": ModelAlert,
    "rulebooks": RulebookApplied,
}


def parse_input(topic: str, raw: bytes) -> InputEvent:
    """Validate one raw message of input topic ``topic`` (unprefixed); raises
    :class:`pydantic.ValidationError` (or ``ValueError`` for non-JSON) when it is not valid."""
    return INPUT_ADAPTERS[topic].validate_json(raw)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every contract, by topic."""
    schemas: dict[str, dict[str, Any]] = {}
    for name, contract in CONTRACTS.items():
        if isinstance(contract, TypeAdapter):
            schemas[name] = contract.json_schema()
        else:
            schemas[name] = contract.model_json_schema()
    return schemas


def dumps(event: BaseModel) -> bytes:
    """A contract as compact JSON bytes."""
    return event.__pydantic_serializer__.to_json(event)


__all__ = [
    "SCHEMA_VERSION",
    "CreditNoteIssued",
    "CustomerCreated",
    "CustomerUpdated",
    "DeadLetter",
    "DeadLetterCode",
    "Decision",
    "DeskAction",
    "DeskCommand",
    "HoldResolved",
    "InputEvent",
    "InvoiceIssued",
    "InvoiceWrittenOff",
    "ModelAlert",
    "OrderAmended",
    "OrderCancelled",
    "OrderHold",
    "OrderLine",
    "OrderPlaced",
    "PaymentReceived",
    "Reason",
    "RejectHold",
    "ReleaseHold",
    "RulebookApplied",
    "SetCreditLimit",
    "SetOnStop",
    "TrainingExample",
    "decision_id_for",
    "dumps",
    "json_schemas",
    "parse_input",
]
