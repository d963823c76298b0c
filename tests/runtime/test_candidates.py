"""The direct-answer floor and the cross-check, end to end: real LangGraph, real executors
(calculator, the python sandbox), real verifier and store; only the model's text is
scripted, routed by the role of each request since candidates and steps ask in no fixed
order."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from stepgraph import Runtime, ScriptedBackend
from stepgraph.errors import ConfigError
from stepgraph.executors.llm import ANSWER_SYSTEM, CODE_SYSTEM, EXPRESSION_SYSTEM
from stepgraph.models import Request
from stepgraph.runtime import candidates
from stepgraph.verifier.composer import COMPOSE_SYSTEM
from stepgraph.verifier.verdict import Verdict

LEFT = "What is 12% of 850, and what is left when it is taken off?"


def plan(*steps: tuple[str, list[str], str, str]) -> str:
    rows = [{"id": i, "depends_on": d, "executor": e, "instruction": t} for i, d, e, t in steps]
    return json.dumps({"steps": rows})


def model(
    planned: str,
    *,
    direct: str | Callable[[Request], str],
    compose: str = "",
    step: str = "",
    code: str = "print(0)",
    sample: str | Callable[[Request], str] | None = None,
    plain: str = "I cannot tell.",
) -> ScriptedBackend:
    """Replies by role; `sample` answers the sampled candidates (temperature > 0), `plain`
    the plain one (by default with no number, so no vote)."""

    def respond(request: Request) -> str:
        system = request.messages[0].content
        if system.startswith("You are a planner."):
            return planned
        if system in (candidates.REASON_SYSTEM, candidates.ANSWER_SYSTEM):
            if request.temperature > 0 and sample is not None:
                return sample(request) if callable(sample) else sample
            return direct(request) if callable(direct) else direct
        if system == CODE_SYSTEM:
            return f"```python\n{code}\n```"
        if system == candidates.PLAIN_SYSTEM:
            return plain
        replies = {COMPOSE_SYSTEM: compose, ANSWER_SYSTEM: step, EXPRESSION_SYSTEM: "0"}
        assert system in replies, f"unexpected request: {system[:80]!r}"
        return replies[system]

    return ScriptedBackend(responder=respond)


def nobody_agrees(*, compose: str, code: str) -> ScriptedBackend:
    """A two-step plan for the eggs question whose candidates all differ: the direct answer
    46, the program's `code`, each sample 50 + its seed."""
    return model(
        plan(("s1", [], "calculator", "12 * 4"), ("s2", ["s1"], "llm", "eggs in {{s1}}")),
        compose=compose,
        step="There are 48 eggs in all.",
        direct="Answer: 46",
        code=code,
        sample=lambda r: f"Answer: {50 + r.seed}",
    )


def roles(backend: ScriptedBackend) -> list[str]:
    return [r.messages[0].content[:30] for r in backend.requests]


def test_agreeing_candidates_verify_the_answer_without_a_tie_breaker(tmp_path):
    backend = model(
        plan(("s1", [], "calculator", "12 * 4")),
        compose="There are 48 eggs.",
        direct="Twelve boxes of four.\nAnswer: 48",
    )
    with Runtime(backend, store=tmp_path / "s.db", plan="always") as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
    assert (result.status, result.answer, result.chosen) == (
        "done",
        "There are 48 eggs.\n\nAnswer: 48",  # one question: the number chosen ends it
        "composed",
    )
    assert result.verified and result.failed_checks == []
    assert {c.name: c.claims for c in result.candidates} == {"composed": [48], "direct": [48]}
    assert {s.step_id for s in result.steps} == {"direct", "s1"}
    cross = [v for v in result.verdicts if v.check == "cross_check"]
    assert cross == [
        Verdict(
            check="cross_check",
            passed=True,
            evidence="composed chosen: composed, direct agree on 48",
        )
    ]
    assert not any(r.startswith("You write a short Python") for r in roles(backend))


