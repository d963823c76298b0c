"""validate_plan: one test per PlanError kind, the plans that must pass, and the plan's views
(graph, Mermaid text, execution order)."""

from __future__ import annotations

import re

import pytest

from stepgraph.errors import PlanError
from stepgraph.planner.plan import Plan, Step, order, validate_plan

EXECUTORS = ("llm", "python", "calculator")


def plan(*steps: tuple) -> Plan:
    """plan(("s1", []), ("s2", ["s1"], "use {{s1}}", "python"), ...)."""
    built = []
    for spec in steps:
        step_id, deps, *rest = spec
        instruction = rest[0] if rest else f"do {step_id}"
        executor = rest[1] if len(rest) > 1 else "llm"
        built.append(Step(id=step_id, instruction=instruction, executor=executor, depends_on=deps))
    return Plan(goal="test", steps=built)


def rejection(p: Plan, executors=EXECUTORS) -> PlanError:
    with pytest.raises(PlanError) as info:
        validate_plan(p, executors)
    return info.value


# --- one test per kind ------------------------------------------------------------------------


def test_empty_plan():
    error = rejection(Plan(goal="nothing", steps=[]))
    assert error.kind == "empty"
    assert error.step_ids == []
    assert "no steps" in str(error)


def test_duplicate_id():
    error = rejection(plan(("s1", []), ("s2", ["s1"]), ("s1", ["s2"]), ("s3", ["s1"])))
    assert error.kind == "duplicate_id"
    assert error.step_ids == ["s1"]
    assert "s1" in str(error)


def test_empty_step():
    error = rejection(plan(("s1", []), ("s2", ["s1"], "  \n\t "), ("s3", ["s2"], "")))
    assert error.kind == "empty_step"
    assert error.step_ids == ["s2", "s3"]


def test_unknown_dependency():
    error = rejection(plan(("s1", []), ("s2", ["s1", "s9"])))
    assert error.kind == "unknown_dependency"
    assert error.step_ids == ["s2", "s9"]
    assert "s9" in str(error)


def test_self_loop_is_a_cycle():
    error = rejection(plan(("s1", ["s1"]), ("s2", ["s1"])))
    assert error.kind == "cycle"
    assert error.step_ids == ["s1"]


def test_cycle_names_its_members():
    p = plan(("s1", []), ("s2", ["s1", "s4"]), ("s3", ["s2"]), ("s4", ["s3"]), ("s5", ["s4"]))
    error = rejection(p)
    assert error.kind == "cycle"
    assert sorted(error.step_ids) == ["s2", "s3", "s4"]
    assert "cycle" in str(error)


def test_unknown_executor():
    p = plan(("s1", [], "a", "shell"), ("s2", [], "b", "llm"), ("s3", ["s1", "s2"], "c", "web"))
    error = rejection(p)
    assert error.kind == "unknown_executor"
    assert error.step_ids == ["s1", "s3"]
    message = str(error)
    assert "shell" in message and "web" in message
    for name in EXECUTORS:  # the message lists what is allowed, for the repair attempt
        assert name in message


def test_undeclared_reference():
    p = plan(
        ("s1", []),
        ("s2", []),
        ("s3", ["s1", "s2"], "combine {{s1}} with {{ s2 }}"),
        ("s4", ["s3"], "use {{s3}} and {{s1}}"),
    )
    # s1 is an ancestor of s4 through s3: that is declared enough
    validate_plan(p, EXECUTORS)
    error = rejection(plan(("s1", []), ("s2", []), ("s3", ["s2"], "use {{s1}} and {{s2}}")))
    assert error.kind == "undeclared_reference"
    assert error.step_ids == ["s3", "s1"]
    assert "{{s1}}" in str(error)


def test_undeclared_reference_in_string_args():
    p = Plan(
        steps=[
            Step(id="s1", instruction="one"),
            Step(id="s2", instruction="two", executor="python", args={"code": "print({{s1}})"}),
        ]
    )
    error = rejection(p)
    assert error.kind == "undeclared_reference"
    assert error.step_ids == ["s2", "s1"]


def test_reference_to_unknown_step_is_undeclared():
    error = rejection(plan(("s1", [], "use {{ghost}}")))
    assert error.kind == "undeclared_reference"
    assert error.step_ids == ["s1", "ghost"]


