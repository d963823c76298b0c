"""IFEval, one instruction kind: the current runtime against the full run's rows.

A change aimed at one kind of instruction (say `combination:two_responses`) is measured on
every prompt of ../shared/data/ifeval_dev.jsonl that has it: the prompts are run again with
the runtime as it is now, and both sets of answers are scored by the same independent
checker (`_ifeval_score.py`) as in ifeval.py. The kind selects prompts for evaluation only;
the runtime still sees nothing but the prompt text.

Rows go to benchmarks/results/ifeval_run_<kind>.jsonl as each prompt finishes (a stopped
run continues); the comparison to benchmarks/results/ifeval_kinds.md (one section per kind,
replaced when measured again).

Run: .venv/bin/python benchmarks/ifeval_kind.py combination:two_responses
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, STORES, machine  # noqa: E402
from ifeval import RUN_SECONDS, _rows, _run, prompts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", help="an IFEval instruction id, e.g. combination:two_responses")
    args = parser.parse_args()
    items = [p for p in prompts(None) if args.kind in p["instruction_id_list"]]
    if not items:
        raise SystemExit(f"no prompt of ifeval_dev.jsonl has the instruction {args.kind!r}")
    out = RESULTS / f"ifeval_run_{args.kind.split(':')[-1]}.jsonl"
    done = {r["key"] for r in _rows(out)}
    todo = [p for p in items if p["key"] not in done]
    if todo:
        from stepgraph import Runtime
        from stepgraph.models import embedded
        from stepgraph.models.llamacpp import LlamaCppBackend

        model = embedded.DEFAULT_MODEL
        backend = LlamaCppBackend(embedded.model_path(model), name=model, n_ctx=16384)
        STORES.mkdir(parents=True, exist_ok=True)
        store = STORES / f"{out.stem}.db"  # kept for analysis (git-ignored)
        with Runtime(backend, store=store, max_seconds=RUN_SECONDS) as runtime, out.open("a") as f:
            for item in todo:
                start = time.perf_counter()
                row = {"key": item["key"], "model": model, "date": machine()["date"]}
                row |= _run(runtime, item["prompt"])
                row["seconds"] = round(time.perf_counter() - start, 2)
                f.write(json.dumps(row) + "\n")
                f.flush()
                print(row["key"], row["status"], row["seconds"], flush=True)
        backend.close()
    report(args.kind, items, out)


def report(kind: str, items: list[dict], out: Path) -> None:
    import _ifeval_score as scorer

    before = {r["key"]: r for r in _rows(RESULTS / "ifeval_run.jsonl")}
    now = {r["key"]: r for r in _rows(out)}
    keys = [p["key"] for p in items if p["key"] in before and p["key"] in now]
    by_key = {p["key"]: p for p in items}

    def passed(rows: dict, key: int) -> tuple[bool, bool]:
        """(this kind's own check, the whole prompt), strict."""
        strict = scorer.score(by_key[key], rows[key]["answer"])["strict"]
        own = strict[by_key[key]["instruction_id_list"].index(kind)]
        return own, all(strict)

    was = {k: passed(before, k) for k in keys}
    is_ = {k: passed(now, k) for k in keys}
    wins = sum(is_[k][1] and not was[k][1] for k in keys)
    losses = sum(was[k][1] and not is_[k][1] for k in keys)
    m = machine()
    section = [
        f"## {kind} ({m['date']})",
        "",
        f"Machine: {m['cpus']} cores, {m['cpu']}. Model: qwen2.5-coder-0.5b. The {len(keys)} "
        f"prompts of ifeval_dev.jsonl with this instruction, run again with the runtime as it "
        f"is now (`{out.name}`) against the rows of the full run (`ifeval_run.jsonl`), scored "
        "strictly by `_ifeval_score.py`.",
        "",
        "| | full run | now |",
        "|---|---|---|",
        f"| this instruction passes | {sum(w[0] for w in was.values())}/{len(keys)} "
        f"| {sum(w[0] for w in is_.values())}/{len(keys)} |",
        f"| whole prompt passes | {sum(w[1] for w in was.values())}/{len(keys)} "
        f"| {sum(w[1] for w in is_.values())}/{len(keys)} |",
        "",
        f"Whole prompt, now against the full run: {wins} wins, {losses} losses.",
        "",
    ]
    path = RESULTS / "ifeval_kinds.md"
    text = path.read_text() if path.exists() else "# IFEval, one instruction kind at a time\n\n"
    start = text.find(f"## {kind} (")
    if start >= 0:  # measured again: replace its section
        end = text.find("\n## ", start + 1)
        text = text[:start] + text[end + 1 :] if end >= 0 else text[:start]
    path.write_text(text.rstrip("\n") + "\n\n" + "\n".join(section))
    print("\n".join(section))


if __name__ == "__main__":
    main()
