"""Every memory test uses a real database; nothing is mocked.

The `store` fixture is the conformance suite's: each test that takes it runs on SQLite (a
file under tmp_path) and on PostgreSQL (a real server started once per session from the
`pgserver` wheel, a fresh schema per test). PostgreSQL tests are skipped, with the reason,
only when that server cannot start.
"""

from __future__ import annotations

import secrets
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepgraph.memory import Store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memory" / "stepgraph.db"


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a PostgreSQL server that lives for the session (pgserver: PostgreSQL 16 in
    a wheel; as root it runs the server as a `pgserver` system user it creates)."""
    try:
        with warnings.catch_warnings():  # pgserver's "XDG_RUNTIME_DIR is not set": harmless
            warnings.simplefilter("ignore")
            import pgserver
        import psycopg
    except ImportError as e:
        pytest.skip(f"PostgreSQL tests need pgserver and psycopg (pip install -e '.[dev]'): {e}")
    data = tmp_path_factory.mktemp("postgres") / "data"
    failures: list[str] = []
    for _ in range(3):
        try:
            server = pgserver.get_server(data)
            url = server.get_uri()
            with psycopg.connect(url, autocommit=True, connect_timeout=30) as conn:
                conn.execute("SELECT 1")
            break
        except Exception as e:  # any reason the server cannot start is a reason to skip
            # pgserver gives `pg_ctl start` 10 s, which a loaded machine can miss (seen here
            # once); a second try on the same folder picks up the server still starting
            failures.append(f"{type(e).__name__}: {e}")
            pgserver.PostgresServer._instances.pop(data.resolve(), None)
            time.sleep(2)
    else:
        pytest.skip(f"PostgreSQL could not start with pgserver: {'; '.join(failures)}")
    yield url
    server.cleanup()


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
