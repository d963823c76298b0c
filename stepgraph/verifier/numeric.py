"""Numeric claims recomputed: arithmetic a model wrote out, and computed results it reports.

Small models copy a calculator's result and then write `12 * 4 = 46` next to it. Two
deterministic checks catch that: every written-out equation `EXPR = VALUE` (and
`P% of X is VALUE`) is recomputed with the calculator's evaluator, and a final answer must
state the results that the computing steps (calculator, python) ended on.

A stated value matches when it equals the true value rounded to the decimals it was
written with: `10 / 3 = 3.33` and `10 / 3 = 3` pass, `10 / 3 = 3.4` does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from stepgraph.executors.calculator import CalculatorError, evaluate, format_number
from stepgraph.verifier.verdict import Verdict

_NUM = r"\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?"
_OP = r"\s*(?:[-+*/×÷^−·]|\*\*|\s[xX]\s)\s*"
_OPERAND = rf"\(*\s*-?{_NUM}\s*\)*"
# An equation: operands joined by at least one operator, then `=` and a number.
_EXPR = rf"(?<![\w.$])(?P<expr>{_OPERAND}(?:{_OP}{_OPERAND})+)"
_PCT_OF = rf"(?<![\w.])(?P<pct>\d+(?:\.\d+)?)\s*%\s*of\s*(?P<base>{_NUM})\s*"
_EQUATION = re.compile(rf"{_EXPR}\s*=\s*(?P<value>-?{_NUM})(?![\w.]\d)")
_PERCENT_OF = re.compile(rf"{_PCT_OF}(?:=|is|equals|gives)\s*(?P<value>-?{_NUM})", re.IGNORECASE)
# What ends a text that stopped at its `=`, for the calculator to finish.
_TRAILING = re.compile(rf"{_EXPR}\s*$")
_TRAILING_PERCENT_OF = re.compile(rf"{_PCT_OF}$", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


_LATEX = [
    (re.compile(r"\\[()\[\]]"), " "),  # \( \) \[ \] math delimiters
    (re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}"), r"(\1) / (\2)"),
    (re.compile(r"\\(?:times|cdot)"), "*"),
    (re.compile(r"\\div"), "/"),
    (re.compile(r"\\(?:text|mathrm|boxed)\s*\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\([$%])"), r"\1"),
    (re.compile(r"\\[,;! ]"), " "),
]


def plain_math(text: str) -> str:
    """Models write arithmetic in LaTeX (`\\(16 \\times 3 = 48\\)`); read it as plain text."""
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    return text


def _clean(text: str) -> str:
    text = _THOUSANDS.sub("", text.replace("$", ""))
    text = re.sub(r"(\d+(?:\.\d+)?)%", r"(\1/100)", text)
    return re.sub(r"\s[xX]\s", " * ", text)


def _decimals(text: str) -> int:
    text = text.rstrip("%")
    return len(text.split(".", 1)[1]) if "." in text else 0


def _value(token: str) -> float:
    """A number as _NUM or _NUMBER matched it: `$1,020.50` is 1020.5, `50%` is 0.5."""
    value = float(token.replace("$", "").replace(",", "").rstrip("%"))
    return value / 100 if token.endswith("%") else value


def stated_matches(stated: str, true: float) -> bool:
    """Whether `stated` is `true` as written with its own number of decimals."""
    try:
        value = _value(stated.strip())
    except ValueError:
        return False
    places = _decimals(stated)
    return abs(value - true) <= 0.5 * 10.0**-places + 1e-9 * max(1.0, abs(true))


def equations(text: str) -> list[tuple[str, str, float]]:
    """(as written, stated value, true value) for each arithmetic claim in `text` that the
    calculator can evaluate; what it cannot read is left alone, never guessed."""
    found = []
    text = plain_math(text)
    for match in _EQUATION.finditer(text):
        expr = match.group("expr")
        try:
            true = float(evaluate(_clean(expr)))
        except CalculatorError:
            continue
        found.append((match.group(0).strip(), match.group("value"), true))
    for match in _PERCENT_OF.finditer(text):
        try:
            true = float(evaluate(_percent_of(match)))
        except CalculatorError:
            continue
        found.append((match.group(0).strip(), match.group("value"), true))
    return found


def _percent_of(match: re.Match) -> str:
    """`P% of X` as an expression the calculator evaluates."""
    return f"{match.group('pct')} / 100 * {_clean(match.group('base'))}"


def trailing_value(text: str) -> str | None:
    """The calculator's value of the arithmetic expression that `text` ends with, as it
    should be written; None when it ends with none the calculator can evaluate."""
    tail = plain_math(text[-300:])
    if match := _TRAILING.search(tail):
        expr = _clean(match.group("expr"))
    elif match := _TRAILING_PERCENT_OF.search(tail):
        expr = _percent_of(match)
    else:
        return None
    try:
        return format_number(evaluate(expr))
    except CalculatorError:
        return None


def check_arithmetic(text: str) -> Verdict | None:
    """One verdict over every equation in `text`; None when it states none."""
    claims = equations(text)
    if not claims:
        return None
    wrong = [
        f"{written} is wrong: it is {format_number(true)}"
        for written, stated, true in claims
        if not stated_matches(stated, true)
    ]
    if wrong:
        return Verdict(check="arithmetic", passed=False, evidence="; ".join(wrong))
    return Verdict(
        check="arithmetic", passed=True, evidence=f"{len(claims)} equation(s) recomputed"
    )


def numbers(text: str) -> list[str]:
    return [n for n in _NUMBER.findall(text) if any(c.isdigit() for c in n)]


def single_number(text: str) -> float | None:
    """The value of an output that is one number (a calculator's result, a program that
    printed one number); None for anything else."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    table = [line for line in lines if line.startswith("|")]
    if table:  # a query's Markdown table: one number only when it is one cell of one row
        body = table[2:]  # after the header and the |---| rule
        cells = body[0].strip("|").split("|") if len(body) == 1 else []
        lines = [cells[0].strip()] if len(cells) == 1 else []
        if not lines:
            return None
    found = numbers(lines[-1])
    if len(found) != 1 or len(lines[-1]) > len(found[0]) + 24:
        return None
    return _value(found[0])


def check_results_stated(answer: str, results: Iterable[tuple[str, float]]) -> Verdict | None:
    """Every (label, computed value) must appear in the answer; None when there are none. The
    label names the step and what it computed, so a revision knows what the number is."""
    results = list(results)
    if not results:
        return None
    stated = numbers(answer)
    missing = [
        f"{format_number(value)} (the result of {label})"
        for label, value in results
        if not any(stated_matches(n, value) for n in stated)
    ]
    if missing:
        return Verdict(
            check="computed_results_stated",
            passed=False,
            evidence="the answer does not state " + "; ".join(missing),
        )
    return Verdict(
        check="computed_results_stated",
        passed=True,
        evidence=f"{len(results)} computed result(s) stated",
    )
