"""A verdict: one check's outcome on one result, kept with the step in the store."""

from __future__ import annotations

from pydantic import BaseModel


class Verdict(BaseModel):
    """`passed=None` is "no verdict" (a judge that answered garbage, a constraint nobody could
    parse): it never counts as a pass and never as a failure."""

    check: str
    passed: bool | None
    evidence: str = ""
    criterion: str = ""  # what an LLM judge was asked to decide, written down with its verdict

    def as_dict(self) -> dict:
        """The plain form the runtime passes between LangGraph tasks and stores."""
        evidence = self.evidence
        if self.criterion:
            evidence = f"criterion: {self.criterion}; {evidence}" if evidence else self.criterion
        return {"check": self.check, "passed": self.passed, "evidence": evidence}


def failures(verdicts: list[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if v.passed is False]


def feedback(verdicts: list[Verdict]) -> str:
    """Failed checks written as the feedback a retry or a revision gets."""
    return "\n".join(f"- {v.check}: {v.evidence or 'failed'}" for v in failures(verdicts))
