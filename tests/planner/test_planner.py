"""Planner with a ScriptedBackend: parsing, the one repair, streaming, the prompt, bad input."""

from __future__ import annotations

import asyncio
import json
import random
import re

import pytest

from stepgraph.errors import InstructionError, PlanError
from stepgraph.models.base import Message
from stepgraph.models.scripted import ScriptedBackend
from stepgraph.planner.plan import Plan, validate_plan
from stepgraph.planner.planner import Planner

EXECUTORS = {
    "llm": "answers, explains or writes text; use for knowledge, reasoning and writing.",
    "python": "runs a short Python program and returns what it prints; use for exact math.",
}


def plan_text(*steps: tuple, **dumps) -> str:
    """plan_text(("s1", [], "do x"), ("s2", ["s1"], "use {{s1}}", "python"))."""
    out = []
    for step_id, deps, instruction, *executor in steps:
        out.append(
            {
                "id": step_id,
                "depends_on": deps,
                "executor": executor[0] if executor else "llm",
                "instruction": instruction,
            }
        )
    return json.dumps({"steps": out}, **dumps)


VALID = plan_text(
    ("s1", [], "Find the population of France."),
    ("s2", [], "Find the population of Spain."),
    ("s3", ["s1", "s2"], "Compare {{s1}} and {{s2}}."),
)
CYCLE = plan_text(("s1", ["s2"], "a"), ("s2", ["s1"], "b"), ("s3", ["s1", "s2"], "c"))
UNKNOWN_EXECUTOR = plan_text(("s1", [], "search the web", "browser"), ("s2", ["s1"], "sum up"))


def make(replies: list[str], **options) -> tuple[Planner, ScriptedBackend]:
    backend = ScriptedBackend(replies)
    options.setdefault("executors", EXECUTORS)
    return Planner(backend, **options), backend


def prompt_text(request) -> str:
    return "\n".join(m.content for m in request.messages)


# --- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("constrained", [True, False])
def test_valid_plan_parses(constrained: bool):
    planner, backend = make([VALID], constrained=constrained)
    planning = planner.stream("Compare the populations of France and Spain.")
    for _ in planning:  # the steps as they are decoded
        pass
    plan = planning.plan
    assert isinstance(plan, Plan)
    assert [s.id for s in plan.steps] == ["s1", "s2", "s3"]
    assert plan.step("s3").depends_on == ["s1", "s2"]
    assert plan.goal == "Compare the populations of France and Spain."
    assert planning.stats["attempts"] == 1
    assert len(backend.requests) == 1
    grammar = backend.requests[0].grammar
    assert (grammar is not None) == constrained
    if constrained:  # the grammar knows the executors
        assert '"\\"llm\\""' in grammar and '"\\"python\\""' in grammar


@pytest.mark.parametrize(
    "reply",
    [
        f"```json\n{VALID}\n```",
        f"Sure! Here is the plan:\n\n```json\n{VALID}\n```\nGood luck.",
        f"Here is the plan you asked for:\n{VALID}\nLet me know if it needs changes.",
        plan_text(("s1", [], "a"), ("s2", ["s1"], "b {{s1}}"), indent=2),
    ],
    ids=["fenced", "fenced-with-chatter", "leading-chatter", "indented"],
)
def test_unconstrained_output_with_fences_and_chatter(reply: str):
    planner, _ = make([reply], constrained=False)
    plan = planner.plan("Do the thing.")
    assert plan.steps[0].id == "s1"
    assert plan.final.depends_on  # the last step depends on the others


def test_bare_list_of_steps_parses():
    planner, _ = make([], constrained=False)
    raw = json.dumps(json.loads(VALID)["steps"])
    assert [s.id for s in planner.parse(raw).steps] == ["s1", "s2", "s3"]


def test_deeply_nested_output_is_a_plan_error():
    planner, _ = make([], constrained=False)
    with pytest.raises(PlanError):
        planner.parse('{"steps": ' + "[" * 2_000)  # about 1,000 levels is enough


