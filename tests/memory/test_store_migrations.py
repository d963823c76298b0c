"""Opening the store: migrations, and the files it must refuse without changing them.

SQLite only: file headers, permissions, WAL and the FTS5 tables are SQLite's own; the
PostgreSQL store's migrations and refusals are tested in test_store_postgres.py."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest
from memory_helpers import file_digest, record_full_run
from sqlite_utils import Database

from stepgraph.errors import StoreError
from stepgraph.memory import MIGRATIONS, Store, default_path, migrate
from stepgraph.memory.migrations import applied_migrations

ALL = [fn.__name__ for fn in MIGRATIONS]
TABLES = {"conversations", "messages", "runs", "plans", "steps", "verdicts", "events"}


def test_migration_names_are_numbered_in_order():
    assert len(set(ALL)) == len(ALL)
    assert all(re.fullmatch(r"m\d{3}_[a-z0-9_]+", name) for name in ALL)
    assert sorted(ALL) == ALL
    assert ALL[0] == "m001_initial"


def test_blank_database_gets_every_migration(db_path: Path):
    with Store(db_path) as store:
        assert applied_migrations(store.db) == ALL
        assert set(store.db.table_names()) >= TABLES
        assert {"messages_fts", "steps_fts", "runs_fts"} <= set(store.db.table_names())
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
        assert migrate(store.db) == []  # nothing left to do
    with Store(db_path) as store:  # reopening applies nothing twice
        assert applied_migrations(store.db) == ALL


def test_empty_file_is_a_blank_database(db_path: Path):
    db_path.parent.mkdir(parents=True)
    db_path.touch()
    with Store(db_path) as store:
        assert applied_migrations(store.db) == ALL


def test_upgrade_from_the_first_schema_keeps_and_indexes_old_rows(db_path: Path):
    db_path.parent.mkdir(parents=True)
    old = Database(db_path)
    assert migrate(old, upto="m001_initial") == ["m001_initial"]
    old.execute("INSERT INTO conversations VALUES ('c1', 'old', '2026-01-01T00:00:00+00:00')")
    old.execute(
        "INSERT INTO runs (id, conversation_id, instruction, status, created) "
        "VALUES ('r1', 'c1', 'Translate the haiku', 'done', '2026-01-01T00:00:00+00:00')"
    )
    old.execute(
        "INSERT INTO messages (conversation_id, run_id, role, content, created, tokens) "
        "VALUES ('c1', 'r1', 'user', 'Please translate this haiku about herons', "
        "'2026-01-01T00:00:00+00:00', 10)"
    )
    old.execute(
        "INSERT INTO steps (run_id, step_id, status, output) "
        "VALUES ('r1', 's1', 'done', 'The heron stands in cold water')"
    )
    old.close()

    with Store(db_path) as store:
        assert applied_migrations(store.db) == ALL
        kinds = {hit.kind for hit in store.search("heron")}
        assert kinds == {"message", "step"}
        assert store.search("haiku")[0].run_id == "r1"
        assert store.run("r1").steps[0].output == "The heron stands in cold water"


def test_database_from_a_newer_stepgraph_is_refused_untouched(db_path: Path):
    with Store(db_path) as store:
        record_full_run(store)
        store.db.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', '2030')")
    before = file_digest(db_path)
    with pytest.raises(StoreError, match="newer stepgraph.*m999_from_the_future.*upgrade"):
        Store(db_path)
    assert file_digest(db_path) == before


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path):
    path = tmp_path / "notes.txt"
    path.write_text("my notes, not a database\n" * 200)
    before = file_digest(path)
    with pytest.raises(StoreError, match="is not a stepgraph database \\(not SQLite\\)"):
        Store(path)
    assert file_digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_corrupt_file_with_a_sqlite_header_is_refused_untouched(tmp_path: Path):
    path = tmp_path / "broken.db"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8000))
    before = file_digest(path)
    with pytest.raises(StoreError, match="not a stepgraph database"):
        Store(path)
    assert file_digest(path) == before


def test_another_apps_sqlite_database_is_refused_untouched(tmp_path: Path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, km REAL)")
        conn.execute("INSERT INTO runs (km) VALUES (5.2)")
    conn.close()
    before = file_digest(path)
    with pytest.raises(StoreError, match="another program \\(it holds runs\\), not a stepgraph"):
        Store(path)
    assert file_digest(path) == before


def test_a_database_whose_tables_are_all_foreign_is_refused_untouched(tmp_path: Path):
    """No table of stepgraph's name in it, and still not ours: a `users` table was once
    enough for stepgraph to add its 23 tables beside it and switch the file to WAL."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    before = file_digest(path)
    for create in (True, False):
        with pytest.raises(StoreError, match="holds users\\), not a stepgraph store"):
            Store(path, create=create)
    assert file_digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_an_empty_file_becomes_a_store(tmp_path: Path):
    path = tmp_path / "empty.db"
    path.touch()
    with Store(path) as store:
        assert store.runs() == []


