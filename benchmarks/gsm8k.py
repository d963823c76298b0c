"""GSM8K: a full stepgraph run against the same model answering directly.

Both modes get the same text: the problem and "Give the final answer as a number." and the
same answer rule: the number after "Answer:" when there is one, else the last number.
`direct` is one chat completion in which the model may reason as it likes (greedy, 512
tokens). `run` is a whole Runtime run: plan, python and calculator steps, verification,
composition. Problems are the first N of ../shared/data/gsm8k_dev.jsonl in file order.

Each problem writes one JSON line to benchmarks/results/gsm8k_<mode>.jsonl as it finishes,
so a stopped benchmark continues where it stopped; every call (and one without `--mode`)
writes the summary, gsm8k.md.

`run-no-calc` is `run` with `Runtime(calculate=False)`: the calculator does not write the
results of the arithmetic the model writes out, so the two rows show what that adds.

`--model qwen2.5-coder-1.5b` runs a mode with the larger embedded model (every mode, planner
included, uses that one model; it has no shipped planner adapter, so it plans with the
few-shot prompt); its rows go to gsm8k_<mode>_1.5b.jsonl and its own table in gsm8k.md.

Run: .venv/bin/python benchmarks/gsm8k.py --mode direct|run|run-no-calc [--limit 50] [--model M]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k_dev.jsonl"
SUFFIX = "\n\nGive the final answer as a number."
DIRECT_SYSTEM = (
    "Solve the math word problem. Think step by step, then write the final answer on the "
    "last line as 'Answer: <number>'."
)
MODES = ("direct", "run", "run-no-calc")
RUN_SECONDS = 120.0  # a run budget per problem, so one bad plan cannot take the hour
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
    verdicts = [v for s in result.steps for v in s.verdicts if v["passed"] is False]
    return {
        "answer": result.answer,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "status": result.status,
        "run_id": result.run_id,
        "steps": [f"{s.executor}:{s.status}" for s in result.steps],
        "failed_checks": len(verdicts),
        # what the calculator and python steps computed: was the right value ever there?
        "computed": [s.output.strip()[:80] for s in result.steps if s.executor != "llm"],
    }


def _results(mode: str, model: str) -> Path:
    """Rows of one mode and model; the default model keeps the file names it always had."""
    from stepgraph.models import embedded

    tail = "" if model == embedded.DEFAULT_MODEL else "_" + model.rsplit("-", 1)[-1]
    return RESULTS / f"gsm8k_{mode.replace('-', '_')}{tail}.jsonl"


def run(mode: str, limit: int, model: str) -> None:
    from stepgraph.models import embedded
    from stepgraph.models.llamacpp import LlamaCppBackend

    out = _results(mode, model)
    todo = [p for p in problems(limit) if p["idx"] not in _done(out)]
    if not todo:
        return
    backend = LlamaCppBackend(embedded.model_path(model), name=model, n_ctx=16384)
    runtime = None
    if mode.startswith("run"):
        from stepgraph import Runtime

        store = Path(tempfile.mkdtemp()) / "gsm8k.db"
        calculate = mode != "run-no-calc"
        runtime = Runtime(backend, store=store, max_seconds=RUN_SECONDS, calculate=calculate)
    with out.open("a") as f:
        for item in todo:
            start = time.perf_counter()
            row = (
                _direct(backend, item["question"])
                if runtime is None
                else _run(runtime, item["question"])
            )
            got = final_number(row["answer"])
            row = {
                "idx": item["idx"],
                "gold": item["answer"],
                "got": got,
                "correct": got is not None and abs(got - float(item["answer"])) < 1e-6,
                "seconds": round(time.perf_counter() - start, 2),
                **row,
            }
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(row["idx"], row["correct"], row["got"], row["gold"], row["seconds"], flush=True)
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


def _computes(outputs: list[str], gold: float) -> bool:
    values = (_value(n) for text in outputs for n in NUMBER.findall(text))
    return any(v is not None and abs(v - gold) < 1e-6 for v in values)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="an embedded model name")
    args = parser.parse_args()
    if args.mode:
        run(args.mode, args.limit, args.model)
    summarize(args.limit)
