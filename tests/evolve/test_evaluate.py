"""Scoring plans against gold plans, evaluating a scripted planner, resuming, bad gold files."""

from __future__ import annotations

import json

import pytest

from stepgraph.errors import ConfigError, ModelError
from stepgraph.evolve.evaluate import (
    GoldItem,
    PlannerReport,
    comparison_png,
    comparison_table,
    evaluate_planner,
    load_gold,
    normalise,
    score_plan,
    step_similarity,
    text_similarity,
)
from stepgraph.models.base import Request
from stepgraph.models.scripted import ScriptedBackend
from stepgraph.planner.plan import Plan, Step
from stepgraph.planner.planner import Planner


def plan(*steps: tuple) -> Plan:
    """plan(("s1", [], "do x", "calculator"), ("s2", ["s1"], "use {{s1}}")): llm by default."""
    return Plan(
        steps=[
            Step(id=i, depends_on=deps, instruction=text, executor=ex[0] if ex else "llm")
            for i, deps, text, *ex in steps
        ]
    )


FARM = plan(
    ("s1", [], "1240 * 0.25", "calculator"),
    ("s2", [], "385 * 1.10", "calculator"),
    ("s3", ["s1", "s2"], "{{s1}} + {{s2}}", "calculator"),
    (
        "s4",
        ["s1", "s2", "s3"],
        "Eggs earned {{s1}} dollars and milk earned {{s2}} dollars, {{s3}} in total. "
        "State the total revenue and which product earned more.",
    ),
)

POPULATIONS = plan(
    ("s1", [], "Find the population of France."),
    ("s2", [], "Find the population of Spain."),
    ("s3", ["s1", "s2"], "Compare {{s1}} and {{s2}} in two sentences."),
)


# --- similarity -----------------------------------------------------------------------------


def test_normalise_lowercases_replaces_references_and_keeps_arithmetic():
    assert normalise("Compare {{s1}} AND {{ step_2 }}!") == ["compare", "__ref__", "__ref__"]
    assert normalise("round(({{s1}} - 40) * 1.5, 2)") == [
        "round",
        "__ref__",
        "-",
        "40",
        "*",
        "1.5",
        "2",
    ]
    assert normalise("1,240 eggs") == ["1240", "eggs"]


def test_text_similarity_is_token_f1_without_function_words():
    assert text_similarity("Find the population of France.", "find POPULATION of france") == 1.0
    # content words {find, population, france} vs {find, population, france, today, please}
    assert text_similarity(
        "Find the population of France.", "Find the population of France today please"
    ) == pytest.approx(0.75)
    # shared function words alone do not make two steps alike
    assert text_similarity("Find the population of France.", "Find the GDP of Germany.") < 0.5
    # operators and numbers are content: a different operation is a different step
    assert text_similarity("1240 * 0.25", "1240 + 0.25") < 1.0
    assert text_similarity("1240 * 0.25", "385 * 1.10") < 0.5


# --- score_plan -----------------------------------------------------------------------------


def test_identical_plans_score_one_everywhere():
    score = score_plan(FARM, FARM)
    assert score.valid
    assert (score.node_precision, score.node_recall, score.node_f1) == (1.0, 1.0, 1.0)
    assert (score.edge_precision, score.edge_recall, score.edge_f1) == (1.0, 1.0, 1.0)
    assert score.step_count_error == 0
    assert [(m.gold, m.predicted) for m in score.matches] == [
        (f"s{i}", f"s{i}") for i in range(1, 5)
    ]


def test_renamed_and_reordered_ids_with_the_same_structure_still_score_one():
    renamed = plan(
        ("milk", [], "385 * 1.10", "calculator"),
        ("eggs", [], "1240 * 0.25", "calculator"),
        ("total", ["eggs", "milk"], "{{eggs}} + {{milk}}", "calculator"),
        (
            "answer",
            ["eggs", "milk", "total"],
            "Eggs earned {{eggs}} dollars and milk earned {{milk}} dollars, {{total}} in total. "
            "State the total revenue and which product earned more.",
        ),
    )
    score = score_plan(renamed, FARM)
    assert score.node_f1 == 1.0
    assert score.edge_f1 == 1.0
    pairs = {m.gold: m.predicted for m in score.matches}
    assert pairs == {"s1": "eggs", "s2": "milk", "s3": "total", "s4": "answer"}


