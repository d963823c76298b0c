"""The memory store on PostgreSQL: what a team shares when one SQLite file on one machine is
not enough. Same interface, records, ids and timestamps as the SQLite `Store` (both are a
`MemoryStore`, base.py holds what they share); install it with `pip install
'stepgraph[postgres]'` and open it with `open_store("postgresql://...")`.

Why it is built this way:
- psycopg 3, one connection per store in autocommit mode, guarded by a lock like the
  SQLite store's: the base class issues BEGIN / SAVEPOINT / COMMIT itself, so one write
  method is one transaction on both databases and `transaction()` nests the same way.
- A write locks the run it touches (`SELECT ... FOR UPDATE`): two processes appending to
  one run number its events and plan versions in turn, as SQLite's file lock makes them.
- Reads are one REPEATABLE READ snapshot, so a run assembled from several tables is whole.
- Full-text search is PostgreSQL's (GIN indexes over `to_tsvector('english', ...)`) where
  SQLite has FTS5: every word must match, stemmed; best first, as a score where lower is
  better (minus `ts_rank`), like FTS5's bm25 rank.
- A server that does not answer is tried a few times (tenacity) before the error; wrong
  credentials, another program's tables and a newer stepgraph's schema are refused at once
  with what to do, and nothing is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import suppress
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from stepgraph.errors import StoreError
from stepgraph.memory import postgres_migrations
from stepgraph.memory.base import MemoryStore
from stepgraph.memory.postgres_migrations import DOCUMENTS, TEXT_SEARCH, document
from stepgraph.memory.records import SearchHit

CONNECT_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 5
HEADLINE = "StartSel=«, StopSel=», MaxWords=16, MinWords=5"

# What search() looks in: (kind, table, alias, FROM, the hit's columns, the tie-breaker).
SEARCH_SOURCES = (
    (
        "message",
        "messages",
        "m",
        "messages m",
        "m.run_id, m.conversation_id, NULL AS step_id, m.id AS message_id, m.created",
        "m.id",
    ),
    (
        "step",
        "steps",
        "s",
        "steps s JOIN runs r ON r.id = s.run_id",
        "s.run_id, r.conversation_id, s.step_id, NULL AS message_id, "
        "coalesce(s.finished, s.started, r.created) AS created",
        "s.id",
    ),
    (
        "run",
        "runs",
        "r",
        "runs r",
        "r.id AS run_id, r.conversation_id, NULL AS step_id, NULL AS message_id, r.created",
        "r.num",
    ),
)

_CREDENTIALS = re.compile(
    r'password authentication failed|authentication failed|no password supplied|role "[^"]*" '
    r"does not exist|pg_hba\.conf"
)
_NO_DATABASE = re.compile(r'database "([^"]*)" does not exist')


def search_text(text: str, *, any_word: bool = False) -> str:
    """Free text as `websearch_to_tsquery` input that searches for its words and nothing
    else: only runs of word characters are kept, and the word "or" (an operator there, and
    a stop word anyway) is dropped. Returns "" when the text has no words."""
    words = [word for word in re.findall(r"\w+", text) if word.lower() != "or"]
    return (" or " if any_word else " ").join(words)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    url = re.sub(r"^(\w+://[^:@/?]*):[^@/?]*@", r"\1@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


@lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """The base class's `?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().removeprefix("connection failed: ")
    return text.splitlines()[0].strip() if text else type(e).__name__


