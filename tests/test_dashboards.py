"""Grafana dashboards as code: the committed JSON is what the code builds (golden files), and
every panel queries only metrics the workers export."""

import json
import re

import pytest

from monitoring.dashboards import DASHBOARDS, DATASOURCE, OUT, queries, render
from tests.test_alerts import exported_names


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_the_committed_dashboard_is_what_the_code_builds(name):
    committed = (OUT / f"{name}.json").read_text(encoding="utf-8")
    assert committed == render(name), f"regenerate with: salesguard dashboards --out {OUT}"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_query_only_exported_metrics_from_the_provisioned_datasource(name):
    board = json.loads(render(name))
    assert board["uid"] == f"salesguard-{name}" and board["title"].startswith("salesguard · ")
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    exprs = list(queries(board))
    assert exprs
    named = {metric for expr in exprs for metric in re.findall(r"\b(?:salesguard|faust)_[a-z_]+", expr)}
    assert named <= exported_names(), named - exported_names()
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == DATASOURCE.uid
            assert all(target["refId"] for target in panel["targets"])
