"""Control messages (topic ``rulebooks``): rulebook deployments that every worker follows (see
:mod:`streams.rulebook_control`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from streams.contracts.common import SCHEMA_VERSION, Contract


class RulebookApplied(Contract):
    """One deployment: the rulebook file's text, its place in the sequence, and — for a
    rollback — the sequence whose rulebook it restores."""

    schema_version: Literal[1] = SCHEMA_VERSION
    type: Literal["rulebook.applied"] = "rulebook.applied"
    sequence: int = Field(ge=1)
    content: str
    applied_at: datetime
    restores: int | None = None
