"""Shared helpers for the memory tests (a plain module, importable by spawned workers)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from stepgraph.memory import Store

PLAN = {
    "goal": "Add the first ten primes and say whether the sum is even",
    "steps": [
        {"id": "s1", "instruction": "List the first ten primes", "executor": "python",
         "args": {"code": "print(primes(10))"}, "depends_on": []},
        {"id": "s2", "instruction": "Add {{s1}}", "executor": "calculator", "args": {},
         "depends_on": ["s1"]},
        {"id": "s3", "instruction": "Is {{s2}} even?", "executor": "llm", "args": {},
         "depends_on": ["s2"]},
    ],
}  # fmt: skip


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_full_run(store: Store, *, conversation_id: str | None = None) -> str:
    """A finished three-step run, recorded the way the runtime records one."""
    run_id = store.start_run(
        "Add the first ten primes and say whether the sum is even",
        conversation_id=conversation_id,
        model="qwen2.5-coder-0.5b",
        planner="few-shot",
        meta={"budget": {"steps": 10}},
    )
    store.record_plan(run_id, PLAN)
    store.record_event(run_id, "plan", {"steps": 3})
    outputs = {"s1": "[2, 3, 5, 7, 11, 13, 17, 19, 23, 29]", "s2": "129", "s3": "129 is odd."}
    for step_id, output in outputs.items():
        store.record_step(run_id, step_id, status="running", input={"text": f"in {step_id}"})
        store.record_event(run_id, "step_started", {"step": step_id})
        store.record_step(
            run_id, step_id, status="done", output=output, data={"value": output},
            prompt_tokens=10, completion_tokens=5, seconds=0.5, model="qwen2.5-coder-0.5b",
        )  # fmt: skip
        store.record_verdict(run_id, step_id, "recompute", True, f"{step_id} checked")
    store.record_verdict(run_id, None, "answers_question", True, "says odd")
    store.finish_run(run_id, status="done", answer="The sum is 129, which is odd.")
    return run_id
