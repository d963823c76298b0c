"""A live view of a run for the terminal (rich), and its plain-line form for logs.

What a person watching needs: how long each part has taken (planning included, which
can last minutes on a busy CPU), each check as it arrives, retries and replans as they
happen, and at the end whether the answer was verified, with the checks it failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text

from stepgraph.runtime.events import Event

_MARK = {
    "planned": ("·", "dim"),
    "running": ("…", "yellow"),
    "done": ("✓", "green"),
    "failed": ("✗", "red"),
    "skipped": ("-", "dim"),
}
_ENDING = {
    "done": ("verified", "bold green"),
    "unverified": ("unverified", "bold yellow"),
    "partial": ("partial: not every step finished", "bold yellow"),
    "failed": ("failed", "bold red"),
    "budget_exceeded": ("out of budget", "bold red"),
    "interrupted": ("waiting for approval", "bold yellow"),
}


def preview(text: str, limit: int = 160) -> str:
    """One line of `text`, cut at a word boundary with an ellipsis, never mid-word."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1].rsplit(" ", 1)[0]
    return (cut if len(cut) > limit // 2 else line[: limit - 1]) + "…"


class RunView:
    """Folds a run's events into a table: one row per step (and per candidate), its state,
    time, checks and a preview of its output; a header with the run's phase and time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.steps: dict[str, dict] = {}
        self.status = "planning"
        self.answer = ""
        self.final_checks: list[dict] = []
        self.replans = 0
        self.planned_at: float | None = None
        self.unplanned: str | None = None  # why no plan was made, when none was

    def _row(self, sid: str, **fields) -> dict:
        row = self.steps.setdefault(
            sid, {"state": "planned", "executor": "", "deps": [], "text": "", "checks": []}
        )
        row.update({k: v for k, v in fields.items() if v is not None})
        return row

    def update(self, event: Event) -> None:
        sid, data = event.step_id, event.data
        if event.type == "plan_step" and sid:
            self._row(
                sid,
                executor=data.get("executor"),
                text=data.get("instruction"),
                deps=data.get("depends_on"),
            )
        elif event.type == "plan_ready":
            if data.get("round"):
                self.replans += 1
            elif self.planned_at is None:
                self.planned_at = self.clock()
                self.unplanned = data.get("unplanned")
            self.status = "running"
            for step in (data.get("plan") or {}).get("steps", []):
                self._row(
                    step["id"],
                    executor=step["executor"],
                    text=step["instruction"],
                    deps=step["depends_on"],
                )
        elif event.type == "step_started" and sid:
            self._row(
                sid,
                state="running",
                executor=data.get("executor"),
                text=data.get("instruction"),
                began=self.clock(),
            )
        elif event.type == "step_finished" and sid:
            self._row(
                sid,
                state=data.get("status", "done"),
                seconds=data.get("seconds"),
                attempts=data.get("attempts"),
                output=data.get("output") or data.get("error") or "",
            )
        elif event.type == "verdict":
            if sid:
                self._row(sid)["checks"].append(data)
            else:
                self.final_checks.append(data)
        elif event.type == "answer":
            self.status = "checking the answer"
            self.answer = data.get("answer", "")
        elif event.type == "run_finished":
            self.status = data.get("status", "done")

    def _elapsed(self, row: dict) -> str:
        if row.get("seconds") is not None:
            return f"{row['seconds']:.1f}s"
        if row.get("state") == "running" and row.get("began") is not None:
            return f"{self.clock() - row['began']:.0f}s…"
        return ""

    def header(self) -> Text:
        elapsed = self.clock() - self.started
        ending = _ENDING.get(self.status)
        if ending is not None:
            text = Text(ending[0], style=ending[1])
        else:
            text = Text(self.status, style="bold")
            if self.status == "planning":
                text.append(f" ({len(self.steps)} steps so far)", style="dim")
        planning = (self.planned_at or self.clock()) - self.started
        if self.unplanned:
            text.append(f"  {elapsed:.0f} s; {self.unplanned}", style="dim")
        else:
            text.append(f"  {elapsed:.0f} s, planning {planning:.0f} s", style="dim")
        if self.replans:
            text.append(f", replanned {self.replans}x", style="yellow")
        return text

    def failing(self) -> list[str]:
        """The final answer's failed checks, one line each."""
        return [
            f"{c['check']}: {c.get('evidence') or 'failed'}"
            for c in self.final_checks
            if c.get("passed") is False
        ]

    def render(self) -> Group:
        table = Table(show_header=True, header_style="bold", expand=True)
        table.add_column("", width=1)
        table.add_column("step", width=8, no_wrap=True)
        table.add_column("executor", width=10)
        table.add_column("time", width=6, justify="right")
        table.add_column("checks", width=11)
        table.add_column("instruction / output", ratio=1)
        for sid, s in self.steps.items():
            mark, style = _MARK.get(s.get("state", ""), ("", ""))
            body = Text(preview(s.get("text", "")))
            if s.get("output"):
                body.append("\n→ " + preview(s["output"]), style="dim")
            failed = [c for c in s["checks"] if c.get("passed") is False]
            for check in failed[:2]:
                body.append(
                    f"\n✗ {check['check']}: {preview(check.get('evidence') or '', 100)}",
                    style="red",
                )
            checks = Text()
            if s["checks"]:
                passed = sum(c.get("passed") is True for c in s["checks"])
                checks.append(f"{passed}✓", style="green")
                if failed:
                    checks.append(f" {len(failed)}✗", style="red")
            if (s.get("attempts") or 1) > 1:
                checks.append(" retry", style="yellow")
            after = ",".join(s.get("deps", []))
            name = Text(sid + (f"\n←{after}" if after else ""))
            table.add_row(
                Text(mark, style=style), name, s.get("executor", ""), self._elapsed(s), checks, body
            )
        parts = [self.header(), table]
        if self.status in _ENDING and self.failing():
            parts.append(Text("failed checks: " + "; ".join(self.failing()), style="yellow"))
        return Group(*parts)


def plain_line(event: Event) -> str | None:
    """The event as one log line, for output that is not a terminal; None to skip it."""
    data = event.data
    if event.type == "plan_ready" and data.get("unplanned"):
        return f"plan: {data['unplanned']}"
    if event.type == "plan_ready" and data.get("plan"):
        steps = data["plan"].get("steps", [])
        label = f"replan {data['round']}" if data.get("round") else "plan"
        return f"{label}: {len(steps)} steps: " + ", ".join(
            f"{s['id']} {s['executor']}" for s in steps
        )
    if event.type == "step_finished":
        seconds = data.get("seconds")
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        retry = f" after {data['attempts']} attempts" if (data.get("attempts") or 1) > 1 else ""
        return f"{event.step_id} {data.get('status')}{took}{retry}: " + preview(
            data.get("output") or data.get("error") or "", 120
        )
    if event.type == "verdict" and data.get("passed") is False:
        where = event.step_id or "answer"
        return f"{where} check failed: {data['check']}: {preview(data.get('evidence') or '', 120)}"
    if event.type == "run_finished":
        return f"run {data.get('status')}" + (f": {data['error']}" if data.get("error") else "")
    return None
