"""How one rule reports a hit, prepared once per rulebook version: the variables it reads, its
message template with positional fields and how each reported value is shown. A batch's hits
of one rule are made from one list per variable, so formatting and reporting run as ``map``
over those lists rather than one dict and one ``format_map`` per hit.

>>> from rules.rulebook import RuleSpec
>>> maker = HitMaker(RuleSpec(id="OVER", when="true", action="hold", values=["limit"],
...                           message="{amount:,.2f} is over {limit:,.0f}."), {"amount": float, "limit": float})
>>> maker.names
('amount', 'limit')
>>> [hit.message for hit in maker.many([[1200.5, 50.0], [1000.0, 10.0]], 2)]
['1,200.50 is over 1,000.', '50.00 is over 10.']
>>> maker.one({"amount": 3.0, "limit": 2.0}.__getitem__).values
{'limit': 2.0}
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import repeat
from typing import Any

from rules.outcome import RuleHit
from rules.rulebook import RuleSpec


class HitMaker:
    """Makes the :class:`RuleHit` of one rule from the values of the variables it reads."""

    def __init__(self, rule: RuleSpec, types: dict[str, type]) -> None:
        self._template, fields = positional(rule.message)
        self.names: tuple[str, ...] = (*fields, *(name for name in rule.values if name not in fields))
        self._value_names = tuple(rule.values)
        self._reported = [(self.names.index(name), _REPORTED[types[name]]) for name in rule.values]
        self._fixed = (rule.reason or rule.id, rule.action, rule.remedy, rule.id)

    def many(self, values: Sequence[list[Any]], count: int) -> list[RuleHit]:
        """``count`` hits, ``values`` holding one list (of ``count`` values) per name in :attr:`names`."""
        code, action, remedy, rule_id = self._fixed
        messages = map(self._template.format, *values) if values else repeat(self._template, count)
        shown = (zip(*[report(values[position]) for position, report in self._reported], strict=True) if self._reported
                 else repeat((), count))
        reported = map(dict, map(zip, repeat(self._value_names), shown))
        return list(map(_new_hit, zip(repeat(code), repeat(action), messages, reported, repeat(remedy),
                                      repeat(rule_id))))

    def one(self, value_of: Callable[[str], Any]) -> RuleHit:
        """The hit of one order, ``value_of`` giving a variable's value by name."""
        return self.many([[value_of(name)] for name in self.names], 1)[0]


#: ``RuleHit`` from a tuple of all its fields, without the per-call cost of its Python ``__new__``
#: (what ``RuleHit._make`` does, less its length check).
_new_hit: Callable[[tuple[Any, ...]], RuleHit] = partial(tuple.__new__, RuleHit)


def positional(template: str) -> tuple[str, tuple[str, ...]]:
    """A template with named fields as one with numbered fields, and the names in that order.

    >>> positional("{a:,.2f} over {b!r}, {a} {{literal}}")
    ('{0:,.2f} over {1!r}, {0} {{literal}}', ('a', 'b'))
    """
    names: list[str] = []
    parts: list[str] = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        parts.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        if name not in names:
            names.append(name)
        field = str(names.index(name)) + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
        parts.append("{" + field + "}")
    return "".join(parts), tuple(names)


def _numbers(values: Iterable[tuple[float, ...]]) -> Iterable[str]:
    return (", ".join(f"{v:g}" for v in value) for value in values)


_FLAGS = {True: "true", False: "false"}

#: How a hit reports a variable's values, by the variable's type: numbers rounded to four
#: decimals, lists and booleans as text.
_REPORTED: dict[type, Callable[[list[Any]], Iterable[Any]]] = {
    float: lambda values: map(round, values, repeat(4)),
    int: lambda values: map(float, values),
    bool: lambda values: map(_FLAGS.__getitem__, values),
    str: lambda values: map(str, values),
    tuple: _numbers,
}
