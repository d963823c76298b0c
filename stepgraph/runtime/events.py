"""Typed events a run emits, for progress displays and the store's event log."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

EventType = Literal[
    "run_started",
    "plan_step",
    "plan_ready",
    "step_started",
    "step_finished",
    "verdict",
    "answer",
    "run_finished",
]


class Event(BaseModel):
    """One thing that happened in a run. `data` depends on `type`."""

    type: EventType
    run_id: str
    step_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class StepResult(BaseModel):
    """A step as it ended: what it was asked, what it produced, how it was judged."""

    step_id: str
    executor: str
    instruction: str
    depends_on: list[str] = Field(default_factory=list)
    output: str = ""
    data: Any = None
    status: Literal["done", "failed", "skipped"] = "done"
    error: str | None = None
    attempts: int = 1
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    verdicts: list[dict[str, Any]] = Field(default_factory=list)


class RunResult(BaseModel):
    """What `Runtime.run` returns."""

    run_id: str
    status: Literal["done", "partial", "failed", "budget_exceeded", "interrupted"]
    answer: str = ""
    plan: dict[str, Any] | None = None
    steps: list[StepResult] = Field(default_factory=list)
    conversation_id: str | None = None
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    verdicts: list[dict[str, Any]] = Field(default_factory=list)  # on the final answer
