"""Replay a recorded run: without a model (from the store alone), or against another model.

Without a model, every executor and the composer answer from the recording, while the real
runtime re-walks the recorded graph: ordering, `{{id}}` rendering and composition are
exercised again, and the answer must come out identical. With a model, the same plan runs
for real and each step is diffed against the recording.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel

from stepgraph.errors import StepgraphError
from stepgraph.executors.base import StepInput, StepOutput
from stepgraph.memory import RunRecord, Store
from stepgraph.models.base import BackendBase, Completion, Request
from stepgraph.planner.plan import Plan


class StepDiff(BaseModel):
    step_id: str
    recorded: str
    replayed: str
    same: bool


class ReplayReport(BaseModel):
    run_id: str
    model: str | None
    answer: str
    recorded_answer: str
    same_answer: bool
    steps: list[StepDiff]


class _RecordedExecutor:
    def __init__(self, name: str, record: RunRecord):
        self.name = name
        self.description = f"replays recorded {name} steps"
        self._steps = {s.step_id: s for s in record.steps}

    async def run(self, step: StepInput) -> StepOutput:
        recorded = self._steps.get(step.step_id)
        if recorded is None:
            return StepOutput(error=f"step {step.step_id} was not recorded")
        if recorded.status != "done":
            return StepOutput(error=recorded.error or f"recorded as {recorded.status}")
        return StepOutput(output=recorded.output or "", data=recorded.data)


class _RecordedComposer(BackendBase):
    """Answers the composer's request with the recorded answer; nothing else may ask."""

    name = "recording"

    def __init__(self, answer: str):
        self._answer = answer

    def generate(self, requests: list[Request]) -> list[Completion]:
        return [Completion(text=self._answer, model=self.name) for _ in requests]


def replay(store: Store, run_id: str, *, model: BackendBase | None = None) -> ReplayReport:
    from stepgraph.runtime.runtime import Runtime

    record = store.run(run_id)
    if record.plan is None:
        raise StepgraphError(f"run {record.id} has no recorded plan, so there is nothing to replay")
    plan = Plan(goal=record.plan.get("goal", ""), steps=record.plan["steps"])
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Store(Path(tmp) / "replay.db")
        if model is None:
            names = {s.executor for s in plan.steps}
            executors = [_RecordedExecutor(n, record) for n in names]
            runtime = Runtime(
                _RecordedComposer(record.answer or ""),
                store=scratch,
                executors=executors,
                eager=False,
            )
        else:
            runtime = Runtime(model, store=scratch, eager=False)
        result = runtime.run(record.instruction, plan=plan)
        scratch.close()
    replayed = {s.step_id: s.output for s in result.steps}
    diffs = [
        StepDiff(
            step_id=s.step_id,
            recorded=s.output or "",
            replayed=replayed.get(s.step_id, ""),
            same=(s.output or "") == replayed.get(s.step_id, ""),
        )
        for s in record.steps
    ]
    return ReplayReport(
        run_id=record.id,
        model=model.name if model else None,
        answer=result.answer,
        recorded_answer=record.answer or "",
        same_answer=result.answer == (record.answer or ""),
        steps=diffs,
    )
