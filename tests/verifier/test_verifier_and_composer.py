"""The verifier's step and answer checks, the judge, and the composer's revisions."""

import asyncio
import json

from stepgraph import ScriptedBackend
from stepgraph.executors.base import StepInput, StepOutput
from stepgraph.models.base import Message
from stepgraph.planner.plan import Step
from stepgraph.runtime.events import StepResult
from stepgraph.verifier import Composer, Composition, Verdict, Verifier
from stepgraph.verifier.composer import trimmed
from stepgraph.verifier.verifier import computed_results, parse_judgement


def check(verifier, step, output, instruction=None):
    inp = StepInput(step_id=step.id, instruction=instruction or step.instruction)
    return asyncio.run(verifier.check_step(step, inp, output))


def by_name(verdicts):
    return {v.check: v.passed for v in verdicts}


def test_executor_errors_and_empty_outputs_fail():
    step = Step(id="s1", instruction="say hi")
    assert by_name(check(Verifier(), step, StepOutput(error="boom"))) == {"executor_ok": False}
    assert by_name(check(Verifier(), step, StepOutput(output="  \n"))) == {"non_empty": False}


def test_wrong_arithmetic_in_an_llm_step_fails_but_a_calculator_is_trusted():
    text = "The cost is 12 * 4 = 46 dollars."
    llm = check(Verifier(), Step(id="s1", instruction="cost"), StepOutput(output=text))
    assert by_name(llm)["arithmetic"] is False
    calc = Step(id="s1", instruction="cost", executor="calculator")
    assert "arithmetic" not in by_name(check(Verifier(), calc, StepOutput(output=text)))


def test_a_step_schema_is_enforced():
    step = Step(id="s1", instruction="list", args={"schema": {"type": "array"}})
    assert by_name(check(Verifier(), step, StepOutput(output='{"a": 1}')))["json_schema"] is False
    assert by_name(check(Verifier(), step, StepOutput(output="[1, 2]")))["json_schema"] is True


def test_constraints_written_in_the_step_are_checked_on_its_output():
    step = Step(id="s1", instruction="Describe the sea in all lowercase letters.")
    failed = check(Verifier(), step, StepOutput(output="The Sea Is Blue."))
    assert any(v.passed is False for v in failed), failed
    passed = check(Verifier(), step, StepOutput(output="the sea is blue."))
    assert all(v.passed is not False for v in passed), passed


def test_user_checks_run_plain_or_async():
    async def no_foo(step, inp, out):
        return [Verdict(check="no_foo", passed="foo" not in out.output)]

    def short(step, inp, out):
        return [Verdict(check="short", passed=len(out.output) < 10)]

    verifier = Verifier(checks=[no_foo, short])
    verdicts = by_name(check(verifier, Step(id="s1", instruction="x"), StepOutput(output="foo!")))
    assert verdicts["no_foo"] is False and verdicts["short"] is True


def test_the_judge_is_asked_only_where_nothing_deterministic_applies():
    judge = ScriptedBackend(['{"passed": false, "reason": "it does not rhyme"}'])
    verifier = Verifier(judge, judge_steps=True)
    verdicts = check(verifier, Step(id="s1", instruction="write a rhyme"), StepOutput(output="hi"))
    (verdict,) = [v for v in verdicts if v.check == "judge"]
    assert verdict.passed is False and "rhyme" in verdict.criterion
    assert "criterion:" in verdict.as_dict()["evidence"]
    # arithmetic could be checked: the judge is not asked
    check(verifier, Step(id="s2", instruction="sum"), StepOutput(output="1 + 1 = 2"))
    assert len(judge.requests) == 1


