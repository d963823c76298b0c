"""The run recorder: every store write of a run, made from its typed events, off the
event loop.

The runtime's tasks only emit events (`stepgraph.runtime.events`); the recorder turns each
into the store's rows: a step as it starts and ends, each verdict, each plan, the event
log, the run's end and its turn of the conversation. Writes go to one writer thread, and
whatever queued while it was busy is written in one transaction: a commit per write was
most of a no-op step's cost (measured), and a slow disk no longer stalls the steps that
are running. Writes keep their order, so a reader that has `flush`ed sees every event
emitted before.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stepgraph.memory import Store
from stepgraph.runtime.events import (
    Event,
    PlanReady,
    RunFinished,
    StepFinished,
    StepStarted,
    VerdictMade,
)

# what the event log keeps of a step's output: the step row holds all of it
_LOGGED_OUTPUT = 500


class Recorder:
    """Writes runs to `store` from their events, in the order they were recorded."""

    def __init__(self, store: Store):
        self.store = store
        self._pending: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="stepgraph-recorder")
        self._error: BaseException | None = None

    def __call__(self, event: Event) -> None:
        """Record one event: its row(s) and its line in the run's event log."""
        at = time.time()  # when it happened, not when the writer gets to it
        self._queue(lambda: self._write(event, at))

    def dispatched(self, run_id: str, steps: list[dict[str, Any]]) -> None:
        """Log steps as dispatched (their `round` in each); `flush` before calling their
        tasks, since a resumed run calls tasks again in this logged order."""
        self._queue(lambda: self.store.record_events(run_id, [("dispatch", s) for s in steps]))

    async def start(self, instruction: str, **fields: Any) -> str:
        """Start a run (`Store.start_run`'s fields) on the writer thread; its id."""
        await self.flush()
        return await asyncio.wrap_future(
            self._writer.submit(lambda: self.store.start_run(instruction, **fields))
        )

    def submit(self, instruction: str, *, plan: dict[str, Any] | None = None, **fields: Any) -> str:
        """Record a run for a worker to run (`Store.submit_run`'s fields), after everything
        queued (the writer takes jobs in order); its id. Called outside any run, so it
        waits here. A `plan` given is written in the same transaction, so no worker can
        claim the run before its plan is there (and plan it itself)."""

        def write() -> str:
            with self.store.transaction():
                run_id = self.store.submit_run(instruction, **fields)
                if plan is not None:
                    self._write(PlanReady(run_id=run_id, plan=plan), time.time())
            return run_id

        return self._writer.submit(write).result()

    async def flush(self) -> None:
        """Wait until everything recorded so far is written; a write that failed is raised
        here (the store's own StoreError, which says what to do)."""
        await asyncio.wrap_future(self._writer.submit(lambda: None))
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        self._writer.shutdown(wait=True)

    # -- the writer thread ---------------------------------------------------------------

    def _queue(self, write: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append(write)
            if len(self._pending) == 1:  # no batch waiting for the writer: start one
                self._writer.submit(self._drain)

    def _drain(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        try:
            with self.store.transaction():
                for write in batch:
                    write()
        except BaseException as exc:  # kept for the next flush, which raises it
            self._error = self._error or exc

    def _write(self, event: Event, at: float) -> None:
        run_id, step_id, store = event.run_id, event.step_id, self.store
        if isinstance(event, StepStarted | StepFinished):  # what the step was asked
            asked = {
                "executor": event.executor,
                "instruction": event.instruction,
                "args": event.args,
                "depends_on": event.depends_on,
            }
        if isinstance(event, StepStarted):
            store.record_step(run_id, step_id, **asked, status="running", started=at)
        elif isinstance(event, StepFinished):
            store.record_step(
                run_id,
                step_id,
                **asked,
                output=event.output,
                data=event.result_data,
                status=event.status,
                attempts=1 if event.attempts is None else event.attempts,
                error=event.error,
                seconds=event.seconds,
                prompt_tokens=event.prompt_tokens,
                completion_tokens=event.completion_tokens,
                model=event.model,
                finished=at,
            )
        elif isinstance(event, VerdictMade):
            store.record_verdict(run_id, step_id, event.check, event.passed, event.evidence)
        elif isinstance(event, PlanReady) and event.plan is not None:
            store.record_plan(run_id, event.plan)
        elif isinstance(event, RunFinished):
            self._finish(event)
        store.record_events(run_id, [(event.type, _logged(event))])

    def _finish(self, event: RunFinished) -> None:
        if event.status == "interrupted":  # waiting for approval: nothing to total yet
            self.store.finish_run(event.run_id, status="interrupted")
            return
        self.store.finish_run(
            event.run_id,
            status=event.status,
            answer=event.answer,
            error=event.error,
            seconds=event.seconds,
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
        )
        if event.answer:
            self.store.record_turn(event.run_id, event.answer)


def _logged(event: Event) -> dict[str, Any]:
    """An event's line in the log: its fields, with a step's output cut short and its
    data left out (the step row keeps both)."""
    data = {"step_id": event.step_id, **event.data}
    if isinstance(event, StepFinished):
        data["output"] = event.output[:_LOGGED_OUTPUT]
        data.pop("result_data", None)
    return data
