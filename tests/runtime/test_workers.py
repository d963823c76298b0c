"""Workers on one PostgreSQL store: real worker processes, a real server (pgserver), the
scripted model, and an executor that logs every step it starts and finishes to a file that
all processes append to.

Each run has three steps: s1 and s2, then s3 from both. A test "freezes" a worker by
creating a file named after its pid: from then on its s3 steps start and wait, so its runs
stop mid-run with s1 and s2 finished (and checkpointed, after a second) and s3 running. A
worker killed there, or cut off from the database there, leaves runs that another worker
(or itself, reconnected) must finish without running s1 or s2 again.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepgraph.memory import MemoryStore, open_store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

REPO = Path(__file__).resolve().parents[2]
STEPS = ("s1", "s2", "s3")
LEASE_S = 10.0  # long beside a loaded machine's pauses: a live worker never loses a run

WORKER = r"""
import asyncio, json, os, sys

from stepgraph.executors.base import StepOutput
from stepgraph.models.scripted import ScriptedBackend
from stepgraph.runtime import Runtime
from stepgraph.runtime.workers import Worker

store, log_path, freeze_dir, concurrency, lease_s = sys.argv[1:6]
PLAN = {"steps": [
    {"id": "s1", "depends_on": [], "executor": "tally", "instruction": "first"},
    {"id": "s2", "depends_on": [], "executor": "tally", "instruction": "second"},
    {"id": "s3", "depends_on": ["s1", "s2"], "executor": "tally", "instruction": "both"},
]}


def log(line):
    # one write to a file opened for appending: lines of several processes never mix
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class Tally:
    name = "tally"
    description = "logs that it ran"

    async def run(self, step):
        pid = os.getpid()
        log(f"start {step.run_id} {step.step_id} {pid}")
        frozen = os.path.join(freeze_dir, str(pid))
        while step.step_id == "s3" and os.path.exists(frozen):
            await asyncio.sleep(0.05)
        log(f"done {step.run_id} {step.step_id} {pid}")
        inputs = ",".join(f"{d}={text}" for d, text in sorted(step.dependencies.items()))
        return StepOutput(output=f"{step.step_id} by {pid}" + (f" from {inputs}" if inputs else ""))


def reply(request):
    if request.messages[0].content.startswith("You are a planner."):
        return json.dumps(PLAN)
    return "All three steps ran."


runtime = Runtime(ScriptedBackend(responder=reply), store=store, executors=[Tally()],
                  direct=False, plan="always", planner_adapter=None)
worker = Worker(runtime, concurrency=int(concurrency), lease_s=float(lease_s), poll_s=0.2,
                log=lambda line: print(line, file=sys.stderr, flush=True))
