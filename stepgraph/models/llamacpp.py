"""The CPU engine: llama.cpp through llama-cpp-python's low-level API.

llama-cpp-python's high-level `Llama` decodes one sequence at a time and keeps only the
prefix of its previous call. We need more, so this module drives llama.cpp directly:

* continuous batching: requests that arrive together (the runtime's parallel steps) share
  one `llama_decode` per token, each in its own sequence; llama.cpp's batched bench gave
  1.68x aggregate throughput at 4 streams on this CPU;
* prefix reuse: each sequence slot remembers the tokens in its KV cache, and a request goes
  to the slot sharing its longest prefix, so the planner's long few-shot prompt is decoded
  once, not on every plan;
* grammars: JSON schemas become GBNF (llama.cpp's converter), checked by xgrammar's parser
  before use because a GBNF llama.cpp cannot parse crashes the process;
* LoRA adapters in GGUF form, switched per batch (an adapter applies to the whole context,
  so sequences with different adapters take turns).
"""

from __future__ import annotations

import codecs
import ctypes
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from stepgraph.errors import GrammarError, ModelError
from stepgraph.models.base import BackendBase, Completion, Request, cut_at_stop, split_reply
from stepgraph.models.gbnf import check_gbnf

_BACKEND_READY = False


def _llama():
    """Import llama_cpp lazily: it loads a shared library, which tests without a model skip."""
    global _BACKEND_READY
    try:
        import llama_cpp
        from llama_cpp import _internals
    except ImportError as exc:  # pragma: no cover - installed with stepgraph
        raise ModelError(f"llama-cpp-python is not installed ({exc}); run `make install`") from None
    if not _BACKEND_READY:
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # llama.cpp logs every graph build; through Python that costs speed
        llama_cpp.llama_backend_init()
        _BACKEND_READY = True
    return llama_cpp, _internals


