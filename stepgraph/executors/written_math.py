"""Arithmetic as models write it in text: expressions between numbers (`146 * $3.25`),
LaTeX (`146 \\times 3.25`), units between the numbers (`146 muffins * $3.25 each`),
`P% of X`. Read by the calculator that finishes a model's sums (calculating.py) and by the
verifier that recomputes them (stepgraph.verifier.numeric), so it lives below both.
"""

from __future__ import annotations

import re

from stepgraph.executors.calculator import CalculatorError, evaluate, format_number

NUM = r"\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?"
_OP = r"\s*(?:[-+*/×÷^−·]|\*\*|\s[xX]\s)\s*"
_OPERAND = rf"\(*\s*-?{NUM}\s*\)*"
# An equation: operands joined by at least one operator, then `=` and a number.
EXPR = rf"(?<![\w.$])(?P<expr>{_OPERAND}(?:{_OP}{_OPERAND})+)"
PCT_OF = rf"(?<![\w.])(?P<pct>\d+(?:\.\d+)?)\s*%\s*of\s*(?P<base>{NUM})\s*"
# What ends a text that stopped at its `=`, for the calculator to finish.
_TRAILING = re.compile(rf"{EXPR}\s*$")
_TRAILING_PERCENT_OF = re.compile(rf"{PCT_OF}$", re.IGNORECASE)
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


def clean_expression(text: str) -> str:
    text = _THOUSANDS.sub("", text.replace("$", ""))
    text = re.sub(r"(\d+(?:\.\d+)?)%", r"(\1/100)", text)
    return re.sub(r"\s[xX]\s", " * ", text)


def percent_of_expression(match: re.Match) -> str:
    """`P% of X` as an expression the calculator evaluates."""
    return f"{match.group('pct')} / 100 * {clean_expression(match.group('base'))}"


# Units between the numbers of an expression: `146 \text{ muffins} \times \$3.25/\text{muffin}`,
# `146 muffins * $3.25 per muffin`. The arithmetic is the numbers and operators alone.
_LATEX_PER_UNIT = re.compile(r"\s*/\s*\\(?:text|mathrm)\s*\{[^{}]*\}")
_LATEX_UNIT = re.compile(r"\\(?:text|mathrm)\s*\{[^{}]*\}")
_PER_UNIT = re.compile(r"(?<=\d)\s*(?:/|\bper\b)\s*(?![xX]\b)[A-Za-z]+\b")
_UNIT = re.compile(
    r"(?<=\d)\s+(?![xX]\b)[A-Za-z]+(?:\s+(?![xX]\b)[A-Za-z]+)?(?=\s*(?:[-+*/×÷−·]|\s[xX]\s))"
)


_LAST_UNIT = re.compile(r"(?<=\d)\s+(?![xX]\b)[A-Za-z]+(?:\s+[A-Za-z]+)?\s*$")


def _without_units(tail: str) -> str:
    tail = _LATEX_UNIT.sub(" ", _LATEX_PER_UNIT.sub("", tail))
    tail = _UNIT.sub("", _PER_UNIT.sub("", plain_math(tail)))
    return _LAST_UNIT.sub(" ", tail)


def trailing_value(text: str) -> str | None:
    """The calculator's value of the arithmetic expression that `text` ends with, as it
    should be written; None when it ends with none the calculator can evaluate. Units
    written between the numbers are read past (`146 muffins * $3.25 each`)."""
    tail = _without_units(text[-300:])
    if match := _TRAILING.search(tail):
        expr = clean_expression(match.group("expr"))
    elif match := _TRAILING_PERCENT_OF.search(tail):
        expr = percent_of_expression(match)
    else:
        return None
    try:
        return format_number(evaluate(expr))
    except CalculatorError:
        return None
