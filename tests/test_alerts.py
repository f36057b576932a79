"""Prometheus alert rules: valid (`promtool check rules`), each with unit tests that pass
(`promtool test rules`), and every metric they name is one the workers export."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from monitoring.metrics import faust_metrics

RULES = Path(__file__).resolve().parents[1] / "monitoring" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it)")


def exported_names() -> set[str]:
    """Every series name the workers' metrics can produce (ours and Faust's)."""
    faust_metrics()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""], "info": ["_info"],
                "summary": ["_count", "_sum", ""]}
    return {metric.name + suffix for metric in REGISTRY.collect() for suffix in suffixes.get(metric.type, [""])}


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load((RULES / "alerts.yml").read_text())["groups"] for rule in group["rules"]]


@needs_promtool
def test_promtool_checks_the_rules():
    result = subprocess.run([PROMTOOL, "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_alerts_pass():
    result = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_and_names_only_exported_metrics():
    tests = yaml.safe_load((RULES / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert {rule["alert"] for rule in alerts()} == tested
    named = {name for rule in alerts() for name in re.findall(r"\b(?:salesguard|faust)_[a-z_]+", rule["expr"])}
    assert named and named <= exported_names(), named - exported_names()
