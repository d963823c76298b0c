"""Fine-tune the planner with LoRA, and export the adapter for both engines.

This is the WizardLM step of stepgraph: the planner model learns from complex instructions
paired with good decompositions (`stepgraph evolve` grows them; the record format is one
JSON object a line with instruction, executors, conversation and plan). What it learns must
be exactly what the runtime asks, so each example is the planner prompt the runtime sends
with a planner adapter (`planner_messages(..., few_shot=False)`, rendered with the model's
own chat template) followed by the compact plan JSON the grammar produces; the loss covers
only the plan and the end-of-turn token.

The loop is a plain torch loop rather than HF Trainer: it is short, its resume semantics
are visible in one place (adapter, optimizer, scheduler, step and RNG state every
`save_every` optimizer steps; a rerun with the same output directory continues from the
newest checkpoint and ends where an uninterrupted run would), and it computes the output
layer only where there is loss (see `_target_loss`): on the 0.5B model, in float32 on a
2-core CPU, a 476-token example took 9.7 s a step instead of 13.3-14.7 s.

Outputs in `output_dir`: `adapter/` (peft, for TransformersBackend), `adapter.gguf` (for
LlamaCppBackend), `losses.jsonl`, `loss.png`, `train_info.json`, `checkpoints/`, `run.json`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stepgraph.errors import ConfigError, ModelError, PlanError
from stepgraph.models.base import Message
from stepgraph.planner.plan import Plan, validate_plan
from stepgraph.planner.prompt import (
    OfferedExecutors,
    offered_names,
    plan_json,
    planner_descriptions,
    planner_messages,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

#: Every linear layer of Qwen2's attention and MLP blocks (the embedding and output layer
#: are not adapted: llama.cpp's LoRA format cannot carry a tied output layer).
LINEAR_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
IGNORE_INDEX = -100
# Seconds per training example (batch 1, about 475 tokens: the mean of the gold planner
# records) on a 2-core CPU. float32: 10.3 s measured through train_planner on an AMD EPYC
# with AVX2 (2026-11-25; 7 s at 380 tokens, 15.5 s at 650). bfloat16: scaled from DESIGN.md's
# 3.2-3.6 s at 350 tokens on an avx512_bf16 host. Without native bfloat16 (AVX2 only), a
# bfloat16 step did not finish in 4 minutes, which is why "auto" picks float32 there.
_CPU_SECONDS_PER_EXAMPLE = {torch.bfloat16: 4.5, torch.float32: 10.5}
_CPU_BUDGET_SECONDS = 55 * 60  # under an hour, with room for loading and the export
# Settings that only steer how a run is carried out; a resumed run may change them.
_RUN_CONTROL = {"save_every", "keep_checkpoints", "device", "dtype", "output_dir", "data_files"}
_CHECKPOINT_STATE = "trainer_state.pt"


# -- configuration -----------------------------------------------------------------------------


class TrainConfig(BaseModel):
    """Everything a training run depends on; stored with the run so a rerun can check it.

    `max_steps` caps the number of optimizer steps and the learning-rate schedule is sized
    to the steps that will run, so a capped run still warms up and decays properly.
    """

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(
        default="qwen2.5-coder-0.5b",
        description="an embedded model name, a .gguf file or a Hugging Face model directory",
    )
    data_files: list[Path] = Field(min_length=1, description="JSONL training records")
    output_dir: Path
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: float = Field(default=32.0, gt=0)
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(LINEAR_MODULES), min_length=1)
    learning_rate: float = Field(default=2e-4, gt=0)
    warmup_ratio: float = Field(default=0.05, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    epochs: int = Field(default=2, ge=1)
    max_length: int = Field(default=768, ge=8, description="longer examples are skipped")
    batch_size: int = Field(default=1, ge=1)
    grad_accum: int = Field(default=8, ge=1)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N")
    seed: int = 0
    save_every: int = Field(default=25, ge=1, description="optimizer steps between checkpoints")
    keep_checkpoints: int = Field(default=2, ge=1)
    max_steps: int | None = Field(default=None, ge=1)

    @classmethod
    def preset(cls, name: Literal["cpu", "cuda"], **fields: Any) -> TrainConfig:
        """A configuration sized for the hardware; `fields` (data_files, output_dir, ...)
        override it.

        cpu: batch 1, 8 examples a step, 2 epochs, examples up to 768 tokens, and `max_steps`
        sized so the run ends in under an hour on a 2-core CPU in the dtype the backend picks
        there (see `_CPU_SECONDS_PER_EXAMPLE`): about 39 steps (312 examples) in float32,
        about 91 (728) where the CPU computes bfloat16. A small data set ends with its 2
        epochs first; a large one is not seen in full (use the cuda preset for that).
        cuda: one GPU, batches of 8 with 2 accumulated (16 a step), 3 epochs, 1024 tokens,
        bfloat16 where the GPU has it (float32 otherwise: float16 would need loss scaling).
        """
        presets: dict[str, dict[str, Any]] = {
            "cpu": {
                "batch_size": 1,
                "grad_accum": 8,
                "epochs": 2,
                "max_length": 768,
                "learning_rate": 2e-4,
                "save_every": 10,
                "device": "cpu",
            },
            "cuda": {
                "batch_size": 8,
                "grad_accum": 2,
                "epochs": 3,
                "max_length": 1024,
                "learning_rate": 2e-4,
                "save_every": 50,
                "max_steps": None,
                "device": "cuda",
                "dtype": "auto",  # bfloat16 on GPUs that have it (Ampere and later)
            },
        }
        if name not in presets:
            raise ConfigError(f"unknown training preset {name!r}; use cpu or cuda")
        settings = {**presets[name], **fields}
        if name == "cpu" and "max_steps" not in fields:
            dtype = resolve_dtype(settings.get("dtype", "auto"), "cpu")
            per_example = _CPU_SECONDS_PER_EXAMPLE.get(
                dtype, _CPU_SECONDS_PER_EXAMPLE[torch.float32]
            )
            per_step = per_example * settings["batch_size"] * settings["grad_accum"]
            settings["max_steps"] = max(1, int(_CPU_BUDGET_SECONDS // per_step))
        return cls(**settings)


class TrainProgress(NamedTuple):
    """What a progress display needs after each optimizer step."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    learning_rate: float
    target_tokens: int
    seconds_per_step: float  # average over this session's steps
    eta_seconds: float