def test_steps_that_read_the_same_are_matched_by_what_they_consume():
    # After {{sN}} becomes one placeholder, s3 and s4 read the same; only their inputs differ.
    gold = plan(
        ("s1", [], "1240 * 0.25", "calculator"),
        ("s2", [], "385 * 1.10", "calculator"),
        ("s3", ["s1"], "{{s1}} * 2", "calculator"),
        ("s4", ["s2"], "{{s2}} * 2", "calculator"),
        ("s5", ["s3", "s4"], "Report {{s3}} and {{s4}} as doubled revenues."),
    )
    # the same plan written in another order: position alone would pair them wrongly
    predicted = plan(
        ("s1", [], "385 * 1.10", "calculator"),
        ("s2", ["s1"], "{{s1}} * 2", "calculator"),
        ("s3", [], "1240 * 0.25", "calculator"),
        ("s4", ["s3"], "{{s3}} * 2", "calculator"),
        ("s5", ["s4", "s2"], "Report {{s4}} and {{s2}} as doubled revenues."),
    )
    score = score_plan(predicted, gold)
    assert {m.gold: m.predicted for m in score.matches}["s3"] == "s4"
    assert score.edge_f1 == 1.0


def test_a_wrong_edge_lowers_edge_f1_but_not_node_f1():
    # s2 now waits for s1 and s3 no longer uses s1: a chain instead of two branches
    chained = plan(
        ("s1", [], "Find the population of France."),
        ("s2", ["s1"], "Find the population of Spain."),
        ("s3", ["s2"], "Compare {{s1}} and {{s2}} in two sentences."),
    )
    score = score_plan(chained, POPULATIONS)
    assert score.node_f1 == 1.0
    # gold edges s1->s3, s2->s3; predicted s1->s2, s2->s3; one of two right either way
    assert (score.edge_precision, score.edge_recall) == (0.5, 0.5)
    assert score.edge_f1 == pytest.approx(0.5)


def test_a_missing_step_lowers_recall_and_counts_in_the_step_error():
    without_milk = plan(
        ("s1", [], "1240 * 0.25", "calculator"),
        ("s3", ["s1"], "{{s1}} + {{s1}}", "calculator"),
        (
            "s4",
            ["s1", "s3"],
            "Eggs earned {{s1}} dollars and milk earned {{s1}} dollars, {{s3}} in total. "
            "State the total revenue and which product earned more.",
        ),
    )
    score = score_plan(without_milk, FARM)
    assert score.node_precision == 1.0
    assert score.node_recall == pytest.approx(3 / 4)
    assert score.step_count_error == 1
    # gold has 5 edges; the 3 predicted ones (s1->s3, s1->s4, s3->s4) are all gold edges
    assert score.edge_precision == 1.0
    assert score.edge_recall == pytest.approx(3 / 5)


def test_an_extra_step_lowers_precision_not_recall():
    padded = plan(
        ("s1", [], "Find the population of France."),
        ("s2", [], "Find the population of Spain."),
        ("s3", [], "Look up the official languages spoken in Portugal."),
        ("s4", ["s1", "s2", "s3"], "Compare {{s1}} and {{s2}} in two sentences."),
    )
    score = score_plan(padded, POPULATIONS)
    assert score.node_recall == 1.0
    assert score.node_precision == pytest.approx(3 / 4)
    assert score.edge_recall == 1.0
    assert score.edge_precision == pytest.approx(2 / 3)


def test_a_different_executor_does_not_match_unless_allowed():
    gold = plan(("s1", [], "Count the vowels in the word banana and print the count.", "python"))
    predicted = plan(("s1", [], "Count the vowels in the word banana and print the count."))
    assert score_plan(predicted, gold).node_f1 == 0.0
    assert step_similarity(gold.steps[0], predicted.steps[0]) == 0.0
    assert score_plan(predicted, gold, executor_mismatch=1.0).node_f1 == 1.0
    # half credit: an identical text reaches the default threshold exactly, a close one does not
    assert score_plan(predicted, gold, executor_mismatch=0.5).node_f1 == 1.0
    close = plan(("s1", [], "Count the vowels in banana."))
    assert step_similarity(gold.steps[0], close.steps[0], executor_mismatch=1.0) > 0.5
    assert score_plan(close, gold, executor_mismatch=0.5).node_f1 == 0.0


