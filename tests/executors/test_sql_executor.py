"""The sql executor on a real SQLite file: answers, tables, and every way to write refused."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import pytest

from stepgraph.errors import ExecutorError
from stepgraph.executors.base import StepInput, StepOutput
from stepgraph.executors.sql import SqlExecutor, extract_query, markdown_table

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL,
                             note TEXT, receipt BLOB);
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
        INSERT INTO customers VALUES (1, 'Ada', 'London'), (2, 'Grace', 'New York'),
                                     (3, 'Linus', NULL);
        """
    )
    conn.executemany(
        "INSERT INTO orders (customer_id, total, note, receipt) VALUES (?, ?, ?, ?)",
        [
            (1 + i % 3, 10.5 * i, "line one\nline | two" if i == 1 else None, b"\x00\x01")
            for i in range(1, 121)
        ],
    )
    conn.commit()
    conn.close()
    return path


def query(
    executor: SqlExecutor, sql: str = "", instruction: str = "", **extra: float
) -> StepOutput:
    args = {"query": sql} if sql else {}
    step = StepInput(step_id="s1", instruction=instruction, args=args, **extra)
    return asyncio.run(executor.run(step))


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_or_broken_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExecutorError, match="does not exist"):
        SqlExecutor(tmp_path / "none.db")
    junk = tmp_path / "junk.db"
    junk.write_text("this is not a database, just text that is long enough " * 20)
    with pytest.raises(ExecutorError, match="as a SQLite database"):
        SqlExecutor(junk)


def test_description_carries_the_schema(db: Path) -> None:
    description = SqlExecutor(db).description
    assert "'shop.db'" in description
    assert "customers(id, name, city)" in description
    assert "orders(id, customer_id, total, note, receipt)" in description
    assert "big_orders(" in description
    assert "SELECT" in description and "args" not in description  # plans carry no args


def test_select_returns_a_markdown_table_and_data(db: Path) -> None:
    out = query(SqlExecutor(db), "SELECT name, city FROM customers ORDER BY id")
    assert out.ok, out.error
    assert out.output == (
        "| name | city |\n|---|---|\n| Ada | London |\n| Grace | New York |\n| Linus | NULL |"
    )
    assert out.data == {
        "columns": ["name", "city"],
        "rows": [["Ada", "London"], ["Grace", "New York"], ["Linus", None]],
        "row_count": 3,
        "cut": False,
    }


def test_huge_values_are_refused_by_sqlite_itself(db: Path) -> None:
    """Four zeroblob(1e8) once took the process from 36 MB to 513 MB and went to the store."""
    out = query(SqlExecutor(db), "SELECT zeroblob(100000000) FROM customers")
    assert not out.ok
    assert "too big" in out.error and "1000000 bytes" in out.error


def test_a_long_result_is_cut_to_its_caps_and_says_so(db: Path) -> None:
    rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) "
    by_rows = query(SqlExecutor(db, max_rows=100), rows + "SELECT i FROM n")
    assert by_rows.ok and by_rows.data["cut"] is True
    assert len(by_rows.data["rows"]) == 100 and by_rows.data["row_count"] == 5000
    assert "result cut: 100 of 5000 rows kept" in by_rows.output
    by_bytes = query(
        SqlExecutor(db, max_bytes=10_000), rows + "SELECT printf('%.900c', 'x') FROM n"
    )
    assert by_bytes.ok and by_bytes.data["cut"] is True
    kept = by_bytes.data["rows"]
    assert len(kept) == 11 and sum(len(r[0]) for r in kept) <= 10_000


def test_cells_with_newlines_pipes_and_blobs_keep_the_table_intact(db: Path) -> None:
    out = query(SqlExecutor(db), "SELECT note, receipt FROM orders WHERE id = 1")
    assert out.output.splitlines()[2] == "| line one line \\| two | <2 bytes> |"
    assert out.data["rows"] == [["line one\nline | two", "<2 bytes>"]]


def test_long_results_are_cut_at_50_rows_and_say_so(db: Path) -> None:
    out = query(SqlExecutor(db), "SELECT id, total FROM orders ORDER BY id")
    lines = out.output.splitlines()
    assert len(lines) == 2 + 50 + 1
    assert lines[-1] == "(70 more rows not shown; 120 rows in all)"
    assert out.data["row_count"] == 120
    assert len(out.data["rows"]) == 120


