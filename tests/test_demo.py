from rich.console import Console

from streams.demo import LATENCY_WINDOW_S, Tally, latency_text


def render(tally: Tally) -> str:
    console = Console(record=True, width=100)
    console.print(tally.table())
    return console.export_text()


def test_the_live_table_shows_the_latency_of_the_last_window_once_read_twice():
    tally = Tally()
    assert "decision latency" not in render(tally)
    earlier = {0.025: 10.0, 0.05: 10.0, 1.0: 10.0, float("inf"): 10.0}
    later = {0.025: 10.0, 0.05: 60.0, 1.0: 109.0, float("inf"): 110.0}  # 100 more: 50 ≤ 50 ms, 49 ≤ 1 s, 1 above
    tally.latency = latency_text(later, earlier)
    assert f"decision latency, last {LATENCY_WINDOW_S:.0f} s" in render(tally)
    assert "p50 ≤ 50 ms · p99 ≤ 1 s" in render(tally)
