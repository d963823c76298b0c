"""The SQLite memory store: one file holding conversations, runs, plans, steps, verdicts and
events, searchable with FTS5 and complete enough to replay a run without a model.

Why it is built this way:
- WAL mode and `BEGIN IMMEDIATE` for every write, with a 30 s busy timeout: several
  processes (parallel runs, a CLI reading while an agent writes) share one file, readers
  never block, and writers queue instead of failing with "database is locked".
- Each write method is one short transaction: a crash or a full disk loses at most that
  write, never what was stored before it.
- One connection per Store guarded by a lock, so the runtime may record from several
  threads (parallel steps) through the same Store (base.py: what it shares with the
  PostgreSQL store).
- Errors a user can cause (a file that is not ours, a read-only folder, a full disk, a
  database from a newer stepgraph) become `StoreError` with what to do, and the file is
  left as it was.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import platformdirs
from sqlite_utils import Database

from stepgraph.errors import StoreError
from stepgraph.memory import migrations
from stepgraph.memory.base import MemoryStore, estimate_tokens, new_id
from stepgraph.memory.records import SearchHit

__all__ = ["Store", "default_path", "estimate_tokens", "fts_query", "new_id"]

BUSY_TIMEOUT_S = 30.0
SQLITE_HEADER = b"SQLite format 3\x00"

# What search() looks in: (kind, FTS table, the join back to its rows, the hit's columns).
SEARCH_SOURCES = (
    (
        "message",
        "messages_fts",
        "messages m ON m.id = messages_fts.rowid",
        "m.run_id, m.conversation_id, NULL AS step_id, m.id AS message_id, m.created",
    ),
    (
        "step",
        "steps_fts",
        "steps s ON s.id = steps_fts.rowid JOIN runs r ON r.id = s.run_id",
        "s.run_id, r.conversation_id, s.step_id, NULL AS message_id, "
        "coalesce(s.finished, s.started, r.created) AS created",
    ),
    (
        "run",
        "runs_fts",
        "runs r ON r.num = runs_fts.rowid",
        "r.id AS run_id, r.conversation_id, NULL AS step_id, NULL AS message_id, r.created",
    ),
)


def default_path() -> Path:
    """`$STEPGRAPH_HOME/stepgraph.db`, else the per-user data folder that platformdirs picks."""
    home = os.environ.get("STEPGRAPH_HOME") or platformdirs.user_data_dir("stepgraph")
    return Path(home).expanduser() / "stepgraph.db"


def fts_query(text: str, *, any_word: bool = False) -> str:
    """Free text as an FTS5 query that cannot be a syntax error: each word a quoted string.

    Only runs of word characters are kept (the tokenizer splits on everything else anyway),
    so `"`, `AND OR (` or `*` search for literal words or for nothing, never crash.
    Returns "" when the text has no words.
    """
    words = re.findall(r"\w+", text)
    return (" OR " if any_word else " ").join(f'"{word}"' for word in words)


def _fix_hint(path: Path) -> str:
    return (
        f"make {path.parent} writable, or set STEPGRAPH_HOME (or pass another path) "
        "to a writable folder"
    )


class Store(MemoryStore):
    """The SQLite memory store. Opening it creates the file and applies pending migrations.

    Use it as a context manager, or call `close()`::

        with Store() as store:
            run_id = store.start_run("Sum the first ten primes")
            ...
            store.finish_run(run_id, status="done", answer="129")
    """

    _BEGIN_WRITE = "BEGIN IMMEDIATE"  # take the write lock now: queue behind other writers

    def __init__(self, path: str | Path | None = None, *, create: bool = True) -> None:
        """`create=False` (for commands that only read) opens an existing store and never
        creates the file or its folder."""
        self.path = Path(path).expanduser() if path is not None else default_path()
        if not create and not self.path.exists():
            raise StoreError(
                f"no memory store at {self.path} yet: `stepgraph run` creates it; pass --db "
                "(or set STEPGRAPH_HOME) to read another"
            )
        super().__init__()
        self.location = str(self.path)
        self.conn = self._open()
        try:
            self.db = Database(self.conn)
            self._check_ours()
            # After the checks: switching to WAL writes the file header.
            self._enable_wal()
            # Safe with WAL: a crash cannot corrupt the file, only a power cut can lose
            # the last commits. It saves an fsync per write.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            migrations.migrate(self.db)
        except StoreError:
            self.conn.close()
            raise
        except sqlite3.Error as e:
            self.conn.close()
            raise self._open_error(e) from e

    # -- opening -----------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if not hasattr(Database, "atomic"):
            # sqlite-utils 3 commits the caller's transaction inside insert() and
            # enable_fts(), which would break the one-transaction-per-write guarantee.
            raise StoreError(
                "the memory store needs sqlite-utils 4 or newer: pip install -U sqlite-utils"
            )
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"cannot create the folder for the memory store {path}: {e}; {_fix_hint(path)}"
            ) from e
        if path.is_dir():
            raise StoreError(f"{path} is a folder, not a database file; pass a file path")
        try:
            with path.open("rb") as f:
                header = f.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            header = b""
        except OSError as e:
            raise StoreError(f"cannot read the memory store {path}: {e}") from e
        if header and header != SQLITE_HEADER:
            raise self._not_sqlite()
        try:
            conn = sqlite3.connect(
                path,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,  # no implicit transactions: we BEGIN explicitly
                check_same_thread=False,  # shared across threads, serialized by self._lock
            )
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as e:
            raise self._open_error(e) from e
        return conn

    def _enable_wal(self) -> None:
        """Switch to WAL, retrying while another process holds the lock: SQLite answers
        `journal_mode=WAL` with "database is locked" at once, without its busy timeout, when
        several processes open a new file together (seen with 8 on a loaded machine)."""
        from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

        def locked(e: BaseException) -> bool:
            return isinstance(e, sqlite3.OperationalError) and "locked" in str(e)

        for attempt in Retrying(
            retry=retry_if_exception(locked),
            stop=stop_after_delay(BUSY_TIMEOUT_S),
            wait=wait_random(0.02, 0.2),
            reraise=True,
        ):
            with attempt:
                (mode,) = self.conn.execute("PRAGMA journal_mode").fetchone()
                if str(mode).lower() != "wal":
                    self.conn.execute("PRAGMA journal_mode=WAL")

    def _check_ours(self) -> None:
        """Refuse, before writing anything, a database we must not migrate."""
        if unknown := migrations.unknown_migrations(self.db):
            raise migrations.newer_database_error(self.path, unknown)
        # One query, so one snapshot: table by table, another process's first migration
        # could commit between two reads and its tables look like someone else's.
        tables = {row[0] for row in self.conn.execute("SELECT name FROM sqlite_master")}
        if tables and "_migrations" not in tables:
            # an empty database is ours to set up; one that holds anything else is not
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise StoreError(
                f"{self.path} is a SQLite database of another program (it holds {shown}), "
                "not a stepgraph store; pass another path. The file was not changed."
            )

    def _not_sqlite(self) -> StoreError:
        return StoreError(
            f"{self.path} is not a stepgraph database (not SQLite): move it away or pass "
            "another path. The file was not changed."
        )

    def _open_error(self, e: sqlite3.Error) -> StoreError:
        """What went wrong opening the store, and what to do: a damaged file, a full disk
        and a read-only folder each need something different."""
        code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
        if code == sqlite3.SQLITE_NOTADB or "not a database" in str(e):
            return self._not_sqlite()
        if code == sqlite3.SQLITE_CORRUPT or "malformed" in str(e):
            return StoreError(
                f"the memory store {self.path} is damaged ({e}): restore it from a backup, "
                "or move it away to start a new one. The file was not changed."
            )
        if code == sqlite3.SQLITE_FULL:
            return StoreError(
                f"the disk holding the memory store {self.path} is full ({e}): free space, or "
                "set STEPGRAPH_HOME to a folder on another disk. Nothing was written."
            )
        return StoreError(f"cannot open the memory store {self.path}: {e}; {_fix_hint(self.path)}")

    def _write_error(self, e: sqlite3.Error) -> StoreError:
        code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
        kept = "nothing from this write was kept; what was stored before is intact"
        if code == sqlite3.SQLITE_FULL:
            return StoreError(
                f"the memory store {self.path} is full ({e}): {kept}. Free disk space, or "
                "move the store elsewhere with STEPGRAPH_HOME, and try again"
            )
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return StoreError(
                f"the memory store {self.path} stayed locked by another process for more than "
                f"{BUSY_TIMEOUT_S:.0f} s ({e}): {kept}. Try again, or give each job its own store"
            )
        if code == sqlite3.SQLITE_READONLY:
            return StoreError(
                f"cannot write to the memory store {self.path} ({e}): {kept}. The file or its "
                f"folder is read-only: {_fix_hint(self.path)}"
            )
        return StoreError(f"could not write to the memory store {self.path}: {e}; {kept}")

    # -- what the base class asks of a store -------------------------------------------

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, list(params))

    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.conn.executemany(sql, rows)

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, list(params))
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def _in_transaction(self) -> bool:
        return self.conn.in_transaction

    def _is_db_error(self, e: BaseException) -> bool:
        return isinstance(e, sqlite3.Error)

    def _close(self) -> None:
        self.conn.close()

    def _older_matches(
        self, conversation_id: str, query: str, older_than: int
    ) -> list[dict[str, Any]]:
        match = fts_query(query, any_word=True)
        if not match:
            return []
        return self._query(
            """SELECT m.* FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
            WHERE messages_fts MATCH ? AND m.conversation_id = ? AND m.id < ?
            ORDER BY messages_fts.rank LIMIT 100""",
            [match, conversation_id, older_than],
        )

    def search(self, query: str, limit: int = 20) -> list[SearchHit]:
        """Full-text search over messages, step instructions and outputs, and runs (FTS5).

        Every word of `query` must match (stemmed); FTS syntax in it is taken literally.
        Best matches first: the score is FTS5's bm25 rank, lower is better.
        """
        match = fts_query(query)
        if not match:
            return []
        hits: list[SearchHit] = []
        with self._read():
            for kind, fts, join, columns in SEARCH_SOURCES:
                sql = f"""SELECT '{kind}' AS kind, {columns},
                    snippet({fts}, -1, '«', '»', '…', 16) AS snippet, {fts}.rank AS score
                    FROM {fts} JOIN {join} WHERE {fts} MATCH ? ORDER BY {fts}.rank LIMIT ?"""
                hits.extend(SearchHit(**row) for row in self._query(sql, [match, limit]))
        return sorted(hits, key=lambda hit: hit.score)[:limit]

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"
