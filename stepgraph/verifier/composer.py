"""The composer: the final answer, written from the verified step results and the
instruction, then checked against the instruction and revised while checks fail.

A revision is kept only when it fails fewer checks than the answer before it, so a
revision can never make an answer worse; what a safe mechanical fix can mend (letter case,
a required opening or closing phrase, a forbidden word, paragraphs and their dividers, a
numbered list where bullets were asked for; `Constraint.repair`) is mended by code first,
so the model is asked to revise only what code cannot fix. Constraints that contradict each other are not revised for: the answer
says that they do.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import BaseModel, Field

from stepgraph.executors.calculating import complete_calculating
from stepgraph.models.base import BackendBase, Message, Request
from stepgraph.verifier.choice import states_value
from stepgraph.verifier.constraints import (
    SEPARATOR,
    Constraints,
    cuts,
    extract_constraints,
)
from stepgraph.verifier.numeric import equations, stated_matches
from stepgraph.verifier.verdict import Verdict, failures, feedback
from stepgraph.verifier.verifier import Verifier

COMPOSE_SYSTEM = (
    "You write the final answer to the user's task from the results of the steps that were "
    "done for it. The results are correct: copy their numbers and facts exactly, never "
    "recompute them. Answer the task directly and completely, in the form it asks for; do "
    "not mention steps or plans. If a result is missing or failed, say what could not be done."
)
REVISE = (
    "{task}\n\nA draft answer:\n{draft}\n\nThe draft fails these checks:\n{failures}\n\n"
    "Write a corrected final answer that passes them. Keep the facts and numbers of the "
    "results. Reply with the answer only."
)
FINAL_FORM = (
    "{task}\n\nWorked out and checked: {equations}.\n\nWrite only the final answer, without "
    "the working. It must meet these requirements:\n{requirements}"
)
ONE_OF_TWO = (
    "{task}\n\nWrite only the {which} of the two responses the task asks for: one response, "
    "with no separator, heading or label.{requirements}"
)
FOLLOW_UP = (
    "Now write only the final answer to my question, without the working. It must meet "
    "these requirements:\n{requirements}"
)


_ECHO = re.compile(r"\n\s*(?:The draft fails these checks:|A draft answer:)", re.I)


def _without_echo(revised: str) -> str:
    """A revision cut where it starts to repeat the request: the 0.5B model answered
    "Answer: $1314" and then copied "The draft fails these checks:" and the list, which
    the user then read as part of the answer (trip_planner, 2026-12-05)."""
    return _ECHO.split(revised, maxsplit=1)[0].strip()


class Composition(BaseModel):
    answer: str
    verdicts: list[Verdict] = Field(default_factory=list)
    revisions: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Composer:
    """Writes, checks and revises the final answer. `max_revisions` model rewrites at most,
    and none once `can_spend(tokens the composer has generated)` says the budget is gone."""

    def __init__(
        self,
        model: BackendBase,
        verifier: Verifier,
        *,
        max_revisions: int = 2,
        calculate: bool = True,
    ):
        self.model = model
        self.verifier = verifier
        self.max_revisions = max_revisions
        self.calculate = calculate  # the calculator writes the results of its arithmetic

    async def compose(
        self,
        task: str,
        results: list,
        *,
        history: list[Message] | None = None,
        final_id: str | None = None,
        can_spend: Callable[[int], bool] = lambda spent: True,
        revise: bool = True,
    ) -> Composition:
        """`results` are the run's StepResults in plan order. With `revise=False` the draft
        is only checked (the runtime revises whichever candidate it chooses)."""
        done = [r for r in results if r.status == "done"]
        constraints = extract_constraints(task)
        if not done:
            answer = "I could not complete this task: " + "; ".join(
                f"{r.step_id}: {r.error}" for r in results if r.error
            )
            return Composition(answer=answer)
        prompt_text = _results_prompt(task, results, constraints, self.verifier.computing)
        messages = [
            Message(role="system", content=COMPOSE_SYSTEM),
            *(history or [])[-4:],
            Message(role="user", content=prompt_text),
        ]
        tokens = [0, 0]
        if len(results) == 1 and results[0].executor in self.verifier.writing:
            answer = done[0].output.strip()  # one llm step answered the whole task itself
        else:
            answer = (
                await self._complete(messages, tokens, room=constraints.room())
                or done[-1].output.strip()
            )
        verdicts = await self.verifier.check_answer(task, answer, results, final_id=final_id)
        composed = Composition(
            answer=answer, verdicts=verdicts, prompt_tokens=tokens[0], completion_tokens=tokens[1]
        )
        if not revise:
            return composed
        return await self.finish(
            task,
            composed,
            results,
            history=history,
            final_id=final_id,
            can_spend=can_spend,
        )

    async def finish(
        self,
        task: str,
        draft: Composition,
        results: list,
        *,
        history: list[Message] | None = None,
        final_id: str | None = None,
        can_spend: Callable[[int], bool] = lambda spent: True,
        keep: float | None = None,
        from_results: bool = True,
        worked: list[Message] | None = None,
    ) -> Composition:
        """Repair `draft` (checked already) mechanically, revise it while checks fail, and
        repair the revision.

        A revision is shown the task with `results` when the answer was written from them
        (`from_results`); the model's direct answer is revised from the task alone. With
        `keep`, a revision, a repair or a cut that no longer states that number is not taken: the
        value was chosen by agreement, and a rewrite for form must not change it.

        `worked` is the conversation a worked answer (reasoning first, then the answer) was
        written in. Where it fails the task's form, the first revision asks for the final
        answer alone, in the form required, from the working's equations that code checked
        (`_final_form`): asked to revise a worked answer shown as a draft, the 0.5B model
        copied the working back (the demo's two sentences came back as 14)."""
        constraints = extract_constraints(task)
        context = (
            _results_prompt(task, results, constraints, self.verifier.computing)
            if from_results
            else f"Task: {task}"
        )
        messages = [Message(role="system", content=COMPOSE_SYSTEM), *(history or [])[-4:]]
        tokens = [draft.prompt_tokens, draft.completion_tokens]
        # what code can fix is fixed before the model is asked, so a revision is asked
        # only for what remains
        answer, verdicts = await self._repair(
            task, constraints, draft.answer, draft.verdicts, results, final_id, from_results, keep
        )
        revisions = 0
        follow_up = worked is not None and bool(failures(constraints.check(answer)))
        apart = _fails_kind(constraints, "two_responses", answer)
        while failures(verdicts) and revisions < self.max_revisions and can_spend(tokens[1]):
            revisions += 1
            if apart:  # two responses, each written on its own, joined by code
                apart = False
                revised = await self._two_responses(task, constraints, messages, tokens)
            elif follow_up:  # the final answer alone, from its own checked working
                follow_up = False
                revised = await self._complete(_final_form(task, draft.answer, worked), tokens)
            else:
                # one fresh request, not a reply to its own draft: the 0.5B model repeated a
                # draft it saw as its own turn word for word; later tries sample, as greedy
                # repeats
                prompt = REVISE.format(task=context, draft=answer, failures=feedback(verdicts))
                asked = [*messages, Message(role="user", content=prompt)]
                revised = await self._complete(
                    asked, tokens, temperature=0.4 * (revisions - 1), room=constraints.room()
                )
            revised = _without_echo(revised)
            if not revised or (keep is not None and not states_value(revised, keep)):
                continue
            checked = await self.verifier.check_answer(
                task, revised, results, final_id=final_id, from_results=from_results
            )
            # a revision is judged with code's fixes applied: the model was asked only for
            # what code cannot do
            revised, checked = await self._repair(
                task, constraints, revised, checked, results, final_id, from_results, keep
            )
            if len(failures(checked)) < len(failures(verdicts)):
                answer, verdicts = revised, checked
        if failures(verdicts):  # the last resort: what is too long, cut to the bound
            answer, verdicts = await self._better(
                task,
                trimmed(task, answer, constraints, keep=keep),
                answer,
                verdicts,
                results,
                final_id,
                from_results,
                keep,
            )
        if constraints.conflicts and "contradict" not in answer.lower():
            answer += (
                "\n\nNote: some requirements of this task contradict each other, so not all "
                "of them can be met: " + "; ".join(constraints.conflicts) + "."
            )
        return Composition(
            answer=answer,
            verdicts=verdicts,
            revisions=revisions,
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
        )

    async def _two_responses(
        self, task: str, constraints: Constraints, messages: list[Message], tokens: list[int]
    ) -> str:
        """Two responses asked for one at a time and joined by the separator the task asks
        for: the 0.5B model, asked for both at once, wrote one, an empty one, or no
        separator (IFEval, 0 of 11). The second is sampled and shown the first, so that the
        two differ; each is asked to meet the task's other requirements."""
        others = Constraints(
            constraints=[c for c in constraints.constraints if c.kind != "two_responses"]
        )
        rules = (
            f"\nIt must meet these requirements:\n{others.describe()}" if others.constraints else ""
        )

        def ask(which: str, extra: str = "") -> list[Message]:
            prompt = ONE_OF_TWO.format(task=task, which=which, requirements=rules + extra)
            return [*messages, Message(role="user", content=prompt)]

        room = constraints.room()
        first = _unseparated(await self._complete(ask("first"), tokens, room=room))
        if not first:
            return ""
        shown = f"\nIt must differ from the first response, which was:\n{first}"
        second = await self._complete(ask("second", shown), tokens, temperature=0.7, room=room)
        second = _unseparated(second)
        return f"{first}\n{SEPARATOR}\n{second}" if second else ""

    async def _complete(
        self,
        messages: list[Message],
        tokens: list[int],
        temperature: float = 0.0,
        room: int = 768,
    ) -> str:
        request = Request(messages=messages, max_tokens=room, temperature=temperature, seed=0)
        done, _ = await complete_calculating(self.model, request, enabled=self.calculate)
        tokens[0] += done.prompt_tokens
        tokens[1] += done.completion_tokens
        return done.text.strip()

    async def _repair(
        self, task, constraints, answer, verdicts, results, final_id, from_results, keep=None
    ):
        """The mechanical fixes (`repaired`), kept only if the whole answer's checks agree."""
        fixed = repaired(task, answer, constraints)
        return await self._better(
            task, fixed, answer, verdicts, results, final_id, from_results, keep
        )

    async def _better(
        self, task, fixed, answer, verdicts, results, final_id, from_results, keep=None
    ):
        """`fixed` and its verdicts if it fails fewer of the whole answer's checks than
        `answer` (with `verdicts`) does and still states `keep`; else `answer` and
        `verdicts`. (A JSON cut out of a worked answer can pass the JSON check and drop the
        number the answer was chosen for.)"""
        if fixed == answer or (keep is not None and not states_value(fixed, keep)):
            return answer, verdicts
        checked = await self.verifier.check_answer(
            task, fixed, results, final_id=final_id, from_results=from_results
        )
        if len(failures(checked)) < len(failures(verdicts)):
            return fixed, checked
        return answer, verdicts


def repaired(task: str, answer: str, constraints: Constraints | None = None) -> str:
    """`answer` with the mechanical fixes of `Constraint.repair` applied for the task's
    failing form constraints, each kept only when the answer then fails fewer of them. Two
    passes: one fix can make another possible (a quotation mark after an end phrase)."""
    constraints = constraints or extract_constraints(task)

    def failing(text: str) -> int:
        return len(failures(constraints.check(text)))

    now = failing(answer)
    collapsed = collapse_repeats(answer)
    if collapsed != answer and (after := failing(collapsed)) <= now:
        answer, now = collapsed, after
    for _ in range(2):
        for constraint in constraints.constraints:
            if not now or constraint.check(answer).passed is not False:
                continue
            fixed = constraint.repair(answer)
            if fixed is None or fixed == answer:
                continue
            if (after := failing(fixed)) < now:
                answer, now = fixed, after
    return answer


_REPEATED_SENTENCE = re.compile(r"(?P<s>[^\s.!?][^.!?\n]{6,}[.!?])(?:[ \t]+(?P=s)){2,}")
_REPEATED_LINE = re.compile(
    r"^(?P<line>[^\n]*\w[^\n]*)\n(?:[ \t]*\n)?(?:(?P=line)\n(?:[ \t]*\n)?){1,}(?P=line)$", re.M
)


def trimmed(
    task: str, answer: str, constraints: Constraints | None = None, *, keep: float | None = None
) -> str:
    """`answer` cut after its last whole sentence or line that lets it, with code's repairs
    (an end phrase put back), fail fewer of the task's form constraints; applied only where
    it exceeds an upper bound on words, sentences or bullet points, and only after
    revisions, since a cut drops what the answer said last. A cut that no longer states
    `keep` (the number the answer was chosen for) is not one: the demo's worked answer cut to
    its first two sentences passed its form and answered nothing. Unchanged where no cut
    helps."""
    constraints = constraints or extract_constraints(task)
    too_long = any(
        c.kind in ("word_count", "sentence_count", "bullet_count")
        and c.high is not None
        and c.check(answer).passed is False
        for c in constraints.constraints
    )
    if not too_long:
        return answer
    now = len(failures(constraints.check(answer)))
    for cut in cuts(answer):
        if cut.rstrip().endswith(":"):  # a lead-in whose answer was cut away (mcp_agent:
            continue  # 'the answer to the question "..." is:', then `done`)
        fixed = repaired(task, cut, constraints)
        if keep is not None and not states_value(fixed, keep):
            continue
        if len(failures(constraints.check(fixed))) < now:
            return fixed
    return answer


def collapse_repeats(text: str) -> str:
    """A small model's greedy loop ("She's always 90°F. She's always 90°F. ...", one line
    over and over) cut to one copy: a sentence or line said three or more times running
    says nothing the first did not."""
    text = _REPEATED_SENTENCE.sub(lambda m: m.group("s"), text)
    return _REPEATED_LINE.sub(lambda m: m.group("line"), text)


def _final_form(task: str, answer: str, worked: list[Message]) -> list[Message]:
    """The request for a worked answer's final answer alone: the task with the equations of
    the working that hold (recomputed by code), or, where it has none, a follow-up in the
    conversation it was written in. From the checked equations the 0.5B model drew the
    demo's conclusion afresh ("cookies brought in more") where its working had concluded
    wrongly ("muffins"); following up on its own working, it repeated the wrong conclusion."""
    requirements = extract_constraints(task).describe()
    held = [written for written, stated, true in equations(answer) if stated_matches(stated, true)]
    if not held:
        ask = FOLLOW_UP.format(requirements=requirements)
        return [
            *worked,
            Message(role="assistant", content=answer),
            Message(role="user", content=ask),
        ]
    ask = FINAL_FORM.format(
        task=task, equations="; ".join(dict.fromkeys(held)), requirements=requirements
    )
    return [Message(role="system", content=COMPOSE_SYSTEM), Message(role="user", content=ask)]


def _fails_kind(constraints: Constraints, kind: str, answer: str) -> bool:
    return any(c.kind == kind and c.check(answer).passed is False for c in constraints.constraints)


def _unseparated(text: str) -> str:
    """One response: the separator and any stray asterisks around it taken out."""
    return re.sub(r"\*{6,}", "", text).strip()


def _results_prompt(task: str, results: list, constraints, computing: frozenset[str]) -> str:
    lines = [f"Task: {task}", "", "Results:"]
    for r in results:
        shown = r.output.strip()[:1500] if r.status == "done" else f"(failed: {r.error})"
        if r.status == "done" and r.executor in computing:
            shown += "   (computed exactly: use this value)"
        lines.append(f"- {r.instruction}\n  -> {shown}")
    if constraints.constraints:
        lines += ["", "The answer must meet these requirements:", constraints.describe()]
    lines.append("\nWrite the final answer to the task.")
    return "\n".join(lines)
