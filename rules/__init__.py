"""Rules: the risk team's limits as a rulebook (YAML, CEL conditions) compiled once per version
and applied to one order's :class:`~rules.context.DecisionContext` at a time.

No Kafka, no Redis: a rulebook is tested with contexts built by hand.

>>> from rules import DecisionContext, default_rulebook
>>> verdict = default_rulebook().evaluate(
...     DecisionContext(order_amount=600.0, exposure=500.0, credit_limit=1000.0, risk_class="B"))
>>> verdict.outcome.value, [hit.code for hit in verdict.hits]
('review', ['CREDIT_LIMIT_TOLERANCE'])
"""

from pathlib import Path

from rules.context import DecisionContext
from rules.engine import CompiledRulebook, Verdict, compile_data, compile_rulebook
from rules.outcome import Outcome, RuleHit
from rules.rulebook import Rulebook, RulebookError, read_data

#: The rulebook shipped with salesguard (used when no other is configured).
DEFAULT_RULEBOOK = Path(__file__).with_name("default_rulebook.yaml")


def load_rulebook(path: Path | None = None, version: str | None = None) -> CompiledRulebook:
    """Read, validate and compile a rulebook file (the shipped default without ``path``);
    raises :class:`RulebookError` listing every problem."""
    source = path or DEFAULT_RULEBOOK
    return compile_data(read_data(source), version, str(source))


def default_rulebook() -> CompiledRulebook:
    """The shipped default rulebook, compiled."""
    return load_rulebook()


__all__ = [
    "DEFAULT_RULEBOOK",
    "CompiledRulebook",
    "DecisionContext",
    "Outcome",
    "RuleHit",
    "Rulebook",
    "RulebookError",
    "Verdict",
    "compile_data",
    "compile_rulebook",
    "default_rulebook",
    "load_rulebook",
]
