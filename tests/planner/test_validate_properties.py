"""Property tests: the parser fails only with PlanError, and validate_plan agrees with an
independent oracle about which random step graphs are valid plans."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepgraph.errors import PlanError
from stepgraph.models.scripted import ScriptedBackend
from stepgraph.planner.plan import REFERENCE, Plan, Step, order, validate_plan
from stepgraph.planner.planner import Planner

KNOWN_EXECUTORS = frozenset({"llm", "python"})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)

# dictionaries that look like steps, so parsing gets past the outer shape more often
step_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(["s1", "s2", "s3", ""]) | json_values,
        "instruction": st.sampled_from(["do it", "use {{s1}}", " ", "{{s2}} {{s9}}"]) | json_values,
        "executor": st.sampled_from(["llm", "python", "web"]) | json_values,
        "depends_on": st.lists(st.sampled_from(["s1", "s2", "s3", "s9"]), max_size=3) | json_values,
        "args": st.dictionaries(st.text(max_size=5), json_values, max_size=2) | json_values,
        "extra": json_values,
    },
)

model_outputs = st.one_of(
    json_values.map(json.dumps),
    st.builds(lambda v: json.dumps({"steps": v}), json_values),
    st.builds(lambda v: json.dumps({"steps": v}), st.lists(step_like, max_size=5)),
    st.builds(lambda v: json.dumps(v), st.lists(step_like, max_size=5)),
    st.builds(
        lambda v: "Here is the plan:\n```json\n" + json.dumps({"steps": v}) + "\n```",
        st.lists(step_like, max_size=4),
    ),
    st.text(max_size=200),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_outputs)
def test_parse_fails_only_with_plan_error(text: str):
    planner = Planner(
        ScriptedBackend([]), executors={"llm": "text", "python": "code"}, constrained=False
    )
    try:
        result = planner.parse(text)
    except PlanError as error:
        assert error.kind in {
            "parse",
            "empty",
            "duplicate_id",
            "empty_step",
            "unknown_dependency",
            "cycle",
            "unknown_executor",
            "undeclared_reference",
            "final_not_last",
            "unused_step",
        }
        assert str(error)  # the message goes back to the model, it must say something
    else:
        assert isinstance(result, Plan) and result.steps
        validate_plan(result, KNOWN_EXECUTORS)  # what parse returns is valid


# --- random graphs against an oracle ----------------------------------------------------------

IDS = ["s1", "s2", "s3", "s4", "s5"]
UNKNOWN = ["zz"]


def some_of(draw, common: list[str], *, max_size: int) -> list[str]:
    """A short list drawn mostly from `common`; now and then (always, when `common` is empty:
    rarely non-empty) from any id, including an unknown one."""
    rare = [*IDS, *UNKNOWN]
    if not common:
        if draw(st.integers(0, 9)):
            return []
        return draw(st.lists(st.sampled_from(rare), max_size=1))
    weighted = common * 15 * len(rare) + rare * len(common)
    return draw(st.lists(st.sampled_from(weighted), max_size=max_size))


@st.composite
def random_plans(draw) -> Plan:
    """Random step lists, biased so that a good share are valid plans and the rest break one
    or several rules (duplicate ids, unknown ids, self-loops, cycles, unknown executors,
    undeclared references, unused steps, a final step that others depend on)."""
    n = draw(st.integers(min_value=0, max_value=6))
    if draw(st.integers(0, 4)):
        ids = [f"s{i}" for i in range(1, n + 1)]
    else:
        ids = draw(st.lists(st.sampled_from(IDS), min_size=n, max_size=n))
    deps_of = [some_of(draw, ids[:i], max_size=3) for i in range(n)]
    if n and draw(st.integers(0, 3)):  # usually wire every loose step into the last one
        used = {d for deps in deps_of for d in deps}
        deps_of[-1] += [i for i in ids[:-1] if i not in used]
    steps = []
    for step_id, deps in zip(ids, deps_of, strict=True):
        refs = some_of(draw, deps, max_size=2)
        text = draw(st.sampled_from(["work"] * 18 + ["", "  "]))
        instruction = " ".join([text, *("{{" + r + "}}" for r in refs)])
        args = {}
        if draw(st.integers(0, 3)) == 0:
            refs_in_code = some_of(draw, deps, max_size=1)
            args = {"code": "x = " + "".join("{{" + r + "}}" for r in refs_in_code), "n": 3}
        executor = draw(st.sampled_from(["llm", "python"] * 15 + ["shell"]))
        steps.append(
            Step(id=step_id, instruction=instruction, depends_on=deps, args=args, executor=executor)
        )
    return Plan(goal="random", steps=steps)


def oracle_violations(plan: Plan, executors: frozenset[str]) -> set[str]:
    """Every rule the plan breaks, computed without networkx."""
    steps = plan.steps
    if not steps:
        return {"empty"}
    found: set[str] = set()
    ids = [s.id for s in steps]
    known = set(ids)
    if len(known) != len(ids):
        found.add("duplicate_id")
    if any(not s.instruction.strip() for s in steps):
        found.add("empty_step")
    if any(d not in known for s in steps for d in s.depends_on):
        found.add("unknown_dependency")
    if any(s.executor not in executors for s in steps):
        found.add("unknown_executor")
    parents: dict[str, set[str]] = {i: set() for i in known}
    children: dict[str, set[str]] = {i: set() for i in known}
    for s in steps:
        for d in s.depends_on:
            if d in known:
                parents[s.id].add(d)
                children[d].add(s.id)
    # Kahn: a cycle leaves nodes that never reach in-degree zero
    indegree = {i: len(parents[i]) for i in known}
    ready = [i for i in known if indegree[i] == 0]
    removed = 0
    while ready:
        node = ready.pop()
        removed += 1
        for child in children[node]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if removed != len(known):
        found.add("cycle")

    def ancestors(node: str) -> set[str]:
        seen: set[str] = set()
        stack = list(parents[node])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(parents[current])
        return seen

    for s in steps:
        texts = [s.instruction, *(v for v in s.args.values() if isinstance(v, str))]
        refs = {m for t in texts for m in REFERENCE.findall(t)}
        if refs - ancestors(s.id):
            found.add("undeclared_reference")
    last = steps[-1].id
    if children[last]:
        found.add("final_not_last")
    if any(i != last and i not in ancestors(last) for i in ids):
        found.add("unused_step")
    return found


@settings(max_examples=500, deadline=None)
@given(random_plans())
def test_validate_agrees_with_oracle(plan: Plan):
    violations = oracle_violations(plan, KNOWN_EXECUTORS)
    try:
        validate_plan(plan, KNOWN_EXECUTORS)
    except PlanError as error:
        assert violations, f"validate_plan rejected a valid plan: {error}"
        assert error.kind in violations, (error.kind, violations, str(error))
        mentioned = {s.id for s in plan.steps} | {d for s in plan.steps for d in s.depends_on}
        mentioned |= {r for s in plan.steps for r in s.references()}
        if error.kind != "empty":
            assert error.step_ids and set(error.step_ids) <= mentioned
    else:
        assert not violations, f"validate_plan accepted a plan that breaks {violations}"
        ids = order(plan)
        assert sorted(ids) == sorted(s.id for s in plan.steps)
        position = {step_id: i for i, step_id in enumerate(ids)}
        assert all(position[d] < position[s.id] for s in plan.steps for d in s.depends_on)
        assert ids[-1] == plan.final.id


@st.composite
def valid_dags(draw) -> Plan:
    """Valid plans by construction, listed in an arbitrary (not necessarily topological) order."""
    n = draw(st.integers(min_value=1, max_value=8))
    ids = [f"n{i}" for i in range(n)]
    deps = {
        ids[i]: sorted(set(draw(st.lists(st.sampled_from(ids[:i]), max_size=3)))) if i else []
        for i in range(n)
    }
    for i in range(n - 1):  # every step feeds a later one, so all lead to the last
        if not any(ids[i] in deps[later] for later in ids[i + 1 :]):
            target = ids[draw(st.integers(min_value=i + 1, max_value=n - 1))]
            deps[target] = sorted({*deps[target], ids[i]})
    shuffled = draw(st.permutations(ids[:-1]))
    return Plan(
        steps=[Step(id=i, instruction=f"do {i}", depends_on=deps[i]) for i in [*shuffled, ids[-1]]]
    )


def stable_topological(plan: Plan) -> list[str]:
    """The topological order that always takes the earliest listed ready step."""
    done: list[str] = []
    pending = list(plan.steps)
    while pending:
        step = next(s for s in pending if all(d in done for d in s.depends_on))
        done.append(step.id)
        pending.remove(step)
    return done


@settings(max_examples=150, deadline=None)
@given(valid_dags())
def test_order_is_the_stable_topological_order(plan: Plan):
    validate_plan(plan, ["llm"])
    assert order(plan) == stable_topological(plan)
