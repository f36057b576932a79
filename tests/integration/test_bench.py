"""``salesguard bench`` on the real stack, small: every phase runs and every figure is reported
(the figures themselves are measured by the command, not asserted here)."""

import asyncio

import pytest

from streams.bench import BenchConfig, run_bench

pytestmark = pytest.mark.integration


def test_bench_runs_baseline_pipeline_and_latency_phases(settings, tmp_path):
    logged: list[str] = []
    config = BenchConfig(events=8000, rate=150, duration_s=3, malformed=400)
    result = asyncio.run(run_bench(settings, config, tmp_path, lambda text: None, logged.append))
    assert [line.split(":")[0] for line in logged] == ["load", "baseline", "models", "pipeline", "latency"]
    assert (result["events"], result["malformed"]) == (8400, 400)
    assert result["baseline_eps"] > 0 and result["pipeline_eps"] > 0
    assert result["ratio"] == round(result["pipeline_eps"] / result["baseline_eps"], 3)
    latency = result["latency_ms"]
    assert result["latency_orders"] > 50 and 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert result["latency_events"] == 450 and result["latency_rate_eps"] == 150
    assert result["peak_rss_mb"] > result["baseline_peak_rss_mb"] > 50 and result["cpu_s_per_1k"] > 0
