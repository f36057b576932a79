"""docker-compose.yml, checked by parsing (no Docker engine on these machines)."""

from pathlib import Path

import yaml

from streams.settings import ENV_PREFIX, Settings

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[1] / "docker-compose.yml").read_text())


def test_services_of_the_production_layout_are_there():
    assert {"kafka", "redis", "worker-1", "worker-2", "generator"} <= set(COMPOSE["services"])


def test_workers_get_only_settings_that_exist_and_that_validate():
    for name in ("worker-1", "worker-2", "generator"):
        env = COMPOSE["services"][name]["environment"]
        unknown = [k for k in env if k.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields]
        assert unknown == []
        settings = Settings(**{k.removeprefix(ENV_PREFIX).lower(): v for k, v in env.items()})
        assert settings.kafka_bootstrap == "kafka:9092" and settings.redis_url.startswith("redis://redis:")


def test_workers_wait_for_healthy_kafka_and_redis_and_expose_distinct_ports():
    ports = set()
    for name in ("worker-1", "worker-2"):
        service = COMPOSE["services"][name]
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        ports.update(p.split(":")[0] for p in service["ports"])
    assert len(ports) == 2
