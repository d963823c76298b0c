"""The `stepgraph` command as a user runs it: a real subprocess."""

import json
import subprocess
import sys

import pytest


def stepgraph(*args, env=None, input=None):
    return subprocess.run(
        [sys.executable, "-m", "stepgraph.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        input=input,
        timeout=600,
    )


def test_version():
    from stepgraph import __version__

    out = stepgraph("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"stepgraph {__version__}"


def test_help_lists_the_commands():
    out = stepgraph("--help")
    assert out.returncode == 0
    for command in ("plan", "run", "chat", "resume", "replay", "model", "runs", "evolve"):
        assert command in out.stdout
    assert "<bool>" not in out.stdout  # a flag takes no value, and its help says none


def test_flags_are_shown_without_a_value():
    out = stepgraph("run", "--help")
    assert out.returncode == 0 and "--strict " in out.stdout and "<bool>" not in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["plan", "   ", "--model", "qwen2.5-coder-0.5b"], "instruction is empty"),
        (["run", "hello", "--model", "no-such-model"], "unknown model"),
        (["run", "hello", "--model", "/nowhere/model.gguf"], "no model file"),
        (["plan", "hi", "--model", "openai:localhost#m"], "bad OpenAI spec"),
        (["runs", "show", "r-does-not-exist"], "no memory store at"),
        (["model", "pull", "gpt-17"], "unknown embedded model"),
        (["eval", "planner", "no-label"], "bad planner"),
        (["eval", "planner", "a=scripted:", "--few-shot", "maybe"], "--few-shot must be"),
        (["evolve", "--seeds", "/nowhere/seeds.jsonl", "--out", "x.jsonl"], "no seed file"),
    ],
)
def test_user_errors_print_one_line_without_a_traceback(args, message):
    out = stepgraph(*args)
    assert out.returncode == 1
    assert message in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_model_list_json():
    out = stepgraph("model", "list", "--json")
    assert out.returncode == 0
    names = [row["name"] for row in json.loads(out.stdout)]
    assert names == ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


def test_bad_config_file_is_reported(tmp_path):
    import os

    bad = tmp_path / "stepgraph.toml"
    bad.write_text("[stepgraph]\nmax_steps = 'many'\n")
    out = stepgraph("run", "hello", env={**os.environ, "STEPGRAPH_CONFIG": str(bad)})
    assert out.returncode == 1 and "max_steps" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.model
def test_plan_json_on_the_real_model(real_model, tmp_path):
    out = stepgraph(
        "plan", "Add 1234 and 4321, then say if the sum is a palindrome.", "--format", "json"
    )
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["steps"] and plan["steps"][0]["id"] == "s1"
    png = tmp_path / "plan.png"
    out = stepgraph("plan", "Compare tea and coffee.", "--format", "png", "--out", str(png))
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_eval_planner_counts_a_planner_that_writes_nothing_as_invalid(tmp_path):
    out = stepgraph(
        "eval", "planner", "mute=scripted:", "--out-dir", str(tmp_path), "--limit", "3", "--json"
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["mute"]
    assert report["items"] == 3 and report["validity"] == 0.0 and report["edge_f1"] == 0.0
    assert len((tmp_path / "mute.jsonl").read_text().splitlines()) == 3
    assert "| mute |" in (tmp_path / "planners.md").read_text()
    assert (tmp_path / "planners.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.model
def test_evolve_and_label_with_the_real_model(real_model, tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(
        "A bakery sells 120 loaves a day at $3.50 each. What is its weekly bread revenue?\n"
        "Write a short note inviting neighbours to a street clean-up on Saturday.\n"
    )
    evolved = tmp_path / "evolved.jsonl"
    out = stepgraph(
        "evolve",
        "--seeds",
        str(seeds),
        "--out",
        str(evolved),
        "--teacher",
        "qwen2.5-coder-0.5b",
        "--workers",
        "2",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["total"]["attempts"] == 2
    kept = [json.loads(line) for line in evolved.read_text().splitlines()]
    assert summary["total"]["kept"] == len(kept)
    for example in kept:
        assert example["plan"]["steps"] and example["teacher"] == "qwen2.5-coder-0.5b"
        assert example["instruction"] not in seeds.read_text()