def test_threshold_decides_whether_a_pair_counts():
    gold = plan(("s1", [], "Find the population of France."))
    predicted = plan(("s1", [], "Find the population of France today please."))
    # similarity is exactly 0.75 (see test_text_similarity_is_token_f1_without_function_words)
    assert score_plan(predicted, gold, threshold=0.75).node_f1 == 1.0
    assert score_plan(predicted, gold, threshold=0.76).node_f1 == 0.0
    assert score_plan(predicted, gold).matches[0].similarity == pytest.approx(0.75)
    with pytest.raises(ConfigError, match="threshold"):
        score_plan(predicted, gold, threshold=0.0)


def test_no_plan_scores_zero_and_is_invalid():
    score = score_plan(None, FARM)
    assert not score.valid
    assert score.node_f1 == score.edge_f1 == score.node_recall == score.edge_recall == 0.0
    assert score.step_count_error is None
    assert score.gold_steps == 4
    assert score.matches == []


def test_one_step_plans_conventions():
    haiku = plan(("s1", [], "Write a haiku about autumn rain."))
    same = plan(("only", [], "write a haiku about autumn rain"))
    other = plan(("s1", [], "Name three capital cities in Europe."))
    # both without edges and the steps match: nothing to recover, nothing added
    assert score_plan(same, haiku).edge_f1 == 1.0
    # both without edges but nothing matches: no structure is credited
    mismatch = score_plan(other, haiku)
    assert (mismatch.node_f1, mismatch.edge_f1) == (0.0, 0.0)
    # one side has edges, the other none: every edge is missed or wrong
    split = plan(
        ("s1", [], "Brainstorm images of autumn rain."),
        ("s2", ["s1"], "Write a haiku about autumn rain using {{s1}}."),
    )
    assert score_plan(split, haiku).edge_f1 == 0.0
    assert score_plan(haiku, split).edge_f1 == 0.0
    assert score_plan(split, haiku).node_recall == 1.0


# --- gold files -----------------------------------------------------------------------------


def record(item_id: str, instruction: str, steps: list[dict], **extra) -> dict:
    row = {
        "id": item_id,
        "kind": "knowledge",
        "instruction": instruction,
        "executors": ["llm", "calculator", "python"],
        "conversation": [],
        "plan": {"steps": steps},
    }
    row.update(extra)
    return row


def step(step_id: str, text: str, deps: list[str] | None = None, executor: str = "llm") -> dict:
    return {"id": step_id, "depends_on": deps or [], "executor": executor, "instruction": text}


def write_jsonl(path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


GOOD = record(
    "k1", "What is the capital of Australia?", [step("s1", "Answer: capital of Australia?")]
)


def test_load_gold_reads_records_and_skips_blank_lines(tmp_path):
    path = tmp_path / "gold.jsonl"
    second = record(
        "m1",
        "Now do the same for Spain.",
        [step("s1", "Give the population of Spain.")],
        kind="multi_turn",
        conversation=[
            {"role": "user", "content": "What is the population of France?"},
            {"role": "assistant", "content": "About 68 million."},
        ],
    )
    write_jsonl(path, [GOOD, "", second])
    items = load_gold(path)
    assert [i.id for i in items] == ["k1", "m1"]
    assert items[1].conversation[1].role == "assistant"
    assert isinstance(items[0].plan, Plan)


def test_missing_gold_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.jsonl is missing"):
        load_gold(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="folder"):
        load_gold(tmp_path)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('{"id": "x", ', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({**GOOD, "id": "k2", "kind": "poetry"}), "kind"),
        (json.dumps({**GOOD, "id": "k2", "plan": {"steps": []}}), "no steps"),
        (
            json.dumps(record("k2", "Add things.", [step("s1", "1 + 2", executor="docs")])),
            "unknown executors",
        ),
        (
            json.dumps(record("k2", "Two things.", [step("s1", "a"), step("s2", "b")])),
            "do not lead to the answer",
        ),
        (json.dumps({**GOOD, "id": "k2", "executors": ["llm", "browser"]}), "browser"),
        (json.dumps({**GOOD, "id": "k2", "executors": {"llm": "x", "sql": ""}}), "empty"),
        (
            json.dumps(
                record("k2", "Look it up.", [step("s1", "SELECT 1", executor="sql")])
                | {"executors": {"llm": "writes text", "mcp_tool": "a tool"}}
            ),
            "unknown executors",
        ),
        (json.dumps(GOOD), "already used on line 1"),
    ],
)
def test_a_bad_gold_line_names_its_number_and_why(tmp_path, bad, reason):
    path = tmp_path / "gold.jsonl"
    write_jsonl(path, [GOOD, bad])
    with pytest.raises(ConfigError, match="line 2") as info:
        load_gold(path)
    assert reason in str(info.value)


