"""Plans: what the planner produces and the runtime executes.

Validation fails closed: a plan runs only if it is a DAG whose every step leads to the
answer (the last step), with known executors and references only to declared dependencies.
Every problem is a PlanError naming the offending step ids, because that text goes back
to the model for its one repair attempt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from stepgraph.errors import PlanError

REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_\-]*)\s*\}\}")


class Step(BaseModel):
    """One unit of work. `instruction` may use `{{id}}` for a dependency's output."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    instruction: str
    executor: str = "llm"
    args: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)

    def references(self) -> list[str]:
        """Step ids referenced as `{{id}}` in the instruction or in string arguments."""
        texts = [self.instruction, *(v for v in self.args.values() if isinstance(v, str))]
        return [m.group(1) for text in texts for m in REFERENCE.finditer(text)]


class Plan(BaseModel):
    """A goal and its steps, in an order where dependencies come first."""

    model_config = ConfigDict(extra="forbid")

    goal: str = ""
    steps: list[Step] = Field(default_factory=list)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def final(self) -> Step:
        return self.steps[-1]

    def graph(self) -> nx.DiGraph:
        """Edges point from a dependency to the step that needs it."""
        graph = nx.DiGraph()
        for step in self.steps:
            graph.add_node(step.id, step=step)
        for step in self.steps:
            for dep in step.depends_on:
                graph.add_edge(dep, step.id)
        return graph

    def renamed(self, prefix: str) -> Plan:
        """The plan with its step ids prefixed (a replanned round's r1s1, ...), the
        references and dependencies between them included."""
        names = {s.id: f"{prefix}{s.id}" for s in self.steps}

        def rename(text: str) -> str:
            return REFERENCE.sub(lambda m: "{{" + names.get(m.group(1), m.group(1)) + "}}", text)

        steps = [
            s.model_copy(
                update={
                    "id": names[s.id],
                    "instruction": rename(s.instruction),
                    "depends_on": [names[d] for d in s.depends_on],
                }
            )
            for s in self.steps
        ]
        return Plan(goal=self.goal, steps=steps)

    def validate_for(self, executors: Iterable[str] | None = None) -> Plan:
        validate_plan(self, executors)
        return self

    def mermaid(self) -> str:
        lines = ["flowchart TD"]
        for step in self.steps:
            label = f"{step.id} [{step.executor}]: {step.instruction}"
            label = label.replace('"', "'").replace("\n", " ")
            if len(label) > 80:
                label = label[:77] + "..."
            lines.append(f'    {step.id}["{label}"]')
        for step in self.steps:
            for dep in step.depends_on:
                lines.append(f"    {dep} --> {step.id}")
        return "\n".join(lines)


def validate_plan(plan: Plan, executors: Iterable[str] | None = None) -> None:
    """Raise the first PlanError found, in the order a reader would fix them."""
    if not plan.steps:
        raise PlanError("the plan has no steps; a plan needs at least one step", kind="empty")
    ids = [step.id for step in plan.steps]
    seen: set[str] = set()
    duplicates = sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
    if duplicates:
        raise PlanError(
            f"duplicate step ids: {', '.join(duplicates)}; give every step its own id",
            kind="duplicate_id",
            step_ids=duplicates,
        )
    empty = [s.id for s in plan.steps if not s.instruction.strip()]
    if empty:
        raise PlanError(
            f"steps {', '.join(empty)} have an empty instruction", kind="empty_step", step_ids=empty
        )
    known = set(ids)
    for step in plan.steps:
        unknown = [d for d in step.depends_on if d not in known]
        if unknown:
            raise PlanError(
                f"step {step.id} depends on unknown steps {', '.join(unknown)}",
                kind="unknown_dependency",
                step_ids=[step.id, *unknown],
            )
        if step.id in step.depends_on:
            raise PlanError(f"step {step.id} depends on itself", kind="cycle", step_ids=[step.id])
    if executors is not None:
        allowed = set(executors)
        bad = [s.id for s in plan.steps if s.executor not in allowed]
        if bad:
            names = ", ".join(sorted({plan.step(i).executor for i in bad}))
            raise PlanError(
                f"steps {', '.join(bad)} use unknown executors ({names}); "
                f"choose from: {', '.join(sorted(allowed))}",
                kind="unknown_executor",
                step_ids=bad,
            )
    graph = plan.graph()
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        members = [edge[0] for edge in cycle]
        raise PlanError(
            f"steps {' -> '.join([*members, members[0]])} form a cycle",
            kind="cycle",
            step_ids=members,
        )
    for step in plan.steps:
        ancestors = nx.ancestors(graph, step.id)
        loose = [r for r in dict.fromkeys(step.references()) if r not in ancestors]
        if loose:
            raise PlanError(
                f"step {step.id} uses {', '.join('{{' + r + '}}' for r in loose)} "
                f"without depending on {', '.join(loose)}; add them to depends_on",
                kind="undeclared_reference",
                step_ids=[step.id, *loose],
            )
    final = plan.final.id
    if graph.out_degree(final) != 0:
        later = sorted(graph.successors(final))
        raise PlanError(
            f"the last step {final} must give the answer, but {', '.join(later)} depend on it",
            kind="final_not_last",
            step_ids=[final, *later],
        )
    feeding = nx.ancestors(graph, final)
    unused = [i for i in ids if i != final and i not in feeding]
    if unused:
        raise PlanError(
            f"steps {', '.join(unused)} do not lead to the answer (the last step "
            f"{final} does not depend on them); remove them or make a later step use them",
            kind="unused_step",
            step_ids=unused,
        )


def order(plan: Plan) -> list[str]:
    """Topological order that keeps the plan's own order where it can (stable)."""
    position = {s.id: i for i, s in enumerate(plan.steps)}
    return list(nx.lexicographical_topological_sort(plan.graph(), key=position.__getitem__))
