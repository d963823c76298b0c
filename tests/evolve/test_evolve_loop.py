"""The evolve loop and its elimination rules, with a scripted teacher."""

from __future__ import annotations

import json

import pytest

from stepgraph.errors import ConfigError
from stepgraph.evolve.evolve import (
    RULES,
    EvolveConfig,
    Evolver,
    Example,
    elimination_reason,
    load_seeds,
    plan_problems,
    read_jsonl,
    sidecar,
)
from stepgraph.evolve.operations import (
    IN_DEPTH,
    clean_evolution,
    evolution_prompt,
    parse_equality,
)
from stepgraph.models.base import Request
from stepgraph.models.scripted import ScriptedBackend
from stepgraph.planner.plan import Plan

GOOD_PLAN = json.dumps(
    {
        "steps": [
            {"id": "s1", "depends_on": [], "executor": "calculator", "instruction": "3 * 4"},
            {"id": "s2", "depends_on": ["s1"], "executor": "llm", "instruction": "State {{s1}}."},
        ]
    }
)
BAD_PLAN = json.dumps({"steps": [{"id": "s1", "depends_on": ["s9"], "executor": "llm"}]})


SUFFIXES = [
    "Show every step of your reasoning.",
    "Also give a worked example as a Markdown table.",
    "Finish with a one-line summary for a beginner.",
]


def given(request: Request) -> str:
    text = request.messages[-1].content
    marker = "#The Given Prompt#:\n" if "#The Given Prompt#:\n" in text else "#Given Prompt#:\n"
    return text.split(marker, 1)[1].split("\n#", 1)[0].strip()


class Teacher:
    """Rewrites by a table keyed on the instruction; judges and plans by tables too."""

    def __init__(self, rewrites: dict[str, str], *, equal=(), unplannable=(), fail_after=None):
        self.rewrites = rewrites
        self.equal = set(equal)
        self.unplannable = set(unplannable)
        self.fail_after = fail_after
        self.rewrite_calls: list[str] = []

    def __call__(self, request: Request) -> str:
        text = request.messages[-1].content
        if "Prompt Rewriter" in text or "Prompt Creator" in text:
            parent = given(request)
            if self.fail_after is not None and len(self.rewrite_calls) >= self.fail_after:
                raise RuntimeError("teacher died")
            self.rewrite_calls.append(parent)
            extra = SUFFIXES[len(self.rewrite_calls) % len(SUFFIXES)]
            reply = self.rewrites.get(parent, f"{parent} {extra}")
            return reply.pop(0) if isinstance(reply, list) else reply
        if "Your Judgement" in text:
            child = text.split("The Second Prompt: ", 1)[1].split("\nYour Judgement", 1)[0]
            return "Equal" if child in self.equal else "Not Equal"
        # a planner request: the task is in the last user message
        task = text.split("Task: ", 1)[1].split("\n", 1)[0] if "Task: " in text else ""
        if request.messages[-1].content.startswith("That plan is invalid"):
            task = request.messages[-3].content.split("Task: ", 1)[1].split("\n", 1)[0]
        return BAD_PLAN if task in self.unplannable else GOOD_PLAN


def seeds(*texts: str) -> list[Example]:
    return [Example(id=f"seed-{i}", instruction=t) for i, t in enumerate(texts, 1)]


def test_every_rule_is_counted_separately_and_kept_examples_carry_provenance(tmp_path):
    teacher = Teacher(
        {
            "Add 3 and 4.": "?!...",
            "Name a colour.": "Here is the #Rewritten Prompt#: name two colours.",
            "Count to ten.": "Count to ten, then count back to one in French.",
            "Multiply 3 by 4.": "Multiply 3 by 4 and explain why the order of factors does not matter.",
            "Sum 1 to 5.": "Sum the integers from 1 to 5 and give the mean as well.",
            "Name a planet.": "I'm sorry, but I cannot assist with that request.",
        },
        equal={"Count to ten, then count back to one in French."},
        unplannable={"Multiply 3 by 4 and explain why the order of factors does not matter."},
    )
    model = ScriptedBackend(responder=teacher)
    out = tmp_path / "evolved.jsonl"
    summary = Evolver(model, config=EvolveConfig(rounds=1, workers=2, judge=True)).run(
        seeds(
            "Add 3 and 4.",
            "Name a colour.",
            "Count to ten.",
            "Multiply 3 by 4.",
            "Sum 1 to 5.",
            "Name a planet.",
        ),
        out,
    )
    round1 = summary["rounds"][0]
    assert round1["attempts"] == 6
    assert round1["kept"] == 1
    assert round1["eliminated"] == {
        "empty": 1,
        "copies_prompt": 1,
        "refused": 1,
        "no_information_gain": 1,
        "plan_failed": 1,
    }
    [example] = read_jsonl(out, Example)
    assert example.instruction == "Sum the integers from 1 to 5 and give the mean as well."
    assert example.parent_id == "seed-5" and example.id == "seed-5~1" and example.round == 1
    assert example.operation in IN_DEPTH + ("breadth",)
    assert example.teacher == "scripted"
    assert "Sum 1 to 5." in example.evolve_prompt
    assert example.planner_prompt.startswith("few-shot-")
    assert [s.id for s in example.plan.steps] == ["s1", "s2"]
    assert round1["mean_steps"] == 2 and round1["mean_edges"] == 1
    assert round1["mean_instruction_words"] == len(example.instruction.split())
    assert json.loads(sidecar(out, "summary", ".json").read_text()) == summary
    rules = {
        e["rule"] for e in map(json.loads, sidecar(out, "eliminated").read_text().splitlines())
    }
    assert rules == set(RULES)


