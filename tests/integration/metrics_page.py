"""Reading a worker's ``/metrics`` page in tests."""

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


async def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample on the page: (name, sorted labels) -> value."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict, name: str, **labels) -> float:
    """The sum of the samples called ``name`` that carry ``labels``."""
    return sum(value for (n, lbls), value in samples.items()
               if n == name and all((k, v) in lbls for k, v in labels.items()))
