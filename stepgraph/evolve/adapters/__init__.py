"""Planner adapters that ship with stepgraph, one per embedded model they were trained for.

Each `<model>-planner.gguf` is a LoRA in llama.cpp's format, made by `stepgraph train
planner`; `<model>-planner.json` records its training data (with SHA-256), command, seed,
and its scores on the gold set, so anyone can reproduce it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def shipped_planner_adapter(model: Any) -> Path | None:
    """The shipped planner adapter for an engine that can load it, else None.

    Only llama.cpp engines take the GGUF form, and only the embedded model the adapter was
    trained on: a LoRA applied to another base model does damage, not good."""
    from stepgraph.models.llamacpp import LlamaCppBackend

    if not isinstance(model, LlamaCppBackend):
        return None
    path = HERE / f"{model.name}-planner.gguf"
    return path if path.is_file() else None
