"""The final answer chosen among candidates: agreement verifies, failed checks count against.

A run holds more than one answer to its instruction: the answer composed from the plan's
steps, the model's own direct answer (the floor a run must never fall below), and, when
those two disagree on a number, a whole-problem program and a few samples. A small model's
plan is not more often right than its direct answer (GSM8K, 0.5B: 14 % against 28 %), so
no candidate gets weight for being the product of a plan. What does carry signal is
agreement: where the direct answer and a program reached the same number they were right 5
times in 7, against 3 in 10 overall (40 problems). A plain vote wastes that (12 of 40, no
better than direct), so a candidate whose own numbers fail a check counts for half, and a
tie goes to the floor.

Everything here is deterministic and model-free: the runtime produces the candidates and
checks them; `choose` only reads them.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from stepgraph.executors.calculator import format_number
from stepgraph.verifier.numeric import numbers, plain_math, stated_matches

FLOOR = "direct"
# checks whose failure says the candidate's numbers are wrong, not only its form. A false
# comparison is not one: its numbers can be right and the relation drawn from them wrong
# (examples/trip_planner.py: the direct answer's right total 1314 "does not fit the budget
# of $2500" lost half its vote, and a sample's stray "Day 1" won). It still fails the
# answer, which is revised for it or shown unverified with it.
NUMERIC_CHECKS = frozenset(
    {
        "arithmetic",
        "total_claims",
        "restated_results",
        "supported_numbers",
        "executor_ok",
    }
)
# "Answer: 42", also at the end of a line ("Therefore, the final answer is: Answer: 42")
_ANSWER_LINE = re.compile(r"(?im)(?:^|\W)(?:final\s+)?answer\s*(?:is)?\s*[:=]\s*(?P<rest>.+)$")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class Candidate(BaseModel):
    """One answer to the whole instruction, as the run produced and checked it."""

    name: str = Field(description="composed, direct, program, sample-1, ...")
    answer: str = ""
    claims: list[float] = Field(
        default_factory=list, description="the numbers it answers with (not the task's own)"
    )
    failed: list[str] = Field(default_factory=list, description="its failed checks")
    error: str | None = Field(default=None, description="why it was dropped, if it was")
    presentable: bool = Field(
        default=True, description="whether its text can be the answer (a program's cannot)"
    )

    @property
    def usable(self) -> bool:
        return self.error is None and bool(self.answer.strip())

    @property
    def weight(self) -> float:
        """A vote: half for a candidate whose own numbers failed a check."""
        wrong = any(f.split(":", 1)[0] in NUMERIC_CHECKS for f in self.failed)
        return 0.5 if wrong else 1.0


class Choice(BaseModel):
    """Which candidate answers, on what value, and why; `verified` when two candidates with
    sound numbers agree and hold most of the vote (a number), or when the chosen answer
    failed no check (anything else)."""

    chosen: str | None
    answer: str
    value: float | None = None
    verified: bool = False
    reason: str
    candidates: list[Candidate] = Field(default_factory=list)


def same(a: float, b: float) -> bool:
    """Equal as answers: to the cent, or to a millionth of a large value."""
    return abs(a - b) <= max(0.005, 1e-6 * abs(a))


def states_value(text: str, value: float) -> bool:
    """Whether `text` states `value` anywhere, as written with its own decimals."""
    return any(stated_matches(n, value) for n in numbers(plain_math(text)))


def _value(token: str) -> float | None:
    try:
        return float(token.replace("$", "").replace(",", "").rstrip("%"))
    except ValueError:
        return None


def answer_claims(answer: str, task: str = "") -> list[float]:
    """The numbers an answer gives as its answer: those on its last "Answer:" line when it
    has one, else those of its last \\boxed{...}, else those of an answer with three sentences or fewer that hold numbers, or of
    the last of more such sentences; numbers the task itself gave are not claims, unless nothing else is."""
    lines = list(_ANSWER_LINE.finditer(answer))
    boxed = _BOXED.findall(answer)
    if lines and not numbers(lines[-1].group("rest")):
        # "Therefore, the final answer is:" and the number on the lines below it, often
        # as \[ \boxed{83} \] (the 1.5B model's way: its right answers read as "no number")
        below = answer[lines[-1].start() :]
        part = (_BOXED.findall(below) or [below])[-1]
    elif lines:
        part = lines[-1].group("rest")
        if "=" in part:  # "Answer: 100 + 125 + 175 = 400 dollars": the result is the claim
            part = part.rsplit("=", 1)[1]
    elif boxed:  # LaTeX's way of marking the final answer
        part = boxed[-1]
    else:
        sentences = [s for s in _SENTENCE_END.split(answer.strip()) if numbers(s)]
        part = " ".join(sentences if len(sentences) <= 3 else sentences[-1:])
    found = [v for v in map(_value, numbers(part)) if v is not None]
    given = [v for v in map(_value, numbers(task)) if v is not None]
    claims = [v for v in found if not any(same(v, g) for g in given)]
    if not claims and found:
        claims = found[-1:]
    unique: list[float] = []
    for v in claims:
        if not any(same(v, u) for u in unique):
            unique.append(v)
    return unique


def with_answer_line(answer: str, value: float) -> str:
    """`answer` ending with "Answer: <value>" when it states the chosen value but has no
    answer line: "Thus it will take 30 minutes longer ... on 6 paintings" answers 30, and a
    reader (or a script) taking its last number reads 6 (GSM8K, 0.5B, first run of
    2026-12-04: the choice was right and the answer read as wrong). An answer line that
    holds the working ("Answer: 100 + 125 + 175 = 400 dollars", where a script taking the
    number after "Answer:" reads 100: GSM8K, 0.5B, 2026-12-05) keeps it as a line of its
    own above "Answer: 400". Unchanged otherwise."""
    if not states_value(answer, value):
        return answer
    lines = list(_ANSWER_LINE.finditer(answer))
    if not lines:
        return f"{answer.rstrip()}\n\nAnswer: {format_number(value)}"
    last = lines[-1]
    rest = last.group("rest")
    if "=" not in rest or not states_value(rest.rsplit("=", 1)[1], value):
        return answer
    if states_value(rest.split("=", 1)[0], value):
        return answer  # "Answer: 400 = 100 + 300" says it first
    label = last.start() + re.search(r"(?i)(final\s+)?answer", last.group(0)).start()
    line_start = answer.rfind("\n", 0, label) + 1
    # the label opens its line: the working stays without it; else the line stays whole
    keep = answer[:label] + rest.strip() if not answer[line_start:label].strip() else None
    head = keep if keep is not None else answer[: last.end("rest")]
    return f"{head.rstrip()}\n\nAnswer: {format_number(value)}{answer[last.end('rest') :]}"


def choose(candidates: list[Candidate], *, numeric: bool, grounded: bool = False) -> Choice:
    """The answer among `candidates` (in the order they were made). `numeric`: the task asks
    for a number, so candidates vote with the numbers they claim. `grounded`: the plan's
    steps brought in facts the model cannot see (documents, a database), so a tie goes to
    the composed answer, which was written from them; otherwise it goes to the floor."""
    usable = [c for c in candidates if c.usable]
    presentable = [c for c in usable if c.presentable]
    if not presentable:
        return Choice(
            chosen=None,
            answer="",
            reason="no candidate produced an answer: "
            + "; ".join(f"{c.name}: {c.error or 'empty'}" for c in candidates),
            candidates=candidates,
        )
    first = "composed" if grounded else FLOOR
    if numeric and any(c.claims for c in presentable):
        return _by_value(usable, candidates, first)
    from_facts = [c for c in presentable if c.name == "composed"]
    if grounded and from_facts:
        # the model's own answers never saw what the steps brought in: an MCP tool's 19 C
        # came back as the direct answer's made-up 25 C, which passed every form check
        presentable = from_facts
    return _by_checks(presentable, candidates, first)


def _order(first: str):
    """Fewest failed checks; among equals `first`, then the composed answer (written to be
    shown), then the direct one, then the rest in the order they were made."""
    preference = list(dict.fromkeys([first, "composed", FLOOR]))
    return lambda c: (
        len(c.failed),
        preference.index(c.name) if c.name in preference else len(preference),
    )


def _by_checks(presentable: list[Candidate], candidates: list[Candidate], first: str) -> Choice:
    best = min(presentable, key=_order(first))
    tied = [c.name for c in presentable if c is not best and len(c.failed) == len(best.failed)]
    others = [f"{c.name} failed {len(c.failed)}" for c in presentable if c is not best]
    if best.failed:
        reason = f"{best.name} failed the fewest checks ({len(best.failed)})"
    else:
        reason = f"{best.name} passed every check"
    if tied:
        why = "written from the facts its steps found" if first == "composed" else "the floor"
        reason += f", as did {', '.join(tied)}; a tie goes to {first} ({why})"
    if others:
        reason += "; " + ", ".join(others)
    return Choice(
        chosen=best.name,
        answer=best.answer,
        verified=not best.failed,
        reason=reason,
        candidates=candidates,
    )


def _by_value(usable: list[Candidate], candidates: list[Candidate], first: str) -> Choice:
    values: list[float] = []
    for c in usable:
        for v in c.claims:
            if not any(same(v, u) for u in values):
                values.append(v)

    def backers(v: float) -> list[Candidate]:
        return [c for c in usable if any(same(v, x) for x in c.claims)]

    def rank(v: float) -> tuple[float, int, int]:
        names = [c.name for c in backers(v)]
        return (sum(c.weight for c in backers(v)), first in names, "composed" in names)

    # only values some presentable candidate states can be shown as the answer
    shown = [v for v in values if any(c.presentable for c in backers(v))]
    value = max(shown, key=rank)  # max keeps the first of equals: the earliest candidate's
    support = backers(value)
    clean = [c for c in support if c.weight == 1.0]
    # the value is settled; its words come from the answer written to be shown
    best = min((c for c in support if c.presentable), key=_order("composed"))
    names = ", ".join(c.name for c in support)
    against = [f"{c.name} {_show(c.claims)}" for c in usable if c not in support and c.claims] + [
        f"{c.name} gave no number" for c in usable if not c.claims
    ]
    # verified: two candidates with sound numbers agree, and they are most of the vote (two
    # of five agreeing on the 0.5B model was as often wrong as right)
    voters = sum(c.weight for c in usable if c.claims)
    majority = sum(c.weight for c in support) > voters / 2
    verified = len(clean) >= 2 and majority
    if verified:
        reason = f"{names} agree on {_show([value])}"
    elif len(clean) >= 2:
        reason = f"{names} agree on {_show([value])}, but not most of the candidates do"
    elif len(support) >= 2:
        reason = f"{names} agree on {_show([value])}, but only one passed its number checks"
    else:
        reason = f"no two candidates agree; {best.name}'s {_show([value])} is kept"
    if against:
        reason += "; " + ", ".join(against)
    return Choice(
        chosen=best.name,
        answer=best.answer,
        value=value,
        verified=verified,
        reason=reason,
        candidates=candidates,
    )


def agreed(candidates: list[Candidate]) -> bool:
    """Whether two clean candidates already agree on a number (no tie-breaker needed)."""
    usable = [c for c in candidates if c.usable and c.weight == 1.0]
    return any(
        any(same(v, w) for v in a.claims for w in b.claims)
        for i, a in enumerate(usable)
        for b in usable[i + 1 :]
    )


def _show(values: list[float]) -> str:
    return "/".join(f"{v:g}" for v in values)
