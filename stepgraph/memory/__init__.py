"""The memory store: conversations, runs, plans, steps, verdicts and events, in one SQLite
file (`Store`) or a PostgreSQL database (`stepgraph.memory.postgres.PostgresStore`, with the
`postgres` extra); `open_store` picks one from what a user types."""

from stepgraph.memory.base import MemoryStore
from stepgraph.memory.migrations import MIGRATIONS, migrate
from stepgraph.memory.opening import is_postgres_url, open_store
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
    "MemoryStore",
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
    "is_postgres_url",
    "migrate",
    "new_id",
    "open_store",
]
