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
from collections import ChainMap
from collections.abc import Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np
from cel_expr_python import cel
from google.protobuf.message import DecodeError

from rules.cel_ast import parse_checked
from rules.context import CONTEXT_TYPES, DecisionContext
from rules.hits import HitMaker
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

#: Every field of a context, in :data:`CONTEXT_TYPES` order.
_EVERY_FIELD = attrgetter(*CONTEXT_TYPES)
#: Decided by no rule: the verdict of most orders, made once.
_APPROVED = Verdict(Outcome.APPROVE, ())
_ERROR = cel.Type.ERROR
#: Below this many orders, one CEL evaluation per order is cheaper than the array operations
#: (default rulebook, 3 Dec: the arrays ~150-250 µs per call of a few orders, CEL ~20-35 µs
#: per order; they break even at 7-8 orders). At a light steady load a batch holds few orders.
VECTOR_MIN = 8
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
        types = _variable_types(book)
        self._makers = [HitMaker(rule, types) for rule in rules]
        self._reads = [maker.names for maker in self._makers]
        # what one evaluation hands to CEL: the context variables some condition uses
        self._context_used = tuple(sorted(referenced & set(CONTEXT_TYPES)))
        self._sequences_used = tuple(n for n in self._context_used if CONTEXT_TYPES[n] is tuple)
        self._ranks = [(-rule.action.strength(), rule.priority) for rule in rules]  # strongest first
        # the derived variables (tables, lists, emergency) that conditions or hits read: made once per order
        wanted = referenced | {name for reads in self._reads for name in reads}
        self._tables_read: list[_TableLookup] = [(name, t.by, t.values, t.default)
                                                 for name, t in book.tables.items() if name in wanted]
        self._lists_read: list[_ListLookup] = [(name, named.of, frozenset(named.values))
                                               for name, named in book.lists.items() if name in wanted]
        self._derived_read = wanted & set(DERIVED_VARIABLES)
        # a batch: the variables the conditions read as columns, and the derived ones
        lists = {name for name, kind in CONTEXT_TYPES.items() if kind is tuple}
        self._vectors = [_vector(single, lists) for single in singles]
        keys = {by for _, by, _, _ in self._tables_read} | {of for _, of, _ in self._lists_read}
        if "emergency_segment" in self._derived_read:
            keys |= {field for segment in self._held_segments for field in segment}
        self._column_reads = [(name, CONTEXT_TYPES[name], attrgetter(name))
                              for name in sorted(set(self._context_used) | keys)]
        derived_names = ({table[0] for table in self._tables_read} | {named[0] for named in self._lists_read}
                         | self._derived_read)
        # how a batch gathers the values a rule's hits read: derived ones from the columns, the
        # rest from the contexts; enforced rules strongest first (a hit list needs no sort), then shadow rules
        self._gathers = [[(name, None) if name in derived_names else (name, attrgetter(name)) for name in reads]
                         for reads in self._reads]
        self._report_order = ([i for _, i in sorted((self._ranks[i], i) for i, rule in enumerate(rules)
                                                    if not rule.shadow)]
                              + [i for i, rule in enumerate(rules) if rule.shadow])
        self.evaluations = 0
        self.seconds = 0.0

    def _derived(self, base: dict[str, Any]) -> dict[str, Any]:
        """Table values, list memberships and emergency variables of one order (those read)."""
        out: dict[str, Any] = {name: values.get(base[by], default) for name, by, values, default in self._tables_read}
        for name, by, members in self._lists_read:
            out[name] = base[by] in members
        if "limit_factor" in self._derived_read:
            out["limit_factor"] = self._limit_factor
        if "emergency_segment" in self._derived_read:
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
        base = dict(zip(CONTEXT_TYPES, _EVERY_FIELD(context), strict=True))
        derived = self._derived(base)
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
        """Every rule over every order as array operations, then the hits of each rule for the
        orders it matched. An order that a rule leaves to CEL's runtime (an error to report, a
        function the arrays do not cover) is decided by CEL alone."""
        n = len(contexts)
        columns = self._columns(contexts)
        matched = np.empty((len(self.rules), n), dtype=bool)
        ask_cel = np.empty((len(self.rules), n), dtype=bool)
        with np.errstate(all="ignore"):  # IEEE results (inf, NaN) are CEL's too
            for i, vector in enumerate(self._vectors):
                matched[i], ask_cel[i] = vector.evaluate(columns, n)
        verdicts = [_APPROVED] * n
        for j in np.flatnonzero(ask_cel.any(axis=0)).tolist():
            verdicts[j] = self._evaluate(contexts[j])
            matched[:, j] = False
        enforced: dict[int, list[RuleHit]] = {}
        shadow: dict[int, list[RuleHit]] = {}
        for i in self._report_order:
            rows = np.flatnonzero(matched[i])
            if not rows.size:
                continue
            orders = rows.tolist()
            selected = list(map(contexts.__getitem__, orders))
            values = [list(map(read, selected)) if read else _at(columns[name], rows)
                      for name, read in self._gathers[i]]
            into = shadow if self.rules[i].shadow else enforced
            for j, hit in zip(orders, self._makers[i].many(values, len(orders)), strict=True):
                into.setdefault(j, []).append(hit)
        for j in enforced.keys() | shadow.keys():
            hits = tuple(enforced.get(j, ()))
            verdicts[j] = Verdict(hits[0].action if hits else Outcome.APPROVE, hits, tuple(shadow.get(j, ())))
        return verdicts

    def _columns(self, contexts: Sequence[DecisionContext]) -> dict[str, Any]:
        """The variables the conditions read, one column per variable, and the derived
        variables (tables, lists, emergency) that conditions or hits read."""
        n = len(contexts)
        columns: dict[str, Any] = {}
        texts: dict[str, list[str]] = {}
        for name, kind, read in self._column_reads:  # one pass over the orders per variable
            values = map(read, contexts)
            if kind in _COLUMN_TYPES:
                columns[name] = np.fromiter(values, _COLUMN_TYPES[kind], n)
            elif kind is tuple:
                columns[name] = ragged(list(values))
            else:
                texts[name] = list(values)
                columns[name] = np.array(texts[name], dtype=object)
        for name, by, table_values, default in self._tables_read:
            columns[name] = np.fromiter(map(table_values.get, texts[by], repeat(default)), np.float64, n)
        for name, by, members in self._lists_read:
            columns[name] = np.fromiter(map(members.__contains__, texts[by]), np.bool_, n)
        if "limit_factor" in self._derived_read:
            columns["limit_factor"] = self._limit_factor
        if "emergency_segment" in self._derived_read:
            held = np.zeros(n, dtype=bool)
            for segment in self._held_segments:
                held |= np.logical_and.reduce([columns[field] == wanted for field, wanted in segment.items()])
            columns["emergency_segment"] = held
        return columns

    def _verdict(self, base: dict[str, Any], derived: dict[str, Any], matched: list[int],
                 failed: dict[int, str]) -> Verdict:
        """The verdict from the rules that matched and those whose condition failed (and why)."""
        hits: list[tuple[tuple[int, int], RuleHit]] = []
        shadow: list[RuleHit] = []
        value_of = ChainMap(derived, base).__getitem__
        for i in sorted({*matched, *failed}) if failed else matched:
            rule = self.rules[i]
            error = failed.get(i)
            if error is not None:
                hit = RuleHit("RULE_ERROR", Outcome.REVIEW, f"Rule {rule.id} could not be evaluated: {error}.",
                              {"rule": rule.id}, rule_id=rule.id)
            else:
                hit = self._makers[i].one(value_of)
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