def test_empty_result(db: Path) -> None:
    out = query(SqlExecutor(db), "SELECT name FROM customers WHERE id > 99")
    assert out.ok
    assert out.output.endswith("(no rows)")


def test_aggregates_joins_views_and_recursive_ctes_are_allowed(db: Path) -> None:
    executor = SqlExecutor(db)
    out = query(
        executor,
        "SELECT c.name, round(sum(o.total), 1) AS spent FROM customers c "
        "JOIN orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY spent DESC",
    )
    assert out.data["rows"][0] == ["Ada", 25830.0]
    assert query(executor, "SELECT count(*) FROM big_orders").data["rows"] == [[111]]
    out = query(
        executor,
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
        "WHERE x < 5) SELECT sum(x) FROM n",
    )
    assert out.data["rows"] == [[15]]


@pytest.mark.parametrize(
    ("instruction", "sql"),
    [
        ("Run this:\n```sql\nSELECT name FROM customers\n```", "SELECT name FROM customers"),
        (
            "Names by city: SELECT name FROM customers ORDER BY city; then stop",
            "SELECT name FROM customers ORDER BY city",
        ),
        ("list them with select count(*) from orders", "select count(*) from orders"),
        ("Find customers with many orders", None),
    ],
)
def test_extract_query(instruction: str, sql: str | None) -> None:
    assert extract_query(instruction) == sql


def test_query_from_the_instruction(db: Path) -> None:
    out = query(SqlExecutor(db), instruction="Count: SELECT count(*) AS n FROM customers")
    assert out.data["rows"] == [[3]]
    assert not query(SqlExecutor(db), instruction="How many customers?").ok


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO customers (name) VALUES ('Mallory')",
        "UPDATE orders SET total = 0",
        "DELETE FROM orders",
        "DROP TABLE customers",
        "CREATE TABLE evil (x)",
        "ALTER TABLE customers ADD COLUMN evil TEXT",
        "CREATE INDEX evil ON orders (total)",
        "PRAGMA writable_schema = ON",
        "PRAGMA query_only = OFF",
        "ATTACH DATABASE '{tmp}/other.db' AS other",
        "VACUUM",
        "VACUUM INTO '{tmp}/copy.db'",
        "BEGIN IMMEDIATE",
        "REPLACE INTO customers VALUES (1, 'Mallory', 'x')",
        "SELECT 1; DELETE FROM orders",
        "SELECT load_extension('/tmp/evil.so')",
    ],
)
def test_every_write_is_refused_and_the_file_is_unchanged(
    db: Path, tmp_path: Path, sql: str
) -> None:
    before = fingerprint(db)
    out = query(SqlExecutor(db), sql.format(tmp=tmp_path))
    assert not out.ok, out.output
    assert out.error.startswith("SQL error")
    assert fingerprint(db) == before
    assert not (tmp_path / "other.db").exists()
    assert not (tmp_path / "copy.db").exists()


def test_a_runaway_query_stops_at_the_time_limit(db: Path) -> None:
    out = query(
        SqlExecutor(db),
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        timeout=0.5,
    )
    assert out.error == "query stopped: time limit of 0.5 s exceeded"


def test_a_database_in_wal_mode_with_a_live_writer(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("CREATE TABLE t (x)")
    writer.execute("INSERT INTO t VALUES (1)")
    writer.commit()
    executor = SqlExecutor(path)
    writer.execute("INSERT INTO t VALUES (2)")
    writer.commit()
    assert query(executor, "SELECT sum(x) FROM t").data["rows"] == [[3]]
    writer.close()


def test_concurrent_queries(db: Path) -> None:
    executor = SqlExecutor(db)

    async def many() -> list[StepOutput]:
        steps = [
            StepInput(
                step_id=f"s{i}",
                instruction="",
                args={"query": f"SELECT {i} + count(*) FROM customers"},
            )
            for i in range(8)
        ]
        return await asyncio.gather(*(executor.run(s) for s in steps))

    assert [o.data["rows"][0][0] for o in asyncio.run(many())] == [i + 3 for i in range(8)]


def test_markdown_table_of_nothing() -> None:
    assert markdown_table(["a"], []) == "| a |\n|---|"
