"""What one processed batch adds to the worker's metrics: events, duplicates, dead letters,
desk commands, decisions (by outcome, latency, scores, rule hits) and the sales-staff signals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitoring import metrics
from streams import sales_staff

if TYPE_CHECKING:
    from streams.pipeline import BatchResult


def count_batch(result: BatchResult) -> None:
    """Count what ``result`` consumed and produced."""
    for topic, count in result.consumed.items():
        metrics.EVENTS_CONSUMED.labels(topic).inc(count)
    metrics.DUPLICATE_EVENTS.inc(len(result.duplicates))
    for letter in result.dead_letters:
        metrics.DEAD_LETTERS.labels(letter.code).inc()
    for action in result.desk_actions:
        metrics.DESK_COMMANDS.labels(action.type, str(action.applied).lower()).inc()
    for decision in result.decisions:
        metrics.DECISIONS.labels(decision.outcome.value).inc()
        for model, score in decision.scores.items():
            metrics.DECISION_SCORES.labels(model).observe(score)
        salesperson = decision.salesperson_id
        metrics.SALESPERSON_DECISIONS.labels(salesperson, decision.outcome.value).inc()
        # every signal of a salesperson exists (from zero) once they have a decision: rates compute
        counters = {"discount_exceptions": metrics.SALESPERSON_DISCOUNT_EXCEPTIONS.labels(salesperson),
                    "anomalies": metrics.SALESPERSON_ANOMALIES.labels(salesperson)}
        metrics.SALESPERSON_RELEASES.labels(salesperson)
        for signal in sales_staff.flags(decision):
            if signal in counters:
                counters[signal].inc()
        metrics.DECISION_LATENCY.observe(decision.latency_ms / 1000.0)
        for reasons, shadow in ((decision.reasons, "false"), (decision.shadow_reasons, "true")):
            for reason in reasons:
                metrics.RULE_HITS.labels(reason.rule_id or reason.code, reason.action.value, shadow).inc()
    for resolution in result.resolutions:
        if resolution.type == "hold.released" and resolution.salesperson_id:
            metrics.SALESPERSON_RELEASES.labels(resolution.salesperson_id).inc()

