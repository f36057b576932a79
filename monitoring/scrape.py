"""Reading a worker's ``/metrics`` page (:func:`read_page`): its samples by name and labels, and quantiles of a
histogram between two scrapes (as PromQL's ``histogram_quantile`` over a ``rate``, but reported as
the bucket's upper edge rather than interpolated inside it).

>>> page = '''# TYPE d histogram
... d_bucket{le="0.05"} 8.0
... d_bucket{le="0.1"} 9.0
... d_bucket{le="+Inf"} 10.0
... d_count 10.0
... d_sum 0.9
... '''
>>> now = histogram_buckets(parse_samples(page), "d")
>>> now
{0.05: 8.0, 0.1: 9.0, inf: 10.0}
>>> quantile_bound(now, None, 0.5), quantile_bound(now, None, 0.9), quantile_bound(now, None, 0.99)
(0.05, 0.1, inf)
>>> before = {0.05: 8.0, 0.1: 8.0, float("inf"): 8.0}
>>> quantile_bound(now, before, 0.5), quantile_bound(now, now, 0.5)  # two observations since; none
(0.1, None)
"""

from __future__ import annotations

from collections import defaultdict

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

#: Every sample of a page, by name: its labels and value.
Samples = dict[str, list[tuple[dict[str, str], float]]]
#: A histogram's cumulative counts by bucket upper edge (``le``).
Buckets = dict[float, float]


def parse_samples(text: str) -> Samples:
    """Every sample of a Prometheus exposition, by name, with its labels (one parse of the page).

    >>> samples = parse_samples('x_total{k="a"} 1.0\\nx_total{k="b"} 2.5\\ny 5.0\\n')
    >>> sample_values(samples, "x_total"), sample_values(samples, "x_total", k="b"), sample_values(samples, "y")
    ([1.0, 2.5], [2.5], [5.0])
    """
    samples: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples


async def read_page(http: aiohttp.ClientSession, port: int) -> Samples:
    """The ``/metrics`` page of the worker serving on 127.0.0.1:``port``, parsed. Raises
    ``aiohttp.ClientError`` (or ``TimeoutError``) when it cannot be read."""
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        response.raise_for_status()
        return parse_samples(await response.text())


def sample_values(samples: Samples, name: str, **labels: str) -> list[float]:
    """The values of the samples called ``name`` that carry ``labels`` (all, without labels)."""
    return [value for carried, value in samples.get(name, ()) if labels.items() <= carried.items()]


def histogram_buckets(samples: Samples, name: str) -> Buckets:
    """The cumulative bucket counts of histogram ``name`` (summed over its other labels)."""
    buckets: Buckets = defaultdict(float)
    for labels, value in samples.get(f"{name}_bucket", ()):
        buckets[float(labels["le"])] += value
    return dict(sorted(buckets.items()))


def quantile_bound(now: Buckets, before: Buckets | None, q: float) -> float | None:
    """The upper edge of the bucket holding the ``q``-quantile of what was observed between the
    scrape ``before`` (None: since the start) and ``now``: the quantile is at most that. ``inf``
    when it lies above the last finite edge; None when nothing was observed in between."""
    counts = {edge: count - (before or {}).get(edge, 0.0) for edge, count in now.items()}
    total = counts.get(float("inf"), 0.0)
    if total <= 0:
        return None
    return next(edge for edge, count in sorted(counts.items()) if count >= q * total)
