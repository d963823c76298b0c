"""Typed events a run emits, for progress displays and the store's event log."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from stepgraph.planner.plan import Plan
from stepgraph.verifier.choice import Candidate
from stepgraph.verifier.verdict import Verdict

EventType = Literal[
    "run_started",
    "plan_step",
    "plan_ready",
    "step_started",
    "step_attempt",
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
    verdicts: list[Verdict] = Field(default_factory=list)


RunStatus = Literal["done", "unverified", "partial", "failed", "budget_exceeded", "interrupted"]


class RunResult(BaseModel):
    """What `Runtime.run` returns.

    `status` "done" means the answer was verified: its candidates agree on the number it
    gives (when it gives one) and it passed every check that applied. "unverified" keeps
    the answer but says that did not hold; `failed_checks` says why. "partial": a run
    without a direct candidate whose plan left some final steps undone. "failed": no
    answer at all (`error` says why)."""

    run_id: str
    status: RunStatus
    answer: str = ""
    plan: Plan | None = None
    steps: list[StepResult] = Field(default_factory=list)
    conversation_id: str | None = None
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    verdicts: list[Verdict] = Field(default_factory=list)  # on the final answer
    candidates: list[Candidate] = Field(default_factory=list)
    chosen: str | None = None  # the candidate whose answer this is

    @property
    def verified(self) -> bool:
        return self.status == "done"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failed_checks(self) -> list[str]:
        """The final answer's failed checks, "check: evidence", for one line under it."""
        return [f"{v.check}: {v.evidence or 'failed'}" for v in self.verdicts if v.passed is False]
