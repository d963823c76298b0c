"""Settings, from (lowest to highest) defaults, `stepgraph.toml`, and STEPGRAPH_* variables.

One place to look: every setting a user can change is a field here.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stepgraph.errors import ConfigError

ENV_PREFIX = "STEPGRAPH_"


class Settings(BaseModel):
    # a misspelt key (max_step) is an error, not a setting that silently does nothing
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field(
        default="qwen2.5-coder-0.5b", description="model spec (see `stepgraph model --help`)"
    )
    planner_adapter: str | None = Field(
        default="auto",
        description='planner LoRA: "auto" (the one shipped for the model, if any), "none", or a path',
    )
    home: str | None = Field(default=None, description="directory of the memory store")
    store: str | None = Field(
        default=None,
        description="the memory store: a file, or a postgresql:// URL for a store shared by "
        "many machines (default: stepgraph.db in home)",
    )
    mcp: list[dict[str, Any]] = Field(
        default_factory=list,
        description="MCP servers whose tools become executors: [[stepgraph.mcp]] tables "
        "with name and command (a list) or url",
    )
    threads: int | None = Field(
        default=None, gt=0, description="CPU threads for llama.cpp (default: every core)"
    )
    context: int | None = Field(
        default=None,
        gt=0,
        description="context length for llama.cpp, shared by the requests decoded together "
        "(default 32768)",
    )
    max_steps: int = Field(default=12, gt=0, description="most steps a plan may have")
    max_seconds: float = Field(default=600.0, gt=0, description="budget of one run in seconds")
    max_tokens: int = Field(
        default=20000, gt=0, description="budget of one run in generated tokens"
    )
    deterministic: bool = Field(
        default=False,
        description="decode each request alone from an empty cache (llama.cpp): the same "
        "instruction gives the same plan and answer, more slowly",
    )
    plan: Literal["needed", "always"] = Field(
        default="needed",
        description="'needed': plan only where code does not confirm the model's own answer "
        "(a single question's agreed number, a form that passes its checks); 'always'",
    )

    def engine_options(self) -> dict:
        """What `load_model` takes from the settings: deterministic decoding, context and
        threads, for whichever model the spec names."""
        return {
            "deterministic": self.deterministic,
            "context": self.context,
            "threads": self.threads,
        }


def store_path(settings: Settings) -> str | Path | None:
    """The memory store the settings name: `store` (a path or a postgresql:// URL, also
    STEPGRAPH_STORE), else stepgraph.db in `home` (or STEPGRAPH_HOME), else None: the
    store's own default. `stepgraph.memory.open_store` opens any of them."""
    if settings.store:
        return settings.store
    return Path(settings.home).expanduser() / "stepgraph.db" if settings.home else None


def config_file() -> Path | None:
    """`$STEPGRAPH_CONFIG`, else ./stepgraph.toml, else none."""
    if env := os.environ.get(ENV_PREFIX + "CONFIG"):
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"STEPGRAPH_CONFIG points to {path}, which is not a file")
        return path
    local = Path("stepgraph.toml")
    return local if local.is_file() else None


def load_settings(path: Path | None = None, **overrides: object) -> Settings:
    data: dict[str, object] = {}
    path = path or config_file()
    if path is not None:
        try:
            parsed = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not UTF-8 text: save it as UTF-8.") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}. Fix the file or remove it.") from None
        if other := sorted(set(parsed) - {"stepgraph"}):
            raise ConfigError(
                f"{path} has {', '.join(repr(k) for k in other)} outside [stepgraph]; "
                "every setting goes under a [stepgraph] table"
            )
        table = dict(parsed.get("stepgraph", {}))
        for key in ("home", "store"):  # a relative folder or file: relative to the file
            value = table.get(key)
            if (
                isinstance(value, str)
                and "://" not in value
                and not Path(value).expanduser().is_absolute()
            ):
                table[key] = str(path.resolve().parent / value)  # not to the cwd
        data.update(table)
    for name in Settings.model_fields:
        if (value := os.environ.get(ENV_PREFIX + name.upper())) is not None:
            data[name] = value
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(
            f"bad setting ({problems}). Check stepgraph.toml and STEPGRAPH_* variables."
        ) from None