def test_a_garbage_or_failing_judge_is_no_verdict_never_a_pass():
    assert parse_judgement("yes I think so", "c").passed is None
    assert parse_judgement('{"passed": "yes"}', "c").passed is None
    assert parse_judgement("[true]", "c").passed is None
    assert parse_judgement('{"passed": true, "reason": "ok"}', "c").passed is True

    class Broken(ScriptedBackend):
        def generate(self, requests):
            raise ConnectionError("server went away")

    verifier = Verifier(Broken(), judge_steps=True)
    verdicts = check(verifier, Step(id="s1", instruction="x"), StepOutput(output="hi"))
    assert [(v.check, v.passed) for v in verdicts][-1] == ("judge", None)


def result(step_id, executor, output, deps=(), status="done"):
    return StepResult(
        step_id=step_id,
        executor=executor,
        instruction=f"do {step_id}",
        output=output,
        depends_on=list(deps),
        status=status,
    )


def test_the_answer_must_state_what_the_last_computations_gave():
    results = [
        result("s1", "calculator", "100"),
        result("s2", "python", "1020.5", ["s1"]),
        result("s3", "llm", "text", ["s2"]),
    ]
    # s1 feeds another computation, s2 feeds only the llm step... which is not the last here
    assert computed_results(results) == []
    assert computed_results(results, final_id="s3") == [("s2: do s2", 1020.5)]
    verdicts = asyncio.run(
        Verifier().check_answer("total?", "It costs 1000.", results, final_id="s3")
    )
    assert by_name(verdicts)["computed_results_stated"] is False


def compose(replies, task, results, can_spend=lambda spent: True, max_revisions=2):
    model = ScriptedBackend(replies)
    # the calculator off: these replies carry the arithmetic errors that revision must fix
    composer = Composer(model, Verifier(), max_revisions=max_revisions, calculate=False)
    out = asyncio.run(composer.compose(task, results, final_id="s2", can_spend=can_spend))
    return out, model


TWO_STEPS = [result("s1", "calculator", "48"), result("s2", "llm", "notes", ["s1"])]


def test_a_failing_answer_is_revised_with_its_failures_listed():
    out, model = compose(["4 boxes of 12 is 12 * 4 = 46.", "12 * 4 = 48 eggs."], "eggs?", TWO_STEPS)
    assert out.answer == "12 * 4 = 48 eggs." and out.revisions == 1
    assert all(v.passed is not False for v in out.verdicts)
    assert "12 * 4 = 46 is wrong" in model.requests[1].messages[-1].content
    assert out.completion_tokens > 0


def test_a_revision_that_is_no_better_is_not_kept_and_revisions_are_bounded():
    bad = "12 * 4 = 46, so 46 eggs."
    worse = "12 * 4 = 46 and 2 + 2 = 5."
    out, model = compose([bad, worse, worse], "eggs?", TWO_STEPS)
    assert out.answer == bad and out.revisions == 2 and len(model.requests) == 3


def test_a_revision_that_repeats_the_request_is_cut_where_the_repeat_starts():
    echoed = (
        "12 * 4 = 48 eggs.\n\nThe draft fails these checks:\n- arithmetic: 12 * 4 = 46 is wrong"
    )
    out, _ = compose(["4 boxes of 12 is 12 * 4 = 46.", echoed], "eggs?", TWO_STEPS)
    assert out.answer == "12 * 4 = 48 eggs." and out.revisions == 1
    only_echo = "A draft answer:\n4 boxes of 12 is 12 * 4 = 46."
    out, _ = compose(["12 * 4 = 46.", "\n" + only_echo, "\n" + only_echo], "eggs?", TWO_STEPS)
    assert out.answer == "12 * 4 = 46."  # nothing before the repeat: no revision taken


def test_an_answer_is_never_cut_to_the_lead_in_of_what_it_was_to_say():
    answer = "The answer to your question is:\n\nLisbon will be warmer tomorrow. Oslo is colder."
    assert trimmed("Answer in one sentence.", answer) == answer  # not "... question is:"
    assert trimmed("Answer in one sentence.", "Lisbon is warmer. Oslo is colder.") == (
        "Lisbon is warmer."
    )


