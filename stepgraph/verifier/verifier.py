"""The verifier: every step result is checked before anything depends on it, and the final
answer is checked against the instruction.

Deterministic checks come first because a small model judging a small model is noise:
executor errors, empty output, arithmetic recomputed, JSON (and the step's schema), code
that compiles, the form constraints written in the step's or the task's text, and the
computed results the answer must state. An LLM judge is asked only where none of those
applies, and only when one is configured; its criterion is kept with its verdict, and an
answer it gives that is not a clear yes or no is "no verdict", never a pass.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import cache
from typing import Any

from stepgraph.executors.base import StepInput, StepOutput, declares
from stepgraph.models.base import BackendBase, Message, Request
from stepgraph.planner.plan import Step
from stepgraph.verifier.constraints import extract_constraints
from stepgraph.verifier.echo import check_echo
from stepgraph.verifier.numeric import (
    check_arithmetic,
    check_comparisons,
    check_results_stated,
    check_supported,
    check_totals,
    restated_results,
    single_number,
)
from stepgraph.verifier.shape import check_code, check_json
from stepgraph.verifier.verdict import Verdict


@cache  # the classes do not change: import and read them once per process
def _declaring(what: str) -> frozenset[str]:
    """The built-in executors that declare `what`: what a verifier knows on its own."""
    from stepgraph.executors import CalculatorExecutor, PythonExecutor, SqlExecutor
    from stepgraph.executors.llm import LlmExecutor

    built_in = (CalculatorExecutor, PythonExecutor, SqlExecutor, LlmExecutor)
    return frozenset(e.name for e in built_in if declares(e, what))


# a user's own check: (step, input, output) -> verdicts, plain or async
StepCheck = Callable[[Step, StepInput, StepOutput], "list[Verdict] | Awaitable[list[Verdict]]"]
AnswerCheck = Callable[[str, str, list[Any]], "list[Verdict] | Awaitable[list[Verdict]]"]
"""`check(instruction, answer, results)`; `results` are the run's StepResults, in plan order."""

JUDGE_SYSTEM = (
    "You check one piece of work against one criterion. Reply with JSON only: "
    '{"passed": true or false, "reason": "one short sentence"}.'
)
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"passed": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["passed", "reason"],
}


async def _user_check(check: Callable[..., Any], *args: Any) -> list[Verdict]:
    """A check of the user's, written plain or async."""
    found = check(*args)
    return await found if isinstance(found, Awaitable) else found


class Verifier:
    """Checks step results and final answers.

    `judge`: a model asked where no deterministic check applies (None: never). By default it
    judges only final answers; `judge_steps=True` also judges llm steps, which costs one
    more model call per such step. `checks` are extra step checks of your own, and
    `answer_checks` extra checks of the final answer (a budget, citations): a failed one is
    revised by the composer like a built-in one.
    """

    def __init__(
        self,
        judge: BackendBase | None = None,
        *,
        judge_steps: bool = False,
        judge_answer: bool = True,
        checks: Iterable[StepCheck] = (),
        answer_checks: Iterable[AnswerCheck] = (),
    ):
        self.judge = judge
        self.judge_steps = judge_steps
        self.judge_answer = judge_answer
        self.checks = list(checks)
        self.answer_checks = list(answer_checks)
        # the executors whose output is an exact computation, and those the model writes
        # prose for: the built-in ones, until `know` is told what a run's executors declare
        self.computing = _declaring("computes")
        self.writing = _declaring("writes_text")
        self.fact_bringing = _declaring("brings_facts")

    def know(self, executors: Mapping[str, object]) -> None:
        """Learn what each executor declares itself (`stepgraph.executors.base.declares`),
        so that a plugin executor is checked for what it is, not for its name."""
        self.computing = frozenset(n for n, e in executors.items() if declares(e, "computes"))
        self.writing = frozenset(n for n, e in executors.items() if declares(e, "writes_text"))
        self.fact_bringing = frozenset(
            n for n, e in executors.items() if declares(e, "brings_facts")
        )

    async def check_step(self, step: Step, inp: StepInput, out: StepOutput) -> list[Verdict]:
        if out.error:
            return [Verdict(check="executor_ok", passed=False, evidence=out.error[-500:])]
        text = out.output
        if not text.strip():
            return [
                Verdict(check="non_empty", passed=False, evidence="the step produced no output")
            ]
        verdicts = [Verdict(check="non_empty", passed=True, evidence=f"{len(text)} characters")]
        if step.executor not in self.computing:
            used = [  # a number a dependency computed must survive into the text built on it
                (dep, value)
                for dep, output in inp.dependencies.items()
                if (value := single_number(output)) is not None
            ]
            arithmetic = check_arithmetic(text)
            verdicts += _present(
                arithmetic,
                check_comparisons(text),
                check_totals(text),
                check_code(text),
                _disagreement(check_results_stated(text, used), arithmetic),
            )
        schema = step.args.get("schema")
        if isinstance(schema, dict):
            verdicts.append(check_json(text, schema))
        # a step is held to its own text (not dependency text filled in); the whole task's
        # form is the final answer's to meet, and a step that only drafts part of it fails
        # those constraints by design
        task_form = extract_constraints(inp.task).constraints if inp.task else []
        own = [c for c in extract_constraints(step.instruction).constraints if c not in task_form]
        verdicts += [v for c in own if (v := c.check(text)).passed is not None]
        for check in self.checks:
            verdicts += await _user_check(check, step, inp, out)
        only_non_empty = len(verdicts) == 1  # no deterministic check could say more
        if (
            self.judge is not None
            and self.judge_steps
            and step.executor in self.writing
            and only_non_empty
        ):
            criterion = f"The result does what this step asked: {inp.instruction}"
            verdicts.append(await self.ask_judge(criterion, text))
        return verdicts

    async def check_answer(
        self,
        instruction: str,
        answer: str,
        results: list[Any],
        *,
        final_id: str | None = None,
        from_results: bool = True,
    ) -> list[Verdict]:
        """The final answer against the instruction's constraints, its own arithmetic, its
        comparison and total claims, the results the computing steps ended on, and whether it
        only hands the questions back (`stepgraph.verifier.echo`). `results`
        are StepResults (or their dicts). `from_results=False` is an answer made without
        them (the model's direct one): it is not asked to restate what they computed, and
        checks of your own still see them."""
        if not answer.strip():
            return [Verdict(check="non_empty", passed=False, evidence="the answer is empty")]
        constraints = extract_constraints(instruction)
        verdicts = constraints.check(answer)
        if constraints.conflicts:
            verdicts.append(
                Verdict(
                    check="contradictory_constraints",
                    passed=None,
                    evidence="; ".join(constraints.conflicts),
                )
            )
        computed = computed_results(results, final_id, self.computing) if from_results else []
        rows = [r if isinstance(r, dict) else r.model_dump() for r in results]
        done = [r for r in rows if r["status"] == "done"]
        if any(r["executor"] in self.fact_bringing for r in done):
            # facts came from outside the task: the answer's numbers must come from them
            # (or from what was computed), not from prose a step wrote around them
            grounds = self.fact_bringing | self.computing
            sources = [instruction, *(r["output"] for r in done if r["executor"] in grounds)]
            verdicts += _present(check_supported(answer, sources))
        repeat_asked = any(c.kind == "repeat_request" for c in constraints.constraints)
        verdicts += _present(
            check_echo(instruction, answer, repeat_asked=repeat_asked),
            check_arithmetic(answer),
            check_comparisons(answer),
            check_totals(answer),
            restated_results(answer, computed),
            check_results_stated(answer, computed),
        )
        for check in self.answer_checks:
            verdicts += await _user_check(check, instruction, answer, results)
        decided = [v for v in verdicts if v.passed is not None]
        if not decided and self.judge is not None and self.judge_answer:
            verdicts.append(
                await self.ask_judge(
                    f"The answer does what the task asked, completely: {instruction}", answer
                )
            )
        return verdicts

    async def ask_judge(self, criterion: str, text: str) -> Verdict:
        assert self.judge is not None
        request = Request(
            messages=[
                Message(role="system", content=JUDGE_SYSTEM),
                Message(role="user", content=f"Criterion: {criterion}\n\nWork:\n{text[:3000]}"),
            ],
            max_tokens=120,
            json_schema=JUDGE_SCHEMA,
        )
        try:
            reply = (await self.judge.acomplete(request)).text
        except Exception as exc:  # a judge that fails gives no verdict, it does not fail the run
            return Verdict(
                check="judge", passed=None, evidence=f"the judge failed: {exc}", criterion=criterion
            )
        return parse_judgement(reply, criterion)


