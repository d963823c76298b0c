"""Instruction -> Plan: prompt, grammar-constrained decoding, validation, one repair."""

from stepgraph.planner.plan import Plan, Step, validate_plan
from stepgraph.planner.planner import Planner, check_instruction

__all__ = ["Plan", "Planner", "Step", "check_instruction", "validate_plan"]
