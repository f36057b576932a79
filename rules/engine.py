"""A rulebook compiled once per version: every condition checked against the context's types
by CEL (Google's ``cel-expr-python``), then all enabled conditions compiled into one CEL list
expression, so deciding an order is one CEL evaluation over one activation.

>>> from rules.rulebook import parse_rulebook
>>> book = compile_rulebook(parse_rulebook({"name": "tiny", "rules": [
...     {"id": "OVER_LIMIT", "when": "exposure_after > credit_limit", "action": "hold",
...      "message": "Exposure after the order {exposure_after:,.2f} is over the limit {credit_limit:,.2f}.",
...      "values": ["exposure_after", "credit_limit"]}]}))
>>> verdict = book.evaluate(DecisionContext(order_amount=600.0, exposure=500.0, credit_limit=1000.0))
>>> verdict.outcome.value, verdict.hits[0].message
('hold', 'Exposure after the order 1,100.00 is over the limit 1,000.00.')
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import time
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel

from rules.context import CONTEXT_TYPES, DecisionContext
from rules.outcome import Outcome, RuleHit
from rules.rulebook import DERIVED_VARIABLES, Rulebook, RulebookError, RuleSpec, parse_rulebook

_CEL_TYPES = {float: cel.Type.DOUBLE, bool: cel.Type.BOOL, str: cel.Type.STRING, int: cel.Type.INT,
              tuple: cel.Type.List(cel.Type.DOUBLE)}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Verdict:
    """The outcome for one order, every enforced rule hit behind it (strongest first, then by
    priority) and the hits of shadow rules (which never change the outcome)."""

    outcome: Outcome
    hits: tuple[RuleHit, ...]
    shadow_hits: tuple[RuleHit, ...] = ()


#: A table as looked up per order: (variable, field, value per field value, default).
_TableLookup = tuple[str, str, dict[str, float], float]
#: A list as looked up per order: (variable, field, members).
_ListLookup = tuple[str, str, frozenset[str]]

#: Decided by no rule: the verdict of most orders, made once.
_APPROVED = Verdict(Outcome.APPROVE, ())
_ERROR = cel.Type.ERROR


class CompiledRulebook:
    """A validated rulebook ready to decide orders; ``version`` is recorded in decisions."""

    def __init__(self, book: Rulebook, version: str, rules: list[RuleSpec], program: Any, singles: list[Any],
                 env: Any, referenced: set[str]) -> None:
        self.book = book
        self.version = version
        self.rules = rules  #: the enabled rules, in rulebook order
        self._program = program  # all conditions as one CEL list
        self._singles = singles  # each condition alone: to find which one failed, and why
        self._env = env
        self._segments = [segment.model_dump(exclude_none=True) for segment in book.emergency.hold_segments]
        self._tables: list[_TableLookup] = [(name, t.by, t.values, t.default) for name, t in book.tables.items()]
        self._lists: list[_ListLookup] = [(name, named.of, frozenset(named.values))
                                          for name, named in book.lists.items()]
        # what one evaluation hands to CEL: only the variables some condition uses
        self._context_used = tuple(sorted(referenced & set(CONTEXT_TYPES)))
        self._sequences_used = tuple(n for n in self._context_used if CONTEXT_TYPES[n] is tuple)
        self._tables_used = [table for table in self._tables if table[0] in referenced]
        self._lists_used = [named for named in self._lists if named[0] in referenced]
        self._derived_used = referenced & set(DERIVED_VARIABLES)
        # what a hit's message and values may use beyond that
        self._tables_rest = [table for table in self._tables if table[0] not in referenced]
        self._lists_rest = [named for named in self._lists if named[0] not in referenced]
        self._derived_rest = set(DERIVED_VARIABLES) - referenced
        self.evaluations = 0
        self.seconds = 0.0

    def _derived(self, base: dict[str, Any], tables: list[_TableLookup], lists: list[_ListLookup],
                 derived: set[str]) -> dict[str, Any]:
        """Table values, list memberships and emergency variables for one order."""
        out: dict[str, Any] = {name: values.get(base[by], default) for name, by, values, default in tables}
        for name, by, members in lists:
            out[name] = base[by] in members
        emergency = self.book.emergency
        if "limit_factor" in derived:
            out["limit_factor"] = emergency.limit_factor if emergency.active else 1.0
        if "emergency_segment" in derived:
            out["emergency_segment"] = emergency.active and any(
                all(base[field] == wanted for field, wanted in segment.items()) for segment in self._segments)
        return out

    def evaluate(self, context: DecisionContext) -> Verdict:
        """Decide one order: approve when no enforced rule matches, else the strongest action.
        ``evaluations`` / ``seconds`` count the calls and the time they took."""
        started = time.perf_counter()
        verdict = self._evaluate(context)
        self.seconds += time.perf_counter() - started
        self.evaluations += 1
        return verdict

    def _evaluate(self, context: DecisionContext) -> Verdict:
        base = context.__dict__
        known = {name: base[name] for name in self._context_used}
        for name in self._sequences_used:
            known[name] = list(known[name])
        derived = self._derived(base, self._tables_used, self._lists_used, self._derived_used)
        known.update(derived)
        activation = self._env.Activation(known)
        flags = self._program.eval(activation).plain_value()  # the error's text when one failed
        errors: list[str | None] | None = None
        if type(flags) is not list:
            checked = [_one(single, activation) for single in self._singles]
            flags, errors = [matched for matched, _ in checked], [error for _, error in checked]
        elif True not in flags:
            return _APPROVED
        # every variable, for messages and reported values
        values = {**base, **derived, **self._derived(base, self._tables_rest, self._lists_rest, self._derived_rest)}
        hits: list[tuple[int, int, RuleHit]] = []
        shadow: list[RuleHit] = []
        for i, rule in enumerate(self.rules):
            error = errors[i] if errors else None
            if error is not None:
                hit = RuleHit("RULE_ERROR", Outcome.REVIEW, f"Rule {rule.id} could not be evaluated: {error}.",
                              {"rule": rule.id}, rule_id=rule.id)
            elif flags[i]:
                hit = RuleHit(rule.reason or rule.id, rule.action, rule.message.format_map(values),
                              {name: _reported(values[name]) for name in rule.values}, rule.remedy, rule.id)
            else:
                continue
            if rule.shadow:
                shadow.append(hit)
            else:
                hits.append((-hit.action.strength(), rule.priority if error is None else -1, hit))
        hits.sort(key=lambda item: item[:2])
        ordered = tuple(hit for *_, hit in hits)
        return Verdict(ordered[0].action if ordered else Outcome.APPROVE, ordered, tuple(shadow))



def _one(single: Any, activation: Any) -> tuple[bool, str | None]:
    """One condition alone, when the combined evaluation failed: whether it matched, or why it failed."""
    result = single.eval(activation)
    if result.type() == _ERROR:
        return False, str(result.value()).split(": ", 1)[-1]
    return bool(result.plain_value()), None


def _reported(value: Any) -> float | str | None:
    """A variable's value as a hit reports it: numbers rounded, lists and booleans as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return ", ".join(f"{v:g}" for v in value)
    return round(float(value), 4)


