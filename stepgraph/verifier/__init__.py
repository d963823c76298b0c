"""Checks on every step result and on the final answer, and the composer that revises it."""

from stepgraph.verifier.choice import Candidate, Choice, choose
from stepgraph.verifier.composer import Composer, Composition
from stepgraph.verifier.constraints import Constraint, Constraints, extract_constraints
from stepgraph.verifier.verdict import Verdict
from stepgraph.verifier.verifier import Verifier

__all__ = [
    "Candidate",
    "Choice",
    "Composer",
    "Composition",
    "Constraint",
    "Constraints",
    "Verdict",
    "Verifier",
    "choose",
    "extract_constraints",
]
