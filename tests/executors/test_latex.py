"""LaTeX math in answers, made plain text for a terminal."""

from __future__ import annotations

import pytest

from stepgraph.executors.latex import readable_math


@pytest.mark.parametrize(
    "text, plain",
    [
        ("The total is \\(\\boxed{1020.5}\\) dollars.", "The total is 1020.5 dollars."),
        ("\\[ 146 \\times \\$3.25 = \\$474.50 \\]", "146 × $3.25 = $474.50"),
        ("\\frac{3}{4} of \\frac{a+1}{2} is 50\\%", "3/4 of (a+1)/(2) is 50%"),
        ("\\text{Answer: } 7", "Answer:  7"),
        ("no markup here", "no markup here"),
    ],
)
def test_math_markup_is_made_plain(text: str, plain: str) -> None:
    assert readable_math(text) == plain


def test_code_blocks_and_tasks_that_ask_for_latex_are_left_alone() -> None:
    code = 'See:\n```python\npattern = r"\\(x\\)"\n```'
    assert readable_math(code) == code
    assert readable_math("\\(x^2\\)", "Write the formula in LaTeX") == "\\(x^2\\)"