def test_reference_without_dependency_is_added_when_the_step_is_earlier():
    raw = plan_text(
        ("s1", [], "Find the capital of France."),
        ("s2", [], "Find the capital of Spain."),
        ("s3", ["s2"], "Compare {{s1}} with {{ s2 }}."),
    )
    planner, backend = make([raw], constrained=False)
    planning = planner.stream("Compare the capitals.")
    for _ in planning:  # the steps as they are decoded
        pass
    plan = planning.plan
    assert plan.step("s3").depends_on == ["s2", "s1"]
    assert planning.stats["attempts"] == 1  # fixed without asking the model again
    assert len(backend.requests) == 1


def test_reference_to_a_later_step_is_not_guessed():
    raw = plan_text(("s1", [], "use {{s2}}"), ("s2", [], "b"), ("s3", ["s1", "s2"], "c"))
    planner, _ = make([], constrained=False)
    with pytest.raises(PlanError) as info:
        planner.parse(raw)
    assert info.value.kind == "undeclared_reference"
    assert info.value.step_ids == ["s1", "s2"]


# --- the repair path ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "kind", "offenders"),
    [
        (CYCLE, "cycle", ["s1", "s2"]),
        (UNKNOWN_EXECUTOR, "unknown_executor", ["s1"]),
    ],
)
def test_invalid_plan_is_repaired_once(first: str, kind: str, offenders: list[str]):
    planner, backend = make([first, VALID])
    planning = planner.stream("Compare the populations of France and Spain.")
    for _ in planning:  # the steps as they are decoded
        pass
    plan = planning.plan
    assert [s.id for s in plan.steps] == ["s1", "s2", "s3"]
    validate_plan(plan, EXECUTORS)
    assert planning.stats["attempts"] == 2
    assert len(backend.requests) == 2
    error = planning.stats["first_error"]
    for step_id in offenders:
        assert step_id in error
    repair = prompt_text(backend.requests[1])
    assert error in repair  # the model sees what was wrong ...
    assert first in repair  # ... and what it wrote
    # the repair prompt is the first prompt plus the exchange, not a different task
    assert prompt_text(backend.requests[0]) in repair
    with pytest.raises(PlanError) as info:
        planner.parse(first)
    assert info.value.kind == kind and str(info.value) == error


def test_unknown_executor_error_tells_the_model_what_to_use():
    planner, backend = make([UNKNOWN_EXECUTOR, VALID])
    planner.plan("Compare the populations of France and Spain.")
    repair = backend.requests[1].messages[-1].content
    assert "browser" in repair and "llm" in repair and "python" in repair


def test_invalid_twice_raises_the_second_error():
    planner, backend = make([CYCLE, UNKNOWN_EXECUTOR])
    with pytest.raises(PlanError) as info:
        planner.plan("Compare the populations of France and Spain.")
    assert info.value.kind == "unknown_executor"
    assert len(backend.requests) == 2  # one repair, not more


def test_unparseable_twice_is_a_parse_error():
    planner, backend = make(["I think you should first look it up.", "{not json at all"])
    with pytest.raises(PlanError) as info:
        planner.plan("Look something up.")
    assert info.value.kind == "parse"
    assert "JSON" in str(info.value)
    assert len(backend.requests) == 2
    assert "not JSON" in prompt_text(backend.requests[1])


# --- streaming ----------------------------------------------------------------------------------


class CountingBackend(ScriptedBackend):
    """Counts the pieces it has streamed, so a test can see when a step came out."""

    pieces = 0

    def stream(self, request):
        for piece in super().stream(request):
            self.pieces += 1
            yield piece


