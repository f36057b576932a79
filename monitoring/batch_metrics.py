"""What one processed batch adds to the worker's metrics: events, duplicates, dead letters,
desk commands, decisions (by outcome, latency, scores, rule hits) and the sales-staff signals.

Counters are added up per label set first and incremented once each: a batch has hundreds of
decisions but few distinct outcomes, salespeople and rules.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from prometheus_client import Counter as PrometheusCounter
from prometheus_client import Histogram

from monitoring import metrics
from streams import sales_staff

if TYPE_CHECKING:
    from streams.pipeline import BatchResult

#: How often each label set occurred in a batch.
Counts = Counter[tuple[str, ...]]


def count_batch(result: BatchResult) -> None:
    """Count what ``result`` consumed and produced."""
    for topic, count in result.consumed.items():
        metrics.EVENTS_CONSUMED.labels(topic).inc(count)
    metrics.DUPLICATE_EVENTS.inc(len(result.duplicates))
    _add(metrics.DEAD_LETTERS, Counter((letter.code,) for letter in result.dead_letters))
    _add(metrics.DESK_COMMANDS, Counter((a.type, str(a.applied).lower()) for a in result.desk_actions))
    outcomes: Counts = Counter()
    by_salesperson: Counts = Counter()
    signals: dict[str, Counts] = {"discount_exceptions": Counter(), "anomalies": Counter()}
    hits: Counts = Counter()
    scores: dict[str, Histogram] = {}
    releases: Counts = Counter((r.salesperson_id,) for r in result.resolutions
                               if r.type == "hold.released" and r.salesperson_id)
    for decision in result.decisions:
        outcome, salesperson = decision.outcome.value, decision.salesperson_id
        outcomes[(outcome,)] += 1
        by_salesperson[(salesperson, outcome)] += 1
        for signal in sales_staff.flags(decision):
            if signal in signals:
                signals[signal][(salesperson,)] += 1
        for model, score in decision.scores.items():
            if model not in scores:
                scores[model] = metrics.DECISION_SCORES.labels(model)
            scores[model].observe(score)
        metrics.DECISION_LATENCY.observe(decision.latency_ms / 1000.0)
        for reasons, shadow in ((decision.reasons, "false"), (decision.shadow_reasons, "true")):
            for reason in reasons:
                hits[(reason.rule_id or reason.code, reason.action.value, shadow)] += 1
    # every signal of a salesperson exists (from zero) once they have a decision: rates compute
    for salesperson, _ in by_salesperson:
        for counts in (*signals.values(), releases):
            counts[(salesperson,)] += 0
    _add(metrics.DECISIONS, outcomes)
    _add(metrics.SALESPERSON_DECISIONS, by_salesperson)
    _add(metrics.SALESPERSON_DISCOUNT_EXCEPTIONS, signals["discount_exceptions"])
    _add(metrics.SALESPERSON_ANOMALIES, signals["anomalies"])
    _add(metrics.SALESPERSON_RELEASES, releases)
    _add(metrics.RULE_HITS, hits)


def _add(counter: PrometheusCounter, counts: Counts) -> None:
    """Increment ``counter``'s child of every label set in ``counts`` by its count (0 creates it)."""
    for labels, count in counts.items():
        counter.labels(*labels).inc(count)
