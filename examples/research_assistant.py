"""A research assistant over a local folder of documents, answering with [file] citations.

Each part of a question becomes a docs step (full-text search of the folder); the composer
answers from the passages found. The verifier gets one more check on the answer: it must
cite, as [file.md], only files that a search step actually returned, and at least one, so
an invented source fails the run and the composer revises with that feedback.

    .venv/bin/python examples/research_assistant.py
    .venv/bin/python examples/research_assistant.py --docs ~/notes "What did we decide about X?"
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from stepgraph import Runtime, Store
from stepgraph.models import BackendBase
from stepgraph.verifier import Verdict, Verifier

NOTES = Path(__file__).parent / "data" / "notes"
QUESTION = (
    "What does the Team plan cost per seat, how quickly does support reply to Team "
    "customers, and what is planned for next quarter? Cite the file for each fact in square "
    "brackets, like [pricing.md]."
)
CITATION = re.compile(r"\[([^\[\]\s]+\.[A-Za-z]{2,8})\]")


def cites_sources(instruction: str, answer: str, results: list[Any]) -> list[Verdict]:
    """At least one [file] citation, and only files that a docs step actually returned."""
    found = {hit["path"] for r in results if r.executor == "docs" for hit in r.data or []}
    cited = set(CITATION.findall(answer))
    unknown = sorted(cited - found)
    evidence = f"cites {sorted(cited) or 'nothing'}; the searches returned {sorted(found)}"
    if unknown:
        evidence += f"; not among them: {unknown}"
    return [Verdict(check="cites_sources", passed=bool(cited) and not unknown, evidence=evidence)]


def main(
    argv: list[str] | None = None,
    *,
    model: BackendBase | None = None,
    store: Store | str | Path | None = None,
) -> int:
    """Answer one question from the folder; 0 when the run finished and every check passed."""
    parser = argparse.ArgumentParser(description="Answer questions from a folder of notes.")
    parser.add_argument("question", nargs="*", help="the question (default: a built-in one)")
    parser.add_argument("--docs", default=str(NOTES), help="folder of .md/.txt/.html files")
    parser.add_argument("--model", help="model spec (default: the configured model)")
    parser.add_argument("--store", help="memory store file (default: the user's store)")
    args = parser.parse_args(argv)
    if not Path(args.docs).is_dir():
        parser.error(f"no folder {args.docs}")
    runtime = Runtime(
        model or args.model,
        store=store if store is not None else args.store,
        docs=args.docs,  # adds the docs executor to llm, calculator and python
        verifier=Verifier(answer_checks=[cites_sources]),
    )
    try:
        result = runtime.run(" ".join(args.question) or QUESTION)
        for step in result.steps:
            print(f"{step.step_id} [{step.executor}] {step.status}: {step.instruction[:70]}")
        print(f"\n{result.answer}\n")
        for verdict in result.verdicts:
            print(f"{verdict.check}: {verdict.passed} ({verdict.evidence})")
        ok = all(v.passed is not False for v in result.verdicts)
        print(f"run {result.run_id}: {result.status}; stored in {runtime.store.path}")
        if result.error:
            print(f"error: {result.error}")
        return 0 if result.status == "done" and ok else 1
    finally:
        runtime.close()  # closes the store only when the runtime opened it


if __name__ == "__main__":
    raise SystemExit(main())
