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

    An executor may also set `brings_facts = True` when its output carries facts from
    outside the task (documents, a database): an answer written from such steps is then
    preferred over the model's direct answer when nothing else tells them apart."""

    name: str
    description: str

    async def run(self, step: StepInput) -> StepOutput: ...
