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
    monkeypatch.setenv("SALESGUARD_LATE_PAYMENT_DAYS", "-1")
    result = runner.invoke(cli, ["worker"])
    assert result.exit_code == 2
    assert "SALESGUARD_BATCH_SIZE" in result.stderr and "SALESGUARD_LATE_PAYMENT_DAYS" in result.stderr


def test_configuration_errors_never_show_a_secret(monkeypatch):
    """A token that breaks a rule, a variable that is not JSON: the message names the variable,
    never the value."""
    secret = "s3cret-token-never-shown"
    monkeypatch.setenv("SALESGUARD_DESK_TOKENS", json.dumps([{"user": "a", "role": "chief", "token": secret}]))
    wrong_role = runner.invoke(cli, ["worker"])
    monkeypatch.setenv("SALESGUARD_DESK_TOKENS", json.dumps([{"user": "a", "role": "analyst", "token": secret}])[:-2])
    not_json = runner.invoke(cli, ["worker"])
    for result, why in ((wrong_role, "[0.role]"), (not_json, "not valid JSON")):
        assert result.exit_code == 2 and "SALESGUARD_DESK_TOKENS" in result.stderr and why in result.stderr
        assert secret not in result.stderr + result.stdout


def test_rules_validate_accepts_the_default_and_lists_every_error_of_a_bad_one(tmp_path):
    from rules import DEFAULT_RULEBOOK
    from tests import rulebooks

    good = runner.invoke(cli, ["rules", "validate", str(DEFAULT_RULEBOOK)])
    assert good.exit_code == 0 and "valid, version default@" in good.stdout
    data = rulebooks.changed(OVERDUE={"action": "escalate"}, VELOCITY_COUNT={"when": "orders_last_hour > 2.5"})
    data["rules"].append(dict(data["rules"][0]))
    bad = runner.invoke(cli, ["rules", "validate", str(rulebooks.write(tmp_path / "bad.yaml", data))])
    assert bad.exit_code == 2
    assert bad.stderr.splitlines()[1:] == [
        "  rules: duplicate rule id 'BLOCKED_CUSTOMER'",
        "  rules[9] (OVERDUE).action: Input should be 'approve', 'review', 'hold' or 'reject'",
        "  rules[11] (VELOCITY_COUNT).when: at 1:18: found no matching overload for '_>_' applied to '(int, double)'",
    ]


def test_rules_apply_refuses_an_invalid_rulebook_before_anything_is_published(tmp_path, monkeypatch):
    from tests import rulebooks

    monkeypatch.setenv("SALESGUARD_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # never reached
    bad = rulebooks.write(tmp_path / "bad.yaml", rulebooks.changed(OVERDUE={"when": "days_past_due > 1.5"}))
    result = runner.invoke(cli, ["rules", "apply", str(bad)])
    assert result.exit_code == 2 and "rules[9] (OVERDUE).when" in result.stderr


def test_a_worker_with_a_bad_rulebook_fails_fast(monkeypatch, tmp_path):
    (tmp_path / "r.yaml").write_text("name: x\nrules: []\n")
    monkeypatch.setenv("SALESGUARD_RULEBOOK", str(tmp_path / "r.yaml"))
    result = runner.invoke(cli, ["worker"])
    assert result.exit_code == 2 and "rules: List should have at least 1 item" in result.stderr


def test_worker_without_a_broker_says_what_to_set(monkeypatch):
    monkeypatch.delenv("SALESGUARD_KAFKA_BOOTSTRAP", raising=False)
    result = runner.invoke(cli, ["worker"])
    assert result.exit_code == 2 and "SALESGUARD_KAFKA_BOOTSTRAP" in result.stderr


def test_a_trainer_refuses_to_start_while_the_workers_train(monkeypatch):
    monkeypatch.delenv("SALESGUARD_TRAINING", raising=False)
    result = runner.invoke(cli, ["trainer"])
    assert result.exit_code == 2 and "SALESGUARD_TRAINING=separate" in result.stderr
    monkeypatch.setenv("SALESGUARD_TRAINING", "elsewhere")
    result = runner.invoke(cli, ["trainer"])
    assert result.exit_code == 2 and "SALESGUARD_TRAINING" in result.stderr and "in-worker" in result.stderr


def test_a_separate_trainer_and_its_workers_refuse_to_start_without_redis(monkeypatch):
    monkeypatch.setenv("SALESGUARD_TRAINING", "separate")
    monkeypatch.setenv("SALESGUARD_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.delenv("SALESGUARD_REDIS_URL", raising=False)
    for command in ("trainer", "worker"):
        result = runner.invoke(cli, [command])
        assert result.exit_code == 2 and "SALESGUARD_REDIS_URL is not set" in result.stderr


def test_evaluate_prints_one_json_line_per_seed_and_the_mean():
    result = runner.invoke(cli, ["evaluate", "--dataset", "german-credit", "--seed", "0", "--seed", "1"])
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line.get("seed") for line in lines[:2]] == [0, 1]
    assert {"dataset", "roc_auc", "log_loss", "us_per_event"} <= set(lines[0]) and "mean" in lines[2]


def test_evaluate_refuses_an_unknown_dataset():
    result = runner.invoke(cli, ["evaluate", "--dataset", "iris"])
    assert result.exit_code == 2 and "unknown dataset" in result.stderr
