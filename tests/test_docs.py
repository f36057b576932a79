"""The documented examples are valid contracts, and every setting is documented."""

import json
import re
from pathlib import Path

import pytest

from streams.contracts import (
    DeadLetter,
    Decision,
    HoldResolved,
    ModelAlert,
    OrderHold,
    RulebookApplied,
    TrainingExample,
    parse_input,
)
from streams.event_file import input_topic_of
from streams.rulebook_control import compile_applied
from streams.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```json\n(.*?)```", (ROOT / "docs" / "contracts.md").read_text(), re.S)


@pytest.mark.parametrize("block", BLOCKS)
def test_every_example_in_the_contract_docs_validates(block):
    example = json.loads(block)
    if "example_id" in example:
        TrainingExample.model_validate(example)
    elif example.get("type") == "model.drift":
        ModelAlert.model_validate(example)
    elif example.get("type") == "rulebook.applied":
        compile_applied(RulebookApplied.model_validate(example))
    elif example.get("type") in ("hold.released", "order.rejected"):
        HoldResolved.model_validate(example)
    elif "type" in example:
        parse_input(input_topic_of(example), block.encode())
    elif "hold_id" in example:
        OrderHold.model_validate(example)
    elif "decision_id" in example:
        Decision.model_validate(example)
    else:
        DeadLetter.model_validate(example)


def test_there_is_an_example_of_every_event_type():
    types = {json.loads(b).get("type") for b in BLOCKS}
    assert types >= {"order.placed", "order.amended", "order.cancelled", "invoice.issued", "payment.received",
                     "credit_note.issued", "invoice.written_off", "customer.created", "customer.updated",
                     "hold.release", "hold.reject", "credit_limit.set", "on_stop.set", "hold.released"}


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [ENV_PREFIX + name.upper() for name in Settings.model_fields if ENV_PREFIX + name.upper() not in readme]
    assert not missing
