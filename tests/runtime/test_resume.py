"""A run killed with SIGKILL in the middle of its graph, resumed in a new process.

The run happens in a child process (the script below): six steps in a fan-out/diamond shape,
executors that sleep and log "start <id>" and "done <id>" lines to a file. The test kills the
child after some steps are done and while others are still sleeping, then resumes the run in
a second child with `Runtime.resume(run_id)`, and checks that the answer comes, that every step
finished exactly once, that no step finished before the kill ran again, and that every
recorded output belongs to its own step. On a SQLite store and on a PostgreSQL one, where
the checkpoints are kept in the same database.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepgraph.memory import is_postgres_url, open_store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

REPO = Path(__file__).resolve().parents[2]
ANSWER = "ANSWER: all six steps were combined"

# s1 -> s2, s3, s4 (fan-out); s2 + s4 -> s5 (diamond); s3 + s5 -> s6 (the answer).
# Timeline from the first step's start: s1 0-0.3, s2 0.3-0.6, s4 0.3-0.7, s3 0.3-1.8,
# s5 0.7-1.5, s6 1.8-2.1. The kill comes 0.25 s after "done s4", when s1, s2 and s4 are done
# (0.25 s for their checkpoint writes to land) and s3 and s5 are still sleeping (s5 ends
# 0.55 s after the kill).
PLAN = [
    ("s1", [], 0.3),
    ("s2", ["s1"], 0.3),
    ("s3", ["s1"], 1.5),
    ("s4", ["s1"], 0.4),
    ("s5", ["s2", "s4"], 0.8),
    ("s6", ["s3", "s5"], 0.3),
]
DONE_BEFORE_KILL = {"s1", "s2", "s4"}
KILL_DELAY_S = 0.25

CHILD = r"""
import asyncio, json, os, sys

from stepgraph.executors.base import StepInput, StepOutput
from stepgraph.models.scripted import ScriptedBackend
from stepgraph.planner.plan import Plan, Step
from stepgraph.runtime import Runtime

mode, store_path, log_path = sys.argv[1:4]
PLAN = json.loads(sys.argv[4])
ANSWER = sys.argv[5]


