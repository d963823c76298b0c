"""Random arguments, settings and files thrown at the CLI: never a traceback, and nothing a
user already has is changed.

Only commands that load no model run here (the model-loading paths have their own tests
in test_cli.py), so hypothesis can try a few hundred combinations in seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sqlite3
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepgraph import cli
from stepgraph.memory import Store

WORDS = st.sampled_from(
    ["", " ", "r-none", "x", "--", "-1", "0", "nan", "é", "\x00", "a" * 300, "AND OR", '"']
)
DBS = [
    "store.db",
    "missing.db",
    "nested/missing/x.db",
    "folder",
    "foreign.db",
    "notes.txt",
    "corrupt.db",
    "empty.db",
]
OUTS = ["out.html", "out.jsonl", "out.png", "folder", "nowhere/out.html", "notes.txt"]


def _workspace(root: Path) -> dict[str, str]:
    """The files a user might point the CLI at; their digests, to check nothing changes."""
    (root / "folder").mkdir()
    Store(root / "store.db").close()
    with sqlite3.connect(root / "foreign.db") as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.close()
    (root / "notes.txt").write_text("my notes\n")
    (root / "corrupt.db").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 30)
    (root / "empty.db").touch()
    return _digests(root)


def _digests(root: Path) -> dict[str, str]:
    names = ["foreign.db", "notes.txt", "corrupt.db"]
    return {n: hashlib.sha256((root / n).read_bytes()).hexdigest() for n in names}


commands = st.one_of(
    st.tuples(
        st.just(["runs", "list"]),
        st.lists(
            st.sampled_from(
                [
                    ["--limit", "0"],
                    ["--limit", "-3"],
                    ["--limit", "x"],
                    ["--status", "bogus"],
                    ["--status", "done"],
                    ["--json"],
                ]
            ),
            max_size=2,
        ),
    ),
    st.tuples(st.builds(lambda w: ["runs", "show", w], WORDS), st.just([])),
    st.tuples(st.builds(lambda w: ["runs", "search", w], WORDS), st.just([])),
    st.tuples(st.just(["runs", "conversations"]), st.just([])),
    st.tuples(
        st.builds(
            lambda w, f: ["runs", "export", w, "--format", f],
            WORDS,
            st.sampled_from(["jsonl", "html", "png", "pdf", ""]),
        ),
        st.lists(st.builds(lambda o: ["--out", o], st.sampled_from(OUTS)), max_size=1),
    ),
    st.tuples(st.builds(lambda w: ["replay", w], WORDS), st.just([])),
    st.tuples(st.just(["model", "list"]), st.sampled_from([[], [["--json"]]])),
)
SETTINGS = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.builds(
        lambda k, v: f"[stepgraph]\n{k} = {v}\n".encode(),
        st.sampled_from(
            [
                "model",
                "max_steps",
                "max_step",
                "max_seconds",
                "max_tokens",
                "home",
                "context",
                "threads",
            ]
        ),
        st.sampled_from(['"x"', "-1", "0", "nan", "inf", "1e309", "[1]", '"folder"', "true"]),
    ),
)


@pytest.mark.timeout(600)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(command=commands, db=st.sampled_from(DBS + [None]), config=SETTINGS)
def test_the_cli_never_shows_a_traceback(tmp_path_factory, command, db, config) -> None:
    root = tmp_path_factory.mktemp("cli")
    before = _workspace(root)
    argv = list(command[0]) + [a for extra in command[1] for a in extra]
    if db is not None and argv[0] in ("runs", "replay"):
        argv += ["--db", str(root / db)]
    env = {"STEPGRAPH_HOME": str(root / "home"), "HOME": str(root)}
    if config is not None:
        (root / "stepgraph.toml").write_bytes(config)
        env["STEPGRAPH_CONFIG"] = str(root / "stepgraph.toml")
    out, err = io.StringIO(), io.StringIO()
    old_env, old_cwd, old_argv = dict(os.environ), Path.cwd(), sys.argv
    os.environ.update(env)
    os.chdir(root)
    sys.argv = ["stepgraph", *argv]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(old_env)
        os.chdir(old_cwd)
        sys.argv = old_argv
    shown = out.getvalue() + err.getvalue()
    assert "Traceback" not in shown, (argv, shown)
    assert code != cli.BUG_EXIT, (argv, shown)  # an exception nobody turned into a message
    if code not in (0, 2):  # 2: the argument parser's own usage message
        assert "error:" in err.getvalue(), (argv, code, shown)
    assert _digests(root) == before, argv
    assert not (root / "nested").exists()  # reading never creates a store or its folder
    assert not (root / "missing.db").exists()
