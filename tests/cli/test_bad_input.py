"""Inputs a user gets wrong, one test each: one line that says what to do, a non-zero exit,
no traceback, and nothing already stored changed. (test_cli_fuzz.py throws random ones.)"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from stepgraph import Runtime, ScriptedBackend
from stepgraph.config import load_settings
from stepgraph.errors import ConfigError
from stepgraph.memory import Store


def stepgraph(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "stepgraph.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def one_line_error(out: subprocess.CompletedProcess, *words: str) -> None:
    assert out.returncode != 0
    assert "Traceback" not in out.stdout + out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    for word in words:
        assert word in out.stderr, out.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_foreign_database_is_refused_byte_for_byte(tmp_path: Path) -> None:
    db = tmp_path / "foreign.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    before = digest(db)
    for args in (
        ["runs", "list"],
        ["runs", "search", "x"],
        ["run", "hi", "--model", "openai:http://127.0.0.1:9/v1#m"],
    ):
        one_line_error(stepgraph(*args, "--db", str(db), cwd=tmp_path), "another program")
    assert digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db"]  # no -wal, no -shm


def test_reading_commands_never_create_a_store_or_its_folder(tmp_path: Path) -> None:
    db = tmp_path / "new" / "stepgraph.db"
    for args in (["runs", "list"], ["runs", "show", "r1"], ["runs", "conversations"]):
        one_line_error(stepgraph(*args, "--db", str(db), cwd=tmp_path), "no memory store at")
    assert not db.parent.exists()


def test_a_failed_run_says_why(tmp_path: Path) -> None:
    out = stepgraph(
        "run",
        "what is 2 + 2?",
        "--model",
        "openai:http://127.0.0.1:9/v1#m",
        "--db",
        str(tmp_path / "s.db"),
        cwd=tmp_path,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "cannot reach http://127.0.0.1:9/v1" in out.stderr
    assert "is the server running?" in out.stderr


def test_a_settings_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "stepgraph.toml").write_bytes(b'[stepgraph]\nmodel = "\xff\xfe"\n')
    one_line_error(stepgraph("run", "hi", cwd=tmp_path), "is not UTF-8 text: save it as UTF-8")


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_budgets_that_cannot_work_are_refused_where_they_are_read(
    tmp_path: Path, value: str
) -> None:
    toml = tmp_path / "stepgraph.toml"
    toml.write_text(f"[stepgraph]\nmax_seconds = {value}\n")
    with pytest.raises(ConfigError, match="max_seconds"):
        load_settings(toml)
    with pytest.raises(ConfigError, match="max_seconds must be a positive, finite number"):
        Runtime(ScriptedBackend([]), store=tmp_path / "s.db", max_seconds=float(value))
    assert not (tmp_path / "s.db").exists()


def test_a_misspelt_setting_is_named(tmp_path: Path) -> None:
    toml = tmp_path / "stepgraph.toml"
    toml.write_text("[stepgraph]\nmax_step = 3\n")
    with pytest.raises(ConfigError, match="max_step: Extra inputs are not permitted"):
        load_settings(toml)


@pytest.mark.parametrize("out", ["nowhere/run.html", "."])
def test_export_into_a_missing_folder_or_onto_a_folder(tmp_path: Path, out: str) -> None:
    db = tmp_path / "s.db"
    Store(db).close()
    result = stepgraph(
        "runs", "export", "r1", "--format", "html", "--out", out, "--db", str(db), cwd=tmp_path
    )
    one_line_error(result, "--out")


def test_a_damaged_store_and_a_full_disk_say_different_things(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store(db) as store:
        store.start_run("a run worth keeping")
    data = bytearray(db.read_bytes())
    data[100:4096] = bytes(range(256)) * 15 + bytes(236)  # page 1's schema b-tree, garbled
    db.write_bytes(bytes(data))
    before = digest(db)
    one_line_error(stepgraph("runs", "list", "--db", str(db), cwd=tmp_path), "damaged")
    assert digest(db) == before

    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # what sqlite3 sets on a full disk
    store = Store.__new__(Store)
    store.path = db
    message = str(store._open_error(full))
    assert "is full" in message and "free space" in message and "writable" not in message


def test_nan_is_not_a_budget_in_the_python_api(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Runtime(ScriptedBackend([]), store=tmp_path / "s.db", max_tokens=math.nan)


def test_settings_mean_what_they_say(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`home` chooses the store, for the CLI and for Runtime(); Runtime() takes its
    budgets from the settings; a section other than [stepgraph] is an error."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STEPGRAPH_HOME", raising=False)
    (tmp_path / "stepgraph.toml").write_text(
        '[stepgraph]\nhome = "mystore"\nmax_steps = 5\nmax_seconds = 30\n'
    )
    runtime = Runtime(ScriptedBackend([]))
    assert runtime.store.path == tmp_path / "mystore" / "stepgraph.db"
    assert (runtime.planner.max_steps, runtime.max_seconds) == (5, 30)
    runtime.close()
    listed = stepgraph("runs", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "no runs yet" in listed.stderr
    (tmp_path / "stepgraph.toml").write_text('[tool.stepgraph]\nmodel = "x"\n')
    one_line_error(stepgraph("runs", "list", cwd=tmp_path), "outside [stepgraph]")


def test_a_plan_setting_that_is_not_known(tmp_path: Path) -> None:
    one_line_error(
        stepgraph("run", "hi", "--plan", "sometimes", "--db", str(tmp_path / "s.db"), cwd=tmp_path),
        "plan: Input should be 'needed' or 'always'",
    )
    assert not (tmp_path / "s.db").exists()


def test_deterministic_decoding_is_refused_where_it_cannot_hold(tmp_path: Path) -> None:
    from stepgraph.models.spec import load_model

    with pytest.raises(ConfigError, match="deterministic decoding is for the llama.cpp engine"):
        load_model("openai:http://localhost:9/v1#m", deterministic=True)
    out = stepgraph(
        "run",
        "hi",
        "--model",
        "openai:http://localhost:9/v1#m",
        "--db",
        str(tmp_path / "s.db"),
        cwd=tmp_path,
        env={"STEPGRAPH_DETERMINISTIC": "1"},
    )
    one_line_error(out, "deterministic decoding is for the llama.cpp engine")


def test_context_and_threads_reach_the_local_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from stepgraph.config import Settings
    from stepgraph.models import spec

    seen = {}

    class Engine:
        def __init__(self, path, **options):
            seen.update(options)

    monkeypatch.setattr("stepgraph.models.llamacpp.LlamaCppBackend", Engine)
    monkeypatch.setattr(spec.embedded, "model_path", lambda name: "model.gguf")
    options = Settings(context=4096, threads=2).engine_options()
    spec.load_model("qwen2.5-coder-0.5b", **options)
    assert (seen["n_ctx"], seen["threads"], seen["deterministic"]) == (4096, 2, False)
    seen.clear()
    spec.load_model("qwen2.5-coder-0.5b", **Settings().engine_options())
    assert "n_ctx" not in seen and "threads" not in seen  # the engine's own defaults
    # a server's context is its own: the settings do not reach it
    assert spec.load_model("openai:http://localhost:9/v1#m", **options).name
