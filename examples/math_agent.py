"""Math word problems, answered by the model and cross-checked by a program, and planned
into exact calculations where the two do not agree.

A small model gets arithmetic wrong in its head. The model's own worked answer (with the
calculator writing the result of each sum it writes out) and a whole-problem program run in
the python sandbox answer first; where they agree, that is the answer, verified. Where they
do not, the planner hands every calculation to the calculator (exact, no `eval`) or to a
short program; the composer must then state the numbers those steps computed, the verifier
checks it does, and the plan's answer joins the others in the final choice.

    .venv/bin/python examples/math_agent.py                  # the built-in problem
    .venv/bin/python examples/math_agent.py "A train ..."    # your own problem
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stepgraph import Event, Runtime, Store
from stepgraph.models import BackendBase

PROBLEM = (
    "A school orders 28 boxes of pencils at $4.35 a box and 15 reams of paper at $7.80 a "
    "ream, and gets 12% off the whole order. How much does the discount save, and how much "
    "does the school pay?"
)


def show(event: Event) -> None:
    """Each step as it starts and ends, so a slow CPU run is not a silent one."""
    if event.type == "step_started":
        print(f"  {event.step_id} [{event.data['executor']}] {event.data['instruction'][:70]}")
    elif event.type == "step_finished":
        print(f"  {event.step_id} {event.data['status']}: {event.data['output'].strip()[:70]}")


def main(
    argv: list[str] | None = None,
    *,
    model: BackendBase | None = None,
    store: Store | str | Path | None = None,
) -> int:
    """Solve one problem; 0 when every step and every check on the answer passed.

    `model` and `store` let a test inject a scripted backend and a temporary store; a store
    given as a path is opened and closed here, a Store object is left open."""
    parser = argparse.ArgumentParser(description="Solve a math word problem step by step.")
    parser.add_argument("problem", nargs="*", help="the problem (default: a built-in one)")
    parser.add_argument("--model", help="model spec (default: the configured model)")
    parser.add_argument("--store", help="memory store file (default: the user's store)")
    args = parser.parse_args(argv)
    problem = " ".join(args.problem) or PROBLEM
    # The default executors are llm, calculator and python: what word problems need.
    runtime = Runtime(model or args.model, store=store if store is not None else args.store)
    try:
        print(f"Problem: {problem}\n")
        result = runtime.run(problem, on_event=show)
        print(f"\nAnswer: {result.answer}\n")
        failed = [v for v in result.verdicts if v.passed is False]
        for verdict in failed:
            print(f"check failed: {verdict.check}: {verdict.evidence}")
        print(f"run {result.run_id}: {result.status}; stored in {runtime.store.path}")
        if result.error:
            print(f"error: {result.error}")
        return 0 if result.status == "done" and not failed else 1
    finally:
        runtime.close()  # closes the store only when the runtime opened it


if __name__ == "__main__":
    raise SystemExit(main())
