"""The `make demo` agent: one real complex instruction, planned and run on the embedded model.

Shows the plan as it is decoded, each step and candidate as it runs, the answer with
whether it was verified (and, if not, the checks it failed), and where the run is kept (replay it with `stepgraph replay RUN_ID`, export it with `stepgraph runs export`).
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.live import Live

from stepgraph import Runtime
from stepgraph.runtime.live import RunView

INSTRUCTION = (
    "A bakery sells muffins for $3.25 and cookies for $1.75. On Saturday it sold 146 muffins "
    "and 312 cookies. How much money did it take in on Saturday, and which item brought in "
    "more money? Answer in two sentences."
)


def main() -> int:
    instruction = " ".join(sys.argv[1:]) or INSTRUCTION
    console = Console()
    console.print(f"[bold]Instruction:[/bold] {instruction}\n")
    runtime = Runtime()  # the embedded default model, the default store
    view = RunView()
    with Live(view.render(), console=console, refresh_per_second=8) as live:

        def on_event(event):
            view.update(event)
            live.update(view.render())

        result = runtime.run(instruction, on_event=on_event)
    console.print("\n[bold]Answer:[/bold] ", end="")
    console.print(result.answer, markup=False, highlight=False)
    if result.status == "unverified":
        console.print("[yellow]Unverified:[/yellow] ", end="")
        console.print(
            "; ".join(result.failed_checks) or "its candidates do not agree", markup=False
        )
    console.print(
        f"[dim]run {result.run_id}: {result.status} in {result.seconds:.1f} s, "
        f"{len(result.steps)} steps, {result.completion_tokens} tokens generated. "
        f"Store: {runtime.store.path}[/dim]"
    )
    console.print(f"[dim]Replay it: .venv/bin/stepgraph replay {result.run_id}[/dim]")
    # an unverified answer is still an answer, shown with what failed; no answer is an error
    return 0 if result.status in ("done", "unverified", "partial") else 1


if __name__ == "__main__":
    raise SystemExit(main())
