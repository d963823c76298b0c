"""Evol-Instruct for decomposition data: evolve instructions, eliminate the failures, label
the survivors with a teacher's plan.

Each round evolves every member of the pool once, with an operation drawn from a random
generator seeded by (seed, instruction id, round): a stopped run that starts again draws the
same operations and skips every attempt already on disk. As in WizardLM, an evolution that
is eliminated puts its parent back in the pool, so the next round tries it again.

Files: `out` holds the kept examples only (ready for `stepgraph train planner`);
`<out>.eliminated.jsonl` holds every eliminated evolution with its rule; `<out>.summary.json`
is rewritten after each round from both files, so it always describes the whole run.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stepgraph.errors import ConfigError, InstructionError, PlanError
from stepgraph.evolve.operations import (
    EQUALITY_CRITERION,
    OPERATIONS,
    PROMPT_WORDS,
    Operation,
    clean_evolution,
    equality_prompt,
    evolution_prompt,
    parse_equality,
)
from stepgraph.models.base import BackendBase, Message, Request
from stepgraph.planner.plan import REFERENCE, Plan, validate_plan
from stepgraph.planner.planner import Planner
from stepgraph.planner.prompt import (
    SYSTEM,
    OfferedExecutors,
    offered_names,
    planner_descriptions,
    planner_messages,
)

DEFAULT_EXECUTORS = ["llm", "calculator", "python"]
DATA = Path(__file__).parent / "data"
# seeds_a: arithmetic, data, code; seeds_b: writing, knowledge, comparison, multi-turn,
# planning; seeds_c: 26 more of the WizardLM test set's skills (physics to ethics), a
# single question as one step and a question with parts split into them; seeds_d: executors
# described at run time (`sql` with its tables, MCP tools by their servers' words) and
# `docs`, offered with their descriptions, and questions that need none of them kept to one
# llm step. The shipped adapter's record names the files it learned from.
SEED_FILES = tuple(DATA / f"seeds_{part}.jsonl" for part in "abcd")
GOLD_FILE = DATA / "gold.jsonl"  # evaluation only: never a seed, never a few-shot example
# evaluation only, and unlike anything the planner was trained or prompted with
# (benchmarks/heldout_overlap.py): where a planner that fits its own data's style is found out
HELDOUT_FILE = DATA / "heldout.jsonl"
# the same for plans that use executors described at run time (sql, MCP tools, docs)
HELDOUT_TOOLS_FILE = DATA / "heldout_tools.jsonl"
RULES = ("empty", "copies_prompt", "refused", "no_information_gain", "plan_failed")

# WizardLM eliminates an evolution its model answers with a short "sorry"; the teacher here
# sometimes writes that refusal as the rewrite itself ("I'm sorry, but I cannot assist with
# that request."), and a planner taught to plan a refusal learns nothing worth keeping.
_REFUSAL = re.compile(
    r"\bi(?:'m|’m| am)\s+(?:sorry,?\s+but|unable to)\b"
    r"|\bi\s+(?:cannot|can't|can’t|can not)\s+(?:assist|help|comply|process|fulfil|provide)",
    re.I,
)


class Example(BaseModel):
    """An instruction with its decomposition, and where both came from."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    kind: str = ""
    instruction: str = Field(min_length=1)
    executors: OfferedExecutors = Field(default_factory=lambda: list(DEFAULT_EXECUTORS))
    conversation: list[Message] = Field(default_factory=list)
    plan: Plan | None = None
    parent_id: str | None = None
    round: int = 0
    operation: str | None = None
    teacher: str | None = None
    evolve_prompt: str | None = None
    planner_prompt: str | None = None

    @model_validator(mode="after")
    def _plan_fits_executors(self) -> Example:
        names = offered_names(self.executors)
        if self.plan is not None:
            try:
                validate_plan(self.plan, names)
            except PlanError as error:
                raise ValueError(f"the plan is invalid: {error}") from None
        return self


class Elimination(BaseModel):
    """An evolution that was not kept, and the rule that removed it."""

    id: str
    parent_id: str
    round: int
    operation: str
    rule: str
    instruction: str
    detail: str = ""


class EvolveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(default=1, ge=1, le=20)
    operations: list[Operation] = Field(default_factory=lambda: list(OPERATIONS), min_length=1)
    seed: int = 0
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=256, ge=16)
    # Off by default: asked WizardLM's equality question, the 1.5B teacher answered "Equal"
    # to 4 of 4 pairs, 3 of them plainly different (measured 2026-11-25), and two other
    # wordings got "Yes" or "NOTHING" every time. Turn it on for a capable teacher.
    judge: bool = False
    min_new_words: int = Field(default=3, ge=0)
    max_steps: int = Field(default=8, ge=1, le=16)
    workers: int = Field(default=4, ge=1, le=64)


@lru_cache(maxsize=1)
def planner_prompt_id() -> str:
    """A short fingerprint of the planner prompt the labels were made with."""
    text = SYSTEM + json.dumps([m.model_dump() for m in planner_messages("x", executors={})])
    return "few-shot-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def load_seeds(path: Path) -> list[Example]:
    """Seeds from JSONL (`instruction` required; id, kind, executors, conversation and plan
    optional) or from a text file with one instruction per line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no seed file at {path}; pass --seeds with a .jsonl or .txt file")
    seeds: list[Example] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                data = json.loads(line)
                data.setdefault("id", f"seed-{number}")
                seeds.append(Example.model_validate(data))
            except (json.JSONDecodeError, ValidationError, TypeError, AttributeError) as exc:
                reason = (
                    exc.errors()[0]["msg"]
                    if isinstance(exc, ValidationError)
                    else str(exc).splitlines()[0]
                )
                raise ConfigError(
                    f"{path}, line {number}: not a seed record ({reason}); each line must be a "
                    'JSON object with at least "instruction"'
                ) from None
        else:
            seeds.append(Example(id=f"seed-{number}", instruction=line.strip()))
    ids = [s.id for s in seeds]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ConfigError(f"{path}: seed ids appear more than once: {', '.join(repeated[:5])}")
    if not seeds:
        raise ConfigError(f"{path} holds no instructions")
    return seeds


def read_jsonl(path: Path, model: type[BaseModel]) -> list[Any]:
    if not path.exists():
        return []
    return [
        model.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()
    ]


_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "by",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "which",
        "who",
        "what",
        "how",
        "your",
        "you",
        "their",
        "they",
        "he",
        "she",
        "we",
        "i",
        "our",
        "my",
        "me",
    ]
)


def content_words(text: str) -> set[str]:
    """Lowercased words without function words and a plural "s", for information gain."""
    words = re.findall(r"[^\W_]+", text.lower())
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in _STOP}


def elimination_reason(parent: str, child: str, min_new_words: int = 3) -> tuple[str, str] | None:
    """The mechanical elimination rules (no model needed): (rule, detail) or None.

    Rule 1's criterion without a judge: the evolution must bring at least `min_new_words`
    content words its parent does not have; a paraphrase that only reorders is no gain."""
    if not re.search(r"[^\W_]", child):
        return "empty", "no letters or digits"
    lowered = child.lower()
    for words in PROMPT_WORDS:
        if words in lowered:
            return "copies_prompt", f"contains {words!r}"
    if (refusal := _REFUSAL.search(child)) and len(child.split()) < 80:
        return "refused", f"the rewrite refuses: {refusal.group(0)!r}"
    if " ".join(child.split()) == " ".join(parent.split()):
        return "no_information_gain", "identical to its parent"
    new = content_words(child) - content_words(parent)
    if len(new) < min_new_words:
        return (
            "no_information_gain",
            f"{len(new)} new content words (at least {min_new_words} needed): {', '.join(sorted(new))}",
        )
    return None


_REF = r"\{\{\s*s\d+\s*\}\}"
# "{{s1}} - {{s2}}", "{{s1}}*3" or "146 + 312"; not "6/8 time", "3-2" or "12345-6789"
_ARITHMETIC = re.compile(
    rf"{_REF}\s*[-+*/×]\s*(?:{_REF}|\d)|\d\s*[-+*/×]\s*{_REF}|\d\s+[-+*/×]\s+\d"
)


def plan_problems(plan: Plan) -> list[str]:
    """Breaks of the planner's own rules that validation cannot see, so a teacher's label
    that makes them is not taught to the student (part of elimination rule `plan_failed`):
    arithmetic written inside a non-calculator step, a calculator step that is not one
    expression, and a repeated step."""
    from stepgraph.executors.calculator import CalculatorError, evaluate

    problems = []
    seen: set[str] = set()
    for step in plan.steps:
        text = " ".join(step.instruction.lower().split())
        if text in seen:
            problems.append(f"step {step.id} repeats an earlier step")
        seen.add(text)
        if step.executor == "calculator":
            try:
                evaluate(REFERENCE.sub("2", step.instruction))
            except CalculatorError:
                problems.append(f"calculator step {step.id} is not one expression")
        elif step.executor != "python" and _ARITHMETIC.search(step.instruction):
            problems.append(f"step {step.id} does arithmetic in its text")
    return problems


class Evolver:
    """Runs Evol-Instruct rounds with one teacher for rewriting, judging and labelling.

    The teacher may be any backend; `labeler` can be a different (larger) one for the plans.
    """

    def __init__(
        self,
        teacher: BackendBase,
        *,
        config: EvolveConfig | None = None,
        labeler: BackendBase | None = None,
    ):
        self.teacher = teacher
        self.labeler = labeler or teacher
        self.config = config or EvolveConfig()
        self._lock = threading.Lock()

    # -- one attempt ----------------------------------------------------------------------

    def _operation(self, parent: Example, round_: int) -> Operation:
        rng = random.Random(f"{self.config.seed}:{parent.id}:{round_}")
        return rng.choice(self.config.operations)

    def _sample_seed(self, parent: Example, round_: int) -> int:
        digest = hashlib.sha256(f"{self.config.seed}:{parent.id}:{round_}".encode()).digest()
        return int.from_bytes(digest[:4], "big")

    def attempt(self, parent: Example, round_: int) -> Example | Elimination:
        """Evolve `parent` once: rewrite, eliminate, label. Never raises for a bad evolution."""
        operation = self._operation(parent, round_)
        prompt = evolution_prompt(operation, parent.instruction)
        root = parent.id.split("~", 1)[0]
        child_id = f"{root}~{round_}"
        completion = self.teacher.complete(
            Request(
                messages=[Message(role="user", content=prompt)],
                max_tokens=self.config.max_tokens,
                temperature=self.config.temperature,
                seed=self._sample_seed(parent, round_),
            )
        )
        child = clean_evolution(completion.text)

        def eliminated(rule: str, detail: str) -> Elimination:
            return Elimination(
                id=child_id,
                parent_id=parent.id,
                round=round_,
                operation=operation,
                rule=rule,
                instruction=child,
                detail=detail,
            )

        if completion.finish_reason == "length" and len(child.split()) > 3:
            # A rewrite cut off mid-sentence is not an instruction a person would write.
            return eliminated("empty", f"cut off at {self.config.max_tokens} tokens")
        reason = elimination_reason(parent.instruction, child, self.config.min_new_words)
        if reason:
            return eliminated(*reason)
        if self.config.judge:
            verdict = self.teacher.complete(
                Request(
                    messages=[
                        Message(role="user", content=equality_prompt(parent.instruction, child))
                    ],
                    max_tokens=6,
                )
            )
            if parse_equality(verdict.text):
                return eliminated(
                    "no_information_gain",
                    f"judged equal ({EQUALITY_CRITERION}): {verdict.text.strip()[:40]}",
                )
        planner = Planner(
            self.labeler,
            executors=planner_descriptions(parent.executors),
            max_steps=self.config.max_steps,
            few_shot=True,
        )
        try:
            plan = planner.plan(child, conversation=list(parent.conversation))
        except (PlanError, InstructionError) as error:
            return eliminated("plan_failed", str(error)[:300])
        if problems := plan_problems(plan):
            return eliminated("plan_failed", "; ".join(problems)[:300])
        return Example(
            id=child_id,
            kind=parent.kind,
            instruction=child,
            executors=parent.executors,
            conversation=list(parent.conversation),
            plan=Plan(steps=plan.steps),
            parent_id=parent.id,
            round=round_,
            operation=operation,
            teacher=self.labeler.name,
            evolve_prompt=prompt,
            planner_prompt=planner_prompt_id(),
        )

    # -- the run --------------------------------------------------------------------------

    def run(
        self,
        seeds: Iterable[Example],
        out: Path,
        *,
        progress: Callable[[int, int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Evolve for `config.rounds` rounds, appending to `out`; returns the summary.

        `progress(round, done, total)` is called after every attempt of a round."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        eliminated_path = sidecar(out, "eliminated")
        for path in (out, eliminated_path):  # both exist afterwards, even when empty
            path.touch()
        kept = {(e.round, e.parent_id): e for e in read_jsonl(out, Example)}
        dropped = {(e.round, e.parent_id): e for e in read_jsonl(eliminated_path, Elimination)}
        pool = list(seeds)
        for round_ in range(1, self.config.rounds + 1):
            todo = [p for p in pool if (round_, p.id) not in kept and (round_, p.id) not in dropped]
            total = len(pool)
            done = total - len(todo)
            if progress:
                progress(round_, done, total)

            def one(parent: Example, round_: int = round_, total: int = total) -> None:
                nonlocal done
                result = self.attempt(parent, round_)
                with self._lock:
                    if isinstance(result, Example):
                        kept[(round_, parent.id)] = result
                        path = out
                    else:
                        dropped[(round_, parent.id)] = result
                        path = eliminated_path
                    with path.open("a", encoding="utf-8") as f:
                        f.write(result.model_dump_json(exclude_none=True) + "\n")
                    done += 1
                    if progress:
                        progress(round_, done, total)

            with ThreadPoolExecutor(max_workers=self.config.workers) as workers:
                for future in [workers.submit(one, p) for p in todo]:
                    future.result()
            pool = [kept.get((round_, p.id), p) for p in pool]
            summary = summarize(kept.values(), dropped.values())
            sidecar(out, "summary", ".json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary


def sidecar(out: Path, name: str, suffix: str = ".jsonl") -> Path:
    return out.with_name(f"{out.stem}.{name}{suffix}")


def summarize(kept: Iterable[Example], dropped: Iterable[Elimination]) -> dict[str, Any]:
    """Per round: attempts, kept, eliminated by rule, and the shape of the kept plans."""
    rounds: dict[int, dict[str, Any]] = {}

    def row(n: int) -> dict[str, Any]:
        return rounds.setdefault(
            n,
            {
                "round": n,
                "attempts": 0,
                "kept": 0,
                "eliminated": dict.fromkeys(RULES, 0),
                "operations": Counter(),
                "_steps": [],
                "_edges": [],
                "_words": [],
            },
        )

    for example in kept:
        r = row(example.round)
        r["attempts"] += 1
        r["kept"] += 1
        r["operations"][example.operation] += 1
        steps = example.plan.steps if example.plan else []
        r["_steps"].append(len(steps))
        r["_edges"].append(sum(len(s.depends_on) for s in steps))
        r["_words"].append(len(example.instruction.split()))
    for elimination in dropped:
        r = row(elimination.round)
        r["attempts"] += 1
        r["eliminated"][elimination.rule] = r["eliminated"].get(elimination.rule, 0) + 1
        r["operations"][elimination.operation] += 1

    def mean(values: list[int]) -> float | None:
        return round(sum(values) / len(values), 2) if values else None

    table = []
    for n in sorted(rounds):
        r = rounds[n]
        r["operations"] = dict(sorted(r["operations"].items()))
        r["mean_steps"] = mean(r.pop("_steps"))
        r["mean_edges"] = mean(r.pop("_edges"))
        r["mean_instruction_words"] = mean(r.pop("_words"))
        table.append(r)
    totals = {
        "attempts": sum(r["attempts"] for r in table),
        "kept": sum(r["kept"] for r in table),
        "eliminated": {rule: sum(r["eliminated"].get(rule, 0) for r in table) for rule in RULES},
    }
    return {"rounds": table, "total": totals}
