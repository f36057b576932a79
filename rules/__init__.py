"""Rules: what the risk team's limits say about one order, as pure functions over a context.

No Kafka, no Redis: a rule is tested with a :class:`~rules.context.DecisionContext` built by hand.

>>> from rules import DecisionContext, Outcome, evaluate, BUILTIN_RULES
>>> ctx = DecisionContext(order_amount=600.0, exposure=500.0, credit_limit=1000.0)
>>> verdict = evaluate(ctx, BUILTIN_RULES)
>>> verdict.outcome is Outcome.REVIEW, [hit.code for hit in verdict.hits]
(True, ['CREDIT_LIMIT_TOLERANCE'])
"""

from rules.builtin import BUILTIN_RULES, BUILTIN_RULESET_VERSION, RulePolicy, builtin_rules
from rules.context import DecisionContext
from rules.evaluate import Verdict, evaluate
from rules.outcome import Outcome, RuleHit

__all__ = [
    "BUILTIN_RULES",
    "BUILTIN_RULESET_VERSION",
    "DecisionContext",
    "Outcome",
    "RuleHit",
    "RulePolicy",
    "builtin_rules",
    "Verdict",
    "evaluate",
]
