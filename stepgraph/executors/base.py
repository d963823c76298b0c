"""The executor protocol: how one step of a plan gets done."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from stepgraph.models.base import Message


class StepInput(BaseModel):
    """Everything an executor may use: the step's text with `{{id}}` references filled in,
    its arguments, its dependencies' outputs, the conversation so far, and the verifier's
    feedback when this is a retry."""

    run_id: str = ""
    task: str = ""  # the user's whole instruction: a step's own text is often too terse alone
    step_id: str
    instruction: str
    args: dict[str, Any] = Field(default_factory=dict)
    dependencies: dict[str, str] = Field(default_factory=dict)
    conversation: list[Message] = Field(default_factory=list)
    feedback: str | None = None
    timeout: float = 60.0


class StepOutput(BaseModel):
    """An executor's result. `error` set means the step failed; `output` is what dependents see.
    `permanent` marks a failure that the same step would meet again (a time limit, a
    syntax error, a host that cannot run it): it is not retried."""

    output: str = ""
    data: Any = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Executor(Protocol):
    """One kind of step. `description` goes into the planner prompt, so it should say
    when to choose this executor and what `args` it takes.

    An executor may also declare what it is, with class attributes that nothing else
    infers from its name (`declares(executor, "computes")` reads them):

    - `computes = True`: its output is an exact computation (calculator, python, sql). The
      final answer must state what such a step ended on, and its numbers are not checked
      as arithmetic the model wrote.
    - `writes_text = True`: the model writes its output in prose (llm). Such steps see the
      conversation, are checked for the arithmetic and claims they write, and a plan of
      one such step is the model's direct answer.
    - `brings_facts = True`: its output carries facts from outside the task (documents, a
      database): an answer written from such steps is preferred over the model's direct
      answer when nothing else tells them apart.

    And `planner_hint`, when set, is what the planner reads instead of `description`: a
    plan step carries only its instruction (the plan grammar has no args), so the hint
    says what that instruction must be. `model_writes = "code"` (or `"expression"`): the
    argument of that name is written by the model from the step's text when a step does
    not carry it (python, calculator); the runtime wraps such an executor to do so.
    `model_writes = "arguments"` with an `input_schema`: a JSON object decoded under that
    schema (an MCP tool's)."""

    name: str
    description: str

    async def run(self, step: StepInput) -> StepOutput: ...


DECLARATIONS = ("computes", "writes_text", "brings_facts")


def declares(executor: object, what: str) -> bool:
    """Whether `executor` declares itself `what` (one of DECLARATIONS); undeclared is no."""
    if what not in DECLARATIONS:
        raise ValueError(f"unknown declaration {what!r}; use one of {', '.join(DECLARATIONS)}")
    return bool(getattr(executor, what, False))
