"""Instruction -> validated Plan, with constrained decoding, one repair and streaming."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from pydantic import ValidationError

from stepgraph.errors import InstructionError, PlanError
from stepgraph.models.base import BackendBase, Message, Request, aiter_in_thread
from stepgraph.planner._stream import StepScanner
from stepgraph.planner.grammar import plan_gbnf
from stepgraph.planner.plan import Plan, Step, validate_plan
from stepgraph.planner.prompt import planner_messages

DEFAULT_EXECUTORS = {
    "llm": "answers, explains or writes text; use for knowledge, reasoning and writing.",
}


def check_instruction(instruction: str) -> str:
    """Refuse input no plan can come from, with a message that says what is wrong."""
    if not isinstance(instruction, str):
        raise InstructionError(f"the instruction must be text, not {type(instruction).__name__}")
    text = instruction.strip()
    if not text:
        raise InstructionError("the instruction is empty; say what you want done")
    if "\x00" in text:
        raise InstructionError(
            "the instruction contains NUL bytes; it looks like binary data, not text"
        )
    printable = sum(ch.isprintable() or ch in "\n\t\r" for ch in text)
    if printable / len(text) < 0.9 or text.count("\ufffd") > max(3, len(text) // 20):
        raise InstructionError(
            "the instruction looks like binary data, not text; pass readable text"
        )
    return text


class Planning:
    """One planning call: its steps as they are decoded (`for` or `async for`), then the
    validated `plan` and its `stats` (attempts, generated tokens, seconds, the raw text)."""

    def __init__(self, run: Callable[[Planning], Iterator[Step]]) -> None:
        self.plan: Plan | None = None
        self.stats: dict[str, Any] = {}
        self._run = run

    def __iter__(self) -> Iterator[Step]:
        return self._run(self)

    def __aiter__(self) -> AsyncIterator[Step]:
        return aiter_in_thread(lambda: iter(self))


class Planner:
    """Turns an instruction into a Plan the runtime can trust.

    With `constrained=True` (the default for local models) the plan is decoded under a
    grammar, so it always parses and its graph is acyclic by construction; what the grammar
    cannot express (every step leads to the answer) is checked after, and a failing plan is
    repaired once with the error text.
    """

    def __init__(
        self,
        model: BackendBase,
        *,
        executors: dict[str, str] | None = None,
        max_steps: int = 8,
        constrained: bool = True,
        adapter: str | None = None,
        max_tokens: int = 1024,
        few_shot: bool | None = None,
    ):
        self.model = model
        self.executors = dict(executors or DEFAULT_EXECUTORS)
        self.max_steps = max_steps
        self.constrained = constrained
        self.adapter = adapter
        self.max_tokens = max_tokens
        # A planner adapter was trained without the few-shot examples (stepgraph.evolve).
        self.few_shot = adapter is None if few_shot is None else few_shot

    def _request(
        self,
        instruction: str,
        conversation: list[Message] | None,
        feedback: str | None = None,
        previous: str | None = None,
    ) -> Request:
        messages = planner_messages(
            instruction,
            executors=self.executors,
            conversation=conversation,
            feedback=feedback,
            previous=previous,
            few_shot=self.few_shot,
        )
        grammar = None
        if self.constrained:
            # SQL needs "=" (WHERE region = 'West'), so a plan that can query keeps it.
            equations = (
                "=" in instruction
                or any("=" in m.content for m in conversation or [])
                or "sql" in self.executors
            )
            grammar = plan_gbnf(tuple(self.executors), self.max_steps, equations=equations)
        request = Request(
            messages=messages, max_tokens=self.max_tokens, grammar=grammar, adapter=self.adapter
        )
        used = sum(self.model.count_tokens(m.content) + 8 for m in messages)
        if used + self.max_tokens > self.model.context_length:
            limit = (
                self.model.context_length
                - self.max_tokens
                - (used - self.model.count_tokens(instruction))
            )
            raise InstructionError(
                f"the instruction is too long for this model: {self.model.count_tokens(instruction)} tokens, "
                f"the limit is about {max(0, limit)} tokens. Shorten it or use a model with a longer context."
            )
        return request

    def plan(self, instruction: str, *, conversation: list[Message] | None = None) -> Plan:
        """Plan, repairing once; raises PlanError if the repaired plan is still invalid."""
        planning = self.stream(instruction, conversation=conversation)
        for _ in planning:
            pass
        return planning.plan

    def stream(self, instruction: str, *, conversation: list[Message] | None = None) -> Planning:
        """One planning call: iterate it (or `async for`) for the steps as they are decoded
        (for eager dispatch); then its `plan` and `stats` say what came of it.

        Each streamed step gets the same deterministic fix as the final plan (a `{{sN}}`
        reference to an earlier step becomes a dependency). If the first attempt needs a
        repair, the repaired plan's steps are yielded after it; a consumer should treat
        `plan` as the truth and re-check any step id it has already seen. The call keeps
        its own results, so one Planner serves any number of runs at once.
        """
        return Planning(lambda call: self._stream(call, instruction, conversation))

    def _stream(
        self, call: Planning, instruction: str, conversation: list[Message] | None
    ) -> Iterator[Step]:
        text = check_instruction(instruction)
        started = time.perf_counter()
        request = self._request(text, conversation)
        raw = ""
        scanner = StepScanner()
        streamed: list[Step] = []
        for piece in self.model.stream(request):
            raw += piece
            for obj in scanner.feed(piece):
                step = _to_step(obj)
                if step is not None:
                    _add_referenced_dependencies(Plan(steps=[*streamed, step]))
                    streamed.append(step)
                    yield step
        tokens = self.model.count_tokens(raw) if raw else 0
        call.stats = {"attempts": 1, "raw": raw, "completion_tokens": tokens}
        try:
            plan = self.parse(raw, goal=text)
        except PlanError as error:
            call.stats = {"attempts": 2, "first_error": str(error), "raw": raw}
            request = self._request(text, conversation, feedback=str(error), previous=raw)
            repaired = self.model.complete(request)
            call.stats["raw"] = repaired.text
            call.stats["completion_tokens"] = tokens + repaired.completion_tokens
            plan = self.parse(repaired.text, goal=text)
            yield from plan.steps
        call.stats["seconds"] = time.perf_counter() - started
        call.plan = plan

    async def aplan(self, instruction: str, *, conversation: list[Message] | None = None) -> Plan:
        import asyncio

        return await asyncio.to_thread(self.plan, instruction, conversation=conversation)

    def astream(self, instruction: str, *, conversation: list[Message] | None = None) -> Planning:
        """The same as `stream`, named for the runtime's `async for`."""
        return self.stream(instruction, conversation=conversation)

    def parse(self, raw: str, *, goal: str = "") -> Plan:
        """Model text -> validated Plan. Fixes only what is unambiguous (a `{{sN}}` reference
        to an earlier step that was not listed as a dependency); everything else is an error."""
        data = _extract_json(raw)
        if isinstance(data, list):
            data = {"steps": data}
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            raise PlanError('the output is not a plan: write {"steps": [...]}', kind="parse")
        steps = []
        for i, obj in enumerate(data["steps"]):
            step = _to_step(obj)
            if step is None:
                raise PlanError(
                    f"step number {i + 1} is not a valid step object: {json.dumps(obj)[:200]}",
                    kind="parse",
                    step_ids=[str(obj.get("id", i + 1)) if isinstance(obj, dict) else str(i + 1)],
                )
            steps.append(step)
        plan = Plan(goal=goal, steps=steps)
        _add_referenced_dependencies(plan)
        try:
            validate_plan(plan, self.executors)
        except PlanError as error:
            if error.kind != "unused_step":
                raise
            # The composer reads every result, so a result nothing uses is still wanted:
            # the last step takes the loose ends as dependencies (0.5B measured: 2 of 218
            # plans failed only this way, even after the repair).
            _link_loose_ends(plan)
            validate_plan(plan, self.executors)
        return plan


