"""The memory store: one SQLite file holding conversations, runs, plans, steps, verdicts and
events, searchable with FTS5 and complete enough to replay a run without a model.

Why it is built this way:
- WAL mode and `BEGIN IMMEDIATE` for every write, with a 30 s busy timeout: several
  processes (parallel runs, a CLI reading while an agent writes) share one file, readers
  never block, and writers queue instead of failing with "database is locked".
- Each write method is one short transaction: a crash or a full disk loses at most that
  write, never what was stored before it.
- One connection per Store guarded by a lock, so the runtime may record from several
  threads (parallel steps) through the same Store.
- Errors a user can cause (a file that is not ours, a read-only folder, a full disk, a
  database from a newer stepgraph) become `StoreError` with what to do, and the file is
  left as it was.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import platformdirs
from sqlite_utils import Database

from stepgraph.errors import StoreError
from stepgraph.memory import migrations
from stepgraph.memory._html import render_run_html
from stepgraph.memory.records import (
    ConversationRecord,
    EventRecord,
    MessageRecord,
    PlanRecord,
    RunRecord,
    RunSummary,
    SearchHit,
    StepRecord,
    VerdictRecord,
)

BUSY_TIMEOUT_S = 30.0
SQLITE_HEADER = b"SQLite format 3\x00"

# Columns record_step() accepts (those of StepRecord); the JSON ones are stored as JSON text.
STEP_FIELDS = frozenset(StepRecord.model_fields) - {"run_id", "step_id"}
JSON_STEP_FIELDS = frozenset({"args", "depends_on", "input", "data"})
TIME_STEP_FIELDS = frozenset({"started", "finished"})
RUN_TOTALS = frozenset({"seconds", "prompt_tokens", "completion_tokens"})

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


def new_id(prefix: str) -> str:
    """A short id that sorts by creation time: prefix, 12 hex digits of ms, 8 random hex."""
    return f"{prefix}{time.time_ns() // 1_000_000:012x}{secrets.token_hex(4)}"


def estimate_tokens(text: str) -> int:
    """About four characters a token: good enough to keep a prompt under a budget."""
    return max(1, (len(text) + 3) // 4)


def fts_query(text: str, *, any_word: bool = False) -> str:
    """Free text as an FTS5 query that cannot be a syntax error: each word a quoted string.

    Only runs of word characters are kept (the tokenizer splits on everything else anyway),
    so `"`, `AND OR (` or `*` search for literal words or for nothing, never crash.
    Returns "" when the text has no words.
    """
    words = re.findall(r"\w+", text)
    return (" OR " if any_word else " ").join(f'"{word}"' for word in words)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _timestamp(value: datetime | float | str | None) -> str | None:
    """Times are stored as ISO 8601 UTC text; accept datetimes and epoch seconds too."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if value.tzinfo is None:
        value = value.astimezone()
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _fix_hint(path: Path) -> str:
    return (
        f"make {path.parent} writable, or set STEPGRAPH_HOME (or pass another path) "
        "to a writable folder"
    )


_PLANNED = {"executor", "instruction", "args", "depends_on"}


