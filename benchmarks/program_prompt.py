"""The whole-problem program candidate alone: which prompt makes the 0.5B write a program
that computes the right answer more often?

`step` is the prompt the runtime uses: the python executor's code-writing prompt for "one
step of a larger task", with the task as context. `named` asks for a
program that names each quantity of the problem and computes the answer from them, after
one worked example (program-aided language models, Gao et al. 2022, showed such programs
beat free-form reasoning for small models). Measured 2026-12-04 on the first 60: no better
(results/program_prompt.md), so the runtime keeps `step`. Both run through the runtime's own python
executor (kernel sandbox, one rewrite with the error), greedy, on the same problems of
../shared/data/gsm8k_dev.jsonl in file order, one after the other per problem.

Rows go to results/program_prompt.jsonl as they finish (a stopped run resumes); the
summary (accuracy, wins and losses with the sign test, median generated tokens) is
printed and written to results/program_prompt.md.

Run: .venv/bin/python benchmarks/program_prompt.py [--limit 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from stepgraph.executors.base import StepInput, StepOutput
from stepgraph.executors.python import extract_code
from stepgraph.models.base import Message, Request
from stepgraph.runtime.candidates import PROGRAM_STEP

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine  # noqa: E402
from gsm8k import final_number, problems, sign_test  # noqa: E402

OUT = RESULTS / "program_prompt.jsonl"

# The `named` variant, kept here: measured no better than the runtime's prompt (13 vs 14 of
# the first 60, 5 wins, 6 losses), so the runtime does not use it.
PROGRAM_SYSTEM = (
    "You solve the user's problem by writing a Python program. Give each quantity in the "
    "problem a variable with a descriptive name, compute the answer from them step by step, "
    "and print only the final answer, as one number. Reply with one ```python code block."
)
# One worked example (GSM8K's own few-shot exemplar, not in the evaluation data): a small
# model copies its shape, one named variable per quantity, more reliably than it follows
# the instruction alone.
PROGRAM_EXAMPLE = (
    Message(
        role="user",
        content="Olivia has $23. She bought five bagels for $3 each. "
        "How much money does she have left?",
    ),
    Message(
        role="assistant",
        content="```python\nmoney_initial = 23\nbagels = 5\nbagel_cost = 3\n"
        "money_spent = bagels * bagel_cost\nmoney_left = money_initial - money_spent\n"
        "print(money_left)\n```",
    ),
)


async def program_with_named_quantities(
    model: Any, python: Any, task: str, *, run_id: str = "", timeout: float = 60.0
) -> StepOutput:
    """A whole-problem program written from a worked example (a variable per quantity),
    run by the python executor; rewritten once with the error if it fails."""
    messages = [
        Message(role="system", content=PROGRAM_SYSTEM),
        *PROGRAM_EXAMPLE,
        Message(role="user", content=task),
    ]
    completion_tokens = prompt_tokens = 0
    out = StepOutput(error="no attempt")
    for _ in range(2):
        done = await model.acomplete(Request(messages=messages, max_tokens=400))
        completion_tokens += done.completion_tokens
        prompt_tokens += done.prompt_tokens
        code = extract_code(done.text)
        if code is None:
            out = StepOutput(error="the model wrote no program")
        else:
            step = StepInput(
                run_id=run_id,
                task=task,
                step_id="program",
                instruction=PROGRAM_STEP,
                args={"code": code},
                timeout=timeout,
            )
            out = await python.run(step)
            if out.ok and out.output.strip():
                break
        problem = out.error or "the program printed nothing; print the result"
        messages += [
            Message(role="assistant", content=done.text),
            Message(
                role="user",
                content=f"Running it failed: {problem[-600:]}\nWrite the fixed program.",
            ),
        ]
    return out.model_copy(
        update={
            "prompt_tokens": out.prompt_tokens + prompt_tokens,
            "completion_tokens": out.completion_tokens + completion_tokens,
            "model": model.name,
        }
    )


VARIANTS = ("step", "named")


async def _answer(variant: str, python, model, question: str) -> dict:
    from stepgraph.runtime.candidates import program_answer

    if variant == "step":
        out = await program_answer(python, question)
    else:
        out = await program_with_named_quantities(model, python, question)
    return {
        "output": out.output[-200:],
        "error": out.error,
        "completion_tokens": out.completion_tokens,
    }


def run(limit: int) -> None:
    from stepgraph.executors import PythonExecutor
    from stepgraph.executors.llm import CodeWritingExecutor
    from stepgraph.models import embedded
    from stepgraph.models.llamacpp import LlamaCppBackend

    done = set()
    if OUT.exists():
        done = {(r["idx"], r["variant"]) for r in map(json.loads, OUT.read_text().splitlines())}
    model = LlamaCppBackend(embedded.model_path(embedded.DEFAULT_MODEL), n_ctx=8192)
    python = CodeWritingExecutor(PythonExecutor(), model)
    for item in problems(limit):
        for variant in VARIANTS:
            if (item["idx"], variant) in done:
                continue
            start = time.perf_counter()
            row = asyncio.run(_answer(variant, python, model, item["question"]))
            got = final_number(row["output"]) if not row["error"] else None
            row = {
                "idx": item["idx"],
                "variant": variant,
                "gold": item["answer"],
                "got": got,
                "correct": got is not None and abs(got - float(item["answer"])) < 1e-6,
                "seconds": round(time.perf_counter() - start, 2),
                **row,
            }
            with OUT.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(variant, row["idx"], row["correct"], got, item["answer"], flush=True)
    model.close()


def summarize() -> str:
    rows = [json.loads(line) for line in OUT.read_text().splitlines()]
    by = {v: {r["idx"]: r for r in rows if r["variant"] == v} for v in VARIANTS}
    both = sorted(set(by["step"]) & set(by["named"]))
    right = {v: sum(by[v][i]["correct"] for i in both) for v in VARIANTS}
    wins = sum(by["named"][i]["correct"] and not by["step"][i]["correct"] for i in both)
    losses = sum(by["step"][i]["correct"] and not by["named"][i]["correct"] for i in both)
    tokens = {v: statistics.median(by[v][i]["completion_tokens"] for i in both) for v in VARIANTS}
    lines = [
        "# The program candidate's prompt, on GSM8K",
        "",
        f"Machine: {machine()['cpus']} cores, {machine()['cpu']}. {time.strftime('%Y-%m-%d')}. "
        "Model: qwen2.5-coder-0.5b (embedded, llama.cpp, greedy). "
        f"Problems: the first {len(both)} of shared/data/gsm8k_dev.jsonl.",
        "",
        "| prompt | correct | rate | median generated tokens |",
        "|---|---|---|---|",
        *(
            f"| {v} | {right[v]} | {right[v] / max(1, len(both)):.1%} | {tokens[v]:.0f} |"
            for v in VARIANTS
        ),
        "",
        f"`named` against `step`: {wins} wins, {losses} losses "
        f"(exact sign test p = {sign_test(wins, losses):.3g}).",
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS / "program_prompt.md").write_text(text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args()
    run(args.limit)
    print(summarize())
