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
        if (recorded.instruction or "") != step.instruction:
            # the re-walked graph rendered this step differently (its dependencies' outputs
            # or the plan changed): the recording cannot stand for it
            return StepOutput(
                error=f"re-rendered instruction differs from the recording: {step.instruction!r}"
            )
        if recorded.status != "done":
            return StepOutput(error=recorded.error or f"recorded as {recorded.status}")
        return StepOutput(output=recorded.output or "", data=recorded.data)


class _RecordedComposer(BackendBase):
    """Answers with the recorded answer; a composer's request (the results written out for
    the answer) only when it carries every recorded step output, since a composer shown
    other results would not have written it."""

    name = "recording"

    def __init__(self, answer: str, outputs: list[str]):
        self._answer = answer
        self._outputs = [o.strip()[:200] for o in outputs if o.strip()]

    def generate(self, requests: list[Request]) -> list[Completion]:
        return [self._reply(r) for r in requests]

    def _reply(self, request: Request) -> Completion:
        from stepgraph.verifier.composer import COMPOSE_SYSTEM

        composing = request.messages[0].content == COMPOSE_SYSTEM
        shown = "\n".join(m.content for m in request.messages)
        missing = [o for o in self._outputs if o not in shown] if composing else []
        text = (
            self._answer if not missing else f"[replay: the composer was not shown {missing[0]!r}]"
        )
        return Completion(text=text, model=self.name)


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
            planned = {s.id for s in plan.steps}
            outputs = [
                s.output or "" for s in record.steps if s.step_id in planned and s.status == "done"
            ]
            runtime = Runtime(
                _RecordedComposer(record.answer or "", outputs),
                store=scratch,
                executors=executors,
                eager=False,
                # as the run was made: with its direct candidate only if it had one
                direct=any(s.step_id == "direct" for s in record.steps),
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
