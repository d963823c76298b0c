"""Exports: a self-contained HTML page per run, and JSON lines that read back as RunRecords."""

from __future__ import annotations

import io
import json

from memory_helpers import record_full_run

from stepgraph.memory import RunRecord, Store

EVIL = '<script>alert("owned")</script>'


def test_html_escapes_everything_from_the_store(store: Store):
    run_id = store.start_run(f"Summarise {EVIL}")
    store.record_plan(
        run_id,
        {
            "goal": "<b>goal</b>",
            "steps": [
                {"id": "s1", "instruction": f"echo {EVIL}", "executor": "llm", "depends_on": []},
                {
                    "id": '"><img src=x>',
                    "instruction": "b",
                    "executor": "llm",
                    "depends_on": ["s1"],
                },
            ],
        },
    )
    store.record_step(run_id, "s1", status="done", input={"text": EVIL}, output=EVIL)
    store.record_verdict(run_id, "s1", "no_markup", False, EVIL)
    store.record_event(run_id, "note", {"html": EVIL})
    store.finish_run(run_id, status="done", answer=EVIL)

    page = store.export_html(run_id)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.replace("&lt;script", "")  # no script at all: offline
    assert "alert(" in page and 'alert("owned")' not in page
    assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;" in page
    assert "<img" not in page and "<b>goal" not in page


def test_html_draws_the_plan_offline_and_as_a_table(store: Store):
    run_id = record_full_run(store)
    page = store.export_html(run_id)
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page  # nothing to load: the graph is inline SVG
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count("<rect") == 3 and svg.count("<line") == 2  # s1 -> s2 -> s3
    assert ">s1 · " in svg and 'href="#step-s3"' in svg
    assert page.count('<tr><td><a href="#step-') == 3  # the plan table
    for step_id in ("s1", "s2", "s3"):
        assert f'<section class="step" id="step-{step_id}">' in page
    assert "129 is odd." in page
    assert "The sum is 129, which is odd." in page
    assert "recompute" in page and "answers_question" in page


def test_times_are_rounded_and_every_plan_version_is_listed(store: Store):
    run_id = store.start_run("x")
    first = {"steps": [{"id": "s1", "instruction": "first try", "executor": "llm"}]}
    second = {"steps": [{"id": "r1s1", "instruction": "second try", "executor": "llm"}]}
    store.record_plan(run_id, first)
    store.record_plan(run_id, second)
    store.record_step(run_id, "r1s1", status="done", output="ok", seconds=387.2821119109999)
    store.finish_run(run_id, status="done", answer="ok", seconds=400.123456)
    page = store.export_html(run_id)
    assert "387.3 s" in page and "400.1 s" in page and "387.28211" not in page
    assert "2 plan versions" in page and "first try" in page and "second try" in page


def test_graph_labels_are_escaped(store: Store):
    run_id = store.start_run("x")
    store.record_step(run_id, 'a"b', instruction='say "hi" <now>\nplease', executor="llm")
    page = store.export_html(run_id)
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert "a&quot;b · llm" in svg and "say &quot;hi&quot; &lt;now&gt; please" in svg


def test_jsonl_round_trips(store: Store):
    first = record_full_run(store)
    second = store.start_run("unfinished", meta={"note": "ü ✓"})
    out = io.StringIO()
    assert store.export_jsonl([second, first[:-1]], out) == 2
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [second, first]
    assert [RunRecord.model_validate_json(line) for line in lines] == [
        store.run(second),
        store.run(first),
    ]

    everything = io.StringIO()
    assert store.export_jsonl(None, everything) == 2
    assert [json.loads(line)["id"] for line in everything.getvalue().splitlines()] == [
        first,
        second,
    ]
