"""The answers a run holds besides the composed one: the model's own, a program's, samples.

The direct answer is the floor: the model answers the whole instruction itself, reasoning
first where the instruction asks for a number (the calculator writes the results of the
sums it writes out), and with no preamble otherwise, since form constraints are checked on
what it says. When the direct and the composed answer disagree on a number, a program for
the whole problem, a plain answer (other words, no calculator) and a few sampled answers
break the tie (`stepgraph.verifier.choice`).
"""

from __future__ import annotations

import re

from stepgraph.executors.base import Executor, StepInput, StepOutput
from stepgraph.models.base import Message, Request
from stepgraph.verifier.constraints import extract_constraints

REASON_SYSTEM = (
    "Answer the user's question. Work it out step by step first, writing each calculation "
    "out, then give the final answer on the last line as 'Answer: ...'."
)
ANSWER_SYSTEM = (
    "Answer the user's request directly, with no preamble, and follow every instruction it "
    "gives about the form of the answer."
)
# the plain answer's prompt: another wording, and no calculator, so it errs apart from the
# direct answer (GSM8K dev, 0.5B: the two were right on 57 and 56 of 200, but on 35 problems
# only one of them was); the benchmarks' direct mode asks with these very words
PLAIN_SYSTEM = (
    "Solve the math word problem. Think step by step, then write the final answer on the "
    "last line as 'Answer: <number>'."
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
    r"next number|(what|how) .{0,40}\b(left|remain(s|ed|ing)?)\b|"
    # "What is 23 * 47?": a question whose object is arithmetic
    r"what(?:'s|\s+is|\s+are)\s+\(?\s*-?\$?\d[\d.,]*\s*(?:[-+*/×÷^]|\*\*|x\s))",
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
    masked = _without_constraints(task)
    if _AMOUNT.search(masked) and _QUANTITY.search(masked):
        return True
    asked = [m.content for m in history if m.role == "user"]
    return "?" in task and bool(_AMOUNT.search(task)) and bool(asked) and asks_for_number(asked[-1])


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_ASKS = re.compile(
    r"\b(calculate|compute|find|determine|work out|figure out|how (much|many|long|far|old|"
    r"often))\b|(^|,\s*)(how|what)\b",
    re.I,
)
_WRITE = re.compile(
    r"^\W*(please\s+)?(also\s+)?(write|suggest|list|explain|describe|plan|compare|say|"
    r"name|recommend|draft|summari[sz]e|tell|outline|create|design|propose|add|include|"
    r"mention|justify)\b",
    re.I,
)
_ANOTHER_QUESTION = re.compile(r"(;|\band\b)\s+(also\s+)?(how|what|which|whether|who|why)\b", re.I)
# a second ask joined to the first that asks for something said, not a number
_ANOTHER_WRITE = re.compile(
    r"\b(and|then)\s+(then\s+)?(also\s+)?(say|tell|state|explain|decide|compare|list|write)\b",
    re.I,
)


def one_question(task: str) -> bool:
    """Whether the task asks one thing: a single question or "calculate ..." sentence, with
    no second question joined to it ("..., and which brought in more?") and no sentence
    asking for something written ("Suggest an activity ...", "Explain ..."). Form
    constraints ("Answer in two sentences") are not asks. One number can settle such a task.
    (GSM8K's 200 dev problems: 193 read as one question; the demo's does not.)"""
    asking = _questions(task)
    return (
        asking is not None
        and len(asking) == 1
        and not _ANOTHER_QUESTION.search(asking[0])
        and not _ANOTHER_WRITE.search(asking[0])
    )


def only_questions(task: str) -> bool:
    """Whether every ask of the task is a question (or "calculate ..."), however many, and
    nothing is asked to be written: the demo's "How much money did it take in, and which
    item brought in more? Answer in two sentences." is; "... Suggest a recipe." and
    "Compute 23 * 47 and then say whether ..." are not."""
    asking = _questions(task)
    return bool(asking) and not any(_ANOTHER_WRITE.search(s) for s in asking)


def _questions(task: str) -> list[str] | None:
    """The task's asking sentences, form constraints left out; None where a sentence asks
    for something written."""
    masked = _without_constraints(task)
    sentences = [s.strip() for s in _SENTENCE.split(masked.strip()) if s.strip()]
    if any(_WRITE.search(s) for s in sentences):
        return None
    return [s for s in sentences if s.endswith("?") or _ASKS.search(s)]


def _without_constraints(task: str) -> str:
    """The task with the text of its form constraints blanked out: their numbers and verbs
    ("at least 300 words", "Answer in two sentences") are about the form, not asks."""
    for constraint in extract_constraints(task).constraints:
        task = task.replace(constraint.source, " ")
    return task


def direct_request(
    task: str,
    history: list[Message],
    *,
    reasoning: bool,
    temperature: float = 0.0,
    seed: int | None = 0,
) -> Request:
    """The model asked for the whole task itself, given room for the length it asks for."""
    system = REASON_SYSTEM if reasoning else ANSWER_SYSTEM
    return Request(
        messages=_asking(system, task, history),
        max_tokens=extract_constraints(task).room(),
        temperature=temperature,
        seed=seed,
    )


def plain_request(task: str, history: list[Message]) -> Request:
    """The model asked for a number in other words than the direct answer's, greedy."""
    return Request(messages=_asking(PLAIN_SYSTEM, task, history), max_tokens=512)


def _asking(system: str, task: str, history: list[Message]) -> list[Message]:
    """The whole task asked under `system`, after the conversation's last turns."""
    return [
        Message(role="system", content=system),
        *[m for m in history if m.role in ("user", "assistant")][-6:],
        Message(role="user", content=task),
    ]


async def program_answer(
    python: Executor,
    task: str,
    *,
    run_id: str = "",
    timeout: float = 60.0,
    history: list[Message] = (),
) -> StepOutput:
    """A whole-problem program's answer, run by the python executor (which writes the code
    with the model when the step carries none, and runs it in its sandbox). `history`: the
    conversation so far, where a follow-up ("And if 3 more people join?") has its numbers
    (without it the 0.5B's program printed 13 for that question)."""
    return await python.run(
        StepInput(
            run_id=run_id,
            task=task,
            step_id="program",
            instruction=PROGRAM_STEP,
            conversation=list(history),
            timeout=timeout,
        )
    )
