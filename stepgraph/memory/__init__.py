"""The SQLite memory store: conversations, runs, plans, steps, verdicts and events."""

from stepgraph.memory.migrations import MIGRATIONS, migrate
from stepgraph.memory.records import (
    ConversationRecord,
    EventRecord,
    MessageRecord,
    PlanRecord,
    RunRecord,
    RunSummary,
    SearchHit,
    StepRecord,
    VerdictRecord,
)
from stepgraph.memory.store import Store, default_path, estimate_tokens, fts_query, new_id

__all__ = [
    "MIGRATIONS",
    "ConversationRecord",
    "EventRecord",
    "MessageRecord",
    "PlanRecord",
    "RunRecord",
    "RunSummary",
    "SearchHit",
    "StepRecord",
    "Store",
    "VerdictRecord",
    "default_path",
    "estimate_tokens",
    "fts_query",
    "migrate",
    "new_id",
]
