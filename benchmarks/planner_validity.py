"""Planner validity on the 218 WizardLM test instructions, constrained decoding on and off.

For each instruction: does the embedded model's plan validate (with the one repair the
planner allows), how many steps it has, how long it took. Writes one JSON line per
instruction to benchmarks/results/planner_validity_<mode>.jsonl as it goes (resumable),
then a summary in benchmarks/results/planner_validity.md.

Run: .venv/bin/python benchmarks/planner_validity.py [--mode constrained|free] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine  # noqa: E402

from stepgraph.errors import StepgraphError  # noqa: E402
from stepgraph.executors import default_registry  # noqa: E402
from stepgraph.models import embedded  # noqa: E402
from stepgraph.models.llamacpp import LlamaCppBackend  # noqa: E402
from stepgraph.planner import Planner  # noqa: E402
from stepgraph.planner.prompt import planner_descriptions  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wizardlm_testset.jsonl"


def run(mode: str, limit: int | None) -> None:
    out = RESULTS / f"planner_validity_{mode}.jsonl"
    done = (
        {json.loads(line)["idx"] for line in out.read_text().splitlines()}
        if out.exists()
        else set()
    )
    items = [json.loads(line) for line in DATA.read_text().splitlines()][:limit]
    todo = [i for i in items if i["idx"] not in done]
    if not todo:
        return
    backend = LlamaCppBackend(embedded.model_path(), name=embedded.DEFAULT_MODEL, n_ctx=16384)
    executors = planner_descriptions(default_registry())
    planner = Planner(backend, executors=executors, constrained=(mode == "constrained"))
    with out.open("a") as f:
        for item in todo:
            start = time.perf_counter()
            row = {"idx": item["idx"], "skill": item["Skill"]}
            planning = planner.stream(item["Instruction"])
            try:
                for _ in planning:
                    pass
                plan = planning.plan
                row.update(
                    valid=True,
                    steps=len(plan.steps),
                    edges=sum(len(s.depends_on) for s in plan.steps),
                )
            except StepgraphError as exc:
                row.update(valid=False, error=f"{type(exc).__name__}: {str(exc)[:200]}")
            row["attempts"] = planning.stats.get("attempts", 1)
            row["seconds"] = round(time.perf_counter() - start, 2)
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(row, flush=True)
    backend.close()


def summarize() -> None:
    lines = [
        f"# Planner validity on the WizardLM test set ({machine()['date']})",
        "",
        f"Machine: {machine()['cpus']} cores, {machine()['cpu']}, no GPU. Model: "
        f"{embedded.DEFAULT_MODEL} on llama.cpp, greedy, zero repairs beyond the planner's one.",
        "",
        "| decoding | instructions | valid | valid after repair | steps/plan (median, mean) | s/plan (median) |",
        "|---|---|---|---|---|---|",
    ]
    for mode in ("constrained", "free"):
        path = RESULTS / f"planner_validity_{mode}.jsonl"
        if not path.exists():
            continue
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        valid = [r for r in rows if r["valid"]]
        repaired = [r for r in valid if r.get("attempts", 1) > 1]
        steps = [r["steps"] for r in valid] or [0]
        lines.append(
            f"| {mode} | {len(rows)} | {len(valid)} ({100 * len(valid) / len(rows):.1f} %) | "
            f"{len(repaired)} | {statistics.median(steps)}, {statistics.mean(steps):.2f} | "
            f"{statistics.median(r['seconds'] for r in rows):.1f} |"
        )
    (RESULTS / "planner_validity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["constrained", "free"], default="constrained")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    run(args.mode, args.limit)
    summarize()
