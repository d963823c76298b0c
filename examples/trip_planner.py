"""A team-offsite planner: independent steps (activities, each cost) run at the same time,
and the answer must keep to a budget and a word limit, both checked by the verifier.

The word limit is read from the instruction by the built-in constraint checks. The budget
is a check of our own on the answer: the total the plan computed (the last number a
calculator or python step produced; without a plan, the last total the answer states) must
not exceed it. Both verdicts are stored with the
run; a failing one makes the composer revise, and this script exit 1.

    .venv/bin/python examples/trip_planner.py
    .venv/bin/python examples/trip_planner.py --city Ghent --people 8 --budget 2500 --words 100
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any

from stepgraph import Event, Runtime, Store
from stepgraph.models import BackendBase
from stepgraph.verifier import Verdict, Verifier

TASK = (
    "Plan a 2-day team offsite in {city} for {people} people. Return train tickets cost $64 "
    "per person, the hotel costs $110 per room per night for {rooms} rooms and 2 nights, and "
    "a group dinner costs $45 per person. Suggest one activity for each day, work out the "
    "total cost, and say whether it fits the budget of ${budget}. Answer in at most {words} "
    "words."
)


STATED_TOTAL = re.compile(r"\btotal\b[^.$\d]{0,40}\$?(\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)


def within_budget(budget: float):
    """An answer check: the last total a calculator or python step computed fits `budget`;
    with no such step (the model's own answer was chosen, no plan ran), the last total
    the answer states."""

    def check(instruction: str, answer: str, results: list[Any]) -> list[Verdict]:
        # plan order: a total comes after the costs it adds up
        done = [r for r in results if r.executor in ("calculator", "python") and r.status == "done"]
        computed = [r.output.strip() for r in done]
        totals = [float(out) for out in computed if re.fullmatch(r"-?\d+(\.\d+)?", out)]
        where = "total"
        if not totals:
            totals = [float(t.replace(",", "")) for t in STATED_TOTAL.findall(answer)]
            where = "total stated"
        if not totals:
            return [Verdict(check="within_budget", passed=None, evidence="no total")]
        evidence = f"{where} {totals[-1]:g} against a budget of {budget:g}"
        return [Verdict(check="within_budget", passed=totals[-1] <= budget, evidence=evidence)]

    return check


def main(
    argv: list[str] | None = None,
    *,
    model: BackendBase | None = None,
    store: Store | str | Path | None = None,
) -> int:
    """Plan the offsite; 0 when the run finished and the answer passed every check."""
    parser = argparse.ArgumentParser(description="Plan a team offsite within a budget.")
    parser.add_argument("--city", default="Porto")
    parser.add_argument("--people", type=int, default=6)
    parser.add_argument("--budget", type=int, default=2500, help="in dollars")
    parser.add_argument("--words", type=int, default=120, help="word limit of the answer")
    parser.add_argument("--model", help="model spec (default: the configured model)")
    parser.add_argument("--store", help="memory store file (default: the user's store)")
    args = parser.parse_args(argv)
    task = TASK.format(rooms=math.ceil(args.people / 2), **vars(args))
    store = store if store is not None else args.store
    runtime = Runtime(
        model or args.model,
        store=store,
        verifier=Verifier(answer_checks=[within_budget(args.budget)]),
    )
    events: list[Event] = []
    try:
        result = runtime.run(task, on_event=events.append)
    finally:
        runtime.close()  # closes the store only when the runtime opened it
    running = peak = 0  # how many steps ran at the same time, at most
    for event in events:
        running += {"step_started": 1, "step_finished": -1}.get(event.type, 0)
        peak = max(peak, running)
    print(f"{task}\n\n{result.answer}\n")
    for verdict in result.verdicts:
        print(f"{verdict.check}: {verdict.passed} ({verdict.evidence})")
    print(f"run {result.run_id}: {result.status}; up to {peak} steps ran at the same time")
    if result.error:
        print(f"error: {result.error}")
    failed = [v for v in result.verdicts if v.passed is False]
    return 0 if result.status == "done" and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