def test_a_wrong_plan_loses_to_the_direct_answer_a_program_confirms(tmp_path):
    """The plan computes 102 - 850 = -748 (evidence, not truth); the model's own answer and
    an independent program say 748, so 748 is the answer, and verified."""
    backend = model(
        plan(
            ("s1", [], "calculator", "850 * 0.12"),
            ("s2", ["s1"], "calculator", "{{s1}} - 850"),
        ),
        compose="12% of 850 is 102, and -748 dollars are left.",
        direct="12% of 850 is 102. 850 - 102 = 748.\nAnswer: 748",
        code="print(850 - 850 * 0.12)",
    )
    with Runtime(backend, store=tmp_path / "s.db", plan="always") as runtime:
        result = runtime.run(LEFT)
        stored = runtime.store.run(result.run_id)
    assert result.status == "done" and result.chosen == "direct"
    assert "748" in result.answer and "-748" not in result.answer
    claims = {c.name: c.claims for c in result.candidates}
    assert claims == {"composed": [102, -748], "direct": [748], "program": [748]}
    assert stored.step("program").output.strip() == "748.0"  # the sandbox ran the program
    assert stored.status == "done"
    (cross,) = [v for v in stored.verdicts if v.check == "cross_check"]
    assert cross.passed and "direct, program agree on 748" in cross.evidence
    assert "composed 102/-748" in cross.evidence


def test_candidates_that_never_agree_end_unverified_with_the_floor_kept(tmp_path):
    # the program prints no number (no vote); each sample its own number
    backend = nobody_agrees(compose="There are 50 eggs.", code="print('many')")
    with Runtime(backend, store=tmp_path / "s.db", tie_budget=None, samples=2) as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
    assert (result.status, result.chosen, result.answer) == ("unverified", "direct", "Answer: 46")
    by_name = {c.name: c for c in result.candidates}
    assert by_name["program"].error == "printed no single number"
    assert by_name["sample-1"].claims == [51] and by_name["sample-2"].claims == [52]
    assert any(check.startswith("cross_check:") for check in result.failed_checks)


def made(result) -> list[str]:
    return [c.name for c in result.candidates]


def test_no_tie_breaker_starts_once_the_candidates_spent_the_budget(tmp_path):
    # scripted tokens are a quarter of the characters: the direct answer 10, the program's
    # reply ("```python\nprint('many')\n```") 6, the plain answer 3, each sample 2
    worked = "Twelve boxes of four eggs each.\nAnswer: 46"
    assert len(worked) // 4 == 10
    question = "How many eggs are in 12 boxes of 4?"
    by_budget = {}
    for budget in (1.5, 2.0, None):
        backend = model(
            plan(("s1", [], "calculator", "12 * 4")),
            direct=worked,
            code="print('many')",
            sample=lambda r: f"Answer: {50 + r.seed}",
        )
        with Runtime(backend, store=tmp_path / f"{budget}.db", tie_budget=budget) as runtime:
            by_budget[budget] = runtime.run(question)
    # 10 + 6 = 16 >= 1.5 * 10: nothing after the program; 16 + 3 = 19 < 20: one sample more
    assert made(by_budget[1.5]) == ["direct", "program"]
    assert made(by_budget[2.0]) == ["direct", "program", "plain", "sample-1"]
    assert made(by_budget[None]) == ["direct", "program", "plain", "sample-1", "sample-2"]
    for budget, result in by_budget.items():  # no agreement: the floor, unverified
        assert (result.status, result.chosen) == ("unverified", "direct")
        assert "Answer: 46" in result.answer
        (cross,) = [v.evidence for v in result.verdicts if v.check == "cross_check"]
        assert ("tie budget" in cross) == (budget is not None), cross
        if budget is not None:  # said beside the choice, not hidden
            assert f"no further tie-breaker: the tie budget ({budget:g}x) was spent" in cross


