"""An agent whose tools come from an MCP server: the planner chooses the server's tools
like any executor, the model writes each call's arguments under the tool's own input
schema, and the calls that do not depend on each other run at once.

The server is examples/mcp_server.py, started over stdio by the runtime (any MCP server
works the same: `--mcp 'NAME=COMMAND'` or a streamable HTTP URL).

    .venv/bin/python examples/mcp_agent.py
    .venv/bin/python examples/mcp_agent.py "Will it rain in Oslo tomorrow?"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stepgraph import Event, Runtime, Store
from stepgraph.models import BackendBase

QUESTION = (
    "What will tomorrow's high be in Lisbon and in Oslo, and which of the two cities will "
    "be warmer? Answer in two sentences."
)
SERVER = f"weather={sys.executable} {Path(__file__).with_name('mcp_server.py')}"


def show(event: Event) -> None:
    if event.type == "step_started":
        print(f"  {event.step_id} [{event.data['executor']}] {event.data['instruction'][:70]}")
    elif event.type == "step_finished":
        text = (event.data.get("output") or event.data.get("error") or "").strip()
        print(f"  {event.step_id} {event.data['status']}: {text[:70]}")


def main(
    argv: list[str] | None = None,
    *,
    model: BackendBase | None = None,
    store: Store | str | Path | None = None,
) -> int:
    """Answer one question with the server's tools; 0 when the answer was verified."""
    parser = argparse.ArgumentParser(description="Answer a question with an MCP server's tools.")
    parser.add_argument("question", nargs="*", help="the question (default: a built-in one)")
    parser.add_argument("--model", help="model spec (default: the configured model)")
    parser.add_argument("--store", help="memory store file (default: the user's store)")
    args = parser.parse_args(argv)
    question = " ".join(args.question) or QUESTION
    runtime = Runtime(
        model or args.model,
        store=store if store is not None else args.store,
        mcp=[SERVER],
    )
    try:
        tools = [n for n in runtime.executors if n.startswith("weather_")]
        print(f"Tools from the MCP server: {', '.join(tools)}\nQuestion: {question}\n")
        result = runtime.run(question, on_event=show)
        print(f"\nAnswer: {result.answer}\n")
        for line in result.failed_checks:
            print(f"check failed: {line}")
        print(f"run {result.run_id}: {result.status}; stored in {runtime.store.path}")
        return 0 if result.status == "done" else 1
    finally:
        runtime.close()  # stops the MCP server too


if __name__ == "__main__":
    raise SystemExit(main())
