"""The hook where every step result is checked before anything depends on it.

A verifier is a function (step, input, output) -> list of verdict dicts
{"check": name, "passed": True | False | None, "evidence": text}. `passed=None` means
"no verdict" and never counts as a pass or a failure. The full verifier (stepgraph.verifier)
plugs in here; these are the checks every step gets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stepgraph.executors.base import StepInput, StepOutput
from stepgraph.planner.plan import Step

Verdict = dict[str, Any]
StepVerifier = Callable[[Step, StepInput, StepOutput], list[Verdict]]


def basic_checks(step: Step, inp: StepInput, out: StepOutput) -> list[Verdict]:
    if out.error:
        return [{"check": "executor_ok", "passed": False, "evidence": out.error[-500:]}]
    if not out.output.strip():
        return [{"check": "non_empty", "passed": False, "evidence": "the step produced no output"}]
    return [{"check": "non_empty", "passed": True, "evidence": f"{len(out.output)} characters"}]
