"""Errors a user can cause. Each message says what to do; the CLI prints it without a traceback."""


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


# what the optional extras bring (pyproject.toml): the CPU path (llama.cpp) needs none of them
EXTRAS = {
    "torch": "gpu",
    "transformers": "gpu",
    "xgrammar": "gpu",
    "peft": "train",
    "gguf": "train",
}


def missing_extra(exc: ModuleNotFoundError, what: str, extra: str) -> StepgraphError | None:
    """The error to raise instead of `exc` when it is an optional dependency that is not
    installed: which extra brings it and how to install it. None for any other module."""
    root = (exc.name or "").split(".")[0]
    if root not in EXTRAS:
        return None
    return ConfigError(
        f"{what} needs {root}, which is not installed: pip install 'stepgraph[{extra}]'"
    )
