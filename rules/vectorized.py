"""Conditions evaluated for many orders at once: a checked CEL tree (:mod:`rules.cel_ast`)
compiled into numpy operations over columns, one array per variable with one element per order.

The result is CEL's, not an approximation of it: every operation is taken by the overload the
CEL checker chose, and errors are tracked per order with CEL's rules (``&&`` / ``||`` absorb an
error when the other side decides; everything else passes it on; integer overflow, a double out
of ``int`` range are errors). What is not compiled here (regular expressions, unsigned or
integer division, maps, two-variable macros…) raises :class:`Unsupported`; the engine then
asks CEL's own runtime — per order, and only for the orders the rest of the condition does not
already rule out.

>>> from cel_expr_python import cel
>>> from rules.cel_ast import parse_checked
>>> env = cel.NewEnv(variables={"x": cel.Type.DOUBLE, "xs": cel.Type.List(cel.Type.DOUBLE)})
>>> rule = vectorize(parse_checked(env.compile("x > 1.0 && xs.exists(a, a > x)").serialize()), {"xs"})
>>> columns = {"x": np.array([2.0, 2.0, 0.5]), "xs": ragged([(3.0,), (1.0,), (3.0,)])}  # one order each
>>> matched, ask_cel = rule.evaluate(columns, 3)
>>> matched.tolist(), ask_cel.tolist()
([True, False, False], [False, False, False])
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from rules.cel_ast import Call, Comprehension, Const, Ident, ListOf, Node

_INT_MIN = np.int64(np.iinfo(np.int64).min)
_TWO_63 = 2.0**63


class Unsupported(Exception):
    """A construct this compiler does not vectorize (CEL's runtime evaluates it instead)."""


@dataclass(frozen=True)
class Ragged:
    """A list per order, stored flat: ``values[k]`` belongs to order ``owner[k]``."""

    values: np.ndarray
    owner: np.ndarray


def ragged(lists: Sequence[Sequence[float]]) -> Ragged:
    """Flatten one list of numbers per order.

    >>> ragged([(1.0, 2.0), (), (3.0,)]).owner.tolist()
    [0, 0, 2]
    """
    lengths = np.fromiter(map(len, lists), np.int64, len(lists))
    values = np.fromiter(chain.from_iterable(lists), np.float64, int(lengths.sum()))
    return Ragged(values, np.repeat(np.arange(len(lists)), lengths))


#: Values and error flags of an expression: ``values`` an array (or a scalar for constants, or
#: a :class:`Ragged`), ``errors`` a boolean array (or scalar), or None when nothing can fail.
Result = tuple[Any, Any]
#: An expression compiled: its result over ``n`` orders, given each variable's column (an array,
#: a :class:`Ragged` for lists, or a scalar when every order has the same value).
Evaluator = Callable[[Mapping[str, Any], int], Result]


def _errors(*flags: Any) -> Any:
    """Where any operand failed (None when none can have)."""
    present = [flag for flag in flags if flag is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else np.logical_or.reduce(np.broadcast_arrays(*present))


def _truthy(result: Result) -> Any:
    values, errors = result
    return values if errors is None else np.logical_and(values, np.logical_not(errors))


def _falsy(result: Result) -> Any:
    values, errors = result
    false = np.logical_not(values)
    return false if errors is None else np.logical_and(false, np.logical_not(errors))


def _and(left: Result, right: Result) -> Result:
    if left[1] is None and right[1] is None:
        return np.logical_and(left[0], right[0]), None
    false = np.logical_or(_falsy(left), _falsy(right))
    errors = _errors(left[1], right[1])
    return np.logical_and(left[0], right[0]), None if errors is None else np.logical_and(errors, ~false)


def _or(left: Result, right: Result) -> Result:
    if left[1] is None and right[1] is None:
        return np.logical_or(left[0], right[0]), None
    true = np.logical_or(_truthy(left), _truthy(right))
    errors = _errors(left[1], right[1])
    return true, None if errors is None else np.logical_and(errors, np.logical_not(true))


def _int64(value: Any) -> Any:
    return np.asarray(value, dtype=np.int64)


def _add_int(a: Any, b: Any) -> Result:
    a, b = _int64(a), _int64(b)
    out = a + b
    return out, ((a ^ out) & (b ^ out)) < 0


def _subtract_int(a: Any, b: Any) -> Result:
    a, b = _int64(a), _int64(b)
    out = a - b
    return out, ((a ^ b) & (a ^ out)) < 0


def _multiply_int(a: Any, b: Any) -> Result:
    a, b = _int64(a), _int64(b)
    out = a * b
    back = out // np.where(a == 0, 1, a)
    return out, (a != 0) & ((back != b) | ((a == -1) & (b == _INT_MIN)))


def _negate_int(a: Any) -> Result:
    a = _int64(a)
    return -a, a == _INT_MIN


def _double_to_int(a: Any) -> Result:
    a = np.asarray(a, dtype=np.float64)
    bad = ~((a > -_TWO_63) & (a < _TWO_63))  # NaN, infinities and beyond int64
    return np.trunc(np.where(bad, 0.0, a)).astype(np.int64), bad


def _strings(method: Callable[[str, str], bool]) -> Callable[[Any, Any], Result]:
    call = np.frompyfunc(method, 2, 1)

    def apply(a: Any, b: Any) -> Result:
        return np.asarray(call(a, b), dtype=bool), None
    return apply


def _string_size(a: Any) -> Result:
    return np.asarray(np.frompyfunc(len, 1, 1)(a), dtype=np.int64), None


#: Overloads that never fail, as numpy functions of their operands.
_TOTAL: dict[str, Callable[..., Any]] = {
    "add_double": np.add, "subtract_double": np.subtract, "multiply_double": np.multiply,
    "divide_double": np.divide, "negate_double": np.negative, "add_string": operator.add,
    "int64_to_double": lambda a: np.asarray(a, dtype=np.float64),
    "int64_to_int64": lambda a: a, "double_to_double": lambda a: a, "string_to_string": lambda a: a,
    "bool_to_bool": lambda a: a, "logical_not": np.logical_not,
}
for _kind in ("int64", "double", "string", "bool"):
    for _name, _compare in (("less", operator.lt), ("less_equals", operator.le), ("greater", operator.gt),
                            ("greater_equals", operator.ge)):
        _TOTAL[f"{_name}_{_kind}"] = _compare
#: Overloads that can fail: they return values and error flags.
_PARTIAL: dict[str, Callable[..., Result]] = {
    "add_int64": _add_int, "subtract_int64": _subtract_int, "multiply_int64": _multiply_int,
    "negate_int64": _negate_int, "double_to_int64": _double_to_int,
    "starts_with_string": _strings(str.startswith), "ends_with_string": _strings(str.endswith),
    "contains_string": _strings(str.__contains__), "size_string": _string_size, "string_size": _string_size,
}


class _Compiler:
    """Turns one condition's tree into an :data:`Evaluator`; ``lists`` are the variables that
    hold lists (as :class:`Ragged` columns)."""

    def __init__(self, lists: set[str]) -> None:
        self.lists = lists

    def compile(self, node: Node) -> Evaluator:
        if isinstance(node, Const):
            if not isinstance(node.value, (bool, int, float, str)):
                raise Unsupported(f"literal {node.value!r}")
            constant: Result = (node.value, None)
            return lambda columns, n: constant
        if isinstance(node, Ident):
            name = node.name
            return lambda columns, n: (columns[name], None)
        if isinstance(node, ListOf):
            return self._list(node)
        if isinstance(node, Comprehension):
            return self._comprehension(node)
        if isinstance(node, Call):
            return self._call(node)
        raise Unsupported(node.kind)

    def _is_list(self, node: Node) -> bool:
        return (isinstance(node, Ident) and node.name in self.lists or isinstance(node, (ListOf, Comprehension))
                or isinstance(node, Call) and node.overload == "add_list")

    def _call(self, node: Call) -> Evaluator:
        overload, args = node.overload, node.args
        if overload in ("equals", "not_equals"):
            if any(self._is_list(arg) for arg in args):
                raise Unsupported("comparing lists")
            return self._apply(operator.eq if overload == "equals" else operator.ne, args)
        if overload in _TOTAL:
            return self._apply(_TOTAL[overload], args)
        if overload in _PARTIAL:
            return self._apply_partial(_PARTIAL[overload], args)
        if overload in ("logical_and", "logical_or"):
            left, right = (self.compile(arg) for arg in args)
            combine = _and if overload == "logical_and" else _or
            return lambda columns, n: combine(left(columns, n), right(columns, n))
        if overload == "conditional":
            return self._conditional(*args)
        if overload in ("size_list", "list_size"):
            return self._list_size(args[0])
        if overload == "in_list":
            return self._in_list(*args)
        raise Unsupported(f"{node.function} ({overload or 'no overload'})")

    def _apply(self, function: Callable[..., Any], args: Sequence[Node]) -> Evaluator:
        operands = [self.compile(arg) for arg in args]
        if len(operands) == 2:  # most operators: without building lists per call
            first, second = operands

            def apply_two(columns: Mapping[str, Any], n: int) -> Result:
                (a, a_failed), (b, b_failed) = first(columns, n), second(columns, n)
                failed = a_failed if b_failed is None else b_failed if a_failed is None else a_failed | b_failed
                return function(a, b), failed
            return apply_two

        def apply(columns: Mapping[str, Any], n: int) -> Result:
            results = [operand(columns, n) for operand in operands]
            return function(*(values for values, _ in results)), _errors(*(errors for _, errors in results))
        return apply

    def _apply_partial(self, function: Callable[..., Result], args: Iterable[Node]) -> Evaluator:
        operands = [self.compile(arg) for arg in args]

        def apply(columns: Mapping[str, Any], n: int) -> Result:
            results = [operand(columns, n) for operand in operands]
            values, failed = function(*(values for values, _ in results))
            return values, _errors(failed, *(errors for _, errors in results))
        return apply

    def _conditional(self, test: Node, yes: Node, no: Node) -> Evaluator:
        if self._is_list(yes) or self._is_list(no):
            raise Unsupported("a list chosen by a condition")
        pick, first, second = self.compile(test), self.compile(yes), self.compile(no)

        def apply(columns: Mapping[str, Any], n: int) -> Result:
            (chosen, failed), (a, a_failed), (b, b_failed) = pick(columns, n), first(columns, n), second(columns, n)
            branch_failed = None if a_failed is None and b_failed is None else np.where(
                chosen, False if a_failed is None else a_failed, False if b_failed is None else b_failed)
            return np.where(chosen, a, b), _errors(failed, branch_failed)
        return apply

    def _list(self, node: ListOf) -> Evaluator:
        elements = [self.compile(element) for element in node.elements]
        width = len(elements)

        def apply(columns: Mapping[str, Any], n: int) -> Result:
            results = [element(columns, n) for element in elements]
            rows = [np.broadcast_to(values, (n,)) for values, _ in results]
            values = np.stack(rows, axis=1).ravel() if rows else np.empty(0)
            return Ragged(values, np.repeat(np.arange(n), width)), _errors(*(errors for _, errors in results))
        return apply

    def _list_size(self, node: Node) -> Evaluator:
        items = self.compile(node)

        def apply(columns: Mapping[str, Any], n: int) -> Result:
            listed, errors = items(columns, n)
            return np.bincount(listed.owner, minlength=n), errors
        return apply

    def _in_list(self, needle: Node, haystack: Node) -> Evaluator:
        if self._is_list(needle):
            raise Unsupported("a list in a list")
        find, items = self.compile(needle), self.compile(haystack)

        def apply(columns: Mapping[str, Any], n: int) -> Result:
            (wanted, wanted_failed), (listed, listed_failed) = find(columns, n), items(columns, n)
            wanted = np.broadcast_to(wanted, (n,))
            found = np.bincount(listed.owner[listed.values == wanted[listed.owner]], minlength=n) > 0
            return found, _errors(wanted_failed, listed_failed)
        return apply

    # --- macros ------------------------------------------------------------------------------

    def _comprehension(self, loop: Comprehension) -> Evaluator:
        """``exists``, ``all``, ``exists_one``, ``filter`` and ``map`` as CEL expands them."""
        accu, step, init = loop.accu_var, loop.loop_step, loop.accu_init
        result_is_accu = loop.result == Ident(accu)

        def is_accu(node: Node) -> bool:
            return node == Ident(accu)

        def fold(kind: str, body: Node, keep: Node | None = None) -> Evaluator:
            names = _names(body) | _names(keep)
            if accu in names:
                raise Unsupported("a macro whose body reads its accumulator")
            if names & self.lists:
                raise Unsupported("a macro whose body reads a list of the order")
            return self._fold(kind, loop.iter_var, self.compile(loop.iter_range), self.compile(body),
                              None if keep is None else self.compile(keep), names)

        if isinstance(step, Call) and step.overload in ("logical_or", "logical_and") and result_is_accu:
            body = step.args[1] if is_accu(step.args[0]) else step.args[0]
            if is_accu(step.args[0]) or is_accu(step.args[1]):
                if init == Const(False) and step.overload == "logical_or":
                    return fold("exists", body)
                if init == Const(True) and step.overload == "logical_and":
                    return fold("all", body)
        if isinstance(step, Call) and step.overload == "conditional" and init == Const(0) \
                and step.args[1] == Call("_+_", "add_int64", (Ident(accu), Const(1))) and is_accu(step.args[2]) \
                and loop.result == Call("_==_", "equals", (Ident(accu), Const(1))):
            return fold("exists_one", step.args[0])
        if init == ListOf(()) and result_is_accu:
            keep: Node | None = None
            if isinstance(step, Call) and step.overload == "conditional" and is_accu(step.args[2]):
                keep, step = step.args[0], step.args[1]
            if isinstance(step, Call) and step.overload == "add_list" and is_accu(step.args[0]) \
                    and isinstance(step.args[1], ListOf) and len(step.args[1].elements) == 1:
                return fold("map", step.args[1].elements[0], keep)
        raise Unsupported("a comprehension that is not a standard macro")

    @staticmethod
    def _fold(kind: str, variable: str, items: Evaluator, body: Evaluator, keep: Evaluator | None,
              names: set[str]) -> Evaluator:
        def apply(columns: Mapping[str, Any], n: int) -> Result:
            listed, listed_failed = items(columns, n)
            owner = listed.owner
            inner: dict[str, Any] = {name: _spread(columns[name], owner) for name in names if name in columns}
            inner[variable] = listed.values
            size = len(owner)
            if kind == "map":
                values, failed = body(inner, size)
                chosen: Any = True
                if keep is not None:
                    chosen, chose_failed = keep(inner, size)
                    failed = _errors(chose_failed, None if failed is None else np.logical_and(failed, chosen))
                chosen = np.broadcast_to(chosen, (size,))
                mapped = Ragged(np.broadcast_to(values, (size,))[chosen], owner[chosen])
                return mapped, _errors(listed_failed, _per_row(failed, owner, n))
            result = body(inner, size)
            failed = _per_row(result[1], owner, n)
            if kind == "exists":
                hit = _per_row(_truthy(result), owner, n)
                return hit, _errors(listed_failed, None if failed is None else failed & ~hit)
            if kind == "all":
                miss = _per_row(_falsy(result), owner, n)
                return ~miss, _errors(listed_failed, None if failed is None else failed & ~miss)
            count = np.bincount(owner[np.broadcast_to(_truthy(result), (size,))], minlength=n)  # exists_one
            return count == 1, _errors(listed_failed, failed)
        return apply


def _names(node: Node | None) -> set[str]:
    """The identifiers an expression reads."""
    if isinstance(node, Ident):
        return {node.name}
    if isinstance(node, Call):
        return set().union(*map(_names, node.args))
    if isinstance(node, ListOf):
        return set().union(*map(_names, node.elements))
    if isinstance(node, Comprehension):
        parts = (node.iter_range, node.accu_init, node.loop_condition, node.loop_step, node.result)
        return set().union(*map(_names, parts))
    return set()


def _spread(column: Any, owner: np.ndarray) -> Any:
    """An order's value repeated for each element of its list."""
    return column[owner] if isinstance(column, np.ndarray) and column.ndim else column


def _per_row(flags: Any, owner: np.ndarray, n: int) -> Any:
    """Whether any element of each order's list has the flag (None stays None)."""
    if flags is None:
        return None
    return np.bincount(owner[np.broadcast_to(flags, owner.shape)], minlength=n) > 0


def _column(flags: Any, n: int) -> np.ndarray:
    """Flags for ``n`` orders from an array or a scalar (a condition that is constant)."""
    if isinstance(flags, np.ndarray) and flags.shape == (n,):
        return flags
    return np.full(n, bool(flags))


def _conjuncts(node: Node) -> list[Node]:
    """``a && (b && c)`` as ``[a, b, c]``."""
    if isinstance(node, Call) and node.overload == "logical_and":
        return [part for arg in node.args for part in _conjuncts(arg)]
    return [node]


@dataclass(frozen=True)
class VectorRule:
    """One condition compiled for many orders. When a part of it could not be compiled
    (``complete`` is False), the compiled parts still rule orders out, and the rest are left
    to CEL's runtime."""

    parts: tuple[Evaluator, ...]
    complete: bool

    def evaluate(self, columns: Mapping[str, Any], n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(matched, ask_cel)`` per order: where ``ask_cel`` is set, the condition failed
        (an error, for which CEL gives the message) or needs CEL's runtime; elsewhere
        ``matched`` is the condition's value. Call it under ``np.errstate(all="ignore")``:
        IEEE results (inf, NaN) are CEL's too."""
        result: Result = (True, None)
        for k, part in enumerate(self.parts):
            result = part(columns, n) if k == 0 else _and(result, part(columns, n))
        if not self.complete:
            return np.zeros(n, dtype=bool), _column(np.logical_not(_falsy(result)), n)
        return _column(_truthy(result), n), np.zeros(n, dtype=bool) if result[1] is None else _column(result[1], n)


def vectorize(node: Node, lists: set[str]) -> VectorRule:
    """Compile a boolean condition; the parts of its top-level ``&&`` that cannot be compiled
    are left to CEL."""
    compiler = _Compiler(lists)
    parts: list[Evaluator] = []
    complete = True
    for conjunct in _conjuncts(node):
        try:
            parts.append(compiler.compile(conjunct))
        except Unsupported:
            complete = False
    return VectorRule(tuple(parts), complete)
