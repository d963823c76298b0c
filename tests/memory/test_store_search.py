"""Full-text search and conversation memory."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from memory_helpers import record_full_run

from stepgraph.memory import Store, fts_query


def test_search_finds_step_outputs_messages_and_runs(store: Store):
    conversation = store.new_conversation()
    store.add_message(conversation, "user", "Which primes are below thirty?")
    run_id = record_full_run(store, conversation_id=conversation)
    store.record_step(run_id, "s4", output="Goldbach would have liked these primes.")

    hits = store.search("primes")
    assert {hit.kind for hit in hits} == {"message", "step", "run"}
    step_hits = [hit for hit in hits if hit.kind == "step"]
    assert {hit.step_id for hit in step_hits} == {"s1", "s4"}  # s1's instruction, s4's output
    assert all(hit.conversation_id == conversation for hit in hits)
    assert {hit.run_id for hit in hits} == {run_id, None}  # the message belongs to no run
    assert any("«primes»" in hit.snippet for hit in hits)
    assert [hit.score for hit in hits] == sorted(hit.score for hit in hits)

    (hit,) = store.search("Goldbach")
    assert (hit.kind, hit.step_id) == ("step", "s4")
    # Every word must match: only s3's output and the run's answer have both.
    assert {(hit.kind, hit.step_id) for hit in store.search("odd 129")} == {
        ("step", "s3"),
        ("run", None),
    }
    assert store.search("primes", limit=2) == hits[:2]


def test_search_stems_words(store: Store):
    run_id = store.start_run("x")
    store.record_step(run_id, "s1", output="The results were recorded carefully.")
    assert [hit.step_id for hit in store.search("record result")] == ["s1"]


def test_search_sees_updated_step_outputs(store: Store):
    run_id = store.start_run("x")
    store.record_step(run_id, "s1", status="running", output="draft walrus")
    store.record_step(run_id, "s1", status="done", output="final narwhal")
    assert store.search("walrus") == []
    assert [hit.step_id for hit in store.search("narwhal")] == ["s1"]


def test_odd_queries_do_not_crash(store: Store):
    record_full_run(store)
    for query in ['"', "AND OR (", "*", "", "   ", "NEAR(", 'a"b', "-primes", "col:primes",
                  "^first", "primes)", "'", "((((", "NOT", "s1:*"]:  # fmt: skip
        assert isinstance(store.search(query), list)
    assert store.search("*") == []
    assert store.search('"primes"')[0].snippet  # quotes are dropped, the word is searched
    assert fts_query('AND OR ( "x*') == '"AND" "OR" "x"'
    assert fts_query("one two", any_word=True) == '"one" OR "two"'


def test_any_text_is_a_safe_query(store: Store):
    conversation = store.new_conversation()
    store.add_message(conversation, "user", "some text to find")
    record_full_run(store, conversation_id=conversation)

    @settings(max_examples=200, deadline=None)
    @given(st.text())
    def check(query: str) -> None:
        assert isinstance(store.search(query), list)
        assert isinstance(store.context(conversation, query), list)

    check()


def _conversation(store: Store) -> tuple[str, list[int]]:
    """Twenty turns; turn 2 is the only one about the heron, the rest are filler."""
    conversation = store.new_conversation()
    ids = []
    for n in range(20):
        text = f"turn {n}: " + (
            "my heron is called Gerald and he likes the pond" if n == 2 else "filler " * 10
        )
        ids.append(store.add_message(conversation, "user" if n % 2 == 0 else "assistant", text))
    return conversation, ids


def test_context_is_recent_turns_plus_the_best_older_matches(store: Store):
    conversation, ids = _conversation(store)
    other = store.new_conversation()
    store.add_message(other, "user", "the heron in another conversation")

    context = store.context(conversation, "What is my heron called?")
    assert [m.id for m in context] == [ids[2], *ids[-6:]]  # chronological
    assert "Gerald" in context[0].content
    assert all(m.conversation_id == conversation for m in context)


def test_context_stays_within_the_token_budget(store: Store):
    conversation, ids = _conversation(store)
    tokens = {m.id: m.tokens for m in store.messages(conversation)}

    # Room for three recent turns only: the newest three, no match squeezed in.
    budget = tokens[ids[-1]] + tokens[ids[-2]] + tokens[ids[-3]] + 1
    context = store.context(conversation, "heron", token_budget=budget)
    assert [m.id for m in context] == ids[-3:]
    assert sum(m.tokens for m in context) <= budget

    # Room for the six recent turns and the match.
    budget = sum(tokens[i] for i in ids[-6:]) + tokens[ids[2]]
    context = store.context(conversation, "heron", token_budget=budget)
    assert [m.id for m in context] == [ids[2], *ids[-6:]]

    assert store.context(conversation, "heron", token_budget=0) == []


def test_context_without_recent_turns_or_without_matches(store: Store):
    conversation, ids = _conversation(store)
    assert [m.id for m in store.context(conversation, "heron pond", recent=0)] == [ids[2]]
    assert [m.id for m in store.context(conversation, "zebra")] == ids[-6:]
    assert store.context(store.new_conversation(), "heron") == []