def test_no_revision_once_the_budget_is_spent():
    out, model = compose(["12 * 4 = 46."], "eggs?", TWO_STEPS, can_spend=lambda spent: False)
    assert out.revisions == 0 and len(model.requests) == 1
    assert any(v.passed is False for v in out.verdicts)


def test_what_code_can_fix_is_fixed_before_the_model_is_asked():
    task = "Describe eggs. Your entire answer must be in lowercase letters."
    out, model = compose(["Eggs Are 48.", "Eggs: 48.", "EGGS 48"], task, TWO_STEPS)
    assert out.answer == "eggs are 48."
    assert all(v.passed is not False for v in out.verdicts), out.verdicts
    assert out.revisions == 0 and len(model.requests) == 1  # the composing call only


def test_a_revision_is_repaired_too():
    task = (
        "Describe eggs in exactly 2 sentences. Wrap your entire answer in double quotation marks."
    )
    # the draft fails both; code quotes it, the model fixes the count, code quotes that again
    out, model = compose(["Eggs are 48.", "Eggs are 48. They are white."], task, TWO_STEPS)
    assert out.answer == '"Eggs are 48. They are white."', out.answer
    assert out.revisions == 1 and len(model.requests) == 2


def test_contradictory_constraints_are_said_not_looped_on():
    task = "Write about eggs. Write at least 200 words and at most 50 words."
    out, model = compose(["Eggs come in boxes of 48."] * 3, task, TWO_STEPS)
    assert "contradict" in out.answer.lower()
    assert len(model.requests) <= 3
    assert "contradictory_constraints" in by_name(out.verdicts)


def test_a_single_llm_step_is_the_answer_and_nothing_failed_means_no_model_call():
    out, model = compose([], "hi", [result("s1", "llm", "Hello there.")])
    assert out.answer == "Hello there." and model.requests == []


def test_nothing_done_says_what_failed():
    failed = result("s1", "python", "", status="failed").model_copy(update={"error": "boom"})
    out, model = compose([], "x", [failed])
    assert "could not complete" in out.answer and "boom" in out.answer and not model.requests


def test_verdicts_serialise_for_the_store():
    verdict = Verdict(check="judge", passed=None, evidence="garbage", criterion="is it good")
    assert json.loads(json.dumps(verdict.as_dict()))["passed"] is None


def test_an_llm_step_must_state_the_numbers_its_dependencies_computed():
    step = Step(id="s2", instruction="Report the total.", depends_on=["s1"])
    inp = StepInput(step_id="s2", instruction="Report the total.", dependencies={"s1": "1020.5"})
    wrong = asyncio.run(Verifier().check_step(step, inp, StepOutput(output="It took $458.")))
    assert by_name(wrong)["dependency_results_stated"] is False
    assert "1020.5 (the result of s1)" in [v for v in wrong if v.passed is False][0].evidence
    right = asyncio.run(Verifier().check_step(step, inp, StepOutput(output="It took $1,020.50.")))
    assert by_name(right)["dependency_results_stated"] is True
    prose = StepInput(step_id="s2", instruction="x", dependencies={"s1": "a long text"})
    checked = asyncio.run(Verifier().check_step(step, prose, StepOutput(output="ok")))
    assert "dependency_results_stated" not in by_name(checked)


def test_the_composer_has_the_calculator_write_its_arithmetic():
    model = ScriptedBackend(["4 boxes of 12 is 12 * 4 = 46 eggs.", "eggs."])
    composer = Composer(model, Verifier())
    out = asyncio.run(composer.compose("eggs?", TWO_STEPS, final_id="s2"))
    assert out.answer == "4 boxes of 12 is 12 * 4 = 48 eggs." and out.revisions == 0


