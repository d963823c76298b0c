"""GSM8K: a full stepgraph run against the same model answering directly.

Both modes get the same text: the problem and "Give the final answer as a number." and the
same answer rule: the number after "Answer:" when there is one, else the last number.
`direct` is one chat completion in which the model may reason as it likes (greedy, 512
tokens). `run` is a whole Runtime run: plan, python and calculator steps, verification,
composition. Problems are the first N of ../shared/data/gsm8k_dev.jsonl in file order.

Each problem writes one JSON line to benchmarks/results/gsm8k_<mode>.jsonl as it finishes,
so a stopped benchmark continues where it stopped; every call (and one without `--mode`)
writes the summary, gsm8k.md.

`run` is the default Runtime: the plan's composed answer is cross-checked against the
model's own direct answer (and, when they disagree, a whole-problem program, a plain answer
in other words without the calculator, and two samples), and the answer is chosen by
agreement. (The plain answer is asked in the words of `direct` below: the run checks the
very answer it is compared with, since 2026-12-05.) `run-plan-only` is `Runtime(direct=False)`,
the plan-and-compose pipeline alone (what `run` was before 2026-12-04; its older rows are
kept under that name). `run-no-calc` is the plan-only run with `calculate=False`.
`--mode both` answers each problem directly and with a run, one after the other, so the
paired rows grow together.

The summary compares run and direct on the problems both answered: accuracy, wins and
losses (problems one gets right and the other wrong) with an exact two-sided sign test,
and median generated tokens (a run's include its plan, every step and every candidate);
the headline goes to results/quality.json.

`--model qwen2.5-coder-1.5b` runs a mode with the larger embedded model (every mode, planner
included, uses that one model; it has no shipped planner adapter, so it plans with the
few-shot prompt); its rows go to gsm8k_<mode>_1.5b.jsonl and its own table in gsm8k.md.

Run: .venv/bin/python benchmarks/gsm8k.py --mode both|direct|run|run-plan-only|run-no-calc
     [--limit 200] [--model M]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, STORES, add_batched_option, machine, quality_backend  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k_dev.jsonl"
SUFFIX = "\n\nGive the final answer as a number."
DIRECT_SYSTEM = (
    "Solve the math word problem. Think step by step, then write the final answer on the "
    "last line as 'Answer: <number>'."
)
MODES = ("direct", "run", "run-plan-only", "run-no-calc")
RUN_SECONDS = 240.0  # a run budget per problem (a run out of time answers with its direct answer)
NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def final_number(text: str) -> float | None:
    """The number after the last "Answer:", else the last number in the text."""
    tail = text.rsplit("nswer:", 1)[-1] if "nswer:" in text else text
    found = NUMBER.findall(tail) or NUMBER.findall(text)
    if not found:
        return None
    return _value(found[-1] if tail is text else found[0])


def _value(token: str) -> float | None:
    """A NUMBER match as a float ("$1,020.50" -> 1020.5)."""
    try:
        return float(token.replace("$", "").replace(",", ""))
    except ValueError:
        return None


def problems(limit: int) -> list[dict]:
    return [json.loads(line) for line in DATA.read_text().splitlines()][:limit]


def _done(out: Path) -> set[int]:
    if not out.exists():
        return set()
    return {json.loads(line)["idx"] for line in out.read_text().splitlines()}


def _direct(backend, question: str) -> dict:
    from stepgraph.models.base import Message, Request

    request = Request(
        messages=[
            Message(role="system", content=DIRECT_SYSTEM),
            Message(role="user", content=question + SUFFIX),
        ],
        max_tokens=512,
    )
    completion = backend.complete(request)
    return {
        "answer": completion.text,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "status": "done",
    }


def _run(runtime, question: str) -> dict:
    result = runtime.run(question + SUFFIX)
    verdicts = [v for s in result.steps for v in s.verdicts if v.passed is False]
    return {
        "answer": result.answer,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "status": result.status,
        "run_id": result.run_id,
        "steps": [f"{s.executor}:{s.status}" for s in result.steps],
        # where the generated tokens went: each step and candidate (the rest is the planner
        # and the composer)
        "step_tokens": {s.step_id: s.completion_tokens for s in result.steps},
        "failed_checks": len(verdicts),
        # what the calculator and python steps computed: was the right value ever there?
        "computed": [s.output.strip()[:80] for s in result.steps if s.executor != "llm"],
        # the candidates the run weighed, the numbers each claimed, and which one answered
        "chosen": result.chosen,
        "candidates": {c.name: c.claims if c.usable else c.error for c in result.candidates},
        "cross_check": next(
            (v.evidence for v in result.verdicts if v.check == "cross_check"), None
        ),
    }


def _results(mode: str, model: str) -> Path:
    """Rows of one mode and model; the default model keeps the file names it always had."""
    from stepgraph.models import embedded

    tail = "" if model == embedded.DEFAULT_MODEL else "_" + model.rsplit("-", 1)[-1]
    return RESULTS / f"gsm8k_{mode.replace('-', '_')}{tail}.jsonl"


def run(mode: str, limit: int, model: str, batched: bool = False) -> None:
    modes = ["direct", "run"] if mode == "both" else [mode]
    done = {m: _done(_results(m, model)) for m in modes}
    todo = [p for p in problems(limit) if any(p["idx"] not in done[m] for m in modes)]
    if not todo:
        return
    backend = quality_backend(model, batched)
    runtimes = {}
    for m in modes:
        if m.startswith("run"):
            from stepgraph import Runtime

            # every candidate's text stays for analysis (git-ignored); a resumed run adds to it
            STORES.mkdir(parents=True, exist_ok=True)
            store = STORES / f"{_results(m, model).stem}.db"
            runtimes[m] = Runtime(
                backend,
                store=store,
                max_seconds=RUN_SECONDS,
                calculate=m != "run-no-calc",
                direct=m == "run",
            )
    for item in todo:
        for m in modes:
            if item["idx"] in done[m]:
                continue
            start = time.perf_counter()
            if m in runtimes:
                row = _run(runtimes[m], item["question"])
            else:
                row = _direct(backend, item["question"])
            got = final_number(row["answer"])
            row = {
                "idx": item["idx"],
                "gold": item["answer"],
                "got": got,
                "correct": got is not None and abs(got - float(item["answer"])) < 1e-6,
                "seconds": round(time.perf_counter() - start, 2),
                **row,
            }
            with _results(m, model).open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                m, row["idx"], row["correct"], row["got"], row["gold"], row["seconds"], flush=True
            )
    backend.close()


def summarize(limit: int) -> None:
    from stepgraph.models import embedded

    m = machine()
    lines = [f"# GSM8K: full run against direct answering ({m['date']})", ""]
    for model in embedded.EMBEDDED:
        lines += _table(model, limit, m)
    (RESULTS / "gsm8k.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _table(model: str, limit: int, m: dict) -> list[str]:
    """One model's modes, compared on the problems every mode of it has answered."""
    paths = {mode: _results(mode, model) for mode in MODES if _results(mode, model).exists()}
    if not paths:
        return []
    ids = {p["idx"] for p in problems(limit)}
    for path in paths.values():
        ids &= {json.loads(line)["idx"] for line in path.read_text().splitlines()}
    lines = [
        f"## {model}",
        "",
        f"Machine: {m['cpus']} cores, {m['cpu']}, no GPU. Model: {model} (embedded, "
        f"llama.cpp, greedy) in every mode. Problems: the first {len(ids)} of "
        "shared/data/gsm8k_dev.jsonl that every mode has answered. `run` is the default Runtime (verifier on, no judge, "
        f"2 revisions, 1 replan) with a {RUN_SECONDS:g} s budget per problem; `run-no-calc` is the same with "
        "`calculate=False`.",
        "",
        "| mode | problems | correct | rate | tokens/problem (mean) | s/problem (median, mean) |",
        "|---|---|---|---|---|---|",
    ]
    rates = {}
    answered = {
        mode: [r for r in map(json.loads, path.read_text().splitlines()) if r["idx"] in ids]
        for mode, path in paths.items()
    }
    for mode, rows in answered.items():
        if not rows:
            continue
        correct = sum(r["correct"] for r in rows)
        rates[mode] = 100 * correct / len(rows)
        tokens = statistics.mean(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
        seconds = [r["seconds"] for r in rows]
        lines.append(
            f"| {mode} | {len(rows)} | {correct} | {rates[mode]:.1f} % | {tokens:.0f} | "
            f"{statistics.median(seconds):.1f}, {statistics.mean(seconds):.1f} |"
        )
    if "run" in rates and "direct" in rates:
        lines += ["", f"Difference, run - direct: {rates['run'] - rates['direct']:+.1f} points."]
        limited = {p["idx"] for p in problems(limit)}
        full = {
            mode: [
                r
                for r in map(json.loads, paths[mode].read_text().splitlines())
                if r["idx"] in limited
            ]
            for mode in ("direct", "run")
        }
        lines += _paired(model, full["direct"], full["run"], m)
    for mode, rows in answered.items():
        wrong = [r for r in rows if "computed" in r and not r["correct"]]
        if wrong:
            lost = sum(_computes(r["computed"], float(r["gold"])) for r in wrong)
            lines.append(
                f"`{mode}`: of {len(wrong)} wrong answers, {lost} had the right value in a "
                "calculator or python step's output (lost in the last steps), "
                f"{len(wrong) - lost} never computed it (the plan's calculations were wrong or failed)."
            )
    return [*lines, ""]


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial (sign) test of wins against losses, ties left out."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def _paired(model: str, direct: list[dict], run: list[dict], m: dict) -> list[str]:
    """Wins, losses, the sign test and the token ratio of run over direct; the headline
    figures also go to results/quality.json under gsm8k.<model>, unless it holds figures on
    more problems (rows of a run still under way do not replace a whole run's)."""
    by_id = {r["idx"]: r for r in direct}
    pairs = [(by_id[r["idx"]], r) for r in run if r["idx"] in by_id]
    wins = sum(r["correct"] and not d["correct"] for d, r in pairs)
    losses = sum(d["correct"] and not r["correct"] for d, r in pairs)
    p = sign_test(wins, losses)
    tokens = {
        name: statistics.median(row["completion_tokens"] for row in rows)
        for name, rows in (("direct", [d for d, _ in pairs]), ("run", [r for _, r in pairs]))
    }
    ratio = tokens["run"] / tokens["direct"] if tokens["direct"] else float("nan")
    n = len(pairs)
    figures = {
        "n": n,
        "direct": round(sum(d["correct"] for d, _ in pairs) / n, 4),
        "run": round(sum(r["correct"] for _, r in pairs) / n, 4),
        "wins": wins,
        "losses": losses,
        "p": float(f"{p:.3g}"),  # significant figures: p can be 1e-6
        "tokens_ratio": round(ratio, 2),
        "median_tokens": tokens,
        "verified": sum(r.get("status") == "done" for _, r in pairs),
        "verified_correct": sum(r.get("status") == "done" and r["correct"] for _, r in pairs),
        "machine": f"{m['cpus']} cores, {m['cpu']}",
        "date": m["date"],
    }
    path = RESULTS / "quality.json"
    quality = json.loads(path.read_text()) if path.exists() else {}
    stored = quality.setdefault("gsm8k", {}).get(model)
    kept = []
    if stored and stored["n"] > n:  # a run still under way does not replace a whole one
        kept = [f"quality.json keeps its figures on {stored['n']} problems ({stored['date']})."]
    else:
        quality["gsm8k"][model] = figures
        path.write_text(json.dumps(quality, indent=2) + "\n")
    verified = figures["verified"]
    ablation = _tie_breakers([r for _, r in pairs])
    return [
        *ablation,
        f"Paired on {n} problems: run wins {wins}, loses {losses} (exact sign test p = {p:.3g}); "
        f"median generated tokens {tokens['run']:.0f} against {tokens['direct']:.0f} "
        f"({ratio:.2f}x). The run called {verified} answers verified (status done), "
        f"{figures['verified_correct']} of them right.",
        *kept,
    ]


def _tie_breakers(rows: list[dict]) -> list[str]:
    """What each tie-breaker adds, replayed from the candidates' recorded claims with
        `stepgraph.verifier.choose` (their failed checks are not in the rows, so every vote
        counts whole here): the value chosen from the composed and direct answers alone, with
        the program, the plain answer and the samples too, against the gold answer (a run made
    before 2026-12-05 has no plain answer)."""
    from stepgraph.verifier import Candidate, choose

    subsets = {
        "composed + direct": ("composed", "direct"),
        "+ program": ("composed", "direct", "program"),
        "+ program + plain": ("composed", "direct", "program", "plain"),
        "+ program + plain + samples": (
            "composed",
            "direct",
            "program",
            "plain",
            "sample-1",
            "sample-2",
        ),
    }
    right = dict.fromkeys(subsets, 0)
    rows = [r for r in rows if isinstance(r.get("candidates"), dict)]
    for row in rows:
        for label, names in subsets.items():
            candidates = [
                Candidate(
                    name=name,
                    answer="x" if isinstance(claims, list) else "",
                    claims=claims if isinstance(claims, list) else [],
                    error=None if isinstance(claims, list) else str(claims),
                    presentable=name != "program",
                )
                for name, claims in row["candidates"].items()
                if name in names
            ]
            value = choose(candidates, numeric=True).value
            right[label] += value is not None and abs(value - float(row["gold"])) < 1e-6
    if not rows:
        return []
    shown = ", ".join(f"{label} {n}/{len(rows)}" for label, n in right.items())
    return [
        f"Candidates replayed from the rows (chosen value against the gold answer): {shown}.",
        "",
    ]


def _computes(outputs: list[str], gold: float) -> bool:
    values = (_value(n) for text in outputs for n in NUMBER.findall(text))
    return any(v is not None and abs(v - gold) < 1e-6 for v in values)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=(*MODES, "both"))
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="an embedded model name")
    add_batched_option(parser)
    args = parser.parse_args()
    if args.mode:
        run(args.mode, args.limit, args.model, args.batched)
    summarize(args.limit)
