"""Rulebooks for tests: the shipped default with some rules changed."""

from pathlib import Path
from typing import Any

import yaml

from rules import DEFAULT_RULEBOOK, CompiledRulebook, compile_data


def default_data() -> dict[str, Any]:
    """The default rulebook as parsed YAML (a fresh copy to change)."""
    return yaml.safe_load(DEFAULT_RULEBOOK.read_text())


def changed(**rules: dict[str, Any]) -> dict[str, Any]:
    """The default rulebook's data with fields of some rules replaced, by rule id:
    ``changed(ANOMALOUS_ORDER={"when": "anomaly_scored && anomaly_score >= 0.7"})``."""
    data = default_data()
    for rule in data["rules"]:
        rule.update(rules.get(rule["id"], {}))
    return data


def compiled(data: dict[str, Any]) -> CompiledRulebook:
    return compile_data(data)


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
