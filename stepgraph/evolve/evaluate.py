"""Score a planner against gold decompositions, the way TaskBench and WorFBench do.

A predicted plan and a gold plan are compared as graphs. Step ids are arbitrary labels, so
they never count: steps are matched one-to-one by what their instructions say, then node F1
says how many steps the planner got right and edge F1 how many of the gold dependencies it
has between the matched steps. Over a gold set this gives a `PlannerReport`; several reports
give a Markdown table and a bar chart, so planners (base model, adapter, with or without the
few-shot examples) are compared on the same items with the same numbers.
"""

from __future__ import annotations

import contextlib
import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stepgraph.errors import ConfigError, ModelError, PlanError, StepgraphError
from stepgraph.models.base import Message
from stepgraph.planner.plan import REFERENCE, Plan, Step, validate_plan
from stepgraph.planner.planner import Planner
from stepgraph.planner.prompt import OfferedExecutors, offered_names, planner_descriptions

Kind = Literal[
    "arithmetic",
    "data",
    "writing",
    "comparison",
    "code",
    "multi_turn",
    "knowledge",
    "planning",
]


class GoldItem(BaseModel):
    """One gold record: a task, the executors it may use, and its reference plan.

    Checked as strictly as the planner's own output (the plan must validate against the
    item's executors), because a gold plan no valid prediction can equal would mark every
    planner down for a mistake in the data.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    kind: Kind
    instruction: str = Field(min_length=1)
    executors: OfferedExecutors
    conversation: list[Message] = Field(default_factory=list)
    plan: Plan

    @model_validator(mode="after")
    def _plan_fits_executors(self) -> GoldItem:
        names = offered_names(self.executors)
        try:
            validate_plan(self.plan, names)
        except PlanError as error:
            raise ValueError(f"the gold plan is invalid: {error}") from None
        return self


def load_gold(path: str | Path) -> list[GoldItem]:
    """Read a gold JSONL file; any bad line stops the load with its line number and why,
    since scoring against a silently shortened gold set would give numbers that look fine."""
    path = Path(path)
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "missing"
        raise ConfigError(f"the gold file {path} is {what}; pass a JSONL file of gold items")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the gold file {path}: {exc}") from None
    items: list[GoldItem] = []
    first_line: dict[str, int] = {}
    # split on "\n" only: str.splitlines also splits on U+2028, which JSON strings may hold raw.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
        try:
            item = GoldItem.model_validate(data)
        except ValidationError as exc:
            label = f" (id {data['id']!r})" if isinstance(data.get("id"), str) else ""
            raise ConfigError(f"{where}{label}: {_describe(exc)}") from None
        if item.id in first_line:
            raise ConfigError(
                f"{where}: id {item.id!r} is already used on line {first_line[item.id]}; "
                "every item needs its own id"
            )
        first_line[item.id] = number
        items.append(item)
    if not items:
        raise ConfigError(f"the gold file {path} has no items")
    return items


def _describe(error: ValidationError, limit: int = 3) -> str:
    """Pydantic's errors as one line: where in the record, and what is wrong there."""
    parts = []
    for detail in error.errors()[:limit]:
        where = ".".join(str(p) for p in detail["loc"])
        message = detail["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    more = len(error.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


# --- similarity and matching --------------------------------------------------------------------

_REF_TOKEN = "__ref__"
# Function words carry no task content but are a third of a typical step; left in, "Find
# the population of France." and "Find the GDP of Germany." would share enough to match.
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "and",
        "or",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "be",
        "it",
        "its",
        "this",
        "that",
    ]
)
# Numbers keep their decimals and arithmetic operators stay tokens: they are all a calculator
# step has, and "1240 * 0.25" must not equal "1240 + 0.25" or "1240 * 25".
_TOKEN = re.compile(r"\d+(?:\.\d+)?|\w+|\*\*|//|[-+*/%]")


def normalise(text: str) -> list[str]:
    """Instruction -> comparable tokens: lowercase, every `{{sN}}` one placeholder (ids are
    arbitrary, so `{{s1}}` and `{{a}}` must compare equal), punctuation and function words
    dropped, arithmetic operators and numbers kept."""
    text = REFERENCE.sub(f" {_REF_TOKEN} ", text).lower()
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 1,240 -> 1240
    text = re.sub(r"(?<=[^\W\d_])-(?=[^\W\d_])", " ", text)  # a hyphen in a word is no minus
    return [token for token in _TOKEN.findall(text) if token not in _STOPWORDS]


