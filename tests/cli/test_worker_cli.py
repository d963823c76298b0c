"""`stepgraph submit` and `stepgraph worker` as a user runs them: real subprocesses, a real
PostgreSQL (pgserver) or SQLite store, and the `scripted:` model (no model loads)."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepgraph.memory import open_store


def stepgraph(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stepgraph.cli", *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=300,
    )


@pytest.fixture
def schema_url(postgres_server: str) -> Iterator[str]:
    import psycopg

    schema = f"cli_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{postgres_server}&options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def test_a_worker_on_an_unreachable_database_says_so_in_one_line():
    started = time.monotonic()
    line = one_error_line(
        stepgraph("worker", "--db", "postgresql://stepgraph:secret@127.0.0.1:9/nowhere")
    )
    assert "cannot reach the PostgreSQL server" in line and "127.0.0.1:9" in line
    assert "secret" not in line
    assert time.monotonic() - started < 60  # tried a few times, not forever


def test_bad_worker_options_are_one_line_each(tmp_path: Path):
    db = str(tmp_path / "s.db")
    assert "--concurrency must be 1 or more" in one_error_line(
        stepgraph("worker", "--db", db, "--concurrency", "0")
    )
    assert "--lease must be more than 0" in one_error_line(
        stepgraph("worker", "--db", db, "--lease", "0")
    )
    assert "instruction is empty" in one_error_line(stepgraph("submit", "  ", "--db", db))


@pytest.mark.parametrize("where", ["postgres", "sqlite"])
def test_a_submitted_run_is_run_by_a_worker(where: str, tmp_path: Path, request):
    db = request.getfixturevalue("schema_url") if where == "postgres" else str(tmp_path / "s.db")
    out = stepgraph("submit", "-", "--db", db, "--json", input="Name three primes.\n")
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout)["run_id"]
    with open_store(db) as store:
        assert store.run(run_id).status == "submitted"
        worker = subprocess.Popen(
            [sys.executable, "-m", "stepgraph.cli", "worker", "--db", db, "--model", "scripted:"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 180
            while store.run(run_id).finished is None:
                assert worker.poll() is None, worker.communicate()
                assert time.monotonic() < deadline, "the worker did not finish the run"
                time.sleep(0.2)
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
        run = store.run(run_id)
    assert worker.returncode == 0, stderr
    assert f"run {run_id}: claimed" in stderr and "stopped after 1 runs" in stderr
    # the scripted model answers nothing: whatever the run made of that, it ended
    assert run.status != "running" and run.claims == 1 and run.claimed_by is not None
