"""Typed events a run emits, for progress displays and the store's event log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, computed_field

from stepgraph.planner.plan import Plan
from stepgraph.verifier.choice import Candidate
from stepgraph.verifier.verdict import Verdict

EventType = Literal[
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
    """One thing that happened in a run. Each `type` is its own class below, with typed
    fields; `data` is those fields as a plain dict (what the store's event log keeps), so
    a display can read any event the same way. `parse_event` turns a dict back into one."""

    model_config = ConfigDict(extra="forbid")

    type: EventType
    run_id: str
    step_id: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The event's own fields, as they were given (unset defaults left out)."""
        return self.model_dump(exclude={"type", "run_id", "step_id"}, exclude_unset=True)


class PlanStep(Event):
    """A step of the plan (its id is `step_id`), as soon as the planner has decoded it."""

    type: Literal["plan_step"] = "plan_step"
    instruction: str
    executor: str
    args: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)


class PlanReady(Event):
    """A whole plan (`round` > 0: a replan), or why there is none: `unplanned` says why
    the run answers without one; `error` that a replan failed."""

    type: Literal["plan_ready"] = "plan_ready"
    plan: dict[str, Any] | None = None
    round: int | None = None
    unplanned: str | None = None
    error: str | None = None
    attempts: int | None = None  # the planner's: 2 when its first plan was repaired
    first_error: str | None = None
    completion_tokens: int | None = None
    seconds: float | None = None


class StepStarted(Event):
    type: Literal["step_started"] = "step_started"
    executor: str
    instruction: str
    args: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    candidate: bool = False  # an answer to the whole instruction, not a step of the plan


class StepAttempt(Event):
    """One try of a step that was retried with its failed checks as feedback."""

    type: Literal["step_attempt"] = "step_attempt"
    attempt: int
    output: str = ""
    error: str | None = None
    verdicts: list[dict[str, Any]] = Field(default_factory=list)


class StepFinished(Event):
    """A step as it ended, with everything the store keeps of it (`StepResult`'s fields;
    the step's verdicts came before it, as their own events)."""

    type: Literal["step_finished"] = "step_finished"
    status: str
    output: str = ""
    error: str | None = None
    seconds: float | None = None
    attempts: int | None = None
    candidate: bool = False
    executor: str = ""
    instruction: str = ""
    args: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    result_data: Any = None  # StepResult.data (`data` is every event's field dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""


class VerdictMade(Event):
    """A check's outcome; `step_id` None: a check of the final answer."""

    type: Literal["verdict"] = "verdict"
    check: str
    passed: bool | None
    evidence: str = ""


class AnswerGiven(Event):
    type: Literal["answer"] = "answer"
    answer: str
    status: str


class RunFinished(Event):
    """The run's end: its status, answer and totals (what `RunResult` reports)."""

    type: Literal["run_finished"] = "run_finished"
    status: str
    error: str | None = None
    answer: str = ""
    seconds: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


AnyEvent = Annotated[
    PlanStep
    | PlanReady
    | StepStarted
    | StepAttempt
    | StepFinished
    | VerdictMade
    | AnswerGiven
    | RunFinished,
    Field(discriminator="type"),
]
_EVENTS: TypeAdapter[Event] = TypeAdapter(AnyEvent)


def parse_event(data: dict[str, Any]) -> Event:
    """The typed event a dict describes ({"type": ..., "run_id": ..., fields}); a type or
    a field it does not have is a pydantic ValidationError."""
    return _EVENTS.validate_python(data)


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
