"""Write a peft LoRA adapter as a llama.cpp GGUF LoRA adapter.

The runtime's CPU engine is llama.cpp, which takes adapters only as GGUF files, and the
conversion script that ships with llama.cpp (`convert_lora_to_gguf.py`) is not installed
with the `gguf` package. This module writes the same layout with the `gguf` package:

* metadata: `general.architecture` (llama.cpp refuses an adapter whose architecture differs
  from the model's), `general.type = "adapter"`, `adapter.type = "lora"`,
  `adapter.lora.alpha` (llama.cpp scales each product by alpha / rank, like peft);
* tensors: for each adapted weight, its llama.cpp name (`blk.0.attn_q.weight`, from
  `gguf.get_tensor_name_map`) with `.lora_a` and `.lora_b` appended. peft stores
  A as (rank, in) and B as (out, rank) in torch order; GGUF lists dimensions the other way
  round, so A lands as ne = [in, rank] and B as ne = [rank, out], which is what llama.cpp
  checks (`model.ne[0] == a.ne[0]`, `model.ne[1] == b.ne[1]`, `a.ne[1] == b.ne[0]`) and
  computes as B·(A·x). No transpose is needed.

Only architectures whose llama.cpp weights are the Hugging Face weights unpermuted are
accepted (Qwen2): for Llama, llama.cpp's converter permutes the q/k rows for its rotary
layout, and an adapter would need the same permutation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np

from stepgraph.errors import ModelError

# Hugging Face model_type -> gguf architecture name; each checked against llama.cpp's layout.
_SUPPORTED_ARCHS = {"qwen2": "QWEN2"}
_PEFT_PREFIX = "base_model.model."


def _gguf_arch(model_type: str):
    import gguf

    arch = _SUPPORTED_ARCHS.get(model_type)
    if arch is None:
        raise ModelError(
            f"cannot export a LoRA for model type {model_type!r} to GGUF; supported: "
            f"{', '.join(_SUPPORTED_ARCHS)}"
        )
    return gguf.MODEL_ARCH[arch]


def lora_tensor_names(peft_keys: list[str], *, model_type: str, n_layers: int) -> dict[str, str]:
    """peft state-dict key -> GGUF tensor name (`...lora_A.weight` -> `blk.N.x.weight.lora_a`).

    Raises ModelError for a key that is not a LoRA A/B matrix of a mapped weight (an adapted
    embedding, a trained bias or a `modules_to_save` copy cannot be expressed in this format).
    """
    import gguf

    tensor_map = gguf.get_tensor_name_map(_gguf_arch(model_type), n_layers)
    names = {}
    for key in peft_keys:
        if key.endswith(".lora_A.weight"):
            suffix, hf_name = ".lora_a", key.removesuffix(".lora_A.weight") + ".weight"
        elif key.endswith(".lora_B.weight"):
            suffix, hf_name = ".lora_b", key.removesuffix(".lora_B.weight") + ".weight"
        else:
            raise ModelError(
                f"the adapter holds {key!r}, which is not a LoRA A/B matrix; a llama.cpp "
                "LoRA adapter can carry only those (train without modules_to_save or bias)"
            )
        hf_name = hf_name.removeprefix(_PEFT_PREFIX)
        gguf_name = tensor_map.get_name(hf_name, try_suffixes=(".weight",))
        if gguf_name is None:
            raise ModelError(
                f"no llama.cpp tensor corresponds to {hf_name!r} (from {key!r}); adapt only "
                "the attention and MLP projections"
            )
        names[key] = gguf_name + suffix
    return names


def _check_adapter_config(config: dict) -> None:
    """Refuse peft features that the GGUF LoRA format has no place for, with the reason."""
    problems = []
    if config.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type is {config.get('peft_type')} (only LORA)")
    if config.get("use_rslora"):
        problems.append("use_rslora (llama.cpp scales by alpha / rank)")
    if config.get("use_dora"):
        problems.append("use_dora (llama.cpp has no DoRA)")
    if config.get("alpha_pattern"):
        problems.append("alpha_pattern (llama.cpp takes one alpha per adapter)")
    if config.get("fan_in_fan_out"):
        problems.append("fan_in_fan_out (Conv1D layers)")
    if config.get("bias", "none") != "none":
        problems.append(f"bias={config['bias']!r}")
    if config.get("modules_to_save"):
        problems.append("modules_to_save")
    if problems:
        raise ModelError("cannot export this adapter to GGUF: " + "; ".join(problems))


def write_gguf_lora(
    adapter_dir: Path,
    out_path: Path,
    *,
    model_type: str,
    n_layers: int,
    dtype: Literal["f32", "f16"] = "f32",
    name: str | None = None,
) -> Path:
    """Write the peft adapter saved in `adapter_dir` as a GGUF LoRA file at `out_path`.

    `model_type` and `n_layers` come from the base model's config (they pick the tensor
    names). float32 is the default because the adapter is small (about 35 MB for r=16 on
    the 0.5B model) and llama.cpp then applies exactly the trained numbers. The file is
    written under a temporary name and renamed, so a crash never leaves a half adapter.
    """
    import gguf
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    weights_path = adapter_dir / "adapter_model.safetensors"
    if not config_path.is_file() or not weights_path.is_file():
        raise ModelError(
            f"{adapter_dir} is not a saved peft adapter (needs adapter_config.json and "
            "adapter_model.safetensors)"
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    _check_adapter_config(config)
    state = load_file(str(weights_path))
    names = lora_tensor_names(sorted(state), model_type=model_type, n_layers=n_layers)
    pairs = {n.rsplit(".", 1)[0] for n in names.values()}
    for base in sorted(pairs):
        if f"{base}.lora_a" not in names.values() or f"{base}.lora_b" not in names.values():
            raise ModelError(f"the adapter has only one of the A/B matrices for {base}")

    np_dtype = np.float32 if dtype == "f32" else np.float16
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".partial")
    writer = gguf.GGUFWriter(str(tmp), arch=gguf.MODEL_ARCH_NAMES[_gguf_arch(model_type)])
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        if name:
            writer.add_name(name)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
        for key in sorted(state, key=lambda k: names[k]):
            tensor = state[key].detach().to("cpu").float().contiguous().numpy().astype(np_dtype)
            writer.add_tensor(names[key], tensor)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.replace(out_path)
    finally:
        writer.close()  # a second close is a no-op
        tmp.unlink(missing_ok=True)
    return out_path