class Store:
    """The SQLite memory store. Opening it creates the file and applies pending migrations.

    Use it as a context manager, or call `close()`::

        with Store() as store:
            run_id = store.start_run("Sum the first ten primes")
            ...
            store.finish_run(run_id, status="done", answer="129")
    """

    def __init__(self, path: str | Path | None = None, *, create: bool = True) -> None:
        """`create=False` (for commands that only read) opens an existing store and never
        creates the file or its folder."""
        self.path = Path(path).expanduser() if path is not None else default_path()
        if not create and not self.path.exists():
            raise StoreError(
                f"no memory store at {self.path} yet: `stepgraph run` creates it; pass --db "
                "(or set STEPGRAPH_HOME) to read another"
            )
        self._lock = threading.RLock()
        self._depth = 0  # open write transactions: >0 inside transaction()
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

    # -- transactions --------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes into one transaction: all of them are kept, or none.

        The runtime stores a finished step and its verdicts this way: one commit instead
        of one per call, which was most of a no-op step's cost (measured). Writes inside
        are savepoints, so a failed one that the caller catches leaves the others."""
        with self._write():
            yield

    @contextmanager
    def _write(self) -> Iterator[Database]:
        """One short write transaction; any failure rolls all of it back. Inside
        `transaction()` it is a savepoint of that transaction instead."""
        with self._lock:
            nested = self._depth > 0
            try:
                self.conn.execute("SAVEPOINT w" if nested else "BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise self._write_error(e) from e
            self._depth += 1
            try:
                yield self.db
                self.conn.execute("RELEASE w" if nested else "COMMIT")
            except BaseException as e:
                if nested:
                    self.conn.execute("ROLLBACK TO w")
                    self.conn.execute("RELEASE w")
                elif self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise self._write_error(e) from e
                raise
            finally:
                self._depth -= 1

    @contextmanager
    def _read(self) -> Iterator[Database]:
        """A read transaction, so a record assembled from several tables is one snapshot."""
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                yield self.db
            except sqlite3.Error as e:
                raise StoreError(f"could not read the memory store {self.path}: {e}") from e
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")

    def _require(self, table: str, key: str, value: str) -> None:
        if self.db.execute(f"SELECT 1 FROM {table} WHERE {key} = ?", [value]).fetchone():
            return
        noun = table.rstrip("s")
        hint = (
            "`stepgraph runs list` shows the ids"
            if table == "runs"
            else "`stepgraph runs conversations` lists them; `stepgraph chat` without -c "
            "starts a new one"
        )
        raise StoreError(f"no {noun} {value}; {hint}")

    # -- conversations -------------------------------------------------------------------

    def new_conversation(self, title: str | None = None) -> str:
        """Start a conversation; its messages become memory for the runs asked in it."""
        conversation_id = new_id("c")
        with self._write() as db:
            db["conversations"].insert({"id": conversation_id, "title": title, "created": _now()})
        return conversation_id

    def add_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        *,
        run_id: str | None = None,
        tokens: int | None = None,
    ) -> int:
        """Append a turn; `tokens` defaults to an estimate (len/4). Returns the message id."""
        with self._write() as db:
            self._require("conversations", "id", conversation_id)
            if run_id is not None:
                self._require("runs", "id", run_id)
            table = db["messages"].insert(
                {
                    "conversation_id": conversation_id,
                    "run_id": run_id,
                    "role": role,
                    "content": content,
                    "created": _now(),
                    "tokens": tokens if tokens is not None else estimate_tokens(content),
                }
            )
            return int(table.last_pk)

    def record_turn(self, run_id: str, answer: str) -> None:
        """Append a finished run's instruction and answer to its conversation, when it was
        asked in one: the memory the next run of that conversation reads."""
        with self._write() as db:
            row = db.execute(
                "SELECT conversation_id, instruction FROM runs WHERE id = ?", [run_id]
            ).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id} in {self.path}")
            if row[0] is not None:
                self.add_message(row[0], "user", row[1], run_id=run_id)
                self.add_message(row[0], "assistant", answer, run_id=run_id)

    def messages(self, conversation_id: str) -> list[MessageRecord]:
        """Every message of the conversation, oldest first."""
        with self._read() as db:
            self._require("conversations", "id", conversation_id)
            rows = db.query(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", [conversation_id]
            )
            return [MessageRecord(**row) for row in rows]

    def context(
        self, conversation_id: str, query: str, *, token_budget: int = 1500, recent: int = 6
    ) -> list[MessageRecord]:
        """Conversation memory for a new instruction, oldest first, within `token_budget`.

        The last `recent` turns come first (newest kept when the budget is short, and no gap
        is left between them); the rest of the budget goes to the older turns that match
        `query` best. A message costs its `tokens` (estimated as len/4 unless given).
        This is what the planner and the llm executor see of the past.
        """
        history = self.messages(conversation_id)
        chosen: list[MessageRecord] = []
        used = 0
        for message in reversed(history[-recent:] if recent > 0 else []):
            if used + message.tokens > token_budget:
                break
            chosen.append(message)
            used += message.tokens
        older_than = min((m.id for m in chosen), default=history[-1].id + 1 if history else 0)
        match = fts_query(query, any_word=True)
        if match:
            with self._read() as db:
                rows = db.query(
                    """SELECT m.* FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
                    WHERE messages_fts MATCH ? AND m.conversation_id = ? AND m.id < ?
                    ORDER BY messages_fts.rank LIMIT 100""",
                    [match, conversation_id, older_than],
                )
                for row in rows:
                    message = MessageRecord(**row)
                    if used + message.tokens <= token_budget:
                        chosen.append(message)
                        used += message.tokens
        return sorted(chosen, key=lambda m: m.id)

    def conversations(self, limit: int | None = None) -> list[ConversationRecord]:
        """Conversations, most recently active first."""
        with self._read() as db:
            rows = db.query(
                """SELECT c.id, c.title, c.created, count(m.id) AS message_count,
                       max(m.created) AS last_message
                FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id
                GROUP BY c.id
                -- times have millisecond resolution; within one millisecond a message is
                -- later than a bare creation, and rows inserted later are later
                ORDER BY coalesce(max(m.created), c.created) DESC, max(m.rowid) DESC,
                    c.rowid DESC
                LIMIT ?""",
                [-1 if limit is None else limit],
            )
            return [ConversationRecord(**row) for row in rows]

    # -- recording a run -----------------------------------------------------------------

    def start_run(
        self,
        instruction: str,
        *,
        conversation_id: str | None = None,
        model: str = "",
        planner: str = "",
        run_id: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> str:
        """Record a new run (status "running") and return its id."""
        run_id = run_id or new_id("r")
        with self._write() as db:
            if conversation_id is not None:
                self._require("conversations", "id", conversation_id)
            if db.execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchone():
                raise StoreError(f"a run {run_id} is already recorded; pick another run id")
            db["runs"].insert(
                {
                    "id": run_id,
                    "conversation_id": conversation_id,
                    "instruction": instruction,
                    "status": "running",
                    "model": model,
                    "planner": planner,
                    "created": _now(),
                    "meta": _dumps(meta or {}),
                }
            )
        return run_id

    def record_plan(self, run_id: str, plan: dict[str, Any], *, version: int | None = None) -> int:
        """Keep a plan version (1, 2, ... as the run is replanned); returns the version."""
        with self._write() as db:
            self._require("runs", "id", run_id)
            if version is None:
                (latest,) = db.execute(
                    "SELECT coalesce(max(version), 0) FROM plans WHERE run_id = ?", [run_id]
                ).fetchone()
                version = latest + 1
            elif db.execute(
                "SELECT 1 FROM plans WHERE run_id = ? AND version = ?", [run_id, version]
            ).fetchone():
                raise StoreError(f"plan version {version} of run {run_id} is already recorded")
            db["plans"].insert(
                {"run_id": run_id, "version": version, "plan": _dumps(plan), "created": _now()}
            )
        return version

    def record_step(self, run_id: str, step_id: str, **fields: Any) -> None:
        """Create or update a step with the given fields; fields not given are kept.

        Fields: plan_version, executor, instruction, args, depends_on, input, output, data
        (JSON values), status, attempts, error, started, finished (datetime, epoch seconds or
        ISO text), seconds, prompt_tokens, completion_tokens, model. A new step takes
        plan_version, executor, instruction, args and depends_on from the latest plan (or
        the given plan_version) where not given. Each time a step enters status "running"
        without an explicit `attempts`, its attempts count goes up by one, so retries count.
        """
        if unknown := sorted(set(fields) - STEP_FIELDS):
            raise TypeError(
                f"record_step got unknown fields {unknown}; known: {sorted(STEP_FIELDS)}"
            )
        values = {name: _column_value(name, value) for name, value in fields.items()}
        with self._write() as db:
            self._require("runs", "id", run_id)
            row = db.execute(
                "SELECT attempts FROM steps WHERE run_id = ? AND step_id = ?", [run_id, step_id]
            ).fetchone()
            if "attempts" not in values and values.get("status") == "running":
                values["attempts"] = (row[0] if row else 0) + 1
            if row is None:
                planned = self._planned_step(
                    run_id, step_id, values.get("plan_version"), need=_PLANNED - set(values)
                )
                row = {"run_id": run_id, "step_id": step_id, **planned, **values}
                db.execute(  # plain SQL: sqlite-utils' insert costs ~10 statements
                    f"INSERT INTO steps ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()),
                )
            elif values:
                assignments = ", ".join(f"{name} = :{name}" for name in values)
                db.execute(
                    f"UPDATE steps SET {assignments} WHERE run_id = :_run AND step_id = :_step",
                    {**values, "_run": run_id, "_step": step_id},
                )

    def _planned_step(
        self, run_id: str, step_id: str, version: int | None, *, need: set[str]
    ) -> dict[str, Any]:
        """Defaults for a new step row from its plan (the latest, unless `version` is given):
        plan_version, and the fields in `need` as planned. The plan's JSON is parsed only
        when a field is needed: on a 1,000-step plan that parse dominated each step's cost."""
        column = "plan" if need else "NULL"
        row = self.db.execute(
            f"SELECT version, {column} FROM plans WHERE run_id = ? AND version = coalesce(?, "
            "(SELECT max(version) FROM plans WHERE run_id = ?))",
            [run_id, version, run_id],
        ).fetchone()
        if row is None:
            return {}
        defaults: dict[str, Any] = {"plan_version": row[0]}
        if not need:
            return defaults
        for planned in _loads(row[1]).get("steps") or []:
            if isinstance(planned, dict) and planned.get("id") == step_id:
                for name in need:
                    if planned.get(name) is not None:
                        defaults[name] = _column_value(name, planned[name])
        return defaults

    def record_verdict(
        self,
        run_id: str,
        step_id: str | None,
        check: str,
        passed: bool | None,
        evidence: str | None = None,
    ) -> int:
        """Keep a verifier verdict. step_id None: the final answer; passed None: no verdict."""
        with self._write() as db:
            self._require("runs", "id", run_id)
            cursor = db.execute(
                "INSERT INTO verdicts (run_id, step_id, check_name, passed, evidence, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    step_id,
                    check,
                    None if passed is None else int(bool(passed)),
                    evidence,
                    _now(),
                ],
            )
            return int(cursor.lastrowid)

    def record_event(self, run_id: str, type: str, payload: dict[str, Any] | None = None) -> int:
        """Append an event to the run's log; returns its sequence number (1, 2, ...)."""
        return self.record_events(run_id, [(type, payload)])

    def record_events(self, run_id: str, events: list[tuple[str, dict[str, Any] | None]]) -> int:
        """Append several events in one transaction (the runtime's hot path); returns the
        last sequence number. Plain INSERTs: sqlite-utils' insert costs ~10 statements each."""
        with self._write() as db:
            self._require("runs", "id", run_id)
            (seq,) = db.execute(
                "SELECT coalesce(max(seq), 0) FROM events WHERE run_id = ?", [run_id]
            ).fetchone()
            now = _now()
            rows = [
                (run_id, seq + i, type, _dumps(payload or {}), now)
                for i, (type, payload) in enumerate(events, start=1)
            ]
            db.conn.executemany(
                "INSERT INTO events (run_id, seq, type, payload, created) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return int(seq) + len(events)

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        answer: str | None = None,
        error: str | None = None,
        meta: dict[str, Any] | None = None,
        **totals: Any,
    ) -> None:
        """Close a run with its status and answer.

        `totals` are seconds, prompt_tokens and completion_tokens. Left out, seconds is the
        time since start_run and the token counts are the sums over the run's steps.
        `meta` is merged into the run's meta.
        """
        if unknown := sorted(set(totals) - RUN_TOTALS):
            raise TypeError(f"finish_run got unknown totals {unknown}; known: {sorted(RUN_TOTALS)}")
        finished = datetime.now(UTC)
        with self._write() as db:
            self._require("runs", "id", run_id)
            created, old_meta, step_prompt, step_completion = db.execute(
                """SELECT created, meta,
                    (SELECT sum(prompt_tokens) FROM steps WHERE run_id = runs.id),
                    (SELECT sum(completion_tokens) FROM steps WHERE run_id = runs.id)
                FROM runs WHERE id = ?""",
                [run_id],
            ).fetchone()
            seconds = (finished - datetime.fromisoformat(created)).total_seconds()
            db.execute(
                """UPDATE runs SET status = ?, answer = ?, error = ?, finished = ?, seconds = ?,
                    prompt_tokens = ?, completion_tokens = ?, meta = ? WHERE id = ?""",
                [
                    status,
                    answer,
                    error,
                    finished.isoformat(timespec="milliseconds"),
                    totals.get("seconds", round(seconds, 3)),
                    totals.get("prompt_tokens", step_prompt),
                    totals.get("completion_tokens", step_completion),
                    _dumps({**_loads(old_meta), **(meta or {})}),
                    run_id,
                ],
            )

    # -- reading -------------------------------------------------------------------------

    def runs(self, limit: int = 20, status: str | None = None) -> list[RunSummary]:
        """The newest runs first, optionally only those with `status`."""
        where, params = ("WHERE status = ?", [status]) if status is not None else ("", [])
        with self._read() as db:
            rows = db.query(
                f"""SELECT runs.*, (SELECT count(*) FROM steps WHERE run_id = runs.id)
                    AS step_count FROM runs {where} ORDER BY num DESC LIMIT ?""",
                [*params, limit],
            )
            return [_run_summary(row) for row in rows]

    def resolve_run_id(self, run_id: str) -> str:
        """The full id of the run that `run_id` names, exactly or as a unique prefix."""
        with self._read() as db:
            if db.execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchone():
                return run_id
            rows = db.execute(
                "SELECT id FROM runs WHERE substr(id, 1, length(?)) = ? ORDER BY num LIMIT 6",
                [run_id, run_id],
            )
            matches = [row[0] for row in rows] if run_id else []
        if not matches:
            raise StoreError(f"no run {run_id}; `stepgraph runs list` shows the ids")
        if len(matches) > 1:
            shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise StoreError(f"run id {run_id} is ambiguous ({shown}); give more characters")
        return matches[0]

    def run(self, run_id: str) -> RunRecord:
        """One run with its plans, steps, verdicts and events (an id or a unique id prefix)."""
        run_id = self.resolve_run_id(run_id)
        with self._read() as db:
            (row,) = db.query(
                """SELECT runs.*, (SELECT count(*) FROM steps WHERE run_id = runs.id)
                    AS step_count FROM runs WHERE id = ?""",
                [run_id],
            )
            plans = [
                PlanRecord(**{**r, "plan": _loads(r["plan"])})
                for r in db.query("SELECT * FROM plans WHERE run_id = ? ORDER BY version", [run_id])
            ]
            steps = [
                _step_record(r)
                for r in db.query("SELECT * FROM steps WHERE run_id = ? ORDER BY id", [run_id])
            ]
            verdicts = [
                _verdict_record(r)
                for r in db.query("SELECT * FROM verdicts WHERE run_id = ? ORDER BY id", [run_id])
            ]
            events = [
                EventRecord(**{**r, "payload": _loads(r["payload"])})
                for r in db.query(
                    "SELECT run_id, seq, type, payload, created FROM events "
                    "WHERE run_id = ? ORDER BY seq",
                    [run_id],
                )
            ]
        if plans:
            order = {
                s.get("id"): i
                for i, s in enumerate(plans[-1].plan.get("steps") or [])
                if isinstance(s, dict)
            }
            steps.sort(key=lambda s: order.get(s.step_id, len(order)))  # stable: ties keep id
        summary = _run_summary(row)
        return RunRecord(
            **summary.model_dump(), plans=plans, steps=steps, verdicts=verdicts, events=events
        )

    def search(self, query: str, limit: int = 20) -> list[SearchHit]:
        """Full-text search over messages, step instructions and outputs, and runs.

        Every word of `query` must match (stemmed); FTS syntax in it is taken literally.
        Best matches first.
        """
        match = fts_query(query)
        if not match:
            return []
        hits: list[SearchHit] = []
        with self._read() as db:
            for kind, fts, join, columns in SEARCH_SOURCES:
                sql = f"""SELECT '{kind}' AS kind, {columns},
                    snippet({fts}, -1, '«', '»', '…', 16) AS snippet, {fts}.rank AS score
                    FROM {fts} JOIN {join} WHERE {fts} MATCH ? ORDER BY {fts}.rank LIMIT ?"""
                hits.extend(SearchHit(**row) for row in db.query(sql, [match, limit]))
        return sorted(hits, key=lambda hit: hit.score)[:limit]

    # -- export --------------------------------------------------------------------------

    def export_jsonl(self, run_ids: Iterable[str] | None, fp: IO[str]) -> int:
        """Write one `RunRecord` JSON per line (None: every run, oldest first); returns count.

        Read a line back with `RunRecord.model_validate_json(line)`.
        """
        if run_ids is None:
            with self._read() as db:
                run_ids = [row[0] for row in db.execute("SELECT id FROM runs ORDER BY num")]
        count = 0
        for run_id in run_ids:
            fp.write(self.run(run_id).model_dump_json() + "\n")
            count += 1
        return count

    def export_html(self, run_id: str) -> str:
        """One self-contained HTML page for a run: header, plan graph and table, steps."""
        return render_run_html(self.run(run_id))

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"


def _column_value(name: str, value: Any) -> Any:
    if name in JSON_STEP_FIELDS:
        return _dumps(value)
    if name in TIME_STEP_FIELDS:
        return _timestamp(value)
    return value


def _run_summary(row: dict[str, Any]) -> RunSummary:
    row = {key: value for key, value in row.items() if key != "num"}
    return RunSummary(**{**row, "meta": _loads(row["meta"]) or {}})


def _step_record(row: dict[str, Any]) -> StepRecord:
    row = {key: value for key, value in row.items() if key != "id"}
    for name in JSON_STEP_FIELDS:
        row[name] = _loads(row[name])
    return StepRecord(**row)


def _verdict_record(row: dict[str, Any]) -> VerdictRecord:
    row = dict(row)
    row["check"] = row.pop("check_name")
    if row["passed"] is not None:
        row["passed"] = bool(row["passed"])
    return VerdictRecord(**row)