def test_final_not_last():
    # s2 is listed last but s1 needs it: the answer would come from s2, which s1 then uses
    error = rejection(plan(("s1", ["s2"]), ("s2", [])))
    assert error.kind == "final_not_last"
    assert error.step_ids == ["s2", "s1"]


def test_unused_step():
    p = plan(("s1", []), ("s2", []), ("s3", ["s1"]), ("s4", ["s3"]))
    error = rejection(p)
    assert error.kind == "unused_step"
    assert error.step_ids == ["s2"]
    assert "s4" in str(error)  # names the last step the unused one should feed


def test_errors_come_in_fixing_order():
    # duplicate ids are reported before the unknown executor and the cycle
    p = plan(("s1", ["s2"], "x", "web"), ("s2", ["s1"]), ("s2", []))
    assert rejection(p).kind == "duplicate_id"
    p = plan(("s1", ["s2"], "x", "web"), ("s2", ["s1"]))
    assert rejection(p).kind == "unknown_executor"
    assert rejection(p, executors=None).kind == "cycle"


# --- plans that pass ----------------------------------------------------------------------------


def test_single_step_passes():
    p = plan(("s1", [], "What is the capital of Australia?"))
    validate_plan(p, EXECUTORS)
    assert p.validate_for(EXECUTORS) is p


def test_diamond_passes():
    p = plan(
        ("s1", []),
        ("s2", ["s1"], "left {{s1}}"),
        ("s3", ["s1"], "right {{s1}}", "python"),
        ("s4", ["s2", "s3"], "join {{s2}} and {{s3}}"),
    )
    validate_plan(p, EXECUTORS)


def test_parallel_fan_in_passes():
    p = plan(*[(f"s{i}", []) for i in range(1, 6)], ("s6", [f"s{i}" for i in range(1, 6)]))
    validate_plan(p, EXECUTORS)


def test_no_executor_list_means_no_executor_check():
    validate_plan(plan(("s1", [], "x", "anything-goes")), None)


# --- views of a plan ----------------------------------------------------------------------------


def diamond() -> Plan:
    return plan(("s1", []), ("s2", ["s1"]), ("s3", ["s1"]), ("s4", ["s2", "s3"]))


def test_graph_edges_point_from_dependency_to_dependent():
    graph = diamond().graph()
    assert set(graph.nodes) == {"s1", "s2", "s3", "s4"}
    assert set(graph.edges) == {("s1", "s2"), ("s1", "s3"), ("s2", "s4"), ("s3", "s4")}
    assert graph.nodes["s3"]["step"].id == "s3"


def test_mermaid_has_every_step_and_edge():
    p = diamond()
    p.steps[1].instruction = 'say "hi"\nthen stop ' + "x" * 200
    text = p.mermaid()
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    for step in p.steps:
        node = [line for line in lines if re.match(rf"\s*{step.id}\[\"", line)]
        assert len(node) == 1, f"no node line for {step.id}"
        label = node[0].split("[", 1)[1]
        assert label.endswith('"]') and label.count('"') == 2  # quotes inside are replaced
    edges = {tuple(line.split(" --> ")) for line in lines if "-->" in line}
    assert edges == {("    s1", "s2"), ("    s1", "s3"), ("    s2", "s4"), ("    s3", "s4")}
    assert "\n" not in lines[2].split("[", 1)[1]
    assert all(len(line) < 120 for line in lines)  # long labels are cut


def test_order_is_the_plan_order_when_the_plan_is_already_topological():
    p = plan(("s1", []), ("s2", []), ("s3", ["s2"]), ("s4", ["s1", "s3"]))
    assert order(p) == ["s1", "s2", "s3", "s4"]


def test_order_moves_dependencies_first_and_otherwise_keeps_plan_order():
    p = plan(("a", []), ("c", ["b"]), ("b", []), ("d", []), ("e", ["a", "c", "d"]))
    result = order(p)
    assert result == ["a", "b", "c", "d", "e"]
    position = {step_id: i for i, step_id in enumerate(result)}
    for step in p.steps:
        for dep in step.depends_on:
            assert position[dep] < position[step.id]