def test_a_direct_answer_that_generated_nothing_sets_no_budget(tmp_path):
    def direct(request: Request) -> str:
        raise RuntimeError("the model's server went away")

    backend = model(
        plan(("s1", [], "calculator", "12 * 4")),
        direct=direct,
        code="print('many')",
        sample=lambda r: f"Answer: {50 + r.seed}",
    )
    with Runtime(backend, store=tmp_path / "s.db", samples=2) as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
    assert made(result)[-2:] == ["sample-1", "sample-2"]
    by_name = {c.name: c for c in result.candidates}
    assert "went away" in by_name["direct"].error


@pytest.mark.parametrize("budget", [0, -1.0, "4", True, float("nan")])
def test_a_tie_budget_that_is_not_a_positive_number_is_refused(budget):
    with pytest.raises(ConfigError, match="tie_budget must be a number above 0 or None"):
        Runtime(ScriptedBackend(), store=":memory:", tie_budget=budget)


def test_samples_that_agree_with_one_side_settle_the_tie(tmp_path):
    backend = model(
        plan(("s1", [], "calculator", "12 * 4")),
        compose="There are 48 eggs.",
        direct="Answer: 46",
        code="print('many')",
        sample="Twelve fours.\nAnswer: 48",
    )
    with Runtime(backend, store=tmp_path / "s.db", tie_budget=None, plan="always") as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
    assert (result.status, result.chosen, result.answer) == (
        "done",
        "composed",
        "There are 48 eggs.\n\nAnswer: 48",
    )


def test_a_one_step_llm_plan_is_the_direct_answer_not_a_second_call(tmp_path):
    backend = model(
        plan(("s1", [], "llm", "Name two primary colours.")),
        direct="Red and blue.",
        step="MUST NOT BE ASKED",
    )
    with Runtime(backend, store=tmp_path / "s.db") as runtime:
        result = runtime.run("Name two primary colours.")
        stored = runtime.store.run(result.run_id)
    assert result.answer == "Red and blue." and result.status == "done"
    assert ANSWER_SYSTEM[:30] not in roles(backend)  # s1 was never run on its own
    assert stored.step("s1").output == "Red and blue."
    assert stored.step("s1").data == {"answered_by": "direct"}
    assert stored.step("s1").completion_tokens == 0  # its tokens are the direct candidate's
    assert [c.name for c in result.candidates] == ["direct"]


def test_a_form_check_that_fails_keeps_the_answer_and_says_unverified(tmp_path):
    """IFEval's failure: the whole instruction's form was checked against its one step, the
    step failed, and the run answered with a failure report. Now the step is held to its
    own text, the answer is kept, and the run says what failed."""
    task = "Write a short note about cats. Your response should contain at least 40 words."
    short = "Cats are curious animals that love warm places."
    backend = model(
        plan(("s1", [], "llm", task), ("s2", ["s1"], "llm", "Polish {{s1}}")),
        compose=short,
        step=short,
        direct=short,
    )
    with Runtime(backend, store=tmp_path / "s.db", max_revisions=1) as runtime:
        result = runtime.run(task)
        stored = runtime.store.run(result.run_id)
    assert result.status == "unverified"
    assert result.answer == short  # a revision that was no better is not taken
    assert result.failed_checks == ["min_words: 8 words; at least 40 required"]
    assert "could not complete" not in result.answer
    assert {s.step_id: s.status for s in stored.steps} == {
        "direct": "done",
        "s1": "done",
        "s2": "done",
    }
    step_checks = {v.check for v in stored.verdicts if v.step_id == "s1"}
    assert "min_words" not in step_checks  # the task's form is the answer's, not the step's


def test_a_step_that_fails_its_own_check_is_kept_flagged_and_the_run_goes_on(tmp_path):
    backend = model(
        plan(
            ("s1", [], "llm", "Name a colour in exactly 3 words."),
            ("s2", ["s1"], "llm", "Use {{s1}}"),
        ),
        compose="Red.",
        step="A colour is red, and it is warm.",
        direct="Red.",
    )
    with Runtime(backend, store=tmp_path / "s.db") as runtime:
        result = runtime.run("Name a colour.")
        stored = runtime.store.run(result.run_id)
    s1 = stored.step("s1")
    assert s1.status == "done" and s1.attempts == 2  # retried once with the feedback, kept
    assert s1.output == "A colour is red, and it is warm."
    assert any(
        v.check == "exact_words" and v.passed is False for v in stored.verdicts if v.step_id == "s1"
    )
    assert stored.step("s2").status == "done"  # no replan: the output was not thrown away


