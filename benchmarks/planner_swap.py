"""What changing the planner adapter does to the quality benchmarks, measured where it can.

The runtime plans only when its candidates do not settle a task (a single question whose
direct answer a program confirms, an answer that passes every check), so a new adapter can
change a benchmark's result only on the items whose recorded run made a plan. This script
takes those items from a benchmark's recorded rows (GSM8K: a planned step beyond the lone
llm step the direct answer stands for; IFEval: more steps than the direct answer and that
step) and runs each again with every adapter given, paired, in one process and on the
current code, so the difference is the adapter's alone. Rows go to
benchmarks/results/planner_swap/<bench>_<label>.jsonl as they finish (resumable); the
summary (right or strictly followed, per adapter, with wins and losses) is printed and
written to planner_swap/<bench>.md.

    .venv/bin/python benchmarks/planner_swap.py --bench gsm8k \
        --adapter shipped=stepgraph/evolve/adapters/qwen2.5-coder-0.5b-planner.gguf \
        --adapter candidate=/path/to/candidate.gguf [--limit N] [--batched]
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, STORES, add_batched_option, machine, quality_backend  # noqa: E402

OUT = RESULTS / "planner_swap"
_PLANNED_ID = re.compile(r"^(?:r\d+)?s\d+$")


def planned_gsm8k() -> list[dict]:
    """The recorded 0.5B run rows whose run made a plan, with their problems."""
    import gsm8k

    rows = [json.loads(line) for line in (RESULTS / "gsm8k_run.jsonl").read_text().splitlines()]
    items = {p["idx"]: p for p in gsm8k.problems(200)}
    picked = []
    for row in rows:
        tokens = row.get("step_tokens") or {}
        ids = [k for k in tokens if _PLANNED_ID.match(k)]
        if ids and not (ids == ["s1"] and tokens["s1"] == 0):  # not the lone direct step
            picked.append({**items[row["idx"]], "key": row["idx"], "before": row["correct"]})
    return picked


def planned_ifeval() -> list[dict]:
    import ifeval

    rows = ifeval._rows(RESULTS / "ifeval_run.jsonl")
    items = {p["key"]: p for p in ifeval.prompts(None)}
    picked = []
    for row in rows:
        steps = row["steps"]
        steps = ast.literal_eval(steps) if isinstance(steps, str) else steps
        if len(steps) > 2:
            picked.append({**items[row["key"]], "before": row["answer"]})
    return picked


def run(bench: str, adapters: dict[str, str], limit: int | None, batched: bool) -> None:
    from stepgraph import Runtime

    items = (planned_gsm8k() if bench == "gsm8k" else planned_ifeval())[:limit]
    module = __import__(bench)
    backend = quality_backend("qwen2.5-coder-0.5b", batched)
    OUT.mkdir(parents=True, exist_ok=True)
    STORES.mkdir(parents=True, exist_ok=True)
    date = machine()["date"]
    outs = {label: OUT / f"{bench}_{label}.jsonl" for label in adapters}
    done = {
        label: {json.loads(line)["key"] for line in out.read_text().splitlines()}
        if out.exists()
        else set()
        for label, out in outs.items()
    }
    for item in items:  # adapters interleaved item by item, so drift hits both alike
        for label, adapter in adapters.items():
            out = outs[label]
            if item["key"] in done[label]:
                continue
            with Runtime(
                backend,
                store=STORES / f"planner_swap_{bench}_{label}.db",  # git-ignored
                max_seconds=module.RUN_SECONDS,
                planner_adapter=adapter,
            ) as runtime:
                start = time.perf_counter()
                text = item["question"] if bench == "gsm8k" else item["prompt"]
                row = {"key": item["key"], "date": date, **module._run(runtime, text)}
                row["seconds"] = round(time.perf_counter() - start, 2)
            if bench == "gsm8k":
                got = module.final_number(row["answer"])
                row["correct"] = got is not None and abs(got - float(item["answer"])) < 1e-6
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(bench, label, item["key"], row.get("correct", row["status"]), flush=True)
    backend.close()


def summarize(bench: str, labels: list[str]) -> str:
    items = planned_gsm8k() if bench == "gsm8k" else planned_ifeval()
    rows = {}
    for label in labels:
        out = OUT / f"{bench}_{label}.jsonl"
        rows[label] = {r["key"]: r for r in map(json.loads, out.read_text().splitlines())}
    keys = [i["key"] for i in items if all(i["key"] in rows[label] for label in labels)]
    if bench == "gsm8k":
        right = {label: {k: rows[label][k]["correct"] for k in keys} for label in labels}
        before = {i["key"]: i["before"] for i in items}
    else:
        from _ifeval_score import score  # Google's checkers (if-verifiable)

        prompts = {i["key"]: i for i in items}

        def strict(key: str, answer: str) -> bool:
            return all(score(prompts[key], answer)["strict"])

        right = {label: {k: strict(k, rows[label][k]["answer"]) for k in keys} for label in labels}
        before = {k: strict(k, prompts[k]["before"]) for k in keys}
    metric = "right" if bench == "gsm8k" else "prompt-level strict"
    lines = [
        f"# {bench}: the items whose recorded run made a plan, run again per adapter",
        "",
        f"{len(keys)} of {len(items)} items paired; {machine()}",
        "",
        f"| adapter | {metric} |",
        "|---|---:|",
        f"| recorded run (older code) | {sum(before[k] for k in keys)} |",
        *(f"| {label} | {sum(right[label].values())} |" for label in labels),
    ]
    if len(labels) == 2:
        a, b = labels
        wins = sum(right[b][k] and not right[a][k] for k in keys)
        losses = sum(right[a][k] and not right[b][k] for k in keys)
        lines += ["", f"{b} against {a}: {wins} wins, {losses} losses"]
    text = "\n".join(lines) + "\n"
    (OUT / f"{bench}.md").write_text(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", choices=("gsm8k", "ifeval"), required=True)
    parser.add_argument("--adapter", action="append", required=True, help="LABEL=PATH, repeat")
    parser.add_argument("--limit", type=int)
    add_batched_option(parser)
    args = parser.parse_args()
    adapters = dict(a.split("=", 1) for a in args.adapter if "=" in a)
    if len(adapters) != len(args.adapter):
        parser.error("--adapter takes LABEL=PATH, e.g. shipped=stepgraph/evolve/adapters/...")
    if missing := [p for p in adapters.values() if not Path(p).is_file()]:
        parser.error(f"no adapter file {', '.join(missing)}")
    run(args.bench, adapters, args.limit, args.batched)
    print(summarize(args.bench, list(adapters)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