report = worker.run()
runtime.close()
print(json.dumps(report.__dict__), flush=True)
"""


class Workers:
    """Worker processes of one test, their shared step log, and their freeze files."""

    def __init__(self, tmp_path: Path, url: str):
        self.tmp, self.url = tmp_path, url
        self.script = tmp_path / "worker.py"
        self.script.write_text(WORKER)
        self.log = tmp_path / "steps.log"
        self.frozen = tmp_path / "frozen"
        self.frozen.mkdir()
        self.procs: list[subprocess.Popen] = []

    def start(self, count: int, concurrency: int) -> list[subprocess.Popen]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        for _ in range(count):
            i = len(self.procs)
            command = [sys.executable, str(self.script), self.url, str(self.log)]
            command += [str(self.frozen), str(concurrency), str(LEASE_S)]
            self.procs.append(
                subprocess.Popen(
                    command,
                    cwd=REPO,
                    env=env,
                    text=True,
                    stdout=(self.tmp / f"worker{i}.out").open("w"),
                    stderr=(self.tmp / f"worker{i}.err").open("w"),
                )
            )
        return self.procs

    def lines(self) -> list[tuple[str, str, str, int]]:
        """(start|done, run id, step id, pid) for every line logged so far."""
        if not self.log.exists():
            return []
        rows = [line.split() for line in self.log.read_text().splitlines()]
        return [(kind, run_id, step_id, int(pid)) for kind, run_id, step_id, pid in rows]

    def stderr(self, i: int) -> str:
        return (self.tmp / f"worker{i}.err").read_text()

    def freeze(self, proc: subprocess.Popen) -> None:
        (self.frozen / str(proc.pid)).touch()

    def thaw(self, proc: subprocess.Popen) -> None:
        (self.frozen / str(proc.pid)).unlink()

    def waiting_s3(self, pid: int) -> set[str]:
        """The runs whose s3 started in process `pid` and has not finished there."""
        started, done = set(), set()
        for kind, run_id, step_id, by in self.lines():
            if step_id == "s3" and by == pid:
                (started if kind == "start" else done).add(run_id)
        return started - done

    def stop_all(self, timeout: float = 60) -> list[dict]:
        """SIGTERM every live worker; each must exit 0 with its report."""
        live = [p for p in self.procs if p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        reports = []
        for proc in live:
            i = self.procs.index(proc)
            assert proc.wait(timeout) == 0, self.stderr(i)[-3000:]
            reports.append(json.loads((self.tmp / f"worker{i}.out").read_text().splitlines()[-1]))
        return reports

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(tmp_path: Path, worker_url: str) -> Iterator[Workers]:
    team = Workers(tmp_path, worker_url)
    yield team
    team.kill_all()


@pytest.fixture
def worker_url(postgres_server: str) -> Iterator[str]:
    """A database of its own for the test (so a test may cut its connections), dropped
    after it."""
    import psycopg

    name = f"workers_{secrets.token_hex(4)}"
    assert "@/postgres?" in postgres_server, postgres_server  # pgserver's URL: a socket
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_server.replace("@/postgres?", f"@/{name}?")
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def wait_until(condition, timeout: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for proc in procs:
            assert proc.poll() is None, f"a worker exited early ({proc.returncode}) {what}"
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s: {what}"
        time.sleep(0.1)


def finished(store: MemoryStore) -> int:
    return sum(1 for run in store.runs(limit=10_000) if run.finished is not None)


def check_every_step_finished_once(workers: Workers, store: MemoryStore, count: int) -> None:
    """Every run done with all three steps; each step finished exactly once over all the
    processes, and the output recorded for it is that one execution's."""
    runs = store.runs(limit=10_000)
    assert len(runs) == count
    assert Counter(run.status for run in runs) == Counter({"done": count})
    done = Counter((r, s) for kind, r, s, _ in workers.lines() if kind == "done")
    expected = Counter({(run.id, step): 1 for run in runs for step in STEPS})
    assert done == expected, {k: v for k, v in (done - expected).items()}
    by = {(r, s): pid for kind, r, s, pid in workers.lines() if kind == "done"}
    for run in runs:
        record = store.run(run.id)
        assert record.answer == "All three steps ran."
        outputs = {step.step_id: step.output for step in record.steps}
        assert outputs == {
            "s1": f"s1 by {by[run.id, 's1']}",
            "s2": f"s2 by {by[run.id, 's2']}",
            "s3": f"s3 by {by[run.id, 's3']} from s1={outputs['s1']},s2={outputs['s2']}",
        }