def test_a_candidate_that_crashes_is_dropped_with_its_reason(tmp_path):
    def crash(request: Request) -> str:
        raise RuntimeError("the server went away")

    backend = model(
        plan(("s1", [], "calculator", "12 * 4")),
        compose="There are 48 eggs.",
        direct=crash,
        code="print(48)",
    )
    with Runtime(backend, store=tmp_path / "s.db") as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
    by_name = {c.name: c for c in result.candidates}
    assert "the server went away" in by_name["direct"].error
    # the composed answer and the program agree: verified without the direct answer
    assert (result.status, result.chosen) == ("done", "composed")


def test_cli_prints_failing_checks_and_exits_by_the_documented_codes(tmp_path, monkeypatch):
    from stepgraph import cli

    backend = model(
        plan(("s1", [], "calculator", "12 * 4")),
        compose="There are 48 eggs.",
        direct="Answer: 46",
        code="print(47)",
        sample=lambda r: f"Answer: {50 + r.seed}",
    )
    monkeypatch.setattr(cli, "_backend", lambda spec: backend)
    runner = CliRunner()
    args = ["run", "How many eggs are in 12 boxes of 4?", "--db", str(tmp_path / "s.db")]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert "unverified: cross_check: direct chosen: no two candidates agree" in result.output
    strict = runner.invoke(cli.app, [*args, "--strict", "--json"])
    assert strict.exit_code == 3
    data = json.loads(strict.stdout)
    assert data["status"] == "unverified" and data["chosen"] == "direct"
    assert data["failed_checks"][0].startswith("cross_check:")


@pytest.mark.parametrize("samples", [0, 2])
def test_samples_are_only_drawn_when_asked_for(tmp_path, samples):
    backend = model(
        plan(("s1", [], "calculator", "12 * 4")),
        compose="There are 48 eggs.",
        direct="Answer: 46",
        code="print('many')",
        sample="Answer: 48",
    )
    with Runtime(backend, store=tmp_path / "s.db", tie_budget=None, samples=samples) as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
    assert [c.name for c in result.candidates if c.name.startswith("sample")] == [
        f"sample-{i}" for i in range(1, samples + 1)
    ]
    assert result.status == ("done" if samples else "unverified")


def test_an_answer_revised_until_its_checks_pass_is_verified(tmp_path):
    task = "Write a short note about cats. Your response should contain at least 12 words."
    revised = "Cats are curious animals that love warm places, soft blankets and long naps."
    backend = model(
        plan(("s1", [], "llm", task), ("s2", ["s1"], "llm", "Polish {{s1}}")),
        compose=revised,  # the composer's draft, and every revision
        step="Cats nap.",
        direct="Cats are curious.",
    )
    with Runtime(backend, store=tmp_path / "s.db") as runtime:
        result = runtime.run(task)
    # the composed draft passes and the direct one does not: composed, verified by its checks
    assert (result.status, result.chosen, result.answer) == ("done", "composed", revised)
    cross = {v.check: v.passed for v in result.verdicts}
    assert cross["min_words"] is True and cross["cross_check"] is None  # not a numeric task


def test_a_direct_answer_that_fails_a_form_check_is_revised_and_then_verified(tmp_path):
    task = "Name two colours. Your entire answer must be in lowercase letters."
    backend = model(
        plan(("s1", [], "llm", "Name two colours."), ("s2", ["s1"], "llm", "Say {{s1}}")),
        compose="RED AND BLUE.",
        step="Red and blue.",
        direct="Red and blue.",
    )
    with Runtime(backend, store=tmp_path / "s.db", max_revisions=0) as runtime:
        result = runtime.run(task)
    # both fail lowercase; the tie goes to the floor, which the mechanical repair fixes
    assert (result.status, result.chosen, result.answer) == ("done", "direct", "red and blue.")


