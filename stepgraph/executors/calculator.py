"""Exact arithmetic without `eval`.

Small models are bad at arithmetic, so a plan hands every calculation to this executor.
Expressions are parsed with `ast` and walked by a tiny interpreter that knows numbers, the
arithmetic operators and a fixed list of math functions; names, attributes, strings and
everything else are refused. Guards stop the few ways pure arithmetic can still hurt:
huge powers and products (`9**9**9`), very deep nesting and very long input.

`evaluate` is public because the verifier recomputes arithmetic with it.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from stepgraph.executors.base import StepInput, StepOutput

Number = int | float

MAX_EXPRESSION_CHARS = 2000
MAX_DEPTH = 300
MAX_EXPONENT = 10_000
# int -> str refuses more than 4300 digits by default; 14,000 bits is about 4,200 digits.
MAX_INT_BITS = 14_000
MAX_FACTORIAL = 1000
SIGNIFICANT_DIGITS = 10


class CalculatorError(ValueError):
    """The expression is not one the calculator accepts, or its value cannot be computed."""


def _factorial(n: Number) -> int:
    if isinstance(n, float):
        if not n.is_integer():
            raise CalculatorError("factorial() needs a whole number")
        n = int(n)
    if n < 0:
        raise CalculatorError("factorial() needs a number >= 0")
    if n > MAX_FACTORIAL:
        raise CalculatorError(f"factorial() of more than {MAX_FACTORIAL} is too large")
    return math.factorial(n)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "factorial": _factorial,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
# Spellings people (and small models) use that Python does not: 2^10, 3×4, 8÷2, 5−3.
_SPELLINGS = str.maketrans({"^": "**", "×": "*", "÷": "/", "−": "-", "·": "*"})


def _normalise(expr: str) -> str:
    return expr.translate(_SPELLINGS).strip()


def parse(expr: str) -> ast.Expression:
    """Parse and check `expr` without computing it; raise CalculatorError if it is not
    a pure arithmetic expression. `^` is read as a power, as people mean it."""
    text = _normalise(expr)
    if not text:
        raise CalculatorError("empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        message = exc.msg if isinstance(exc, SyntaxError) else str(exc) or type(exc).__name__
        raise CalculatorError(f"not an arithmetic expression: {message}") from None
    try:
        _check(tree.body, 0)
    except RecursionError:
        raise CalculatorError(f"expression nested deeper than {MAX_DEPTH} levels") from None
    return tree


def _check(node: ast.AST, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CalculatorError(f"expression nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):
            raise CalculatorError(f"only numbers are allowed, not {node.value!r}")
    elif isinstance(node, ast.Name):
        if node.id not in CONSTANTS:
            raise CalculatorError(f"unknown name {node.id!r}; known: {', '.join(CONSTANTS)}")
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise CalculatorError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.left, depth + 1)
        _check(node.right, depth + 1)
    elif isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise CalculatorError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.operand, depth + 1)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise CalculatorError(f"unknown function; known: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise CalculatorError("functions take positional arguments only")
        if not node.args:
            raise CalculatorError(f"{node.func.id}() needs an argument")
        for arg in node.args:
            _check(arg, depth + 1)
    else:
        raise CalculatorError(f"{type(node).__name__} is not allowed in an expression")


def _bits(value: Number) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent larger than {MAX_EXPONENT}")
    # An int base**exponent has at least (bits(base) - 1) * exponent + 1 bits.
    exact = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
    if exact and (_bits(base) - 1) * exponent > MAX_INT_BITS:
        raise CalculatorError("result too large")
    result = base**exponent
    if isinstance(result, complex):
        raise CalculatorError("result is a complex number")
    return result


def _apply(op: ast.operator, left: Number, right: Number) -> Number:
    if isinstance(op, ast.Pow):
        return _power(left, right)
    if isinstance(op, ast.Mult) and _bits(left) + _bits(right) > MAX_INT_BITS:
        raise CalculatorError("result too large")
    return _BINARY[type(op)](left, right)


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp):
        return _apply(node.op, _eval(node.left), _eval(node.right))
    if isinstance(node, ast.Call):
        name = node.func.id  # type: ignore[attr-defined]  # _check made sure
        args = [_eval(arg) for arg in node.args]
        try:
            return FUNCTIONS[name](*args)
        except TypeError as exc:
            raise CalculatorError(f"{name}(): {exc}") from None
    raise CalculatorError(f"{type(node).__name__} is not allowed")  # pragma: no cover


def evaluate(expr: str) -> Number:
    """The value of an arithmetic expression, with Python's semantics (`7/2` is 3.5,
    `7//2` is 3, `-2**2` is -4). Raises CalculatorError for anything else: unknown names,
    division by zero, math domain errors, overflow, or results too large to print."""
    tree = parse(expr)
    try:
        value = _eval(tree.body)
    except CalculatorError:
        raise
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except (OverflowError, ValueError, RecursionError, MemoryError) as exc:
        raise CalculatorError(str(exc) or type(exc).__name__) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalculatorError(f"result is not a number: {value!r}")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError("result too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is not a finite number")
    return value


def format_number(value: Number) -> str:
    """Text a reader expects: `12` not `12.0`, `0.3` not `0.30000000000000004`: whole
    numbers without a point, others to 10 significant digits, very large or very small
    ones in exponent notation."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if not 1e-6 <= abs(value) < 1e15:
        return f"{value:.10g}"
    decimals = max(0, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


# Tokens an expression embedded in prose is made of; anything else ends a candidate run.
_TOKEN = re.compile(
    r"(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op>\*\*|//|[-+*/%^(),×÷−·])"
    r"|(?P<space>\s+)"
)
_MAX_RUN_TOKENS = 120


def _runs(text: str) -> list[list[tuple[int, int, str]]]:
    """Maximal runs of expression-like tokens in `text` as (start, end, kind) lists."""
    runs: list[list[tuple[int, int, str]]] = []
    current: list[tuple[int, int, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        kind = match.lastgroup if match else None
        if match and kind == "name" and match.group() not in FUNCTIONS | CONSTANTS:
            kind = None
        if match is None or kind is None:
            if current:
                runs.append(current)
            current = []
            pos = match.end() if match else pos + 1
            continue
        if kind != "space":
            current.append((match.start(), match.end(), kind))
        pos = match.end()
    if current:
        runs.append(current)
    return runs


def extract_expression(text: str) -> str | None:
    """The longest substring of `text` that is an arithmetic expression with at least one
    operator or function call ("Compute 3*(4+5)." -> "3*(4+5)"), or None."""
    best: str | None = None
    for run in _runs(text):
        run = run[:_MAX_RUN_TOKENS]
        spans = [(i, j) for i in range(len(run)) for j in range(i, len(run))]
        spans.sort(key=lambda s: run[s[1]][1] - run[s[0]][0], reverse=True)
        for i, j in spans:
            if best is not None and run[j][1] - run[i][0] <= len(best):
                break
            if not any(kind in ("op", "name") for _, _, kind in run[i : j + 1]):
                continue
            candidate = text[run[i][0] : run[j][1]]
            try:
                tree = parse(candidate)
            except CalculatorError:
                continue
            if isinstance(tree.body, ast.BinOp | ast.Call | ast.UnaryOp):
                best = candidate
                break
    return best


def _lone_number(text: str) -> str | None:
    """A step that is one number ("80": a plan carrying a value forward) computes to it; a
    writer model asked for its expression invents one (seen: "80" became 46.67)."""
    try:
        tree = parse(text)
    except CalculatorError:
        return None
    return text if isinstance(tree.body, ast.Constant) else None


class CalculatorExecutor:
    """Exact arithmetic on one expression; never raises for a bad expression."""

    name = "calculator"
    computes = True  # see Executor
    model_writes = "expression"  # see Executor
    planner_hint = (
        "exact arithmetic; the instruction is one expression only, like 146 * 3.25 or "
        "{{s1}} + {{s2}}."
    )
    description = (
        "exact arithmetic on one expression (+ - * / // % ** and sqrt, log, exp, round, "
        'min, max, floor, ceil, sin, cos, pi, e). args: {"expression": "(12*7)+3"}'
    )

    async def run(self, step: StepInput) -> StepOutput:
        expr = step.args.get("expression")
        if expr is not None and not isinstance(expr, str):
            expr = str(expr)
        if not expr:
            expr = extract_expression(step.instruction) or _lone_number(step.instruction)
        if not expr:
            return StepOutput(
                error='no arithmetic expression found; pass args {"expression": "..."}'
            )
        try:
            value = evaluate(expr)
        except CalculatorError as exc:
            return StepOutput(error=f"cannot compute {expr.strip()!r}: {exc}")
        return StepOutput(output=format_number(value), data=value)