class PostgresStore(MemoryStore):
    """The memory store in a PostgreSQL database. Opening it applies pending migrations.

    `url` is a libpq URL (`postgresql://user:password@host:5432/dbname`); the store keeps
    its tables in the URL's schema (`?options=-csearch_path%3Dname`, else `public`).
    `create=False` (for commands that only read) refuses a database without a store.
    """

    _BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
    _LOCK_RUN = " FOR UPDATE"
    _CONVERSATION_ORDER = "c.num"
    _NOW_S = "extract(epoch FROM clock_timestamp())::double precision"
    _SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, create: bool = True) -> None:
        super().__init__()
        self._url = url
        self.location = redact(url)
        self.conn = self._connect()
        try:
            postgres_migrations.migrate(self.conn, self.location, create=create)
        except StoreError:
            self.conn.close()
            raise
        except psycopg.Error as e:
            self.conn.close()
            raise self._open_error(e) from e

    @property
    def url(self) -> str:
        """The URL the store connects with, password included (for the checkpointer, which
        keeps LangGraph's checkpoints in the same database): never show it; `location` is
        the same URL without its password."""
        return self._url

    def reconnect(self) -> None:
        """Open a new connection in place of one the server dropped (tried a few times, as
        when opening); a StoreError that says why when the server still does not answer."""
        with self._lock:
            with suppress(psycopg.Error):  # it is already gone; that is why we are here
                self.conn.close()
            self.conn = self._connect()

    # -- opening -----------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        """Connect, trying again briefly while the server does not answer (it may be
        starting); a refusal (credentials, no such database) is final at once."""
        try:
            for attempt in Retrying(
                retry=retry_if_exception(lambda e: self._connect_problem(e) == "unreachable"),
                stop=stop_after_attempt(CONNECT_ATTEMPTS),
                wait=wait_exponential(multiplier=0.2, max=2),
                reraise=True,
            ):
                with attempt:
                    return psycopg.connect(
                        self._url,
                        autocommit=True,  # the base class begins and ends transactions
                        connect_timeout=CONNECT_TIMEOUT_S,
                        application_name="stepgraph",
                    )
        except psycopg.Error as e:
            raise self._connect_error(e) from e
        raise AssertionError("unreachable: Retrying returns or raises")

    @staticmethod
    def _connect_problem(e: BaseException) -> str:
        if not isinstance(e, psycopg.Error):
            return "other"
        if isinstance(e, psycopg.ProgrammingError):
            return "url"
        text = str(e)
        if _CREDENTIALS.search(text):
            return "credentials"
        if _NO_DATABASE.search(text):
            return "database"
        return "unreachable"

    def _connect_error(self, e: psycopg.Error) -> StoreError:
        where, why = self.location, _first_line(e)
        problem = self._connect_problem(e)
        if problem == "url":
            return StoreError(
                f"{where} is not a PostgreSQL URL psycopg can use ({why}): write it as "
                "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
            )
        if problem == "credentials":
            return StoreError(
                f"the PostgreSQL server of {where} refused the user or password ({why}): "
                "fix the user and password in the URL (postgresql://USER:PASSWORD@HOST/DB). "
                "Nothing was written."
            )
        if problem == "database":
            (name,) = _NO_DATABASE.search(str(e)).groups()  # type: ignore[union-attr]
            return StoreError(
                f"the PostgreSQL server of {where} has no database {name}: create it "
                f"(createdb {name}) or fix the database name in the URL. Nothing was written."
            )
        return StoreError(
            f"cannot reach the PostgreSQL server of {where} ({why}; tried {CONNECT_ATTEMPTS} "
            "times): start the server, or fix the host and port in the URL. Nothing was written."
        )

    def _open_error(self, e: psycopg.Error) -> StoreError:
        why = _first_line(e)
        if isinstance(e, psycopg.errors.InsufficientPrivilege):
            return StoreError(
                f"the user of {self.location} may not create the store's tables ({why}): use a "
                "database or schema that user owns, or GRANT CREATE on it. Nothing was written."
            )
        if isinstance(e, psycopg.OperationalError):
            return self._connect_error(e)
        return StoreError(f"cannot open the memory store {self.location}: {why}")

    def _write_error(self, e: Exception) -> StoreError:
        where, why = self.location, _first_line(e)
        kept = "nothing from this write was kept; what was stored before is intact"
        if isinstance(e, psycopg.errors.DiskFull):
            return StoreError(
                f"the PostgreSQL server of {where} is out of disk ({why}): {kept}. Free space "
                "on the server and try again"
            )
        if isinstance(
            e, psycopg.errors.InsufficientPrivilege | psycopg.errors.ReadOnlySqlTransaction
        ):
            return StoreError(
                f"cannot write to the memory store {where} ({why}): {kept}. Give the user "
                "write access (GRANT INSERT, UPDATE), or connect to the primary server"
            )
        if isinstance(e, psycopg.OperationalError):
            return StoreError(
                f"lost the connection to the memory store {where} ({why}): {kept}. Check that "
                "the server is up, then open the store again"
            )
        return StoreError(f"could not write to the memory store {where}: {why}; {kept}")

    def _read_error(self, e: Exception) -> StoreError:
        hint = (
            ": check that the server is up, then open the store again"
            if isinstance(e, psycopg.OperationalError)
            else ""
        )
        return StoreError(
            f"could not read the memory store {self.location} ({_first_line(e)}){hint}"
        )

    # -- what the base class asks of a store -------------------------------------------

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> psycopg.Cursor:
        return self.conn.execute(_placeholders(sql), list(params))

    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(_placeholders(sql), rows)

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self.conn.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(_placeholders(sql), list(params)).fetchall()

    def _in_transaction(self) -> bool:
        return self.conn.info.transaction_status != TransactionStatus.IDLE

    def _is_db_error(self, e: BaseException) -> bool:
        return isinstance(e, psycopg.Error)

    def _close(self) -> None:
        self.conn.close()

    def _older_matches(
        self, conversation_id: str, query: str, older_than: int
    ) -> list[dict[str, Any]]:
        text = search_text(query, any_word=True)
        if not text:
            return []
        vector = document("messages", "m")
        return self._query(
            f"""SELECT m.* FROM messages m, websearch_to_tsquery('{TEXT_SEARCH}', ?) AS q
            WHERE {vector} @@ q AND m.conversation_id = ? AND m.id < ?
            ORDER BY ts_rank({vector}, q, 1) DESC, m.id LIMIT 100""",
            [text, conversation_id, older_than],
        )

    def search(self, query: str, limit: int = 20) -> list[SearchHit]:
        """Full-text search over messages, step instructions and outputs, and runs.

        Every word of `query` must match (stemmed); search syntax in it is taken literally.
        Best matches first: the score is minus PostgreSQL's `ts_rank`, lower is better.
        """
        text = search_text(query)
        if not text:
            return []
        hits: list[SearchHit] = []
        with self._read():
            for kind, table, alias, tables, columns, order in SEARCH_SOURCES:
                vector = document(table, alias)
                body = DOCUMENTS[table].format(t=f"{alias}.")
                sql = f"""SELECT '{kind}' AS kind, {columns},
                    ts_headline('{TEXT_SEARCH}', {body}, q, '{HEADLINE}') AS snippet,
                    -ts_rank({vector}, q, 1) AS score
                    FROM {tables}, websearch_to_tsquery('{TEXT_SEARCH}', ?) AS q
                    WHERE {vector} @@ q ORDER BY score, {order} LIMIT ?"""
                hits.extend(SearchHit(**row) for row in self._query(sql, [text, limit]))
        return sorted(hits, key=lambda hit: hit.score)[:limit]

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"
