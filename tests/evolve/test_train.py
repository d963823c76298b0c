"""Planner LoRA training: examples and masking, the loop, resuming, and the GGUF export.

Everything except the last test runs on a tiny random Qwen2 (2 layers, 64 wide) with a tiny
byte-level BPE tokenizer built here, so the suite needs no model file and runs in seconds.
The last test (marked `model`) trains the real 0.5B for a few steps and loads the exported
GGUF adapter into llama.cpp.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stepgraph.errors import ConfigError, ModelError
from stepgraph.evolve._gguf_lora import lora_tensor_names, write_gguf_lora
from stepgraph.evolve.train import (
    _CPU_BUDGET_SECONDS,
    _CPU_SECONDS_PER_EXAMPLE,
    IGNORE_INDEX,
    LINEAR_MODULES,
    TrainConfig,
    TrainingRecord,
    _target_loss,
    build_examples,
    collate,
    encode_example,
    example_messages,
    load_records,
    resolve_dtype,
    step_schedule,
    train_planner,
)
from stepgraph.models.base import Message
from stepgraph.planner.prompt import (
    EXAMPLES,
    PLANNER_HINTS,
    SYSTEM,
    planner_descriptions,
    planner_messages,
)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
EXECUTORS = ["llm", "calculator", "python"]


def _record(instruction: str, steps: list[dict], conversation: list[dict] | None = None) -> dict:
    return {
        "id": f"t-{abs(hash(instruction)) % 10_000}",
        "kind": "test",
        "instruction": instruction,
        "executors": EXECUTORS,
        "conversation": conversation or [],
        "plan": {"steps": steps},
    }


RECORDS = [_record(text, steps) for text, steps in EXAMPLES]


@pytest.fixture(autouse=True)
def _one_thread(request: pytest.FixtureRequest):
    """The tiny model gains nothing from threads, and on a busy machine torch's spinning
    worker threads made these tests 10-20x slower (measured with a second test run going)."""
    if request.node.get_closest_marker("model"):
        yield  # the real model needs every core
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Qwen2 and a small byte-level BPE (about 800 tokens) with a Qwen-style
    chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [SYSTEM, *(json.dumps(r) for r in RECORDS)] * 3
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=specials[1:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        # at the default init (std 0.02) the frozen output layer cannot express a confident
        # prediction, and a LoRA on the layers below could not lower the loss much
        model.lm_head.weight.normal_(0.0, 0.2)
    path = tmp_path_factory.mktemp("tiny-qwen2")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_dir))


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    return path


def _config(tiny_dir: Path, data: Path, out: Path, **fields) -> TrainConfig:
    settings = {
        "base_model": str(tiny_dir),
        "data_files": [data],
        "output_dir": out,
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.1,
        "learning_rate": 1e-2,
        "epochs": 2,
        "max_length": 2048,
        "batch_size": 2,
        "grad_accum": 2,
        "dtype": "float32",
        "device": "cpu",
        "save_every": 2,
        "warmup_ratio": 0.0,
        **fields,
    }
    return TrainConfig(**settings)


# --- examples ---------------------------------------------------------------------------------


def test_examples_are_the_runtime_planner_prompt_without_few_shot_examples():
    conversation = [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4"},
    ]
    record = TrainingRecord.model_validate(
        _record(
            "  Now multiply it by 3.  ",
            [{"id": "s1", "depends_on": [], "executor": "calculator", "instruction": "4 * 3"}],
            conversation,
        )  # fmt: skip
    )
    messages, target = example_messages(record)
    expected = planner_messages(
        "Now multiply it by 3.",
        executors=planner_descriptions(EXECUTORS),
        conversation=[Message(**m) for m in conversation],
        few_shot=False,
    )
    assert messages == expected
    assert [m.role for m in messages] == ["system", "user"]
    assert "Conversation so far" in messages[-1].content
    assert (
        target
        == '{"steps":[{"id":"s1","depends_on":[],"executor":"calculator","instruction":"4 * 3"}]}'
    )


def test_loss_mask_covers_only_the_target_and_the_end_of_turn_token(tokenizer):
    record = TrainingRecord.model_validate(RECORDS[0])
    messages, target = example_messages(record)
    example = encode_example(tokenizer, messages, target)
    chat = [m.model_dump() for m in messages]
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    n = len(prompt_ids)

    assert example.input_ids[:n] == prompt_ids
    assert example.labels[:n] == [IGNORE_INDEX] * n
    trained = example.labels[n:]
    assert IGNORE_INDEX not in trained
    assert trained == example.input_ids[n:]
    assert tokenizer.decode(trained[:-1]) == target
    assert trained[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_long_examples_are_skipped_and_counted(tokenizer):
    records = [TrainingRecord.model_validate(r) for r in RECORDS]
    lengths = sorted(
        len(encode_example(tokenizer, *example_messages(r)).input_ids) for r in records
    )
    examples, skipped = build_examples(records, tokenizer, max_length=lengths[2])
    assert (len(examples), skipped) == (3, len(records) - 3)
    assert all(len(e.input_ids) <= lengths[2] for e in examples)


def test_a_bad_record_names_its_file_and_line(tmp_path: Path):
    broken = dict(RECORDS[1])
    broken["plan"] = {"steps": [{"id": "s1", "depends_on": ["s2"], "executor": "llm", "instruction": "x"}]}  # fmt: skip
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n\n" + json.dumps(broken) + "\n")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:3"):
        load_records([path])
    path.write_text(json.dumps({**RECORDS[0], "executors": ["llm", "teleport"]}) + "\n")
    with pytest.raises(ConfigError, match="teleport.*need a description"):
        load_records([path])
    path.write_text(json.dumps({**RECORDS[0], "executors": {"llm": "writes", "sql": "  "}}) + "\n")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:1.*empty description for sql"):
        load_records([path])


def test_a_record_can_describe_the_executors_it_offers(tmp_path: Path):
    """An executor described at run time (a database's tables, an MCP tool's words) is
    offered by description, and the prompt carries that text where a name would be looked up."""
    schema = "queries the SQLite database 'shop.db'; Tables: orders(order_id, total)."
    row = _record(
        "What was the largest order?",
        [
            {
                "id": "s1",
                "depends_on": [],
                "executor": "sql",
                "instruction": "SELECT MAX(total) FROM orders",
            },
            {"id": "s2", "depends_on": ["s1"], "executor": "llm", "instruction": "State {{s1}}."},
        ],  # fmt: skip
    )
    row["executors"] = {"calculator": PLANNER_HINTS["calculator"], "sql": schema}
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (record,), _ = load_records([path])
    system = example_messages(record)[0][0].content
    assert f"- sql: {schema}" in system
    assert "- llm: " + PLANNER_HINTS["llm"] in system  # llm is always offered
    assert "python" not in system.split("Executors:")[1]

    row["plan"]["steps"][0]["executor"] = "postgres"  # a step on an executor not offered
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ConfigError, match="postgres"):
        load_records([path])


def test_schedule_is_the_same_whatever_the_rng_state():
    config = TrainConfig(data_files=[Path("x")], output_dir=Path("y"), batch_size=2, grad_accum=3)
    first = step_schedule(11, config)
    torch.manual_seed(12345)
    assert step_schedule(11, config) == first
    assert len(first) == 2 * 2  # 6 micro-batches an epoch, 3 a step
    assert sorted(i for _, batches in first[:2] for b in batches for i in b) == list(range(11))
    capped = step_schedule(11, config.model_copy(update={"max_steps": 3}))
    assert capped == first[:3]


def test_target_loss_equals_the_models_own_loss(tiny_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32)
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=LINEAR_MODULES))
    peft_model.eval()
    records = [TrainingRecord.model_validate(r) for r in RECORDS[:3]]
    examples, _ = build_examples(records, tokenizer, max_length=4096)
    batch = collate(examples, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        summed, count = _target_loss(peft_model, batch)
        reference = peft_model(**batch).loss  # mean over the same target tokens
    assert count == sum(sum(label != IGNORE_INDEX for label in e.labels) for e in examples)
    assert torch.allclose(summed / count, reference, atol=1e-5)


@pytest.mark.parametrize("bf16", [True, False], ids=["bf16-cpu", "avx2-cpu"])
def test_presets(bf16: bool, monkeypatch: pytest.MonkeyPatch):
    # Both CPU kinds are forced here, so the outcome never depends on the host's flags.
    monkeypatch.setattr("stepgraph.models.transformers.cpu_supports_bf16", lambda: bf16)
    auto = torch.bfloat16 if bf16 else torch.float32
    assert resolve_dtype("auto", "cpu") == auto
    cpu = TrainConfig.preset("cpu", data_files=["d.jsonl"], output_dir="out")
    assert (cpu.batch_size, cpu.grad_accum, cpu.device, cpu.max_length) == (1, 8, "cpu", 768)
    assert cpu.target_modules == LINEAR_MODULES
    # max_steps is the most whole steps that fit the budget in the dtype "auto" picks
    per_step = _CPU_SECONDS_PER_EXAMPLE[auto] * 8
    assert cpu.max_steps * per_step <= _CPU_BUDGET_SECONDS < (cpu.max_steps + 1) * per_step
    assert cpu.max_steps == (91 if bf16 else 39)  # the figures the preset's docstring gives
    fewer = TrainConfig.preset("cpu", data_files=["d.jsonl"], output_dir="out", grad_accum=16)
    assert fewer.max_steps == pytest.approx(cpu.max_steps / 2, abs=1)
    fixed = TrainConfig.preset("cpu", data_files=["d.jsonl"], output_dir="out", max_steps=5)
    assert fixed.max_steps == 5
    cuda = TrainConfig.preset("cuda", data_files=["d.jsonl"], output_dir="out", epochs=5)
    assert (cuda.batch_size, cuda.grad_accum, cuda.epochs, cuda.max_steps) == (8, 2, 5, None)
    assert resolve_dtype("bfloat16", "cuda") == torch.bfloat16
    with pytest.raises(ConfigError):
        TrainConfig.preset("tpu", data_files=["d.jsonl"], output_dir="out")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cpu_preset_with_an_explicit_dtype_sizes_for_that_dtype(dtype: str):
    cpu = TrainConfig.preset("cpu", data_files=["d.jsonl"], output_dir="out", dtype=dtype)
    per_step = _CPU_SECONDS_PER_EXAMPLE[getattr(torch, dtype)] * 8
    assert cpu.max_steps * per_step <= _CPU_BUDGET_SECONDS < (cpu.max_steps + 1) * per_step


# --- training ---------------------------------------------------------------------------------


def _losses(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]


def test_training_reduces_the_loss_and_writes_every_output(tiny_dir, data_file, tmp_path):
    out = tmp_path / "run"
    seen = []
    config = _config(tiny_dir, data_file, out, epochs=8, lora_r=8, lora_alpha=16)
    result = train_planner(config, progress=seen.append)

    losses = [row["loss"] for row in _losses(out)]
    assert result.steps == len(losses) == 8 * 2  # 6 examples: 3 micro-batches, 2 steps an epoch
    assert sum(losses[-2:]) < 0.6 * sum(losses[:2]), losses
    assert [p.step for p in seen] == list(range(1, 17)) and seen[-1].eta_seconds == 0
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert result.adapter_gguf == out / "adapter.gguf" and result.adapter_gguf.is_file()
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    info = json.loads((out / "train_info.json").read_text())
    assert info["examples"] == 6 and info["skipped_too_long"] == 0 and info["steps"] == 16
    assert info["data_files"][0]["sha256"] and info["data_files"][0]["records"] == 6
    assert set(info["versions"]) >= {"torch", "transformers", "peft"}
    assert info["final_loss"] == losses[-1] and info["seed"] == 0
    assert info["config"]["lora_r"] == 8


class _Stop(Exception):
    pass


def _stop_at(step: int):
    def progress(p):
        if p.step == step:
            raise _Stop

    return progress


def _adapter_weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "adapter" / "adapter_model.safetensors"))


def test_a_stopped_run_resumes_and_ends_like_an_uninterrupted_one(tiny_dir, data_file, tmp_path):
    whole = train_planner(_config(tiny_dir, data_file, tmp_path / "whole"))
    assert whole.steps == 4 and whole.resumed_from is None

    # stopped after step 3: the interruption itself saves step 3
    out = tmp_path / "stopped"
    with pytest.raises(_Stop):
        train_planner(_config(tiny_dir, data_file, out), progress=_stop_at(3))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000002", "step-000003"]
    assert not (out / "adapter.gguf").exists()
    resumed = train_planner(_config(tiny_dir, data_file, out))
    assert (resumed.steps, resumed.resumed_from) == (4, 3)

    # killed after step 3 before it was saved: resume from the periodic checkpoint of step 2
    killed = tmp_path / "killed"
    with pytest.raises(_Stop):
        train_planner(_config(tiny_dir, data_file, killed), progress=_stop_at(3))
    import shutil

    shutil.rmtree(killed / "checkpoints" / "step-000003")
    again = train_planner(_config(tiny_dir, data_file, killed))
    assert (again.steps, again.resumed_from) == (4, 2)

    expected = [row["loss"] for row in _losses(tmp_path / "whole")]
    for run in (out, killed):
        rows = _losses(run)
        assert [r["step"] for r in rows] == [1, 2, 3, 4]
        assert [r["loss"] for r in rows] == pytest.approx(expected, rel=1e-4)
        weights, reference = _adapter_weights(run), _adapter_weights(tmp_path / "whole")
        assert weights.keys() == reference.keys()
        for key in weights:
            assert torch.allclose(weights[key], reference[key], atol=1e-5), key

    # a finished run only exports again
    assert train_planner(_config(tiny_dir, data_file, out)).steps == 4


def test_resuming_with_other_settings_is_refused(tiny_dir, data_file, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(_Stop):
        train_planner(_config(tiny_dir, data_file, out), progress=_stop_at(1))
    with pytest.raises(ConfigError, match="learning_rate"):
        train_planner(_config(tiny_dir, data_file, out, learning_rate=1e-3))
    # run-control settings may change
    assert train_planner(_config(tiny_dir, data_file, out, save_every=3)).steps == 4


# --- GGUF export ------------------------------------------------------------------------------


def test_gguf_export_has_llamacpp_keys_names_and_shapes(tiny_dir, tmp_path):
    import gguf
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=12, target_modules=LINEAR_MODULES)
    )
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_()  # a fresh B is zero; make it tell A and B apart
    peft_model.save_pretrained(tmp_path / "adapter")
    path = write_gguf_lora(
        tmp_path / "adapter", tmp_path / "a.gguf", model_type="qwen2", n_layers=2
    )

    reader = gguf.GGUFReader(path)

    def value(key):
        return reader.fields[key].contents()

    assert value("general.architecture") == "qwen2"
    assert value("general.type") == "adapter"
    assert value("adapter.type") == "lora"
    assert value("adapter.lora.alpha") == pytest.approx(12.0)

    tensors = {t.name: t for t in reader.tensors}
    blocks = {
        "attn_q": (64, 64),
        "attn_k": (64, 32),  # 2 kv heads of 16
        "attn_v": (64, 32),
        "attn_output": (64, 64),
        "ffn_gate": (64, 128),
        "ffn_up": (64, 128),
        "ffn_down": (128, 64),
    }
    expected = {f"blk.{i}.{b}.weight.lora_{ab}" for i in range(2) for b in blocks for ab in "ab"}
    assert set(tensors) == expected
    from safetensors.torch import load_file

    state = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    names = lora_tensor_names(list(state), model_type="qwen2", n_layers=2)
    for i in range(2):
        for block, (n_in, n_out) in blocks.items():
            a = tensors[f"blk.{i}.{block}.weight.lora_a"]
            b = tensors[f"blk.{i}.{block}.weight.lora_b"]
            # ggml order (ne): the base weight is [in, out]; llama.cpp wants A [in, r], B [r, out]
            assert list(a.shape) == [n_in, 4] and list(b.shape) == [4, n_out]
            assert a.tensor_type == gguf.GGMLQuantizationType.F32
    for key, gguf_name in names.items():
        assert torch.equal(torch.from_numpy(tensors[gguf_name].data.copy()), state[key])


def test_gguf_export_refuses_what_llamacpp_cannot_express(tiny_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"], use_rslora=True))
    peft_model.save_pretrained(tmp_path / "adapter")
    with pytest.raises(ModelError, match="use_rslora"):
        write_gguf_lora(tmp_path / "adapter", tmp_path / "a.gguf", model_type="qwen2", n_layers=2)
    assert not (tmp_path / "a.gguf").exists()
    with pytest.raises(ModelError, match="llama"):
        lora_tensor_names(["x.lora_A.weight"], model_type="llama", n_layers=2)
    with pytest.raises(ModelError, match="not a LoRA"):
        lora_tensor_names(["base_model.model.lm_head.weight"], model_type="qwen2", n_layers=2)


# --- the real model ---------------------------------------------------------------------------


@pytest.mark.model
def test_real_model_trains_exports_and_runs_in_llamacpp(real_model, tmp_path):
    """A few steps on the 0.5B, then the GGUF adapter in llama.cpp changes the output, and
    the prompt llama.cpp tokenizes is the one trained on."""
    from transformers import AutoTokenizer

    from stepgraph.models import embedded
    from stepgraph.models.base import Request

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS[2:6]), encoding="utf-8")
    config = TrainConfig.preset(
        "cpu",
        data_files=[data],
        output_dir=tmp_path / "run",
        grad_accum=1,
        max_steps=3,
        dtype="float32",  # the same path on every host, whatever its CPU computes natively
        learning_rate=2e-3,
        warmup_ratio=0.0,
    )
    result = train_planner(config)
    assert result.steps == 3 and result.adapter_gguf.is_file()

    info = json.loads((result.output_dir / "train_info.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(info["base_model_dir"])
    record = TrainingRecord.model_validate(RECORDS[4])
    messages, _ = example_messages(record)
    chat = [m.model_dump() for m in messages]
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    request = Request(messages=messages, max_tokens=24, temperature=0.0)
    assert (
        real_model.prompt_tokens(request)
        == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    )

    from stepgraph.models.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(
        embedded.model_path(), n_ctx=4096, n_seq=1, adapters={"planner": result.adapter_gguf}
    )
    try:
        plain, tuned = backend.generate(
            [request, request.model_copy(update={"adapter": "planner"})]
        )
    finally:
        backend.close()
    assert tuned.text and tuned.text != plain.text
