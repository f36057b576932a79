"""``salesguard bench`` on the real stack, small: every phase runs and every figure is reported
(the figures themselves are measured by the command, not asserted here)."""

import asyncio
import json
import os

import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient
from typer.testing import CliRunner

from streams.bench import BenchConfig, run_bench, run_topic
from streams.cli import cli

pytestmark = pytest.mark.integration


async def topics_named(bootstrap: str, run_id: str) -> list[str]:
    """The broker's topics that name bench run ``run_id``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return [name for name in await admin.list_topics() if run_topic(name, run_id)]
    finally:
        await admin.close()


def test_bench_runs_baseline_pipeline_and_latency_phases(settings, stack, tmp_path):
    logged: list[str] = []
    config = BenchConfig(events=8000, rate=150, duration_s=7, malformed=400)
    separate = settings.model_copy(update={"training": "separate"})  # as the command runs it by default
    result = asyncio.run(run_bench(separate, config, tmp_path, lambda text: None, logged.append,
                                   broker_pid=stack.broker.pid))
    assert [line.split(":")[0] for line in logged] == ["load", "baseline", "models", "pipeline", "latency", "cleanup"]
    # the broker is not the run's own (as a configured Kafka): the run's topics are deleted
    deleted = int(logged[-1].split()[1])
    assert deleted >= 11 + 2  # the input and output topics, and both groups' own
    assert asyncio.run(topics_named(settings.kafka_bootstrap, result["run_id"])) == []
    assert (result["events"], result["malformed"]) == (8400, 400)
    assert result["baseline_eps"] > 0 and result["pipeline_eps"] > 0
    assert result["ratio"] == round(result["pipeline_eps"] / result["baseline_eps"], 3)
    latency = result["latency_ms"]
    assert result["latency_orders"] > 50 and 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert result["latency_events"] == 1050 and result["latency_rate_eps"] == 150
    assert result["latency_duration_s"] == 7 and result["seed"] == 7
    until_acked = result["latency_until_acked_ms"]
    assert 0 <= until_acked["p50"] <= until_acked["p99"] and until_acked["p50"] < latency["p50"]
    # a decision is published after it is made (publish timestamps are whole milliseconds)
    until_decided = result["latency_until_decided_ms"]
    assert until_acked["p50"] < until_decided["p50"] <= latency["p50"] + 1
    assert until_decided["p99"] <= latency["p99"] + 1
    assert result["latency_cpu_s_per_1k"] > 0
    # the trainer process learns the backlog's examples while and after the input is processed;
    # its CPU counts with the worker's
    assert 0 <= result["training_tail_s"] <= result["events"] / result["pipeline_eps"]
    assert result["training"] == "separate" and 0 < result["trainer_cpu_s_per_1k"] < result["cpu_s_per_1k"]
    assert result["trainer_peak_rss_mb"] > 50
    assert "one_worker_training_tail_s" not in result and "scaling" not in result  # one worker: no scaling
    assert result["peak_rss_mb"] > result["baseline_peak_rss_mb"] > 50 and result["cpu_s_per_1k"] > 0
    assert result["broker_cpu_s_per_1k"] > 0 and result["baseline_broker_cpu_s_per_1k"] >= 0  # ticks of 10 ms
    # 7 s of load in 5-s slices: two of each (the broker's second slice ends with the load)
    slices = result["latency_p99_ms_by_slice"]
    assert result["latency_slice_s"] == 5 and len(slices) == 2
    assert min(slices) - 1 <= latency["p99"] <= max(slices) + 1  # the p99 of both lies between theirs
    assert len(result["broker_cores_by_slice"]) == 2 and all(0 < cores < 2 for cores in result["broker_cores_by_slice"])
    # how contended the cores were during the load: shares of the load's time, and cores' worth of waiting
    assert result["latency_cpu_pressure"] is None or 0 <= result["latency_cpu_pressure"] <= 1
    for waiting in ("workers", "trainer", "broker"):
        assert 0 <= result[f"latency_{waiting}_waiting_cores"] < os.cpu_count()


def test_bench_measures_the_scaling_over_pairs_of_phases(settings, stack, tmp_path):
    logged: list[str] = []
    # enough events for several scrapes per phase, also when the VM runs fast
    config = BenchConfig(events=30000, workers=2, rate=100, duration_s=2, repeat=2)
    result = asyncio.run(run_bench(settings, config, tmp_path, lambda text: None, logged.append))
    assert [line.split(":")[0] for line in logged] == [
        "load", "baseline", "one worker", "models", "pipeline", "latency",
        "pair 2, 2 workers", "pair 2, 1 worker", "cleanup"]  # the second pair in the other order
    (one, two), (one_again, two_again) = result["eps_by_pair"]
    assert (one, two) == (result["one_worker_eps"], result["pipeline_eps"])
    assert result["scaling_by_pair"] == [round(two / one, 3), round(two_again / one_again, 3)]
    assert result["scaling"] == round(sum(result["scaling_by_pair"]) / 2, 3)  # the median of two
    (one_cpu, two_cpu), (one_cpu_again, two_cpu_again) = result["cpu_s_per_1k_by_pair"]
    assert (one_cpu, two_cpu) == (result["one_worker_cpu_s_per_1k"], result["cpu_s_per_1k"])
    assert min(one_cpu, two_cpu, one_cpu_again, two_cpu_again) > 0
    assert result["workers"] == 2 and result["one_worker_training_tail_s"] >= 0
    assert result["training"] == "in-worker" and result["trainer_cpu_s_per_1k"] is None  # the workers train
    assert result["latency_trainer_waiting_cores"] is None and result["latency_workers_waiting_cores"] >= 0


def test_bench_measures_the_ratio_over_pairs_of_phases(settings, stack, tmp_path):
    logged: list[str] = []
    config = BenchConfig(events=20000, rate=100, duration_s=2, repeat=3, own_redis=True)
    result = asyncio.run(run_bench(settings, config, tmp_path, lambda text: None, logged.append))
    # each pipeline phase's Redis database (1; the pairs' 15 and 14) was emptied when it was done
    server = settings.redis_url.rsplit("/", 1)[0]
    sizes = []
    for db in (1, 15, 14):
        with redis.Redis.from_url(f"{server}/{db}") as client:
            sizes.append(client.dbsize())
    assert sizes == [0, 0, 0]
    assert [line.split(":")[0] for line in logged] == [
        "load", "baseline", "models", "pipeline", "latency",
        "pair 2, pipeline", "pair 2, baseline", "pair 3, baseline", "pair 3, pipeline",  # alternating order
        "cleanup"]
    pairs = result["baseline_pipeline_eps_by_pair"]
    assert len(pairs) == 3 and pairs[0] == [result["baseline_eps"], result["pipeline_eps"]]
    assert all(base > 0 and piped > 0 for base, piped in pairs)
    assert result["ratio_by_pair"] == [round(piped / base, 3) for base, piped in pairs]
    assert result["ratio"] == sorted(result["ratio_by_pair"])[1]  # the median of three
    cpu = result["baseline_pipeline_cpu_s_per_1k_by_pair"]
    assert len(cpu) == 3 and cpu[0] == [result["baseline_cpu_s_per_1k"], result["cpu_s_per_1k"]]
    assert all(base > 0 and piped > 0 for base, piped in cpu)
    assert "scaling" not in result


def test_broker_bench_prints_the_brokers_costs_at_each_step():
    result = CliRunner().invoke(cli, ["broker-bench", "--steps", "100,20"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["batches"] for line in lines] == [20, 100]
    assert all(line["fetch_ms"] > 0 and line["produce_broker_cpu_us"] >= 0 for line in lines)


def test_broker_bench_refuses_steps_that_are_not_counts():
    result = CliRunner().invoke(cli, ["broker-bench", "--steps", "100,many"])
    assert result.exit_code == 2 and "--steps must be comma-separated whole numbers" in result.output
