"""Cascades replayed on a finished GSM8K run: what would another order of tie-breakers get?

A run's rows keep every candidate it made and the numbers each claimed, and the direct
mode's rows keep the model's plain answer to the same problems (the request the runtime's
`plain` candidate makes, since 2026-12-05). This replays, on those rows and with no model,
cascades that add the plain answer: candidates made in the order given until two agree on
a number, else a floor. A candidate the run never made (it stopped before it) counts as no
vote, so a replay of a run that stopped early flatters nothing it did not see.
Tokens are each candidate's own where the run made it, else that candidate's median.

    python benchmarks/gsm8k_replay.py [--rows gsm8k_run_before_plain.jsonl] [--model ...]

Prints the table and writes results/replay_<rows>.md. This is how the plain candidate was
chosen (2026-12-05, on the 0.5B run of that morning); a replay is a hint, a run is the
measurement.

    python benchmarks/gsm8k_replay.py --budgets --rows gsm8k_run.jsonl [--direct ...]

replays instead the runtime's `tie_budget` on a run made without one: each problem's
candidates in the order the run made them, stopped where the budget would have stopped
them (no tie-breaker starts once the candidates made have generated that many times the
direct candidate's tokens). Where nothing is dropped the run's own result counts; where
something is, the first two made candidates that agree give the answer, else the direct
one. Writes results/budgets_<rows>.md. This is how the default budget was chosen.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, first_agreement, machine  # noqa: E402
from gsm8k import final_number, sign_test  # noqa: E402

CASCADES = [  # (order, the floor when none agree)
    (["direct", "program", "sample-1", "sample-2"], "direct"),
    (["direct", "program", "plain", "sample-1"], "direct"),
    (["direct", "program", "plain", "sample-1", "sample-2"], "direct"),
    (["direct", "program", "plain", "sample-1", "sample-2"], "plain"),
    (["direct", "plain", "program", "sample-1", "sample-2"], "direct"),
]


def _read(rows_file: str, direct_file: str) -> tuple[list[dict], dict[int, dict]]:
    """A run's rows, and the direct mode's rows by problem."""
    run = [json.loads(line) for line in (RESULTS / rows_file).read_text().splitlines()]
    lines = (RESULTS / direct_file).read_text().splitlines()
    return run, {r["idx"]: r for r in map(json.loads, lines)}


def replay(rows_file: str, direct_file: str) -> list[str]:
    from stepgraph.verifier.choice import same

    run, direct = _read(rows_file, direct_file)
    rows = []
    for r in run:
        plain = final_number(direct[r["idx"]]["answer"])
        row = {
            "gold": float(str(r["gold"]).replace(",", "")),
            "plain": {
                "claims": [] if plain is None else [plain],
                "tokens": direct[r["idx"]]["completion_tokens"],
            },
        }
        for name in ("direct", "program", "sample-1", "sample-2"):
            claims = (r.get("candidates") or {}).get(name)
            row[name] = {
                "claims": claims if isinstance(claims, list) else [],
                "tokens": r.get("step_tokens", {}).get(name),
            }
        rows.append((r["idx"], row))
    known = {
        n: statistics.median([r[n]["tokens"] for _, r in rows if r[n]["tokens"]] or [0])
        for n in rows[0][1]
        if n != "gold"
    }
    base = [direct[i]["correct"] for i, _ in rows]
    base_tokens = statistics.median(direct[i]["completion_tokens"] for i, _ in rows)

    def cascade(row: dict, order: list[str], floor: str) -> tuple[float | None, float, bool]:
        value, tokens, _ = first_agreement(
            (n, (row[n]["claims"] or [None])[0], row[n]["tokens"] or known[n]) for n in order
        )
        if value is not None:
            return value, tokens, True
        first = row[floor]["claims"]
        return (first[0] if first else None), tokens, False

    lines = [
        f"# GSM8K: cascades replayed on {rows_file} ({machine()['date']})",
        "",
        f"{len(rows)} problems; the plain answer (direct mode, {direct_file}) right on "
        f"{sum(base)}, median {base_tokens:g} generated tokens. Wins and losses against it.",
        "",
        "| cascade (until two agree) | floor | right | wins | losses | p | verified | "
        "median tokens / plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for order, floor in CASCADES:
        got = [cascade(r, order, floor) for _, r in rows]
        right = [
            v is not None and same(v, r["gold"])
            for (v, _, _), (_, r) in zip(got, rows, strict=True)
        ]
        wins = sum(a and not b for a, b in zip(right, base, strict=True))
        losses = sum(b and not a for a, b in zip(right, base, strict=True))
        tokens = statistics.median(t for _, t, _ in got)
        lines.append(
            f"| {' > '.join(order)} | {floor} | {sum(right)} | {wins} | {losses} | "
            f"{sign_test(wins, losses):.3g} | {sum(ok for *_, ok in got)} | "
            f"{tokens / base_tokens:.2f}x |"
        )
    return lines


BUDGETS = [3.0, 3.5, 4.0, 4.5, 5.0, None]
NAMES = ("direct", "program", "plain", "sample-1", "sample-2")


def budgets(rows_file: str, direct_file: str) -> list[str]:
    from stepgraph.verifier.choice import same

    run, direct = _read(rows_file, direct_file)
    base = [direct[r["idx"]]["correct"] for r in run]
    base_tokens = statistics.median(direct[r["idx"]]["completion_tokens"] for r in run)

    def replayed(r: dict, budget: float | None) -> tuple[bool, int]:
        spent = r.get("step_tokens", {})
        made = [n for n in r["candidates"] if n in NAMES]
        kept, used = made[:1], spent.get("direct", 0)
        for name in made[1:]:
            if budget is not None and used >= budget * spent.get("direct", 0) > 0:
                break
            kept.append(name)
            used += spent.get(name, 0)
        if len(kept) == len(made):
            return r["correct"], r["completion_tokens"]
        dropped = sum(spent.get(n, 0) for n in made if n not in kept)
        votes = [
            (n, c[-1])
            for n in ["composed", *kept]
            if isinstance(c := r["candidates"].get(n), list) and c
        ]
        agreed, _, _ = first_agreement((n, v, 0) for n, v in votes)
        value = dict(votes).get("direct") if agreed is None else agreed
        gold = float(str(r["gold"]).replace(",", ""))
        return value is not None and same(value, gold), r["completion_tokens"] - dropped

    lines = [
        f"# GSM8K: tie budgets replayed on {rows_file} ({machine()['date']})",
        "",
        f"{len(run)} problems; direct answering ({direct_file}) right on {sum(base)}, median "
        f"{base_tokens:g} generated tokens. Wins and losses against it.",
        "",
        "| tie budget (x the direct candidate) | right | wins | losses | p | "
        "median tokens / direct |",
        "|---|---|---|---|---|---|",
    ]
    for budget in BUDGETS:
        got = [replayed(r, budget) for r in run]
        right = [ok for ok, _ in got]
        wins = sum(a and not b for a, b in zip(right, base, strict=True))
        losses = sum(b and not a for a, b in zip(right, base, strict=True))
        tokens = statistics.median(t for _, t in got)
        lines.append(
            f"| {'none' if budget is None else f'{budget:g}'} | {sum(right)} | {wins} | "
            f"{losses} | {sign_test(wins, losses):.3g} | {tokens / base_tokens:.2f}x |"
        )
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="gsm8k_run_before_plain.jsonl")
    parser.add_argument("--direct", default="gsm8k_direct.jsonl")
    parser.add_argument("--budgets", action="store_true", help="replay tie budgets instead")
    args = parser.parse_args()
    lines = (budgets if args.budgets else replay)(args.rows, args.direct)
    kind = "budgets" if args.budgets else "replay"
    out = RESULTS / f"{kind}_{Path(args.rows).stem}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
