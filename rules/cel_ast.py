"""The type-checked syntax tree of a CEL condition, as Google's CEL checked it.

``cel-expr-python`` hands out a compiled expression only as a serialized ``cel.expr.CheckedExpr``
(protobuf). This module reads that message with protobuf's own wire-format parser (no schema
needed: the field numbers below are those of CEL's published ``syntax.proto`` / ``checked.proto``)
into small Python nodes. Each call carries the overload the checker chose (``greater_double``,
``add_int64``…), so whoever walks the tree knows each operation's exact types.

>>> from cel_expr_python import cel
>>> env = cel.NewEnv(variables={"x": cel.Type.DOUBLE})
>>> parse_checked(env.compile("x > 1.5").serialize())
Call(function='_>_', overload='greater_double', args=(Ident(name='x'), Const(value=1.5)))
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from google.protobuf import any_pb2, empty_pb2
from google.protobuf.unknown_fields import UnknownFieldSet


@dataclass(frozen=True)
class Const:
    """A literal: bool, int, float, str, bytes or None."""

    value: object


@dataclass(frozen=True)
class Ident:
    """A variable (of the rulebook, or of a comprehension)."""

    name: str


@dataclass(frozen=True)
class Call:
    """A function or operator; a method call's receiver is its first argument."""

    function: str
    overload: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class ListOf:
    """A list literal ``[a, b, …]``."""

    elements: tuple[Node, ...]


@dataclass(frozen=True)
class Comprehension:
    """A macro (``exists``, ``all``, ``filter``, ``map``…) as CEL expands it: a loop over
    ``iter_range`` that folds ``accu_var`` from ``accu_init`` by ``loop_step`` into ``result``."""

    iter_var: str
    iter_range: Node
    accu_var: str
    accu_init: Node
    loop_condition: Node
    loop_step: Node
    result: Node


@dataclass(frozen=True)
class Other:
    """Any other kind of expression (field selection, message or map literal)."""

    kind: str


Node = Const | Ident | Call | ListOf | Comprehension | Other

_CHECKED_EXPR = "type.googleapis.com/cel.expr.CheckedExpr"
# Field numbers of cel.expr (syntax.proto, checked.proto).
_CHECKED_REFERENCES, _CHECKED_EXPR_FIELD = 2, 4
_EXPR_ID, _EXPR_CONST, _EXPR_IDENT, _EXPR_SELECT, _EXPR_CALL, _EXPR_LIST, _EXPR_STRUCT, _EXPR_COMPREHENSION = (
    2, 3, 4, 5, 6, 7, 8, 9)
_CONST_NULL, _CONST_BOOL, _CONST_INT, _CONST_UINT, _CONST_DOUBLE, _CONST_STRING, _CONST_BYTES = 1, 2, 3, 4, 5, 6, 7
_CALL_TARGET, _CALL_FUNCTION, _CALL_ARGS = 1, 2, 3
_REFERENCE_OVERLOAD = 3


def _fields(data: bytes) -> dict[int, list[Any]]:
    """A message's fields by number, each with every value it has (in order)."""
    message = empty_pb2.Empty()
    message.ParseFromString(data)
    out: dict[int, list[Any]] = {}
    for item in UnknownFieldSet(message):
        out.setdefault(item.field_number, []).append(item.data)
    return out


def _text(data: bytes) -> str:
    return data.decode()


def _const(fields: dict[int, list[Any]]) -> Const:
    (number, (raw, *_)), = fields.items()
    if number == _CONST_NULL:
        return Const(None)
    if number == _CONST_BOOL:
        return Const(bool(raw))
    if number in (_CONST_INT, _CONST_UINT):
        return Const(raw - (1 << 64) if number == _CONST_INT and raw >= 1 << 63 else raw)
    if number == _CONST_DOUBLE:
        return Const(struct.unpack("<d", raw.to_bytes(8, "little"))[0])
    if number == _CONST_STRING:
        return Const(_text(raw))
    return Const(raw)


def _node(data: bytes, overloads: dict[int, str]) -> Node:
    fields = _fields(data)
    expr_id = fields[_EXPR_ID][0]

    def sub(raw: bytes) -> Node:
        return _node(raw, overloads)

    if _EXPR_CONST in fields:
        return _const(_fields(fields[_EXPR_CONST][0]))
    if _EXPR_IDENT in fields:
        return Ident(_text(_fields(fields[_EXPR_IDENT][0])[1][0]))
    if _EXPR_CALL in fields:
        call = _fields(fields[_EXPR_CALL][0])
        args = [sub(raw) for raw in call.get(_CALL_TARGET, []) + call.get(_CALL_ARGS, [])]
        return Call(_text(call[_CALL_FUNCTION][0]), overloads.get(expr_id, ""), tuple(args))
    if _EXPR_LIST in fields:
        return ListOf(tuple(sub(raw) for raw in _fields(fields[_EXPR_LIST][0]).get(1, [])))
    if _EXPR_COMPREHENSION in fields:
        loop = _fields(fields[_EXPR_COMPREHENSION][0])
        if 8 in loop:  # a second iteration variable (two-variable macros)
            return Other("comprehension over two variables")
        return Comprehension(_text(loop[1][0]), sub(loop[2][0]), _text(loop[3][0]), sub(loop[4][0]),
                             sub(loop[5][0]), sub(loop[6][0]), sub(loop[7][0]))
    return Other("field selection" if _EXPR_SELECT in fields else "message or map literal"
                 if _EXPR_STRUCT in fields else "unknown expression")


def parse_checked(serialized: bytes) -> Node:
    """The tree of a checked expression from ``Expression.serialize()``."""
    wrapper = any_pb2.Any()
    wrapper.ParseFromString(serialized)
    if wrapper.type_url != _CHECKED_EXPR:
        raise ValueError(f"not a checked CEL expression: {wrapper.type_url}")
    checked = _fields(wrapper.value)
    overloads: dict[int, str] = {}
    for entry in checked.get(_CHECKED_REFERENCES, []):
        pair = _fields(entry)
        reference = _fields(pair[2][0])
        if _REFERENCE_OVERLOAD in reference:
            overloads[pair[1][0]] = _text(reference[_REFERENCE_OVERLOAD][0])
    return _node(checked[_CHECKED_EXPR_FIELD][0], overloads)