def test_executors_are_known_by_what_they_declare_not_by_their_name():
    """A plugin that computes is held to its result; one named "calculator" that does not
    declare `computes` is not, and neither is an "llm" that does not write prose."""

    class Abacus:
        name, description, computes = "abacus", "counts beads", True

    class Impostor:
        name, description = "calculator", "guesses"

    verifier = Verifier()
    verifier.know({"abacus": Abacus(), "calculator": Impostor()})
    assert verifier.computing == {"abacus"} and verifier.writing == frozenset()
    results = [result("s1", "abacus", "42"), result("s2", "calculator", "7")]
    verdicts = asyncio.run(verifier.check_answer("how many?", "There are 41.", results))
    assert by_name(verdicts)["computed_results_stated"] is False
    assert "42" in next(v.evidence for v in verdicts if v.check == "computed_results_stated")
    assert "7" not in next(v.evidence for v in verdicts if v.check == "computed_results_stated")
    # on its own a verifier knows the built-in executors
    assert Verifier().computing == {"calculator", "python", "sql"}
    assert Verifier().writing == {"llm"}


def test_a_greedy_loop_is_cut_to_one_copy():
    from stepgraph.verifier.composer import collapse_repeats, repaired

    looped = "Sarah lives here. " + "She is always hot. " * 40 + "The end."
    assert collapse_repeats(looped) == "Sarah lives here. She is always hot. The end."
    assert collapse_repeats("a\nsame line\nsame line\nsame line\nb") == "a\nsame line\nb"
    said_twice = "It rains today. It rains today. Then it stops."
    assert collapse_repeats(said_twice) == said_twice  # twice may be meant
    task = "Write about Sarah in at most 20 words."
    assert repaired(task, looped) == "Sarah lives here. She is always hot. The end."


def test_an_answer_too_long_is_cut_only_after_the_model_could_not_shorten_it():
    task = "Describe eggs in at most 3 sentences, and end with: That is all."
    long = "There are 48 eggs. They sit in 4 boxes. Each box holds 12. That is all."
    out, model = compose([long, long, long], task, TWO_STEPS)
    assert out.revisions == 2 and len(model.requests) == 3  # the model was asked first
    # cut after its second sentence, and the end phrase put back by code
    assert out.answer == "There are 48 eggs. They sit in 4 boxes. That is all"
    assert all(v.passed is not False for v in out.verdicts), out.verdicts
    shorter = "There are 48 eggs in boxes of 12. That is all."
    out, model = compose([long, shorter], task, TWO_STEPS)
    assert (out.answer, out.revisions) == (shorter, 1)  # a revision that fits is not cut


# --- a worked answer's final form -------------------------------------------------------------

BAKERY = (
    "A bakery sells muffins for $3.25 and cookies for $1.75. It sold 146 muffins and 312 "
    "cookies. How much did it take in, and which item brought in more? Answer in two sentences."
)
WORKED = (
    "Muffins: 146 * 3.25 = 474.5 dollars.\nCookies: 312 * 1.75 = 564 dollars.\n"
    "Total: 474.5 + 546 = 1020.5 dollars.\nSo 1020.5 > 546.\n"
    "The bakery took in 1020.5 dollars, and the item that brought in more money is muffins."
)
ASKED = [Message(role="system", content="Work it out."), Message(role="user", content=BAKERY)]


def finish(replies, task, draft, *, keep=None, worked=None, max_revisions=2):
    model = ScriptedBackend(replies)
    composer = Composer(model, Verifier(), max_revisions=max_revisions, calculate=False)
    checked = asyncio.run(Verifier().check_answer(task, draft, [], from_results=False))
    out = asyncio.run(
        composer.finish(
            task,
            Composition(answer=draft, verdicts=checked),
            [],
            from_results=False,
            keep=keep,
            worked=worked,
        )
    )
    return out, model


