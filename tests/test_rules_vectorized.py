"""Deciding a batch with array operations gives exactly the verdicts of CEL's own runtime, one
order at a time: for the default rulebook, and for random conditions over every operation the
compiler covers (and some it leaves to CEL), on values at the edges (limits, NaN, infinities,
int64 overflow)."""

import math
from typing import Any

import numpy as np
from cel_expr_python import cel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import DecisionContext, default_rulebook
from rules.cel_ast import parse_checked
from rules.engine import _vector, compile_rulebook
from rules.rulebook import parse_rulebook
from rules.vectorized import vectorize
from streams.app import pipeline_config
from streams.generator import SalesSimulator
from streams.pipeline import Pipeline, RawMessage
from streams.settings import Settings
from tests import rulebooks

BOOK = default_rulebook()

DOUBLES = ("order_amount", "exposure", "credit_limit", "max_discount", "anomaly_score", "max_order", "limit_factor")
INTS = ("days_past_due", "orders_last_hour", "payment_terms_days", "previous_orders")
STRINGS = ("risk_class", "country", "customer_id")
BOOLS = ("customer_known", "on_stop", "anomaly_scored")
EDGE_DOUBLES = (0.0, -0.0, 1.0, -1.5, 0.8, 1000.0, 20000.0, 20000.01, 1e300, -1e300, 9.223372036854775807e18,
                -9.223372036854775807e18, math.inf, -math.inf, math.nan)
EDGE_INTS = (0, 1, -1, 3, 5, 30, 31, 2**62, 2**63 - 1, -(2**63) + 1, -(2**63))
TEXTS = ("", "A", "B", "E", "DE", "RU", "é", "AB", "C1")


def contexts(draw_values: st.DrawFn, n: int) -> list[DecisionContext]:
    out = []
    facts: dict[str, Any]
    for _ in range(n):
        facts = {name: draw_values(st.sampled_from(EDGE_DOUBLES) | st.floats(-1e6, 1e6))
                 for name in ("order_amount", "exposure", "credit_limit", "max_discount", "anomaly_score",
                              "overdue_amount", "amount_last_day", "late_payment_probability")}
        facts |= {name: draw_values(st.sampled_from(EDGE_INTS) | st.integers(-100, 100))
                  for name in ("days_past_due", "orders_last_hour", "payment_terms_days", "previous_orders")}
        facts |= {name: draw_values(st.sampled_from(TEXTS)) for name in ("risk_class", "country", "customer_id",
                                                                          "salesperson_id", "industry", "channel")}
        facts |= {name: draw_values(st.booleans()) for name in ("customer_known", "on_stop", "anomaly_scored",
                                                                 "late_payment_scored")}
        facts["recent_order_amounts"] = tuple(draw_values(st.lists(st.sampled_from(EDGE_DOUBLES), max_size=4)))
        out.append(DecisionContext(**facts))
    return out


@st.composite
def batches(draw: st.DrawFn, low: int = 1, high: int = 40) -> list[DecisionContext]:
    return contexts(draw, draw(st.integers(low, high)))


def _leaf(kind: str) -> st.SearchStrategy[str]:
    literals = {
        "double": st.sampled_from(["0.0", "1.0", "-1.5", "0.8", "20000.0", "1e300", "9.223372036854775807e18"]),
        "int": st.sampled_from(["0", "1", "-1", "30", "9223372036854775807", "-9223372036854775807"]),
        "string": st.sampled_from(['""', '"A"', '"DE"', '"é"']),
        "bool": st.sampled_from(["true", "false"]),
    }[kind]
    names = {"double": DOUBLES, "int": INTS, "string": STRINGS, "bool": BOOLS}[kind]
    return st.sampled_from(names) | literals


