"""Records the store hands out: plain pydantic models, so they print, compare and serialize.

A `RunRecord` is self-contained on purpose: replay rebuilds a run's answer from it alone (the
plan, every step's input, output and status, the verdicts and the final answer), and
`export_jsonl` writes exactly `RunRecord.model_dump_json()` so an export reads back with
`RunRecord.model_validate_json(line)`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class ConversationRecord(_Record):
    id: str
    title: str | None
    created: str
    message_count: int = 0
    last_message: str | None = None
    """When the newest message was added (None for an empty conversation)."""


class MessageRecord(_Record):
    id: int
    conversation_id: str
    run_id: str | None
    role: str
    content: str
    created: str
    tokens: int


class PlanRecord(_Record):
    run_id: str
    version: int
    plan: dict[str, Any]
    created: str


class StepRecord(_Record):
    run_id: str
    step_id: str
    plan_version: int | None = None
    executor: str | None = None
    instruction: str | None = None
    args: dict[str, Any] | None = None
    depends_on: list[str] | None = None
    input: Any = None
    output: str | None = None
    data: Any = None
    status: str = "pending"
    attempts: int = 0
    error: str | None = None
    started: str | None = None
    finished: str | None = None
    seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None


class VerdictRecord(_Record):
    id: int
    run_id: str
    step_id: str | None
    """None for a verdict on the final answer."""
    check: str
    passed: bool | None
    """None when the check could not decide."""
    evidence: str | None
    created: str


class EventRecord(_Record):
    run_id: str
    seq: int
    type: str
    payload: dict[str, Any]
    created: str


class RunSummary(_Record):
    id: str
    conversation_id: str | None
    instruction: str
    status: str
    answer: str | None
    model: str
    planner: str
    created: str
    finished: str | None
    seconds: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    error: str | None
    meta: dict[str, Any]
    step_count: int = 0
    claimed_by: str | None = None
    """The worker that claimed the run last (`stepgraph worker`); None for a run that was
    not submitted to workers."""
    claims: int = 0
    """How many times workers claimed it: more than 1 when a worker died or lost the
    database while running it, and another resumed it."""


class RunRecord(RunSummary):
    """One run with everything recorded about it; enough to replay it without a model."""

    plans: list[PlanRecord]
    """Every plan version, oldest first (a run is replanned when verification fails)."""
    steps: list[StepRecord]
    """In the latest plan's order; steps no longer in it come after, in recording order."""
    verdicts: list[VerdictRecord]
    events: list[EventRecord]

    @property
    def plan(self) -> dict[str, Any] | None:
        """The latest plan, or None when none was recorded."""
        return self.plans[-1].plan if self.plans else None

    def step(self, step_id: str) -> StepRecord:
        """The step with this id (KeyError when the run has none)."""
        for step in self.steps:
            if step.step_id == step_id:
                return step
        raise KeyError(step_id)


class SearchHit(_Record):
    kind: Literal["message", "step", "run"]
    run_id: str | None
    conversation_id: str | None
    step_id: str | None
    message_id: int | None
    snippet: str
    """The matching text, matched words marked «like this»."""
    score: float
    """Lower is a better match: FTS5's bm25 rank on SQLite, minus `ts_rank` on PostgreSQL
    (so scores compare within one store, not across the two)."""
    created: str | None