def _token_f1(a: list[str], b: list[str]) -> float:
    if not a and not b:
        return 1.0
    overlap = sum((Counter(a) & Counter(b)).values())
    return 2 * overlap / (len(a) + len(b))


def text_similarity(a: str, b: str) -> float:
    """Bag-of-tokens F1 (as in SQuAD) of the normalised instructions, in [0, 1].

    Chosen over difflib's ratio because it ignores word order (a paraphrase that moves a
    clause is still the same step) and reads directly: 0.5 means about half the content
    words are shared. A bag, not a set, so `{{s1}} + {{s2}} + {{s3}}` differs from
    `{{s1}} + {{s2}}`.
    """
    return _token_f1(normalise(a), normalise(b))


def step_similarity(gold: Step, predicted: Step, *, executor_mismatch: float = 0.0) -> float:
    """Text similarity, multiplied by `executor_mismatch` when the executors differ.

    The default 0.0 makes the executor part of a step's identity, as the tool name is in
    TaskBench's node F1: "count the words" run by the llm instead of python is a different,
    usually wrong, step. Pass 1.0 to match on text alone, or a value between for partial
    credit (with 0.5 and the default threshold only an identical text still matches).
    """
    factor = 1.0 if gold.executor == predicted.executor else executor_mismatch
    return text_similarity(gold.instruction, predicted.instruction) * factor


class Match(BaseModel):
    """A gold step and the predicted step it was matched to."""

    gold: str
    predicted: str
    similarity: float


class PlanScore(BaseModel):
    """How close one predicted plan is to its gold plan. All scores are in [0, 1].

    `step_count_error` is |predicted steps - gold steps|, and None when there is no plan,
    because 0 would read as a perfect count.
    """

    valid: bool
    node_precision: float = 0.0
    node_recall: float = 0.0
    node_f1: float = 0.0
    edge_precision: float = 0.0
    edge_recall: float = 0.0
    edge_f1: float = 0.0
    step_count_error: int | None = None
    gold_steps: int
    predicted_steps: int = 0
    matches: list[Match] = Field(default_factory=list)


_SCALE = 10_000  # similarities are compared to 4 decimals, so the matcher works in integers


def _contexts(plan: Plan, tokens: list[list[str]]) -> list[list[str]]:
    """For each step, the tokens of the steps it depends on: what it consumes."""
    position = {step.id: i for i, step in enumerate(plan.steps)}
    return [
        [t for dep in step.depends_on if dep in position for t in tokens[position[dep]]]
        for step in plan.steps
    ]


def match_steps(
    predicted: Plan, gold: Plan, *, threshold: float = 0.5, executor_mismatch: float = 0.0
) -> dict[int, tuple[int, float]]:
    """Gold step index -> (predicted step index, similarity), one-to-one.

    A maximum-weight bipartite matching over the pairs whose `step_similarity` is at least
    `threshold`, so the total similarity of the matched pairs is as large as it can be and
    no gold step is spent on a pair that would not count anyway. networkx's blossom
    matching does this exactly (scipy's linear_sum_assignment would need scipy, which
    stepgraph does not depend on); weights are integers because its float mode may return
    a slightly worse matching.

    Ties are common: after `{{sN}}` becomes one placeholder, `{{s1}} * 2` and `{{s2}} * 2`
    read the same. They are broken, in this order, by the similarity of what the two steps
    consume (the instructions of their dependencies) and then by how close their relative
    positions are, so equal structures match as they correspond instead of at random, which
    would cost edge F1 for nothing. The tie-breakers never outweigh a similarity difference.
    """
    g_steps, p_steps = gold.steps, predicted.steps
    if not g_steps or not p_steps:
        return {}
    g_tokens = [normalise(s.instruction) for s in g_steps]
    p_tokens = [normalise(s.instruction) for s in p_steps]
    g_context, p_context = _contexts(gold, g_tokens), _contexts(predicted, p_tokens)
    # Lexicographic weights (similarity, context, position) as one integer: the lower levels
    # of a whole matching sum to less than one unit of the level above.
    base = (_SCALE + 1) * (min(len(g_steps), len(p_steps)) + 1)
    graph = nx.Graph()
    similarity: dict[tuple[int, int], float] = {}
    for i, g in enumerate(g_steps):
        for j, p in enumerate(p_steps):
            factor = 1.0 if g.executor == p.executor else executor_mismatch
            sim = _token_f1(g_tokens[i], p_tokens[j]) * factor
            if sim < threshold:
                continue
            context = _token_f1(g_context[i], p_context[j])
            closeness = 1 - abs(i / max(1, len(g_steps) - 1) - j / max(1, len(p_steps) - 1))
            levels = [round(x * _SCALE) for x in (sim, context, closeness)]
            weight = (levels[0] * base + levels[1]) * base + levels[2]
            graph.add_edge(("g", i), ("p", j), weight=weight)
            similarity[i, j] = sim
    out: dict[int, tuple[int, float]] = {}
    for a, b in nx.max_weight_matching(graph):
        (_, i), (_, j) = (a, b) if a[0] == "g" else (b, a)
        out[i] = (j, similarity[i, j])
    return out


