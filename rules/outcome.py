"""Outcomes of a decision, ordered by strength, and the hit a rule reports."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Outcome(StrEnum):
    """What happens to an order. The strongest outcome of all matching rules wins.

    >>> max([Outcome.REVIEW, Outcome.HOLD, Outcome.APPROVE], key=Outcome.strength).value
    'hold'
    """

    APPROVE = "approve"
    REVIEW = "review"
    HOLD = "hold"
    REJECT = "reject"

    def strength(self) -> int:
        """0 for approve up to 3 for reject."""
        return _STRENGTH[self]

    @property
    def stops_order(self) -> bool:
        """True when the ERP must not ship the order (hold or reject)."""
        return self in (Outcome.HOLD, Outcome.REJECT)


_STRENGTH = {Outcome.APPROVE: 0, Outcome.REVIEW: 1, Outcome.HOLD: 2, Outcome.REJECT: 3}


class RuleHit(NamedTuple):
    """One rule that matched: a machine-readable code, the action it asks for, a sentence for
    people, the values that triggered it, the risk transfer a hold requires (if any) and the
    rule's id. (A named tuple: the hits of a batch are made by the thousand.)"""

    code: str
    action: Outcome
    message: str
    values: dict[str, float | str | None]
    remedy: str | None = None
    rule_id: str | None = None