def test_a_worked_answer_is_restated_from_its_checked_equations_alone():
    short = "The bakery took in $1020.50, and cookies brought in more money than muffins did."
    out, model = finish([short], BAKERY, WORKED, keep=1020.5, worked=ASKED)
    asked = model.requests[0].messages[-1].content
    # the equations that hold, not the working, its wrong line, or its wrong conclusion
    assert "Worked out and checked: 146 * 3.25 = 474.5; 474.5 + 546 = 1020.5." in asked
    assert "564" not in asked and "muffins." not in asked and "exactly 2 sentences" in asked
    # one sentence of two clauses, split by code into the two asked for
    assert (
        out.answer == "The bakery took in $1020.50. Cookies brought in more money than muffins did."
    )
    assert not [v for v in out.verdicts if v.passed is False], out.verdicts


def test_a_worked_answer_without_equations_is_asked_in_its_own_conversation():
    task = "How many legs do 3 spiders have? Answer in one sentence."
    draft = "A spider has eight legs.\nThree spiders have twenty-four legs.\nAnswer: 24"
    out, model = finish(["Three spiders have 24 legs."], task, draft, keep=24, worked=ASKED)
    sent = model.requests[0].messages
    assert [m.role for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2].content == draft and "without the working" in sent[3].content
    assert out.answer == "Three spiders have 24 legs."


def test_without_a_worked_conversation_the_draft_is_revised_as_before():
    out, model = finish(["The bakery took in 1020.5 dollars."] * 2, BAKERY, WORKED, keep=1020.5)
    assert "A draft answer:" in model.requests[0].messages[-1].content


def test_a_cut_that_drops_the_chosen_number_is_not_taken():
    task = "How much is 146 * 3.25 + 312 * 1.75? Answer in at most 2 sentences."
    draft = "We add the two sums. Muffins give 474.5 and cookies 546. The total is 1020.5 dollars."
    # every revision keeps the number but is no shorter, so only a cut could fit the bound
    out, _ = finish([draft] * 2, task, draft, keep=1020.5)
    assert out.answer == draft  # its first two sentences fit, but say nothing of 1020.5
    out, _ = finish([draft] * 2, task, draft)
    assert out.answer == "We add the two sums. Muffins give 474.5 and cookies 546."


def test_a_repair_that_drops_the_chosen_number_is_not_taken():
    task = "How many eggs are in 12 boxes of 4? Wrap your entire output in JSON format."
    draft = 'There are 12 * 4 = 48 eggs.\n```json\n{"boxes": 12, "per_box": 4}\n```'
    out, model = finish([draft, draft], task, draft, keep=48)
    assert out.answer == draft  # the JSON alone would pass the form and lose the 48
    out, model = finish([draft, draft], task, draft)
    assert json.loads(out.answer) == {"boxes": 12, "per_box": 4}


# --- two responses ---------------------------------------------------------------------------

JOKES = (
    "Write two jokes about rockets. Do not contain commas in your response. "
    "Separate the two jokes with 6 asterisk symbols: ******."
)


def test_two_responses_are_written_one_at_a_time_and_joined_by_code():
    draft = "******\n*Rocket launches into space*"  # one response, as the 0.5B model wrote
    first = "Why did the rocket stay home? It was grounded."
    second = "******\nRockets never lie because they always launch the truth."
    out, model = finish([first, second], JOKES, draft)
    assert out.answer == f"{first}\n******\nRockets never lie because they always launch the truth."
    assert not [v for v in out.verdicts if v.passed is False], out.verdicts
    asked_first, asked_second = (r.messages[-1].content for r in model.requests)
    assert "only the first of the two responses" in asked_first
    assert asked_first.endswith("requirements:\n- do not use any commas")  # not the separator
    assert first in asked_second and model.requests[1].temperature > 0  # differ from the first


def test_two_responses_that_come_back_the_same_are_not_taken():
    draft = "Why did the rocket stay home? It was grounded."
    same = "Rockets are fun."
    out, model = finish([same, same, same], JOKES, draft, max_revisions=1)
    assert out.answer == draft  # joined, the two are the same: no better than the draft
    assert any(v.check == "two_responses" and v.passed is False for v in out.verdicts)
