"""Where LangGraph keeps a run's checkpoints: the one choice, made from the store.

- A PostgreSQL store: the same database, through `langgraph-checkpoint-postgres`
  (`AsyncPostgresSaver`), so a run killed on one machine is resumed on any other (the
  workers, `stepgraph.runtime.workers`). Its tables (`checkpoints`, `checkpoint_blobs`,
  `checkpoint_writes`, `checkpoint_migrations`) sit beside the store's, in the URL's schema.
- A SQLite store: a SQLite file beside the store's (`AsyncSqliteSaver`), as before.

Each run opens its own connection, as each run opened the SQLite file before: a run's
checkpoint writes never queue behind another run's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_random

from stepgraph.errors import StoreError
from stepgraph.memory import MemoryStore, Store

# one lock number for "creating LangGraph's checkpoint tables": workers starting together
# on a new database take turns (CREATE TABLE IF NOT EXISTS races in PostgreSQL)
_SETUP_LOCK = 0x7374657063687074
_TRY_LOCK = "SELECT pg_try_advisory_lock(%s) AS locked"
_ready: set[str] = set()  # the databases whose checkpoint tables this process has checked


@asynccontextmanager
async def open_checkpointer(
    store: MemoryStore, sqlite_file: Path | None, serde: Any
) -> AsyncIterator[BaseCheckpointSaver]:
    """The checkpointer for one run: in the store's PostgreSQL database when the store is
    one, else in `sqlite_file` (the file beside the SQLite store)."""
    url = None if isinstance(store, Store) else getattr(store, "url", None)
    if url is None:
        async with _sqlite(sqlite_file, serde) as saver:
            yield saver
    else:
        async with _postgres(url, store.location, serde) as saver:
            yield saver


@asynccontextmanager
async def _sqlite(path: Path, serde: Any) -> AsyncIterator[BaseCheckpointSaver]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        # WAL + NORMAL survives a killed process (what resume needs) without an fsync per
        # task write, which costs more than the rest of a step (measured). Runs that start
        # together (`stepgraph batch`) each open the file: switching a new file to WAL
        # needs it alone, so a connection that finds it busy waits and tries again.
        await saver.conn.execute("PRAGMA busy_timeout=30000")
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(lambda e: "locked" in str(e)),
            wait=wait_random(0.01, 0.2),
            stop=stop_after_delay(30),
            reraise=True,
        ):
            with attempt:
                await saver.conn.execute("PRAGMA journal_mode=WAL")
        await saver.conn.execute("PRAGMA synchronous=NORMAL")
        saver.serde = serde
        yield saver


@asynccontextmanager
async def _postgres(url: str, location: str, serde: Any) -> AsyncIterator[BaseCheckpointSaver]:
    try:
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
    except ModuleNotFoundError as e:
        raise StoreError(
            "a run on a postgresql:// store keeps its checkpoints there, which needs psycopg "
            f"and langgraph-checkpoint-postgres ({e.name} is not installed): "
            "pip install 'stepgraph[postgres]'"
        ) from None

    try:
        conn = await psycopg.AsyncConnection.connect(
            url,
            autocommit=True,  # what AsyncPostgresSaver.from_conn_string opens
            prepare_threshold=0,
            row_factory=dict_row,
            connect_timeout=5,
            application_name="stepgraph-checkpoints",
        )
    except psycopg.Error as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StoreError(
            f"cannot reach the PostgreSQL server of {location} for the run's checkpoints "
            f"({why}): check that the server is up, then resume the run"
        ) from e
    async with conn:
        saver = AsyncPostgresSaver(conn, serde=serde)
        if url not in _ready:
            await _setup(conn, saver)
            _ready.add(url)
        yield saver


async def _setup(conn: Any, saver: Any) -> None:
    """LangGraph's own migrations, one process at a time. The lock is tried, not waited
    for: a session waiting for it sits in a transaction, and LangGraph's CREATE INDEX
    CONCURRENTLY in the session holding it waits for every open transaction (a deadlock,
    seen with two runs starting at once)."""
    while not (await (await conn.execute(_TRY_LOCK, [_SETUP_LOCK])).fetchone())["locked"]:
        await asyncio.sleep(0.1)
    try:
        await saver.setup()
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", [_SETUP_LOCK])