def _at(column: Any, rows: np.ndarray) -> list[Any]:
    """A column's values at some rows (a rulebook-wide constant is held as a scalar)."""
    return column[rows].tolist() if np.ndim(column) else [column] * len(rows)


def _one(single: Any, activation: Any) -> tuple[bool, str | None]:
    """One condition alone, when the combined evaluation failed: whether it matched, or why it failed."""
    result = single.eval(activation)
    if result.type() == _ERROR:
        return False, str(result.value()).split(": ", 1)[-1]
    return bool(result.plain_value()), None


def _template_names(template: str) -> set[str]:
    """The variables a message template names."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


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


#: A value of each variable type, to try a message template with.
_SAMPLES: dict[type, Any] = {float: 0.0, int: 0, bool: False, str: "", tuple: ()}


def _message_error(rule: RuleSpec, types: dict[str, type]) -> str | None:
    """Why a message template cannot format its variables (a format that does not suit the
    variable's type, such as ``{risk_class:.2f}``), or None."""
    try:
        HitMaker(rule, types).one(lambda name: _SAMPLES[types[name]])
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        return f"cannot be formatted: {exc}"
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
        unknown = [f"{at}.message: unknown variable {{{name}}}" for name in sorted(_template_names(rule.message))
                   if name not in types]
        unknown += [f"{at}.values: unknown variable {name!r}" for name in rule.values if name not in types]
        errors += unknown or [f"{at}.message: {problem}" for problem in [_message_error(rule, types)] if problem]
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
