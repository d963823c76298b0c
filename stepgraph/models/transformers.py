"""The GPU path and the training path: a Hugging Face model run through `transformers`.

llama.cpp is the faster CPU engine, but this backend is the one that (a) uses CUDA, (b) runs
real batches through one forward pass, and (c) shares its weights with peft, so the planner's
LoRA adapter can be switched on per request while the executor requests of the same batch
run on the bare model: one model in memory for both jobs.

JSON schemas and GBNF grammars are enforced with xgrammar. Requests that differ in adapter,
grammar or sampling settings cannot share one `model.generate` call, so a batch is split into
sub-batches of requests that agree on those, each of at most `max_batch_size` requests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from stepgraph.errors import ConfigError, GrammarError, ModelError
from stepgraph.models.base import (
    BackendBase,
    Completion,
    Message,
    Request,
    cut_at_stop,
    split_reply,
)

if TYPE_CHECKING:
    import xgrammar as xgr
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tiktoken.model")
_COMPLETE_MARKER = ".stepgraph-complete"
# xgrammar's C++ errors start with "[hh:mm:ss] /project/cpp/file.cc:123: "; users need the rest.
_XGRAMMAR_LOG_PREFIX = re.compile(r"^\[[\d:]+\]\s+\S+:\d+:\s*")


# -- device, dtype and cache -----------------------------------------------------------------


def default_device() -> str:
    """CUDA when there is one: this backend exists for the GPU; CPU for tests and training."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (avx512_bf16 or AMX).

    Without it, bfloat16 matmuls are emulated and slower than float32, so float32 is chosen.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def default_dtype(device: str) -> torch.dtype:
    """bfloat16 where the hardware computes it natively (about 1.7x faster on such CPUs)."""
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


def _resolve_dtype(dtype: torch.dtype | str | None, device: str) -> torch.dtype:
    if dtype is None:
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ConfigError(f"unknown dtype {dtype!r}; use bfloat16, float16 or float32")
    return resolved


def hf_cache_dir() -> Path:
    """Where GGUF files are kept dequantized as safetensors."""
    from stepgraph.models.embedded import cache_root

    return cache_root() / "hf"


def _fingerprint(path: Path) -> str:
    """A cheap content key: size plus the hash of the first and last 4 MiB.

    The GGUF header (all metadata and the tensor table) sits at the start, so two different
    models differ there; hashing all 0.5-1 GB every load would cost more than the load.
    """
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(4 << 20))
        f.seek(max(0, size - (4 << 20)))
        digest.update(f.read(4 << 20))
    return digest.hexdigest()[:16]