def test_an_eliminated_parent_goes_back_into_the_pool(tmp_path):
    teacher = Teacher(
        {
            "Name a colour.": [
                "?",
                "Name a colour that rhymes with 'bed' and explain where its name comes from.",
            ]
        }
    )
    model = ScriptedBackend(responder=teacher)
    out = tmp_path / "e.jsonl"
    summary = Evolver(model, config=EvolveConfig(rounds=2, judge=False)).run(
        seeds("Name a colour."), out
    )
    assert [r["kept"] for r in summary["rounds"]] == [0, 1]
    [example] = read_jsonl(out, Example)
    assert example.parent_id == "seed-1" and example.round == 2
    assert (
        example.instruction
        == "Name a colour that rhymes with 'bed' and explain where its name comes from."
    )
    assert teacher.rewrite_calls == ["Name a colour.", "Name a colour."]


def test_a_run_that_keeps_nothing_leaves_an_empty_output_for_the_next_step(tmp_path):
    model = ScriptedBackend(responder=Teacher({"Name a colour.": "?"}))
    out = tmp_path / "e.jsonl"
    summary = Evolver(model, config=EvolveConfig(rounds=1, judge=False)).run(
        seeds("Name a colour."), out
    )
    assert summary["total"]["kept"] == 0
    assert out.read_text() == ""  # `stepgraph train planner --data e.jsonl` can read it
    assert len(sidecar(out, "eliminated").read_text().splitlines()) == 1


def test_survivors_are_evolved_again_in_the_next_round(tmp_path):
    teacher = Teacher({})
    out = tmp_path / "e.jsonl"
    Evolver(ScriptedBackend(responder=teacher), config=EvolveConfig(rounds=2, judge=False)).run(
        seeds("Sum 1 to 5."), out
    )
    first, second = sorted(read_jsonl(out, Example), key=lambda e: e.round)
    assert second.parent_id == first.id == "seed-1~1"
    assert second.instruction.startswith(first.instruction)


def test_a_stopped_run_resumes_without_repeating_attempts(tmp_path):
    texts = [f"Add {i} and {i + 1}." for i in range(6)]
    out = tmp_path / "e.jsonl"
    dying = Teacher({}, fail_after=3)
    config = EvolveConfig(rounds=1, judge=False, workers=1)
    with pytest.raises(RuntimeError, match="teacher died"):
        Evolver(ScriptedBackend(responder=dying), config=config).run(seeds(*texts), out)
    assert len(read_jsonl(out, Example)) == 3
    fresh = Teacher({})
    summary = Evolver(ScriptedBackend(responder=fresh), config=config).run(seeds(*texts), out)
    assert len(fresh.rewrite_calls) == 3
    assert sorted(fresh.rewrite_calls + dying.rewrite_calls) == sorted(texts)
    assert summary["total"]["attempts"] == 6
    assert len({e.id for e in read_jsonl(out, Example)}) == 6


def test_operations_are_drawn_reproducibly_from_the_seed(tmp_path):
    texts = [f"Task number {i}." for i in range(30)]

    def operations(seed: int, name: str) -> list[str]:
        out = tmp_path / name
        Evolver(
            ScriptedBackend(responder=Teacher({})),
            config=EvolveConfig(seed=seed, judge=False),
        ).run(seeds(*texts), out)
        return [e.operation for e in sorted(read_jsonl(out, Example), key=lambda e: e.id)]

    first = operations(0, "a.jsonl")
    assert first == operations(0, "b.jsonl")
    assert first != operations(1, "c.jsonl")
    assert len(set(first)) >= 4


def test_mechanical_rules():
    assert elimination_reason("a", " ... !!") == ("empty", "no letters or digits")
    assert elimination_reason("a", "")[0] == "empty"
    assert elimination_reason("a", "Rewrite the given prompt so")[0] == "copies_prompt"
    assert elimination_reason("Add 3  and 4.", "Add 3 and 4.")[0] == "no_information_gain"
    assert elimination_reason("Add 3 and 4.", "Add 3 and 4, then double the sum.") is None
    # a reworded copy adds too few content words to count as a gain
    rule, detail = elimination_reason("Name the colours.", "Please name the colour.")
    assert rule == "no_information_gain" and "1 new content words" in detail
    assert elimination_reason("Name a colour.", "Please name a colour.", min_new_words=1) is None


