"""Improving the planner from data: gold decompositions and scoring planners against them."""

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

__all__ = [
    "GoldItem",
    "ItemResult",
    "PlanScore",
    "PlannerReport",
    "comparison_png",
    "comparison_table",
    "evaluate_planner",
    "load_gold",
    "score_plan",
]
