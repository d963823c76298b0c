"""The llama.cpp engine alone on this CPU: tokens/s of one `llama_decode` per token for 1, 2
and 4 sequences in one batch, with no sampling, detokenizing or request queue.

Why: the foundation issue's goals (40 tok/s single-stream, 1.5x at 4 streams) were set on a
faster CPU. This shows what the engine itself can do here, so the backend's numbers in
model_speed.json can be read against it. It drives the backend's own llama.cpp context and
batch (private helpers), so it measures exactly the engine the backend uses.

Run: .venv/bin/python benchmarks/engine_batched.py   (writes results/engine_batched.md)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine  # noqa: E402

from stepgraph.models import embedded  # noqa: E402
from stepgraph.models.llamacpp import LlamaCppBackend  # noqa: E402

STEPS = 128  # decoded positions per measurement


def tokens_per_second(backend: LlamaCppBackend, prompt: list[int], sequences: int) -> float:
    backend._c.llama_memory_clear(backend._memory, True)
    backend._batch_clear()
    for seq in range(sequences):
        for i, token in enumerate(prompt):
            backend._batch_add(token, i, seq, i == len(prompt) - 1)
    backend._decode()
    start = time.perf_counter()
    for k in range(STEPS):
        backend._batch_clear()
        for seq in range(sequences):
            backend._batch_add(prompt[k % len(prompt)], len(prompt) + k, seq, True)
        backend._decode()
    return sequences * STEPS / (time.perf_counter() - start)


def main() -> None:
    backend = LlamaCppBackend(embedded.model_path(), name=embedded.DEFAULT_MODEL, n_seq=4)
    prompt = backend._tokenize("Write a long story about a fox.", special=True)
    rows = []
    for repeat in range(3):
        speeds = {n: tokens_per_second(backend, prompt, n) for n in (1, 2, 4)}
        rows.append(speeds)
        print(repeat + 1, {n: round(v, 1) for n, v in speeds.items()}, flush=True)
    backend.close()
    m = machine()
    lines = [
        f"# llama.cpp engine alone, {embedded.DEFAULT_MODEL} ({m['date']})",
        "",
        f"Machine: {m['cpus']} cores, {m['cpu']}, no GPU. {STEPS} decode steps per cell, "
        "one llama_decode per step, logits for every sequence, no sampling.",
        "",
        "| run | 1 sequence tok/s | 2 sequences | 4 sequences | 4 / 1 |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        lines.append(f"| {i} | {r[1]:.1f} | {r[2]:.1f} | {r[4]:.1f} | {r[4] / r[1]:.2f}x |")
    (RESULTS / "engine_batched.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