def _to_step(obj: Any) -> Step | None:
    if not isinstance(obj, dict):
        return None
    try:
        return Step(**{k: v for k, v in obj.items() if k in Step.model_fields})
    except (ValidationError, TypeError):
        return None


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def _extract_json(raw: str) -> Any:
    text = raw.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    starts = sorted(i for i in (text.find("{"), text.find("[")) if i >= 0)
    for start in starts:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
            return value
        except json.JSONDecodeError:
            continue
        except RecursionError:
            raise PlanError("the output is nested too deeply to be a plan", kind="parse") from None
    raise PlanError("the output is not JSON; write the plan as one JSON object", kind="parse")


def _add_referenced_dependencies(plan: Plan) -> None:
    """A `{{sN}}` reference to an earlier step is an unambiguous dependency: add it."""
    position = {s.id: i for i, s in enumerate(plan.steps)}
    for i, step in enumerate(plan.steps):
        for ref in step.references():
            if ref in position and position[ref] < i and ref not in step.depends_on:
                step.depends_on.append(ref)


def _link_loose_ends(plan: Plan) -> None:
    """Make the last step depend on every other step that no step depends on."""
    used = {d for s in plan.steps for d in s.depends_on}
    final = plan.steps[-1]
    for step in plan.steps[:-1]:
        if step.id not in used and step.id not in final.depends_on:
            final.depends_on.append(step.id)
