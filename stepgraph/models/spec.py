"""Turn a model spec string into a backend.

A spec is one of: an embedded name (`qwen2.5-coder-0.5b`), a path to a `.gguf` file
(llama.cpp on CPU), `hf:<dir>` or a Hugging Face directory (transformers, GPU first),
`openai:<base_url>#<model>` (any OpenAI-compatible server) or `scripted:` for tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stepgraph.errors import ConfigError, ModelError, needs_extra
from stepgraph.models import embedded
from stepgraph.models.base import BackendBase

SPEC_HELP = (
    "a model spec is an embedded name ("
    + ", ".join(embedded.EMBEDDED)
    + "), a path to a .gguf file, a Hugging Face model directory (or hf:<dir>), "
    "or openai:<base_url>#<model>"
)


def load_model(
    spec: str,
    *,
    adapters: dict[str, str] | None = None,
    deterministic: bool = False,
    context: int | None = None,
    threads: int | None = None,
    **options: Any,
) -> BackendBase:
    """Build the backend a spec names. Options go to the backend's constructor.
    `deterministic` (llama.cpp only): each request decoded alone from an empty cache, so
    the same instruction gives the same plan and answer; a server or transformers decides
    its own batching, so it is refused there rather than silently ignored. `context` and
    `threads` (llama.cpp only; None: the engine's defaults) are ignored elsewhere, since
    the settings that give them apply to whichever model is chosen."""
    spec = spec.strip()
    if not spec:
        raise ConfigError(f"empty model spec; {SPEC_HELP}")
    path = Path(spec.removeprefix("hf:")).expanduser()
    local = spec in embedded.EMBEDDED or (not spec.startswith("hf:") and path.suffix == ".gguf")
    if deterministic and not (local or spec.startswith("scripted:")):
        raise ConfigError(
            f"deterministic decoding is for the llama.cpp engine (an embedded name or a .gguf "
            f"file), not {spec!r}; turn it off or use a local model"
        )
    if local:
        options["deterministic"] = deterministic
        options.update({k: v for k, v in (("n_ctx", context), ("threads", threads)) if v})
    if spec.startswith("openai:"):
        from stepgraph.models.openai import OpenAIBackend

        rest = spec.removeprefix("openai:")
        base_url, _, model = rest.partition("#")
        if not base_url.startswith(("http://", "https://")) or not model:
            raise ConfigError(
                f"bad OpenAI spec {spec!r}; write openai:http://host:port/v1#model-name"
            )
        return OpenAIBackend(base_url, model, **options)
    if spec.startswith("scripted:"):
        from stepgraph.models.scripted import ScriptedBackend

        return ScriptedBackend(responder=lambda request: "")
    if spec in embedded.EMBEDDED:
        from stepgraph.models.llamacpp import LlamaCppBackend

        return LlamaCppBackend(embedded.model_path(spec), adapters=adapters, name=spec, **options)
    hf = spec.startswith("hf:")
    if not hf and path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"no model file at {path}; check the path")
        from stepgraph.models.llamacpp import LlamaCppBackend

        return LlamaCppBackend(path, adapters=adapters, **options)
    if path.is_dir() or (hf and path.suffix == ".gguf"):
        with needs_extra("a Hugging Face model (transformers)", "gpu"):
            from stepgraph.models.transformers import TransformersBackend
        return TransformersBackend(path, adapters=adapters, **options)
    raise ConfigError(f"unknown model {spec!r}: {SPEC_HELP}")
