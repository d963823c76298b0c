"""The planner adapter that ships in the package: its record matches the file, its training
data is in the repository with the recorded checksums, and the runtime uses it by default."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from stepgraph.evolve.adapters import HERE, shipped_planner_adapter

ROOT = Path(__file__).resolve().parents[2]
RECORDS = sorted(HERE.glob("*-planner.json"))


def test_a_planner_adapter_ships_for_the_default_model():
    from stepgraph.models.embedded import DEFAULT_MODEL

    assert (HERE / f"{DEFAULT_MODEL}-planner.gguf").is_file()
    assert (HERE / f"{DEFAULT_MODEL}-planner.json").is_file()


@pytest.mark.parametrize("record_path", RECORDS, ids=[p.stem for p in RECORDS])
def test_the_record_reproduces_the_adapter(record_path):
    record = json.loads(record_path.read_text())
    adapter = HERE / record["adapter"]
    assert hashlib.sha256(adapter.read_bytes()).hexdigest() == record["sha256"]
    for data in record["training_data"]:  # the data it was trained on, unchanged
        raw = (ROOT / data["path"]).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == data["sha256"], data["path"]
        assert sum(1 for line in raw.splitlines() if line.strip()) == data["records"]
    assert any("stepgraph train planner" in c for c in record["commands"])


@pytest.mark.model
def test_the_runtime_plans_with_the_shipped_adapter_and_loads_it_once(real_model, tmp_path):
    from stepgraph import Runtime

    path = shipped_planner_adapter(real_model)
    assert path is not None and path.parent == HERE
    first = Runtime(real_model, store=tmp_path / "a.db")
    loaded = real_model._adapters["planner"]
    second = Runtime(real_model, store=tmp_path / "b.db")
    assert real_model._adapters["planner"] is loaded  # not loaded again
    assert first.planner.adapter == second.planner.adapter == "planner"
    bare = Runtime(real_model, store=tmp_path / "c.db", planner_adapter="none")
    assert bare.planner.adapter is None
    for runtime in (first, second, bare):
        runtime.close()
