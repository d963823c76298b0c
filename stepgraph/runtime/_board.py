"""Where step tasks find their dependencies' results.

LangGraph hands cached task results back by call order, so tasks are called in the plan's
order and each one waits here, inside the task, for the steps it depends on.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Board:
    """One future per step id, created on first use by either side."""

    def __init__(self) -> None:
        self._results: dict[str, asyncio.Future] = {}
        self.tokens = 0
        self.plan_tokens = 0  # what decoding the plan generated (not kept across a resume)
        self.deadline = float("inf")  # when the run's time budget ends (perf_counter)
        # the step definition each id runs under now; a repaired plan can supersede a
        # dispatched step, and the superseded task must not record over the current one
        self.current: dict[str, dict] = {}
        self.task = ""  # the run's instruction and conversation, read from the store once
        self.history: list = []
        self.notes: dict[str, str] = {}  # progress shown to the steps of a replanned round
        # candidates made so far, checked (name -> {"candidate", "draft"}): made once a run
        self.made: dict[str, dict] = {}
        self.trace: Any = None  # the OpenTelemetry context of the run's span

    def _future(self, step_id: str) -> asyncio.Future:
        if step_id not in self._results:
            self._results[step_id] = asyncio.get_running_loop().create_future()
        return self._results[step_id]

    def publish(self, step_id: str, result: dict[str, Any]) -> None:
        future = self._future(step_id)
        if not future.done():
            future.set_result(result)

    async def wait(self, step_ids: list[str]) -> dict[str, dict[str, Any]]:
        results = await asyncio.gather(*(self._future(s) for s in step_ids))
        return dict(zip(step_ids, results, strict=True))
