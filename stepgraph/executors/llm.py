"""Executors that need the model: plain answers, and code/expressions written by the model.

The small model writes poor whole programs but good small ones (measured on GSM8K), so a
`python` or `calculator` step whose arguments hold no code gets its code written by the
model for that one step, run for real, and rewritten once with the error if it fails.
"""

from __future__ import annotations

import re

from stepgraph.errors import ConfigError
from stepgraph.executors.base import DECLARATIONS, StepInput, StepOutput, declares
from stepgraph.executors.calculating import complete_calculating
from stepgraph.executors.names import fix_name_case
from stepgraph.models.base import BackendBase, Message, Request

ANSWER_SYSTEM = (
    "You complete one step of a larger task. Do only your step, directly and concisely. "
    "Use the results of earlier steps exactly as given; do not recompute them. "
    "Do not mention steps or plans."
)
CODE_SYSTEM = (
    "You write a short Python 3 program for one step of a larger task. Take every number you "
    "need from the task and the earlier results. The program must print its result. Use only "
    "the standard library. Reply with one ```python code block and nothing else."
)
EXPRESSION_SYSTEM = (
    "You turn one step of a larger task into a single arithmetic expression that computes it. "
    "Use only numbers, + - * / ** ( ) and functions like sqrt, round, min, max. Take the "
    "numbers from the task and the earlier results. Reply with the expression only."
)
ARGUMENTS_SYSTEM = (
    "You call a tool for one step of a larger task. Write the tool's arguments as one JSON "
    "object that fits its input schema, taking every value from the task and the earlier "
    "results. Reply with the JSON object only."
)
_CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def context_block(step: StepInput) -> str:
    """The step with its dependencies' results and any verifier feedback, as prompt text."""
    parts = [f"Overall task (for context): {step.task}", ""] if step.task else []
    if step.dependencies:
        parts.append("Results of earlier steps:")
        parts.extend(f"[{sid}] {out.strip()[:2000]}" for sid, out in step.dependencies.items())
        parts.append("")
    parts.append(f"Your step: {step.instruction}")
    if step.feedback:
        parts.append(
            f"\nA previous attempt was rejected: {step.feedback}\nFix that in this attempt."
        )
    return "\n".join(parts)


def _conversation(step: StepInput) -> list[Message]:
    return [m for m in step.conversation if m.role in ("user", "assistant")][-6:]


class LlmExecutor:
    """Answers a step with the model, given its dependencies and the conversation."""

    name = "llm"
    writes_text = True  # see Executor
    planner_hint = (
        "answers, explains, compares or writes text; use for knowledge, reasoning and writing."
    )
    description = (
        "answers, explains, compares or writes text; use for knowledge, reasoning and writing."
    )

    def __init__(
        self,
        model: BackendBase,
        *,
        max_tokens: int = 384,
        adapter: str | None = None,
        calculate: bool = True,
    ):
        self.model = model
        self.max_tokens = max_tokens
        self.adapter = adapter
        self.calculate = calculate  # the calculator writes the results of its arithmetic

    async def run(self, step: StepInput) -> StepOutput:
        messages = [
            Message(role="system", content=ANSWER_SYSTEM),
            *_conversation(step),
            Message(role="user", content=context_block(step)),
        ]
        request = Request(messages=messages, max_tokens=self.max_tokens, adapter=self.adapter)
        return await answer(self.model, request, calculate=self.calculate)


async def answer(model: BackendBase, request: Request, *, calculate: bool = True) -> StepOutput:
    """The model's reply to `request` as a step's output, the calculator writing the results
    of the sums it writes out (`calculate`); an empty reply is an error."""
    done, values = await complete_calculating(model, request, enabled=calculate)
    text = done.text.strip()
    return StepOutput(
        output=text,
        error=None if text else "the model returned nothing",
        data={"calculated": values} if values else None,
        prompt_tokens=done.prompt_tokens,
        completion_tokens=done.completion_tokens,
        model=done.model,
    )


def extract_code(text: str) -> str:
    match = _CODE_BLOCK.search(text)
    return (match.group(1) if match else text.replace("```", "")).strip()


def parse_arguments(text: str) -> dict | str:
    """A tool's arguments from the model's reply: the JSON object, else the text itself
    (which the tool's schema check then refuses, with why)."""
    import json

    try:
        value = json.loads(extract_code(text))
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


