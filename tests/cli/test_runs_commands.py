"""`stepgraph runs ...` as a person reads it: whole ids, one line per run found, and a line
that says so when there is nothing to show."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from stepgraph import cli
from stepgraph.memory import Store


def invoke(*args: str):
    return CliRunner().invoke(cli.app, list(args))


def make_store(path: Path) -> list[str]:
    with Store(path) as store:
        ids = []
        for n in range(2):
            run_id = store.start_run(f"Which primes are below {30 + n}? primes please")
            store.record_step(run_id, "s1", instruction="list the primes", output="2 3 5 7 primes")
            store.finish_run(run_id, status="done", answer="primes: 2, 3, 5, 7")
            ids.append(run_id)
    return ids


def test_search_shows_each_run_once(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    ids = make_store(db)
    out = invoke("runs", "search", "primes", "--db", str(db))
    assert out.exit_code == 0
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert sorted(line.split()[1] for line in lines) == sorted(ids)  # run, step, answer: once


def test_search_that_finds_nothing_says_so(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_store(db)
    out = invoke("runs", "search", "zebras", "--db", str(db))
    assert out.exit_code == 0 and "nothing matches 'zebras'" in out.output


def test_list_keeps_ids_whole_and_refuses_an_unknown_status(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    ids = make_store(db)
    out = invoke("runs", "list", "--db", str(db))
    assert out.exit_code == 0
    assert all(run_id in out.stdout for run_id in ids), out.stdout
    bogus = invoke("runs", "list", "--status", "bogus", "--db", str(db))
    assert bogus.exit_code != 0
    assert "no run status 'bogus'; use one of running, done, unverified" in str(bogus.exception)
    empty = invoke("runs", "list", "--status", "failed", "--db", str(db))
    assert empty.exit_code == 0 and "no runs with status failed yet" in empty.output


def test_show_prints_what_models_wrote_as_written(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store(db) as store:
        run_id = store.start_run("Compute [x] for me")
        store.record_step(run_id, "s1", instruction="solve [bold]it[/bold]", output="\\[ x = 2 \\]")
        store.finish_run(run_id, status="done", answer="[x] is 2")
    out = invoke("runs", "show", run_id, "--db", str(db))
    assert out.exit_code == 0
    for text in ("Compute [x] for me", "solve [bold]it[/bold]", "\\[ x = 2 \\]", "[x] is 2"):
        assert text in out.stdout, out.stdout