def _edges(plan: Plan) -> set[tuple[int, int]]:
    position = {step.id: i for i, step in enumerate(plan.steps)}
    return {
        (position[dep], i)
        for i, step in enumerate(plan.steps)
        for dep in step.depends_on
        if dep in position
    }


def _prf(hits: int, predicted: int, gold: int) -> tuple[float, float, float]:
    precision = hits / predicted if predicted else 0.0
    recall = hits / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score_plan(
    predicted: Plan | None,
    gold: Plan,
    *,
    threshold: float = 0.5,
    executor_mismatch: float = 0.0,
) -> PlanScore:
    """Node and edge precision/recall/F1 of a predicted plan against the gold plan.

    Nodes: a matched pair (see `match_steps`) is a hit; precision is hits over predicted
    steps, recall hits over gold steps. Edges: a gold edge a -> b is recovered when a and b
    are matched and the prediction has the edge m(a) -> m(b); by the one-to-one matching
    each recovered gold edge is a distinct correct predicted edge, so precision is
    recovered over predicted edges.

    Empty edge sets (in valid plans, exactly the one-step plans): when both plans have no
    edges, edge precision, recall and F1 are 1.0 if a pair matched (there is nothing to
    recover and nothing was wrongly added) and 0.0 if not, because structure only counts
    between steps that correspond, as for every other edge. When only one side has edges,
    they are all 0.0: every edge is either missed or wrong.

    `predicted=None` (the planner gave no valid plan) scores 0 everywhere with
    valid=False. A given Plan is taken as valid; validation is the planner's job.
    """
    if not 0 < threshold <= 1:
        raise ConfigError(f"threshold must be in (0, 1], not {threshold}")
    if not 0 <= executor_mismatch <= 1:
        raise ConfigError(f"executor_mismatch must be in [0, 1], not {executor_mismatch}")
    if predicted is None:
        return PlanScore(valid=False, gold_steps=len(gold.steps))
    matched = match_steps(predicted, gold, threshold=threshold, executor_mismatch=executor_mismatch)
    node = _prf(len(matched), len(predicted.steps), len(gold.steps))
    gold_edges, predicted_edges = _edges(gold), _edges(predicted)
    if not gold_edges or not predicted_edges:
        value = 1.0 if not gold_edges and not predicted_edges and matched else 0.0
        edge = (value, value, value)
    else:
        recovered = sum(
            1
            for a, b in gold_edges
            if a in matched and b in matched and (matched[a][0], matched[b][0]) in predicted_edges
        )
        edge = _prf(recovered, len(predicted_edges), len(gold_edges))
    return PlanScore(
        valid=True,
        node_precision=node[0],
        node_recall=node[1],
        node_f1=node[2],
        edge_precision=edge[0],
        edge_recall=edge[1],
        edge_f1=edge[2],
        step_count_error=abs(len(predicted.steps) - len(gold.steps)),
        gold_steps=len(gold.steps),
        predicted_steps=len(predicted.steps),
        matches=[
            Match(gold=gold.steps[i].id, predicted=predicted.steps[j].id, similarity=sim)
            for i, (j, sim) in sorted(matched.items())
        ],
    )


# --- evaluating a planner -----------------------------------------------------------------------


