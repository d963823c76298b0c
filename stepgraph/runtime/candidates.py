"""The answers a run holds besides the composed one: the model's own, a program's, samples.

The direct answer is the floor: the model answers the whole instruction itself, reasoning
first where the instruction asks for a number (the calculator writes the results of the
sums it writes out), and with no preamble otherwise, since form constraints are checked on
what it says. When the direct and the composed answer disagree on a number, a program for
the whole problem and a few sampled answers break the tie (`stepgraph.verifier.choice`).
"""

from __future__ import annotations

import re

from stepgraph.executors.base import Executor, StepInput, StepOutput
from stepgraph.models.base import Message, Request

REASON_SYSTEM = (
    "Answer the user's question. Work it out step by step first, writing each calculation "
    "out, then give the final answer on the last line as 'Answer: ...'."
)
ANSWER_SYSTEM = (
    "Answer the user's request directly, with no preamble, and follow every instruction it "
    "gives about the form of the answer."
)
PROGRAM_STEP = (
    "Write a Python program that computes the answer to the task and prints only the final "
    "answer, as one number."
)
_QUANTITY = re.compile(
    r"\b(how (many|much|long|far|old|often|fast|tall|big|heavy|large)\b|"
    r"(what|what's|what is|what was|what are|what were|what will be|what would be) (the )?"
    r"(total|sum|difference|average|mean|cost|price|profit|percent|percentage|ratio|number|"
    r"amount|value|area|perimeter|volume|speed|distance|time|age|weight|result|answer|product|"
    r"quotient|final|regular|new|original)\b|what percent|what number|calculate|compute|"
    r"work out|in total|altogether|combined|(maximum|minimum|total|largest|smallest) number|"
    r"total (cost|price|amount|revenue|income|time|distance|weight)|"
    r"next number|(what|how) .{0,40}\b(left|remain(s|ed|ing)?)\b)",
    re.IGNORECASE,
)
_AMOUNT = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
    r"thirty|forty|fifty|hundred|thousand|half|twice|double|triple|dozen)\b",
    re.IGNORECASE,
)


def asks_for_number(task: str, history: list[Message] = ()) -> bool:
    """Whether the task is a question with a quantity for an answer: it gives amounts and
    asks how many or how much, for a total or a difference, or to calculate. A writing task
    that counts words ("at least 300 words") is not one: its numbers are about the form.
    A follow-up question ("and if 3 more join?") is one when the turn before it was.
    (IFEval's 300 dev prompts: 4 read as numeric, 3 of them rightly; GSM8K's 200 dev
    problems: all but a handful.)"""
    from stepgraph.verifier.constraints import extract_constraints

    masked = task
    for constraint in extract_constraints(task).constraints:
        masked = masked.replace(constraint.source, " ")
    if _AMOUNT.search(masked) and _QUANTITY.search(masked):
        return True
    asked = [m.content for m in history if m.role == "user"]
    return "?" in task and bool(_AMOUNT.search(task)) and bool(asked) and asks_for_number(asked[-1])


def direct_request(
    task: str,
    history: list[Message],
    *,
    reasoning: bool,
    temperature: float = 0.0,
    seed: int | None = 0,
    max_tokens: int = 768,
) -> Request:
    system = REASON_SYSTEM if reasoning else ANSWER_SYSTEM
    return Request(
        messages=[
            Message(role="system", content=system),
            *[m for m in history if m.role in ("user", "assistant")][-6:],
            Message(role="user", content=task),
        ],
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
    )


async def program_answer(
    python: Executor, task: str, *, run_id: str = "", timeout: float = 60.0
) -> StepOutput:
    """A whole-problem program's answer, run by the python executor (which writes the code
    with the model when the step carries none, and runs it in its sandbox)."""
    return await python.run(
        StepInput(
            run_id=run_id,
            task=task,
            step_id="program",
            instruction=PROGRAM_STEP,
            timeout=timeout,
        )
    )
