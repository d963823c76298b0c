"""Draw a recorded run as a timeline PNG: planning, each step's bar from start to finish,
composition. The picture shows what a table of times hides: which steps overlapped, and
whether a step started while the plan was still being decoded."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from stepgraph.errors import StoreError
from stepgraph.memory.records import RunRecord


def plain(text: str) -> str:
    """Text for matplotlib, which reads `$...$` as math; instructions are full of prices."""
    return text.replace("$", r"\$")


COLORS = {"done": "#4c9f70", "failed": "#d1495b", "skipped": "#aaaaaa"}
PHASE = "#7b8fc9"
OTHER = "#e0a458"


def _clock(run: RunRecord) -> Callable[[str], float]:
    """Seconds from the run's creation to a recorded time stamp."""
    zero = datetime.fromisoformat(run.created)
    return lambda stamp: (datetime.fromisoformat(stamp) - zero).total_seconds()


def phases(run: RunRecord) -> list[tuple[str, float]]:
    """Where a run's seconds went, as wall-clock spans: the whole run, planning (to the
    first plan), the plan's steps (first start to last finish), each candidate answer
    (direct, program, samples) and the answer (the last of those to the run's end:
    composing, checking, revising). Spans overlap: the direct answer is decoded beside the
    plan. Parts with no recorded time are left out."""
    since = _clock(run)
    planned = {s["id"] for plan in run.plans for s in plan.plan.get("steps", [])}
    timed = [s for s in run.steps if s.started and s.finished]
    spans: list[tuple[str, float]] = []
    if run.finished:
        spans.append(("run", since(run.finished)))
    ready = [e for e in run.events if e.type == "plan_ready" and not (e.payload or {}).get("round")]
    if ready:
        spans.append(("planning", since(ready[0].created)))
    steps = [s for s in timed if s.step_id in planned]  # replans' steps too: each plan is kept
    if steps:
        start = min(since(s.started) for s in steps)
        spans.append(("steps", max(since(s.finished) for s in steps) - start))
    spans += [(s.step_id, since(s.finished) - since(s.started)) for s in timed if s not in steps]
    if run.finished and timed:
        spans.append(("answer", since(run.finished) - max(since(s.finished) for s in timed)))
    return spans


def draw_timeline(run: RunRecord, path: str | Path) -> Path:
    """Write `run` as a PNG at `path`; times are seconds since the run was created."""
    steps = [s for s in run.steps if s.started and s.finished]
    if not steps:
        raise StoreError(f"run {run.id} has no step with recorded times; nothing to draw")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    since = _clock(run)
    rows: list[tuple[str, float, float, str]] = []  # label, start, end, colour
    decoded = [since(e.created) for e in run.events if e.type == "plan_step"]
    rows.append(("plan", 0.0, max(decoded, default=min(since(s.started) for s in steps)), PHASE))
    bars = []
    for step in steps:
        label = f"{step.step_id} {step.executor}: " + textwrap.shorten(
            plain(step.instruction or ""), 38, placeholder="..."
        )
        colour = COLORS.get(step.status, OTHER)
        bars.append((label, since(step.started), since(step.finished), colour))
    # a replan runs from the last step that finished before it to its new plan
    for event in run.events:
        if event.type == "plan_ready" and (event.payload or {}).get("round"):
            ready = since(event.created)
            before = [end for _, _, end, _ in bars if end <= ready]
            start = max(before, default=rows[0][2])
            bars.append((f"replan {event.payload['round']}", start, ready, PHASE))
    rows += sorted(bars, key=lambda row: (row[1], row[2]))  # in the order things happened
    last = max(end for _, _, end, _ in rows)
    if run.finished and since(run.finished) > last:
        rows.append(("compose and check", last, since(run.finished), PHASE))

    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.42 * len(rows)))
    span = max(end for _, _, end, _ in rows) or 1.0
    for y, (_, start, end, colour) in enumerate(rows):
        # a step of no measurable time still shows: a bar of at least 0.5 % of the run
        ax.barh(y, max(end - start, span * 0.005), left=start, color=colour, height=0.6)
        ax.text(max(end, start + span * 0.005), y, f" {end - start:.1f} s", va="center", fontsize=7)
    from matplotlib.patches import Patch

    legend = [
        ("plan, replan, compose", PHASE),
        ("step done", COLORS["done"]),
        ("step failed", COLORS["failed"]),
        ("other", OTHER),
    ]
    ax.legend(
        handles=[Patch(color=c, label=label) for label, c in legend], fontsize=7, loc="lower right"
    )
    ax.set_yticks(range(len(rows)), [label for label, *_ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the run started")
    ax.set_title(
        plain(textwrap.shorten(f"{run.id} ({run.status}): {run.instruction}", 110)), fontsize=9
    )
    ax.grid(axis="x", alpha=0.3)
    path = Path(path)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
