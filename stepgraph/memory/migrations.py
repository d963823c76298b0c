"""Schema migrations: named functions, applied in order, each recorded in `_migrations`.

The list is append-only. Never edit or reorder a migration that has shipped: a user's
database already holds its result. Change the schema by appending `m00N_what_it_does`.

`migrate()` runs the pending ones in one `BEGIN IMMEDIATE` transaction, so two processes
opening a new store at once do not both create tables, and a failure leaves the file as it
was. A database that lists a migration this code does not know was written by a newer
stepgraph; it is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from sqlite_utils import Database

from stepgraph.errors import StoreError

Migration = Callable[[Database], None]

MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register `fn` as the next migration; its function name is its permanent id."""
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(db: Database) -> None:
    # Tables that carry full-text search get an INTEGER PRIMARY KEY: FTS5 external content
    # points at rowids, and VACUUM renumbers rowids that are not aliased by such a key.
    for sql in (
        """CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT,
            created TEXT NOT NULL
        )""",
        """CREATE TABLE runs (
            num INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            conversation_id TEXT REFERENCES conversations(id),
            instruction TEXT NOT NULL,
            status TEXT NOT NULL,
            answer TEXT,
            model TEXT NOT NULL DEFAULT '',
            planner TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL,
            finished TEXT,
            seconds REAL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            error TEXT,
            meta TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id),
            run_id TEXT REFERENCES runs(id),
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            created TEXT NOT NULL,
            tokens INTEGER NOT NULL
        )""",
        """CREATE TABLE plans (
            run_id TEXT NOT NULL REFERENCES runs(id),
            version INTEGER NOT NULL,
            plan TEXT NOT NULL,
            created TEXT NOT NULL,
            PRIMARY KEY (run_id, version)
        )""",
        """CREATE TABLE steps (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id),
            step_id TEXT NOT NULL,
            plan_version INTEGER,
            executor TEXT,
            instruction TEXT,
            args TEXT,
            depends_on TEXT,
            input TEXT,
            output TEXT,
            data TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            started TEXT,
            finished TEXT,
            seconds REAL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            model TEXT,
            UNIQUE (run_id, step_id)
        )""",
        """CREATE TABLE verdicts (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id),
            step_id TEXT,
            check_name TEXT NOT NULL,
            passed INTEGER CHECK (passed IN (0, 1)),
            evidence TEXT,
            created TEXT NOT NULL
        )""",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id),
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            payload TEXT NOT NULL,
            created TEXT NOT NULL,
            UNIQUE (run_id, seq)
        )""",
        "CREATE INDEX messages_by_conversation ON messages (conversation_id, id)",
        "CREATE INDEX runs_by_conversation ON runs (conversation_id)",
        "CREATE INDEX runs_by_status ON runs (status, num)",
        "CREATE INDEX verdicts_by_run ON verdicts (run_id, id)",
    ):
        db.execute(sql)


@migration
def m002_full_text_search(db: Database) -> None:
    # Porter stemming: memory lookups ask "recorded" and should find "records".
    # Triggers keep the index in step with every insert, upsert and delete.
    db["messages"].enable_fts(["content"], create_triggers=True, tokenize="porter")
    db["steps"].enable_fts(["instruction", "output"], create_triggers=True, tokenize="porter")
    db["runs"].enable_fts(["instruction", "answer"], create_triggers=True, tokenize="porter")


@migration
def m003_run_claims(db: Database) -> None:
    # Submitted runs wait (status "submitted") until a worker claims one: `claimed_by` names
    # the worker, `lease_until` (epoch seconds on the database's clock) is when its claim
    # lapses unless renewed, and `claims` counts the claims, so a run that takes down every
    # worker that runs it is given up instead of claimed forever.
    for sql in (
        "ALTER TABLE runs ADD COLUMN claimed_by TEXT",
        "ALTER TABLE runs ADD COLUMN lease_until REAL",
        "ALTER TABLE runs ADD COLUMN claims INTEGER NOT NULL DEFAULT 0",
    ):
        db.execute(sql)


def applied_migrations(db: Database) -> list[str]:
    """Names of the migrations recorded in this database, in the order they were applied."""
    if not db["_migrations"].exists():
        return []
    return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]


def unknown_migrations(db: Database) -> list[str]:
    """Migrations the database has but this code lacks: a newer stepgraph wrote it."""
    known = {fn.__name__ for fn in MIGRATIONS}
    return [name for name in applied_migrations(db) if name not in known]


def newer_database_error(path: object, unknown: list[str]) -> StoreError:
    return StoreError(
        f"{path} was written by a newer stepgraph (it has migrations {', '.join(unknown)} "
        "that this version does not know); upgrade stepgraph (pip install -U stepgraph) "
        "or pass another database path. The file was not changed."
    )


def migrate(db: Database, *, upto: str | None = None) -> list[str]:
    """Apply the pending migrations (those up to and including `upto`); return their names.

    Runs in one `BEGIN IMMEDIATE` transaction: all pending migrations apply or none do.
    `upto` exists so tests can build the schema an older stepgraph would have left.
    """
    names = [fn.__name__ for fn in MIGRATIONS]
    if upto is not None and upto not in names:
        raise ValueError(f"no migration named {upto!r}; known: {', '.join(names)}")
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
        )
        if unknown := unknown_migrations(db):
            raise newer_database_error(db_path(db), unknown)
        done = set(applied_migrations(db))
        applied = []
        for fn in MIGRATIONS:
            if fn.__name__ not in done:
                fn(db)
                db.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                    [fn.__name__, datetime.now(UTC).isoformat(timespec="milliseconds")],
                )
                applied.append(fn.__name__)
            if fn.__name__ == upto:
                break
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return applied


def db_path(db: Database) -> str:
    """The file behind a Database, for messages."""
    try:
        rows = db.conn.execute("PRAGMA database_list").fetchall()
    except sqlite3.Error:
        return "the database"
    return next((row[2] for row in rows if row[1] == "main" and row[2]), "the database")
