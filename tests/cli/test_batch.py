"""`stepgraph batch`: many instructions, N at once, each result written as its run ends;
started again, only what has no result runs; through the workers with --submit."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from stepgraph import Runtime, ScriptedBackend
from stepgraph.evolve.evolve import Example
from stepgraph.executors.llm import LlmExecutor
from stepgraph.memory import open_store
from stepgraph.planner.plan import Plan, Step
from stepgraph.runtime.batch import BatchItem, run_here

PLAN = Plan(
    steps=[
        Step(id="w1", executor="llm", instruction="Write the first word."),
        Step(id="w2", executor="llm", instruction="Write the second word.", depends_on=["w1"]),
    ]
)


def stepgraph(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stepgraph.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_batch(path: Path, n: int, planned: int = 0) -> Path:
    """`n` instructions; the first `planned` carry a plan, as `stepgraph evolve` writes them."""
    lines = [
        json.dumps({"id": f"q{i}", "instruction": f"Say the word number {i}."}) for i in range(n)
    ]
    for i in range(planned):
        example = Example(id=f"q{i}", instruction=f"Say the word number {i}.", plan=PLAN)
        lines[i] = example.model_dump_json(exclude_none=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def results(path: Path) -> list[dict]:
    """The result lines that parse (a line cut short by a kill does not)."""
    found = []
    for line in path.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return found


def test_runs_go_several_at_once_in_one_process(tmp_path):
    backend = ScriptedBackend(responder=lambda r: "word", stream_delay=0.01)
    items = [BatchItem(id=f"q{i}", instruction=f"Say word {i}.") for i in range(6)]
    ended, active, most = [], [0], [0]

    class Counting:  # the runtime, counting the runs it is in at once
        def __init__(self, runtime):
            self.runtime = runtime

        async def arun(self, instruction, plan=None):
            active[0] += 1
            most[0] = max(most[0], active[0])
            try:
                return await self.runtime.arun(instruction)
            finally:
                active[0] -= 1

    executors = [LlmExecutor(backend)]
    with Runtime(backend, store=tmp_path / "s.db", executors=executors) as runtime:
        asyncio.run(run_here(Counting(runtime), items, 3, ended.append))
    assert sorted(r.id for r in ended) == [f"q{i}" for i in range(6)]
    assert all(r.answer == "word" and r.run_id for r in ended), ended
    assert most[0] == 3  # several runs at once, never more than asked


def test_the_cli_writes_each_result_and_a_second_call_runs_nothing_again(tmp_path):
    batch, store = write_batch(tmp_path / "in.jsonl", 3), str(tmp_path / "s.db")
    done = stepgraph("batch", str(batch), "--db", store, "--model", "scripted:", "-n", "2")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "in.results.jsonl"
    assert sorted(r["id"] for r in results(out)) == ["q0", "q1", "q2"]
    again = stepgraph("batch", str(batch), "--db", store, "--model", "scripted:")
    assert again.returncode == 0 and "all 3 instructions have results" in again.stderr
    with open_store(store) as opened:
        assert len(opened.runs()) == 3


def test_a_stopped_batch_continues_where_it_stopped(tmp_path):
    batch, store = write_batch(tmp_path / "in.jsonl", 3), str(tmp_path / "s.db")
    out = tmp_path / "out.jsonl"
    kept = {"id": "q1", "run_id": "r-earlier", "status": "done", "answer": "kept"}
    out.write_text(json.dumps(kept) + '\n{"id": "q2", "run_id": "r-cut', encoding="utf-8")
    done = stepgraph("batch", str(batch), "--db", store, "--model", "scripted:", "--out", str(out))
    assert done.returncode == 0, done.stderr
    new = [r["id"] for r in results(out) if r["run_id"] != "r-earlier"]
    assert sorted(new) == ["q0", "q2"]  # q1 had a result; q2's line was cut by a kill
    with open_store(store) as opened:
        assert len(opened.runs()) == 2


def test_a_line_that_is_not_an_instruction_is_one_error_naming_it(tmp_path):
    batch = tmp_path / "in.jsonl"
    batch.write_text('{"instruction": "Say hi."}\n{"question": "no"}\n')
    out = stepgraph("batch", str(batch), "--model", "scripted:", "--db", str(tmp_path / "s.db"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert f"{batch}:2: not an instruction" in line
    missing = stepgraph("batch", str(tmp_path / "nope.jsonl"), "--model", "scripted:")
    assert missing.returncode == 1 and "no batch file at" in missing.stderr
    empty = tmp_path / "empty.jsonl"  # what `stepgraph evolve` writes when it keeps nothing
    empty.write_text("")
    nothing = stepgraph("batch", str(empty), "--model", "scripted:", "--db", str(tmp_path / "e.db"))
    assert nothing.returncode == 0
    assert "holds no instructions: nothing to run" in " ".join(nothing.stderr.split())
    assert not (tmp_path / "empty.results.jsonl").exists()


def test_through_the_workers_each_run_is_submitted_once_and_waited_for(tmp_path):
    batch, store = write_batch(tmp_path / "in.jsonl", 4), str(tmp_path / "s.db")
    worker = subprocess.Popen(
        [sys.executable, "-m", "stepgraph.cli", "worker", "--db", store, "--model", "scripted:"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        done = stepgraph("batch", str(batch), "--db", store, "--model", "scripted:", "--submit")
        assert done.returncode == 0, done.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    lines = results(tmp_path / "in.results.jsonl")
    submitted = {r["id"]: r["run_id"] for r in lines if r["status"] == "submitted"}
    ended = {r["id"]: r["run_id"] for r in lines if r["status"] != "submitted"}
    assert sorted(submitted) == sorted(ended) == ["q0", "q1", "q2", "q3"]
    assert submitted == ended  # each result is the run it submitted
    with open_store(store) as opened:
        assert len(opened.runs()) == 4


def test_a_line_with_a_plan_runs_that_plan_here_and_through_the_workers(tmp_path):
    """evolve's output is a batch file: each labelled plan runs instead of planning, unless
    --replan."""
    batch, store = write_batch(tmp_path / "in.jsonl", 2, planned=1), str(tmp_path / "s.db")
    here = stepgraph("batch", str(batch), "--db", store, "--model", "scripted:")
    assert here.returncode == 0, here.stderr
    afresh = tmp_path / "afresh.jsonl"
    again = stepgraph(
        "batch", str(batch), "--db", store, "--model", "scripted:", "--replan", "-o", str(afresh)
    )
    assert again.returncode == 0, again.stderr
    worker = subprocess.Popen(
        [sys.executable, "-m", "stepgraph.cli", "worker", "--db", store, "--model", "scripted:"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers_out = tmp_path / "workers.jsonl"
    try:
        sent = stepgraph(
            "batch", str(batch), "--db", store, "--model", "scripted:", "--submit",
            "-o", str(workers_out),
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

    def steps(out: Path, item: str) -> list[tuple[str, str]]:
        (run_id,) = {r["run_id"] for r in results(out) if r["id"] == item}
        with open_store(store) as opened:
            plan = opened.run(run_id).plan
        return [(step["id"], step["instruction"]) for step in plan["steps"]]

    given = [(step.id, step.instruction) for step in PLAN.steps]
    assert steps(tmp_path / "in.results.jsonl", "q0") == given
    assert steps(workers_out, "q0") == given
    assert steps(afresh, "q0") != given  # planned afresh
    assert steps(tmp_path / "in.results.jsonl", "q1") != given  # no plan: planned


def test_a_plan_that_is_not_one_or_cannot_run_here_is_one_error_before_anything_runs(tmp_path):
    store = tmp_path / "s.db"
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"instruction": "Say hi."}\n{"instruction": "Hi.", "plan": {"steps": 3}}\n')
    out = stepgraph("batch", str(broken), "--model", "scripted:", "--db", str(store))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert f"{broken}:2: its plan is not a plan" in line and "--replan" in line
    elsewhere = tmp_path / "elsewhere.jsonl"
    step = {"id": "s1", "executor": "weather", "instruction": "Look it up."}
    elsewhere.write_text(json.dumps({"id": "w", "instruction": "Hi.", "plan": {"steps": [step]}}))
    out = stepgraph("batch", str(elsewhere), "--model", "scripted:", "--db", str(store))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert "instruction w: its plan cannot run here" in line and "weather" in line
    assert not (tmp_path / "elsewhere.results.jsonl").exists()
    if store.exists():
        with open_store(store) as opened:
            assert opened.runs() == []
