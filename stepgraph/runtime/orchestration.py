"""One run's orchestration inside the LangGraph entrypoint: its state in one object.

The runtime's tasks (`Tasks`) do the work and are checkpointed by LangGraph; this object
only decides what runs when: the direct answer from the start, the plan (or none), each
step as soon as it is dispatched, a replan while steps fail, then the composed answer and
the choice. Every dispatch is logged in the store before its task is called, so that a
resumed run calls the same tasks in the same order and gets each cached result back for
its own step. Everything else it records goes to the store as events (the recorder).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stepgraph.errors import PlanError
from stepgraph.planner.plan import Plan, Step
from stepgraph.runtime.events import PlanReady

if TYPE_CHECKING:
    from stepgraph.runtime.runtime import Runtime


@dataclass(frozen=True)
class Tasks:
    """The runtime's LangGraph tasks: each call returns a future of plain data."""

    execute: Any
    answer_directly: Any
    compose: Any
    decide: Any
    replan: Any
    break_ties: Any


class Orchestration:
    """The state of one run's workflow: what was dispatched (in order, with its futures),
    what each step ended with, and how far results have been relayed."""

    def __init__(self, runtime: Runtime, tasks: Tasks, run_id: str):
        self.runtime, self.tasks, self.run_id = runtime, tasks, run_id
        self.board = runtime._boards[run_id]
        self.write = runtime._teller()
        self.record = runtime.store.run(run_id)
        self.board.task = self.record.instruction
        self.board.history = runtime._conversation(self.record)
        self.dispatched: list[dict] = []
        self.futures: list = []
        self.results: dict[str, dict] = {}
        self.relayed = 0
        self.logged = {
            (e.payload.get("round", 0), e.payload["id"])
            for e in self.record.events
            if e.type == "dispatch"
        }
        self.direct = None

    async def run(self) -> dict:
        runtime = self.runtime
        # the floor: the model's own answer, decoded beside the planner from the start
        self.direct = self.tasks.answer_directly(self.run_id) if runtime.direct else None
        # first-round dispatches in their logged order; later rounds follow their replan
        for event in self.record.events:
            if event.type == "dispatch" and event.payload.get("round", 0) == 0:
                await self.dispatch(
                    Step(**{k: v for k, v in event.payload.items() if k != "round"})
                )
        plan = await self.the_plan()
        await self.start(plan)
        everything, current = await self.rounds(plan)
        final_ids = [s.id for s in current.steps]
        results = self.results
        ordered = [results[s.id] for s in everything if results[s.id]["status"] != "skipped"]
        ordered += [results[s.id] for s in current.steps if results[s.id]["status"] == "skipped"]
        composed = await self.tasks.compose(self.run_id, ordered, final_ids)
        direct = await self.direct if self.direct is not None else None
        return await self.tasks.decide(self.run_id, composed, direct, ordered)

    async def dispatch(self, *steps: Step, round: int = 0) -> None:
        """Log the steps' dispatches (written before their tasks are called), then call
        their tasks."""
        new = [s for s in steps if (round, s.id) not in self.logged]
        if new:
            recorder = self.runtime.recorder
            recorder.dispatched(self.run_id, [{"round": round, **s.model_dump()} for s in new])
            await recorder.flush()
            self.logged.update((round, s.id) for s in new)
        for step in steps:
            self.dispatched.append(step.model_dump())
            self.board.current[step.id] = step.model_dump()
            self.futures.append(self.tasks.execute(self.run_id, step.model_dump()))

    async def the_plan(self) -> Plan:
        """The plan kept for this run (a resumed one), else a new one, recorded; then the
        caller's approval, when asked for, which may replace it."""
        runtime, record = self.runtime, self.record
        if record.plan is not None:
            plan = Plan(goal=record.plan.get("goal", ""), steps=record.plan["steps"])
        else:
            plan = await self.make_plan()  # recorded from the PlanReady it tells
        if runtime.approve_plan and not self.dispatched:
            from langgraph.types import interrupt

            answer = interrupt({"run_id": self.run_id, "plan": plan.model_dump()})
            if isinstance(answer, dict) and "steps" in answer:
                plan = Plan(**answer).validate_for(runtime.executors)
                self.write(PlanReady(run_id=self.run_id, plan=plan.model_dump()))
        return plan

    async def make_plan(self) -> Plan:
        """The planner's plan, or a one-step plan the candidates answer: for questions
        asking for numbers that the candidates settle; where code checks the
        instruction's form and the direct answer already passes; and where the planner
        fails, since the direct answer is still an answer."""
        runtime, direct, run_id = self.runtime, self.direct, self.run_id
        settled = None
        confirm = (
            runtime._confirmable(self.board) if direct is not None and not self.dispatched else None
        )
        if confirm == "number":
            self.board.made = await self.tasks.break_ties(run_id, await direct)
            settled = runtime._by_candidates(run_id)
        elif confirm == "form":
            settled = await runtime._unplanned(run_id, await direct)
        if settled is not None:
            return settled
        known_ids = {d["id"] for d in self.dispatched}

        async def eagerly(step: Step) -> None:
            if step.id not in known_ids:
                await self.dispatch(step)

        try:
            return await runtime._plan(
                run_id,
                self.record.instruction,
                self.board.history,
                self.write,
                eagerly if runtime.eager else None,
                hold_lone_llm=runtime.direct,
            )
        except PlanError as exc:
            floor = direct is not None and not self.dispatched  # nothing of the plan ran
            plan = runtime._one_step_plan(run_id, f"no plan: {exc}") if floor else None
            if plan is None:
                raise
            return plan

    async def start(self, plan: Plan) -> None:
        """Dispatch what of the plan is not running yet; a one-step llm plan is the direct
        answer: the same call, not a second one."""
        latest_of = {d["id"]: d for d in self.dispatched}
        writing = self.runtime.verifier.writing
        if self.direct is not None and lone_llm_step(plan, writing) and not self.dispatched:
            step = plan.steps[0]
            self.results[step.id] = self.runtime._as_step(self.run_id, step, await self.direct)
            self.board.publish(step.id, self.results[step.id])
        else:
            await self.dispatch(*(s for s in plan.steps if latest_of.get(s.id) != s.model_dump()))

    async def rounds(self, plan: Plan) -> tuple[list[Step], Plan]:
        """Wait for the steps; while some failed even after their retry, plan the rest of
        the work again (up to `max_replans`). Every step run, and the last round's plan."""
        runtime = self.runtime
        everything = list(plan.steps)
        current = plan
        for round in range(1, runtime.max_replans + 2):
            pending = list(enumerate(self.futures))[self.relayed :]
            self.relayed = len(self.futures)
            await asyncio.gather(*(self.relay(i, f) for i, f in pending))
            failed = [s.id for s in current.steps if self.results[s.id]["status"] == "failed"]
            if not failed or round > runtime.max_replans:
                break
            progress = progress_note(everything, self.results)
            new = await self.tasks.replan(self.run_id, progress, round)
            if new is None:
                break
            current = Plan(**new).renamed(f"r{round}")
            for step in current.steps:
                self.board.notes[step.id] = progress
            await self.dispatch(*current.steps, round=round)
            everything += current.steps
        return everything, current

    async def relay(self, index: int, future) -> None:
        """A step's result, published to its dependents, unless a later dispatch of the
        same step id (a resumed run's) supersedes it."""
        value = await future
        step_id = self.dispatched[index]["id"]
        if max(i for i, d in enumerate(self.dispatched) if d["id"] == step_id) == index:
            self.board.publish(step_id, value)
            self.results[step_id] = value


def lone_llm_step(plan: Plan, writing: frozenset[str]) -> bool:
    """A plan that is one prose step on its own (`writing`: the executors that declare
    `writes_text`): the model answering the task itself."""
    return (
        len(plan.steps) == 1 and plan.steps[0].executor in writing and not plan.steps[0].depends_on
    )


def progress_note(steps: list[Step], results: dict[str, dict]) -> str:
    """What the replanner is told: each step done (with its output) or failed (why)."""
    lines = ["Progress so far:"]
    for step in steps:
        r = results.get(step.id)
        if r is None:
            continue
        if r["status"] == "done":
            lines.append(f"- done: {r['instruction'][:200]} -> {r['output'].strip()[:300]}")
        elif r["status"] == "failed":
            lines.append(f"- FAILED: {r['instruction'][:200]} ({(r['error'] or '')[:200]})")
    return "\n".join(lines)