def test_out_of_time_the_direct_answer_is_still_given(tmp_path):
    import time

    def slow(request: Request) -> str:
        time.sleep(3)
        return "too late"

    backend = model(
        plan(("s1", [], "llm", "Think about eggs."), ("s2", ["s1"], "llm", "More on {{s1}}")),
        direct="Answer: 48",
        compose="There are 48 eggs.",
    )
    respond = backend._responder

    def routed(request: Request) -> str:
        if request.messages[0].content == ANSWER_SYSTEM:
            return slow(request)
        return respond(request)

    backend._responder = routed
    with Runtime(backend, store=tmp_path / "s.db", max_seconds=1.5, plan="always") as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
        stored = runtime.store.run(result.run_id)
    assert result.status == "budget_exceeded"
    assert (result.answer, stored.answer) == ("Answer: 48", "Answer: 48")
    assert "the model's direct one, not cross-checked" in result.error


LOWERCASE = "Name two colours. Your entire answer must be in lowercase letters."


def test_a_direct_answer_that_passes_every_form_check_is_the_answer_without_a_plan(tmp_path):
    """IFEval, 0.5B: a plan's answer beat the direct one once in 112 prompts, for half of a
    run's tokens. An answer whose form code can check, and which passes, needs no plan."""
    backend = model("MUST NOT BE ASKED", direct="Red and Blue.", step="MUST NOT BE ASKED")
    with Runtime(backend, store=tmp_path / "s.db") as runtime:
        result = runtime.run(LOWERCASE)
        stored = runtime.store.run(result.run_id)
    assert (result.status, result.chosen, result.answer) == ("done", "direct", "red and blue.")
    assert not any(r.startswith("You are a planner.") for r in roles(backend))
    assert [s.executor for s in result.plan.steps] == ["llm"]
    assert stored.step("s1").data == {"answered_by": "direct"}
    (note,) = [v for v in result.verdicts if v.check == "planning"]
    assert note.passed is None and "passed all 1 checks" in note.evidence
    assert result.failed_checks == []


def test_a_direct_answer_that_fails_a_form_check_after_repair_gets_a_plan(tmp_path):
    task = "Write a short note about cats. Your response should contain at least 12 words."
    backend = model(
        plan(("s1", [], "llm", task), ("s2", ["s1"], "llm", "Polish {{s1}}")),
        compose="Cats are curious animals that love warm places, soft blankets and long naps.",
        step="Cats nap.",
        direct="Cats are curious.",
    )
    with Runtime(backend, store=tmp_path / "s.db") as runtime:
        result = runtime.run(task)
    asked = roles(backend)
    planner = next(i for i, r in enumerate(asked) if r.startswith("You are a planner."))
    assert planner > asked.index(candidates.ANSWER_SYSTEM[:30])  # after the direct answer
    assert {s.step_id for s in result.steps} == {"direct", "s1", "s2"}
    assert not any(v.check == "planning" for v in result.verdicts)


def test_several_questions_are_planned_only_where_their_candidates_disagree(tmp_path):
    task = "How many eggs are in 12 boxes of 4, and which box is heaviest? Answer in lowercase."
    for code, planned in [("print(48)", False), ("print(47)", True)]:
        backend = model(
            plan(("s1", [], "calculator", "12 * 4")),
            compose="there are 48 eggs.",
            direct="answer: 48",
            code=code,
            sample="MUST NOT BE ASKED" if not planned else "answer: 50",
        )
        with Runtime(backend, store=tmp_path / "s.db", tie_budget=None, samples=1) as runtime:
            result = runtime.run(task)
        assert any(r.startswith("You are a planner.") for r in roles(backend)) is planned
        names = [c.name for c in result.candidates]
        if planned:  # the plan's answer joins the candidates made before it, not made again
            assert names == ["composed", "direct", "program", "plain", "sample-1"]
            assert roles(backend).count(CODE_SYSTEM[:30]) == 1
            # composed and direct agree on 48, but two of four are not most of the vote
            assert (result.status, result.chosen) == ("unverified", "composed")
        else:
            assert names == ["direct", "program"] and result.status == "done"
            assert planning_notes(result) == ["no plan made: direct, program agree on 48"]


