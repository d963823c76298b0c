"""The runtime's per-step overhead of one checkout, for comparing commits interleaved.

No-op steps on a seeded random DAG (`runtime_scheduling.Dag`, `run_noop`), run from the
checkout at ROOT (a `git worktree add /tmp/before COMMIT` for the commit before a change):
run it for each checkout in turn, several rounds, and compare within a round. `--traced`
sends spans to an SDK provider (batch processor, in-memory exporter), as an application
that traces would.

    python benchmarks/overhead_compare.py /tmp/before 1000 1
    python benchmarks/overhead_compare.py . 1000 1 [--traced]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("root", help="the checkout to measure")
parser.add_argument("steps", type=int, help="steps in the random DAG")
parser.add_argument("repeats", type=int, help="runs to take the median of")
parser.add_argument("--traced", action="store_true", help="record spans with the SDK")
args = parser.parse_args()
root = str(Path(args.root).resolve())
sys.path[:0] = [root, root + "/benchmarks"]
import runtime_scheduling as rs  # noqa: E402

import stepgraph  # noqa: E402

assert stepgraph.__file__.startswith(root), f"stepgraph imported from {stepgraph.__file__}"
if args.traced:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from stepgraph import telemetry

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    telemetry.use(provider)
dag = rs.Dag(args.steps, seed=1)
per_step = [rs.run_noop(dag, strict=False)["ms_per_step"] for _ in range(args.repeats)]
label = f"{args.root}{' traced' if args.traced else ''}"
print(label, round(statistics.median(per_step), 2), [round(x, 2) for x in per_step])