class ItemResult(BaseModel):
    """One gold item's outcome: also the row written to the results file, so a resumed run
    reads back exactly what it wrote."""

    id: str
    kind: str
    valid: bool
    error: str | None = None
    seconds: float
    attempts: int | None = None
    score: PlanScore
    plan: Plan | None = None


class Summary(BaseModel):
    """Means over a set of items. Failed plans count as 0 in every score, so a planner that
    often fails cannot look good on the few plans it produced; the step-count error is the
    mean over valid plans only (None when there are none), since a missing plan has no count.
    """

    items: int
    validity: float
    node_precision: float
    node_recall: float
    node_f1: float
    edge_f1: float
    step_count_error: float | None
    seconds_per_plan: float


class PlannerReport(Summary):
    """The summary over all items, the same per kind, and every item's result."""

    by_kind: dict[str, Summary]
    results: list[ItemResult]


def _summarise(results: list[ItemResult]) -> Summary:
    counts = [r.score.step_count_error for r in results if r.score.step_count_error is not None]
    return Summary(
        items=len(results),
        validity=statistics.fmean(r.valid for r in results),
        node_precision=statistics.fmean(r.score.node_precision for r in results),
        node_recall=statistics.fmean(r.score.node_recall for r in results),
        node_f1=statistics.fmean(r.score.node_f1 for r in results),
        edge_f1=statistics.fmean(r.score.edge_f1 for r in results),
        step_count_error=statistics.fmean(counts) if counts else None,
        seconds_per_plan=statistics.fmean(r.seconds for r in results),
    )


def _read_done(out: Path) -> dict[str, ItemResult]:
    """Rows an earlier run already wrote to `out`, by item id.

    A run killed mid-write leaves a partial last line; it is cut off here (and so redone),
    since appending after it would corrupt the next row too. A bad line anywhere else is an
    error: it means the file is not what this function writes.
    """
    if not out.exists():
        return {}
    if not out.is_file():
        raise ConfigError(f"the results file {out} is not a file")
    raw = out.read_bytes()
    lines = raw.split(b"\n")
    tail = lines.pop()  # what follows the last newline: empty when the file ends cleanly
    done: dict[str, ItemResult] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            result = ItemResult.model_validate_json(line)
        except ValidationError as exc:
            raise ConfigError(
                f"{out}, line {number}: not a result row ({_describe(exc, 1)}); "
                "fix or delete that line, or write the results to a new file"
            ) from None
        done[result.id] = result
    if tail.strip():
        try:
            result = ItemResult.model_validate_json(tail)
        except ValidationError:
            with out.open("r+b") as handle:
                handle.truncate(len(raw) - len(tail))
        else:
            done[result.id] = result
            with out.open("ab") as handle:
                handle.write(b"\n")
    return done


def _evaluate_one(
    planner: Planner, item: GoldItem, threshold: float, executor_mismatch: float
) -> ItemResult:
    planner.executors = planner_descriptions(item.executors)
    planning = planner.stream(item.instruction, conversation=list(item.conversation) or None)
    plan: Plan | None = None
    error: str | None = None
    started = time.perf_counter()
    try:
        for _ in planning:
            pass
        plan = planning.plan
    except ModelError:
        # The model is missing or unreachable: no fault of the planner's, and recording it
        # would make a resumed run skip the item for good. Stop; the resume picks it up.
        raise
    except StepgraphError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    seconds = time.perf_counter() - started
    return ItemResult(
        id=item.id,
        kind=item.kind,
        valid=plan is not None,
        error=error,
        seconds=round(seconds, 4),
        attempts=planning.stats.get("attempts"),
        score=score_plan(plan, item.plan, threshold=threshold, executor_mismatch=executor_mismatch),
        plan=plan,
    )