def _variable_types(book: Rulebook) -> dict[str, type]:
    return {**CONTEXT_TYPES, **DERIVED_VARIABLES, **{name: float for name in book.tables},
            **{name: bool for name in book.lists}}


def rulebook_digest(book: Rulebook) -> str:
    """A short content hash: the same rules give the same version label."""
    canonical = json.dumps(book.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()[:10]


def _condition_error(env: Any, when: str) -> str | None:
    """Why a condition cannot be used (syntax, unknown variable, types, not a bool), or None."""
    try:
        checked = env.compile(when)
    except RuntimeError as exc:  # "INVALID_ARGUMENT: ERROR: <input>:1:9: Syntax error: ...\n | source\n | ^"
        first = str(exc).replace("INVALID_ARGUMENT:", "").replace("ERROR: <input>:", "at ").strip().splitlines()[0]
        return " ".join(first.split())
    if checked.return_type() != cel.Type.BOOL:
        return f"must be true or false, is {checked.return_type()}"
    return None


def _env(types: dict[str, type]) -> Any:
    return cel.NewEnv(variables={name: _CEL_TYPES[kind] for name, kind in types.items()})


def compile_rulebook(book: Rulebook, version: str | None = None, source: str = "rulebook") -> CompiledRulebook:
    """Check every condition, template and reported value against the variables; raises
    :class:`RulebookError` listing every problem, each with its rule and field."""
    types = _variable_types(book)
    env = _env(types)
    errors: list[str] = []
    enabled = [(i, rule) for i, rule in enumerate(book.rules) if rule.enabled]
    for i, rule in enabled:
        at = f"rules[{i}] ({rule.id})"
        problem = _condition_error(env, rule.when)
        if problem:
            errors.append(f"{at}.when: {problem}")
        for _, name, _, _ in string.Formatter().parse(rule.message):
            if name is not None and name not in types:
                errors.append(f"{at}.message: unknown variable {{{name}}}")
        errors += [f"{at}.values: unknown variable {name!r}" for name in rule.values if name not in types]
    if not enabled:
        errors.append("rules: no rule is enabled")
    if errors:
        raise RulebookError(source, errors)
    rules = [rule for _, rule in enabled]
    program = env.compile("[" + ", ".join(f"({rule.when})" for rule in rules) + "]")
    singles = [env.compile(rule.when) for rule in rules]
    used = {token for rule in rules for token in _IDENTIFIER.findall(rule.when)} & set(types)
    return CompiledRulebook(book, version or f"{book.name}@{rulebook_digest(book)}", rules, program, singles, env,
                            used)


def compile_data(data: Any, version: str | None = None, source: str = "rulebook") -> CompiledRulebook:
    """Validate and compile a parsed rulebook file. When its fields are wrong, the conditions
    are checked too (as far as they can be), so one run lists every error."""
    try:
        book = parse_rulebook(data, source)
    except RulebookError as exc:
        raise RulebookError(source, _in_rule_order(exc.errors + _raw_condition_errors(data))) from None
    return compile_rulebook(book, version, source)


def _raw_condition_errors(data: Any) -> list[str]:
    """Condition errors and duplicate ids of a rulebook whose fields did not validate (best
    effort: the schema's own checks of the whole rulebook only run once its fields are right)."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        return []
    types: dict[str, type] = {**CONTEXT_TYPES, **DERIVED_VARIABLES}
    for section, kind in (("tables", float), ("lists", bool)):
        if isinstance(data.get(section), dict):
            types.update({str(name): kind for name in data[section] if str(name).isidentifier()})
    env = _env(types)
    errors = []
    ids = [rule.get("id") for rule in data["rules"] if isinstance(rule, dict)]
    errors += [f"rules: duplicate rule id {dup!r}" for dup in sorted({i for i in ids if ids.count(i) > 1 and i})]
    for i, rule in enumerate(data["rules"]):
        if isinstance(rule, dict) and isinstance(rule.get("when"), str) and rule.get("enabled", True) is not False:
            problem = _condition_error(env, rule["when"])
            if problem:
                errors.append(f"rules[{i}] ({rule.get('id', '?')}).when: {problem}")
    return errors


def _in_rule_order(errors: list[str]) -> list[str]:
    def rule_index(error: str) -> int:
        found = re.match(r"rules\[(\d+)\]", error)
        return int(found.group(1)) if found else -1
    return sorted(errors, key=rule_index)