@pytest.mark.parametrize(
    "rewrite",
    [
        "I'm sorry, but I cannot assist with that request.",  # both seen from the 1.5B teacher
        "Given the complexity of your task, I am unable to process the prompt as requested.",
        "Sorry, I can't help with rewriting this prompt.",
    ],
)
def test_a_rewrite_that_refuses_is_eliminated(rewrite):
    rule, detail = elimination_reason("Name the planets of the solar system.", rewrite)
    assert rule == "refused" and "refuses" in detail


@pytest.mark.parametrize(
    "rewrite",
    [
        "Write a two-line note to a colleague that says you are sorry for missing the meeting.",
        "Explain why a pharmacist cannot provide antibiotics without a prescription.",
    ],
)
def test_an_instruction_about_apologies_is_not_a_refusal(rewrite):
    assert elimination_reason("Write a note to a colleague.", rewrite) is None


def test_cleaning_strips_format_but_keeps_copied_words():
    assert clean_evolution('  #Rewritten Prompt#: "Add 3 and 4."  ') == "Add 3 and 4."
    assert clean_evolution("Use the #Rewritten Prompt# here") == "Use the #Rewritten Prompt# here"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Equal", True), ("Not Equal.", False), ("**Not equal**", False), ("maybe", None), ("", None)],
)
def test_equality_judgement_parsing(text, expected):
    assert parse_equality(text) is expected


def test_every_operation_prompt_carries_the_instruction():
    for operation in (*IN_DEPTH, "breadth"):
        assert "Plan a picnic." in evolution_prompt(operation, "Plan a picnic.")


def test_seed_files(tmp_path):
    with pytest.raises(ConfigError, match="no seed file"):
        load_seeds(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "ok"}\n{"kind": "x"}\n')
    with pytest.raises(ConfigError, match="line 2"):
        load_seeds(bad)
    text = tmp_path / "seeds.txt"
    text.write_text("Plan a picnic.\n\nWrite a haiku.\n")
    assert [s.instruction for s in load_seeds(text)] == ["Plan a picnic.", "Write a haiku."]
    described = tmp_path / "described.jsonl"
    offered = {"llm": "writes text", "weather_forecast": "tomorrow's weather for a city"}
    plan = {"steps": [{"id": "s1", "depends_on": [], "executor": "weather_forecast", "instruction": "Oslo"}]}  # fmt: skip
    described.write_text(json.dumps({"instruction": "Oslo tomorrow?", "executors": offered, "plan": plan}) + "\n")  # fmt: skip
    (seed,) = load_seeds(described)
    assert seed.executors == offered
    described.write_text(json.dumps({"instruction": "Oslo tomorrow?", "plan": plan}) + "\n")
    with pytest.raises(ConfigError, match="line 1.*weather_forecast"):
        load_seeds(described)  # the default executors do not offer the tool its plan uses
    twice = tmp_path / "twice.jsonl"
    twice.write_text('{"id": "a", "instruction": "x"}\n{"id": "a", "instruction": "y"}\n')
    with pytest.raises(ConfigError, match="more than once"):
        load_seeds(twice)


def steps(*items):
    return Plan(
        steps=[
            {"id": f"s{i}", "depends_on": deps, "executor": ex, "instruction": text}
            for i, (ex, text, deps) in enumerate(items, 1)
        ]
    )


def test_a_label_that_breaks_the_planner_rules_is_a_failed_plan():
    good = steps(
        ("calculator", "640 * 0.85", []),
        ("llm", "Explain a 6/8 time signature and the 3-2 score, citing {{s1}}.", ["s1"]),
    )
    assert plan_problems(good) == []
    bad = steps(
        ("calculator", "640 * 0.85", []),
        ("calculator", "the discounted price times 0.9", []),
        ("llm", "The discount is 640 - {{s1}} dollars.", ["s1"]),
        ("llm", "The discount is 640 - {{s1}} dollars.", ["s1"]),
    )
    assert plan_problems(bad) == [
        "calculator step s2 is not one expression",
        "step s3 does arithmetic in its text",
        "step s4 repeats an earlier step",
        "step s4 does arithmetic in its text",
    ]


def test_the_shipped_seed_and_gold_plans_keep_the_rules():
    from stepgraph.evolve.evolve import GOLD_FILE, HELDOUT_FILE, HELDOUT_TOOLS_FILE, SEED_FILES

    assert all(path.is_file() for path in SEED_FILES)
    for path in (*SEED_FILES, GOLD_FILE, HELDOUT_FILE, HELDOUT_TOOLS_FILE):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            assert plan_problems(Plan(**record["plan"])) == [], record["id"]
