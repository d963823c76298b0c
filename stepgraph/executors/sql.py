"""Read-only SQL over a SQLite database file.

Three independent locks keep a model-written query from changing the database: the file is
opened with `mode=ro`, `PRAGMA query_only` is on, and an authorizer allows only reading
(SELECT, reading columns, calling functions, recursive CTEs), so ATTACH, PRAGMA, writes and
schema changes are refused before they run. A progress handler stops a query that runs
past the step's time limit. Each query gets its own connection in a worker thread, so
steps may query at the same time without blocking the event loop.

The executor's description carries the schema (tables and columns), because a planner
can only write a query for tables it knows about.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from stepgraph.errors import ExecutorError
from stepgraph.executors.base import StepInput, StepOutput

MAX_TABLE_ROWS = 50
MAX_DATA_ROWS = 1000
MAX_RESULT_BYTES = 1_000_000
MAX_COUNTED_ROWS = 1_000_000
MAX_CELL_CHARS = 200
MAX_SCHEMA_CHARS = 1500
_ALLOWED_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        getattr(sqlite3, "SQLITE_RECURSIVE", 33),
    }
)
_FENCE = re.compile(r"```(?:sql|sqlite)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
# Upper-case SELECT or WITH first (how people write SQL); then "select" in any case, but
# not "with", which prose is full of.
_STATEMENTS = (
    re.compile(r"\b(?:SELECT|WITH)\b[^;]*", re.DOTALL),
    re.compile(r"\bselect\b[^;]*", re.DOTALL | re.IGNORECASE),
)


def _authorizer(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def extract_query(text: str) -> str | None:
    """The query in a step's instruction: a ```sql block, else the text from a SELECT or
    WITH keyword to the end or the first ';'."""
    match = _FENCE.search(text)
    if match and match.group(1).strip():
        return match.group(1).strip()
    for pattern in _STATEMENTS:
        found = pattern.search(text)
        if found:
            return found.group().strip()
    return None


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = str(value).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def markdown_table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    lines = [
        "| " + " | ".join(_cell(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    return f"<{len(value)} bytes>" if isinstance(value, bytes) else value


class SqlExecutor:
    """Read-only queries on one SQLite database file."""

    name = "sql"
    computes = True  # see Executor
    brings_facts = True  # its output holds facts the model cannot know: see Executor

    def __init__(
        self,
        db_path: str | Path,
        *,
        timeout: float = 10.0,
        max_rows: int = MAX_DATA_ROWS,
        max_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        """`max_rows` and `max_bytes` cap what one query returns (and the store keeps);
        a longer result is cut and says so. No single value may exceed `max_bytes`."""
        path = Path(db_path).expanduser()
        if not path.is_file():
            raise ExecutorError(
                f"database file {str(path)!r} does not exist; pass the path of a SQLite file"
            )
        self.path = path.resolve()
        self.timeout = timeout
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        try:
            self.schema = self._read_schema()
        except sqlite3.DatabaseError as exc:
            raise ExecutorError(
                f"cannot read {str(self.path)!r} as a SQLite database: {exc}"
            ) from None
        tables = "; ".join(f"{name}({', '.join(cols)})" for name, cols in self.schema.items())
        if len(tables) > MAX_SCHEMA_CHARS:
            tables = tables[:MAX_SCHEMA_CHARS].rsplit(";", 1)[0] + "; ..."
        self.description = (
            f"queries the SQLite database '{self.path.name}'; the instruction is one "
            f"read-only SELECT statement. Tables: {tables or 'none'}."
        )  # plans carry no args (the plan grammar has none), so the query is the text

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        return conn

    def _read_schema(self) -> dict[str, list[str]]:
        """Table and view name -> column names, read before the authorizer is in place."""
        conn = self._connect()
        try:
            names = [
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY type, name"
                )
            ]
            schema: dict[str, list[str]] = {}
            for name in names:
                quoted = '"' + name.replace('"', '""') + '"'
                schema[name] = [row[1] for row in conn.execute(f"PRAGMA table_info({quoted})")]
            return schema
        finally:
            conn.close()

    def query(self, sql: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Run one read-only statement: {"columns", "rows", "row_count", "cut"}: at most
        `max_rows` rows and `max_bytes` bytes of values are kept (`cut` says whether more
        were left out); all rows are counted, up to a million. Raises sqlite3.Error for a
        bad or refused query or a value over `max_bytes`, TimeoutError past the limit."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        conn = self._connect()
        try:
            conn.set_authorizer(_authorizer)
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
            # SQLite itself refuses to build a larger string or blob (zeroblob(1e8))
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.max_bytes)
            try:
                cursor = conn.execute(sql)
                columns = [d[0] for d in cursor.description or []]
                rows, size, count, cut = [], 0, 0, False
                while count < MAX_COUNTED_ROWS and (batch := cursor.fetchmany(1000)):
                    for row in batch:
                        count += 1
                        if cut or len(rows) >= self.max_rows:
                            cut = True
                            continue
                        size += sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)
                        if size > self.max_bytes:
                            cut = True
                        else:
                            rows.append(row)
            except sqlite3.OperationalError as exc:
                if time.monotonic() > deadline and "interrupt" in str(exc):
                    raise TimeoutError(f"time limit of {limit:g} s exceeded") from None
                raise
            return {"columns": columns, "rows": rows, "row_count": count, "cut": cut}
        finally:
            conn.close()

    async def run(self, step: StepInput) -> StepOutput:
        sql = step.args.get("query")
        if not isinstance(sql, str) or not sql.strip():
            sql = extract_query(step.instruction)
        if not sql:
            return StepOutput(error='no SQL query found; pass args {"query": "SELECT ..."}')
        timeout = min(self.timeout, step.timeout) if step.timeout > 0 else self.timeout
        try:
            result = await asyncio.to_thread(self.query, sql, timeout=timeout)
        except TimeoutError as exc:
            return StepOutput(error=f"query stopped: {exc}")
        except sqlite3.Error as exc:
            message = str(exc)
            if "not authorized" in message or "readonly" in message:
                message += " (only read-only SELECT queries are allowed)"
            elif "too big" in message:
                message += f" (no value may exceed {self.max_bytes} bytes)"
            return StepOutput(error=f"SQL error: {message}")
        columns, rows, count = result["columns"], result["rows"], result["row_count"]
        if not columns:
            return StepOutput(error="the statement returned no columns; use a SELECT")
        table = markdown_table(columns, rows[:MAX_TABLE_ROWS])
        if count > MAX_TABLE_ROWS:
            plus = "+" if count >= MAX_COUNTED_ROWS else ""
            table += (
                f"\n({count - MAX_TABLE_ROWS}{plus} more rows not shown; {count}{plus} rows in all)"
            )
        elif count == 0:
            table += "\n(no rows)"
        if result["cut"]:
            table += (
                f"\n(result cut: {len(rows)} of {count} rows kept, at most {self.max_rows} "
                f"rows and {self.max_bytes} bytes)"
            )
        data = {
            "columns": columns,
            "rows": [[_jsonable(v) for v in row] for row in rows],
            "row_count": count,
            "cut": result["cut"],
        }
        return StepOutput(output=table, data=data)