def parse_judgement(reply: str, criterion: str) -> Verdict:
    """A judge's reply as a verdict; anything but a clear boolean is "no verdict"."""
    try:
        value = json.loads(reply)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or not isinstance(value.get("passed"), bool):
        return Verdict(
            check="judge",
            passed=None,
            evidence=f"no verdict: the judge answered {reply[:200]!r}",
            criterion=criterion,
        )
    return Verdict(
        check="judge",
        passed=value["passed"],
        evidence=str(value.get("reason", ""))[:500],
        criterion=criterion,
    )


def computed_results(
    results: list[Any], final_id: str | None = None, computing: Iterable[str] | None = None
) -> list[tuple[str, float]]:
    """The numbers the answer must state: what each computing step (one of the executors
    named in `computing`; by default the built-in ones) ended on, when it is one number and
    no step but the last one uses it (an intermediate value feeding another computation
    need not be repeated)."""
    computing = _declaring("computes") if computing is None else set(computing)
    rows = [r if isinstance(r, dict) else r.model_dump() for r in results]
    used_by: dict[str, set[str]] = {}
    for row in rows:
        for dep in row.get("depends_on") or []:
            used_by.setdefault(dep, set()).add(row["step_id"])
    found = []
    for row in rows:
        if row["executor"] not in computing or row["status"] != "done":
            continue
        if used_by.get(row["step_id"], set()) - {final_id}:
            continue
        value = single_number(row["output"])
        if value is not None:
            found.append((f"{row['step_id']}: {row['instruction'][:160]}", value))
    return found


def _disagreement(stated: Verdict | None, arithmetic: Verdict | None) -> Verdict | None:
    """A step that does not restate a computed dependency's number. The computed number is
    exact arithmetic on an expression the planner wrote, which may be wrong (`102 - 850`
    for "what is left of 850"): it is evidence, not ground truth. So when the step's own
    arithmetic holds, the disagreement is recorded without a verdict and settled at the
    final cross-check, where the model's direct answer also votes."""
    if stated is None:
        return None
    stated = stated.model_copy(update={"check": "dependency_results_stated"})
    if stated.passed is False and arithmetic is not None and arithmetic.passed:
        evidence = (
            f"{stated.evidence}; its own arithmetic holds, so this is left to the cross-check"
        )
        return stated.model_copy(update={"passed": None, "evidence": evidence})
    return stated


def _present(*verdicts: Verdict | None) -> list[Verdict]:
    return [v for v in verdicts if v is not None]
