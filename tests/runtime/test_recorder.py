"""The run recorder: the store is written from the run's events alone, on the recorder's
own thread, in order; and a write that fails is raised, not lost."""

from __future__ import annotations

import ast
import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from test_runtime import DIAMOND, Echo, make

import stepgraph.runtime
from stepgraph import Runtime, ScriptedBackend, Store
from stepgraph.errors import StoreError
from stepgraph.runtime.events import StepFinished, StepStarted, VerdictMade
from stepgraph.runtime.recorder import Recorder

WRITES = {
    "start_run",
    "submit_run",
    "record_plan",
    "record_step",
    "record_verdict",
    "record_event",
    "record_events",
    "finish_run",
    "add_message",
    "record_turn",
    "new_conversation",
}


def test_only_the_recorder_writes_the_store():
    """No module of the runtime but the recorder calls a store write method."""
    root = Path(stepgraph.runtime.__file__).parent
    found = []
    for path in sorted(root.glob("*.py")):
        if path.name == "recorder.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in WRITES:
                found.append(f"{path.name}:{node.lineno} {node.attr}")
    assert found == []


class ThreadNoting(Store):
    """A store that notes which thread makes each write."""

    def __init__(self, path):
        super().__init__(path)
        self.threads: set[str] = set()

    def record_step(self, *args, **kwargs):
        self.threads.add(threading.current_thread().name)
        return super().record_step(*args, **kwargs)

    def record_verdict(self, *args, **kwargs):
        self.threads.add(threading.current_thread().name)
        return super().record_verdict(*args, **kwargs)

    def finish_run(self, *args, **kwargs):
        self.threads.add(threading.current_thread().name)
        return super().finish_run(*args, **kwargs)


def test_a_run_is_written_off_the_event_loop_and_read_back_whole(tmp_path):
    store = ThreadNoting(tmp_path / "s.db")
    backend = ScriptedBackend([DIAMOND], responder=lambda r: "composed answer")
    python = Echo()
    python.name, python.writes_text, python.computes = "python", False, True
    with Runtime(backend, store=store, executors=[Echo(), python], direct=False) as runtime:
        result = runtime.run("do a and b, then join")
    assert store.threads and all(t.startswith("stepgraph-recorder") for t in store.threads)
    record = store.run(result.run_id)
    assert record.status == "done" and record.answer == "composed answer"
    by_id = {s.step_id: s for s in record.steps}
    assert by_id["s3"].instruction == "join <s1:a> and <s2:b>"
    assert by_id["s3"].depends_on == ["s1", "s2"]
    assert by_id["s1"].started and by_id["s1"].finished
    assert any(v.check == "non_empty" and v.step_id == "s3" for v in record.verdicts)


def test_a_retried_steps_verdicts_are_all_kept_and_its_output_in_full(tmp_path):
    long = "x" * 2000

    class Long(Echo):
        async def run(self, step):
            out = await super().run(step)
            if not out.output.strip():
                return out
            return out.model_copy(update={"output": out.output + long})

    runtime, _, _ = make(tmp_path, [DIAMOND], executor=Long(empty_first={"s1"}))
    result = runtime.run("do a and b, then join")
    record = Store(tmp_path / "s.db").run(result.run_id)
    s1 = next(s for s in record.steps if s.step_id == "s1")
    assert s1.attempts == 2 and s1.output.endswith(long)  # the step row keeps all of it
    checks = [v.passed for v in record.verdicts if v.step_id == "s1" and v.check == "non_empty"]
    assert checks == [False, True]  # the failed first attempt's verdict too
    logged = [
        e for e in record.events if e.type == "step_finished" and e.payload["step_id"] == "s1"
    ]
    assert len(logged[0].payload["output"]) == 500  # the log keeps it short


def test_events_are_written_in_the_order_they_were_recorded(tmp_path):
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("task")
    recorder = Recorder(store)

    async def record():
        recorder(StepStarted(run_id=run_id, step_id="a", executor="llm", instruction="i"))
        for i in range(50):
            recorder(VerdictMade(run_id=run_id, step_id="a", check=f"c{i}", passed=True))
        recorder(StepFinished(run_id=run_id, step_id="a", status="done", output="o"))
        await recorder.flush()

    asyncio.run(record())
    recorder.close()
    record = store.run(run_id)
    assert [v.check for v in record.verdicts] == [f"c{i}" for i in range(50)]
    assert [e.type for e in record.events][-1] == "step_finished"
    assert record.steps[0].status == "done" and record.steps[0].attempts == 1


def test_a_failed_write_is_raised_at_the_next_flush(tmp_path):
    store = Store(tmp_path / "s.db")
    recorder = Recorder(store)
    # a run the store does not have: the store's own error, with what to do
    recorder(StepStarted(run_id="r-missing", step_id="a", executor="llm", instruction="i"))
    with pytest.raises(StoreError):
        asyncio.run(recorder.flush())
    asyncio.run(recorder.flush())  # raised once; the recorder goes on
    recorder.close()


class SlowStore(Store):
    """A store whose step writes take a while (a slow disk)."""

    def record_step(self, *args, **kwargs):
        import time

        time.sleep(0.3)
        return super().record_step(*args, **kwargs)


def test_a_finished_step_is_stored_before_its_task_returns(tmp_path):
    """LangGraph keeps a task's result when the task returns, and a resumed run does not run
    it again: its row must be in the store by then, however slow the store."""
    store = SlowStore(tmp_path / "s.db")
    seen = {}

    class Looking(Echo):
        async def run(self, step):
            if step.step_id == "s3":  # s1 and s2 have returned: both are stored
                # what is committed, as a kill would leave it (a plain reader never waits)
                reader = sqlite3.connect(f"file:{tmp_path / 's.db'}?mode=ro", uri=True)
                seen.update(reader.execute("SELECT step_id, status FROM steps").fetchall())
                reader.close()
            return await super().run(step)

    backend = ScriptedBackend([DIAMOND], responder=lambda r: "composed answer")
    python = Looking()
    python.name, python.writes_text, python.computes = "python", False, True
    with Runtime(backend, store=store, executors=[Echo(), python], direct=False) as runtime:
        assert runtime.run("do a and b, then join").status == "done"
    assert seen.get("s1") == "done" and seen.get("s2") == "done", seen
