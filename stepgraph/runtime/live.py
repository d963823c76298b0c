"""A live view of a run's steps for the terminal (rich)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from stepgraph.runtime.events import Event

_MARK = {
    "planned": "[dim]·[/dim]",
    "running": "[yellow]…[/yellow]",
    "done": "[green]✓[/green]",
    "failed": "[red]✗[/red]",
    "skipped": "[dim]-[/dim]",
}


class RunView:
    """Folds events into a table: one row per step, its state and a preview of its output."""

    def __init__(self) -> None:
        self.steps: dict[str, dict] = {}
        self.status = "planning"
        self.answer = ""

    def update(self, event: Event) -> None:
        sid = event.step_id
        if event.type == "plan_step" and sid:
            self.steps.setdefault(
                sid,
                {
                    "state": "planned",
                    "executor": event.data.get("executor", ""),
                    "text": event.data.get("instruction", ""),
                    "deps": event.data.get("depends_on", []),
                },
            )
        elif event.type == "plan_ready":
            self.status = "running"
            for step in event.data.get("plan", {}).get("steps", []):
                self.steps.setdefault(
                    step["id"],
                    {
                        "state": "planned",
                        "executor": step["executor"],
                        "text": step["instruction"],
                        "deps": step["depends_on"],
                    },
                )
        elif event.type == "step_started" and sid:
            self.steps.setdefault(sid, {"executor": event.data.get("executor", ""), "deps": []})
            self.steps[sid].update(state="running", text=event.data.get("instruction", ""))
        elif event.type == "step_finished" and sid in self.steps:
            self.steps[sid].update(
                state=event.data.get("status", "done"),
                output=event.data.get("output") or event.data.get("error") or "",
            )
        elif event.type == "answer":
            self.status = "composed"
            self.answer = event.data.get("answer", "")
        elif event.type == "run_finished":
            self.status = event.data.get("status", "done")

    def render(self) -> Group:
        table = Table(show_header=True, header_style="bold", expand=True)
        table.add_column("", width=1)
        table.add_column("step", width=8)
        table.add_column("executor", width=10)
        table.add_column("after", width=8)
        table.add_column("instruction / output", ratio=1)
        for sid, s in self.steps.items():
            body = Text(s.get("text", "")[:160])
            if s.get("output"):
                body.append("\n→ " + s["output"].strip().replace("\n", " ")[:160], style="dim")
            table.add_row(
                _MARK.get(s.get("state", ""), ""),
                sid,
                s.get("executor", ""),
                ",".join(s.get("deps", [])),
                body,
            )
        return Group(Text(f"status: {self.status}", style="bold"), table)
