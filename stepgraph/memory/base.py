"""What the two memory stores share: every public method, written once in SQL that SQLite and
PostgreSQL both accept, over a few hooks each store fills in (run a statement, say whether a
transaction is open, turn a driver error into a `StoreError`).

Why one base class rather than two copies: the stores must behave the same (the conformance
suite in tests/memory runs every test against both), and the logic worth testing (step
upserts, attempts, plan defaults, totals, the conversation memory budget) is the same code on
both. What differs is only how each database is opened, migrated and searched.

SQL here uses `?` placeholders; the PostgreSQL store turns them into psycopg's `%s`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any, Self

from stepgraph.errors import StoreError
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

# Columns record_step() accepts (those of StepRecord); the JSON ones are stored as JSON text.
STEP_FIELDS = frozenset(StepRecord.model_fields) - {"run_id", "step_id"}
JSON_STEP_FIELDS = frozenset({"args", "depends_on", "input", "data"})
TIME_STEP_FIELDS = frozenset({"started", "finished"})
RUN_TOTALS = frozenset({"seconds", "prompt_tokens", "completion_tokens"})
_PLANNED = {"executor", "instruction", "args", "depends_on"}


def new_id(prefix: str) -> str:
    """A short id that sorts by creation time: prefix, 12 hex digits of ms, 8 random hex."""
    return f"{prefix}{time.time_ns() // 1_000_000:012x}{secrets.token_hex(4)}"


def estimate_tokens(text: str) -> int:
    """About four characters a token: good enough to keep a prompt under a budget."""
    return max(1, (len(text) + 3) // 4)


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


class MemoryStore(ABC):
    """The memory store's interface and behaviour, on SQLite (`Store`) or PostgreSQL
    (`stepgraph.memory.postgres.PostgresStore`); `open_store` picks one from a path or URL.

    One connection per store guarded by a lock, so the runtime may record from several
    threads (parallel steps) through the same store. Each write method is one short
    transaction; `transaction()` groups several.
    """

    location: str
    """The store for messages: a file path, or a URL without its password."""

    # SQL that differs between the databases (set by each store)
    _BEGIN_WRITE = "BEGIN"
    _BEGIN_READ = "BEGIN"
    _LOCK_RUN = ""
    """Appended to the read of the run a write touches: PostgreSQL locks the row, so two
    processes number one run's events and plan versions in turn (SQLite locks the file)."""
    _CONVERSATION_ORDER = "c.rowid"
    """What orders conversations created in the same millisecond: the order of insertion."""
    _NOW_S = "((julianday('now') - 2440587.5) * 86400.0)"
    """The database's clock in epoch seconds. Leases are set and compared on this one clock,
    so workers on machines whose clocks differ agree on when a lease ends."""
    _SKIP_LOCKED = ""
    """Ends a claim's read of the runs to claim. PostgreSQL: ` FOR UPDATE SKIP LOCKED`, so
    workers claiming at the same moment take different runs instead of waiting on each
    other; SQLite's file lock already makes them take turns."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # open write transactions: >0 inside transaction()

    # -- what each store provides ------------------------------------------------------------

    @abstractmethod
    def _execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """Run one statement; a cursor with fetchone() and fetchall()."""

    @abstractmethod
    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None: ...

    @abstractmethod
    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Run one query; its rows as dicts of column name to value."""

    @abstractmethod
    def _in_transaction(self) -> bool: ...

    @abstractmethod
    def _is_db_error(self, e: BaseException) -> bool:
        """Whether `e` came from the database driver (and needs a StoreError to explain it)."""

    @abstractmethod
    def _write_error(self, e: Exception) -> StoreError: ...

    @abstractmethod
    def _older_matches(
        self, conversation_id: str, query: str, older_than: int
    ) -> list[dict[str, Any]]:
        """Messages of the conversation older than `older_than` that match any word of
        `query`, best first (at most 100): what context() fills its budget from."""

    @abstractmethod
    def search(self, query: str, limit: int = 20) -> list[SearchHit]:
        """Full-text search over messages, step instructions and outputs, and runs.

        Every word of `query` must match (stemmed); search syntax in it is taken literally.
        Best matches first (lowest score).
        """

    @abstractmethod
    def _close(self) -> None: ...

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
    def _write(self) -> Iterator[None]:
        """One short write transaction; any failure rolls all of it back. Inside
        `transaction()` it is a savepoint of that transaction instead."""
        with self._lock:
            nested = self._depth > 0
            try:
                self._execute("SAVEPOINT w" if nested else self._BEGIN_WRITE)
            except Exception as e:
                if self._is_db_error(e):
                    raise self._write_error(e) from e
                raise
            self._depth += 1
            try:
                yield
                self._execute("RELEASE w" if nested else "COMMIT")
            except BaseException as e:
                self._roll_back(nested)
                if isinstance(e, Exception) and self._is_db_error(e):
                    raise self._write_error(e) from e
                raise
            finally:
                self._depth -= 1

    def _roll_back(self, nested: bool) -> None:
        try:
            if nested:
                self._execute("ROLLBACK TO w")
                self._execute("RELEASE w")
            elif self._in_transaction():
                self._execute("ROLLBACK")
        except Exception as e:
            # a lost connection cannot roll back, and the server drops the transaction
            # anyway; the error that got us here is the one to report
            if not self._is_db_error(e):
                raise

    @contextmanager
    def _read(self) -> Iterator[None]:
        """A read transaction, so a record assembled from several tables is one snapshot."""
        with self._lock:
            try:
                self._execute(self._BEGIN_READ)
            except Exception as e:
                if self._is_db_error(e):
                    raise self._read_error(e) from e
                raise
            try:
                yield
            except Exception as e:
                if self._is_db_error(e):
                    raise self._read_error(e) from e
                raise
            finally:
                self._end_read()

    def _end_read(self) -> None:
        if not self._in_transaction():
            return
        try:
            self._execute("COMMIT")
        except Exception as e:
            # nothing was written; a connection lost since is reported by the next call
            if not self._is_db_error(e):
                raise

    def _read_error(self, e: Exception) -> StoreError:
        return StoreError(f"could not read the memory store {self.location}: {e}")

    def _require(self, table: str, key: str, value: str) -> None:
        lock = self._LOCK_RUN if table == "runs" and self._depth > 0 else ""
        if self._execute(f"SELECT 1 FROM {table} WHERE {key} = ?{lock}", [value]).fetchone():
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
        with self._write():
            self._execute(
                "INSERT INTO conversations (id, title, created) VALUES (?, ?, ?)",
                [conversation_id, title, _now()],
            )
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
        with self._write():
            self._require("conversations", "id", conversation_id)
            if run_id is not None:
                self._require("runs", "id", run_id)
            rows = self._execute(
                "INSERT INTO messages (conversation_id, run_id, role, content, created, tokens) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                [
                    conversation_id,
                    run_id,
                    role,
                    content,
                    _now(),
                    tokens if tokens is not None else estimate_tokens(content),
                ],
            ).fetchall()
            return int(rows[0][0])

    def record_turn(self, run_id: str, answer: str) -> None:
        """Append a finished run's instruction and answer to its conversation, when it was
        asked in one: the memory the next run of that conversation reads."""
        with self._write():
            row = self._execute(
                "SELECT conversation_id, instruction FROM runs WHERE id = ?", [run_id]
            ).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id} in {self.location}")
            if row[0] is not None:
                self.add_message(row[0], "user", row[1], run_id=run_id)
                self.add_message(row[0], "assistant", answer, run_id=run_id)

    def messages(self, conversation_id: str) -> list[MessageRecord]:
        """Every message of the conversation, oldest first."""
        with self._read():
            self._require("conversations", "id", conversation_id)
            rows = self._query(
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
        with self._read():
            for row in self._older_matches(conversation_id, query, older_than):
                message = MessageRecord(**row)
                if used + message.tokens <= token_budget:
                    chosen.append(message)
                    used += message.tokens
        return sorted(chosen, key=lambda m: m.id)

    def conversations(self, limit: int | None = None) -> list[ConversationRecord]:
        """Conversations, most recently active first."""
        with self._read():
            rows = self._query(
                f"""SELECT c.id, c.title, c.created, count(m.id) AS message_count,
                       max(m.created) AS last_message
                FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id
                GROUP BY c.id
                -- times have millisecond resolution; within one millisecond a message is
                -- later than a bare creation, and rows inserted later are later
                ORDER BY coalesce(max(m.created), c.created) DESC, coalesce(max(m.id), 0) DESC,
                    {self._CONVERSATION_ORDER} DESC"""
                + (" LIMIT ?" if limit is not None else ""),
                [] if limit is None else [limit],
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
        return self._new_run(
            instruction,
            "running",
            conversation_id=conversation_id,
            model=model,
            planner=planner,
            run_id=run_id,
            meta=meta,
        )

    def _new_run(
        self,
        instruction: str,
        status: str,
        *,
        conversation_id: str | None,
        model: str,
        planner: str,
        run_id: str | None,
        meta: dict[str, Any] | None,
    ) -> str:
        run_id = run_id or new_id("r")
        with self._write():
            if conversation_id is not None:
                self._require("conversations", "id", conversation_id)
            if self._execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchone():
                raise StoreError(f"a run {run_id} is already recorded; pick another run id")
            self._execute(
                "INSERT INTO runs (id, conversation_id, instruction, status, model, planner, "
                "created, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    conversation_id,
                    instruction,
                    status,
                    model,
                    planner,
                    _now(),
                    _dumps(meta or {}),
                ],
            )
        return run_id

    def record_plan(self, run_id: str, plan: dict[str, Any], *, version: int | None = None) -> int:
        """Keep a plan version (1, 2, ... as the run is replanned); returns the version."""
        with self._write():
            self._require("runs", "id", run_id)
            if version is None:
                (latest,) = self._execute(
                    "SELECT coalesce(max(version), 0) FROM plans WHERE run_id = ?", [run_id]
                ).fetchone()
                version = int(latest) + 1
            elif self._execute(
                "SELECT 1 FROM plans WHERE run_id = ? AND version = ?", [run_id, version]
            ).fetchone():
                raise StoreError(f"plan version {version} of run {run_id} is already recorded")
            self._execute(
                "INSERT INTO plans (run_id, version, plan, created) VALUES (?, ?, ?, ?)",
                [run_id, version, _dumps(plan), _now()],
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
        with self._write():
            self._require("runs", "id", run_id)
            row = self._execute(
                "SELECT attempts FROM steps WHERE run_id = ? AND step_id = ?", [run_id, step_id]
            ).fetchone()
            if "attempts" not in values and values.get("status") == "running":
                values["attempts"] = (row[0] if row else 0) + 1
            if row is None:
                planned = self._planned_step(
                    run_id, step_id, values.get("plan_version"), need=_PLANNED - set(values)
                )
                new = {"run_id": run_id, "step_id": step_id, **planned, **values}
                self._execute(
                    f"INSERT INTO steps ({', '.join(new)}) VALUES ({', '.join('?' * len(new))})",
                    list(new.values()),
                )
            elif values:
                assignments = ", ".join(f"{name} = ?" for name in values)
                self._execute(
                    f"UPDATE steps SET {assignments} WHERE run_id = ? AND step_id = ?",
                    [*values.values(), run_id, step_id],
                )

    def _planned_step(
        self, run_id: str, step_id: str, version: int | None, *, need: set[str]
    ) -> dict[str, Any]:
        """Defaults for a new step row from its plan (the latest, unless `version` is given):
        plan_version, and the fields in `need` as planned. The plan's JSON is parsed only
        when a field is needed: on a 1,000-step plan that parse dominated each step's cost."""
        column = "plan" if need else "NULL"
        row = self._execute(
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
        with self._write():
            self._require("runs", "id", run_id)
            rows = self._execute(
                "INSERT INTO verdicts (run_id, step_id, check_name, passed, evidence, created) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                [
                    run_id,
                    step_id,
                    check,
                    None if passed is None else int(bool(passed)),
                    evidence,
                    _now(),
                ],
            ).fetchall()
            return int(rows[0][0])

    def record_event(self, run_id: str, type: str, payload: dict[str, Any] | None = None) -> int:
        """Append an event to the run's log; returns its sequence number (1, 2, ...)."""
        return self.record_events(run_id, [(type, payload)])

    def record_events(self, run_id: str, events: list[tuple[str, dict[str, Any] | None]]) -> int:
        """Append several events in one transaction (the runtime's hot path); returns the
        last sequence number."""
        with self._write():
            self._require("runs", "id", run_id)
            (seq,) = self._execute(
                "SELECT coalesce(max(seq), 0) FROM events WHERE run_id = ?", [run_id]
            ).fetchone()
            now = _now()
            rows = [
                (run_id, seq + i, type, _dumps(payload or {}), now)
                for i, (type, payload) in enumerate(events, start=1)
            ]
            self._executemany(
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
        with self._write():
            self._require("runs", "id", run_id)
            created, old_meta, step_prompt, step_completion = self._execute(
                """SELECT created, meta,
                    (SELECT sum(prompt_tokens) FROM steps WHERE run_id = runs.id),
                    (SELECT sum(completion_tokens) FROM steps WHERE run_id = runs.id)
                FROM runs WHERE id = ?""",
                [run_id],
            ).fetchone()
            seconds = (finished - datetime.fromisoformat(created)).total_seconds()
            self._execute(
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

    # -- submitted runs and the workers' claims ------------------------------------------

    def submit_run(
        self,
        instruction: str,
        *,
        conversation_id: str | None = None,
        model: str = "",
        planner: str = "",
        meta: dict[str, Any] | None = None,
    ) -> str:
        """Record a run for a worker to run (status "submitted"); its id. Nothing runs it
        until a worker claims it (`claim_runs`)."""
        return self._new_run(
            instruction,
            "submitted",
            conversation_id=conversation_id,
            model=model,
            planner=planner,
            run_id=None,
            meta=meta,
        )

    def claim_runs(
        self,
        worker: str,
        limit: int,
        *,
        lease_s: float,
        model: str = "",
        planner: str = "",
        max_claims: int | None = None,
    ) -> list[str]:
        """Claim up to `limit` runs for `worker`, oldest first, and return their ids: runs
        submitted, and runs whose worker's lease lapsed (a worker that died, or lost the
        database). Each becomes "running", leased to `worker` for `lease_s` seconds of the
        database's clock. `model` and `planner` fill those fields where the submitter left
        them empty.

        A lapsed run already claimed `max_claims` times is failed instead: a run that takes
        down every worker that runs it must not take down all of them in turn.
        """
        now = self._NOW_S
        with self._write():
            if max_claims is not None:
                self._execute(
                    f"""UPDATE runs SET status = 'failed', finished = ?, error = ?
                    WHERE status = 'running' AND lease_until < {now} AND claims >= ?""",
                    [
                        _now(),
                        f"given up after {max_claims} claims: each worker that ran it stopped "
                        "before it finished (see the workers' logs)",
                        max_claims,
                    ],
                )
            rows = self._execute(
                f"""UPDATE runs SET status = 'running', claimed_by = ?,
                    lease_until = {now} + ?, claims = claims + 1,
                    model = coalesce(nullif(model, ''), ?),
                    planner = coalesce(nullif(planner, ''), ?)
                WHERE num IN (
                    SELECT num FROM runs
                    WHERE status = 'submitted' OR (status = 'running' AND lease_until < {now})
                    ORDER BY num LIMIT ?{self._SKIP_LOCKED})
                RETURNING id, num""",
                [worker, lease_s, model, planner, limit],
            ).fetchall()
        return [row[0] for row in sorted(rows, key=lambda row: row[1])]

    def renew_claims(self, worker: str, run_ids: list[str], *, lease_s: float) -> list[str]:
        """Extend `worker`'s lease on `run_ids` to `lease_s` seconds from now; the ids it
        still holds. A run missing from the answer is no longer the worker's: its lease
        lapsed and another worker claimed it."""
        if not run_ids:
            return []
        marks = ", ".join("?" * len(run_ids))
        with self._write():
            rows = self._execute(
                f"""UPDATE runs SET lease_until = {self._NOW_S} + ?
                WHERE claimed_by = ? AND id IN ({marks}) RETURNING id""",
                [lease_s, worker, *run_ids],
            ).fetchall()
        return [row[0] for row in rows]

    def release_runs(self, worker: str, run_ids: list[str]) -> list[str]:
        """End `worker`'s lease on those of `run_ids` it holds and has not finished, so any
        worker may claim them at once (and resume them); the ids released."""
        if not run_ids:
            return []
        marks = ", ".join("?" * len(run_ids))
        with self._write():
            rows = self._execute(
                f"""UPDATE runs SET lease_until = 0
                WHERE claimed_by = ? AND status = 'running' AND id IN ({marks}) RETURNING id""",
                [worker, *run_ids],
            ).fetchall()
        return [row[0] for row in rows]

    def reconnect(self) -> None:
        """Open a new connection in place of one the server dropped (PostgreSQL; a SQLite
        file needs none). Call it with no write in progress."""
        return None

    # -- reading -------------------------------------------------------------------------

    def runs(self, limit: int = 20, status: str | None = None) -> list[RunSummary]:
        """The newest runs first, optionally only those with `status`."""
        where, params = ("WHERE status = ?", [status]) if status is not None else ("", [])
        with self._read():
            rows = self._query(
                f"""SELECT runs.*, (SELECT count(*) FROM steps WHERE run_id = runs.id)
                    AS step_count FROM runs {where} ORDER BY num DESC LIMIT ?""",
                [*params, limit],
            )
            return [_run_summary(row) for row in rows]

    def resolve_run_id(self, run_id: str) -> str:
        """The full id of the run that `run_id` names, exactly or as a unique prefix."""
        with self._read():
            if self._execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchone():
                return run_id
            rows = self._execute(
                "SELECT id FROM runs WHERE substr(id, 1, length(CAST(? AS TEXT))) = ? "
                "ORDER BY num LIMIT 6",
                [run_id, run_id],
            ).fetchall()
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
        with self._read():
            (row,) = self._query(
                """SELECT runs.*, (SELECT count(*) FROM steps WHERE run_id = runs.id)
                    AS step_count FROM runs WHERE id = ?""",
                [run_id],
            )
            plans = [
                PlanRecord(**{**r, "plan": _loads(r["plan"])})
                for r in self._query(
                    "SELECT * FROM plans WHERE run_id = ? ORDER BY version", [run_id]
                )
            ]
            steps = [
                _step_record(r)
                for r in self._query("SELECT * FROM steps WHERE run_id = ? ORDER BY id", [run_id])
            ]
            verdicts = [
                _verdict_record(r)
                for r in self._query(
                    "SELECT * FROM verdicts WHERE run_id = ? ORDER BY id", [run_id]
                )
            ]
            events = [
                EventRecord(**{**r, "payload": _loads(r["payload"])})
                for r in self._query(
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

    # -- export --------------------------------------------------------------------------

    def export_jsonl(self, run_ids: Iterable[str] | None, fp: IO[str]) -> int:
        """Write one `RunRecord` JSON per line (None: every run, oldest first); returns count.

        Read a line back with `RunRecord.model_validate_json(line)`.
        """
        if run_ids is None:
            with self._read():
                rows = self._execute("SELECT id FROM runs ORDER BY num").fetchall()
                run_ids = [row[0] for row in rows]
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
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _column_value(name: str, value: Any) -> Any:
    if name in JSON_STEP_FIELDS:
        return _dumps(value)
    if name in TIME_STEP_FIELDS:
        return _timestamp(value)
    return value


def _run_summary(row: dict[str, Any]) -> RunSummary:
    row = {key: value for key, value in row.items() if key not in ("num", "lease_until")}
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
