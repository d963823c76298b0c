"""Many instructions at once, for evaluation and data generation (`stepgraph batch`).

An input file holds one instruction per line (JSON: `{"id": ..., "instruction": ...}`, or a
JSON string); each result is one JSON line of the output file, written as its run ends, so
a stopped batch continues where it stopped: instructions whose id already has a result are
not run again. Runs go N at once in this process (one Runtime: the model decodes them
together), or to the workers that share the store (`through_workers`): each is submitted
once, its run id written to the output first, and a batch started again waits for the
runs it submitted instead of submitting them twice.

A line may carry a `plan` (`stepgraph evolve` writes each evolved instruction with the plan
it was labelled with): that plan runs instead of planning, so a batch over evolve's output
tells which labels run and pass their checks (`--replan` plans each afresh instead).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from stepgraph.errors import PlanError, StepgraphError
from stepgraph.planner.plan import Plan

ENDED = ("done", "unverified", "partial", "failed", "budget_exceeded")


class BatchItem(BaseModel):
    id: str
    instruction: str
    plan: Plan | None = None


class BatchResult(BaseModel):
    """One output line: the run of one instruction, as it ended (or was submitted)."""

    id: str
    run_id: str
    status: str
    answer: str = ""
    failed_checks: list[str] = []
    error: str | None = None
    seconds: float | None = None


def read_items(path: Path) -> list[BatchItem]:
    """The instructions of an input file; a line that is not one is an error naming it.
    An empty file holds none (`stepgraph evolve` may keep nothing): nothing to run."""
    if not path.is_file():
        raise StepgraphError(f"no batch file at {path}; give a JSONL file of instructions")
    items: list[BatchItem] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, str):
            value = {"instruction": value}
        if not isinstance(value, dict) or not str(value.get("instruction") or "").strip():
            raise StepgraphError(
                f'{path}:{number}: not an instruction; write {{"instruction": "..."}} '
                '(an optional "id") or a JSON string per line'
            )
        plan = value.get("plan")
        if plan is not None:
            try:
                plan = Plan.model_validate(plan)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(map(str, first["loc"]))
                raise StepgraphError(
                    f"{path}:{number}: its plan is not a plan ({where}: {first['msg']}); "
                    "fix it, or give --replan to plan every instruction afresh"
                ) from None
        items.append(
            BatchItem(id=str(value.get("id", number)), instruction=value["instruction"], plan=plan)
        )
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise StepgraphError(f"{path}: the ids {', '.join(twice[:5])} appear more than once")
    return items


def read_results(path: Path) -> dict[str, BatchResult]:
    """What an output file holds already, by id (the latest line of each; a line cut short
    by a kill is skipped, so that instruction runs again)."""
    found: dict[str, BatchResult] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                result = BatchResult(**json.loads(line))
            except (ValueError, TypeError):
                continue
            found[result.id] = result
    return found


def check_plans(items: list[BatchItem], executors: Any) -> None:
    """Every plan in the file runs on these executors, or one error naming the first that
    does not, before anything runs."""
    for item in items:
        if item.plan is None:
            continue
        try:
            item.plan.validate_for(executors)
        except PlanError as exc:
            raise StepgraphError(
                f"instruction {item.id}: its plan cannot run here ({exc}); "
                "give --replan to plan every instruction afresh"
            ) from None


def end_cut_line(path: Path) -> None:
    """A line cut short by a kill ends here, so the next result starts a line of its own."""
    if path.is_file() and path.stat().st_size:
        with path.open("rb+") as f:
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                f.write(b"\n")


def result_of(item: BatchItem, run: Any) -> BatchResult:
    """A RunResult (or the store's run record) as an output line."""
    verdicts = getattr(run, "verdicts", [])
    failed = getattr(run, "failed_checks", None)
    if failed is None:  # a store record: its final answer's verdicts
        failed = [
            f"{v.check}: {v.evidence or 'failed'}"
            for v in verdicts
            if v.step_id is None and v.passed is False
        ]
    return BatchResult(
        id=item.id,
        run_id=getattr(run, "run_id", None) or run.id,
        status=run.status,
        answer=run.answer or "",
        failed_checks=list(failed),
        error=run.error,
        seconds=run.seconds,
    )


async def run_here(
    runtime: Any,
    items: list[BatchItem],
    concurrency: int,
    on_result: Callable[[BatchResult], None],
) -> None:
    """Run `items`, `concurrency` at a time, in this process; `on_result` as each ends."""
    slots = asyncio.Semaphore(concurrency)

    async def one(item: BatchItem) -> None:
        async with slots:
            on_result(result_of(item, await runtime.arun(item.instruction, plan=item.plan)))

    await asyncio.gather(*(one(item) for item in items))


def through_workers(
    runtime: Any,
    items: list[BatchItem],
    submitted: dict[str, str],
    on_result: Callable[[BatchResult], None],
    *,
    poll_s: float = 1.0,
) -> None:
    """Submit what is not submitted yet (each id's run id reported first, as status
    "submitted"), then wait for the workers to end every run."""
    waiting: dict[str, BatchItem] = {}
    for item in items:
        run_id = submitted.get(item.id)
        if run_id is None:
            run_id = runtime.submit(item.instruction, plan=item.plan)
            on_result(BatchResult(id=item.id, run_id=run_id, status="submitted"))
        waiting[run_id] = item
    while waiting:
        for run_id, item in list(waiting.items()):
            record = runtime.store.run(run_id)
            if record.status in ENDED:
                on_result(result_of(item, record))
                del waiting[run_id]
        if waiting:
            time.sleep(poll_s)