def test_opening_to_read_creates_nothing(tmp_path: Path):
    path = tmp_path / "missing" / "stepgraph.db"
    with pytest.raises(StoreError, match="no memory store at .*stepgraph run. creates it"):
        Store(path, create=False)
    assert not path.parent.exists()


def test_a_path_below_a_regular_file_is_refused_with_the_fix(tmp_path: Path):
    # Works as root too: no permission bit is involved, the folder cannot exist.
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    path = blocker / "stepgraph" / "stepgraph.db"
    with pytest.raises(StoreError) as excinfo:
        Store(path)
    assert str(path) in str(excinfo.value)
    assert "STEPGRAPH_HOME" in str(excinfo.value)
    assert blocker.read_text() == "a file, not a folder"


def test_a_folder_as_the_path_is_refused(tmp_path: Path):
    with pytest.raises(StoreError, match="is a folder"):
        Store(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod")
def test_a_read_only_folder_is_refused_with_the_fix(tmp_path: Path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="STEPGRAPH_HOME") as excinfo:
            Store(folder / "stepgraph.db")
        assert str(folder) in str(excinfo.value)
    finally:
        folder.chmod(0o755)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod")
def test_a_read_only_database_is_refused_untouched(db_path: Path):
    Store(db_path).close()
    db_path.chmod(0o444)
    db_path.parent.chmod(0o555)
    before = file_digest(db_path)
    try:
        with pytest.raises(StoreError, match="STEPGRAPH_HOME"):
            Store(db_path).start_run("x")
    finally:
        db_path.parent.chmod(0o755)
        db_path.chmod(0o644)
    assert file_digest(db_path) == before


def test_a_full_disk_rolls_back_the_write_and_keeps_what_was_stored(db_path: Path):
    store = Store(db_path)
    conversation = store.new_conversation("before the disk filled")
    store.add_message(conversation, "user", "first turn")
    run_id = record_full_run(store, conversation_id=conversation)
    # A ceiling a few pages above the current size: the next big write hits SQLITE_FULL.
    (pages,) = store.conn.execute("PRAGMA page_count").fetchone()
    store.conn.execute(f"PRAGMA max_page_count = {pages + 4}")

    with pytest.raises(StoreError, match="full.*nothing from this write was kept"):
        store.add_message(conversation, "assistant", "x" * 2_000_000)
    with pytest.raises(StoreError, match="full"):
        store.record_step(run_id, "s9", output="y" * 2_000_000, status="done")
    assert not store.conn.in_transaction
    store.add_message(conversation, "user", "small writes still fit")  # store still usable
    store.close()

    with Store(db_path) as reopened:
        contents = [m.content for m in reopened.messages(conversation)]
        assert contents == ["first turn", "small writes still fit"]
        run = reopened.run(run_id)
        assert [s.step_id for s in run.steps] == ["s1", "s2", "s3"]
        assert run.answer == "The sum is 129, which is odd."


def test_default_path_follows_stepgraph_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "deep" / "home"
    monkeypatch.setenv("STEPGRAPH_HOME", str(home))
    assert default_path() == home / "stepgraph.db"
    with Store() as store:
        assert store.path == home / "stepgraph.db"
        store.start_run("hello")
    assert (home / "stepgraph.db").exists()


def test_default_path_without_stepgraph_home_is_the_user_data_dir(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv("STEPGRAPH_HOME", raising=False)
    path = default_path()
    assert path.name == "stepgraph.db"
    assert "stepgraph" in path.parent.parts[-1]
