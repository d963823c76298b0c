"""Improving the planner from data: Evol-Instruct, LoRA fine-tuning, scoring against gold.

    evolve:   Evolver(teacher).run(load_seeds(path), out)      -> evolved examples (JSONL)
    train:    train_planner(TrainConfig.preset("cpu", ...))    -> adapter/ and adapter.gguf
    evaluate: evaluate_planner(planner, load_gold(GOLD_FILE))  -> node and edge F1

Names are imported on first use: training pulls in torch, which the other two do not need.
"""

from importlib import import_module
from typing import TYPE_CHECKING

_EXPORTS = {
    "Evolver": "stepgraph.evolve.evolve",
    "EvolveConfig": "stepgraph.evolve.evolve",
    "Example": "stepgraph.evolve.evolve",
    "load_seeds": "stepgraph.evolve.evolve",
    "SEED_FILES": "stepgraph.evolve.evolve",
    "GOLD_FILE": "stepgraph.evolve.evolve",
    "TrainConfig": "stepgraph.evolve.train",
    "TrainResult": "stepgraph.evolve.train",
    "train_planner": "stepgraph.evolve.train",
    "GoldItem": "stepgraph.evolve.evaluate",
    "ItemResult": "stepgraph.evolve.evaluate",
    "PlannerReport": "stepgraph.evolve.evaluate",
    "PlanScore": "stepgraph.evolve.evaluate",
    "comparison_png": "stepgraph.evolve.evaluate",
    "comparison_table": "stepgraph.evolve.evaluate",
    "evaluate_planner": "stepgraph.evolve.evaluate",
    "load_gold": "stepgraph.evolve.evaluate",
    "score_plan": "stepgraph.evolve.evaluate",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from stepgraph.evolve.evaluate import (
        GoldItem,
        ItemResult,
        PlannerReport,
        PlanScore,
        comparison_png,
        comparison_table,
        evaluate_planner,
        load_gold,
        score_plan,
    )
    from stepgraph.evolve.evolve import (
        GOLD_FILE,
        SEED_FILES,
        EvolveConfig,
        Evolver,
        Example,
        load_seeds,
    )
    from stepgraph.evolve.train import TrainConfig, TrainResult, train_planner


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stepgraph.evolve' has no attribute {name!r}")
