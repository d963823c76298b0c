"""The calculator: Python's arithmetic without eval, its guards, and expressions in prose."""

from __future__ import annotations

import ast
import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepgraph.executors.base import StepInput
from stepgraph.executors.calculator import (
    CalculatorError,
    CalculatorExecutor,
    evaluate,
    extract_expression,
    format_number,
)


def run(instruction: str = "", **args: object):
    step = StepInput(step_id="s1", instruction=instruction, args=args)
    return asyncio.run(CalculatorExecutor().run(step))


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("2+3*4", 14),
        ("(2+3)*4", 20),
        ("7/2", 3.5),
        ("7//2", 3),
        ("-7//2", -4),
        ("7 % 3", 1),
        ("-2**2", -4),
        ("2**-1", 0.5),
        ("2^10", 1024),
        ("3 × 4 ÷ 2", 6.0),
        ("sqrt(16)", 4.0),
        ("abs(-3) + floor(2.7) + ceil(2.1)", 8),
        ("round(2.567, 2)", 2.57),
        ("max(3, 9, 4) - min(3, 9, 4)", 6),
        ("log(e)", 1.0),
        ("exp(0) + cos(0) + sin(0)", 2.0),
        ("pi", math.pi),
        ("factorial(5)", 120),
        ("1.5e3 + .5", 1500.5),
    ],
)
def test_evaluate_matches_python_arithmetic(expr: str, expected: float) -> None:
    value = evaluate(expr)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("__import__('os').system('true')", "unknown function"),
        ("().__class__", "not allowed"),
        ("x + 1", "unknown name"),
        ("'ab' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("1j * 2", "only numbers"),
        ("[1, 2][0]", "not allowed"),
        ("(lambda: 1)()", "unknown function"),
        ("1 if 2 else 3", "not allowed"),
        ("1 << 100", "not allowed"),
        ("round(2.5, ndigits=1)", "positional"),
        ("1 +", "not an arithmetic expression"),
        ("", "empty"),
    ],
)
def test_evaluate_refuses_what_is_not_arithmetic(expr: str, message: str) -> None:
    with pytest.raises(CalculatorError, match=message):
        evaluate(expr)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("1/0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("sqrt(-1)", "domain"),
        ("log(0)", "domain"),
        ("9**9**9", "exponent larger"),
        ("2**20000", "exponent larger"),
        ("10**5000", "too large"),
        ("(10**2000) * (10**2000) * (10**2000)", "too large"),
        ("2.0**5000", "range|large"),
        ("1e308 * 10", "not a finite number"),
        ("(-8) ** 0.5", "complex"),
        ("factorial(5000)", "too large"),
        ("factorial(2.5)", "whole number"),
        ("-" * 900 + "1", "nested deeper"),
        ("1" + "+1" * 1200, "longer than|nested deeper"),
        ("9" * 5000, "not an arithmetic expression|longer than"),
    ],
)
def test_guards_turn_runaway_arithmetic_into_errors(expr: str, message: str) -> None:
    with pytest.raises(CalculatorError, match=message):
        evaluate(expr)


def test_a_long_flat_sum_is_still_allowed() -> None:
    assert evaluate("+".join(["1"] * 250)) == 250


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12, "12"),
        (12.0, "12"),
        (-0.0, "0"),
        (0.1 + 0.2, "0.3"),
        (1 / 3, "0.3333333333"),
        (2.5, "2.5"),
        (1e20, "1e+20"),
        (1234567.891, "1234567.891"),
        (2 / 3 * 1e6, "666666.6667"),
        (-0.000123456789123, "-0.0001234567891"),
        (1e-7, "1e-07"),
        (10**30, "1" + "0" * 30),
    ],
)
def test_format_number_reads_like_a_person_writes(value: float, text: str) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize(
    ("text", "expr"),
    [
        ("Compute 3*(4+5).", "3*(4+5)"),
        ("What is 2^10 + sqrt(16)?", "2^10 + sqrt(16)"),
        ("Calculate the total: 12.5 * 4 - 3 = ?", "12.5 * 4 - 3"),
        ("Add up 1,200 items? No: compute (17 + 25) / 2 for the mean", "(17 + 25) / 2"),
        ("In 2024 there were 365 days", None),
        ("Add 12 and 30", None),
        ("", None),
    ],
)
def test_extract_expression_finds_the_longest_calculation(text: str, expr: str | None) -> None:
    assert extract_expression(text) == expr


def test_executor_takes_the_expression_argument() -> None:
    out = run("ignored text 1+1", expression="(12*7)+3")
    assert out.ok
    assert out.output == "87"
    assert out.data == 87


def test_executor_falls_back_to_the_instruction() -> None:
    out = run("Compute 3*(4+5) for the order")
    assert (out.output, out.data, out.error) == ("27", 27, None)


@pytest.mark.parametrize(("instruction", "output"), [("80", "80"), (" 2.50 ", "2.5")])
def test_a_step_that_is_one_number_computes_to_it(instruction: str, output: str) -> None:
    # a plan carrying a value forward; before, the model was asked to invent an expression
    assert run(instruction).output == output


def test_a_number_inside_prose_is_not_an_expression() -> None:
    assert "no arithmetic expression" in (run("Count the 80 jelly beans").error or "")


def test_executor_reports_float_results_rounded() -> None:
    out = run(expression="10/3")
    assert out.output == "3.333333333"
    assert out.data == pytest.approx(10 / 3)


@pytest.mark.parametrize(
    ("instruction", "args", "message"),
    [
        ("", {"expression": "1/0"}, "division by zero"),
        ("", {"expression": "open('/etc/passwd')"}, "unknown function"),
        ("Tell me a joke", {}, "no arithmetic expression"),
    ],
)
def test_executor_returns_errors_instead_of_raising(
    instruction: str, args: dict[str, object], message: str
) -> None:
    out = run(instruction, **args)
    assert not out.ok
    assert message in (out.error or "")
    assert out.output == ""


# Random small integer expression trees, written out by ast.unparse (so with only the
# parentheses Python needs): evaluate must agree with Python's own eval on every one.
_leaves = st.integers(min_value=0, max_value=20).map(lambda n: ast.Constant(n))
_binary_ops = st.sampled_from(
    [ast.Add(), ast.Sub(), ast.Mult(), ast.Div(), ast.FloorDiv(), ast.Mod()]
)


def _extend(children: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    binary = st.builds(ast.BinOp, children, _binary_ops, children)
    power = st.builds(
        ast.BinOp,
        children,
        st.just(ast.Pow()),
        st.integers(min_value=0, max_value=4).map(lambda n: ast.Constant(n)),
    )
    negative = st.builds(ast.UnaryOp, st.just(ast.USub()), children)
    return binary | power | negative


_trees = st.recursive(_leaves, _extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_trees)
def test_evaluate_agrees_with_python_eval(tree: ast.expr) -> None:
    source = ast.unparse(ast.fix_missing_locations(ast.Expression(tree)))
    try:
        expected = eval(source, {"__builtins__": {}})  # the reference; tests may use eval
    except ZeroDivisionError:
        with pytest.raises(CalculatorError, match="division by zero"):
            evaluate(source)
        return
    value = evaluate(source)
    assert type(value) is type(expected), source
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(value)
    else:
        assert value == expected, source
