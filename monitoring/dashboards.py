"""Grafana dashboards as code (Grafana's Foundation SDK builders), written as JSON into
``monitoring/grafana/dashboards/`` and committed; a test checks the committed files are what
this module builds, that every query names only metrics the workers export, and (against a
real Prometheus scraping a worker) that every query returns data.

Regenerate after a change: ``salesguard dashboards --out monitoring/grafana/dashboards``.

>>> sorted(DASHBOARDS)
['models', 'pipeline-health', 'risk-desk-overview', 'sales-staff']
>>> all(q.startswith(("sum", "max", "histogram_quantile", "topk")) for q in queries(DASHBOARDS["models"]()))
True
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

#: The Prometheus data source every panel reads (provisioned with this uid).
DATASOURCE = DataSourceRef(type_val="prometheus", uid="salesguard-prometheus")
RATE = "[$__rate_interval]"
OUT = Path(__file__).with_name("grafana") / "dashboards"


def _query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        query = query.legend_format(legend)
    return query.instant() if instant else query


def _series(title: str, unit: str, *targets: tuple[str, str], span: int = 12, description: str = "") -> Any:
    panel = timeseries.Panel().title(title).unit(unit).span(span).height(8).datasource(DATASOURCE)
    for i, (expr, legend) in enumerate(targets):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + i)))
    return panel.description(description) if description else panel


def _stat(title: str, unit: str, expr: str, span: int = 6, description: str = "") -> Any:
    panel = stat.Panel().title(title).unit(unit).span(span).height(4).datasource(DATASOURCE).with_target(_query(expr))
    return panel.description(description) if description else panel


def _table(title: str, *targets: tuple[str, str], span: int = 24) -> Any:
    panel = table.Panel().title(title).span(span).height(10).datasource(DATASOURCE)
    for i, (expr, legend) in enumerate(targets):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + i), instant=True).format(PromQueryFormat.TABLE))
    return panel


def _board(uid: str, title: str, sections: list[tuple[str, list[Any]]]) -> dict[str, Any]:
    board = (dashboard.Dashboard(title).uid(f"salesguard-{uid}").tags(["salesguard"]).refresh("30s")
             .time("now-6h", "now").editable())
    panel_id = 1
    for row, panels in sections:
        board = board.with_row(dashboard.Row(row).id(panel_id))
        panel_id += 1
        for panel in panels:
            board = board.with_panel(panel.id(panel_id))
            panel_id += 1
    built: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return built


HOLDS = 'outcome=~"hold|reject"'


def risk_desk_overview() -> dict[str, Any]:
    """What the desk watches: decisions, holds, exposure against limits, emergency mode."""
    return _board("risk-desk-overview", "salesguard · Risk desk overview", [
        ("Now", [
            _stat("Hold rate (15 min)", "percentunit",
                  f"sum(rate(salesguard_decisions_total{{{HOLDS}}}[15m])) / sum(rate(salesguard_decisions_total[15m]))",
                  description="Orders held or rejected, as a share of all decisions."),
            _stat("Open holds", "none", "sum(salesguard_open_holds)"),
            _stat("Oldest open hold", "s", "max(salesguard_oldest_hold_age_seconds)",
                  description="Event-time age of the oldest order waiting for the desk."),
            _stat("Emergency mode", "bool_on_off", "max(salesguard_emergency_mode)"),
        ]),
        ("Decisions", [
            _series("Decisions per second by outcome", "ops",
                    (f"sum by (outcome) (rate(salesguard_decisions_total{RATE}))", "{{outcome}}")),
            _series("Rule hits per second (top 10)", "ops",
                    (f'topk(10, sum by (rule) (rate(salesguard_rule_hits_total{{shadow="false"}}{RATE})))', "{{rule}}"),
                    (f'topk(10, sum by (rule) (rate(salesguard_rule_hits_total{{shadow="true"}}{RATE})))'
                     " or vector(0)", "shadow {{rule}}")),
        ]),
        ("Exposure", [
            _series("Exposure vs credit limits", "currencyEUR",
                    ("sum(salesguard_exposure)", "exposure"), ("sum(salesguard_credit_limits)", "credit limits"),
                    ("sum(salesguard_overdue)", "overdue")),
            _series("Customers by utilization", "none",
                    ("sum by (band) (salesguard_customers_by_utilization)", "{{band}}")),
        ]),
    ])


def models() -> dict[str, Any]:
    """The online models: score distributions, learning, drift."""
    return _board("models", "salesguard · Models", [
        ("Scores", [
            _series("Score quantiles of decided orders", "percentunit",
                    (f"histogram_quantile(0.5, sum by (le, model) (rate(salesguard_decision_score_bucket{RATE})))",
                     "p50 {{model}}"),
                    (f"histogram_quantile(0.9, sum by (le, model) (rate(salesguard_decision_score_bucket{RATE})))",
                     "p90 {{model}}")),
            _series("Scored orders per second", "ops",
                    (f"sum by (model) (rate(salesguard_decision_score_count{RATE}))", "{{model}}")),
        ]),
        ("Quality", [
            _series("Late-payment model: rolling ROC AUC and log loss (last 1,000 outcomes)", "none",
                    ('max by (metric) (salesguard_model_quality{model="late_payment"}) or vector(0)', "{{metric}}"),
                    description="Each outcome scored before it was learned (progressive validation); "
                                "no value until invoices have outcomes.", span=24),
        ]),
        ("Learning", [
            _stat("Anomaly model version", "none", 'max(salesguard_model_version{kind="order"})'),
            _stat("Late-payment model version", "none", 'max(salesguard_model_version{kind="credit"})'),
            _stat("Model store errors (1 h)", "none", "sum(increase(salesguard_model_store_errors_total[1h]))"),
            _series("Examples published and learned per second", "ops",
                    (f"sum by (kind) (rate(salesguard_model_examples_published_total{RATE}))", "{{kind}} published"),
                    (f"sum by (kind) (rate(salesguard_model_examples_total{RATE}))", "{{kind}} learned")),
            _series("Drift alerts", "none",
                    ("sum by (model, signal) (increase(salesguard_model_drifts_total[1h])) or vector(0)",
                     "{{model}} {{signal}}")),
        ]),
    ])


def pipeline_health() -> dict[str, Any]:
    """The stream: throughput, latency, lag, dead letters, rebalances, Redis."""
    lag = ('faust_topic_partition_end_offset{topic!~".*-changelog|.*__assignor.*"}'
           " - faust_topic_partition_offset_commited")
    return _board("pipeline-health", "salesguard · Pipeline health", [
        ("Flow", [
            _series("Events consumed per second by topic", "ops",
                    (f"sum by (topic) (rate(salesguard_events_consumed_total{RATE}))", "{{topic}}")),
            _series("Decision latency", "s",
                    (f"histogram_quantile(0.5, sum by (le) (rate(salesguard_decision_latency_seconds_bucket{RATE})))",
                     "p50"),
                    (f"histogram_quantile(0.99, sum by (le) (rate(salesguard_decision_latency_seconds_bucket{RATE})))",
                     "p99"),
                    description="From the order's produce time to its decision; the objective is 50 ms."),
            _series("Consumer lag by topic", "none", (f"sum by (topic) ({lag})", "{{topic}}")),
            _series("Batch time p99", "s",
                    (f"histogram_quantile(0.99, sum by (le) (rate(salesguard_batch_seconds_bucket{RATE})))", "p99")),
        ]),
        ("Trouble", [
            _series("Dead letters per second by code", "ops",
                    (f"sum by (code) (rate(salesguard_dead_letters_total{RATE})) or vector(0)", "{{code}}")),
            _series("Duplicates and Redis errors per second", "ops",
                    (f"sum(rate(salesguard_duplicate_events_total{RATE}))", "duplicate events"),
                    (f"sum(rate(salesguard_redis_errors_total{RATE}))", "Redis errors")),
            _stat("Rebalances", "none", "max(faust_total_rebalances)"),
            _stat("Rulebooks refused", "none", "sum(salesguard_rulebooks_rejected_total)"),
        ]),
    ])


def sales_staff() -> dict[str, Any]:
    """Where sales staff need risk training: holds, overrides, discount exceptions, anomalies."""
    window = "[7d]"
    decided = f"sum by (salesperson) (increase(salesguard_salesperson_decisions_total{window}))"
    held = f"sum by (salesperson) (increase(salesguard_salesperson_decisions_total{{{HOLDS}}}{window}))"
    return _board("sales-staff", "salesguard · Sales staff", [
        ("Last 7 days", [
            _table("By salesperson",
                   (decided, "orders"),
                   (f"{held} / {decided}", "hold rate"),
                   (f"sum by (salesperson) (increase(salesguard_salesperson_releases_total{window})) / {held}",
                    "override rate"),
                   (f"sum by (salesperson) (increase(salesguard_salesperson_discount_exceptions_total{window}))",
                    "discount exceptions"),
                   (f"sum by (salesperson) (increase(salesguard_salesperson_anomalies_total{window}))", "anomalies")),
        ]),
        ("Over time", [
            _series("Hold rate by salesperson", "percentunit",
                    (f"sum by (salesperson) (rate(salesguard_salesperson_decisions_total{{{HOLDS}}}[1h]))"
                     " / sum by (salesperson) (rate(salesguard_salesperson_decisions_total[1h]))", "{{salesperson}}")),
            _series("Desk overrides per hour by salesperson", "none",
                    ("sum by (salesperson) (increase(salesguard_salesperson_releases_total[1h])) or vector(0)",
                     "{{salesperson}}")),
        ]),
    ])


DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "risk-desk-overview": risk_desk_overview, "models": models, "pipeline-health": pipeline_health,
    "sales-staff": sales_staff}


def queries(board: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression of a dashboard's panels."""
    for panel in board["panels"]:
        for target in panel.get("targets") or []:
            yield target["expr"]


def render(name: str) -> str:
    """A dashboard as the JSON text committed for it."""
    return json.dumps(DASHBOARDS[name](), indent=2, sort_keys=True) + "\n"


def write_all(directory: Path = OUT) -> list[Path]:
    """Write every dashboard as ``<name>.json`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in DASHBOARDS:
        path = directory / f"{name}.json"
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written