def test_an_empty_gold_file_is_an_error(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text("\n\n")
    with pytest.raises(ConfigError, match="no items"):
        load_gold(path)


# --- evaluate_planner ---------------------------------------------------------------------------


def gold_items() -> list[GoldItem]:
    return [
        GoldItem.model_validate(r)
        for r in [
            record(
                "a1",
                "How much is 12 boxes of 24 eggs at 0.25 each?",
                [
                    step("s1", "12 * 24", executor="calculator"),
                    step("s2", "{{s1}} * 0.25", ["s1"], "calculator"),
                ],
                kind="arithmetic",
                executors=["llm", "calculator"],
            ),
            record(
                "k1",
                "What is the capital of Australia?",
                [step("s1", "Answer: what is the capital of Australia?")],
            ),
            record(
                "m1",
                "Now do the same for Spain.",
                [step("s1", "Give the population of Spain.")],
                kind="multi_turn",
                conversation=[
                    {"role": "user", "content": "What is the population of France?"},
                    {"role": "assistant", "content": "About 68 million."},
                ],
            ),
        ]
    ]


def reply(*steps: dict) -> str:
    return json.dumps({"steps": list(steps)})


ARITHMETIC_REPLY = reply(
    step("s1", "12 * 24", executor="calculator"),
    step("s2", "{{s1}} * 0.25", ["s1"], "calculator"),
)
KNOWLEDGE_REPLY = reply(step("s1", "Answer: what is the capital of Australia?"))
NOT_A_PLAN = "I cannot plan this."


def test_evaluate_planner_scores_each_item_and_breaks_down_by_kind(tmp_path):
    # the multi-turn item fails twice (first try and its repair), so it is invalid
    backend = ScriptedBackend([ARITHMETIC_REPLY, KNOWLEDGE_REPLY, NOT_A_PLAN, NOT_A_PLAN])
    planner = Planner(backend, constrained=False)
    before = dict(planner.executors)
    seen = []
    out = tmp_path / "results" / "base.jsonl"
    report = evaluate_planner(
        planner,
        gold_items(),
        out=out,
        progress=lambda r, done, total: seen.append((r.id, done, total)),
    )
    assert report.items == 3
    assert report.validity == pytest.approx(2 / 3)
    assert report.node_f1 == pytest.approx(2 / 3)
    assert report.edge_f1 == pytest.approx(2 / 3)
    assert report.step_count_error == 0.0  # over the valid plans only
    assert report.by_kind["arithmetic"].node_f1 == 1.0
    assert report.by_kind["multi_turn"].validity == 0.0
    assert set(report.by_kind) == {"arithmetic", "knowledge", "multi_turn"}
    failed = report.results[2]
    assert not failed.valid and failed.error.startswith("PlanError")
    assert failed.attempts == 2
    assert seen == [("a1", 1, 3), ("k1", 2, 3), ("m1", 3, 3)]
    # the calculator plan only validates if the item's executors were offered to the planner
    first_system, second_system = (r.messages[0].content for r in backend.requests[:2])
    assert "- calculator:" in first_system and "- python:" not in first_system
    assert "- python:" in second_system
    assert "Conversation so far" in backend.requests[2].messages[-1].content
    assert planner.executors == before
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a1", "k1", "m1"]
    assert rows[0]["plan"]["steps"][1]["depends_on"] == ["s1"]


def test_evaluate_planner_resumes_from_its_results_file(tmp_path):
    out = tmp_path / "base.jsonl"
    items = gold_items()
    first = ScriptedBackend([ARITHMETIC_REPLY, KNOWLEDGE_REPLY])
    evaluate_planner(Planner(first, constrained=False), items[:2], out=out)
    # only the third item may be planned: a fourth request would exhaust the script
    second = ScriptedBackend([reply(step("s1", "Give the population of Spain."))])
    report = evaluate_planner(Planner(second, constrained=False), items, out=out)
    assert len(second.requests) == 1
    assert "Spain" in second.requests[0].messages[-1].content
    assert [r.id for r in report.results] == ["a1", "k1", "m1"]
    assert report.validity == 1.0 and report.node_f1 == 1.0
    assert len(out.read_text().splitlines()) == 3


def test_resumed_rows_are_rescored_with_the_current_settings(tmp_path):
    out = tmp_path / "base.jsonl"
    items = gold_items()[1:2]
    close = reply(step("s1", "Answer: what is the capital city of Australia today?"))
    first = evaluate_planner(Planner(ScriptedBackend([close]), constrained=False), items, out=out)
    assert first.node_f1 == 1.0
    strict = evaluate_planner(
        Planner(ScriptedBackend([]), constrained=False), items, out=out, threshold=0.95
    )
    assert strict.validity == 1.0 and strict.node_f1 == 0.0


def test_a_partial_last_row_is_dropped_and_redone(tmp_path):
    out = tmp_path / "base.jsonl"
    items = gold_items()[1:2]
    evaluate_planner(Planner(ScriptedBackend([KNOWLEDGE_REPLY]), constrained=False), items, out=out)
    complete = out.read_text()
    out.write_text(complete + complete[:40])  # killed while writing a second row
    backend = ScriptedBackend([])
    report = evaluate_planner(Planner(backend, constrained=False), items, out=out)
    assert backend.requests == [] and report.validity == 1.0
    assert out.read_text() == complete


def test_a_corrupt_results_row_is_an_error_naming_the_line(tmp_path):
    out = tmp_path / "base.jsonl"
    out.write_text('{"id": "k1"}\n')
    with pytest.raises(ConfigError, match="line 1"):
        evaluate_planner(Planner(ScriptedBackend([]), constrained=False), gold_items(), out=out)


def test_a_model_error_stops_the_run_without_recording_the_item(tmp_path):
    def unreachable(request: Request) -> str:
        raise ModelError("the model server is not answering")

    out = tmp_path / "base.jsonl"
    backend = ScriptedBackend([ARITHMETIC_REPLY], responder=unreachable)
    with pytest.raises(ModelError):
        evaluate_planner(Planner(backend, constrained=False), gold_items(), out=out)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a1"]


# --- comparing ----------------------------------------------------------------------------------


def reports() -> dict[str, PlannerReport]:
    items = gold_items()[:2]
    good = evaluate_planner(
        Planner(ScriptedBackend([ARITHMETIC_REPLY, KNOWLEDGE_REPLY]), constrained=False), items
    )
    bad = evaluate_planner(
        Planner(ScriptedBackend([NOT_A_PLAN] * 2 + [KNOWLEDGE_REPLY]), constrained=False), items
    )
    return {"adapter": good, "base|model": bad}


def test_comparison_table_has_a_row_per_planner():
    table = comparison_table(reports(), by_kind=True)
    lines = table.splitlines()
    assert lines[0].startswith("| planner | items | valid | node P | node R | node F1 | edge F1")
    assert lines[2].startswith("| adapter | 2 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 0.00 |")
    assert lines[3].startswith(
        "| base\\|model | 2 | 0.500 | 0.500 | 0.500 | 0.500 | 0.500 | 0.00 |"
    )
    assert "| arithmetic | base\\|model | 1 | 0.000 | 0.000 | 0.000 | n/a |" in lines
    with pytest.raises(ConfigError):
        comparison_table({})


def test_comparison_png_writes_an_image(tmp_path):
    path = comparison_png(reports(), tmp_path / "charts" / "planners.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000