def test_stream_yields_steps_in_order_while_decoding():
    backend = CountingBackend([VALID])
    planner = Planner(backend, executors=EXECUTORS)
    total = -(-len(VALID) // 8)  # ScriptedBackend streams 8-character pieces
    seen = []
    planning = planner.stream("Compare the populations of France and Spain.")
    for step in planning:
        end = VALID.index(step.instruction) + len(step.instruction) + 2  # past the closing '}'
        assert backend.pieces == -(-end // 8), f"{step.id} came out late or early"
        seen.append(step.id)
    assert seen == ["s1", "s2", "s3"]
    assert backend.pieces == total
    assert [s.id for s in planning.plan.steps] == seen


def test_stream_after_repair_ends_with_the_repaired_plan():
    planner, _ = make([CYCLE, VALID])
    planning = planner.stream("Compare the populations of France and Spain.")
    steps = list(planning)
    # first attempt's steps come out as they decode, the repaired plan's steps after them
    assert [s.id for s in steps[-3:]] == ["s1", "s2", "s3"]
    assert steps[-3:] == planning.plan.steps
    assert planning.stats["attempts"] == 2


def test_astream_yields_the_same_steps():
    planner, _ = make([VALID])

    planning = planner.astream("Compare France and Spain.")

    async def collect():
        return [step async for step in planning]

    steps = asyncio.run(collect())
    assert [s.id for s in steps] == ["s1", "s2", "s3"]
    assert planning.plan.steps == steps


def test_astream_raises_the_plan_error():
    planner, _ = make([CYCLE, CYCLE])

    async def collect():
        return [step async for step in planner.astream("Compare France and Spain.")]

    with pytest.raises(PlanError) as info:
        asyncio.run(collect())
    assert info.value.kind == "cycle"


def test_streamed_steps_match_the_final_plan():
    raw = plan_text(
        ("s1", [], "Find the capital of France."), ("s2", [], "Describe {{s1}} in one sentence.")
    )
    planner, _ = make([raw])
    planning = planner.stream("Describe the capital of France.")
    streamed = list(planning)
    assert streamed == planning.plan.steps


# --- the prompt ---------------------------------------------------------------------------------


def test_conversation_is_in_the_prompt_for_a_follow_up():
    conversation = [
        Message(role="user", content="What is the capital of France, and how many live there?"),
        Message(role="assistant", content="Paris; about 2.1 million people live in the city."),
    ]
    planner, backend = make([plan_text(("s1", [], "Capital of Germany and its population."))])
    planner.plan("now do the same for Germany", conversation=conversation)
    prompt = prompt_text(backend.requests[0])
    first = prompt.rindex(conversation[0].content)
    second = prompt.rindex(conversation[1].content)
    task = prompt.rindex("now do the same for Germany")
    assert first < second < task  # the turns, in order, before the follow-up
    assert backend.requests[0].messages[-1].role == "user"
    assert "now do the same for Germany" in backend.requests[0].messages[-1].content


def test_no_conversation_no_history_in_prompt():
    planner, backend = make([VALID])
    planner.plan("Compare the populations of France and Spain.")
    assert "Paris" not in prompt_text(backend.requests[0])


def test_executor_descriptions_are_in_the_system_prompt():
    executors = {**EXECUTORS, "sql": "queries the sales database with one SELECT statement."}
    planner, backend = make([VALID], executors=executors)
    planner.plan("Compare the populations of France and Spain.")
    system = backend.requests[0].messages[0]
    assert system.role == "system"
    for name, description in executors.items():
        assert name in system.content
        assert description in system.content


def test_examples_only_use_executors_the_planner_has():
    planner, backend = make([plan_text(("s1", [], "a"))], executors={"llm": "writes text"})
    planner.plan("Say hello.")
    assistant_turns = [m.content for m in backend.requests[0].messages if m.role == "assistant"]
    for turn in assistant_turns:
        for step in json.loads(turn)["steps"]:
            assert step["executor"] == "llm"


# --- bad input ----------------------------------------------------------------------------------


def junk(seed: int, size: int) -> str:
    return random.Random(seed).randbytes(size).decode("utf-8", errors="replace")


@pytest.mark.parametrize(
    ("instruction", "words"),
    [
        ("", "empty"),
        ("   \n\t  ", "empty"),
        ("summarise this\x00\x00file", "NUL"),
        ("\x00", "NUL"),
        *[(junk(seed, size), "binary") for seed, size in [(1, 64), (2, 300), (3, 4096)]],
    ],
)
def test_bad_instruction_is_refused_with_a_reason(instruction: str, words: str):
    planner, backend = make([VALID])
    with pytest.raises(InstructionError, match=words):
        planner.plan(instruction)
    assert backend.requests == []  # refused before the model is asked


@pytest.mark.parametrize("seed", range(20))
def test_random_binary_junk_is_refused(seed: int):
    planner, backend = make([VALID])
    with pytest.raises(InstructionError, match="binary"):
        planner.plan(junk(seed, 256))
    assert backend.requests == []


@pytest.mark.parametrize(
    "text",
    [
        "Compare the populations of France and Spain.",
        "Übersetze „Guten Morgen“ ins Französische – und erkläre die Grammatik.",
        "用三句话解释光合作用。",
        "Write a poem about \ufffd characters 🙂\n\twith a tab",
    ],
)
def test_ordinary_text_is_accepted(text: str):
    planner, _ = make([VALID])
    assert planner.plan(text).steps


class SmallContext(ScriptedBackend):
    @property
    def context_length(self) -> int:
        return 4096


def test_too_long_instruction_states_the_limit():
    planner, backend = make([VALID])
    with pytest.raises(InstructionError) as info:
        planner.plan("x" * 200_000)  # 50,000 tokens by ScriptedBackend's count
    message = str(info.value)
    assert "too long" in message
    limit = int(re.search(r"limit is about (\d+) tokens", message).group(1))
    assert 0 < limit < 32_768 - planner.max_tokens
    assert "50000 tokens" in message
    assert backend.requests == []


def test_stated_limit_is_the_real_limit():
    backend = SmallContext([VALID])
    planner = Planner(backend, executors=EXECUTORS, max_tokens=512)
    with pytest.raises(InstructionError) as info:
        planner.plan("a" * 40_000)
    limit = int(re.search(r"limit is about (\d+) tokens", str(info.value)).group(1))
    assert limit > 0
    # an instruction of exactly the stated number of tokens fits; one token more does not
    assert planner.plan("a" * (4 * limit)).steps
    with pytest.raises(InstructionError, match="too long"):
        planner.plan("a" * (4 * limit + 4))


def test_a_step_nothing_uses_becomes_a_dependency_of_the_last_step():
    raw = json.dumps(
        {
            "steps": [
                {"id": "s1", "depends_on": [], "executor": "llm", "instruction": "a"},
                {"id": "s2", "depends_on": [], "executor": "llm", "instruction": "b"},
                {"id": "s3", "depends_on": ["s2"], "executor": "llm", "instruction": "c"},
            ]
        }
    )
    planner = Planner(ScriptedBackend([raw]), executors={"llm": "x"})
    planning = planner.stream("do a, b and c")
    for _ in planning:
        pass
    assert planning.plan.final.depends_on == ["s2", "s1"]
    assert planning.stats["attempts"] == 1  # no model repair needed


def test_one_planner_serves_concurrent_calls():
    """Each call keeps its own plan and stats: a Planner holds nothing between calls."""
    other = plan_text(("s1", [], "Say hello."))
    planner, _ = make([VALID, other])
    first = planner.stream("Compare the populations of France and Spain.")
    second = planner.stream("Say hello.")
    steps_first = list(first)
    steps_second = list(second)
    assert first.plan.steps == steps_first and len(steps_first) == 3
    assert second.plan.steps == steps_second and len(steps_second) == 1
    assert not hasattr(planner, "final") and not hasattr(planner, "last_stats")
