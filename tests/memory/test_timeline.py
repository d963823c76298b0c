"""The timeline PNG of a run: bars in the order things happened, a bar for a replan, a
visible bar for a step of no measurable time, and a legend."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stepgraph.memory import Store
from stepgraph.memory.timeline import draw_timeline


def test_the_timeline_of_a_replanned_run(tmp_path: Path, monkeypatch) -> None:
    import matplotlib.axes

    drawn: dict[str, list] = {"bars": [], "labels": [], "legend": []}
    real_barh, real_legend = matplotlib.axes.Axes.barh, matplotlib.axes.Axes.legend
    real_ticks = matplotlib.axes.Axes.set_yticks

    def set_yticks(self, ticks, labels=None, **kw):
        drawn["labels"] = [label.split(":")[0] for label in labels or []]
        return real_ticks(self, ticks, labels, **kw)

    def barh(self, y, width, left, **kw):
        drawn["bars"].append((y, width, left))
        return real_barh(self, y, width, left=left, **kw)

    def legend(self, handles, **kw):
        drawn["legend"] = [h.get_label() for h in handles]
        return real_legend(self, handles=handles, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "barh", barh)
    monkeypatch.setattr(matplotlib.axes.Axes, "legend", legend)
    monkeypatch.setattr(matplotlib.axes.Axes, "set_yticks", set_yticks)
    with Store(tmp_path / "s.db") as store:
        run_id = store.start_run("two tries")
        now = time.time()
        store.record_step(
            run_id,
            "s1",
            executor="llm",
            instruction="first",
            status="failed",
            started=now,
            finished=now + 0.2,
        )
        time.sleep(0.4)  # the replan's new plan is recorded after s1 failed
        store.record_event(run_id, "plan_ready", {"round": 1, "plan": {"steps": []}})
        later = time.time() + 0.1
        store.record_step(
            run_id,
            "r1s1",
            executor="calculator",
            instruction="1+1",
            status="done",
            started=later,
            finished=later,
        )  # no time at all
        store.finish_run(run_id, status="done", answer="2")
        path = draw_timeline(store.run(run_id), tmp_path / "t.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    widths = [w for _, w, _ in drawn["bars"]]
    assert all(w > 0 for w in widths)
    assert min(widths) >= 0.005 * max(left + w for _, w, left in drawn["bars"]) * 0.99
    # in the order things happened: s1 before the replan before r1s1 (ids sort the other way)
    assert drawn["labels"][:4] == ["plan", "s1 llm", "replan 1", "r1s1 calculator"]
    assert drawn["legend"] == ["plan, replan, compose", "step done", "step failed", "other"]


def test_where_a_run_s_seconds_went(tmp_path: Path) -> None:
    from stepgraph.memory.timeline import phases

    with Store(tmp_path / "s.db") as store:
        run_id = store.start_run("eggs")
        store.record_plan(run_id, {"steps": [{"id": "s1", "executor": "calculator"}]})
        store.record_event(run_id, "plan_ready", {"plan": {}})
        now = time.time()
        store.record_step(run_id, "s1", executor="calculator", started=now, finished=now + 1.0)
        store.record_step(run_id, "direct", executor="llm", started=now - 1, finished=now + 1.5)
        store.record_step(run_id, "s2", executor="llm")  # never started: no time
        store.finish_run(run_id, status="done", answer="48")
        spans = dict(phases(store.run(run_id)))
    assert list(spans) == ["run", "planning", "steps", "direct", "answer"]
    assert spans["steps"] == pytest.approx(1.0, abs=1e-3)
    assert spans["direct"] == pytest.approx(2.5, abs=1e-3)
    assert 0 <= spans["planning"] <= spans["run"]