def load_gguf_tokenizer(gguf_path: Path) -> PreTrainedTokenizerBase:
    """The tokenizer stored in a GGUF file's metadata, chat template included.

    `PreTrainedTokenizerFast` reads only the tokenizer keys (about 3 s for Qwen's 151k
    vocabulary); `AutoTokenizer` first rebuilds the whole model config with the slower `gguf`
    reader (about 30 s), so it is only the fallback.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        return PreTrainedTokenizerFast.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name
        )
    except Exception as fast_error:  # noqa: BLE001 - any failure: try the general loader
        log.debug("fast GGUF tokenizer load failed (%s); using AutoTokenizer", fast_error)
        try:
            return AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        except Exception as exc:
            raise ModelError(
                f"cannot read a tokenizer from {gguf_path}: {exc}; is it a GGUF file of a "
                "model architecture that transformers supports?"
            ) from exc


def dequantized_dir(
    gguf_path: Path, *, dtype: torch.dtype, status: Callable[[str], Any] | None = None
) -> Path:
    """A Hugging Face directory holding the GGUF model dequantized, made on first use.

    transformers dequantizes a GGUF file on every load (about 40 s for 0.5B parameters);
    loading the same weights back from safetensors takes under a second. The directory is
    written under a temporary name and renamed when complete, so a crash never leaves a
    half-written model that looks usable.
    """
    from transformers import AutoModelForCausalLM

    dtype_name = str(dtype).removeprefix("torch.")
    target = hf_cache_dir() / f"{gguf_path.stem}-{_fingerprint(gguf_path)}-{dtype_name}"
    if (target / _COMPLETE_MARKER).is_file():
        return target
    message = (
        f"Dequantizing {gguf_path.name} for transformers (first load only, about 40 s per "
        f"0.5B parameters; cached in {target})"
    )
    log.warning(message)
    started = time.perf_counter()
    tmp = target.with_name(f"{target.name}.partial-{os.getpid()}-{threading.get_ident()}")
    context = status(message) if status is not None else contextlib.nullcontext()
    try:
        with context:
            tokenizer = load_gguf_tokenizer(gguf_path)
            try:
                model = AutoModelForCausalLM.from_pretrained(
                    str(gguf_path.parent), gguf_file=gguf_path.name, dtype=dtype
                )
            except Exception as exc:
                raise ModelError(
                    f"transformers cannot load {gguf_path}: {exc}; check that it is a complete "
                    "GGUF file of a supported architecture (or use the llama.cpp backend)"
                ) from exc
            # transformers 5 refuses to save a model it loaded from GGUF; the weights are plain
            # dequantized tensors by now, so dropping the quantizer marks make it saveable.
            model.hf_quantizer = None
            with contextlib.suppress(AttributeError):
                del model.config.quantization_config
            tmp.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / _COMPLETE_MARKER).write_text(json.dumps({"source": str(gguf_path)}))
            del model
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first; its copy is as good as ours
            if not (target / _COMPLETE_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.warning("dequantized %s in %.1f s", gguf_path.name, time.perf_counter() - started)
    return target


def _rich_status(message: str) -> Any:
    """A spinner on stderr while the slow first load runs (no-op when stderr is no terminal)."""
    from rich.console import Console

    return Console(stderr=True).status(message)


# -- decoding helpers --------------------------------------------------------------------------


# xgrammar 0.2.8 writes strings with minLength/maxLength as characters from this class, which
# admits raw control characters (a tab, say): JSON forbids them and json.loads rejects the
# output. The full-string rule of the same grammar excludes them; we do the same.
_LENGTH_LIMITED_CHARS = r"[^\"\\\r\n]"
_JSON_STRING_CHARS = r"[^\0-\x1f\"\\\r\n]"


def _json_schema_grammar(schema_json: str) -> xgr.Grammar:
    """The xgrammar grammar of a JSON schema, compact and producing only valid JSON.

    `any_whitespace=False`: the default grammar allows free whitespace between tokens, and a
    small model fills it (DESIGN.md, measured); this one uses fixed `", "` and `": "`.
    """
    import xgrammar as xgr

    grammar = xgr.Grammar.from_json_schema(schema_json, any_whitespace=False)
    text = str(grammar)
    if _LENGTH_LIMITED_CHARS in text:
        grammar = xgr.Grammar.from_ebnf(text.replace(_LENGTH_LIMITED_CHARS, _JSON_STRING_CHARS))
    return grammar


# xgrammar 0.2.8 matches a bounded repetition of a rule, such as the plan grammar's
# `char{1,400}`, in time that grows with every repeat: about 3 s a token after 17 tokens of
# a step's text, against 0.1 ms for `char+` (measured on Qwen's 151k vocabulary; related
# upstream: mlc-ai/xgrammar#852). So a GBNF grammar's repetitions with a large upper bound
# lose the bound (`{0,n}` -> `*`, `{1,n}` -> `+`); the request's max_tokens still ends the
# output. The llama.cpp backend does not use xgrammar to decode and keeps the bounds.
_REPEAT = re.compile(r"\{\s*(\d+)\s*,\s*(\d+)\s*\}")
_REPEAT_BOUND_KEPT = 32


def _unbound_large_repetitions(grammar: str) -> str:
    """`grammar` with `{0,n}` and `{1,n}` written as `*` and `+` where n is over
    `_REPEAT_BOUND_KEPT`; strings, character classes and comments are left as they are."""
    out, i = [], 0
    while i < len(grammar):
        ch = grammar[i]
        if ch in '"[#':
            close = {'"': '"', "[": "]", "#": "\n"}[ch]
            j = i + 1
            while j < len(grammar) and grammar[j] != close:
                j += 2 if grammar[j] == "\\" and ch != "#" else 1
            out.append(grammar[i : j + 1])
            i = j + 1
        elif (m := _REPEAT.match(grammar, i)) and int(m[1]) <= 1 and int(m[2]) > _REPEAT_BOUND_KEPT:
            out.append("*" if int(m[1]) == 0 else "+")
            i = m.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _grammar_processor_class() -> type:
    """Build the logits processor class lazily: importing xgrammar costs about a second."""
    import transformers
    import xgrammar as xgr

    class GrammarLogitsProcessor(transformers.LogitsProcessor):
        """Masks each row's logits to the tokens its grammar allows next.

        Like `xgrammar.contrib.hf.LogitsProcessor`, but a row that a stopping criterion has
        ended (its max_tokens or a stop string, before the grammar was complete) keeps
        receiving pad tokens from `generate`; the contrib processor asserts on those and
        crashes the whole batch, this one simply stops constraining that row.
        """

        def __init__(self, compiled: list[xgr.CompiledGrammar]):
            self.matchers = [xgr.GrammarMatcher(c) for c in compiled]
            self.live = [True] * len(compiled)
            self.bitmask = xgr.allocate_token_bitmask(
                len(compiled), compiled[0].tokenizer_info.vocab_size
            )
            self.started = False

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> Any:
            if self.started:
                for i, matcher in enumerate(self.matchers):
                    if self.live[i] and not matcher.is_terminated():
                        self.live[i] = matcher.accept_token(int(input_ids[i, -1]))
            self.started = True
            for i, matcher in enumerate(self.matchers):
                if self.live[i] and not matcher.is_terminated():
                    matcher.fill_next_token_bitmask(self.bitmask, i)
                else:
                    self.bitmask[i].fill_(-1)  # all allowed: the row's tokens are discarded
            if scores.device.type == "cuda":
                xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device))
                return scores
            cpu_scores = scores.to("cpu")
            xgr.apply_token_bitmask_inplace(cpu_scores, self.bitmask)
            return cpu_scores.to(scores.device)

    return GrammarLogitsProcessor


class _RowStops:
    """Per-row stopping: each request's own max_tokens and stop strings, and cancellation.

    transformers' `stop_strings` apply one list to the whole batch; requests in a sub-batch
    may have different stop strings and lengths, and stopping a row early also saves work.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        prompt_length: int,
        max_tokens: list[int],
        stops: list[list[str]],
        cancel: threading.Event | None = None,
    ):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.max_tokens = max_tokens
        self.stops = stops
        self.cancel = cancel
        longest = max((len(s.encode()) for row in stops for s in row), default=0)
        self.window = longest + 2  # every token is at least one byte

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        generated = input_ids.shape[1] - self.prompt_length
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if self.cancel is not None and self.cancel.is_set():
            return torch.ones_like(done)
        for i, stops in enumerate(self.stops):
            if generated >= self.max_tokens[i]:
                done[i] = True
            elif stops:
                tail = input_ids[i, max(self.prompt_length, input_ids.shape[1] - self.window) :]
                text = self.tokenizer.decode(tail, skip_special_tokens=True)
                done[i] = any(s in text for s in stops)
        return done