def schema_to_gbnf(schema: dict, model: str | None = None) -> str:
    """A JSON schema as a checked GBNF grammar with compact whitespace (`model`: the GGUF
    whose vocabulary llama.cpp's parser checks it with; see `check_gbnf`)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:
        raise GrammarError(f"cannot build a grammar from this JSON schema: {exc}") from None
    check_gbnf(grammar, model)
    return grammar


@dataclass
class _Job:
    request: Request
    tokens: list[int]
    future: Future
    grammar: str | None
    submitted: float
    pieces: queue.Queue | None = None  # set for streaming


@dataclass
class _Slot:
    """One llama.cpp sequence: what its KV cache holds and what it is decoding now."""

    seq: int
    tokens: list[int] = field(default_factory=list)
    adapter: str | None = None
    last_used: float = 0.0
    job: _Job | None = None
    sampler: object | None = None
    out: bytearray = field(default_factory=bytearray)
    decoder: codecs.IncrementalDecoder | None = None
    text: str = ""
    generated: int = 0
    prompt_tokens: int = 0
    started: float = 0.0
    first_token: float | None = None
    pending: int | None = None  # sampled token not yet fed back
    stopped_by: str | None = None


class LlamaCppBackend(BackendBase):
    """A GGUF model on llama.cpp, shared safely by any number of threads."""

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        n_ctx: int = 32768,
        n_seq: int = 4,
        threads: int | None = None,
        batch: int = 512,
        adapters: dict[str, str | Path] | None = None,
        kv_unified: bool = True,  # measured: 4 streams 2.0x one stream; per-stream KV 1.2x
        deterministic: bool = False,
    ):
        """`deterministic`: every request is decoded alone, from an empty cache, so its
        output depends on the request only, never on what else was decoding beside it or
        before it. Batched and cached decoding is faster, but llama.cpp's CPU kernels round
        differently with the batch's size and the chunking of a prompt, so two greedy runs
        of one instruction can differ after a few hundred tokens (measured: the demo
        instruction twice in one process, 200 and 1207 tokens, different plans)."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(
                f"no model file at {path}; check the path or run `stepgraph model pull`"
            )
        self.path = path
        self.name = name or path.stem
        llama_cpp, internals = _llama()
        self._c = llama_cpp
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelError(
                    f"{path} is not a GGUF model file; pass a .gguf file or an embedded name"
                )
        params = llama_cpp.llama_model_default_params()
        try:
            self._model = internals.LlamaModel(path_model=str(path), params=params, verbose=False)
        except ValueError as exc:
            raise ModelError(
                f"llama.cpp could not load {path} ({exc}); the file may be corrupt"
            ) from None
        self._vocab = llama_cpp.llama_model_get_vocab(self._model.model)
        self.n_seq = n_seq
        self.deterministic = deterministic
        cparams = llama_cpp.llama_context_default_params()
        n_ctx = min(n_ctx, self._model.n_ctx_train() * n_seq)
        cparams.n_ctx = n_ctx
        cparams.n_batch = batch
        cparams.n_ubatch = batch
        cparams.n_seq_max = n_seq
        cparams.kv_unified = kv_unified
        threads = threads or len(os.sched_getaffinity(0)) or 1
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.no_perf = True
        self._ctx = internals.LlamaContext(model=self._model, params=cparams, verbose=False)
        self._n_ctx_seq = n_ctx // n_seq
        self._batch_size = batch
        self._batch = llama_cpp.llama_batch_init(batch, 0, n_seq)
        self._memory = llama_cpp.llama_get_memory(self._ctx.ctx)
        self._template = self._chat_template()
        self._piece_buf = ctypes.create_string_buffer(256)
        self._adapters: dict[str, object] = {}
        self._adapter_paths: dict[str, Path] = {}
        for adapter_name, adapter_path in (adapters or {}).items():
            self.load_adapter(adapter_name, adapter_path)
        self._active_adapter: str | None = None
        self._slots = [_Slot(seq=i) for i in range(n_seq)]
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._waiting: list[_Job] = []
        self._lock = threading.Lock()  # guards the tokenizer against the worker
        self._closed = False
        self._worker = threading.Thread(target=self._loop, name=f"llama-{self.name}", daemon=True)
        self._worker.start()

    # -- public interface --------------------------------------------------------------

    @property
    def context_length(self) -> int:
        return self._n_ctx_seq

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text, special=False))

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Load a GGUF LoRA adapter; requests select it with `adapter=name`."""
        path = Path(path)
        if path.is_dir():
            candidates = sorted(path.glob("*.gguf"))
            if not candidates:
                raise ModelError(
                    f"no .gguf adapter in {path}; convert it with `stepgraph train` output"
                )
            path = candidates[0]
        if not path.is_file():
            raise ModelError(f"no LoRA adapter at {path}")
        if self._adapter_paths.get(name) == path.resolve():
            return  # every Runtime on this engine asks again; llama.cpp would load a copy
        quiet = logging.getLogger("llama-cpp-python")  # llama-cpp-python's C log filter
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # a line per layer about buffer fallbacks: noise
        try:
            adapter = self._c.llama_adapter_lora_init(self._model.model, str(path).encode())
        finally:
            quiet.setLevel(level)
        if not adapter:
            raise ModelError(
                f"llama.cpp could not load the LoRA adapter {path}; is it a GGUF LoRA "
                f"for this base model ({self.path.name})?"
            )
        self._adapters[name] = adapter
        self._adapter_paths[name] = path.resolve()

    def generate(self, requests: list[Request]) -> list[Completion]:
        futures = [self._submit(r) for r in requests]
        return [f.result() for f in futures]

    def stream(self, request: Request) -> Iterator[str]:
        pieces: queue.Queue = queue.Queue()
        future = self._submit(request, pieces=pieces)
        while True:
            piece = pieces.get()
            if piece is None:
                break
            yield piece
        future.result()  # raise the job's error, if any

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._worker.join(timeout=30)
        self._c.llama_batch_free(self._batch)
        self._ctx.close()
        self._model.close()

    # -- preparing requests ------------------------------------------------------------

    def _chat_template(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = self._model.metadata()
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise ModelError(f"{self.path.name} has no chat template in its metadata")
        eos = self._model.token_get_text(self._model.token_eos())
        bos_id = self._model.token_bos()
        bos = self._model.token_get_text(bos_id) if bos_id >= 0 else ""
        return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

    def _tokenize(self, text: str, *, special: bool) -> list[int]:
        with self._lock:
            return self._model.tokenize(text.encode(), add_bos=False, special=special)

    def prompt_tokens(self, request: Request) -> list[int]:
        chat, begun = split_reply(request.messages)
        prompt = self._template(messages=[m.model_dump() for m in chat]).prompt
        if begun is not None:  # the template ends with the assistant's header: go on from it
            return self._tokenize(prompt, special=True) + self._tokenize(begun, special=False)
        return self._tokenize(prompt, special=True)

    def _submit(self, request: Request, *, pieces: queue.Queue | None = None) -> Future:
        if self._closed:
            raise ModelError("this model was closed")
        if request.adapter is not None and request.adapter not in self._adapters:
            known = ", ".join(self._adapters) or "none"
            raise ModelError(f"unknown adapter {request.adapter!r}; loaded adapters: {known}")
        grammar = request.grammar
        if grammar is not None:
            check_gbnf(grammar, str(self.path))
        elif request.json_schema is not None:
            grammar = schema_to_gbnf(request.json_schema, str(self.path))
        tokens = self.prompt_tokens(request)
        if len(tokens) + 1 > self._n_ctx_seq:
            raise ModelError(
                f"the prompt has {len(tokens)} tokens; this model's context holds "
                f"{self._n_ctx_seq} per request. Shorten the input."
            )
        job = _Job(request, tokens, Future(), grammar, time.perf_counter(), pieces)
        self._queue.put(job)
        return job.future

    # -- the decoding loop (one thread owns llama.cpp) ---------------------------------

    def _loop(self) -> None:
        while True:
            active = [s for s in self._slots if s.job is not None]
            block = not active and not self._waiting
            try:
                while True:
                    job = self._queue.get(block=block, timeout=None)
                    block = False
                    if job is None:
                        self._fail_all(ModelError("the model was closed"))
                        return
                    self._waiting.append(job)
            except queue.Empty:
                pass
            try:
                self._admit()
                self._step()
            except Exception as exc:  # a broken engine fails its requests, never hangs them
                self._fail_all(
                    exc if isinstance(exc, ModelError) else ModelError(f"llama.cpp: {exc}")
                )

    def _fail_all(self, exc: Exception) -> None:
        for slot in self._slots:
            if slot.job is not None:
                self._finish(slot, error=exc)
        for job in self._waiting:
            if job.pieces is not None:
                job.pieces.put(None)
            job.future.set_exception(exc)
        self._waiting.clear()

    def _admit(self) -> None:
        """Start waiting jobs in free slots: same adapter as the running batch, oldest first."""
        running = [s for s in self._slots if s.job is not None]
        if not self._waiting or (self.deterministic and running):
            return
        if not running:
            adapter = self._waiting[0].request.adapter
            if adapter != self._active_adapter:
                self._set_adapter(adapter)
        for job in list(self._waiting):
            if job.request.adapter != self._active_adapter:
                continue
            slot = self._pick_slot(job.tokens)
            if slot is None:
                break
            self._waiting.remove(job)
            try:
                self._start(slot, job)
            except Exception as exc:  # this request fails; the others go on
                error = exc if isinstance(exc, ModelError) else ModelError(f"llama.cpp: {exc}")
                self._finish(slot, error=error)
            if self.deterministic:
                break  # one at a time

    def _set_adapter(self, name: str | None) -> None:
        c = self._c
        if name is None:
            c.llama_set_adapters_lora(self._ctx.ctx, None, 0, None)
        else:
            adapters = (c.llama_adapter_lora_p_ctypes * 1)(self._adapters[name])
            scales = (ctypes.c_float * 1)(1.0)
            c.llama_set_adapters_lora(self._ctx.ctx, adapters, 1, scales)
        self._active_adapter = name

    def _pick_slot(self, tokens: list[int]) -> _Slot | None:
        free = [s for s in self._slots if s.job is None]
        if not free:
            return None

        def shared(slot: _Slot) -> int:
            if slot.adapter != self._active_adapter:
                return 0
            n = 0
            for a, b in zip(slot.tokens, tokens, strict=False):
                if a != b:
                    break
                n += 1
            return n

        return max(free, key=lambda s: (shared(s), -s.last_used))

    def _start(self, slot: _Slot, job: _Job) -> None:
        c = self._c
        keep = 0
        if slot.adapter == self._active_adapter and not self.deterministic:
            for a, b in zip(slot.tokens, job.tokens, strict=False):
                if a != b:
                    break
                keep += 1
        keep = min(keep, len(job.tokens) - 1)  # decode at least one token to get logits
        if self.deterministic:
            # the whole cache emptied, not only this sequence: in a unified cache another
            # sequence's cells widen the attention window, and the sums round differently
            c.llama_memory_clear(self._memory, True)
            for other in self._slots:
                other.tokens = []
        c.llama_memory_seq_rm(self._memory, slot.seq, keep, -1)
        slot.tokens = slot.tokens[:keep]
        slot.adapter = self._active_adapter
        slot.job = job
        slot.out = bytearray()
        slot.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        slot.text = ""
        slot.stopped_by = None
        slot.generated = 0
        slot.prompt_tokens = len(job.tokens)
        slot.started = time.perf_counter()
        slot.first_token = None
        slot.pending = None
        slot.sampler = self._make_sampler(job)
        # prefill the rest of the prompt in chunks; the last chunk yields the first logits
        rest = job.tokens[keep:]
        for start in range(0, len(rest), self._batch_size):
            chunk = rest[start : start + self._batch_size]
            self._batch_clear()
            for i, token in enumerate(chunk):
                last = start + i == len(rest) - 1
                self._batch_add(token, len(slot.tokens) + i, slot.seq, last)
            self._decode()
            slot.tokens.extend(chunk)
        slot.pending = self._sample(slot, self._batch.n_tokens - 1)

    def _make_sampler(self, job: _Job):
        c = self._c
        r = job.request
        chain = c.llama_sampler_chain_init(c.llama_sampler_chain_default_params())
        if job.grammar is not None:
            g = c.llama_sampler_init_grammar(self._vocab, job.grammar.encode(), b"root")
            if not g:
                c.llama_sampler_free(chain)
                raise GrammarError("llama.cpp rejected the grammar")
            c.llama_sampler_chain_add(chain, g)
        if r.temperature <= 0:
            c.llama_sampler_chain_add(chain, c.llama_sampler_init_greedy())
        else:
            if r.top_p < 1.0:
                c.llama_sampler_chain_add(chain, c.llama_sampler_init_top_p(r.top_p, 1))
            c.llama_sampler_chain_add(chain, c.llama_sampler_init_temp(r.temperature))
            seed = r.seed if r.seed is not None else 0xFFFFFFFF
            c.llama_sampler_chain_add(chain, c.llama_sampler_init_dist(seed))
        return chain

    def _sample(self, slot: _Slot, index: int) -> int:
        token = self._c.llama_sampler_sample(slot.sampler, self._ctx.ctx, index)
        if slot.first_token is None:
            slot.first_token = time.perf_counter() - slot.job.submitted
        return token

    def _step(self) -> None:
        """Take each running slot's sampled token, then decode all of them in one batch."""
        running = [s for s in self._slots if s.job is not None]
        if not running:
            return
        feeding = []
        for slot in running:
            if self._accept(slot, slot.pending):
                feeding.append(slot)
        if not feeding:
            return
        self._batch_clear()
        for slot in feeding:
            self._batch_add(slot.pending, len(slot.tokens), slot.seq, True)
        self._decode()
        for i, slot in enumerate(feeding):
            slot.tokens.append(slot.pending)
            slot.pending = self._sample(slot, i)

    def _accept(self, slot: _Slot, token: int) -> bool:
        """Add a sampled token to the slot's output; False when the slot finished."""
        c = self._c
        request = slot.job.request
        if c.llama_vocab_is_eog(self._vocab, token):
            self._finish(slot, reason="stop")
            return False
        piece = self._piece(token)
        slot.generated += 1
        delta = slot.decoder.decode(piece)
        slot.text += delta
        if request.stop:
            kept, slot.stopped_by = cut_at_stop(slot.text, request.stop)
            if slot.stopped_by is not None:
                delta = delta[: max(0, len(delta) - (len(slot.text) - len(kept)))]
                slot.text = kept
                if delta and slot.job.pieces is not None:
                    slot.job.pieces.put(delta)
                self._finish(slot, reason="stop")
                return False
        if delta and slot.job.pieces is not None:
            slot.job.pieces.put(delta)
        if slot.generated >= request.max_tokens or len(slot.tokens) + 1 >= self._n_ctx_seq:
            self._finish(slot, reason="length")
            return False
        return True

    def _finish(self, slot: _Slot, *, reason: str = "stop", error: Exception | None = None) -> None:
        job = slot.job
        slot.job = None
        slot.last_used = time.perf_counter()
        if slot.sampler is not None:
            self._c.llama_sampler_free(slot.sampler)
            slot.sampler = None
        if job.pieces is not None:
            job.pieces.put(None)
        if error is not None:
            slot.tokens = []
            self._c.llama_memory_seq_rm(self._memory, slot.seq, 0, -1)
            job.future.set_exception(error)
            return
        job.future.set_result(
            Completion(
                text=slot.text,
                prompt_tokens=slot.prompt_tokens,
                completion_tokens=slot.generated,
                seconds=time.perf_counter() - job.submitted,
                first_token_seconds=slot.first_token,
                finish_reason=reason,  # type: ignore[arg-type]
                stopped_by=slot.stopped_by,
                model=self.name,
            )
        )

    def _piece(self, token: int) -> bytes:
        n = self._c.llama_token_to_piece(self._vocab, token, self._piece_buf, 256, 0, False)
        return self._piece_buf.raw[:n] if n > 0 else b""

    # -- llama_batch helpers -----------------------------------------------------------

    def _batch_clear(self) -> None:
        self._batch.n_tokens = 0

    def _batch_add(self, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self._batch
        i = b.n_tokens
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits
        b.n_tokens = i + 1

    def _decode(self) -> None:
        status = self._c.llama_decode(self._ctx.ctx, self._batch)
        if status != 0:
            raise ModelError(f"llama_decode failed with status {status} (context full?)")