def test_four_workers_finish_200_runs_when_one_is_killed_mid_run(workers: Workers):
    count = 200
    with open_store(workers.url) as store:
        for i in range(count):
            store.submit_run(f"Run the three steps, number {i}.")
        victim, *others = workers.start(4, concurrency=2)
        # the victim works a while, then its runs stop mid-run: s1 and s2 done, s3 waiting
        wait_until(
            lambda: (
                sum(1 for k, *_, pid in workers.lines() if k == "done" and pid == victim.pid) >= 15
            ),
            180,
            "for the victim to finish some steps",
            workers.procs,
        )
        workers.freeze(victim)
        wait_until(
            lambda: len(workers.waiting_s3(victim.pid)) == 2, 60, "for the victim to stop mid-run"
        )
        time.sleep(1.0)  # the checkpoints of its finished s1 and s2 land
        interrupted = workers.waiting_s3(victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        at_kill = len(workers.lines())

        wait_until(lambda: finished(store) == count, 240, "for every run to finish", others)
        reports = workers.stop_all()
        check_every_step_finished_once(workers, store, count)

        after = workers.lines()[at_kill:]
        for run_id in interrupted:
            # s1 and s2 finished in the victim and never started again; s3 ran elsewhere
            starts = Counter(s for k, r, s, _ in workers.lines() if k == "start" and r == run_id)
            assert starts == Counter({"s1": 1, "s2": 1, "s3": 2}), run_id
            assert {s for _, r, s, _ in after if r == run_id} == {"s3"}
            record = store.run(run_id)
            assert record.claims == 2 and record.claimed_by is not None
            assert record.claimed_by.rsplit(":", 2)[1] != str(victim.pid)  # host:pid:tag
            assert record.step("s1").output == f"s1 by {victim.pid}"
        assert sum(r["finished"] for r in reports) == count - finished_by(workers, victim.pid)
        assert all(r["taken"] == 0 and r["reconnects"] == 0 for r in reports)


def finished_by(workers: Workers, pid: int) -> int:
    """Runs whose s3 finished in process `pid`: the runs it finished."""
    return sum(1 for k, _, s, p in workers.lines() if k == "done" and s == "s3" and p == pid)


def test_a_worker_that_loses_the_database_reconnects_and_runs_no_step_twice(workers: Workers):
    import psycopg

    count = 6
    name = workers.url.split("@/")[1].split("?")[0]
    admin = workers.url.replace(f"@/{name}?", "@/postgres?")
    with open_store(workers.url) as store:
        for i in range(count):
            store.submit_run(f"Run the three steps, number {i}.")
    (worker,) = workers.start(1, concurrency=2)
    workers.freeze(worker)
    wait_until(lambda: len(workers.waiting_s3(worker.pid)) == 2, 180, "to stop mid-run", [worker])
    time.sleep(1.0)  # the checkpoints of its finished s1 and s2 land
    interrupted = workers.waiting_s3(worker.pid)
    with psycopg.connect(admin, autocommit=True) as conn:
        # the server goes away for the worker: its connections cut, new ones refused
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        wait_until(lambda: "still no store" in workers.stderr(0), 60, "to retry", [worker])
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    wait_until(lambda: "connected again" in workers.stderr(0), 60, "to reconnect", [worker])
    workers.thaw(worker)
    with open_store(workers.url) as store:
        wait_until(lambda: finished(store) == count, 120, "for every run to finish", [worker])
        (report,) = workers.stop_all()
        check_every_step_finished_once(workers, store, count)
        for run_id in interrupted:
            starts = Counter(s for k, r, s, _ in workers.lines() if k == "start" and r == run_id)
            assert starts == Counter({"s1": 1, "s2": 1, "s3": 2}), run_id
            assert store.run(run_id).claims == 2
    assert report["reconnects"] == 1 and report["finished"] == count


def test_submit_records_a_run_a_worker_runs(workers: Workers):
    """`Runtime.submit` records without running; a worker runs it."""
    from stepgraph import Runtime, ScriptedBackend

    with Runtime(ScriptedBackend(), store=workers.url, planner_adapter=None) as runtime:
        run_id = runtime.submit("  Run the three steps.  ")
        run = runtime.store.run(run_id)
        assert (run.status, run.instruction, run.model) == (
            "submitted",
            "Run the three steps.",
            "scripted",
        )
        workers.start(1, concurrency=1)
        wait_until(lambda: finished(runtime.store) == 1, 180, "for the run", workers.procs)
        workers.stop_all()
        check_every_step_finished_once(workers, runtime.store, 1)


def test_a_second_sigterm_hands_the_running_runs_back(workers: Workers):
    count = 3
    with open_store(workers.url) as store:
        for i in range(count):
            store.submit_run(f"Run the three steps, number {i}.")
        (first,) = workers.start(1, concurrency=2)
        workers.freeze(first)
        wait_until(lambda: len(workers.waiting_s3(first.pid)) == 2, 180, "to stop mid-run", [first])
        time.sleep(1.0)  # the checkpoints of its finished s1 and s2 land
        first.send_signal(signal.SIGTERM)  # the first waits for the runs, which wait for s3
        time.sleep(1.0)
        assert first.poll() is None
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0, workers.stderr(0)
        assert "handed back 2 runs" in workers.stderr(0)
        # handed back: claimable at once, not after their lease (the third was never claimed)
        assert len(store.claim_runs("the-test", count, lease_s=0.01)) == count
        time.sleep(0.1)
        workers.start(1, concurrency=2)
        wait_until(lambda: finished(store) == count, 120, "for every run", workers.procs[1:])
        workers.stop_all()
        check_every_step_finished_once(workers, store, count)
