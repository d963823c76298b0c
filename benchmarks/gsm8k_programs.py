"""Sampled whole-problem programs as the 0.5B's tie-breakers: do they beat sampled answers?

A run breaks a tie between its direct answer and the others with a greedy program, then
sampled worked answers (temperature 0.7, about 240 generated tokens each on GSM8K with the
0.5B). A program costs about 100. This makes, for each of the 200 dev problems, the greedy
program again (with the runtime's mechanical fix of names in the wrong case,
`stepgraph.executors.names`) and `--samples` programs sampled at temperature 0.7 (seeds 1,
2, ...), through the runtime's own code writer and python executor (kernel sandbox, one
rewrite with the error), on the deterministic engine of the quality benchmarks. `--report`
then simulates cascades on these rows and the other candidates of the same problems
(`gsm8k_candidates.jsonl`: direct, greedy program before the fix, two sampled answers):
candidates made in order until two agree, a tie going to the direct answer.

Stopped after 19 problems on 2026-12-05 (the rows kept, made with `--samples 4`): sampled programs agreed with each
other on wrong numbers (the same wrong program, sampled again), and a plain answer in other
words was the better tie-breaker (benchmarks/README.md). `--report` reads what is there.

Rows go to results/gsm8k_programs.jsonl as they are made (resumable); the report to
results/gsm8k_programs.md.

    python benchmarks/gsm8k_programs.py --limit 200 [--samples 3]
    python benchmarks/gsm8k_programs.py --report
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, first_agreement, machine, quality_backend  # noqa: E402
from gsm8k import SUFFIX, problems  # noqa: E402

OUT = RESULTS / "gsm8k_programs.jsonl"
MODEL = "qwen2.5-coder-0.5b"


class _Sampling:
    """`model` with every request decoded at `temperature` with `seed`."""

    def __init__(self, model, temperature: float, seed: int):
        self.model, self.temperature, self.seed = model, temperature, seed
        self.name = model.name

    async def acomplete(self, request):
        update = {"temperature": self.temperature, "seed": self.seed}
        return await self.model.acomplete(request.model_copy(update=update))


async def _program(model, task: str) -> dict:
    from stepgraph.executors import PythonExecutor
    from stepgraph.executors.llm import writing_for
    from stepgraph.runtime.candidates import program_answer
    from stepgraph.verifier.numeric import single_number

    out = await program_answer(writing_for(PythonExecutor(), model), task, timeout=60)
    value = single_number(out.output) if out.ok else None
    data = out.data if isinstance(out.data, dict) else {}
    return {
        "claims": [value] if value is not None else [],
        "tokens": out.completion_tokens,
        "error": out.error,
        "fixed": data.get("fixed", []),
    }


def collect(limit: int, samples: int) -> None:
    done = (
        {json.loads(line)["idx"] for line in OUT.read_text().splitlines()}
        if OUT.exists()
        else set()
    )
    todo = [p for p in problems(limit) if p["idx"] not in done]
    if not todo:
        return
    backend = quality_backend(MODEL)
    models = {"program": backend}
    models |= {f"program-{i}": _Sampling(backend, 0.7, i) for i in range(1, samples + 1)}
    for item in todo:
        task = item["question"] + SUFFIX
        start = time.perf_counter()
        made = {name: asyncio.run(_program(m, task)) for name, m in models.items()}
        row = {
            "idx": item["idx"],
            "gold": float(item["answer"]),
            "seconds": round(time.perf_counter() - start, 2),
            **made,
        }
        with OUT.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            item["idx"], row["seconds"], {n: c["claims"][:1] for n, c in made.items()}, flush=True
        )
    backend.close()


def report() -> None:
    """Simulated cascades over these rows joined with gsm8k_candidates.jsonl's."""
    from stepgraph.verifier.choice import same

    mine = {r["idx"]: r for r in map(json.loads, OUT.read_text().splitlines())}
    other = {
        r["idx"]: r
        for r in map(json.loads, (RESULTS / "gsm8k_candidates.jsonl").read_text().splitlines())
    }
    direct = {
        r["idx"]: r
        for r in map(json.loads, (RESULTS / "gsm8k_direct.jsonl").read_text().splitlines())
    }
    rows = []
    for idx, r in mine.items():
        o = other[idx]
        rows.append(
            {
                "idx": idx,
                "gold": r["gold"],
                "direct": {
                    "claims": o["direct"]["claims"],
                    "tokens": direct[idx]["completion_tokens"],
                },
                "program-unfixed": o["program"],
                "sample-1": o["sample-1"],
                "sample-2": o["sample-2"],
                **{k: v for k, v in r.items() if k.startswith("program")},
            }
        )
    known = {}
    for r in rows:
        for name, c in r.items():
            if isinstance(c, dict) and c.get("tokens") is not None:
                known.setdefault(name, []).append(c["tokens"])
    known = {n: statistics.median(v) for n, v in known.items()}
    base_tokens = statistics.median(r["direct"]["tokens"] for r in rows)
    base_right = [direct[r["idx"]]["correct"] for r in rows]

    def cascade(row: dict, order: list[str]) -> tuple[float | None, float, bool]:
        """The value two candidates agree on first (verified), else the direct answer's. A
        value only programs give has no words a run could show: counted in `unshown`."""
        value, tokens, backers = first_agreement(
            (
                n,
                row[n]["claims"][0] if row[n]["claims"] else None,
                row[n]["tokens"] if row[n].get("tokens") is not None else known[n],
            )
            for n in order
        )
        if value is not None:
            if all(n.startswith("program") for n in backers):
                unshown[tuple(order)] += 1
            return value, tokens, True
        first = row["direct"]["claims"]
        return (first[0] if first else None), tokens, False

    unshown: collections.Counter = collections.Counter()
    names = sorted(k for k in rows[0] if k.startswith("program-") and k[8:].isdigit())
    orders = [
        ["direct"],
        ["direct", "program-unfixed", "sample-1", "sample-2"],
        ["direct", "program", "sample-1", "sample-2"],
        ["direct", "program", *names],
        ["direct", "program", *names[:2]],
        ["direct", "program", names[0], "sample-1", *names[1:]],
        ["direct", "program", "sample-1", *names],
        ["direct", "program", *names, "sample-1", "sample-2"],
    ]
    single = {
        n: sum(bool(r[n]["claims"]) and same(r[n]["claims"][0], r["gold"]) for r in rows)
        for n in ("direct", "program-unfixed", "program", *names, "sample-1", "sample-2")
    }
    lines = [
        f"# GSM8K: sampled programs as tie-breakers, 0.5B ({machine()['date']})",
        "",
        f"{len(rows)} problems of ../shared/data/gsm8k_dev.jsonl. Direct answering (the "
        f"benchmark's prompt) {sum(base_right)} right, median {base_tokens:g} generated tokens.",
        "Each candidate alone, right: " + ", ".join(f"{n} {v}" for n, v in single.items()) + ".",
        "",
        "| cascade (made in order until two agree; else direct) | right | wins | losses | p | "
        "verified | right when verified | of them programs alone | median tokens / direct |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    from gsm8k import sign_test

    for order in orders:
        got = [(r, *cascade(r, order)) for r in rows]
        right = [v is not None and same(v, r["gold"]) for r, v, _, _ in got]
        wins = sum(a and not b for a, b in zip(right, base_right, strict=True))
        losses = sum(b and not a for a, b in zip(right, base_right, strict=True))
        verified = sum(ok for *_, ok in got)
        v_right = sum(ok and good for (*_, ok), good in zip(got, right, strict=True))
        tokens = statistics.median(t for _, _, t, _ in got)
        lines.append(
            f"| {' > '.join(order)} | {sum(right)} | {wins} | {losses} | "
            f"{sign_test(wins, losses):.3g} | {verified} | {v_right} | "
            f"{unshown[tuple(order)]} | {tokens / base_tokens:.2f}x |"
        )
    (RESULTS / "gsm8k_programs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    report() if args.report else collect(args.limit, args.samples)
