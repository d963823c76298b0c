"""`stepgraph chat`, `runs conversations` and the `--json` forms, in process with a scripted
model (the real-model CLI tests live in test_cli.py). The store is a real SQLite file, so a
second invocation with `-c ID` is what a new process sees."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stepgraph import ScriptedBackend, Store, cli
from stepgraph.models import Request

PLAN = json.dumps(
    {"steps": [{"id": "s1", "depends_on": [], "executor": "llm", "instruction": "Answer it."}]}
)


@pytest.fixture
def model(monkeypatch) -> ScriptedBackend:
    """Plans one llm step; every other request is answered with the question it was asked
    (its last message's last line), so a reply shows which turn produced it."""

    def respond(request: Request) -> str:
        if request.messages[0].content.startswith("You are a planner."):
            return PLAN
        return "ANSWER: " + request.messages[-1].content.strip().splitlines()[-1][:80]

    backend = ScriptedBackend(responder=respond)
    monkeypatch.setattr(cli, "_backend", lambda spec: backend)
    monkeypatch.setenv("STEPGRAPH_PLANNER_ADAPTER", "none")
    return backend


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli.app, list(args), input=input)


def test_chat_keeps_turns_in_one_conversation_and_picks_it_up_again(model, tmp_path):
    db = tmp_path / "s.db"
    out = invoke(
        "chat", "--db", str(db), "--json", input="Name a red fruit.\n\nAnd a yellow one?\n"
    )
    assert out.exit_code == 0, out.output
    first, second = (json.loads(line) for line in out.stdout.splitlines())
    assert first["status"] == second["status"] == "done"
    conversation = first["conversation_id"]
    assert conversation and second["conversation_id"] == conversation

    # the second turn's plan request carried the first turn as memory
    planner_prompts = [
        r for r in model.requests if r.messages[0].content.startswith("You are a planner.")
    ]
    assert "red fruit" in str(planner_prompts[-1].messages)

    again = invoke("chat", "--db", str(db), "-c", conversation, "--json", input="And green?\n")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["conversation_id"] == conversation
    with Store(db) as store:
        roles = [m.role for m in store.messages(conversation)]
    assert roles == ["user", "assistant"] * 3


def test_chat_commands_and_an_unknown_conversation(model, tmp_path):
    db = tmp_path / "s.db"
    out = invoke("chat", "--db", str(db), input="/id\n/new\nHello?\n/exit\nnever asked\n")
    assert out.exit_code == 0, out.output
    with Store(db) as store:
        conversations = store.conversations()
        assert len(conversations) == 2  # the first one, and the one /new started
        assert [c.message_count for c in conversations] == [2, 0]
        assert "never asked" not in str(store.messages(conversations[0].id))

    bad = invoke("chat", "--db", str(db), "-c", "c-nowhere", input="Hi\n")
    assert bad.exit_code != 0 and "no conversation c-nowhere" in str(bad.exception)


def test_runs_conversations_and_export_json(model, tmp_path):
    db = tmp_path / "s.db"
    out = invoke("chat", "--db", str(db), "--json", input="Name a red fruit.\n")
    run = json.loads(out.stdout)

    listed = invoke("runs", "conversations", "--db", str(db), "--json")
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert row["id"] == run["conversation_id"] and row["message_count"] == 2

    target = tmp_path / "runs.jsonl"
    exported = invoke("runs", "export", run["run_id"], "--db", str(db), "-o", str(target), "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout.splitlines()[-1]) == {
        "out": str(target),
        "format": "jsonl",
        "runs": 1,
    }
    assert json.loads(target.read_text())["id"] == run["run_id"]

    refused = invoke("runs", "export", run["run_id"], "--db", str(db), "-f", "html", "--json")
    assert refused.exit_code != 0 and "needs --out" in str(refused.exception)


def test_runs_export_png_draws_the_timeline_of_one_run(model, tmp_path):
    db = tmp_path / "s.db"
    run = json.loads(invoke("chat", "--db", str(db), "--json", input="Name a red fruit.\n").stdout)
    picture = tmp_path / "run.png"
    out = invoke("runs", "export", run["run_id"], "--db", str(db), "-f", "png", "-o", str(picture))
    assert out.exit_code == 0, out.output
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    two = invoke("runs", "export", run["run_id"], run["run_id"], "--db", str(db), "-f", "png")
    assert two.exit_code != 0 and "exports one run" in str(two.exception)
    no_out = invoke("runs", "export", run["run_id"], "--db", str(db), "-f", "png")
    assert no_out.exit_code != 0 and "needs --out" in str(no_out.exception)


def test_a_run_without_timed_steps_has_no_timeline(tmp_path):
    from stepgraph.errors import StoreError
    from stepgraph.memory.timeline import draw_timeline

    with Store(tmp_path / "s.db") as store:
        run_id = store.start_run("nothing ran")
        with pytest.raises(StoreError, match="no step with recorded times"):
            draw_timeline(store.run(run_id), tmp_path / "x.png")
