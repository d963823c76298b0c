"""The PostgreSQL schema: the same named migrations as migrations.py (same names, same
order), in PostgreSQL's SQL, each recorded in `_migrations`.

Append-only, like the SQLite list: never edit a migration that has shipped. A test checks
that both lists hold the same names, so a new migration is written for both databases.

Where the SQLite schema leans on rowids, tables here have an identity column (`num`, or the
integer `id`), so insertion order and ids come out the same. Full-text search is GIN
indexes over `to_tsvector('english', ...)` of the same columns FTS5 indexes; the queries in
postgres.py use the same expressions (`DOCUMENTS`), so PostgreSQL uses the indexes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stepgraph.errors import StoreError

# one lock number for "migrating a stepgraph schema": two processes opening a blank
# database at once take turns, and the second finds the work done
ADVISORY_LOCK = 0x7374657067726170

TEXT_SEARCH = "english"  # snowball stemming: "recorded" finds "records", as porter does
# The text each searchable table is indexed on, `{t}` the table's alias in a query (frozen:
# m002's indexes are built on them, and a query must repeat one exactly to use its index).
DOCUMENTS = {
    "messages": "{t}content",
    "steps": "coalesce({t}instruction, '') || ' ' || coalesce({t}output, '')",
    "runs": "{t}instruction || ' ' || coalesce({t}answer, '')",
}


def document(table: str, alias: str = "") -> str:
    """The tsvector a table is searched on, as its m002 index has it."""
    text = DOCUMENTS[table].format(t=f"{alias}." if alias else "")
    return f"to_tsvector('{TEXT_SEARCH}', {text})"


MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "m001_initial",
        [
            """CREATE TABLE conversations (
                num BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
                id TEXT PRIMARY KEY,
                title TEXT,
                created TEXT NOT NULL
            )""",
            """CREATE TABLE runs (
                num BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                conversation_id TEXT REFERENCES conversations(id),
                instruction TEXT NOT NULL,
                status TEXT NOT NULL,
                answer TEXT,
                model TEXT NOT NULL DEFAULT '',
                planner TEXT NOT NULL DEFAULT '',
                created TEXT NOT NULL,
                finished TEXT,
                seconds DOUBLE PRECISION,
                prompt_tokens INTEGER,
                completion_tokens INTEGER,
                error TEXT,
                meta TEXT NOT NULL DEFAULT '{}'
            )""",
            """CREATE TABLE messages (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
                seconds DOUBLE PRECISION,
                prompt_tokens INTEGER,
                completion_tokens INTEGER,
                model TEXT,
                UNIQUE (run_id, step_id)
            )""",
            """CREATE TABLE verdicts (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                run_id TEXT NOT NULL REFERENCES runs(id),
                step_id TEXT,
                check_name TEXT NOT NULL,
                passed INTEGER CHECK (passed IN (0, 1)),
                evidence TEXT,
                created TEXT NOT NULL
            )""",
            """CREATE TABLE events (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
            "CREATE INDEX steps_by_run ON steps (run_id, id)",  # SQLite: the UNIQUE index
        ],
    ),
    (
        "m002_full_text_search",
        [
            f"CREATE INDEX {table}_search ON {table} USING gin ({document(table)})"
            for table in DOCUMENTS
        ],
    ),
    (
        "m003_run_claims",
        [
            "ALTER TABLE runs ADD COLUMN claimed_by TEXT",
            "ALTER TABLE runs ADD COLUMN lease_until DOUBLE PRECISION",
            "ALTER TABLE runs ADD COLUMN claims INTEGER NOT NULL DEFAULT 0",
        ],
    ),
]


def migrate(conn: Any, location: str, *, create: bool = True, upto: str | None = None) -> list[str]:
    """Check the schema is ours and apply the pending migrations (those up to and including
    `upto`, which exists so tests can build an older schema); return their names.

    One transaction, and PostgreSQL's DDL is transactional: all pending migrations apply or
    none do, and a refused database (another program's tables, a newer stepgraph's
    migrations, nothing there with `create=False`) is left exactly as it was.
    """
    names = [name for name, _ in MIGRATIONS]
    if upto is not None and upto not in names:
        raise ValueError(f"no migration named {upto!r}; known: {', '.join(names)}")
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK])
        (schema,) = conn.execute("SELECT current_schema()").fetchone()
        if schema is None:
            raise StoreError(
                f"{location} has no schema to keep the store in (the search_path names none "
                "that exists): create it (CREATE SCHEMA ...) or fix the URL. Nothing was written."
            )
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = %s::regnamespace "
                "AND relkind IN ('r', 'p', 'v', 'm', 'f')",
                [schema],
            )
        }
        if "_migrations" not in tables:
            if tables:
                shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
                raise StoreError(
                    f"{location} (schema {schema}) holds tables of another program ({shown}), "
                    "not a stepgraph store; pass another database, or a schema of its own "
                    "(?options=-csearch_path%3Dstepgraph in the URL). Nothing was written."
                )
            if not create:
                raise StoreError(
                    f"no memory store in {location} yet: `stepgraph run --db URL` creates it"
                )
            conn.execute(
                "CREATE TABLE _migrations (num BIGINT GENERATED ALWAYS AS IDENTITY, "
                "name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
        done = [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY num")]
        if unknown := [name for name in done if name not in names]:
            raise StoreError(
                f"{location} was written by a newer stepgraph (it has migrations "
                f"{', '.join(unknown)} that this version does not know); upgrade stepgraph "
                "(pip install -U stepgraph) or pass another database. Nothing was written."
            )
        applied = []
        for name, statements in MIGRATIONS:
            if name not in done:
                for sql in statements:
                    conn.execute(sql)
                conn.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (%s, %s)",
                    [name, datetime.now(UTC).isoformat(timespec="milliseconds")],
                )
                applied.append(name)
            if name == upto:
                break
        conn.execute("COMMIT")
    except BaseException:
        if not conn.closed:
            conn.execute("ROLLBACK")
        raise
    return applied
