import json

from typer.testing import CliRunner

from streams.cli import cli

runner = CliRunner()


def test_schemas_prints_every_contract():
    result = runner.invoke(cli, ["schemas"])
    assert result.exit_code == 0
    assert set(json.loads(result.stdout)) >= {"orders", "decisions", "dead-letters"}


def test_schemas_of_an_unknown_topic_fails_clearly():
    result = runner.invoke(cli, ["schemas", "nope"])
    assert result.exit_code == 2 and "unknown topic 'nope'" in result.stderr


def test_bad_configuration_fails_fast_naming_the_variable(monkeypatch):
    monkeypatch.setenv("SALESGUARD_BATCH_SIZE", "lots")
    monkeypatch.setenv("SALESGUARD_OVERDUE_HOLD_DAYS", "0")
    result = runner.invoke(cli, ["worker"])
    assert result.exit_code == 2
    assert "SALESGUARD_BATCH_SIZE" in result.stderr and "SALESGUARD_OVERDUE_HOLD_DAYS" in result.stderr


def test_worker_without_a_broker_says_what_to_set(monkeypatch):
    monkeypatch.delenv("SALESGUARD_KAFKA_BOOTSTRAP", raising=False)
    result = runner.invoke(cli, ["worker"])
    assert result.exit_code == 2 and "SALESGUARD_KAFKA_BOOTSTRAP" in result.stderr


def test_evaluate_prints_one_json_line_per_seed_and_the_mean():
    result = runner.invoke(cli, ["evaluate", "--dataset", "german-credit", "--seed", "0", "--seed", "1"])
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line.get("seed") for line in lines[:2]] == [0, 1]
    assert {"dataset", "roc_auc", "log_loss", "us_per_event"} <= set(lines[0]) and "mean" in lines[2]


def test_evaluate_refuses_an_unknown_dataset():
    result = runner.invoke(cli, ["evaluate", "--dataset", "iris"])
    assert result.exit_code == 2 and "unknown dataset" in result.stderr
