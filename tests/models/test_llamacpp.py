"""The CPU engine on the real embedded model: kept small, but real."""

import json

import pytest

from stepgraph.errors import ConfigError, GrammarError, ModelError
from stepgraph.models.base import Message, Request
from stepgraph.models.spec import load_model

pytestmark = pytest.mark.model

PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "steps": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "instruction": {"type": "string"},
                    "depends_on": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["id", "instruction", "depends_on"],
            },
        }
    },
    "required": ["steps"],
}


def test_generates_text_with_counts(real_model):
    done = real_model.complete(Request.chat("Name one color.", max_tokens=12))
    assert done.text.strip()
    assert 0 < done.completion_tokens <= 12
    assert done.prompt_tokens > 5
    assert done.first_token_seconds is not None and done.seconds >= done.first_token_seconds


def test_greedy_is_repeatable_with_prefix_reuse(real_model, monkeypatch):
    monkeypatch.setattr(real_model, "deterministic", False)  # batched and cached
    request = Request.chat("Say the word hello and nothing else.", max_tokens=8)
    first = real_model.complete(request)
    second = real_model.complete(request)  # its prompt now comes from the KV cache
    assert first.text == second.text


def test_deterministic_decoding_depends_on_the_request_alone(real_model):
    """One request decoded alone, then beside three others after a longer prompt filled
    the cache: byte-identical (the test model decodes deterministically)."""
    assert real_model.deterministic
    story = Request.chat("Tell a story about a lighthouse keeper.", max_tokens=160)
    alone = real_model.complete(story)
    others = [
        Request.chat("Tell a story about a lighthouse keeper and his dog.", max_tokens=40),
        Request.chat("List five rivers.", max_tokens=30),
        Request.chat("Explain what a prime number is.", max_tokens=50),
    ]
    beside = real_model.generate([others[0], story, *others[1:]])
    assert (beside[1].text, beside[1].completion_tokens) == (alone.text, alone.completion_tokens)


def test_a_batch_returns_one_completion_per_request_in_order(real_model, monkeypatch):
    monkeypatch.setattr(real_model, "deterministic", False)  # four sequences at once
    prompts = [
        "What is 2+2? Reply with the number only.",
        "What is the capital of France? One word.",
        "Write the word blue.",
        "Write the letter Z.",
    ]
    out = real_model.generate([Request.chat(p, max_tokens=6) for p in prompts])
    assert len(out) == 4
    assert "4" in out[0].text
    assert "paris" in out[1].text.lower()
    assert "blue" in out[2].text.lower()
    # each sequence decodes as it would alone (greedy): batching must not mix sequences
    assert [c.text for c in out] == [
        real_model.complete(Request.chat(p, max_tokens=6)).text for p in prompts
    ]


def test_json_schema_output_parses_and_validates(real_model):
    request = Request.chat(
        "Plan how to make tea, as JSON steps.", json_schema=PLAN_SCHEMA, max_tokens=200
    )
    data = json.loads(real_model.complete(request).text)
    assert 1 <= len(data["steps"]) <= 3
    assert all(set(s) >= {"id", "instruction", "depends_on"} for s in data["steps"])


def test_stop_strings_and_max_tokens(real_model):
    out = real_model.complete(
        Request.chat("Count from 1 to 10 separated by commas.", max_tokens=40, stop=["5"])
    )
    assert "5" not in out.text and "4" in out.text
    short = real_model.complete(Request.chat("Write a long story.", max_tokens=5))
    assert short.completion_tokens == 5 and short.finish_reason == "length"


def test_a_stop_string_is_named_and_a_begun_reply_is_continued(real_model):
    ask = [Message(role="user", content="Count from 1 to 10, separated by commas.")]
    cut = real_model.complete(Request(messages=ask, max_tokens=40, stop=["4"]))
    assert cut.stopped_by == "4" and "4" not in cut.text and "3" in cut.text
    begun = Message(role="assistant", content=cut.text + "4,")
    rest = real_model.complete(Request(messages=[*ask, begun], max_tokens=12))
    assert rest.text.lstrip().startswith("5")  # it went on from "4,", not from the start
    assert real_model.complete(Request(messages=ask, max_tokens=40)).stopped_by is None


def test_stream_yields_the_same_text_as_generate(real_model):
    request = Request.chat("List three fruits.", max_tokens=20)
    assert "".join(real_model.stream(request)) == real_model.complete(request).text


def test_bad_inputs_give_clear_errors(real_model, tmp_path):
    with pytest.raises(GrammarError):
        real_model.complete(Request.chat("x", grammar="root ::= bad_rule_name"))
    with pytest.raises(ModelError, match="unknown adapter"):
        real_model.complete(Request.chat("x", adapter="nope"))
    with pytest.raises(ModelError, match="context"):
        real_model.complete(Request.chat("word " * 20000))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelError, match="not a GGUF"):
        load_model(str(junk))
    with pytest.raises(ModelError, match="no model file"):
        load_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ConfigError, match="unknown model"):
        load_model("no-such-model")
    # the engine still works after all of that
    assert real_model.complete(Request.chat("Say ok.", max_tokens=3)).text
