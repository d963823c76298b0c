"""The live view, fed events the way a run sends them, with a clock the test moves."""

from __future__ import annotations

from rich.console import Console

from stepgraph.runtime.events import Event, parse_event
from stepgraph.runtime.live import RunView, plain_line, preview


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def shown(view: RunView) -> str:
    console = Console(width=120, record=True, force_terminal=False)
    console.print(view.render())
    return console.export_text()


def event(type: str, step_id: str | None = None, **data) -> Event:
    return parse_event({"type": type, "run_id": "r1", "step_id": step_id, **data})


def test_a_run_as_a_person_watches_it() -> None:
    clock = Clock()
    view = RunView(clock=clock)
    view.update(
        event("plan_step", "s1", executor="calculator", instruction="146 * 3.25", depends_on=[])
    )
    clock.now += 42
    assert "planning (1 steps so far)  42 s, planning 42 s" in shown(view)
    plan = {
        "steps": [
            {"id": "s1", "executor": "calculator", "instruction": "146 * 3.25", "depends_on": []},
            {"id": "s2", "executor": "llm", "instruction": "compare them", "depends_on": ["s1"]},
        ]
    }
    view.update(event("plan_ready", plan=plan))
    view.update(event("step_started", "s2", executor="llm", instruction="compare them"))
    clock.now += 7
    assert "7s…" in shown(view)  # a running step's time goes up
    view.update(
        event(
            "verdict",
            "s2",
            check="arithmetic",
            passed=False,
            evidence="146 * 3.25 = 465 is wrong; it is 474.5",
        )
    )
    view.update(event("verdict", "s2", check="non_empty", passed=True))
    view.update(
        event(
            "step_finished",
            "s2",
            status="done",
            seconds=9.25,
            attempts=2,
            output="Muffins brought in 474.5 dollars.",
        )
    )
    view.update(
        event(
            "plan_ready",
            round=1,
            plan={
                "steps": [
                    {"id": "r1s1", "executor": "llm", "instruction": "add them", "depends_on": []}
                ]
            },
        )
    )
    view.update(
        event(
            "verdict",
            None,
            check="exact_sentences",
            passed=False,
            evidence="3 sentences; exactly 2 required",
        )
    )
    view.update(event("answer", answer="474.5", status="unverified"))
    view.update(event("run_finished", status="unverified"))
    text = shown(view)
    assert text.splitlines()[0].startswith("unverified  49 s, planning 42 s, replanned 1x")
    assert "9.2s" in text and "1✓ 1✗ retry" in text
    assert "✗ arithmetic: 146 * 3.25 = 465 is wrong; it is 474.5" in text
    assert "r1s1" in text
    assert "failed checks: exact_sentences: 3 sentences; exactly 2 required" in text


def test_previews_end_at_a_word() -> None:
    text = "The time is " + "very " * 40 + "late"
    cut = preview(text, 30)
    assert cut.endswith("…") and len(cut) <= 30 and not cut[:-1].endswith("ver")
    assert preview("short  text\nhere") == "short text here"


def test_plain_lines_for_logs() -> None:
    assert (
        plain_line(
            event("step_finished", "s1", status="done", seconds=1.234, attempts=2, output="474.5")
        )
        == "s1 done in 1.2 s after 2 attempts: 474.5"
    )
    assert plain_line(event("verdict", None, check="c", passed=False, evidence="e")) == (
        "answer check failed: c: e"
    )
    assert plain_line(event("verdict", "s1", check="c", passed=True)) is None
    assert plain_line(event("run_finished", status="failed", error="no model")) == (
        "run failed: no model"
    )


def test_a_run_that_needed_no_plan_says_why() -> None:
    clock = Clock()
    view = RunView(clock=clock)
    why = "no plan made: the model's own answer passed all 2 checks of the instruction"
    plan = {
        "steps": [
            {"id": "s1", "executor": "llm", "instruction": "Name two colours.", "depends_on": []}
        ]
    }
    clock.now += 3
    view.update(event("plan_ready", plan=plan, unplanned=why))
    view.update(event("run_finished", status="done"))
    assert f"verified  3 s; {why}" in shown(view)
    assert plain_line(event("plan_ready", plan=plan, unplanned=why)) == f"plan: {why}"
