"""Backtest: replay a recorded event file through the worker's own pipeline — validation, state,
both models, the rulebook — without a broker, and report what the rulebook decided.

The models learn as the trainer would (every order, every invoice outcome, invoices unpaid past
the threshold), only without its publishing delay. When the file shows later write-offs, holds
are scored against them: an order is *bad* when an invoice issued for it is written off later
in the file; precision = share of stopped (held or rejected) orders that were bad, recall =
share of bad orders that were stopped.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from rules import CompiledRulebook, DecisionContext, Outcome, Verdict
from streams.app import pipeline_config
from streams.exposure import DAY, CustomerState
from streams.pipeline import Pipeline, RawMessage
from streams.settings import Settings
from streams.trainer import learn_example
from streams.training import untrained_models

#: Messages processed together, as a worker's batch.
BATCH = 500


@dataclass
class BacktestReport:
    """What one rulebook decided on one event file."""

    rulebook_version: str
    events: int = 0
    orders: int = 0
    dead_letters: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    shadow_hits: Counter[str] = field(default_factory=Counter)
    bad_orders: int = 0
    stopped_bad: int = 0
    elapsed_s: float = 0.0
    rules_us_per_order: float = 0.0
    final: dict[str, str] = field(default_factory=dict)  # order id -> final outcome

    @property
    def hold_rate(self) -> float:
        """Share of orders held or rejected."""
        stopped = self.outcomes[Outcome.HOLD.value] + self.outcomes[Outcome.REJECT.value]
        return stopped / self.orders if self.orders else 0.0

    def summary(self) -> dict[str, Any]:
        """The report as JSON-ready data (without the per-order outcomes)."""
        stopped = self.outcomes[Outcome.HOLD.value] + self.outcomes[Outcome.REJECT.value]
        return {
            "rulebook_version": self.rulebook_version, "events": self.events, "orders": self.orders,
            "dead_letters": self.dead_letters, "outcomes": dict(sorted(self.outcomes.items())),
            "hold_rate": round(self.hold_rate, 4), "hits": dict(self.hits.most_common()),
            "shadow_hits": dict(self.shadow_hits.most_common()), "bad_orders": self.bad_orders,
            "precision": round(self.stopped_bad / stopped, 4) if self.bad_orders and stopped else None,
            "recall": round(self.stopped_bad / self.bad_orders, 4) if self.bad_orders else None,
            "elapsed_s": round(self.elapsed_s, 2), "rules_us_per_order": round(self.rules_us_per_order, 1),
        }


def backtest(messages: Iterable[RawMessage], rulebook: CompiledRulebook, settings: Settings,
             progress: Callable[[int], None] | None = None) -> BacktestReport:
    """Replay ``messages`` in order through a fresh pipeline deciding with ``rulebook``."""
    started = time.perf_counter()
    pipeline = Pipeline(dataclasses.replace(pipeline_config(settings), rules=rulebook), clock=lambda: 0.0)
    models = untrained_models(settings)
    pipeline.models = models
    report = BacktestReport(rulebook.version)
    states: dict[str, CustomerState] = {}
    learned: set[str] = set()
    order_of_invoice: dict[str, str] = {}
    written_off: set[str] = set()
    evaluations, seconds = rulebook.evaluations, rulebook.seconds
    watermark, labelled_at = 0.0, 0.0
    batch: list[RawMessage] = []

    def run(batch: list[RawMessage]) -> None:
        nonlocal labelled_at
        result = pipeline.process(batch, states.get)
        for customer_id, (_, state) in result.changed.items():
            states[customer_id] = state
        examples = result.examples
        if watermark - labelled_at >= DAY:  # the overdue timer, once per day of event time
            examples = [*examples, *pipeline.label_overdue(states.values(), watermark)]
            labelled_at = watermark
        for example in examples:
            if example.example_id not in learned:
                learned.add(example.example_id)
                learn_example(models, example)
        for decision in result.decisions:
            report.final[decision.order_id] = decision.outcome.value
            report.hits.update(reason.rule_id or reason.code for reason in decision.reasons)
            report.shadow_hits.update(reason.rule_id or reason.code for reason in decision.shadow_reasons)
        report.dead_letters += len(result.dead_letters)
        report.events += len(batch)
        if progress:
            progress(len(batch))

    for message in messages:
        watermark = max(watermark, _observe(message, order_of_invoice, written_off))
        batch.append(message)
        if len(batch) == BATCH:
            run(batch)
            batch = []
    if batch:
        run(batch)
    report.orders = len(report.final)
    report.outcomes = Counter(report.final.values())
    bad = {order_of_invoice[i] for i in written_off if i in order_of_invoice} & set(report.final)
    report.bad_orders = len(bad)
    report.stopped_bad = sum(1 for order in bad if report.final[order] in (Outcome.HOLD.value, Outcome.REJECT.value))
    report.elapsed_s = time.perf_counter() - started
    calls = rulebook.evaluations - evaluations
    report.rules_us_per_order = (rulebook.seconds - seconds) / calls * 1e6 if calls else 0.0
    return report


def rules_benchmark(messages: Iterable[RawMessage], rulebook: CompiledRulebook, settings: Settings,
                    repeat: int = 5) -> dict[str, Any]:
    """What rule evaluation costs per order: the file is replayed once (as :func:`backtest`),
    recording every round of decision contexts the pipeline formed; then those rounds are
    decided again ``repeat`` times by the rulebook alone. ``in_pipeline_us_per_order`` is the
    cost measured during the replay, between the pipeline's other work;
    ``us_per_order`` the fastest of the repeats."""
    rounds: list[list[DecisionContext]] = []
    decide_many = rulebook.evaluate_many

    def recording(contexts: Sequence[DecisionContext]) -> list[Verdict]:
        rounds.append(list(contexts))
        return decide_many(contexts)

    rulebook.evaluate_many = recording  # type: ignore[method-assign]
    try:
        report = backtest(messages, rulebook, settings)
    finally:
        del rulebook.evaluate_many
    orders = sum(map(len, rounds))
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        verdicts = [verdict for contexts in rounds for verdict in decide_many(contexts)]
        runs.append((time.perf_counter() - started) / max(orders, 1) * 1e6)
    return {"rulebook_version": rulebook.version, "orders": orders, "rounds": len(rounds),
            "orders_with_hits": sum(bool(v.hits or v.shadow_hits) for v in verdicts) if repeat else None,
            "in_pipeline_us_per_order": round(report.rules_us_per_order, 1),
            "us_per_order": round(min(runs), 1) if runs else None, "runs_us_per_order": [round(r, 1) for r in runs]}


def _observe(message: RawMessage, order_of_invoice: dict[str, str], written_off: set[str]) -> float:
    """Note which order an issued invoice belongs to and which invoices were written off;
    returns the event's time (0 when unknown)."""
    try:
        event = orjson.loads(message.value)
    except orjson.JSONDecodeError:
        return 0.0
    if not isinstance(event, dict):
        return 0.0
    kind = event.get("type")
    if kind == "invoice.issued" and isinstance(event.get("order_id"), str):
        order_of_invoice[str(event.get("invoice_id"))] = event["order_id"]
    elif kind == "invoice.written_off":
        written_off.add(str(event.get("invoice_id")))
    try:
        return datetime.fromisoformat(str(event.get("event_time"))).timestamp()
    except ValueError:
        return 0.0


def changed_orders(a: BacktestReport, b: BacktestReport) -> list[tuple[str, str, str]]:
    """Orders whose final outcome differs between two reports: (order id, outcome a, outcome b)."""
    return [(order, outcome, b.final[order]) for order, outcome in a.final.items()
            if order in b.final and b.final[order] != outcome]