def expression(kind: str, depth: int) -> st.SearchStrategy[str]:
    """A random, well-typed CEL expression of ``kind``."""
    if depth == 0:
        return _leaf(kind)
    sub = lambda k: expression(k, depth - 1)  # noqa: E731
    pair = lambda k, fmt: st.tuples(sub(k), sub(k)).map(lambda ab: fmt.format(*ab))  # noqa: E731
    options: list[st.SearchStrategy[str]] = [_leaf(kind)]
    options.append(st.tuples(sub("bool"), sub(kind), sub(kind)).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"))
    if kind == "bool":
        for compared in ("double", "int", "string", "bool"):
            options.append(st.tuples(sub(compared), st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
                                     sub(compared)).map(lambda t: f"({t[0]} {t[1]} {t[2]})"))
        options += [pair("bool", "({} && {})"), pair("bool", "({} || {})"), sub("bool").map(lambda a: f"!{a}"),
                    sub("string").map(lambda s: f'({s} in ["A", "DE", ""])'),
                    sub("double").map(lambda d: f"({d} in recent_order_amounts)"),
                    sub("double").map(lambda d: f"recent_order_amounts.exists(a, a > {d})"),
                    sub("double").map(lambda d: f"recent_order_amounts.all(a, a >= {d})"),
                    sub("double").map(lambda d: f"recent_order_amounts.exists_one(a, a == {d})"),
                    sub("string").map(lambda s: f'{s}.startsWith("A")'),
                    sub("string").map(lambda s: f'{s}.endsWith("E")'),
                    sub("string").map(lambda s: f'{s}.contains("")'),
                    sub("string").map(lambda s: f'{s}.matches("^[A-D]$")')]  # left to CEL
    elif kind == "double":
        options += [pair("double", "({} + {})"), pair("double", "({} - {})"), pair("double", "({} * {})"),
                    pair("double", "({} / {})"), sub("double").map(lambda a: f"-{a}"),
                    sub("int").map(lambda i: f"double({i})")]
    elif kind == "int":
        options += [pair("int", "({} + {})"), pair("int", "({} - {})"), pair("int", "({} * {})"),
                    sub("int").map(lambda a: f"-({a})"), sub("double").map(lambda d: f"int({d})"),
                    sub("string").map(lambda s: f"size({s})"),
                    sub("double").map(lambda d: f"recent_order_amounts.filter(a, a < {d}).size()"),
                    sub("double").map(lambda d: f"recent_order_amounts.map(a, a * {d}).size()"),
                    pair("int", "({} / {})"), pair("int", "({} % {})")]  # left to CEL
    elif kind == "string":
        options.append(pair("string", "({} + {})"))
    return st.one_of(options)


def one_rule(condition: str):
    data = rulebooks.default_data()
    data["rules"] = [{"id": "RANDOM", "when": condition, "action": "hold", "message": "matched",
                      "values": ["order_amount"]}]
    return compile_rulebook(parse_rulebook(data))


def same(verdicts, expected) -> bool:
    return repr(verdicts) == repr(expected)  # NaN values are equal here


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(condition=expression("bool", 3), batch=batches(8, 24))
def test_random_conditions_decide_as_cel_does(condition, batch):
    book = one_rule(condition)
    assert same(book.evaluate_many(batch), [book.evaluate(context) for context in batch]), condition


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches())
def test_default_rulebook_batches_decide_as_one_at_a_time(batch):
    assert same(BOOK.evaluate_many(batch), [BOOK.evaluate(context) for context in batch])


def test_recorded_traffic_decides_the_same_in_batches():
    messages = list(SalesSimulator(seed=11, total_events=1500))
    contexts = []
    recorder = Pipeline(pipeline_config(Settings()))
    recorder.config.rules.evaluate_many = lambda batch: contexts.extend(batch) or [BOOK.evaluate(c) for c in batch]
    recorder.process([RawMessage(m.topic, 0, i, m.key, m.value, 0.0) for i, m in enumerate(messages)], lambda _: None)
    assert len(contexts) > 300
    assert same(BOOK.evaluate_many(contexts), [BOOK.evaluate(context) for context in contexts])


def test_every_default_rule_is_compiled_to_array_operations():
    assert [rule.id for rule, vector in zip(BOOK.rules, BOOK._vectors, strict=True) if not vector.complete] == []


def test_an_emergency_segment_and_block_list_hold_in_a_batch_as_alone():
    data = rulebooks.default_data()
    data["emergency"] = {"active": True, "limit_factor": 0.5, "hold_segments": [{"country": "RU"},
                                                                                {"industry": "b", "channel": "web"}]}
    data["lists"]["blocked_customers"]["values"] = ["C7"]
    book = rulebooks.compiled(data)
    batch = [DecisionContext(order_amount=100.0 * (i + 1), exposure=0.0, credit_limit=1000.0, risk_class="B",
                             customer_id=f"C{i}", country="RU" if i % 3 == 0 else "DE",
                             industry="b" if i % 2 else "a", channel="web" if i % 4 == 1 else "phone")
             for i in range(20)]
    verdicts = book.evaluate_many(batch)
    assert verdicts == [book.evaluate(context) for context in batch]
    held = {hit.code for verdict in verdicts for hit in verdict.hits}
    assert {"EMERGENCY_SEGMENT_HOLD", "BLOCKED_CUSTOMER", "CREDIT_LIMIT_EXCEEDED"} <= held


def test_a_part_left_to_cel_is_asked_only_where_the_rest_holds():
    env = cel.NewEnv(variables={"x": cel.Type.DOUBLE, "s": cel.Type.STRING})
    rule = vectorize(parse_checked(env.compile('x > 1.0 && s.matches("^A")').serialize()), set())
    assert not rule.complete and len(rule.parts) == 1
    matched, ask = rule.evaluate({"x": np.array([2.0, 0.5, 3.0]), "s": np.array(["A", "A", "B"], dtype=object)}, 3)
    assert matched.tolist() == [False, False, False] and ask.tolist() == [True, False, True]


def test_an_overflow_is_an_error_where_it_happens():
    env = cel.NewEnv(variables={"n": cel.Type.INT})
    rule = vectorize(parse_checked(env.compile("n + 1 > 0 || n < 0").serialize()), set())
    matched, failed = rule.evaluate({"n": np.array([5, 2**63 - 1, -3])}, 3)
    assert matched.tolist() == [True, False, True] and failed.tolist() == [False, True, False]


def test_a_tree_that_cannot_be_read_leaves_the_condition_to_cel():
    class Unreadable:
        def serialize(self) -> bytes:
            return b"\x0a\x03not a checked expression"

    rule = _vector(Unreadable(), set())
    assert not rule.complete
    assert rule.evaluate({}, 2)[1].tolist() == [True, True]  # every order asks CEL
