"""Math a model wrote in LaTeX, made plain text for a terminal.

Small models wrap answers in LaTeX (`\\(\\boxed{1020.5}\\)`, `146 \\times \\$3.25`) although
nothing here renders it: a person reading `stepgraph run` or `runs show` sees the markup,
and rich even eats `\\[` as an escape. Only math markup is rewritten, never code blocks,
and not at all when the task asks for LaTeX.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"(```.*?```)", re.DOTALL)
_GROUP = r"\{([^{}]*)\}"
_RULES = [
    (re.compile(r"\\(?:boxed|text|textbf|mathrm|mathbf|operatorname)\s*" + _GROUP), r"\1"),
    (re.compile(r"\\[dt]?frac\s*\{([^{}+\-*/ ]*)\}\s*\{([^{}+\-*/ ]*)\}"), r"\1/\2"),
    (re.compile(r"\\[dt]?frac\s*" + _GROUP + r"\s*" + _GROUP), r"(\1)/(\2)"),
    (re.compile(r"\\sqrt\s*" + _GROUP), r"√(\1)"),
    (re.compile(r"\\times\b"), "×"),
    (re.compile(r"\\cdot\b"), "·"),
    (re.compile(r"\\div\b"), "÷"),
    (re.compile(r"\\(?:leq|le)\b"), "≤"),
    (re.compile(r"\\(?:geq|ge)\b"), "≥"),
    (re.compile(r"\\neq?\b"), "≠"),
    (re.compile(r"\\approx\b"), "≈"),
    (re.compile(r"\\(?:left|right)\b"), ""),
    (re.compile(r"\\([$%&#_])"), r"\1"),
    (re.compile(r"\\[,;:! ]"), " "),
    (re.compile(r"[ \t]*\\\[[ \t]*\n?|\n?[ \t]*\\\][ \t]*"), "\n"),  # display math
    (re.compile(r"\\\(\s*|\s*\\\)"), ""),  # inline math
    (re.compile(r"\$\$"), ""),
]


def readable_math(text: str, task: str = "") -> str:
    """`text` with its LaTeX math markup made plain; unchanged when `task` asks for LaTeX."""
    if "latex" in task.lower() or "\\" not in text:
        return text
    parts = _FENCE.split(text)
    for i in range(0, len(parts), 2):  # the even parts are outside code fences
        part = parts[i]
        for pattern, replacement in _RULES:
            part = pattern.sub(replacement, part)
        parts[i] = re.sub(r"\n{3,}", "\n\n", part)
    return "".join(parts).strip()
