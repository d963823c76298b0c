"""A whole run with the verifier: real LangGraph, real SQLite, real calculator, scripted model."""

import asyncio
import json

from stepgraph import Runtime, ScriptedBackend, Store
from stepgraph.executors import CalculatorExecutor
from stepgraph.executors.base import StepOutput


class Notes:
    name = "llm"
    description = "writes notes"
    writes_text = True

    async def run(self, step):
        await asyncio.sleep(0)
        return StepOutput(output=f"notes on {step.instruction}")


def plan(*steps):
    return json.dumps(
        {
            "steps": [
                {"id": i, "depends_on": d, "executor": e, "instruction": t} for i, d, e, t in steps
            ]
        }
    )


def test_an_answer_that_drops_the_computed_result_is_revised_and_its_verdicts_kept(tmp_path):
    replies = [
        plan(("s1", [], "calculator", "12 * 4"), ("s2", ["s1"], "llm", "eggs: {{s1}}")),
        "There are 46 eggs.",
        "There are 48 eggs.",
    ]
    model = ScriptedBackend(replies)
    runtime = Runtime(
        model, store=tmp_path / "s.db", executors=[CalculatorExecutor(), Notes()], direct=False
    )
    events = []
    result = runtime.run("How many eggs are in 12 boxes of 4?", on_event=events.append)
    assert result.status == "done"
    assert result.answer == "There are 48 eggs."
    assert {"check": "computed_results_stated", "passed": True} in [
        {"check": v.check, "passed": v.passed} for v in result.verdicts
    ]
    revise = model.requests[-1].messages[-1].content
    assert "48 (the result of s1: 12 * 4)" in revise
    stored = Store(tmp_path / "s.db").run(result.run_id)
    final = [v for v in stored.verdicts if v.step_id is None]
    assert [v.check for v in final] == ["computed_results_stated"] and final[0].passed
    assert any(e.type == "verdict" and e.step_id is None for e in events)
    # composer tokens count in the run's totals
    step_tokens = sum(s.completion_tokens for s in result.steps)
    assert result.completion_tokens > step_tokens


def test_a_run_is_revised_within_its_token_budget_only(tmp_path):
    planned = plan(("s1", [], "calculator", "12 * 4"), ("s2", ["s1"], "llm", "eggs: {{s1}}"))
    replies = [planned, "There are 46 eggs."]
    model = ScriptedBackend(replies)
    runtime = Runtime(
        model,
        store=tmp_path / "s.db",
        executors=[CalculatorExecutor(), Notes()],
        max_tokens=model.count_tokens(planned) + 1,  # the plan's tokens count in the budget
        direct=False,
    )
    result = runtime.run("How many eggs are in 12 boxes of 4?")
    assert result.answer == "There are 46 eggs."  # no budget left to revise: kept, not looped
    assert any(v.passed is False for v in result.verdicts)
    assert len(model.requests) == 2


def test_an_answer_check_of_your_own_fails_the_answer_and_the_composer_revises(tmp_path):
    from stepgraph.verifier import Verdict, Verifier

    seen = []

    def signed(instruction, answer, results):
        seen.append([r.step_id for r in results])
        return [Verdict(check="signed", passed=answer.endswith("-- Bo"), evidence="sign as Bo")]

    replies = [
        plan(("s1", [], "calculator", "12 * 4")),
        "There are 48 eggs.",
        "There are 48 eggs. -- Bo",
    ]
    model = ScriptedBackend(replies)
    runtime = Runtime(
        model,
        store=tmp_path / "s.db",
        executors=[CalculatorExecutor(), Notes()],
        verifier=Verifier(answer_checks=[signed]),
        direct=False,
    )
    result = runtime.run("How many eggs are in 12 boxes of 4?")
    assert result.answer == "There are 48 eggs. -- Bo"
    assert "sign as Bo" in model.requests[-1].messages[-1].content  # the revision was told
    assert seen[0] == ["s1"]
    assert {"check": "signed", "passed": True} in [
        {"check": v.check, "passed": v.passed} for v in result.verdicts
    ]
