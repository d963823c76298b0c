"""Every memory test uses a real database; nothing is mocked.

The `store` fixture is the conformance suite's: each test that takes it runs on SQLite (a
file under tmp_path) and on PostgreSQL (a real server started once per session from the
`pgserver` wheel: `postgres_server` in tests/conftest.py, a fresh schema per test).
PostgreSQL tests are skipped, with the reason, only when that server cannot start.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepgraph.memory import Store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memory" / "stepgraph.db"


def with_schema(url: str, schema: str) -> str:
    """`url` with the store's tables in `schema` (libpq's options, URL-encoded)."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL whose schema is new and empty, dropped after the test."""
    import psycopg

    schema = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield with_schema(postgres_server, schema)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request: pytest.FixtureRequest, db_path: Path) -> str:
    """Where a conformance test's store lives: a SQLite path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(db_path)
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_target: str):
    from stepgraph.memory import open_store

    with open_store(store_target) as store:
        yield store


@pytest.fixture
def sqlite_store(db_path: Path):
    """For the few tests about SQLite itself."""
    with Store(db_path) as store:
        yield store
