"""The PostgreSQL store beyond the conformance suite: its migrations, the databases it must
refuse without writing anything, and a run recorded through the runtime. A real server
(pgserver, see conftest.py); nothing is mocked."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from conftest import with_schema
from memory_helpers import record_full_run

from stepgraph.errors import StoreError
from stepgraph.memory import MIGRATIONS, MemoryStore, Store, is_postgres_url, open_store

psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")
from stepgraph.memory import postgres_migrations  # noqa: E402
from stepgraph.memory.postgres import PostgresStore, redact, search_text  # noqa: E402

TABLES = {"conversations", "messages", "runs", "plans", "steps", "verdicts", "events"}


def schema_of(url: str) -> str:
    return url.rsplit("%3D", 1)[1]


def snapshot(server: str, schema: str) -> dict[str, list]:
    """Every table of `schema` with all its rows: what "nothing was written" compares."""
    with psycopg.connect(server, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", [schema]
            )
        ]
        return {
            table: conn.execute(f'SELECT * FROM {schema}."{table}" ORDER BY 1').fetchall()
            for table in tables
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_both_databases_have_the_same_migrations():
    assert [name for name, _ in postgres_migrations.MIGRATIONS] == [
        fn.__name__ for fn in MIGRATIONS
    ]


def test_a_blank_schema_gets_every_migration_once(postgres_url: str, postgres_server: str):
    with PostgresStore(postgres_url) as store:
        assert isinstance(store, MemoryStore)
        done = [row[0] for row in store.conn.execute("SELECT name FROM _migrations ORDER BY num")]
        assert done == [fn.__name__ for fn in MIGRATIONS]
    tables = snapshot(postgres_server, schema_of(postgres_url))
    assert set(tables) == TABLES | {"_migrations"}
    with PostgresStore(postgres_url) as store:  # reopening applies nothing twice
        assert postgres_migrations.migrate(store.conn, store.location) == []
    assert snapshot(postgres_server, schema_of(postgres_url)) == tables


def test_search_uses_the_full_text_indexes(postgres_url: str):
    with PostgresStore(postgres_url) as store:
        record_full_run(store)
        store.conn.execute("SET enable_seqscan = off")  # a tiny table: make the index count
        for table, alias in (("messages", "m"), ("steps", "s"), ("runs", "r")):
            vector = postgres_migrations.document(table, alias)
            plan = store.conn.execute(
                f"EXPLAIN SELECT * FROM {table} {alias} "
                f"WHERE {vector} @@ websearch_to_tsquery('english', 'primes')"
            ).fetchall()
            assert f"{table}_search" in str(plan), plan


def test_an_older_schema_is_migrated_and_its_rows_searchable(postgres_url: str):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        postgres_migrations.migrate(conn, "test", upto="m001_initial")
        conn.execute(
            "INSERT INTO runs (id, instruction, status, created) VALUES "
            "('rold', 'Count the herons at the pond', 'done', '2026-01-01T00:00:00.000+00:00')"
        )
    with PostgresStore(postgres_url) as store:
        assert [hit.run_id for hit in store.search("heron")] == ["rold"]
        assert store.run("rold").instruction == "Count the herons at the pond"


def test_open_store_picks_the_database_from_the_target(postgres_url: str, tmp_path: Path):
    assert is_postgres_url("postgresql://h/db") and is_postgres_url("postgres://h/db")
    assert not is_postgres_url(str(tmp_path / "s.db")) and not is_postgres_url(None)
    with open_store(postgres_url) as store:
        assert type(store) is PostgresStore
    with open_store(tmp_path / "s.db") as store:
        assert type(store) is Store


def test_search_text_keeps_only_words():
    assert search_text('AND OR ( "x*') == "AND x"
    assert search_text("-primes or odd", any_word=True) == "primes or odd"
    assert search_text("*") == ""


# -- databases it must refuse, writing nothing ----------------------------------------------


def test_an_unreachable_server_is_one_clear_error(monkeypatch):
    url = f"postgresql://stepgraph:s3cret@127.0.0.1:{free_port()}/stepgraph"
    with pytest.raises(StoreError) as caught:
        PostgresStore(url)
    message = str(caught.value)
    assert "cannot reach the PostgreSQL server" in message
    assert "start the server, or fix the host and port" in message
    assert "tried 3 times" in message
    assert "s3cret" not in message and "\n" not in message


def test_a_wrong_password_is_one_clear_error(postgres_server: str, postgres_url: str):
    """A role that must give its password (scram), asked with a wrong one."""
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS stepgraph_pw")
        conn.execute("CREATE ROLE stepgraph_pw LOGIN PASSWORD 'right'")
        (hba,) = conn.execute("SHOW hba_file").fetchone()
        rules = Path(hba).read_text()
        Path(hba).write_text("local all stepgraph_pw scram-sha-256\n" + rules)
        conn.execute("SELECT pg_reload_conf()")
    try:
        before = snapshot(postgres_server, schema_of(postgres_url))
        url = postgres_url.replace("postgresql://postgres:@", "postgresql://stepgraph_pw:wrong@")
        with pytest.raises(StoreError) as caught:
            PostgresStore(url)
        message = str(caught.value)
        assert "refused the user or password" in message and "wrong" not in message
        assert "fix the user and password in the URL" in message
        assert snapshot(postgres_server, schema_of(postgres_url)) == before == {}
    finally:
        Path(hba).write_text(rules)
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")


def test_an_unknown_user_or_database_is_one_clear_error(postgres_server: str):
    with pytest.raises(StoreError, match="refused the user or password"):
        PostgresStore(postgres_server.replace("postgresql://postgres:@", "postgresql://nobody:@"))
    with pytest.raises(StoreError, match=r"has no database nodb: create it \(createdb nodb\)"):
        PostgresStore(postgres_server.replace("/postgres?", "/nodb?"))


def test_another_programs_tables_are_refused_untouched(postgres_url: str, postgres_server: str):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers VALUES (1, 'Ada')")
    before = snapshot(postgres_server, schema_of(postgres_url))
    for create in (True, False):
        with pytest.raises(StoreError, match=r"holds tables of another program \(customers\)"):
            PostgresStore(postgres_url, create=create)
    assert snapshot(postgres_server, schema_of(postgres_url)) == before


def test_a_schema_from_a_newer_stepgraph_is_refused_untouched(
    postgres_url: str, postgres_server: str
):
    with PostgresStore(postgres_url) as store:
        record_full_run(store)
        store.conn.execute(
            "INSERT INTO _migrations (name, applied_at) VALUES ('m999_from_the_future', '2030')"
        )
    before = snapshot(postgres_server, schema_of(postgres_url))
    with pytest.raises(StoreError, match="newer stepgraph.*m999_from_the_future.*upgrade"):
        PostgresStore(postgres_url)
    assert snapshot(postgres_server, schema_of(postgres_url)) == before


def test_opening_to_read_creates_nothing(postgres_url: str, postgres_server: str):
    with pytest.raises(StoreError, match="no memory store in .* yet"):
        open_store(postgres_url, create=False)
    assert snapshot(postgres_server, schema_of(postgres_url)) == {}


def test_a_schema_that_does_not_exist_is_one_clear_error(postgres_server: str):
    with pytest.raises(StoreError, match="has no schema to keep the store in"):
        PostgresStore(with_schema(postgres_server, "no_such_schema"))


def test_messages_never_show_the_password():
    assert redact("postgresql://u:p4ss@h:5432/db") == "postgresql://u@h:5432/db"
    assert redact("postgres://h/db?password=p4ss&x=1") == "postgres://h/db?password=***&x=1"


# -- through the runtime ---------------------------------------------------------------------


def test_a_scripted_run_is_recorded_in_postgres(postgres_url: str, tmp_path: Path, monkeypatch):
    from stepgraph import Runtime, ScriptedBackend

    home = tmp_path / "home"
    monkeypatch.setenv("STEPGRAPH_HOME", str(home))
    plan = {
        "steps": [{"id": "s1", "depends_on": [], "executor": "calculator", "instruction": "12 * 4"}]
    }

    def respond(request):
        if request.messages[0].content.startswith("You are a planner."):
            return json.dumps(plan)
        return "There are 48 eggs.\nAnswer: 48"

    with Runtime(
        ScriptedBackend(responder=respond), store=postgres_url, plan="always", direct=False
    ) as runtime:
        assert type(runtime.store) is PostgresStore
        result = runtime.run("How many eggs are in 12 boxes of 4?")
    assert runtime.store.conn.closed  # the runtime opened it, so it closed it
    # LangGraph's checkpoints are in the same database, none on this machine
    assert not (home / "stepgraph-checkpoints.db").exists()
    with psycopg.connect(postgres_url) as conn:
        query = "SELECT count(*) FROM checkpoints WHERE thread_id = %s"
        assert conn.execute(query, [result.run_id]).fetchone()[0] > 0

    with PostgresStore(postgres_url) as store:
        record = store.run(result.run_id)
    assert (record.status, record.answer) == (result.status, result.answer)
    assert record.status == "done" and "48" in record.answer
    assert record.plan["steps"][0]["id"] == "s1"
    (step,) = record.steps
    assert (step.step_id, step.executor, step.status, step.attempts) == (
        "s1",
        "calculator",
        "done",
        1,
    )
    assert step.output.strip().startswith("48")
    assert [e.seq for e in record.events] == list(range(1, len(record.events) + 1))
    assert {e.type for e in record.events} >= {"step_started", "step_finished"}


def test_the_cli_reads_a_postgres_store_from_db_or_stepgraph_store(postgres_url: str, monkeypatch):
    from typer.testing import CliRunner

    from stepgraph import cli

    with PostgresStore(postgres_url) as store:
        run_id = record_full_run(store)
    out = CliRunner().invoke(cli.app, ["runs", "list", "--db", postgres_url, "--json"])
    assert out.exit_code == 0, out.output
    assert [run["id"] for run in json.loads(out.stdout)] == [run_id]

    monkeypatch.setenv("STEPGRAPH_STORE", postgres_url)
    out = CliRunner().invoke(cli.app, ["runs", "search", "primes", "--json"])
    assert out.exit_code == 0, out.output
    assert {hit["run_id"] for hit in json.loads(out.stdout)} == {run_id}

    bad = f"postgresql://u:p@127.0.0.1:{free_port()}/x"
    out = CliRunner().invoke(cli.app, ["runs", "list", "--db", bad])
    # a StoreError: `stepgraph` (cli.main) prints it as one line, without a traceback
    assert isinstance(out.exception, StoreError)
    assert "cannot reach the PostgreSQL server" in str(out.exception)


def test_a_lost_connection_is_one_clear_error(postgres_url: str, postgres_server: str):
    with PostgresStore(postgres_url) as store:
        run_id = store.start_run("x")
        (pid,) = store.conn.execute("SELECT pg_backend_pid()").fetchone()
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        with pytest.raises(StoreError, match="lost the connection to the memory store"):
            store.record_step(run_id, "s1", status="done")
        with pytest.raises(StoreError, match="could not read the memory store .* server is up"):
            store.run(run_id)
    with PostgresStore(postgres_url) as store:  # what was stored before is intact
        assert store.run(run_id).steps == []
