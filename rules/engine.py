"""A rulebook compiled once per version: every condition checked against the context's types
by CEL (Google's ``cel-expr-python``), then compiled twice: all enabled conditions as one CEL
list expression, so deciding one order is one CEL evaluation over one activation; and each
condition's checked tree into numpy operations (:mod:`rules.vectorized`), so deciding a batch
of orders costs a few array operations per rule instead of one CEL evaluation per order.
Both give the same verdicts (the tests compare them); CEL's runtime stays the reference and
evaluates what the numpy compiler does not cover.

>>> from rules.rulebook import parse_rulebook
>>> book = compile_rulebook(parse_rulebook({"name": "tiny", "rules": [
...     {"id": "OVER_LIMIT", "when": "exposure_after > credit_limit", "action": "hold",
...      "message": "Exposure after the order {exposure_after:,.2f} is over the limit {credit_limit:,.2f}.",
...      "values": ["exposure_after", "credit_limit"]}]}))
>>> verdict = book.evaluate(DecisionContext(order_amount=600.0, exposure=500.0, credit_limit=1000.0))
>>> verdict.outcome.value, verdict.hits[0].message
('hold', 'Exposure after the order 1,100.00 is over the limit 1,000.00.')
>>> orders = [DecisionContext(order_amount=50.0 * i, exposure=500.0, credit_limit=1000.0) for i in range(20)]
>>> [verdict.outcome.value for verdict in book.evaluate_many(orders)][9:12]
['approve', 'approve', 'hold']
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import string
import time
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np
from cel_expr_python import cel
from google.protobuf.message import DecodeError

from rules.cel_ast import parse_checked
from rules.context import CONTEXT_TYPES, DecisionContext
from rules.outcome import Outcome, RuleHit
from rules.rulebook import DERIVED_VARIABLES, Rulebook, RulebookError, RuleSpec, parse_rulebook
from rules.vectorized import VectorRule, ragged, vectorize

_CEL_TYPES = {float: cel.Type.DOUBLE, bool: cel.Type.BOOL, str: cel.Type.STRING, int: cel.Type.INT,
              tuple: cel.Type.List(cel.Type.DOUBLE)}
log = logging.getLogger(__name__)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Verdict(NamedTuple):
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
#: Below this many orders, one CEL evaluation per order is cheaper than the array operations.
VECTOR_MIN = 4
#: Context types held in numeric columns (strings are object columns, lists ragged ones).
_COLUMN_TYPES: dict[type, Any] = {float: np.float64, int: np.int64, bool: np.bool_}


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
        emergency = book.emergency  # fixed per version: what it holds and how it scales limits
        self._held_segments = ([segment.model_dump(exclude_none=True) for segment in emergency.hold_segments]
                               if emergency.active else [])
        self._limit_factor = emergency.limit_factor if emergency.active else 1.0
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
        rest = {table[0] for table in self._tables_rest} | {named[0] for named in self._lists_rest} | self._derived_rest
        self._reads_rest = [bool(_template_names(rule.message) & rest or set(rule.values) & rest) for rule in rules]
        types = _variable_types(book)
        self._codes = [rule.reason or rule.id for rule in rules]
        self._ranks = [(-rule.action.strength(), rule.priority) for rule in rules]  # strongest first
        self._reads = [tuple(_template_names(rule.message) | set(rule.values)) for rule in rules]
        self._reports = [tuple((name, _REPORTED[types[name]]) for name in rule.values) for rule in rules]
        # what a batch reads from its contexts, as columns
        lists = {name for name, kind in CONTEXT_TYPES.items() if kind is tuple}
        self._vectors = [_vector(single, lists) for single in singles]
        keys = {by for _, by, _, _ in self._tables_used} | {of for _, of, _ in self._lists_used}
        if "emergency_segment" in self._derived_used:
            keys |= {field for segment in self._held_segments for field in segment}
        read = sorted(set(self._context_used) | keys)
        kinds = sorted({CONTEXT_TYPES[name] for name in read}, key=lambda kind: kind.__name__)
        self._column_groups = [(kind, names, attrgetter(*names)) for kind in kinds
                               for names in [tuple(name for name in read if CONTEXT_TYPES[name] is kind)]]
        self._derived_names = ([table[0] for table in self._tables_used] + [named[0] for named in self._lists_used]
                               + sorted(self._derived_used))
        self._reads_derived = [tuple(name for name in reads if name in self._derived_names) for reads in self._reads]
        self.evaluations = 0
        self.seconds = 0.0

    def _derived(self, base: dict[str, Any], tables: list[_TableLookup], lists: list[_ListLookup],
                 derived: set[str]) -> dict[str, Any]:
        """Table values, list memberships and emergency variables for one order."""
        out: dict[str, Any] = {name: values.get(base[by], default) for name, by, values, default in tables}
        for name, by, members in lists:
            out[name] = base[by] in members
        if "limit_factor" in derived:
            out["limit_factor"] = self._limit_factor
        if "emergency_segment" in derived:
            out["emergency_segment"] = any(
                all(base[field] == wanted for field, wanted in segment.items()) for segment in self._held_segments)
        return out

    def evaluate(self, context: DecisionContext) -> Verdict:
        """Decide one order: approve when no enforced rule matches, else the strongest action.
        ``evaluations`` / ``seconds`` count the orders decided and the time it took."""
        return self.evaluate_many([context])[0]

    def evaluate_many(self, contexts: Sequence[DecisionContext]) -> list[Verdict]:
        """Decide several orders at once: the same verdicts as :meth:`evaluate` one by one."""
        started = time.perf_counter()
        if len(contexts) < VECTOR_MIN:
            verdicts = [self._evaluate(context) for context in contexts]
        else:
            verdicts = self._evaluate_columns(contexts)
        self.seconds += time.perf_counter() - started
        self.evaluations += len(contexts)
        return verdicts

    def _activation(self, base: dict[str, Any], derived: dict[str, Any]) -> Any:
        known = {name: base[name] for name in self._context_used}
        for name in self._sequences_used:
            known[name] = list(known[name])
        known.update(derived)
        return self._env.Activation(known)

    def _evaluate(self, context: DecisionContext) -> Verdict:
        base = context.__dict__
        derived = self._derived(base, self._tables_used, self._lists_used, self._derived_used)
        activation = self._activation(base, derived)
        flags = self._program.eval(activation).plain_value()  # the error's text when one failed
        if type(flags) is not list:
            checked = [_one(single, activation) for single in self._singles]
            return self._verdict(base, derived, [i for i, (matched, _) in enumerate(checked) if matched],
                                 {i: error for i, (_, error) in enumerate(checked) if error is not None})
        if True not in flags:
            return _APPROVED
        return self._verdict(base, derived, [i for i, matched in enumerate(flags) if matched], {})

    def _evaluate_columns(self, contexts: Sequence[DecisionContext]) -> list[Verdict]:
        """Every rule over every order as array operations; orders that match a rule (or that
        a rule leaves to CEL's runtime) get their hits one by one."""
        n = len(contexts)
        columns = self._columns(contexts)
        matched = np.empty((n, len(self.rules)), dtype=bool)
        ask_cel = np.empty((n, len(self.rules)), dtype=bool)
        with np.errstate(all="ignore"):  # IEEE results (inf, NaN) are CEL's too
            for i, vector in enumerate(self._vectors):
                matched[:, i], ask_cel[:, i] = vector.evaluate(columns, n)
        verdicts = [_APPROVED] * n
        orders, rules = np.nonzero(matched | ask_cel)
        if not len(orders):
            return verdicts
        by_order: dict[int, list[int]] = {}
        for j, i in zip(orders.tolist(), rules.tolist(), strict=True):
            by_order.setdefault(j, []).append(i)
        derived_columns = {name: np.broadcast_to(columns[name], (n,)).tolist() for name in self._derived_names}
        asking = bool(ask_cel.any())
        for j, fired in by_order.items():
            base = contexts[j].__dict__
            failed: dict[int, str] = {}
            hits = fired
            if not (asking and ask_cel[j].any()):  # the derived values the hits' messages read
                derived = {name: derived_columns[name][j] for i in hits for name in self._reads_derived[i]}
            else:
                derived = {name: values[j] for name, values in derived_columns.items()}
                hits = [i for i in fired if matched[j, i]]
                activation = self._activation(base, derived)
                for i in fired:
                    if ask_cel[j, i]:
                        is_hit, error = _one(self._singles[i], activation)
                        if error is not None:
                            failed[i] = error
                        elif is_hit:
                            hits.append(i)
                hits.sort()
            if hits or failed:
                verdicts[j] = self._verdict(base, derived, hits, failed)
        return verdicts

    def _columns(self, contexts: Sequence[DecisionContext]) -> dict[str, Any]:
        """The variables the conditions read, one column per variable."""
        columns: dict[str, Any] = {}
        n = len(contexts)
        for kind, names, read in self._column_groups:  # one conversion per type
            rows = list(map(read, contexts))
            if kind in _COLUMN_TYPES:
                table = np.array(rows, dtype=_COLUMN_TYPES[kind]).reshape(n, len(names))
                columns.update((name, table[:, k]) for k, name in enumerate(names))
                continue
            for name, values in zip(names, zip(*rows, strict=True) if len(names) > 1 else [rows], strict=True):
                columns[name] = ragged(values) if kind is tuple else np.array(values, dtype=object)
        for name, by, table_values, default in self._tables_used:
            columns[name] = np.array([table_values.get(key, default) for key in columns[by]], dtype=np.float64)
        for name, by, members in self._lists_used:
            columns[name] = np.array([key in members for key in columns[by]], dtype=bool)
        if "limit_factor" in self._derived_used:
            columns["limit_factor"] = self._limit_factor
        if "emergency_segment" in self._derived_used:
            held = np.zeros(n, dtype=bool)
            for segment in self._held_segments:
                held |= np.logical_and.reduce([columns[field] == wanted for field, wanted in segment.items()])
            columns["emergency_segment"] = held
        return columns

    def _verdict(self, base: dict[str, Any], derived: dict[str, Any], matched: list[int],
                 failed: dict[int, str]) -> Verdict:
        """The verdict from the rules that matched and those whose condition failed (and why)."""
        if any(self._reads_rest[i] for i in matched):
            derived = {**derived, **self._derived(base, self._tables_rest, self._lists_rest, self._derived_rest)}
        hits: list[tuple[tuple[int, int], RuleHit]] = []
        shadow: list[RuleHit] = []
        for i in sorted({*matched, *failed}) if failed else matched:
            rule = self.rules[i]
            error = failed.get(i)
            if error is not None:
                hit = RuleHit("RULE_ERROR", Outcome.REVIEW, f"Rule {rule.id} could not be evaluated: {error}.",
                              {"rule": rule.id}, rule_id=rule.id)
            else:
                values = {name: derived[name] if name in derived else base[name] for name in self._reads[i]}
                hit = RuleHit(self._codes[i], rule.action, rule.message.format_map(values),
                              {name: report(values[name]) for name, report in self._reports[i]}, rule.remedy, rule.id)
            if rule.shadow:
                shadow.append(hit)
            else:
                hits.append(((-Outcome.REVIEW.strength(), -1) if error is not None else self._ranks[i], hit))
        if len(hits) > 1:
            hits.sort(key=lambda ranked: ranked[0])
        ordered = tuple(hit for _, hit in hits)
        return Verdict(ordered[0].action if ordered else Outcome.APPROVE, ordered, tuple(shadow))


def _vector(single: Any, lists: set[str]) -> VectorRule:
    """A condition compiled for batches; left to CEL as a whole when its checked tree cannot be
    read (a serialization this version does not know)."""
    try:
        tree = parse_checked(single.serialize())
    except (ValueError, KeyError, IndexError, DecodeError) as exc:
        log.warning("a condition is left to CEL for every order: its checked tree cannot be read (%s)", exc)
        return VectorRule((), complete=False)
    return vectorize(tree, lists)


def _one(single: Any, activation: Any) -> tuple[bool, str | None]:
    """One condition alone, when the combined evaluation failed: whether it matched, or why it failed."""
    result = single.eval(activation)
    if result.type() == _ERROR:
        return False, str(result.value()).split(": ", 1)[-1]
    return bool(result.plain_value()), None


def _template_names(template: str) -> set[str]:
    """The variables a message template names."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _number(value: float) -> float:
    return round(value, 4)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _numbers(value: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in value)


#: How a hit reports a variable's value, by the variable's type: numbers rounded, lists and
#: booleans as text.
_REPORTED: dict[type, Callable[[Any], float | str]] = {
    float: _number, int: float, bool: _flag, str: str, tuple: _numbers}


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
        errors += [f"{at}.message: unknown variable {{{name}}}" for name in sorted(_template_names(rule.message))
                   if name not in types]
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