def test_writing_beside_a_number_and_outside_facts_are_always_planned(tmp_path):
    """A number does not settle what is to be written, and documents hold facts the model's
    own answer cannot: both are planned even when the direct answer's form passes and its
    number is confirmed."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "shop.md").write_text("The shop opens at nine.")
    for kwargs, task in [
        ({}, "How many eggs are in 12 boxes of 4? Suggest a recipe for them."),
        ({"docs": tmp_path / "docs"}, LOWERCASE),
        ({"plan": "always"}, "How many eggs are in 12 boxes of 4?"),
    ]:
        backend = model(
            plan(("s1", [], "calculator", "12 * 4")),
            compose="there are 48 eggs.",
            direct="answer: 48",
            code="print(48)",
        )
        with Runtime(backend, store=tmp_path / "s.db", **kwargs) as runtime:
            result = runtime.run(task)
        assert any(r.startswith("You are a planner.") for r in roles(backend)), task
        assert not any(v.check == "planning" for v in result.verdicts)


def test_a_planner_that_fails_leaves_the_model_s_own_answer(tmp_path):
    """A plan that cannot be made is no reason to throw away an answer already decoded."""
    backend = model("not a plan at all", direct="Red and blue.")
    with Runtime(backend, store=tmp_path / "s.db") as runtime:
        result = runtime.run("Name two primary colours.")
    assert (result.status, result.answer, result.chosen) == ("done", "Red and blue.", "direct")
    (note,) = [v for v in result.verdicts if v.check == "planning"]
    assert note.evidence.startswith("no plan: ") and "JSON" in note.evidence
    with Runtime(
        model("not a plan at all", direct="x"), store=tmp_path / "t.db", direct=False
    ) as rt:
        assert rt.run("Name two primary colours.").status == "failed"  # nothing to fall back on


# -- the plan only where it is needed: a single question settled by agreeing candidates ----


def planning_notes(result) -> list[str]:
    return [v.evidence for v in result.verdicts if v.check == "planning"]


def test_a_question_whose_direct_answer_a_program_confirms_is_not_planned(tmp_path):
    backend = model(
        "MUST NOT BE ASKED",
        direct="Twelve boxes of four.\nAnswer: 48",
        code="print(12 * 4)",
        sample="MUST NOT BE ASKED",
    )
    with Runtime(backend, store=tmp_path / "s.db") as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
        stored = runtime.store.run(result.run_id)
    assert (result.status, result.chosen, result.answer) == (
        "done",
        "direct",
        "Twelve boxes of four.\nAnswer: 48",
    )
    assert not any(r.startswith("You are a planner.") for r in roles(backend))
    assert not any(r.temperature > 0 for r in backend.requests)  # no sample was needed
    assert [c.name for c in result.candidates] == ["direct", "program"]
    assert planning_notes(result) == ["no plan made: direct, program agree on 48"]
    assert stored.step("program").output.strip() == "48"  # the sandbox ran it
    assert {s.step_id for s in stored.steps} == {"direct", "program", "s1"}


def test_tie_breakers_are_made_one_at_a_time_until_two_agree(tmp_path):
    backend = model(
        "MUST NOT BE ASKED",
        direct="Answer: 46",
        code="print('many')",  # no vote
        sample=lambda r: "Answer: 50" if r.seed == 1 else "Forty-six.\nAnswer: 46",
    )
    with Runtime(backend, store=tmp_path / "s.db", tie_budget=None, samples=3) as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
    names = [c.name for c in result.candidates]
    assert names == ["direct", "program", "plain", "sample-1", "sample-2"]  # sample-3 never made
    assert sum(r.temperature > 0 for r in backend.requests) == 2
    # direct and sample-2 agree, two of the three that voted: settled, without a plan
    assert (result.status, result.chosen, result.answer) == ("done", "direct", "Answer: 46")
    assert not any(r.startswith("You are a planner.") for r in roles(backend))


def test_the_plain_answer_breaks_a_tie_before_any_sample(tmp_path):
    """Greedy, in other words, without the calculator: where it agrees with the program no
    sample is made, and its text is the answer."""
    backend = model(
        "MUST NOT BE ASKED",
        direct="Answer: 46",
        code="print(48)",
        plain="12 * 4 = 48.\nAnswer: 48",
        sample="MUST NOT BE ASKED",
    )
    with Runtime(backend, store=tmp_path / "s.db", tie_budget=None) as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
    assert [c.name for c in result.candidates] == ["direct", "program", "plain"]
    assert (result.status, result.chosen, result.answer) == (
        "done",
        "plain",
        "12 * 4 = 48.\nAnswer: 48",
    )
    (asked,) = [r for r in backend.requests if r.messages[0].content == candidates.PLAIN_SYSTEM]
    assert asked.temperature == 0 and asked.messages[-1].content.endswith("boxes of 4?")
    assert not any(r.temperature > 0 for r in backend.requests)
    assert planning_notes(result) == ["no plan made: program, plain agree on 48; direct 46"]


def test_two_samples_that_agree_settle_a_question_without_a_plan(tmp_path):
    backend = model(
        "MUST NOT BE ASKED",
        direct="Answer: 46",
        code="print('many')",
        sample="Twelve fours.\nAnswer: 48",
    )
    with Runtime(backend, store=tmp_path / "s.db", tie_budget=None, samples=3) as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
    assert [c.name for c in result.candidates] == [
        "direct",
        "program",
        "plain",
        "sample-1",
        "sample-2",
    ]
    assert (result.status, result.chosen) == ("done", "sample-1")
    assert result.answer == "Twelve fours.\nAnswer: 48"
    assert planning_notes(result) == [
        "no plan made: sample-1, sample-2 agree on 48; direct 46, plain gave no number"
    ]


def test_a_question_whose_candidates_never_agree_keeps_the_floor_unverified(tmp_path):
    """No plan either: for one question a plan's answer is the weaker candidate."""
    backend = model(
        "MUST NOT BE ASKED",
        direct="Answer: 46",
        code="print(47)",
        plain="Answer: 49",
        sample=lambda r: f"Answer: {50 + r.seed}",
    )
    with Runtime(backend, store=tmp_path / "s.db", tie_budget=None) as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
    assert (result.status, result.chosen, result.answer) == ("unverified", "direct", "Answer: 46")
    assert not any(r.startswith("You are a planner.") for r in roles(backend))
    names = [c.name for c in result.candidates]
    assert names == ["direct", "program", "plain", "sample-1", "sample-2"]
    # made once, before the choice, and reused by it
    assert roles(backend).count(CODE_SYSTEM[:30]) == 1
    assert sum(r.temperature > 0 for r in backend.requests) == 2
    assert planning_notes(result) == [
        "no plan made: no two candidates agree; direct's 46 is kept; program 47, plain 49, "
        "sample-1 51, sample-2 52"
    ]
    assert any(c.startswith("cross_check:") for c in result.failed_checks)


