"""IFEval, no model: what the runtime's code-only repairs do to the model's direct answers.

Reads the direct answers that `ifeval.py --mode direct` wrote, reads each prompt's
constraints from its text (`extract_constraints`, as the runtime does), applies the
mechanical repairs the composer applies (`composer.repaired`: each kept only when the
answer then fails fewer of the prompt's checks; then `composer.trimmed`, the cut to an upper
bound on words or sentences that it applies once revisions fail), and scores both with Google's checkers
(`_ifeval_score.py`). The instruction ids and kwargs are read by the scorer alone.

This isolates one part of a run: no plan, no revision by the model, no candidates. It
costs seconds, so a change to a repair can be measured on all answered prompts before a
model run; the run benchmark remains the measure of the runtime.

Run: .venv/bin/python benchmarks/ifeval_repair.py [--model M]
Writes results/ifeval_repair.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _ifeval_score as scorer  # noqa: E402
from _common import RESULTS, machine  # noqa: E402
from ifeval import _results, _rows, prompts  # noqa: E402


def main() -> None:
    from stepgraph.models import embedded
    from stepgraph.verifier.composer import repaired, trimmed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=embedded.DEFAULT_MODEL)
    args = parser.parse_args()
    items = {p["key"]: p for p in prompts(None)}
    rows = [r for r in _rows(_results("direct", args.model)) if r["key"] in items]
    if not rows:
        raise SystemExit("no direct answers yet: run ifeval.py --mode direct first")
    before, after = scorer.Metrics(), scorer.Metrics()
    wins = losses = changed = 0
    kinds: dict[str, list[int]] = {}  # instruction id -> [passed before, passed after, total]
    for row in rows:
        item = items[row["key"]]
        # the repairs, then the last resort the composer keeps for after revisions: a cut
        # to an upper bound on words or sentences
        fixed = trimmed(item["prompt"], repaired(item["prompt"], row["answer"]))
        changed += fixed != row["answer"]
        a, b = scorer.score(item, row["answer"]), scorer.score(item, fixed)
        before.add(item["instruction_id_list"], a)
        after.add(item["instruction_id_list"], b)
        wins += all(b["strict"]) and not all(a["strict"])
        losses += all(a["strict"]) and not all(b["strict"])
        for iid, x, y in zip(item["instruction_id_list"], a["strict"], b["strict"], strict=True):
            k = kinds.setdefault(iid, [0, 0, 0])
            k[0], k[1], k[2] = k[0] + x, k[1] + y, k[2] + 1
    m = machine()
    lines = [
        f"# IFEval: the direct answers, and the same answers after code-only repair ({m['date']})",
        "",
        f"Model: {args.model}. Answers: {len(rows)} direct answers of results/"
        f"{_results('direct', args.model).name}; {changed} changed by a repair. No model call.",
        "",
        "| | prompt strict | instruction strict | prompt loose | instruction loose |",
        "|---|---|---|---|---|",
    ]
    for name, metrics in (("direct", before), ("direct + repair", after)):
        rates = metrics.rates()
        lines.append(f"| {name} | " + " | ".join(f"{100 * v:.1f} %" for v in rates.values()) + " |")
    lines += [
        "",
        f"Prompt-level strict, paired: repair wins {wins}, loses {losses} "
        f"(sign test p = {scorer.sign_test(wins, losses):.3g}).",
        "",
        "| instruction id | direct | + repair | prompts |",
        "|---|---|---|---|",
    ]
    for iid, (x, y, n) in sorted(kinds.items(), key=lambda kv: kv[1][1] - kv[1][0], reverse=True):
        lines.append(f"| {iid} | {x} | {y} | {n} |")
    (RESULTS / "ifeval_repair.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
