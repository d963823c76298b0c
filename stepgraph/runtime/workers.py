"""Workers: processes, on one machine or many, that run the runs submitted to a shared
store (`Runtime.submit`, `stepgraph submit`), and take over the runs of a worker that died,
resuming each from its checkpoint so that its finished steps do not run again.

How a run is held: a claim on its row in the runs table, `UPDATE ... WHERE num IN (SELECT
... FOR UPDATE SKIP LOCKED)` on PostgreSQL (`MemoryStore.claim_runs`), which sets the run
"running", names the worker, and leases it for `lease_s` seconds of the database's clock.
The worker renews its leases every third of that. A worker that dies stops renewing; once
its lease lapses, any worker claims the run and resumes it from its checkpoint (the
checkpoints live in the same database: `stepgraph.runtime.checkpoints`). Why a claim on the
runs table and not a job queue library (procrastinate, pgqueuer): docs/deploy.md.

Never two workers on one run: a worker stops a run itself (cancels it) before its lease can
lapse, when it could not renew it in time (it counts on its own clock from the moment it
asked, which is before the database set the lease), or when a renewal finds another worker
holds it. A worker that loses the database stops all its runs at once, since it cannot
record their steps any more, connects again with backoff, and hands them back to be
claimed (by itself or another worker) and resumed. A step that was running when its worker
died or lost the database runs again; a step whose result was recorded does not.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from stepgraph.errors import ConfigError, StoreError
from stepgraph.runtime.events import RunFinished
from stepgraph.runtime.runtime import Runtime

LEASE_S = 30.0
"""How long a claim lasts unless renewed. Long enough that a busy worker renews in time (it
renews every 10 s, and stops a run it could not renew 25 s after it last asked); short
enough that the runs of a worker that died wait at most half a minute for another."""
POLL_S = 1.0
"""How often an idle worker looks for submitted runs (one short query each time)."""
MAX_CLAIMS = 5
"""A run claimed this many times whose worker stopped each time is failed, not claimed
again: a run that kills its worker (out of memory, say) must not kill all of them in turn."""
RECONNECT_S = 300.0
"""How long a worker that lost the database tries to connect again before it gives up."""


@dataclass
class WorkerReport:
    """What one worker did, when it stops."""

    worker: str
    finished: int = 0
    """Runs it ran to their end, whatever their status."""
    failed: int = 0
    """Of those, runs that ended with an error the runtime did not expect (marked failed)."""
    taken: int = 0
    """Runs it stopped because another worker held them (its lease had lapsed)."""
    reconnects: int = 0
    """Times it lost the database and connected again."""


def _store_trouble(e: BaseException) -> bool:
    """Whether `e` says the database is out of reach (the store's or the checkpoints'
    connection), rather than something wrong with the run."""
    return isinstance(e, StoreError) or type(e).__module__.split(".")[0] == "psycopg"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class Worker:
    """Claims submitted runs from `runtime`'s store and runs up to `concurrency` of them at
    once, with `runtime` (its model, executors and budgets); `serve()` until `stop()`.

    `log` gets one line per thing worth knowing (a run claimed, finished, taken, the
    database lost and found again)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 1,
        lease_s: float = LEASE_S,
        poll_s: float = POLL_S,
        reconnect_s: float = RECONNECT_S,
        name: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"--concurrency must be 1 or more, not {concurrency}")
        if not lease_s > 0 or not poll_s > 0:
            raise ConfigError("the lease and the poll interval must be more than 0 seconds")
        self.runtime, self.store = runtime, runtime.store
        self.concurrency, self.lease_s, self.poll_s = concurrency, lease_s, poll_s
        self.reconnect_s = reconnect_s
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.report = WorkerReport(worker=self.name)
        self._log = log or (lambda line: None)
        self._runs: dict[str, asyncio.Task] = {}
        self._deadlines: dict[str, float] = {}  # run id -> when (monotonic) to stop it
        self._lost: BaseException | None = None
        self._stops = 0  # stop() calls: 1 finishes the runs, 2 hands them back
        self._changed = asyncio.Event()

    def stop(self) -> None:
        """Claim nothing more and return from `serve` once the running runs end; called a
        second time, stop those runs too and hand them back to be resumed elsewhere."""
        self._stops += 1
        self._changed.set()

    def run(self) -> WorkerReport:
        """`serve()` in a new event loop; SIGTERM and SIGINT call `stop()`."""
        return asyncio.run(self.serve(handle_signals=True))

    async def serve(self, *, handle_signals: bool = False) -> WorkerReport:
        """Claim and run submitted runs until `stop()`; what it did."""
        self._changed = asyncio.Event()  # of this event loop
        if handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stop)
        self._log(f"worker {self.name}: {self.concurrency} at once, lease {self.lease_s:g} s")
        keeper = asyncio.create_task(self._keep_leases())
        try:
            while True:
                if keeper.done():
                    keeper.result()  # a bug in the keeper: raise it here
                if self._lost is not None:
                    await self._recover()
                if self._stops >= 2:
                    await self._hand_back(list(self._runs))
                if self._stops and not self._runs:
                    break
                self._changed.clear()
                if not self._stops:
                    await self._claim()
                if self._lost is None and not self._changed.is_set():
                    # a run ending, a stop, a lost database, or the next look
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), self.poll_s)
        finally:
            keeper.cancel()
            for task in self._runs.values():
                task.cancel()
            await asyncio.gather(keeper, *self._runs.values(), return_exceptions=True)
        self._log(f"worker {self.name}: stopped after {self.report.finished} runs")
        return self.report

    # -- claiming and running ------------------------------------------------------------

    async def _claim(self) -> None:
        free = self.concurrency - len(self._runs)
        if free <= 0:
            return
        asked = time.monotonic()
        try:
            claimed = await asyncio.to_thread(
                self.store.claim_runs,
                self.name,
                free,
                lease_s=self.lease_s,
                model=self.runtime.model.name,
                planner=getattr(self.runtime.planner.model, "name", ""),
                max_claims=MAX_CLAIMS,
            )
        except Exception as e:
            if not _store_trouble(e):
                raise
            self._lose(e)
            return
        for run_id in claimed:
            self._log(f"run {run_id}: claimed")
            self._deadlines[run_id] = self._deadline(asked)
            self._runs[run_id] = asyncio.create_task(self._run(run_id))

    def _deadline(self, asked: float) -> float:
        """When to stop a run leased at (or after) `asked` unless renewed: a sixth of the
        lease before the database lets another worker claim it."""
        return asked + self.lease_s * 5 / 6

    async def _run(self, run_id: str) -> None:
        try:
            # a submitted run starts; a run another worker began resumes from its checkpoint
            result = await self.runtime.aresume(run_id)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if _store_trouble(e):
                self._lose(e)  # left claimed: _recover hands it back once reconnected
            else:
                await self._fail(run_id, e)
        else:
            self.report.finished += 1
            self._log(f"run {run_id}: {result.status} ({result.seconds:.1f} s)")
        finally:
            self._runs.pop(run_id, None)
            self._deadlines.pop(run_id, None)
            self._changed.set()

    async def _fail(self, run_id: str, e: Exception) -> None:
        """A run that ended with an error the runtime did not turn into a status: failed
        for good, with the error, so that no other worker claims it again."""
        error = f"{type(e).__name__}: {_first_line(e)}"
        self._log(f"run {run_id}: failed ({error})")
        try:  # through the recorder, like every write of a run
            self.runtime.recorder(RunFinished(run_id=run_id, status="failed", error=error))
            await self.runtime.recorder.flush()
        except Exception as trouble:
            if not _store_trouble(trouble):
                raise
            self._lose(trouble)
            return
        self.report.finished += 1
        self.report.failed += 1

    # -- leases --------------------------------------------------------------------------

    async def _keep_leases(self) -> None:
        """Renew the leases every third of `lease_s`; stop a run whose lease may lapse
        before it is renewed (checked every second or so, on this machine's clock)."""
        every = self.lease_s / 3
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, self.lease_s / 6))
            now = time.monotonic()
            for run_id, deadline in list(self._deadlines.items()):
                if now >= deadline:
                    self._stop_run(run_id, "its lease could not be renewed in time")
            if now - renewed >= every and self._lost is None:
                renewed = now
                await self._renew()

    async def _renew(self) -> None:
        run_ids = list(self._runs)
        if not run_ids:
            return
        asked = time.monotonic()
        try:
            held = set(
                await asyncio.to_thread(
                    self.store.renew_claims, self.name, run_ids, lease_s=self.lease_s
                )
            )
        except Exception as e:
            if not _store_trouble(e):
                raise
            self._lose(e)
            return
        for run_id in run_ids:
            if run_id not in held:
                self.report.taken += 1
                self._stop_run(run_id, "another worker holds it now")
            elif run_id in self._deadlines:
                self._deadlines[run_id] = self._deadline(asked)

    def _stop_run(self, run_id: str, why: str) -> None:
        task = self._runs.pop(run_id, None)
        self._deadlines.pop(run_id, None)
        if task is not None:
            self._log(f"run {run_id}: stopped here, {why}")
            task.cancel()

    # -- losing the database -------------------------------------------------------------

    def _lose(self, e: BaseException) -> None:
        if self._lost is None:
            self._lost = e
            self._changed.set()

    async def _recover(self) -> None:
        """Stop every run (their steps can no longer be recorded), connect again with
        backoff, then hand the stopped runs back so that they are resumed at once."""
        error, stopped = self._lost, list(self._runs)
        tasks = list(self._runs.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runs.clear()
        self._deadlines.clear()
        self._log(
            f"lost the store ({_first_line(error)}): stopped {len(stopped)} runs; connecting again"
        )
        # the writes the stopped runs queued fail now, on the lost connection: none of them
        # may land on the new one after their run was handed back
        await self._settle()
        retrying = AsyncRetrying(
            retry=retry_if_exception(_store_trouble),
            wait=wait_exponential(multiplier=0.5, max=15),
            stop=stop_after_delay(self.reconnect_s),
            reraise=True,
            before_sleep=lambda state: self._log(
                f"still no store ({_first_line(state.outcome.exception())}); trying again"
            ),
        )
        async for attempt in retrying:
            with attempt:
                await asyncio.to_thread(self.store.reconnect)
                await asyncio.to_thread(self.store.release_runs, self.name, stopped)
        await self._settle()
        self._lost = None
        self.report.reconnects += 1
        self._log(f"connected again; handed back {len(stopped)} runs")

    async def _hand_back(self, run_ids: list[str]) -> None:
        """Stop these runs and release them, for another worker to resume now."""
        tasks = [self._runs.pop(run_id) for run_id in run_ids if run_id in self._runs]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._deadlines.clear()
        await self._settle()
        try:
            await asyncio.to_thread(self.store.release_runs, self.name, run_ids)
        except Exception as e:
            if not _store_trouble(e):
                raise
            # not handed back: their leases lapse, and another worker takes them then
        if run_ids:
            self._log(f"handed back {len(run_ids)} runs")

    async def _settle(self) -> None:
        """Wait for the recorder's queued writes, dropping the error of one that failed."""
        try:
            await self.runtime.recorder.flush()
        except Exception as e:
            if not _store_trouble(e):
                raise
