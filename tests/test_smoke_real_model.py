"""The main job, end to end, on the real embedded model: plan, run, compose, store, replay."""

import pytest

from stepgraph import Runtime, Store, replay

pytestmark = pytest.mark.model


def test_a_real_instruction_runs_end_to_end(real_model, tmp_path):
    runtime = Runtime(real_model, store=tmp_path / "s.db", max_seconds=300)
    result = runtime.run("Compute 23 * 47 and then say whether the result is an even number.")
    assert result.status in ("done", "partial")
    assert result.plan and result.plan["steps"]
    assert result.answer.strip()
    assert all(s.status in ("done", "failed", "skipped") for s in result.steps)
    record = Store(tmp_path / "s.db").run(result.run_id)
    assert record.answer == result.answer and len(record.steps) == len(result.plan["steps"])
    report = replay(Store(tmp_path / "s.db"), result.run_id)
    assert report.same_answer