def evaluate_planner(
    planner: Planner,
    items: Iterable[GoldItem],
    *,
    out: Path | None = None,
    progress: Callable[[ItemResult, int, int], None] | None = None,
    threshold: float = 0.5,
    executor_mismatch: float = 0.0,
) -> PlannerReport:
    """Plan every gold item and score it; the report covers all items, resumed ones too.

    Each item offers its own executors, so the planner's `executors` are set per item (and
    restored afterwards). A plan that fails (PlanError, InstructionError, any other
    stepgraph error except ModelError) is recorded as invalid and scores 0; a ModelError
    stops the run, as does any non-stepgraph exception.

    With `out`, one JSON line per item (an `ItemResult`) is appended and flushed as soon as
    the item is done, and items already in the file are not planned again (their stored plans
    are scored afresh): a long run on a small model can be stopped and continued. Use one
    file per planner. `progress(result,
    done, total)` is called after each newly planned item.
    """
    items = list(items)
    if not items:
        raise ConfigError("there are no gold items to evaluate")
    ids = Counter(item.id for item in items)
    repeated = sorted(i for i, n in ids.items() if n > 1)
    if repeated:
        raise ConfigError(f"gold item ids are repeated: {', '.join(repeated)}")
    done = _read_done(out) if out is not None else {}
    # Resumed rows are rescored from their stored plans, so a report never mixes scores made
    # with other settings or an older version of the gold plan.
    results = {
        item.id: done[item.id].model_copy(
            update={
                "score": score_plan(
                    done[item.id].plan,
                    item.plan,
                    threshold=threshold,
                    executor_mismatch=executor_mismatch,
                )
            }
        )
        for item in items
        if item.id in done
    }
    saved = planner.executors
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            out.open("a", encoding="utf-8") if out is not None else contextlib.nullcontext()
        ) as handle:
            for item in items:
                if item.id in results:
                    continue
                result = _evaluate_one(planner, item, threshold, executor_mismatch)
                if handle is not None:
                    handle.write(result.model_dump_json() + "\n")
                    handle.flush()
                results[item.id] = result
                if progress is not None:
                    progress(result, len(results), len(items))
    finally:
        planner.executors = saved
    ordered = [results[item.id] for item in items]
    kinds = sorted({r.kind for r in ordered})
    return PlannerReport(
        **_summarise(ordered).model_dump(),
        by_kind={k: _summarise([r for r in ordered if r.kind == k]) for k in kinds},
        results=ordered,
    )


# --- comparing planners -------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _count_error(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def comparison_table(reports: dict[str, PlannerReport], *, by_kind: bool = False) -> str:
    """A Markdown table, one row per planner; `by_kind` adds a second table per kind."""
    if not reports:
        raise ConfigError("there are no reports to compare")
    lines = [
        "| planner | items | valid | node P | node R | node F1 | edge F1 | step-count error | s/plan |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in reports.items():
        lines.append(
            f"| {_cell(name)} | {r.items} | {r.validity:.3f} | {r.node_precision:.3f} | "
            f"{r.node_recall:.3f} | {r.node_f1:.3f} | {r.edge_f1:.3f} | "
            f"{_count_error(r.step_count_error)} | {r.seconds_per_plan:.2f} |"
        )
    if by_kind:
        lines += [
            "",
            "| kind | planner | items | valid | node F1 | edge F1 | step-count error |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        kinds = sorted({k for r in reports.values() for k in r.by_kind})
        for kind in kinds:
            for name, r in reports.items():
                if kind in r.by_kind:
                    s = r.by_kind[kind]
                    lines.append(
                        f"| {kind} | {_cell(name)} | {s.items} | {s.validity:.3f} | "
                        f"{s.node_f1:.3f} | {s.edge_f1:.3f} | {_count_error(s.step_count_error)} |"
                    )
    return "\n".join(lines) + "\n"


def comparison_png(reports: dict[str, PlannerReport], path: str | Path) -> Path:
    """Grouped bars of node F1, edge F1 and validity per planner, written as a PNG.

    Drawn on an Agg canvas directly rather than through pyplot, so it works without a
    display and leaves the process's matplotlib backend alone.
    """
    if not reports:
        raise ConfigError("there are no reports to compare")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = [("node F1", "node_f1"), ("edge F1", "edge_f1"), ("validity", "validity")]
    names = list(reports)
    width = 0.8 / len(names)
    fig = Figure(figsize=(max(6.0, 1.0 + 0.9 * len(names) * len(metrics)), 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for k, name in enumerate(names):
        offset = (k - (len(names) - 1) / 2) * width
        values = [getattr(reports[name], attr) for _, attr in metrics]
        bars = ax.bar([i + offset for i in range(len(metrics))], values, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(metrics)), [label for label, _ in metrics])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("mean over gold items")
    ax.set_title("Planners against the gold plans")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path
