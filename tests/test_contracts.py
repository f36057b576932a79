import json
import uuid

import pytest
from pydantic import ValidationError

from streams.contracts import json_schemas, parse_input
from streams.contracts.customers import EXAMPLE as CUSTOMER
from streams.contracts.decisions import DECISION_NAMESPACE, decision_id_for
from streams.contracts.ledger import EXAMPLE as INVOICE
from streams.contracts.orders import EXAMPLE as ORDER


@pytest.mark.parametrize(("topic", "example"), [("orders", ORDER), ("ledger", INVOICE), ("customers", CUSTOMER)])
def test_documented_examples_are_valid(topic, example):
    assert parse_input(topic, json.dumps(example).encode()).event_id == example["event_id"]


@pytest.mark.parametrize(
    "change",
    [
        {"schema_version": 2},
        {"event_time": "2026-03-02T09:15:00"},          # no timezone
        {"total": float("nan")},
        {"lines": []},
        {"customer_id": "x" * 65},
        {"unexpected": 1},
        {"currency": "eur"},
    ],
)
def test_invalid_orders_are_refused(change):
    with pytest.raises(ValidationError):
        parse_input("orders", json.dumps({**ORDER, **change}).encode())


def test_invoice_due_before_issue_is_refused():
    with pytest.raises(ValidationError, match="before the invoice date"):
        parse_input("ledger", json.dumps({**INVOICE, "due_date": "2026-01-01"}).encode())


def test_every_contract_has_a_json_schema_with_schema_version():
    schemas = json_schemas()
    assert set(schemas) == {"orders", "ledger", "customers", "risk-commands", "decisions", "order-holds",
                            "hold-resolutions", "dead-letters", "model-examples", "model-alerts", "rulebooks"}
    assert "schema_version" in schemas["decisions"]["properties"]
    assert "order.placed" in json.dumps(schemas["orders"])


def test_decision_ids_are_the_uuid5_of_the_source_event():
    ids = ["evt-1", "E-b7-149370", "order:é-ünïcode", "x" * 64]
    assert [decision_id_for(i) for i in ids] == [str(uuid.uuid5(DECISION_NAMESPACE, i)) for i in ids]
