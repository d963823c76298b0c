"""The docs executor: a real folder, a real SQLite FTS5 index, real searches."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepgraph.errors import ExecutorError
from stepgraph.executors.base import StepInput, StepOutput
from stepgraph.executors.docs import DocsExecutor, chunk_text, html_to_text, to_fts_query

FILLER = " ".join(f"Filler sentence number {i} about nothing in particular." for i in range(40))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "handbook"
    docs.mkdir()
    (docs / "refunds.md").write_text(
        "# Refunds\n\nCustomers may return a product within 30 days for a full refund.\n\n" + FILLER
    )
    (docs / "shipping.txt").write_text(
        "Shipping takes five working days. Express shipping costs 12 euros."
    )
    (docs / "team").mkdir()
    (docs / "team" / "people.html").write_text(
        "<html><head><title>x</title><script>var penguin = 1;</script></head>"
        "<body><h1>Team</h1><p>Ada leads the kernel group.</p><p>Grace &amp; Linus "
        "review patches.</p></body></html>"
    )
    (docs / "prices.json").write_text(json.dumps({"plans": [{"name": "basic", "eur": 9}]}))
    (docs / "stock.csv").write_text("item,count\nwidget,17\ngizmo,4\n")
    (docs / ".drafts").mkdir()
    (docs / ".drafts" / "secret.md").write_text("The refund policy will change to 14 days.")
    (docs / "logo.png").write_bytes(b"\x89PNG refund refund refund")
    return docs


def search(executor: DocsExecutor, instruction: str = "", **args: object) -> StepOutput:
    return asyncio.run(executor.run(StepInput(step_id="s1", instruction=instruction, args=args)))


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExecutorError, match="does not exist"):
        DocsExecutor(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ExecutorError, match="not a folder"):
        DocsExecutor(tmp_path / "file.txt")


def test_description_names_the_folder_and_counts_text_files(folder: Path) -> None:
    description = DocsExecutor(folder).description
    assert "'handbook' (5 files)" in description
    assert "instruction" in description and "args" not in description  # plans carry no args


def test_best_passage_comes_first_with_its_file_name(folder: Path) -> None:
    out = search(DocsExecutor(folder), query="How many days do I have to return a product?")
    assert out.ok, out.error
    assert out.output.startswith("[refunds.md] # Refunds")
    assert out.data[0]["path"] == "refunds.md"
    assert "30 days" in out.data[0]["text"]
    assert out.data[0]["score"] >= out.data[-1]["score"]


def test_query_comes_from_the_instruction_without_args(folder: Path) -> None:
    out = search(DocsExecutor(folder), "Find what express shipping costs")
    assert out.data[0]["path"] == "shipping.txt"


def test_html_json_csv_in_subfolders_are_searchable(folder: Path) -> None:
    executor = DocsExecutor(folder)
    assert search(executor, query="kernel group").data[0]["path"] == "team/people.html"
    assert search(executor, query="basic plan").data[0]["path"] == "prices.json"
    assert search(executor, query="widget").data[0]["path"] == "stock.csv"


def test_markup_scripts_hidden_and_binary_files_are_not_indexed(folder: Path) -> None:
    executor = DocsExecutor(folder)
    assert search(executor, query="penguin").data == []
    assert search(executor, query="html body title").data == []
    paths = {hit["path"] for hit in search(executor, query="refund policy", k=20).data}
    assert paths == {"refunds.md"}


def test_k_limits_the_number_of_passages(folder: Path) -> None:
    executor = DocsExecutor(folder)
    assert len(search(executor, query="filler sentence", k=1).data) == 1
    assert len(search(executor, query="filler sentence days shipping", k=3).data) == 3
    assert search(executor, query="days", k="many").error == "k must be a whole number, not 'many'"


def test_chunks_are_about_800_characters(folder: Path) -> None:
    hits = search(DocsExecutor(folder), query="filler", k=20).data
    assert len(hits) >= 3
    assert all(len(hit["text"]) <= 800 for hit in hits)


@pytest.mark.parametrize(
    "query",
    ['refund "policy', "refund AND (NEAR", "refund* -days ^", "col:refund", "' OR 1=1 --"],
)
def test_fts_syntax_in_the_question_never_breaks_the_search(folder: Path, query: str) -> None:
    out = search(DocsExecutor(folder), query=query)
    assert out.ok, out.error
    assert out.data[0]["path"] == "refunds.md"


def test_a_question_of_only_stop_words_is_an_error(folder: Path) -> None:
    out = search(DocsExecutor(folder), query="what is it about?")
    assert not out.ok
    assert "no search words" in (out.error or "")


def test_no_match_is_not_an_error(folder: Path) -> None:
    out = search(DocsExecutor(folder), query="zeppelin")
    assert out.ok
    assert out.data == []
    assert "No passage" in out.output


def test_index_follows_changes_to_the_folder(folder: Path) -> None:
    executor = DocsExecutor(folder)
    assert search(executor, query="warranty").data == []
    (folder / "warranty.md").write_text("The warranty lasts two years.")
    assert search(executor, query="warranty").data[0]["path"] == "warranty.md"

    shipping = folder / "shipping.txt"
    shipping.write_text("Shipping is done by carrier pigeon.")
    os.utime(shipping, ns=(1, 1))  # a different mtime even on coarse clocks
    assert search(executor, query="pigeon").data[0]["path"] == "shipping.txt"
    assert search(executor, query="express").data == []

    (folder / "warranty.md").unlink()
    assert search(executor, query="warranty").data == []
    assert executor.refresh() is False  # nothing changed since the last search


def test_html_to_text_keeps_paragraphs() -> None:
    text = html_to_text("<p>One &lt;b&gt;</p><style>p{}</style><div>Two\n   words</div>")
    assert text == "One <b>\n\nTwo words"


def test_long_lines_are_cut_into_chunks() -> None:
    chunks = chunk_text("x" * 2000 + "\n\n" + "short paragraph")
    assert [len(c) for c in chunks] == [800, 800, 400 + 2 + len("short paragraph")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abc xyz\n.", min_size=1, max_size=300), max_size=12))
def test_chunking_keeps_every_word_in_order_within_the_size(paragraphs: list[str]) -> None:
    text = "\n\n".join(paragraphs)
    chunks = chunk_text(text, 120)
    assert all(len(c) <= 120 for c in chunks)
    words = re.findall(r"\S+", text)
    if all(len(w) <= 120 for w in words):
        assert re.findall(r"\S+", " ".join(chunks)) == words


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_becomes_a_valid_fts5_query(text: str) -> None:
    query = to_fts_query(text)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize = 'porter unicode61')")
    db.execute("INSERT INTO t VALUES ('some text')")
    if query:
        db.execute("SELECT * FROM t WHERE t MATCH ?", (query,)).fetchall()


def test_files_that_resolve_outside_the_folder_are_never_served(tmp_path: Path) -> None:
    """A symlink in the folder to a secret elsewhere (a file, or a whole folder) is left
    out of the index; a symlink that stays inside the folder is kept."""
    secret = tmp_path / "private" / "keys.md"
    secret.parent.mkdir()
    secret.write_text("The vault password is swordfish.")
    docs = tmp_path / "docs"
    (docs / "inner").mkdir(parents=True)
    (docs / "inner" / "faq.md").write_text("The vault opens at nine every morning.")
    (docs / "leak.md").symlink_to(secret)
    (docs / "leaked-folder").symlink_to(secret.parent, target_is_directory=True)
    (docs / "alias.md").symlink_to(docs / "inner" / "faq.md")
    executor = DocsExecutor(docs)
    hits = executor.search("vault password swordfish", k=10)
    assert "swordfish" not in json.dumps(hits)
    assert {h["path"] for h in hits} == {"inner/faq.md", "alias.md"}
