"""One way to open a memory store from what a user types: a file path (SQLite) or a
`postgresql://` URL (PostgreSQL). The CLI's `--db`, the `store` setting and
`Runtime(store=...)` all come through here, so each accepts both."""

from __future__ import annotations

from pathlib import Path

from stepgraph.errors import StoreError
from stepgraph.memory.base import MemoryStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: object) -> bool:
    """Whether `target` names a PostgreSQL database rather than a file."""
    return isinstance(target, str) and target.lower().startswith(POSTGRES_SCHEMES)


def open_store(target: str | Path | None = None, *, create: bool = True) -> MemoryStore:
    """The store `target` names: a `postgresql://` (or `postgres://`) URL opens a
    PostgresStore; a path, or None for the default file, opens the SQLite Store.

    `create=False` (for commands that only read) never creates a file or a schema.
    """
    if is_postgres_url(target):
        try:
            from stepgraph.memory.postgres import PostgresStore
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] != "psycopg":
                raise
            raise StoreError(
                "a postgresql:// store needs psycopg, which is not installed: "
                "pip install 'stepgraph[postgres]'"
            ) from None
        return PostgresStore(str(target), create=create)
    from stepgraph.memory.store import Store

    return Store(target, create=create)
