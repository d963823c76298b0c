"""Every candidate on every GSM8K dev problem, to choose how a run should spend its tokens.

A run's tie-breakers (a whole-problem program, samples at temperature 0.7) were only made
where the direct and the composed answer disagreed, so the run rows cannot say what a
cascade that starts from other candidates would get. This fills the gaps: for each of the
200 problems it keeps the candidates the runtime before the cascade made
(`gsm8k_run_before_cascade.jsonl`: the same requests the runtime makes, `direct_request`,
`program_answer`, seeds 1 and 2) and makes the missing ones with the runtime's own
functions. Older rows kept no tokens per candidate: there the report counts the median of
that candidate's known tokens. Rows are written as they are made (resumable); `--report`
simulates cascades on the complete rows.

    python benchmarks/gsm8k_candidates.py --limit 200
    python benchmarks/gsm8k_candidates.py --report
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, first_agreement, machine  # noqa: E402
from gsm8k import SUFFIX, problems  # noqa: E402

OUT = RESULTS / "gsm8k_candidates.jsonl"
NAMES = ("direct", "program", "sample-1", "sample-2")


def _stored() -> dict[int, dict]:
    """The candidates' numbers and tokens the benchmark's run rows already hold."""
    rows = {}
    for line in (RESULTS / "gsm8k_run_before_cascade.jsonl").read_text().splitlines():
        r = json.loads(line)
        tokens = r.get("step_tokens", {})
        rows[r["idx"]] = {
            name: {"claims": claims, "tokens": tokens.get(name)}
            for name, claims in (r.get("candidates") or {}).items()
            if name in NAMES and isinstance(claims, list)
        }
    return rows


async def _make(runtime, name: str, task: str) -> dict:
    from stepgraph.executors.llm import answer
    from stepgraph.runtime.candidates import direct_request, program_answer
    from stepgraph.verifier.choice import answer_claims
    from stepgraph.verifier.numeric import single_number

    if name == "program":
        out = await program_answer(runtime.executors["python"], task, timeout=60)
        value = single_number(out.output) if out.ok else None
        claims = [value] if value is not None else []
    else:
        seed = int(name.rsplit("-", 1)[1]) if name.startswith("sample") else 0
        request = direct_request(
            task, [], reasoning=True, temperature=0.7 if seed else 0.0, seed=seed
        )
        out = await answer(runtime.model, request, calculate=True)
        claims = answer_claims(out.output, task) if out.ok else []
    return {"claims": claims, "tokens": out.completion_tokens}


def collect(limit: int) -> None:
    from stepgraph import Runtime
    from stepgraph.models import embedded
    from stepgraph.models.llamacpp import LlamaCppBackend

    done = (
        {json.loads(line)["idx"] for line in OUT.read_text().splitlines()}
        if OUT.exists()
        else set()
    )
    todo = [p for p in problems(limit) if p["idx"] not in done]
    if not todo:
        return
    stored = _stored()
    backend = LlamaCppBackend(embedded.model_path(), n_ctx=8192)
    runtime = Runtime(backend, store=Path(tempfile.mkdtemp()) / "c.db")
    for item in todo:
        task = item["question"] + SUFFIX
        have = dict(stored.get(item["idx"], {}))
        start = time.perf_counter()
        for name in NAMES:
            if name not in have:
                have[name] = asyncio.run(_make(runtime, name, task))
        row = {
            "idx": item["idx"],
            "gold": float(item["answer"]),
            "seconds": round(time.perf_counter() - start, 2),
            **{n: have[n] for n in NAMES},
        }
        with OUT.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(item["idx"], row["seconds"], {n: have[n]["claims"][:1] for n in NAMES}, flush=True)
    runtime.close()
    backend.close()


def report() -> None:
    """Simulated cascades: candidates made in order until two agree (verified) or the list
    ends; a tie goes to the first candidate. Accuracy and median tokens against the direct
    answer's."""
    from stepgraph.verifier.choice import same

    rows = [json.loads(line) for line in OUT.read_text().splitlines()]
    direct = {
        json.loads(line)["idx"]: json.loads(line)
        for line in (RESULTS / "gsm8k_direct.jsonl").read_text().splitlines()
    }
    base_tokens = statistics.median(direct[r["idx"]]["completion_tokens"] for r in rows)
    base = sum(direct[r["idx"]]["correct"] for r in rows)

    known = {  # for rows that kept no tokens per candidate
        n: statistics.median([r[n]["tokens"] for r in rows if r[n]["tokens"] is not None] or [0])
        for n in NAMES
    }

    def first_claim(c: dict) -> float | None:
        return c["claims"][0] if c["claims"] else None

    def cost(row: dict, name: str) -> float:
        if row[name]["tokens"] is not None:
            return row[name]["tokens"]
        if name == "direct":  # the benchmark's direct answer, a prompt much like it
            return direct[row["idx"]]["completion_tokens"]
        return known[name]

    def cascade(row: dict, order: list[str]) -> tuple[float | None, float, bool]:
        """The number two agree on first (verified), else the first number claimed."""
        value, tokens, _ = first_agreement((n, first_claim(row[n]), cost(row, n)) for n in order)
        if value is not None:
            return value, tokens, True
        return next((first_claim(row[n]) for n in order if row[n]["claims"]), None), tokens, False

    lines = [
        f"# GSM8K candidates: simulated cascades ({machine()['date']})",
        "",
        f"{len(rows)} problems; direct answering (benchmark prompt) {base} right, median "
        f"{base_tokens:g} generated tokens.",
        "",
        "| cascade (made in order until two agree) | right | wins | losses | verified | right when verified | median tokens / direct |",
        "|---|---|---|---|---|---|---|",
    ]
    orders = [
        ["direct"],
        ["direct", "program"],
        ["direct", "program", "sample-1"],
        ["direct", "program", "sample-1", "sample-2"],
        ["direct", "sample-1", "sample-2"],
        ["direct", "sample-1", "program", "sample-2"],
    ]
    for order in orders:
        got = [(r, *cascade(r, order)) for r in rows]
        right = [v is not None and same(v, r["gold"]) for r, v, _, _ in got]
        d_right = [direct[r["idx"]]["correct"] for r in rows]
        wins = sum(a and not b for a, b in zip(right, d_right, strict=True))
        losses = sum(b and not a for a, b in zip(right, d_right, strict=True))
        verified = [(ok, r) for (r, _, _, ok) in got]
        v_right = sum(1 for (r, v, _, ok), good in zip(got, right, strict=True) if ok and good)
        tokens = statistics.median(t for _, _, t, _ in got)
        lines.append(
            f"| {' > '.join(order)} | {sum(right)} | {wins} | {losses} | "
            f"{sum(ok for ok, _ in verified)} | {v_right} | {tokens / base_tokens:.2f}x |"
        )
    (RESULTS / "gsm8k_candidates.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    report() if args.report else collect(args.limit)
