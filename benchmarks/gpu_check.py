"""GPU check: stepgraph's transformers/CUDA path measured in one short run on a borrowed GPU.

Why it exists: the GPU path (TransformersBackend: batched decoding, xgrammar-constrained
decoding, per-request LoRA adapters) and `stepgraph train planner --preset cuda` are built
and tested on CPU only. A GPU is lent for minutes at a time, so this script answers four
questions in one run, and records what ran, what failed and how fast:

  a. decode: single-stream tok/s and time to first token; aggregate tok/s for 1, 4, 16
     and 64 requests in one batched `generate` (and 64 split at the default batch size 8);
  b. constrained: a batch of planner requests under the plan grammar (the GBNF the planner
     sends) and under the plan JSON schema, through xgrammar: how many parse, how many hit
     max_tokens;
  c. training: the cuda preset of `stepgraph train planner` for a few optimizer steps on
     the data the shipped adapter was trained on: seconds per step, peak GPU memory, and
     whether adapter/ and adapter.gguf were written;
  d. adapters: the trained adapter loaded into the backend, and batches where some
     requests use it and some run on the bare model.

Each part is recorded on its own: a failure is written down and the next part still runs.
OUT/gpu_check.json (everything) and OUT/gpu_check.md (a summary) are rewritten after each
part, so a run cut short still leaves what it measured.

If --model holds a config and a tokenizer but no weights, random weights are built from the
config and saved under --work: the numbers then measure speed and plumbing only, never
quality, and the output says so.

On a GPU (see .device/run.sh, which installs the missing wheels first):
    python3 benchmarks/gpu_check.py --model DIR --device cuda --work /tmp/gpuwork --out OUT
Local smoke test (a 2-layer random model with the real tokenizer, small sizes):
    .venv/bin/python benchmarks/gpu_check.py --quick --device cpu --model .device/qwen05b \
        --work /tmp/gpu-check-work --out /tmp/gpu-check-out
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import shutil
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
# The lent machine has no network: never let a library wait for a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from _common import machine  # noqa: E402
from model_speed import PLAN_SCHEMA  # noqa: E402 - the plan-shaped schema of model_speed.py

from stepgraph.models.base import Completion, Request  # noqa: E402
from stepgraph.planner.planner import Planner, check_instruction  # noqa: E402
from stepgraph.planner.prompt import planner_descriptions  # noqa: E402

PROMPT = "Write a long, detailed essay about the history of the printing press, part {i}."
EXECUTORS = ["llm", "calculator", "python"]
GOLD = REPO / "stepgraph" / "evolve" / "data" / "gold.jsonl"
SHIPPED_ADAPTER = REPO / "stepgraph" / "evolve" / "adapters" / "qwen2.5-coder-0.5b-planner.json"
RANDOM_WARNING = (
    "WEIGHTS ARE RANDOM (built from config.json): these numbers measure speed and plumbing "
    "only, not quality; outputs are noise and constrained outputs are expected to truncate"
)


@dataclass(frozen=True)
class Sizes:
    max_tokens: int = 128  # per request in part a
    concurrency: tuple[int, ...] = (1, 4, 16, 64)
    single_runs: int = 3
    constrained: int = 20  # requests per constrained batch
    constrained_max_tokens: int = 256
    train_steps: int = 20
    switch: int = 16  # requests per batch in part d
    switch_max_tokens: int = 64


FULL = Sizes()
QUICK = Sizes(
    max_tokens=12,
    single_runs=2,
    constrained=4,
    constrained_max_tokens=40,
    train_steps=2,
    switch=4,
    switch_max_tokens=8,
)


# -- recording ---------------------------------------------------------------------------------


def guarded(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run one measurement; an exception becomes part of the record instead of the end."""
    started = time.perf_counter()
    try:
        entry = {"ok": True, **fn(*args)}
    except Exception as exc:  # noqa: BLE001 - recorded; the other parts still run
        traceback.print_exc()
        entry = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}"[:2000],
            "traceback": traceback.format_exc()[-4000:],
        }
    entry["wall_s"] = round(time.perf_counter() - started, 2)
    return entry


