"""Shared helpers for benchmarks: machine description and resumable result files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# the stores of benchmark runs, kept so that every step and candidate can be read after
# (`stepgraph runs show ID --db ...`); large, so git-ignored
STORES = RESULTS / "stores"


def quality_backend(model: str, batched: bool = False):
    """The engine the quality benchmarks answer with: llama.cpp at n_ctx 16384, each request
    decoded alone from an empty cache (`deterministic`), so a row is the same when run
    again and a difference between two runtimes is the runtimes', not the batching's. (Not
    so before 2026-12-05: the 0.5B's GSM8K run, re-run after small changes to how answers
    are read, flipped 20 of 200 rows, 11 one way and 9 the other, and its greedy direct
    answer, a request those changes do not touch, came out with another number on some,
    e.g. problem 6: 260, then 140.) The price: an answer the calculator interrupts is
    read again from the start at each resumption, so a run takes longer (problem 5 on the
    0.5B: 104 s against 37 s batched); `batched` decodes as the runtime does by default."""
    from stepgraph.models import embedded
    from stepgraph.models.llamacpp import LlamaCppBackend

    return LlamaCppBackend(
        embedded.model_path(model), name=model, n_ctx=16384, deterministic=not batched
    )


def add_batched_option(parser) -> None:
    """`--batched`, for the benchmarks that answer with `quality_backend`."""
    parser.add_argument(
        "--batched",
        action="store_true",
        help="decode with batching and prefix reuse, as the runtime does by default: faster, "
        "but a row then depends on what was decoded before it",
    )


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "gpu": None,
        "date": dt.date.today().isoformat(),
    }


class ResultFile:
    """A JSON file that keeps finished sections, so a stopped benchmark continues."""

    def __init__(self, name: str):
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.path = RESULTS / name
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.data["machine"] = machine()

    def has(self, key: str) -> bool:
        return key in self.data

    def put(self, key: str, value) -> None:
        self.data[key] = value
        self.path.write_text(json.dumps(self.data, indent=2) + "\n")


def first_agreement(made) -> tuple[float | None, float, list[str]]:
    """Candidates taken in order, as a run makes its tie-breakers, until two agree on a
    number. `made` yields (name, the number it claims or None, its tokens) and is read no
    further than needed. Returns the number agreed on (the earlier of the two; None where
    none agree), the tokens of the candidates taken, and the names that back the number."""
    from stepgraph.verifier.choice import same

    seen: list[tuple[str, float]] = []
    tokens = 0.0
    for name, value, cost in made:
        tokens += cost
        if value is None:
            continue
        seen.append((name, value))
        agreed = [w for _, w in seen if same(value, w)]
        if len(agreed) >= 2:
            return agreed[0], tokens, [n for n, w in seen if same(agreed[0], w)]
    return None, tokens, []