def test_plan_setting_is_checked():
    with pytest.raises(ConfigError, match="plan must be 'needed' or 'always'"):
        Runtime(ScriptedBackend(), store=":memory:", plan="sometimes")


def test_every_event_of_a_run_is_typed_and_reads_back_from_its_plain_form(tmp_path):
    from stepgraph.runtime import parse_event
    from stepgraph.runtime.events import PlanReady, StepFinished, VerdictMade

    backend = nobody_agrees(compose="There are 48 eggs.", code="print(47)")
    seen = []
    with Runtime(backend, store=tmp_path / "s.db", plan="always") as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?", on_event=seen.append)
        logged = runtime.store.run(result.run_id).events
    kinds = {type(e) for e in seen}
    assert {PlanReady, StepFinished, VerdictMade} <= kinds and type(seen[-1]).__name__ == (
        "RunFinished"
    )
    for e in seen:
        again = parse_event({"type": e.type, "run_id": e.run_id, "step_id": e.step_id, **e.data})
        assert again == e
    # the store's log keeps the same fields
    finished = [e for e in logged if e.type == "step_finished"]
    assert {e.payload["status"] for e in finished} <= {"done", "failed", "skipped"}


def test_a_result_past_64_bits_is_kept_and_the_run_finishes(tmp_path):
    """LangGraph's checkpointer cannot write such an integer; the run must not die of it."""
    backend = model(
        plan(("s1", [], "calculator", "3 ** 100")),
        compose="It is 515377520732011331036461129765621272702107522001.",
        direct="Answer: 515377520732011331036461129765621272702107522001",
    )
    with Runtime(backend, store=tmp_path / "s.db", plan="always", samples=0) as runtime:
        result = runtime.run("What is 3 to the power 100, and how many digits has it?")
        stored = runtime.store.run(result.run_id)
    assert result.status in ("done", "unverified") and result.error is None
    assert stored.step("s1").data == 3**100  # the store keeps the exact value