class Report:
    """gpu_check.json and gpu_check.md in `out`, rewritten after every part."""

    def __init__(self, out: Path, header: dict[str, Any]):
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.data: dict[str, Any] = {**header, "parts": {}}

    def part(self, name: str, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        print(f"\n=== {name} ===", flush=True)
        entry = guarded(fn, *args)
        status = "ok" if entry["ok"] else f"FAILED: {entry['error'][:300]}"
        print(f"=== {name}: {status} ({entry['wall_s']} s)", flush=True)
        self.data["parts"][name] = entry
        self.write()
        return entry

    def skip(self, name: str, reason: str) -> None:
        print(f"\n=== {name}: skipped ({reason})", flush=True)
        self.data["parts"][name] = {"ok": False, "skipped": reason}
        self.write()

    def write(self) -> None:
        self.data["finished"] = now()
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2) + "\n")
        (self.out / "gpu_check.md").write_text(markdown(self.data))


def markdown(data: dict[str, Any]) -> str:
    facts = data["machine"]
    lines = ["# stepgraph GPU check", ""]
    if data["random_weights"]:
        lines += [f"**{RANDOM_WARNING}.**", ""]
    lines += [
        f"- date: {facts['date']}; device: {data['device']}; GPU: {facts.get('gpu')}",
        f"- torch {facts.get('torch')} (CUDA {facts.get('cuda')}); "
        + ", ".join(f"{k} {facts.get(k)}" for k in ("transformers", "peft", "xgrammar")),
        f"- model: {data['model']}{' (quick sizes)' if data['quick'] else ''}",
        "",
    ]
    for name, part in data["parts"].items():
        state = "ok" if part.get("ok") else "FAILED" if "error" in part else "skipped"
        lines += [f"## {name}: {state} ({part.get('wall_s', '-')} s)", ""]
        if "error" in part or "skipped" in part:
            lines += [f"    {part.get('error') or part.get('skipped')}", ""]
        for key, value in part.items():
            if key in ("ok", "wall_s", "error", "traceback", "skipped"):
                continue
            if isinstance(value, dict):
                lines.append(f"- {key}:")
                lines += [f"  - {k}: {_short(v)}" for k, v in value.items() if k != "traceback"]
            else:
                lines.append(f"- {key}: {_short(value)}")
        lines.append("")
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 300 else text[:300] + "..."


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def machine_facts() -> dict[str, Any]:
    facts = {**machine(), "date": now(), "torch": torch.__version__, "cuda": torch.version.cuda}
    for package in ("transformers", "peft", "accelerate", "xgrammar", "gguf", "pydantic"):
        try:
            facts[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            facts[package] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts["gpu"] = torch.cuda.get_device_name(0)
        facts["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        facts["gpu_capability"] = f"{props.major}.{props.minor}"
    return facts


def r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def gib(n: int) -> float:
    return round(n / 2**30, 2)


# -- the model ---------------------------------------------------------------------------------


def prepare_model(src: Path, work: Path, device: str, quick: bool) -> tuple[Path, bool]:
    """`src` itself when it has weights; otherwise a copy with random bfloat16 weights."""
    if any(src.glob("*.safetensors")) or any(src.glob("pytorch_model*.bin")):
        return src, False
    from transformers import AutoConfig, AutoModelForCausalLM

    print(f"!!! {RANDOM_WARNING}", flush=True)
    dst = work / "model-random"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    config = AutoConfig.from_pretrained(str(src))
    if quick:  # a 2-layer, 64-wide model: the plumbing is the same, the CPU work is tiny
        config.num_hidden_layers = 2
        config.hidden_size = 64
        config.intermediate_size = 128
        config.num_attention_heads = 4
        config.num_key_value_heads = 2
        if getattr(config, "head_dim", None):
            config.head_dim = 16
        if getattr(config, "layer_types", None):
            config.layer_types = config.layer_types[:2]
    torch.manual_seed(0)
    started = time.perf_counter()
    try:  # initialising on the GPU takes seconds; on the CPU, 630M parameters take longer
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    except Exception as exc:  # noqa: BLE001 - the CPU always works
        print(f"!! building the random model on {device} failed ({exc}); building it on cpu")
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(str(dst))
    (dst / "RANDOM_WEIGHTS.txt").write_text(RANDOM_WARNING + "\n")
    params = sum(p.numel() for p in model.parameters())
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    print(f"random model: {params / 1e6:.1f} M parameters in {time.perf_counter() - started:.1f} s")
    return dst, True


def part_prepare(args: Any, header: dict[str, Any], slot: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    model_dir, random_weights = prepare_model(args.model, args.work, args.device, args.quick)
    slot["model_dir"] = model_dir
    header["random_weights"] = random_weights
    header["warning"] = RANDOM_WARNING if random_weights else None
    return {
        "model_dir_used": str(model_dir),
        "random_weights": random_weights,
        "seconds": r(time.perf_counter() - started, 1),
    }


def part_load(model_dir: Path, device: str, sizes: Sizes, slot: dict[str, Any]) -> dict[str, Any]:
    from stepgraph.models.transformers import TransformersBackend

    started = time.perf_counter()
    backend = TransformersBackend(model_dir, device=device, max_batch_size=max(sizes.concurrency))
    slot["backend"] = backend
    out = {
        "load_s": r(time.perf_counter() - started, 2),
        "dtype": str(backend.dtype).removeprefix("torch."),
        "max_batch_size": backend.max_batch_size,
        "context_length": backend.context_length,
    }
    if device.startswith("cuda"):
        out["gpu_memory_allocated_gib"] = gib(torch.cuda.memory_allocated())
    return out


# -- a. decode speed ---------------------------------------------------------------------------


def timed_batch(backend: Any, requests: list[Request]) -> tuple[dict[str, Any], list[Completion]]:
    started = time.perf_counter()
    done = backend.generate(requests)
    seconds = time.perf_counter() - started
    tokens = sum(c.completion_tokens for c in done)
    firsts = [c.first_token_seconds for c in done if c.first_token_seconds is not None]
    return {
        "requests": len(requests),
        "completion_tokens": tokens,
        "seconds": r(seconds),
        "aggregate_tok_s": r(tokens / seconds, 1),
        "first_token_s": r(min(firsts)) if firsts else None,
        "hit_max_tokens": sum(c.finish_reason == "length" for c in done),
    }, done


def part_decode(backend: Any, sizes: Sizes) -> dict[str, Any]:
    """Completion tokens actually produced are counted (EOS may end a row early)."""

    def request(i: int, max_tokens: int = sizes.max_tokens) -> Request:
        return Request.chat(PROMPT.format(i=i), max_tokens=max_tokens)

    backend.generate([request(0, 4)])  # warm-up: kernels, allocator, first-call costs
    runs = []
    for _ in range(sizes.single_runs):
        c = backend.generate([request(0)])[0]
        first = c.first_token_seconds or 0.0
        runs.append(
            {
                "tokens": c.completion_tokens,
                "seconds": r(c.seconds),
                "first_token_s": r(c.first_token_seconds),
                "decode_tok_s": r((c.completion_tokens - 1) / max(c.seconds - first, 1e-9), 1),
                "finish_reason": c.finish_reason,
            }
        )
    batched = {}
    for n in sizes.concurrency:
        batched[str(n)] = timed_batch(backend, [request(i) for i in range(n)])[0]
        print(f"  {n:>3} requests: {batched[str(n)]}", flush=True)
    largest, configured = max(sizes.concurrency), backend.max_batch_size
    backend.max_batch_size = 8  # the constructor's default, as a runtime built plainly has it
    try:
        key = f"{largest} at max_batch_size=8"
        batched[key] = timed_batch(backend, [request(i) for i in range(largest)])[0]
    finally:
        backend.max_batch_size = configured
    one = batched[str(min(sizes.concurrency))]["aggregate_tok_s"] or 1.0
    return {
        "max_tokens": sizes.max_tokens,
        "single_stream": {
            "median_decode_tok_s": statistics.median(x["decode_tok_s"] for x in runs),
            "median_first_token_s": statistics.median(x["first_token_s"] or 0.0 for x in runs),
            "runs": runs,
        },
        "batched": batched,
        "speedup_vs_1": {k: r(v["aggregate_tok_s"] / one, 2) for k, v in batched.items()},
    }


# -- b. constrained decoding -------------------------------------------------------------------


def gold_instructions(n: int) -> list[str]:
    rows = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line]
    return [check_instruction(row["instruction"]) for row in rows[:n]]


def constrained_batch(backend: Any, requests: list[Request], planner: Planner) -> dict[str, Any]:
    started = time.perf_counter()
    backend.generate([requests[0].model_copy(update={"max_tokens": 1})])  # compiles the grammar
    compile_s = time.perf_counter() - started
    stats, done = timed_batch(backend, requests)
    parsed = valid = 0
    for c in done:
        try:
            json.loads(c.text)
            parsed += 1
        except json.JSONDecodeError:
            pass
        try:
            planner.parse(c.text)
            valid += 1
        except Exception:  # noqa: BLE001 - an invalid plan is a count here, not an error
            pass
    return {
        **stats,
        "max_tokens": requests[0].max_tokens,
        "first_call_s (grammar compile + 1 token)": r(compile_s),
        "parse_as_json": parsed,
        "valid_plans": valid,
        "sample": done[0].text[:200],
    }


def part_constrained(backend: Any, sizes: Sizes) -> dict[str, Any]:
    planner = Planner(
        backend,
        executors=planner_descriptions(EXECUTORS),
        max_tokens=sizes.constrained_max_tokens,
    )
    tasks = gold_instructions(sizes.constrained)
    # Planner._request builds exactly what Planner.plan sends: prompt, GBNF grammar, budget.
    grammar = [planner._request(task, None) for task in tasks]
    schema = [
        Request.chat(
            f"{task}\nReply with the plan as compact JSON.",
            json_schema=PLAN_SCHEMA,
            max_tokens=sizes.constrained_max_tokens,
        )
        for task in tasks
    ]
    return {
        "planner_grammar (GBNF)": guarded(constrained_batch, backend, grammar, planner),
        "plan_json_schema": guarded(constrained_batch, backend, schema, planner),
    }


# -- c. LoRA training --------------------------------------------------------------------------


def training_files() -> list[Path]:
    """The data the shipped adapter was trained on, as its JSON records it."""
    info = json.loads(SHIPPED_ADAPTER.read_text(encoding="utf-8"))
    return [REPO / item["path"] for item in info["training_data"]]


def part_train(model_dir: Path, device: str, work: Path, sizes: Sizes) -> dict[str, Any]:
    from stepgraph.evolve import train

    out_dir = work / "train"
    shutil.rmtree(out_dir, ignore_errors=True)  # a fresh run, never a resume
    notes = []
    plot_losses = train.plot_losses
    try:
        import matplotlib  # noqa: F401 - only train's loss.png needs it
    except ImportError:
        train.plot_losses = lambda *args, **kwargs: None
        notes.append("matplotlib is not installed: loss.png not drawn")
    config = train.TrainConfig.preset(
        "cuda",
        base_model=str(model_dir),
        data_files=training_files(),
        output_dir=out_dir,
        max_steps=sizes.train_steps,
        device=device,
    )
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() if cuda else 0

    def progress(p: Any) -> None:
        print(f"  step {p.step}/{p.total_steps} loss {p.loss:.3f} {p.seconds_per_step:.2f} s/step")

    try:
        result = train.train_planner(config, progress=progress)
    finally:
        train.plot_losses = plot_losses
    rows = [json.loads(x) for x in (out_dir / "losses.jsonl").read_text().splitlines() if x]
    seconds = [row["seconds"] for row in rows]
    info = json.loads((out_dir / "train_info.json").read_text())
    out = {
        "preset": "cuda",
        "device": device,
        "dtype": info["dtype"],
        "batch_size x grad_accum": f"{config.batch_size} x {config.grad_accum}",
        "max_length": config.max_length,
        "data_files": [str(p.relative_to(REPO)) for p in config.data_files],
        "examples": result.examples,
        "skipped_too_long": result.skipped_too_long,
        "steps": result.steps,
        "first_step_s": seconds[0],
        "median_step_s_after_first": r(statistics.median(seconds[1:] or seconds)),
        "tokens_per_s": r(sum(row["tokens"] for row in rows) / sum(seconds), 1),
        "train_seconds": r(result.seconds, 1),
        "first_loss": r(rows[0]["loss"]),
        "final_loss": r(result.final_loss),
        "adapter_dir_written": (result.adapter_dir / "adapter_config.json").is_file(),
        "adapter_gguf_written": result.adapter_gguf.is_file(),
        "adapter_gguf_bytes": result.adapter_gguf.stat().st_size,
        "adapter_dir": str(result.adapter_dir),
        "notes": notes,
        "step_seconds": seconds,
        "losses": [r(row["loss"]) for row in rows],
    }
    if cuda:
        out["gpu_memory_before_gib"] = gib(before)
        out["peak_gpu_memory_allocated_gib"] = gib(torch.cuda.max_memory_allocated())
        out["peak_gpu_memory_reserved_gib"] = gib(torch.cuda.max_memory_reserved())
    return out


# -- d. adapter switching ----------------------------------------------------------------------


def part_adapters(backend: Any, adapter_dir: Path, sizes: Sizes) -> dict[str, Any]:
    started = time.perf_counter()
    backend.load_adapter("planner", adapter_dir)
    out: dict[str, Any] = {"adapter_load_s": r(time.perf_counter() - started)}
    half = sizes.switch // 2
    bare = [
        Request.chat(PROMPT.format(i=i), max_tokens=sizes.switch_max_tokens) for i in range(half)
    ]
    tuned = [request.model_copy(update={"adapter": "planner"}) for request in bare]
    mixed = [x for pair in zip(tuned, bare, strict=True) for x in pair]

    def plain_mix() -> dict[str, Any]:
        stats, done = timed_batch(backend, mixed)
        differs = sum(done[i].text != done[i + 1].text for i in range(0, len(done), 2))
        return {**stats, "same_prompt_output_differs_with_adapter": f"{differs} of {half}"}

    def bare_only() -> dict[str, Any]:
        more = [
            Request.chat(PROMPT.format(i=i), max_tokens=sizes.switch_max_tokens)
            for i in range(half, 2 * half)
        ]
        return timed_batch(backend, bare + more)[0]

    def runtime_mix() -> dict[str, Any]:
        # what the runtime does: planner requests (adapter + plan grammar) beside
        # executor requests on the bare model, in one generate call
        planner = Planner(
            backend,
            executors=planner_descriptions(EXECUTORS),
            adapter="planner",
            max_tokens=sizes.switch_max_tokens,
        )
        plans = [planner._request(task, None) for task in gold_instructions(half)]
        stats, done = timed_batch(backend, plans + bare)
        return {
            **stats,
            "planner_outputs_parse_as_json": sum(_is_json(c.text) for c in done[:half]),
        }

    out["mixed adapter/bare, no grammar"] = guarded(plain_mix)
    out["bare only, same size"] = guarded(bare_only)
    out["planner (adapter + grammar) with bare executors"] = guarded(runtime_mix)
    out["adapters_loaded"] = backend.adapters
    return out


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a Hugging Face model dir")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work", type=Path, default=Path("/tmp/stepgraph-gpu-check"))
    parser.add_argument("--out", type=Path, required=True, help="where results are written")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a CPU smoke run")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("STEPGRAPH_CACHE", str(args.work / "cache"))
    if args.quick and args.device == "cpu":
        torch.set_num_threads(1)  # the tiny model gains nothing from more; others share the CPU
    started = time.perf_counter()

    report = Report(
        args.out,
        {
            "machine": machine_facts(),
            "device": args.device,
            "model": str(args.model),
            "random_weights": None,
            "quick": args.quick,
            "sizes": asdict(sizes),
        },
    )
    slot: dict[str, Any] = {}
    report.part("prepare_model", part_prepare, args, report.data, slot)
    model_dir = slot.get("model_dir")
    if model_dir is None:
        report.write()
        sys.exit("no model to measure; see the prepare_model part")
    report.part("load", part_load, model_dir, args.device, sizes, slot)
    backend = slot.get("backend")
    if backend is None:
        report.skip("a_decode", "the backend did not load")
        report.skip("b_constrained", "the backend did not load")
    else:
        report.part("a_decode", part_decode, backend, sizes)
        report.part("b_constrained", part_constrained, backend, sizes)
    trained = report.part("c_train", part_train, model_dir, args.device, args.work, sizes)
    if backend is None or not trained.get("adapter_dir_written"):
        report.skip("d_adapters", "no backend or no trained adapter")
    else:
        report.part("d_adapters", part_adapters, backend, Path(trained["adapter_dir"]), sizes)
    report.data["total_s"] = round(time.perf_counter() - started, 1)
    report.write()
    failed = [name for name, part in report.data["parts"].items() if not part.get("ok")]
    if report.data["random_weights"]:
        print(f"\n!!! {RANDOM_WARNING}")
    print(f"\nresults: {args.out / 'gpu_check.json'}; failed parts: {failed or 'none'}")
    print(f"total {report.data['total_s']} s")


if __name__ == "__main__":
    main()
