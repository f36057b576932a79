"""Apply a set of rules to one context: every match is kept, the strongest action wins."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rules.context import DecisionContext
from rules.outcome import Outcome, RuleHit

#: A rule looks at a context and returns a hit, or ``None`` when it does not match.
Rule = Callable[[DecisionContext], RuleHit | None]


@dataclass(frozen=True)
class Verdict:
    """The outcome for one order and every rule hit behind it (strongest first)."""

    outcome: Outcome
    hits: tuple[RuleHit, ...]


def evaluate(context: DecisionContext, rules: Iterable[Rule]) -> Verdict:
    """Run every rule; approve when none matches, otherwise the strongest action.

    Hits are listed strongest first, then in rule order, so the first reason is the one
    that decided.
    """
    hits = [hit for rule in rules if (hit := rule(context)) is not None]
    hits.sort(key=lambda hit: -hit.action.strength())
    outcome = hits[0].action if hits else Outcome.APPROVE
    return Verdict(outcome=outcome, hits=tuple(hits))