class DataFile(BaseModel):
    path: Path
    sha256: str
    records: int


class TrainResult(BaseModel):
    """Where the run's outputs are and what it did."""

    output_dir: Path
    adapter_dir: Path
    adapter_gguf: Path
    steps: int
    examples: int
    skipped_too_long: int
    final_loss: float | None
    seconds: float  # training time of all sessions of this run
    resumed_from: int | None = None


# -- training records and examples ------------------------------------------------------------


class TrainingRecord(BaseModel):
    """One line of a training file (extra keys such as id and kind are ignored)."""

    model_config = ConfigDict(extra="ignore")

    instruction: str = Field(min_length=1)
    executors: OfferedExecutors
    conversation: list[Message] = Field(default_factory=list)
    plan: Plan


class EncodedExample(NamedTuple):
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on the prompt


def load_records(paths: list[Path]) -> tuple[list[TrainingRecord], list[DataFile]]:
    """Read and check every record up front, so a bad line stops the run before training.

    A plan that fails validation would teach the planner a plan the runtime rejects, so it
    is an error (with file and line), not a silent skip.
    """
    records: list[TrainingRecord] = []
    files: list[DataFile] = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"training data file {path} does not exist")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not UTF-8 text ({exc}); training data is JSONL") from None
        count = 0
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = TrainingRecord.model_validate_json(line)
                validate_plan(record.plan, offered_names(record.executors))
            except (ValidationError, PlanError, ValueError) as exc:
                raise ConfigError(f"{path}:{number}: bad training record: {exc}") from None
            records.append(record)
            count += 1
        files.append(DataFile(path=path, sha256=hashlib.sha256(raw).hexdigest(), records=count))
    if not records:
        raise ConfigError(f"no training records in {', '.join(str(p) for p in paths)}")
    return records, files


