"""Money in the base currency as integer cents: exact sums, no float drift in exposure."""

from __future__ import annotations

from collections.abc import Mapping


class UnknownCurrency(ValueError):
    """An event names a currency for which no rate is configured."""


class Converter:
    """Converts amounts to integer cents of the base currency at configured rates.

    >>> to_base = Converter({"EUR": 1.0, "USD": 0.5})
    >>> to_base.cents(10.0, "USD"), to_base.cents(0.1, "EUR") + to_base.cents(0.2, "EUR")
    (500, 30)
    >>> to_base.cents(1.0, "XXX")
    Traceback (most recent call last):
    ...
    streams.money.UnknownCurrency: unknown currency 'XXX' (configured: EUR, USD)
    """

    def __init__(self, rates: Mapping[str, float]) -> None:
        self._cents_per_unit = {code: rate * 100.0 for code, rate in rates.items()}

    def knows(self, currency: str) -> bool:
        """True when a rate for ``currency`` is configured."""
        return currency in self._cents_per_unit

    def cents(self, amount: float, currency: str) -> int:
        """``amount`` of ``currency`` as base-currency cents, rounded half to even."""
        try:
            return round(amount * self._cents_per_unit[currency])
        except KeyError:
            known = ", ".join(sorted(self._cents_per_unit))
            raise UnknownCurrency(f"unknown currency {currency!r} (configured: {known})") from None


def units(cents: int) -> float:
    """Cents back to currency units for output (``1234 -> 12.34``)."""
    return cents / 100.0
