"""Runs per second against worker count, and the store's per-run cost on PostgreSQL against
SQLite: `python benchmarks/workers.py` writes benchmarks/results/workers.json.

- Throughput: 1, 2 and 4 `Worker` processes (`--concurrency` runs each) on one PostgreSQL
  16 that pgserver starts here, each run a three-step plan of no-op executors with the
  scripted model, so what is measured is stepgraph's own cost (the runtime, the store, the
  checkpoints, the claims), not a model's. Timed from the first submit to the last run
  finished, with the workers started and idle before.
- Per-run overhead: the same runs one after another in this process, on a SQLite store and
  on a PostgreSQL one; the difference of the means is what PostgreSQL costs a run.

Needs the dev extra (pgserver, psycopg, langgraph-checkpoint-postgres). Options:
--runs N (default 200), --workers 1,2,4, --concurrency N (default 2), --sequential N
(default 50).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

SETUP = r"""
import json
from stepgraph.executors.base import StepOutput
from stepgraph.models.scripted import ScriptedBackend
from stepgraph.runtime import Runtime

PLAN = {"steps": [
    {"id": "s1", "depends_on": [], "executor": "noop", "instruction": "first"},
    {"id": "s2", "depends_on": [], "executor": "noop", "instruction": "second"},
    {"id": "s3", "depends_on": ["s1", "s2"], "executor": "noop", "instruction": "both"},
]}


class Noop:
    name = "noop"
    description = "does nothing"

    async def run(self, step):
        return StepOutput(output=f"{step.step_id} done")


def reply(request):
    if request.messages[0].content.startswith("You are a planner."):
        return json.dumps(PLAN)
    return "All three steps ran."


def runtime(store):
    return Runtime(ScriptedBackend(responder=reply), store=store, executors=[Noop()],
                   direct=False, plan="always", planner_adapter=None)
"""

WORKER = (
    SETUP
    + r"""
import sys
from stepgraph.runtime.workers import Worker

rt = runtime(sys.argv[1])
Worker(rt, concurrency=int(sys.argv[2]), poll_s=0.2,
       log=lambda line: print(line, file=sys.stderr, flush=True)).run()
rt.close()
"""
)


def start_postgres(folder: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver.get_server(folder)


def new_database(server: str, name: str) -> str:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return server.replace("@/postgres?", f"@/{name}?")


def throughput(server: str, workers: int, runs: int, concurrency: int, tmp: Path) -> dict:
    from stepgraph.memory import open_store

    url = new_database(server, f"bench_workers_{workers}")
    open_store(url).close()  # the schema, before the workers race to make it
    script = tmp / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "STEPGRAPH_HOME": str(tmp / "home")}
    logs = [tmp / f"w{workers}-{i}.err" for i in range(workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, str(concurrency)],
            env=env,
            stderr=log.open("w"),
        )
        for log in logs
    ]
    try:
        while not all("lease" in log.read_text() for log in logs):  # started and idle
            time.sleep(0.1)
        time.sleep(1.0)
        with open_store(url) as store:
            started = time.perf_counter()
            for i in range(runs):
                store.submit_run(f"Run the three steps, number {i}.")
            while sum(1 for r in store.runs(limit=runs + 1) if r.finished is not None) < runs:
                time.sleep(0.05)
            seconds = time.perf_counter() - started
            statuses = sorted({r.status for r in store.runs(limit=runs + 1)})
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    return {
        "workers": workers,
        "concurrency": concurrency,
        "runs": runs,
        "seconds": round(seconds, 2),
        "runs_per_second": round(runs / seconds, 2),
        "statuses": statuses,
    }


def per_run_seconds(store: str, count: int) -> float:
    namespace: dict = {}
    exec(SETUP, namespace)
    with namespace["runtime"](store) as rt:
        rt.run("Warm up.")
        times = []
        for i in range(count):
            started = time.perf_counter()
            result = rt.run(f"Run the three steps, number {i}.")
            times.append(time.perf_counter() - started)
            assert result.status == "done", result
    return statistics.mean(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--sequential", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        os.environ["STEPGRAPH_HOME"] = str(tmp / "home")
        postgres_server = start_postgres(tmp / "postgres")
        server = postgres_server.get_uri()
        try:
            rows = []
            for count in [int(n) for n in args.workers.split(",")]:
                rows.append(throughput(server, count, args.runs, args.concurrency, tmp))
                print(json.dumps(rows[-1]), flush=True)
            sqlite = per_run_seconds(str(tmp / "bench.db"), args.sequential)
            postgres = per_run_seconds(new_database(server, "bench_sequential"), args.sequential)
        finally:
            postgres_server.cleanup()
    overhead = {
        "runs": args.sequential,
        "sqlite_seconds_per_run": round(sqlite, 4),
        "postgres_seconds_per_run": round(postgres, 4),
        "postgres_extra_seconds_per_run": round(postgres - sqlite, 4),
    }
    print(json.dumps(overhead), flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "workers.json"
    out.write_text(
        json.dumps(
            {"machine": machine(), "throughput": rows, "per_run_overhead": overhead}, indent=2
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