class _FirstTokenClock:
    """A streamer that only notes when the first generated token arrived (batch-safe)."""

    def __init__(self, start: float):
        self.start = start
        self.calls = 0
        self.first: float | None = None

    def put(self, value: Any) -> None:
        self.calls += 1  # the first put is the prompt itself
        if self.calls == 2:
            self.first = time.perf_counter() - self.start

    def end(self) -> None:
        pass


def _group_key(request: Request) -> tuple[Any, ...]:
    """Requests with equal keys can share one `generate` call."""
    if request.grammar is not None:
        constraint: tuple[str, str] | None = ("ebnf", request.grammar)
    elif request.json_schema is not None:
        constraint = ("schema", json.dumps(request.json_schema))  # key order is output order
    else:
        constraint = None
    if request.temperature == 0:
        sampling: tuple[Any, ...] = (0.0,)
    else:
        sampling = (request.temperature, request.top_p, request.seed)
    return (request.adapter, constraint, sampling)


# -- the backend -------------------------------------------------------------------------------


class TransformersBackend(BackendBase):
    """A causal LM from a Hugging Face directory or a GGUF file, with optional LoRA adapters.

    `path` is a model directory (config.json, weights and a tokenizer) or a `.gguf` file (or
    a directory plus `gguf_file=`). A GGUF file is dequantized once and cached as safetensors.
    `adapters` maps names to peft adapter directories; a request picks one with
    `Request.adapter`, or runs on the bare model with `adapter=None`.
    Thread-safe: one lock serialises use of the model.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str | None = None,
        dtype: torch.dtype | str | None = None,
        adapters: dict[str, str | os.PathLike[str]] | None = None,
        gguf_file: str | None = None,
        max_batch_size: int = 8,
    ):
        if max_batch_size < 1:
            raise ConfigError("max_batch_size must be at least 1")
        self.device = device or default_device()
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"device {self.device!r} was asked for but torch sees no CUDA GPU; "
                "use device='cpu' or install a CUDA build of torch"
            )
        self.dtype = _resolve_dtype(dtype, self.device)
        self.max_batch_size = max_batch_size
        self._lock = threading.RLock()
        self._grammars: dict[tuple[str, str], xgr.CompiledGrammar] = {}
        self._compiler: xgr.GrammarCompiler | None = None
        self._processor_class: type | None = None
        self._adapters: dict[str, Path] = {}

        model_dir = self._locate(Path(path).expanduser(), gguf_file)
        self.path = model_dir
        self.name = f"transformers:{Path(path).name}"
        self._tokenizer = self._load_tokenizer(model_dir)
        self._base = self._load_model(model_dir)
        self._model: Any = self._base
        self._eos_ids = self._stop_token_ids()
        self._prepare_generation_defaults()
        for name, adapter_path in (adapters or {}).items():
            self.load_adapter(name, adapter_path)

    # -- loading ---------------------------------------------------------------------------

    def _locate(self, path: Path, gguf_file: str | None) -> Path:
        """Resolve `path` to a Hugging Face directory, dequantizing a GGUF file if needed."""
        if gguf_file is not None:
            path = path / gguf_file
        if not path.exists():
            raise ModelError(
                f"model path {path} does not exist; pass a Hugging Face model directory or a "
                ".gguf file (`stepgraph model pull` assembles the embedded model)"
            )
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise ModelError(
                    f"{path} is a file but not a .gguf file; pass a .gguf file or a Hugging "
                    "Face model directory"
                )
            return dequantized_dir(path, dtype=self.dtype, status=_rich_status)
        missing = []
        if not (path / "config.json").is_file():
            missing.append("config.json")
        if not any((path / f).is_file() for f in _TOKENIZER_FILES):
            missing.append(f"a tokenizer (one of {', '.join(_TOKENIZER_FILES)})")
        if missing:
            raise ModelError(
                f"{path} is not a complete Hugging Face model directory: it lacks "
                f"{' and '.join(missing)}. Save both with model.save_pretrained(dir) and "
                "tokenizer.save_pretrained(dir), or pass a .gguf file"
            )
        return path

    def _load_tokenizer(self, model_dir: Path) -> PreTrainedTokenizerBase:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        except Exception as exc:
            raise ModelError(f"cannot load the tokenizer in {model_dir}: {exc}") from exc
        tokenizer.padding_side = "left"  # batched decoding continues every row at the right edge
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if tokenizer.pad_token_id is None:
            raise ModelError(f"the tokenizer in {model_dir} has neither a pad nor an EOS token")
        if not getattr(tokenizer, "chat_template", None):
            log.warning(
                "%s has no chat template; prompts use a plain 'role: text' layout", model_dir
            )
        return tokenizer

    def _load_model(self, model_dir: Path) -> PreTrainedModel:
        from transformers import AutoModelForCausalLM

        started = time.perf_counter()
        try:
            model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=self.dtype)
        except Exception as exc:
            raise ModelError(
                f"cannot load the model in {model_dir}: {exc}; is it a causal language model "
                "with complete weights?"
            ) from exc
        model.to(self.device)
        model.eval()
        log.info("loaded %s in %.1f s", model_dir, time.perf_counter() - started)
        return model

    def _stop_token_ids(self) -> list[int]:
        """EOS ids of both the model's generation config and the tokenizer (Qwen has two)."""
        ids: list[int] = []
        configured = getattr(self._base.generation_config, "eos_token_id", None)
        for value in (configured, self._tokenizer.eos_token_id):
            for token in value if isinstance(value, list) else [value]:
                if isinstance(token, int) and token not in ids:
                    ids.append(token)
        if not ids:
            raise ModelError(f"{self.path} defines no end-of-sequence token; cannot generate")
        return ids

    def _prepare_generation_defaults(self) -> None:
        """Replace the shipped sampling defaults: each Request states its own settings.

        Qwen's generation_config.json turns on sampling with top_k and a repetition penalty;
        transformers fills every option a call leaves unset from it, which would make
        `temperature=0` requests differ from the other backends.
        """
        from transformers import GenerationConfig

        self._base.generation_config = GenerationConfig(
            eos_token_id=self._eos_ids,
            pad_token_id=self._tokenizer.pad_token_id,
            bos_token_id=getattr(self._base.generation_config, "bos_token_id", None),
        )

    def load_adapter(self, name: str, path: str | os.PathLike[str]) -> None:
        """Load a peft LoRA adapter under `name`; requests select it with `adapter=name`."""
        from peft import PeftModel

        adapter_dir = Path(path).expanduser()
        # `stepgraph train planner` writes adapter/ (peft) next to adapter.gguf (llama.cpp);
        # either path, or their folder, names the same adapter.
        if adapter_dir.suffix == ".gguf":
            adapter_dir = adapter_dir.parent
        if (adapter_dir / "adapter" / "adapter_config.json").is_file():
            adapter_dir = adapter_dir / "adapter"
        if not (adapter_dir / "adapter_config.json").is_file():
            raise ModelError(
                f"adapter {name!r}: {adapter_dir} is not a peft adapter directory (no "
                "adapter_config.json); save one with peft_model.save_pretrained(dir)"
            )
        with self._lock:
            if name in self._adapters:
                raise ModelError(f"an adapter named {name!r} is already loaded")
            try:
                if not self._adapters:
                    self._model = PeftModel.from_pretrained(
                        self._base, str(adapter_dir), adapter_name=name
                    )
                else:
                    self._model.load_adapter(str(adapter_dir), adapter_name=name)
            except Exception as exc:
                raise ModelError(
                    f"cannot load adapter {name!r} from {adapter_dir}: {exc}; was it trained "
                    f"on this base model ({self.path})?"
                ) from exc
            self._model.eval()
            self._adapters[name] = adapter_dir

    @property
    def adapters(self) -> list[str]:
        """Names of the loaded adapters."""
        return list(self._adapters)

    # -- public interface ------------------------------------------------------------------

    def generate(self, requests: list[Request]) -> list[Completion]:
        """Decode the batch in sub-batches of requests that can share one `generate` call."""
        for request in requests:
            self._check_adapter(request.adapter)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(_group_key(request), []).append(index)
        results: list[Completion | None] = [None] * len(requests)
        with self._lock:
            for indices in groups.values():
                for start in range(0, len(indices), self.max_batch_size):
                    chunk = indices[start : start + self.max_batch_size]
                    completions = self._generate_group([requests[i] for i in chunk])
                    for i, completion in zip(chunk, completions, strict=True):
                        results[i] = completion
        return [c for c in results if c is not None]

    def stream(self, request: Request) -> Iterator[str]:
        """Yield text as it is decoded; a stop string is never yielded, even in part."""
        from transformers import TextIteratorStreamer

        self._check_adapter(request.adapter)
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock:
                    self._generate_group([request], streamer=streamer, cancel=cancel)
            except BaseException as exc:  # handed to the consumer below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="stepgraph-transformers-stream", daemon=True)
        worker.start()
        held = ""  # text that might be the start of a stop string
        hold = max((len(s) for s in request.stop), default=1) - 1
        try:
            for piece in streamer:
                held += piece
                text, stopped = cut_at_stop(held, request.stop)
                if stopped:
                    if text:
                        yield text
                    held = ""
                    break
                safe = len(held) - hold
                if safe > 0:
                    yield held[:safe]
                    held = held[safe:]
            else:
                worker.join()
                if failure:
                    raise failure[0]
                if held:
                    yield held
        finally:
            cancel.set()  # a consumer that stops early also stops the decoding

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def context_length(self) -> int:
        config = self._base.config
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return int(getattr(self._tokenizer, "model_max_length", 2048))

    @property
    def model(self) -> Any:
        """The underlying torch module (a PeftModel once adapters are loaded), for training."""
        return self._model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self._tokenizer

    def close(self) -> None:
        with self._lock:
            for attr in ("_model", "_base"):
                if hasattr(self, attr):
                    delattr(self, attr)
            self._grammars.clear()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    # -- decoding --------------------------------------------------------------------------

    def _check_adapter(self, adapter: str | None) -> None:
        if not hasattr(self, "_model"):
            raise ModelError(f"{self.name} was closed; create a new backend")
        if adapter is not None and adapter not in self._adapters:
            loaded = ", ".join(repr(a) for a in self._adapters) or "none"
            raise ModelError(
                f"no adapter named {adapter!r} is loaded (loaded: {loaded}); pass "
                "adapters={name: path} to TransformersBackend or call load_adapter(name, path)"
            )

    def _prompt(self, messages: list[Message]) -> str:
        messages, begun = split_reply(messages)
        chat = [{"role": m.role, "content": m.content} for m in messages]
        if getattr(self._tokenizer, "chat_template", None):
            prompt = self._tokenizer.apply_chat_template(
                chat, add_generation_prompt=True, tokenize=False
            )
        else:
            prompt = "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"
        return prompt + (begun or "")

    def _compiled_grammar(self, request: Request) -> xgr.CompiledGrammar | None:
        """Compile (once per distinct schema or grammar) the constraint of `request`."""
        if request.grammar is None and request.json_schema is None:
            return None
        import xgrammar as xgr

        if request.grammar is not None:
            key = ("ebnf", request.grammar)
        else:
            key = ("schema", json.dumps(request.json_schema))
        if key in self._grammars:
            return self._grammars[key]
        if self._compiler is None:
            info = xgr.TokenizerInfo.from_huggingface(
                self._tokenizer,
                vocab_size=self._base.config.vocab_size,
                stop_token_ids=self._eos_ids,
            )
            self._compiler = xgr.GrammarCompiler(info)
        try:
            if key[0] == "ebnf":
                grammar = xgr.Grammar.from_ebnf(_unbound_large_repetitions(key[1]))
                compiled = self._compiler.compile_grammar(grammar)
            else:
                compiled = self._compiler.compile_grammar(_json_schema_grammar(key[1]))
        except Exception as exc:  # xgrammar raises RuntimeError/ValueError subclasses
            what = "GBNF grammar" if key[0] == "ebnf" else "JSON schema"
            reason = _XGRAMMAR_LOG_PREFIX.sub("", str(exc)).strip()
            raise GrammarError(
                f"xgrammar cannot compile the {what}: {reason}. Fix the {what} (xgrammar "
                "supports most of JSON Schema; GBNF needs a `root` rule)"
            ) from exc
        self._grammars[key] = compiled
        return compiled

    def _generate_group(
        self,
        requests: list[Request],
        *,
        streamer: Any = None,
        cancel: threading.Event | None = None,
    ) -> list[Completion]:
        """One `generate` call for requests that share adapter, constraint and sampling."""
        from transformers import StoppingCriteriaList

        first = requests[0]
        compiled = self._compiled_grammar(first)
        started = time.perf_counter()
        prompts = [self._prompt(r.messages) for r in requests]
        inputs = self._tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        prompt_length = int(inputs["input_ids"].shape[1])
        room = self.context_length - prompt_length
        if room < 1:
            longest = int(inputs["attention_mask"].sum(dim=1).max())
            raise ModelError(
                f"a prompt has {longest} tokens but {self.path.name} takes at most "
                f"{self.context_length}; shorten the prompt or the conversation history"
            )
        max_new = min(max(r.max_tokens for r in requests), room)
        stops = _RowStops(
            self._tokenizer,
            prompt_length,
            [r.max_tokens for r in requests],
            [r.stop for r in requests],
            cancel,
        )
        processors = []
        if compiled is not None:
            if self._processor_class is None:
                self._processor_class = _grammar_processor_class()
            processors.append(self._processor_class([compiled] * len(requests)))
        options: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": first.temperature > 0}
        if first.temperature > 0:
            options.update(temperature=first.temperature, top_p=first.top_p, top_k=0)
        clock = _FirstTokenClock(started)
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            if first.temperature > 0 and first.seed is not None:
                devices = [torch.device(self.device).index or 0] if "cuda" in self.device else []
                stack.enter_context(torch.random.fork_rng(devices=devices))
                torch.manual_seed(first.seed)
            if self._adapters:
                if first.adapter is None:
                    stack.enter_context(self._model.disable_adapter())
                else:
                    self._model.set_adapter(first.adapter)
            try:
                output = self._model.generate(
                    **inputs,
                    **options,
                    repetition_penalty=1.0,
                    logits_processor=processors,
                    stopping_criteria=StoppingCriteriaList([stops]),
                    streamer=streamer if streamer is not None else clock,
                    pad_token_id=self._tokenizer.pad_token_id,
                    eos_token_id=self._eos_ids,
                )
            except torch.cuda.OutOfMemoryError as exc:
                raise ModelError(
                    f"the GPU ran out of memory on a batch of {len(requests)}; lower "
                    "max_batch_size or max_tokens"
                ) from exc
        seconds = time.perf_counter() - started
        prompt_counts = inputs["attention_mask"].sum(dim=1).tolist()
        ends = set(self._eos_ids) | {self._tokenizer.pad_token_id}
        completions = []
        for row, request in enumerate(requests):
            tokens = output[row, prompt_length:].tolist()
            ended = next((k for k, t in enumerate(tokens) if t in ends), None)
            if ended is not None:
                tokens = tokens[:ended]
            tokens = tokens[: request.max_tokens]
            text = self._tokenizer.decode(tokens, skip_special_tokens=True)
            text, stopped = cut_at_stop(text, request.stop)
            finished = stopped is not None or (ended is not None and ended < request.max_tokens)
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=int(prompt_counts[row]),
                    completion_tokens=len(tokens),
                    seconds=seconds,
                    first_token_seconds=clock.first,
                    finish_reason="stop" if finished else "length",
                    stopped_by=stopped,
                    model=self.name,
                )
            )
        return completions
