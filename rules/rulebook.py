"""The rulebook file: the risk team's limits as data (YAML), validated field by field.

A rulebook has rules (a CEL condition over the decision context, an action, a reason code, a
message template, a priority, enabled/shadow flags), tables (a number per value of a context
field, e.g. the credit-limit tolerance per risk class), lists (e.g. blocked customers) and an
emergency section (hold whole segments, tighten every limit). Tables, lists and the emergency
section become variables of the conditions, next to the context's own fields.

>>> book = Rulebook.model_validate({"name": "tiny", "rules": [
...     {"id": "ON_STOP", "when": "on_stop", "action": "hold", "message": "Customer is on stop."}]})
>>> book.rules[0].reason, book.rules[0].enabled, book.rules[0].shadow
('ON_STOP', True, False)
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from rules.context import CONTEXT_TYPES
from rules.outcome import Outcome

#: What a rule id, reason code, table or list name looks like.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)]

#: The risk transfers a hold can require before the order may ship.
Remedy = Literal["prepayment", "guarantee", "letter_of_credit", "credit_insurance"]

#: Context fields that segment customers (emergency holds, lists).
SegmentField = Literal["country", "industry", "channel", "risk_class", "customer_id", "salesperson_id"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleSpec(_Strict):
    """One rule. ``when`` is a CEL expression over the context; ``message`` a template whose
    ``{fields}`` are context variables (with Python format specs: ``{exposure_after:,.2f}``);
    ``values`` the variables reported with a hit. Among hits of equal strength, lower
    ``priority`` is listed first. A ``shadow`` rule is evaluated and reported, never decides."""

    id: Name
    description: str = ""
    when: str = Field(min_length=1)
    action: Outcome
    remedy: Remedy | None = None
    reason: Name | None = None
    message: str = Field(min_length=1)
    values: list[str] = Field(default_factory=list)
    priority: int = 100
    enabled: bool = True
    shadow: bool = False

    @model_validator(mode="after")
    def _defaults_and_remedy(self) -> RuleSpec:
        if self.remedy is not None and self.action is not Outcome.HOLD:
            raise ValueError(f"remedy {self.remedy!r} needs action 'hold', not {self.action.value!r}")
        if self.reason is None:
            object.__setattr__(self, "reason", self.id)
        return self

    @field_validator("message")
    @classmethod
    def _plain_fields(cls, message: str) -> str:
        for _, name, spec, _ in string.Formatter().parse(message):
            if name is not None and not name.isidentifier():
                raise ValueError(f"message field {{{name}}} must be a plain variable name")
            if spec and "{" in spec:
                raise ValueError(f"the format of message field {{{name}}} must not contain fields")
        return message


class Table(_Strict):
    """A number for each value of a context field, e.g. ``{by: risk_class, values: {A: 0.2},
    default: 0.0}``; the condition sees the number for this order's value."""

    by: SegmentField
    values: dict[str, float] = Field(default_factory=dict)
    default: float


class NamedList(_Strict):
    """Values of a context field, e.g. blocked customers; the condition sees whether this
    order's value is in it."""

    of: SegmentField
    values: list[str] = Field(default_factory=list)


class Segment(_Strict):
    """Orders whose fields all equal these values (an omitted field matches anything)."""

    country: str | None = None
    industry: str | None = None
    channel: str | None = None
    risk_class: str | None = None

    @model_validator(mode="after")
    def _not_everything(self) -> Segment:
        if not self.model_dump(exclude_none=True):
            raise ValueError("a segment needs at least one of country, industry, channel, risk_class")
        return self


class Emergency(_Strict):
    """Emergency mode: while ``active``, orders in ``hold_segments`` have
    ``emergency_segment = true`` and every limit is multiplied by ``limit_factor``."""

    active: bool = False
    hold_segments: list[Segment] = Field(default_factory=list)
    limit_factor: float = Field(default=1.0, gt=0, le=1)


class Rulebook(_Strict):
    """A whole rulebook, as the risk team writes it."""

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    tables: dict[Name, Table] = Field(default_factory=dict)
    lists: dict[Name, NamedList] = Field(default_factory=dict)
    emergency: Emergency = Emergency()
    rules: list[RuleSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Rulebook:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        for name in [*self.tables, *self.lists]:
            if name in CONTEXT_TYPES or name in DERIVED_VARIABLES:
                raise ValueError(f"table or list {name!r} has the name of a context variable")
        both = set(self.tables) & set(self.lists)
        if both:
            raise ValueError(f"{sorted(both)} named both as a table and as a list")
        return self


#: Variables the rulebook itself adds to every context.
DERIVED_VARIABLES: dict[str, type] = {"emergency_segment": bool, "limit_factor": float}


class RulebookError(Exception):
    """A rulebook that cannot be used; ``errors`` are one line each, naming the rule and field."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} error(s)\n" + "\n".join(f"  {e}" for e in errors))


def where(rules: list[Any] | None, loc: tuple[int | str, ...]) -> str:
    """``rules[2] (CREDIT_LIMIT).when`` for a pydantic location, naming the rule by its id."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            label = f"[{part}]"
            if loc[:i] == ("rules",) and rules is not None and part < len(rules) and isinstance(rules[part], Mapping):
                label += f" ({rules[part].get('id', '?')})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(rulebook)"


def parse_rulebook(data: Any, source: str = "rulebook") -> Rulebook:
    """A :class:`Rulebook` from parsed YAML; raises :class:`RulebookError` with every error."""
    try:
        return Rulebook.model_validate(data)
    except ValidationError as exc:
        rules = data.get("rules") if isinstance(data, Mapping) and isinstance(data.get("rules"), list) else None
        errors = [f"{where(rules, tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise RulebookError(source, errors) from None


def read_data(path: Path) -> Any:
    """A rulebook file's YAML, parsed (not validated)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulebookError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise RulebookError(str(path), [" ".join(f"not valid YAML: {exc}".split())]) from None


def read_rulebook(path: Path) -> Rulebook:
    """Read and validate a rulebook file (conditions are checked when it is compiled)."""
    return parse_rulebook(read_data(path), str(path))
