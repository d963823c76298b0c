"""Every memory test uses a real SQLite file under tmp_path; nothing is mocked."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepgraph.memory import Store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memory" / "stepgraph.db"


@pytest.fixture
def store(db_path: Path):
    with Store(db_path) as store:
        yield store