def example_messages(record: TrainingRecord) -> tuple[list[Message], str]:
    """The planner prompt the runtime sends with a planner adapter, and the target plan."""
    from stepgraph.planner.planner import check_instruction

    messages = planner_messages(
        check_instruction(record.instruction),  # the runtime strips the text the same way
        executors=planner_descriptions(record.executors),
        conversation=list(record.conversation),
        few_shot=False,
    )
    return messages, plan_json([step.model_dump() for step in record.plan.steps])


def encode_example(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message], target: str
) -> EncodedExample:
    """Prompt tokens (masked) followed by the target's tokens and the end-of-turn token.

    The prompt and the target are tokenized separately because that is how the model meets
    them at run time: the engine tokenizes the prompt, then the model emits the plan token by
    token. The end-of-turn token is read from the chat template (the first token after the
    assistant's text; `<|im_end|>` for Qwen), so the model learns to stop.
    """
    chat = [m.model_dump() for m in messages]
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(
        [*chat, {"role": "assistant", "content": target}], tokenize=False
    )
    if not full.startswith(prompt + target):
        raise ModelError(
            "the tokenizer's chat template does not render an assistant turn as the generation "
            "prompt followed by the text; cannot tell which tokens to train on"
        )
    closing = tokenizer(full[len(prompt) + len(target) :], add_special_tokens=False)["input_ids"]
    end = closing[0] if closing else tokenizer.eos_token_id
    if end is None:
        raise ModelError("the tokenizer has no end-of-turn or end-of-sequence token")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target_ids = [*tokenizer(target, add_special_tokens=False)["input_ids"], end]
    return EncodedExample(
        input_ids=[*prompt_ids, *target_ids],
        labels=[IGNORE_INDEX] * len(prompt_ids) + target_ids,
    )


def build_examples(
    records: list[TrainingRecord], tokenizer: PreTrainedTokenizerBase, *, max_length: int
) -> tuple[list[EncodedExample], int]:
    """Encode every record; those longer than `max_length` are skipped and counted (cutting
    them would teach the model unfinished plans)."""
    examples, skipped = [], 0
    for record in records:
        example = encode_example(tokenizer, *example_messages(record))
        if len(example.input_ids) > max_length:
            skipped += 1
        else:
            examples.append(example)
    return examples, skipped


def collate(examples: list[EncodedExample], *, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch; padding is masked out of attention and loss."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def step_schedule(n_examples: int, config: TrainConfig) -> list[tuple[int, list[list[int]]]]:
    """(epoch, micro-batches of example indices) for every optimizer step of the run.

    Each epoch's order comes from its own generator seeded with seed + epoch, so the order
    does not depend on any RNG state and a resumed run sees exactly the same batches.
    """
    steps = []
    for epoch in range(config.epochs):
        generator = torch.Generator().manual_seed(config.seed + epoch)
        order = torch.randperm(n_examples, generator=generator).tolist()
        batches = [
            order[i : i + config.batch_size] for i in range(0, n_examples, config.batch_size)
        ]
        for i in range(0, len(batches), config.grad_accum):
            steps.append((epoch, batches[i : i + config.grad_accum]))
    return steps[: config.max_steps] if config.max_steps else steps


# -- model -------------------------------------------------------------------------------------


def resolve_device(device: str) -> str:
    from stepgraph.models.transformers import default_device

    resolved = default_device() if device == "auto" else device
    if resolved.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {resolved!r} was asked for but torch sees no CUDA GPU; use the cpu preset "
            "or install a CUDA build of torch"
        )
    return resolved


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """bfloat16 where the hardware computes it (as the backends decide), else float32.

    float16 is never chosen automatically: training in it needs loss scaling, which this
    loop does not do.
    """
    from stepgraph.models.transformers import default_dtype

    if dtype != "auto":
        return getattr(torch, dtype)
    chosen = default_dtype(device)
    return torch.float32 if chosen == torch.float16 else chosen