def log(line):
    with open(log_path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


class SlowExecutor:
    name = "slow"
    description = "sleeps for args.seconds, then reports which step it was"

    async def run(self, step: StepInput) -> StepOutput:
        log(f"start {step.step_id}")
        await asyncio.sleep(step.args["seconds"])
        log(f"done {step.step_id}")
        # "result of s5 from s2=s2,s4=s4": each input named by the step whose output it is
        inputs = ",".join(f"{d}={text.split()[2]}" for d, text in sorted(step.dependencies.items()))
        return StepOutput(output=f"result of {step.step_id} from {inputs}")


printed = False


def on_event(event):
    global printed
    if not printed:  # the first event carries the run id: hand it to the parent at once
        print(json.dumps({"run_id": event.run_id}), flush=True)
        printed = True


runtime = Runtime(ScriptedBackend(responder=lambda request: ANSWER), store=store_path,
                  executors=[SlowExecutor()], eager=False)
if mode == "run":
    plan = Plan(goal="combine six results", steps=[
        Step(id=i, instruction=f"produce the result of {i}", executor="slow", depends_on=deps,
             args={"seconds": seconds}) for i, deps, seconds in PLAN])
    result = runtime.run("Combine the results of six steps.", plan=plan, on_event=on_event)
else:
    result = runtime.resume(sys.argv[6])
print(json.dumps({"result": result.model_dump(mode="json")}), flush=True)
"""


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The run's store: a SQLite file (checkpoints in a file beside it), or a schema of a
    real PostgreSQL (checkpoints in the same schema, so any machine can resume the run)."""
    if request.param == "sqlite":
        yield str(tmp_path / "store" / "stepgraph.db")
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    schema = f"resume_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{server}&options=-csearch_path%3D{schema}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _child(tmp_path: Path, mode: str, *extra: str) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return [
        sys.executable,
        str(script),
        mode,
        (tmp_path / "target").read_text(),
        str(tmp_path / "steps.log"),
        json.dumps(PLAN),
        ANSWER,
        *extra,
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _log(tmp_path: Path) -> list[str]:
    path = tmp_path / "steps.log"
    return path.read_text().splitlines() if path.exists() else []


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise AssertionError(f"the child printed nothing in {timeout:g} s")
        return proc.stdout.readline()
    finally:
        selector.close()


def _start_and_kill(tmp_path: Path) -> tuple[str, list[str]]:
    """Start the run in a child, SIGKILL it mid-graph; the run id and the log at the kill."""
    proc = subprocess.Popen(
        _child(tmp_path, "run"),
        cwd=REPO,
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = _read_line(proc, 300)  # a cold import on a loaded machine can be slow
        assert line, f"the child exited early: {proc.wait()} {proc.stderr.read()}"
        run_id = json.loads(line)["run_id"]
        deadline = time.monotonic() + 30
        while (
            not {x.split()[1] for x in _log(tmp_path) if x.startswith("done")} >= DONE_BEFORE_KILL
        ):
            assert proc.poll() is None, f"the child exited early: {proc.stderr.read()}"
            assert time.monotonic() < deadline, f"steps did not finish in time: {_log(tmp_path)}"
            time.sleep(0.01)
        time.sleep(KILL_DELAY_S)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return run_id, _log(tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_killed_run_resumes_without_rerunning_finished_steps(
    tmp_path: Path, store_target: str
) -> None:
    (tmp_path / "target").write_text(store_target)
    run_id, at_kill = _start_and_kill(tmp_path)
    done_at_kill = {line.split()[1] for line in at_kill if line.startswith("done")}
    started_at_kill = {line.split()[1] for line in at_kill if line.startswith("start")}
    # The kill landed where the timeline says: some steps done, others still sleeping.
    assert done_at_kill == DONE_BEFORE_KILL, at_kill
    assert {"s3", "s5"} <= started_at_kill - done_at_kill, at_kill
    assert "s6" not in started_at_kill, at_kill

    resumed = subprocess.run(
        _child(tmp_path, "resume", run_id),
        cwd=REPO,
        env=_env(),
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads(resumed.stdout.strip().splitlines()[-1])["result"]
    log = _log(tmp_path)
    after_kill = log[len(at_kill) :]

    assert result["run_id"] == run_id
    assert result["status"] == "done", result
    assert result["answer"] == ANSWER
    # Every step finished exactly once over both processes ...
    done = Counter(line.split()[1] for line in log if line.startswith("done"))
    assert done == Counter({step_id: 1 for step_id, _, _ in PLAN}), log
    # ... and no step that finished before the kill even started again after it.
    restarted = {line.split()[1] for line in after_kill if line.startswith("start")}
    assert not restarted & done_at_kill, after_kill
    # Every recorded output is its own step's, built from its own dependencies' outputs.
    deps = {step_id: step_deps for step_id, step_deps, _ in PLAN}
    steps = {s["step_id"]: s for s in result["steps"]}
    assert set(steps) == set(deps) | {"direct"}  # the plan's steps and the direct answer
    direct = steps.pop("direct")
    assert direct["status"] == "done" and direct["output"] == ANSWER
    for step_id, step in steps.items():
        assert step["status"] == "done", step
        inputs = ",".join(f"{d}={d}" for d in sorted(deps[step_id]))
        assert step["output"] == f"result of {step_id} from {inputs}", step
    with open_store(store_target) as store:
        record = store.run(run_id)
    if is_postgres_url(store_target):  # the checkpoints are in the store's database
        import psycopg

        with psycopg.connect(store_target) as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM checkpoints WHERE thread_id = %s", [run_id]
            ).fetchone()
        assert count > 0
        assert not (Path(os.environ["STEPGRAPH_HOME"]) / "stepgraph-checkpoints.db").exists()
    assert record.status == "done"
    assert record.answer == ANSWER
    recorded = {s.step_id: s.output for s in record.steps}
    assert recorded == {"direct": ANSWER, **{i: s["output"] for i, s in steps.items()}}