def test_an_answer_that_no_longer_states_the_chosen_number_is_never_done(tmp_path, monkeypatch):
    from stepgraph.verifier import Composer, Composition

    async def lose_the_number(self, task, draft, *args, **kwargs):
        return Composition(answer="There are many eggs.")

    monkeypatch.setattr(Composer, "finish", lose_the_number)
    backend = model("MUST NOT BE ASKED", direct="12 * 4 = 48\nAnswer: 48", code="print(12 * 4)")
    with Runtime(backend, store=tmp_path / "s.db") as runtime:
        result = runtime.run("How many eggs are in 12 boxes of 4?")
    assert (result.status, result.answer) == ("unverified", "There are many eggs.")
    lost = next(v for v in result.verdicts if v.check == "states_choice")
    assert lost.passed is False and "48" in lost.evidence


def test_a_follow_up_s_program_is_shown_the_conversation(tmp_path):
    first = "We are 14 people with a budget of $3,500. How much is that per person?"
    backend = model("MUST NOT BE ASKED", direct="3500 / 14 = 250\nAnswer: 250", code="print(250)")
    with Runtime(backend, store=tmp_path / "s.db") as runtime:
        conversation = runtime.store.new_conversation("budget")
        runtime.run(first, conversation_id=conversation)
        backend.requests.clear()
        runtime.run("And if 3 more people join?", conversation_id=conversation)
    (program,) = [r for r in backend.requests if r.messages[0].content == CODE_SYSTEM]
    shown = [m.content for m in program.messages[1:-1]]
    assert first in shown and any("250" in m for m in shown)  # the turn before, both sides


def test_a_run_whose_planned_steps_all_fail_is_not_done(tmp_path):
    """data_analyst with a retrained planner: python steps over a table only sql could read
    both failed, and the direct answer's invented figures passed every form check, `done`.
    Now the run says no planned step finished, and still answers."""
    task = "Which region in my sales table had the highest revenue?"
    invented = "The West region had the highest revenue."
    planned = plan(
        ("s1", [], "python", "Read sales.csv and print revenue by region."),
        ("s2", ["s1"], "llm", "Using {{s1}}, name the region with the highest revenue."),
    )

    def run(code: str):
        backend = model(planned, direct=invented, compose=invented, step=invented, code=code)
        with Runtime(backend, store=tmp_path / f"{len(code)}.db", max_replans=0) as runtime:
            return runtime.run(task)

    failed = run("print(open('sales.csv').read())")  # no such file in the sandbox
    assert (failed.status, failed.answer) == ("unverified", invented)  # kept, not replaced
    (note,) = [v for v in failed.verdicts if v.check == "planned_steps"]
    assert not note.passed and "s1 (python) failed" in note.evidence
    finished = run("print('West 7770')")
    assert finished.status == "done"
    assert not [v for v in finished.verdicts if v.check == "planned_steps"]
