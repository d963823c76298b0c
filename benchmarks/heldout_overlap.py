"""How far the held-out planner split is from everything the planner has seen.

The shipped planner adapter was trained on the seeds and the Evol-Instruct records grown
from them, and scored on gold.jsonl, whose style the seeds share; the bare model sees the
prompt's few-shot examples. A planner comparison on data that resembles any of these
measures how well a planner fits that style, not how well it plans. This script checks that
`stepgraph/evolve/data/heldout.jsonl` and `heldout_tools.jsonl` do not resemble them: for each held-out instruction
it prints the largest similarity to any instruction in

- the adapter's training files, read from the adapter's own record
  (`stepgraph/evolve/adapters/*-planner.json`, `training_data`, SHA-256 checked):
  the seed files and the Evol-Instruct records grown from them;
- gold.jsonl;
- the planner prompt's few-shot examples (`stepgraph.planner.prompt.EXAMPLES`);

by two measures: Jaccard similarity of the lowercased word sets, and
`stepgraph.evolve.evaluate.text_similarity` (the token F1 the gold scorer matches steps
with). Conversation turns of multi-turn items are compared too, as their own texts. As a
reference point it prints the same statistics for the gold items against the training
files and few-shot examples. Items above --limit (Jaccard, default 0.35) are flagged, and
the exit status is 1 if any is.

Cheap (a few thousand string comparisons, no model): .venv/bin/python benchmarks/heldout_overlap.py
[--data FILE ...] (`--data`, repeated: check the files a retrain would use instead, before
the adapter and its record exist)
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stepgraph.evolve.evaluate import text_similarity  # noqa: E402
from stepgraph.evolve.evolve import GOLD_FILE as GOLD  # noqa: E402
from stepgraph.evolve.evolve import HELDOUT_FILE, HELDOUT_TOOLS_FILE  # noqa: E402
from stepgraph.planner.prompt import EXAMPLES  # noqa: E402

ADAPTERS = ROOT / "stepgraph" / "evolve" / "adapters"

_WORD = re.compile(r"\w+")


@functools.cache  # each reference text is compared with every held-out item
def words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def read_records(path: Path) -> list[dict]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def texts_of(record: dict, label: str) -> list[tuple[str, str]]:
    """(label, text): the instruction, then each conversation turn."""
    out = [(label, record["instruction"])]
    for n, turn in enumerate(record.get("conversation") or []):
        out.append((f"{label}#turn{n}", turn["content"]))
    return out


def training_files() -> list[Path]:
    """The training files named in the shipped adapters' records, hashes checked."""
    files: list[Path] = []
    for record_path in sorted(ADAPTERS.glob("*-planner.json")):
        record = json.loads(record_path.read_text(encoding="utf-8"))
        for entry in record.get("training_data", []):
            path = ROOT / entry["path"]
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != entry["sha256"]:
                print(f"warning: {entry['path']} does not match the SHA-256 in {record_path.name}")
            if path not in files:
                files.append(path)
    if not files:
        sys.exit(f"no adapter record with training_data under {ADAPTERS}")
    return files


def references(files: list[Path], *, gold: bool) -> dict[str, list[tuple[str, str]]]:
    """Source name -> (label, text) pairs."""
    out: dict[str, list[tuple[str, str]]] = {}
    for path in files:
        out[path.name] = [t for r in read_records(path) for t in texts_of(r, r["id"])]
    if gold:
        out[GOLD.name] = [t for r in read_records(GOLD) for t in texts_of(r, r["id"])]
    out["few-shot"] = [(f"example-{n + 1}", text) for n, (text, _) in enumerate(EXAMPLES)]
    return out


def nearest(text: str, refs: dict[str, list[tuple[str, str]]]) -> dict[str, tuple[float, str]]:
    """Max Jaccard and max text_similarity over all references, each with its label."""
    own = words(text)
    best = {"jaccard": (0.0, ""), "token_f1": (0.0, "")}
    for pairs in refs.values():
        for label, other in pairs:
            j = jaccard(own, words(other))
            if j > best["jaccard"][0]:
                best["jaccard"] = (j, label)
            f = text_similarity(text, other)
            if f > best["token_f1"][0]:
                best["token_f1"] = (f, label)
    return best


def score(items: list[dict], refs: dict[str, list[tuple[str, str]]]) -> list[dict]:
    rows = []
    for item in items:
        per_text = [nearest(text, refs) for _, text in texts_of(item, item["id"])]
        rows.append(
            {
                "id": item["id"],
                "kind": item["kind"],
                "jaccard": max(p["jaccard"] for p in per_text),
                "token_f1": max(p["token_f1"] for p in per_text),
            }
        )
    return rows


def summary(name: str, rows: list[dict]) -> None:
    for key in ("jaccard", "token_f1"):
        values = [r[key][0] for r in rows]
        top = max(rows, key=lambda r: r[key][0])
        print(
            f"{name:<28} {key:<8} max {max(values):.3f} ({top['id']} ~ {top[key][1]})  "
            f"median {statistics.median(values):.3f}  mean {statistics.fmean(values):.3f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--heldout",
        type=Path,
        action="append",
        help="held-out file to check, repeat (default: heldout.jsonl and heldout_tools.jsonl)",
    )
    parser.add_argument("--limit", type=float, default=0.35, help="flag a Jaccard above this")
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        help="training files to check instead of the shipped adapters' (before a retrain)",
    )
    args = parser.parse_args()

    files = [p.resolve() for p in args.data] if args.data else training_files()
    if missing := [str(p) for p in files if not p.is_file()]:
        sys.exit(f"no such training file: {', '.join(missing)}; pass JSONL files to --data")
    print("training files:", ", ".join(os.path.relpath(p, ROOT) for p in files))
    try:
        seen = references(files, gold=True)
        heldout_files = args.heldout or [HELDOUT_FILE, HELDOUT_TOOLS_FILE]
        heldout = [r for path in heldout_files for r in score(read_records(path), seen)]
        gold = score(read_records(GOLD), references(files, gold=False))
    except (json.JSONDecodeError, KeyError) as error:
        sys.exit(f"not a file of instruction records ({error}); pass the JSONL that training reads")

    print(f"\n{'item':<17} {'kind':<11} {'jaccard':>7}  nearest            {'tokenF1':>7}  nearest")
    for r in heldout:
        flag = "  <-- above limit" if r["jaccard"][0] > args.limit else ""
        print(
            f"{r['id']:<17} {r['kind']:<11} {r['jaccard'][0]:>7.3f}  {r['jaccard'][1]:<18} "
            f"{r['token_f1'][0]:>7.3f}  {r['token_f1'][1]}{flag}"
        )
    print()
    summary("held-out vs all seen", heldout)
    summary("gold vs training+few-shot", gold)
    over = [r["id"] for r in heldout if r["jaccard"][0] > args.limit]
    print(
        f"\nheld-out items above Jaccard {args.limit}: {len(over)}{' ' + ', '.join(over) if over else ''}"
    )
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