def resolve_base_model(base_model: str, *, dtype: torch.dtype) -> Path:
    """A Hugging Face directory for `base_model`: an embedded model or a .gguf file is
    dequantized once into the cache (the same directory TransformersBackend uses)."""
    from stepgraph.models import embedded
    from stepgraph.models.transformers import dequantized_dir

    if base_model in embedded.EMBEDDED:
        return dequantized_dir(embedded.model_path(base_model), dtype=dtype)
    path = Path(base_model).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return dequantized_dir(path, dtype=dtype)
    if path.is_dir() and (path / "config.json").is_file():
        return path
    raise ConfigError(
        f"base model {base_model!r} is neither an embedded model ({', '.join(embedded.EMBEDDED)}), "
        "a .gguf file nor a Hugging Face model directory"
    )


def _peft_model(model: Any, config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        # peft keeps the adapter weights in float32 under a bfloat16 base (autocast dtype),
        # so AdamW updates full-precision numbers.
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"cannot put LoRA on {config.target_modules}: {exc}") from None


def _target_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target tokens, and their number.

    The output layer (896 x 151,936 on the 0.5B model, about a quarter of its forward work)
    runs only at positions that predict a target token; the prompt positions carry no loss.
    """
    causal_lm = model.get_base_model()
    hidden = causal_lm.get_decoder()(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    where = targets != IGNORE_INDEX
    logits = causal_lm.get_output_embeddings()(hidden[:, :-1][where]).float()
    loss = torch.nn.functional.cross_entropy(logits, targets[where], reduction="sum")
    return loss, int(where.sum())


# -- checkpoints -------------------------------------------------------------------------------


def _checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (a crash mid-save leaves only a .partial dir)."""
    root = output_dir / "checkpoints"
    found = []
    for path in root.glob("step-*") if root.is_dir() else []:
        if path.suffix != ".partial" and (path / _CHECKPOINT_STATE).is_file():
            found.append((int(path.name.removeprefix("step-")), path))
    return sorted(found)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _save_checkpoint(
    output_dir: Path,
    step: int,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    rng: dict[str, Any],
    seconds: float,
    keep: int,
) -> Path:
    """Adapter, optimizer, scheduler, step and RNG state, written then renamed into place."""
    root = output_dir / "checkpoints"
    final = root / f"step-{step:06d}"
    tmp = root / f"step-{step:06d}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    state = {
        "step": step,
        "seconds": seconds,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng,
    }
    torch.save(state, tmp / _CHECKPOINT_STATE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for _, old in _checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _load_checkpoint(
    path: Path, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any
) -> dict[str, Any]:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
    state = torch.load(path / _CHECKPOINT_STATE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state


def _check_run_manifest(output_dir: Path, config: TrainConfig, files: list[DataFile]) -> None:
    """Refuse to resume a run whose settings or data differ: the checkpoints would not fit."""
    settings = config.model_dump(mode="json", exclude=_RUN_CONTROL)
    manifest = {"settings": settings, "data_sha256": [f.sha256 for f in files]}
    path = output_dir / "run.json"
    if path.is_file() and _checkpoints(output_dir):
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored != manifest:
            changed = sorted(
                k for k in settings if stored.get("settings", {}).get(k) != settings.get(k)
            )
            if stored.get("data_sha256") != manifest["data_sha256"]:
                changed.append("training data")
            raise ConfigError(
                f"{output_dir} holds a training run with other settings ({', '.join(changed)}); "
                "use a new output directory, or delete this one to start over"
            )
        return
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")


# -- logging and outputs -----------------------------------------------------------------------


def _read_losses(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _keep_losses_until(path: Path, step: int) -> None:
    """Drop logged steps after the checkpoint being resumed: they will be run again."""
    kept = [r for r in _read_losses(path) if r["step"] <= step]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


def plot_losses(losses_path: Path, png_path: Path) -> Path | None:
    """Training loss per step and its moving average, as a PNG (matplotlib, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = _read_losses(losses_path)
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    losses = [r["loss"] for r in rows]
    window = max(1, len(losses) // 20)
    smooth = [
        sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
        for i in range(len(losses))
    ]
    figure = Figure(figsize=(7, 4), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.plot(steps, losses, color="#9ab", linewidth=1, label="loss per step")
    if window > 1:
        axes.plot(steps, smooth, color="#c33", linewidth=2, label=f"mean of {window} steps")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss (per target token)")
    axes.set_title("planner LoRA training")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(png_path)
    return png_path


def _versions() -> dict[str, str]:
    import gguf
    import peft
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "gguf": getattr(gguf, "__version__", "unknown"),
    }


# -- the loop ----------------------------------------------------------------------------------


def train_planner(
    config: TrainConfig, *, progress: Callable[[TrainProgress], None] | None = None
) -> TrainResult:
    """Train a planner LoRA adapter; rerun with the same output directory to resume.

    An interruption (Ctrl-C, or an exception from `progress`) saves a checkpoint of the last
    finished step before it propagates. A run that had finished only exports again.
    """
    started = time.perf_counter()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    records, files = load_records(config.data_files)
    _check_run_manifest(out, config, files)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = resolve_base_model(config.base_model, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    examples, skipped = build_examples(records, tokenizer, max_length=config.max_length)
    if not examples:
        raise ConfigError(
            f"all {len(records)} training examples are longer than max_length="
            f"{config.max_length} tokens; raise max_length"
        )
    if skipped:
        log.warning(
            "skipped %d of %d examples longer than %d tokens",
            skipped,
            len(records),
            config.max_length,
        )
    schedule = step_schedule(len(examples), config)
    total = len(schedule)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    torch.manual_seed(config.seed)  # LoRA A matrices start random; B starts at zero
    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    base.config.use_cache = False
    model = _peft_model(base, config).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    from transformers import get_cosine_schedule_with_warmup

    scheduler = get_cosine_schedule_with_warmup(
        optimizer, num_warmup_steps=math.ceil(config.warmup_ratio * total), num_training_steps=total
    )

    losses_path = out / "losses.jsonl"
    step, seconds_before, resumed_from = 0, 0.0, None
    if checkpoints := _checkpoints(out):
        state = _load_checkpoint(checkpoints[-1][1], model, optimizer, scheduler)
        step, seconds_before, resumed_from = state["step"], state["seconds"], state["step"]
        _keep_losses_until(losses_path, step)
        log.info("resuming %s from step %d of %d", out, step, total)
    else:
        losses_path.unlink(missing_ok=True)

    def save(at_step: int, rng_state: dict[str, Any]) -> None:
        elapsed = seconds_before + time.perf_counter() - session_start
        _save_checkpoint(
            out,
            at_step,
            model,
            optimizer,
            scheduler,
            rng=rng_state,
            seconds=elapsed,
            keep=config.keep_checkpoints,
        )

    model.train()
    session_start = time.perf_counter()
    done_in_session = 0
    saved_step = step
    rng = _rng_state()  # as it was at the end of the last finished step
    updating = False  # inside optimizer/scheduler updates: the state matches no step
    try:
        for epoch, micro_batches in schedule[step:]:
            step_started = time.perf_counter()
            batches = [collate([examples[i] for i in b], pad_id=pad_id) for b in micro_batches]
            n_target = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches)
            loss_sum = 0.0
            for batch in batches:
                loss, _ = _target_loss(model, {k: v.to(device) for k, v in batch.items()})
                (loss / n_target).backward()  # the step's loss: the mean over all its tokens
                loss_sum += float(loss.detach())
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            learning_rate = scheduler.get_last_lr()[0]
            updating = True
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            rng = _rng_state()
            updating = False
            done_in_session += 1
            row = {
                "step": step,
                "epoch": epoch,
                "loss": loss_sum / n_target,
                "lr": learning_rate,
                "target_tokens": n_target,
                "tokens": sum(int(b["attention_mask"].sum()) for b in batches),
                "seconds": round(time.perf_counter() - step_started, 3),
            }
            with losses_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            if step % config.save_every == 0 or step == total:
                save(step, rng)
                saved_step = step
                plot_losses(losses_path, out / "loss.png")
            if progress is not None:
                per_step = (time.perf_counter() - session_start) / done_in_session
                progress(
                    TrainProgress(
                        step=step,
                        total_steps=total,
                        epoch=epoch,
                        loss=row["loss"],
                        learning_rate=learning_rate,
                        target_tokens=n_target,
                        seconds_per_step=per_step,
                        eta_seconds=per_step * (total - step),
                    )
                )
    except BaseException:
        if step > saved_step and not updating:  # keep the finished steps for the rerun
            optimizer.zero_grad(set_to_none=True)
            save(step, rng)
            log.warning("training stopped at step %d of %d; rerun to resume", step, total)
        raise
    return _finish(
        config,
        out,
        model,
        base_config=base.config,
        model_dir=model_dir,
        files=files,
        examples=len(examples),
        skipped=skipped,
        steps=step,
        seconds=seconds_before + time.perf_counter() - session_start,
        session_seconds=time.perf_counter() - started,
        resumed_from=resumed_from,
        device=device,
        dtype=dtype,
    )


def _finish(
    config: TrainConfig,
    out: Path,
    model: Any,
    *,
    base_config: Any,
    model_dir: Path,
    files: list[DataFile],
    examples: int,
    skipped: int,
    steps: int,
    seconds: float,
    session_seconds: float,
    resumed_from: int | None,
    device: str,
    dtype: torch.dtype,
) -> TrainResult:
    """Write the adapter in both formats, the loss plot and train_info.json."""
    from stepgraph.evolve._gguf_lora import write_gguf_lora

    adapter_dir = out / "adapter"
    tmp = out / "adapter.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    shutil.rmtree(adapter_dir, ignore_errors=True)
    os.replace(tmp, adapter_dir)
    gguf_path = write_gguf_lora(
        adapter_dir,
        out / "adapter.gguf",
        model_type=base_config.model_type,
        n_layers=base_config.num_hidden_layers,
        name="stepgraph planner",
    )
    losses_path = out / "losses.jsonl"
    plot_losses(losses_path, out / "loss.png")
    rows = _read_losses(losses_path)
    final_loss = rows[-1]["loss"] if rows else None
    info = {
        "config": config.model_dump(mode="json"),
        "base_model_dir": str(model_dir),
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "data_files": [f.model_dump(mode="json") for f in files],
        "examples": examples,
        "skipped_too_long": skipped,
        "steps": steps,
        "seed": config.seed,
        "seconds": round(seconds, 1),
        "session_seconds": round(session_seconds, 1),
        "final_loss": final_loss,
        "resumed_from": resumed_from,
        "versions": _versions(),
    }
    (out / "train_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return TrainResult(
        output_dir=out,
        adapter_dir=adapter_dir,
        adapter_gguf=gguf_path,
        steps=steps,
        examples=examples,
        skipped_too_long=skipped,
        final_loss=final_loss,
        seconds=seconds,
        resumed_from=resumed_from,
    )


__all__ = [
    "LINEAR_MODULES",
    "DataFile",
    "EncodedExample",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "TrainingRecord",
    "build_examples",
    "encode_example",
    "example_messages",
    "load_records",
    "plot_losses",
    "train_planner",
]
