"""Errors a user can cause. Each message says what to do; the CLI prints it without a traceback."""

from collections.abc import Iterator
from contextlib import contextmanager


class StepgraphError(Exception):
    """Base class for every error stepgraph raises on purpose."""


class ConfigError(StepgraphError):
    """A setting, model spec or argument is wrong."""


class ModelError(StepgraphError):
    """A model could not be found, loaded, checked or reached."""


class GrammarError(ModelError):
    """A JSON schema could not be turned into a decoding grammar."""


class InstructionError(StepgraphError):
    """An instruction no plan can come from: empty, binary, or too long for the model."""


class PlanError(StepgraphError):
    """A plan failed validation. `step_ids` names the offending steps."""

    def __init__(self, message: str, *, kind: str, step_ids: list[str] | None = None):
        super().__init__(message)
        self.kind = kind
        self.step_ids = list(step_ids or [])


class ExecutorError(StepgraphError):
    """An executor could not run a step (bad arguments, missing resource)."""


class StoreError(StepgraphError):
    """The memory store cannot be opened or written safely."""


# the optional extras' modules (pyproject.toml: `gpu`, `train`): the CPU path needs none
OPTIONAL = frozenset({"torch", "transformers", "xgrammar", "peft", "gguf"})


@contextmanager
def needs_extra(what: str, extra: str) -> Iterator[None]:
    """Imports inside this block that fail for an optional dependency raise ConfigError
    naming the extra to install, instead of a ModuleNotFoundError traceback."""
    try:
        yield
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if root not in OPTIONAL:
            raise
        raise ConfigError(
            f"{what} needs {root}, which is not installed: pip install 'stepgraph[{extra}]'"
        ) from None
