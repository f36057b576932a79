"""docker-compose.yml, checked by parsing (no Docker engine on these machines)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streams.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
#: The compose file as `docker compose` reads it with nothing set: ``${VAR:-default}`` -> default.
COMPOSE = yaml.safe_load(re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", (ROOT / "docker-compose.yml").read_text()))


def test_services_of_the_production_layout_are_there():
    assert {"kafka", "redis", "worker-1", "worker-2", "trainer", "generator", "prometheus"} <= set(COMPOSE["services"])


def test_the_trainer_learns_in_a_process_of_its_own_and_the_workers_only_score():
    services = COMPOSE["services"]
    assert services["trainer"]["command"] == ["salesguard", "trainer"]
    for name in ("worker-1", "worker-2", "trainer"):
        assert Settings(training=services[name]["environment"]["SALESGUARD_TRAINING"]).training == "separate"


def test_workers_get_only_settings_that_exist_and_that_validate():
    for name in ("worker-1", "worker-2", "trainer", "generator"):
        env = COMPOSE["services"][name]["environment"]
        unknown = [k for k in env if k.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields]
        assert unknown == []
        settings = Settings(**{k.removeprefix(ENV_PREFIX).lower(): v for k, v in env.items()})
        assert settings.kafka_bootstrap == "kafka:9092" and settings.redis_url.startswith("redis://redis:")


def test_workers_and_the_trainer_wait_for_healthy_kafka_and_redis_and_workers_expose_distinct_ports():
    ports = set()
    for name in ("worker-1", "worker-2", "trainer"):
        service = COMPOSE["services"][name]
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        ports.update(p.split(":")[0] for p in service.get("ports", []))
    assert len(ports) == 2


def test_prometheus_scrapes_every_worker_and_the_trainer_on_their_web_port_and_loads_the_alert_rules():
    service = COMPOSE["services"]["prometheus"]
    mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"] if volume.startswith("./")}
    config_file = next(arg.split("=", 1)[1] for arg in service["command"] if arg.startswith("--config.file="))
    config_dir = ROOT / mounted[str(Path(config_file).parent)]
    config = yaml.safe_load((config_dir / Path(config_file).name).read_text())
    targets = {target for job in config["scrape_configs"] for group in job["static_configs"]
               for target in group["targets"]}
    workers = [name for name in COMPOSE["services"] if name.startswith("worker-")] + ["trainer"]
    port = COMPOSE["services"]["worker-1"]["environment"]["SALESGUARD_WEB_PORT"]
    assert targets == {f"{name}:{port}" for name in workers}
    assert "alerts.yml" in config["rule_files"]
    assert all((config_dir / rules).is_file() for rules in config["rule_files"])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_accepts_the_prometheus_configuration():
    result = subprocess.run(["promtool", "check", "config", "prometheus.yml"], cwd=ROOT / "monitoring" / "prometheus",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_is_provisioned_with_the_prometheus_datasource_and_the_generated_dashboards():
    from monitoring.dashboards import DASHBOARDS, DATASOURCE

    service = COMPOSE["services"]["grafana"]
    mounted = {volume.split(":")[1]: ROOT / volume.split(":")[0] for volume in service["volumes"]}
    provisioning = mounted["/etc/grafana/provisioning"]
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    prometheus_port = COMPOSE["services"]["prometheus"]["ports"][0].split(":")[1]
    assert source["uid"] == DATASOURCE.uid and source["url"] == f"http://prometheus:{prometheus_port}"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "salesguard.yml").read_text())["providers"]
    dashboards = mounted[provider["options"]["path"]]
    assert {path.stem for path in dashboards.glob("*.json")} == set(DASHBOARDS)