# how the model writes each argument an executor can declare it writes (`model_writes`)
WRITERS: dict[str, dict] = {
    "code": {"system": CODE_SYSTEM, "fix": fix_name_case},
    # a calculator step is usually an expression already: its own text is tried first
    "expression": {"system": EXPRESSION_SYSTEM, "direct": True, "max_tokens": 80},
    # an MCP tool's arguments, decoded under the tool's own input schema
    "arguments": {"system": ARGUMENTS_SYSTEM, "parse": parse_arguments, "schema": True},
}


def writing_for(executor, model: BackendBase):
    """`executor` wrapped so that the model writes the argument it declares the model
    writes (`model_writes`), or `executor` itself when it declares none."""
    arg = getattr(executor, "model_writes", None)
    if arg is None:
        return executor
    if arg not in WRITERS:
        raise ConfigError(
            f"executor {executor.name!r} declares model_writes={arg!r}; use one of "
            + ", ".join(WRITERS)
        )
    return CodeWritingExecutor(executor, model, arg=arg, **WRITERS[arg])


class CodeWritingExecutor:
    """Wraps an executor that needs code (python) or an expression (calculator): when the
    step does not carry it, the model writes it for that one step, and rewrites it once with
    the error. `fix` mends what the model wrote before it runs (a Python program's names in
    the wrong case, `names.fix_name_case`); what it changed goes in the step's data as
    `fixed`. With `direct=True` the step's own text is tried first (a calculator step is
    usually already an expression)."""

    def __init__(
        self,
        inner,
        model: BackendBase,
        *,
        arg: str = "code",
        system: str = CODE_SYSTEM,
        direct: bool = False,
        max_tokens: int = 400,
        attempts: int = 2,
        parse=None,
        fix=None,
        schema: bool = False,
    ):
        self.inner = inner
        self.model = model
        self.arg = arg
        self.system = system
        self.direct = direct
        self.max_tokens = max_tokens
        self.attempts = attempts
        self.parse = parse or extract_code
        # a mechanical fix for what the model wrote, before it runs: (text, what changed)
        self.fix = fix
        # decode under the executor's `input_schema` (an MCP tool's), where it has one
        self.schema = getattr(inner, "input_schema", None) if schema else None
        self.name = inner.name
        self.description = inner.description
        for what in DECLARATIONS:  # it is what it wraps
            setattr(self, what, declares(inner, what))
        self.planner_hint = getattr(inner, "planner_hint", None)

    def _schema_note(self) -> str:
        if self.schema is None:
            return ""
        import json

        return f"\n\nThe tool's input schema: {json.dumps(self.schema)}"

    async def run(self, step: StepInput) -> StepOutput:
        if step.args.get(self.arg):
            return await self.inner.run(step)
        if self.direct:
            first = await self.inner.run(step)
            if first.ok and first.output.strip():
                return first
        messages = [
            Message(role="system", content=self.system),
            *_conversation(step),  # a follow-up question's numbers are in the turns before
            Message(role="user", content=context_block(step) + self._schema_note()),
        ]
        prompt_tokens = completion_tokens = 0
        result = StepOutput(error="no attempt")
        fixed: list[str] = []
        for _ in range(self.attempts):
            done = await self.model.acomplete(
                Request(messages=messages, max_tokens=self.max_tokens, json_schema=self.schema)
            )
            prompt_tokens += done.prompt_tokens
            completion_tokens += done.completion_tokens
            code = self.parse(done.text)
            if self.fix is not None:
                code, fixed = self.fix(code)
            result = await self.inner.run(
                step.model_copy(update={"args": {**step.args, self.arg: code}})
            )
            if result.ok and result.output.strip():
                break
            problem = result.error or "the program printed nothing; print the result"
            messages += [
                Message(role="assistant", content=done.text),
                Message(
                    role="user",
                    content=f"Running it failed: {problem[-600:]}\nWrite it again, fixed.",
                ),
            ]
        data = result.data if isinstance(result.data, dict) else {"result": result.data}
        return result.model_copy(
            update={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "model": self.model.name,
                "data": {**data, "code": code, **({"fixed": fixed} if fixed else {})},
            }
        )
