"""How close does the stepgraph Runtime come to the critical path, and what does a step cost?

Executors sleep for seeded random durations (uniform 10-100 ms, or `--sleep-ms LO,HI`) on seeded random DAGs
(each step depends on 0-3 random earlier steps; every sink other than the last step gets
an edge to the last step, as the plan validator requires). For each size, in one process:

  (a) stepgraph  `Runtime(ScriptedBackend, store, [SleepExecutor], eager=False).run(plan=...)`:
      the execution phase (first `step_started` to last `step_finished`, seen through
      `on_event`) and the whole run, each against the critical path;
  (b) sequential  the sum of the sleeps (and, for small sizes, actually sleeping them in turn);
  (c) supersteps  a LangGraph StateGraph whose scheduler node `Send`s every ready step each
      superstep, plus the zero-overhead superstep bound;
  (d) functional  bare LangGraph functional API, one `@task` per step that awaits its
      dependencies: the floor under stepgraph's design.
  (LangGraph baselines use AsyncSqliteSaver with WAL + synchronous=NORMAL, like the Runtime.)

Then the runtime's cost per step with executors that return at once (no-op), on DAGs of
100 and 1000 steps: run time / steps, median over repeats, with the time spent in each
memory-store call and the checkpointer calls; "what-if" runs that remove one cost each (the
store writes made while steps run; the SQLite checkpointer), to show what is left to win;
and a cProfile of one no-op run.

Results go to benchmarks/results/runtime_scheduling.{json,md,png} after every measurement;
run again to continue where it stopped (`--force` measures again). Single process.

    python benchmarks/runtime_scheduling.py                       # everything
    python benchmarks/runtime_scheduling.py --sizes 10,30 --overhead-sizes 100 --no-what-if
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import operator
import os
import platform
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypedDict

import networkx as nx

from stepgraph.executors.base import StepInput, StepOutput
from stepgraph.memory import Store
from stepgraph.models.scripted import ScriptedBackend
from stepgraph.planner.plan import Plan, Step
from stepgraph.runtime import Runtime

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_RATIO = 1.10
GOAL_STEP_MS = 5.0
SLEEP_MS = (10.0, 100.0)  # the default range of a step's sleep


# -- workload ------------------------------------------------------------------------------


class Dag:
    """A random plan with a seeded sleep duration (seconds) for every step."""

    def __init__(self, n: int, seed: int, sleep_ms: tuple[float, float] = SLEEP_MS) -> None:
        rng = random.Random(f"{seed}-{n}")
        self.ids = [f"s{i}" for i in range(n)]
        deps: list[list[int]] = []
        for i in range(n):
            deps.append(sorted(rng.sample(range(i), rng.randint(0, min(3, i)))))
        used = {d for ds in deps for d in ds}
        deps[-1] = sorted({*deps[-1], *(i for i in range(n - 1) if i not in used)})
        self.deps = {self.ids[i]: [self.ids[d] for d in ds] for i, ds in enumerate(deps)}
        self.seconds = {s: rng.uniform(*sleep_ms) / 1000 for s in self.ids}
        graph = nx.DiGraph()
        graph.add_nodes_from(self.ids)
        graph.add_edges_from((d, s) for s, ds in self.deps.items() for d in ds)
        self.graph = graph
        # Longest path, weighted by the sleeps of the steps on it.
        finish: dict[str, float] = {}
        depth: dict[str, int] = {}
        for s in nx.topological_sort(graph):
            finish[s] = self.seconds[s] + max((finish[d] for d in self.deps[s]), default=0.0)
            depth[s] = 1 + max((depth[d] for d in self.deps[s]), default=0)
        self.critical_path = max(finish.values())
        self.depth = max(depth.values())
        # What a superstep scheduler with no overhead costs: the slowest step of each level.
        levels: dict[int, float] = defaultdict(float)
        for s, level in depth.items():
            levels[level] = max(levels[level], self.seconds[s])
        self.superstep_bound = sum(levels.values())
        self.sequential = sum(self.seconds.values())

    def longest_path(self, seconds: dict[str, float]) -> float:
        """The critical path with other durations (e.g. the sleeps as they really lasted)."""
        finish: dict[str, float] = {}
        for s in nx.topological_sort(self.graph):
            finish[s] = seconds[s] + max((finish[d] for d in self.deps[s]), default=0.0)
        return max(finish.values())

    def plan(self, executor: str) -> Plan:
        steps = [
            Step(
                id=s,
                instruction=f"step {s}",
                executor=executor,
                depends_on=self.deps[s],
                args={"seconds": self.seconds[s]},
            )
            for s in self.ids
        ]
        return Plan(goal="benchmark", steps=steps)


class SleepExecutor:
    name = "sleep"
    description = "sleeps for args.seconds"

    def __init__(self) -> None:
        self.spans: dict[str, tuple[float, float]] = {}

    async def run(self, step: StepInput) -> StepOutput:
        start = time.perf_counter()
        await asyncio.sleep(float(step.args.get("seconds", 0.0)))
        self.spans[step.step_id] = (start, time.perf_counter())
        return StepOutput(output=f"{step.step_id} done")


class NoopExecutor:
    name = "noop"
    description = "returns at once"

    async def run(self, step: StepInput) -> StepOutput:
        return StepOutput(output=f"{step.step_id} done")


def _backend() -> ScriptedBackend:
    return ScriptedBackend(responder=lambda request: "composed answer")


# -- the schedulers ------------------------------------------------------------------------


class State(TypedDict):
    """The superstep scheduler's state: ids of the steps done so far."""

    done: Annotated[list[str], operator.add]


def run_stepgraph(dag: Dag, *, store_cls: type[Store] = Store) -> dict[str, Any]:
    executor = SleepExecutor()
    marks: dict[str, float] = {}

    def on_event(event) -> None:
        now = time.perf_counter()
        if event.type == "step_started":
            marks.setdefault("first_started", now)
        elif event.type == "step_finished":
            marks["last_finished"] = now

    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(
            _backend(),
            store=store_cls(Path(tmp) / "stepgraph.db"),
            executors=[executor],
            eager=False,
            max_seconds=3600,
        )
        plan = dag.plan("sleep")
        cpu, start = time.process_time(), time.perf_counter()
        result = runtime.run("benchmark", plan=plan, on_event=on_event)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
        runtime.close()
    if result.status != "done" or len(result.steps) != len(dag.ids):
        raise RuntimeError(f"stepgraph run ended {result.status}: {result.error}")
    phase = marks["last_finished"] - marks["first_started"]
    spans = executor.spans
    # The sleeps as they really lasted (asyncio.sleep overshoots on a busy machine): the
    # exec phase against this path is what the scheduler itself adds.
    realized = dag.longest_path({s: end - begin for s, (begin, end) in spans.items()})
    return {
        "exec_phase_s": phase,
        "total_s": total,
        "cpu_s": cpu,
        "startup_s": marks["first_started"] - start,
        "teardown_s": start + total - marks["last_finished"],
        "executor_span_s": max(e for _, e in spans.values()) - min(b for b, _ in spans.values()),
        "realized_critical_path_s": realized,
        "exec_ratio": phase / dag.critical_path,
        "exec_vs_realized": phase / realized,
        "total_ratio": total / dag.critical_path,
    }


def run_sequential(dag: Dag) -> dict[str, Any]:
    async def main() -> float:
        start = time.perf_counter()
        for s in nx.lexicographical_topological_sort(dag.graph, key=dag.ids.index):
            await asyncio.sleep(dag.seconds[s])
        return time.perf_counter() - start

    wall = asyncio.run(main())
    return {"wall_s": wall, "ratio": wall / dag.critical_path}


def run_supersteps(dag: Dag) -> dict[str, Any]:
    """StateGraph: a scheduler node sends every ready step; a superstep ends with its slowest."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    async def step(payload: dict) -> dict:
        await asyncio.sleep(dag.seconds[payload["id"]])
        return {"done": [payload["id"]]}

    def schedule(state: State) -> dict:
        return {}

    def ready(state: State) -> list:
        done = set(state.get("done") or [])
        sends = [
            Send("step", {"id": s})
            for s in dag.ids
            if s not in done and all(d in done for d in dag.deps[s])
        ]
        return sends or END

    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_node("schedule", schedule)
    builder.add_conditional_edges(START, ready, ["step", END])
    builder.add_edge("step", "schedule")
    builder.add_conditional_edges("schedule", ready, ["step", END])

    async def main(path: Path) -> tuple[float, int]:
        async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
            graph = builder.compile(checkpointer=saver)
            config = {"configurable": {"thread_id": "bench"}, "recursion_limit": 100_000}
            start = time.perf_counter()
            state = await graph.ainvoke({"done": []}, config)
            return time.perf_counter() - start, len(state["done"])

    with tempfile.TemporaryDirectory() as tmp, checkpointer_synchronous_normal():
        wall, done = asyncio.run(main(Path(tmp) / "checkpoints.db"))
    if done != len(dag.ids):
        raise RuntimeError(f"supersteps ran {done} of {len(dag.ids)} steps")
    return {
        "wall_s": wall,
        "ratio": wall / dag.critical_path,
        "bound_s": dag.superstep_bound,
        "bound_ratio": dag.superstep_bound / dag.critical_path,
    }


def run_functional(dag: Dag, *, sleep: bool = True) -> dict[str, Any]:
    """Bare functional API: tasks called in plan order, each awaits its dependencies."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.func import entrypoint, task

    async def main(path: Path) -> float:
        results: dict[str, asyncio.Future] = {}

        @task
        async def step(step_id: str) -> dict:
            await asyncio.gather(*(results[d] for d in dag.deps[step_id]))
            if sleep:
                await asyncio.sleep(dag.seconds[step_id])
            return {"step_id": step_id, "output": f"{step_id} done"}

        async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:

            @entrypoint(checkpointer=saver)
            async def workflow(inputs: dict) -> int:
                loop = asyncio.get_running_loop()
                for s in dag.ids:
                    results[s] = loop.create_future()
                futures = [step(s) for s in dag.ids]

                async def relay(step_id: str, future) -> None:
                    results[step_id].set_result(await future)

                await asyncio.gather(*(relay(s, f) for s, f in zip(dag.ids, futures, strict=True)))
                return len(futures)

            start = time.perf_counter()
            await workflow.ainvoke({"n": len(dag.ids)}, {"configurable": {"thread_id": "bench"}})
            return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp, checkpointer_synchronous_normal():
        cpu = time.process_time()
        wall = asyncio.run(main(Path(tmp) / "checkpoints.db"))
        cpu = time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "ratio": wall / dag.critical_path}


# -- overhead, with the time of each store and checkpointer call ----------------------------


class Timers:
    """Wraps methods to count calls and time them. Store calls are synchronous and run on
    the event loop, so their times add up to loop time; checkpointer calls are awaited and
    may overlap, so theirs is time awaited."""

    def __init__(self) -> None:
        self.stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def _sync(self, cls: type, name: str, by_caller: bool = False) -> Callable:
        original = getattr(cls, name)
        stats = self.stats

        def wrapper(*args, **kwargs):
            key = f"{cls.__name__}.{name}"
            if by_caller:
                key += f" <- {sys._getframe(1).f_code.co_name}"
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                entry = stats[key]
                entry[0] += 1
                entry[1] += time.perf_counter() - start

        return original, wrapper

    def _async(self, cls: type, name: str) -> Callable:
        original = getattr(cls, name)
        stats = self.stats

        async def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                entry = stats[f"{cls.__name__}.{name} (awaited, background)"]
                entry[0] += 1
                entry[1] += time.perf_counter() - start

        return original, wrapper

    @contextmanager
    def installed(self) -> Iterator[Timers]:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        patches = [(Store, "run", self._sync(Store, "run", by_caller=True))]
        for name in (
            "record_step",
            "_planned_step",
            "record_event",
            "record_verdict",
            "record_plan",
            "start_run",
            "finish_run",
        ):
            patches.append((Store, name, self._sync(Store, name)))
        for name in ("aput_writes", "aput", "aget_tuple"):
            patches.append((AsyncSqliteSaver, name, self._async(AsyncSqliteSaver, name)))
        for cls, name, (_, wrapper) in patches:
            setattr(cls, name, wrapper)
        try:
            yield self
        finally:
            for cls, name, (original, _) in patches:
                setattr(cls, name, original)

    def table(self, steps: int, total_s: float) -> list[dict[str, Any]]:
        rows = []
        for key, (count, seconds) in sorted(self.stats.items(), key=lambda kv: -kv[1][1]):
            rows.append(
                {
                    "call": key,
                    "calls": int(count),
                    "calls_per_step": count / steps,
                    "total_s": seconds,
                    "ms_per_step": seconds / steps * 1000,
                    "share_of_run": None if "awaited" in key else seconds / total_s,
                }
            )
        return rows


def run_noop(dag: Dag, *, timers: Timers | None = None, strict: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(
            _backend(),
            store=Store(Path(tmp) / "stepgraph.db"),
            executors=[NoopExecutor()],
            eager=False,
            max_seconds=3600,
        )
        plan = dag.plan("noop")
        cpu, start = time.process_time(), time.perf_counter()
        if timers is not None:
            with timers.installed():
                result = runtime.run("benchmark", plan=plan)
        else:
            result = runtime.run("benchmark", plan=plan)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
        runtime.close()
    if result.status != "done" or (strict and len(result.steps) != len(dag.ids)):
        raise RuntimeError(f"no-op run ended {result.status}: {result.error}")
    n = len(dag.ids)
    return {
        "total_s": total,
        "cpu_s": cpu,
        "ms_per_step": total / n * 1000,
        "cpu_ms_per_step": cpu / n * 1000,
    }


# -- what-ifs: each removes one cost from outside the runtime ------------------------------


@contextmanager
def checkpointer_synchronous_normal() -> Iterator[None]:
    """AsyncSqliteSaver with PRAGMA synchronous=NORMAL (WAL), as the Runtime sets it: the
    bare LangGraph baselines get the same checkpointer settings as stepgraph."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    original = AsyncSqliteSaver.setup

    async def setup(self) -> None:
        first = not self.is_setup
        await original(self)
        if first:
            await self.conn.execute("PRAGMA synchronous=NORMAL")

    AsyncSqliteSaver.setup = setup
    try:
        yield
    finally:
        AsyncSqliteSaver.setup = original


@contextmanager
def no_step_writes() -> Iterator[None]:
    """What-if: the memory-store writes made while steps run (record_step, record_event,
    record_verdict) do nothing; start_run, record_plan, finish_run and reads stay."""
    names = ("record_step", "record_event", "record_verdict")
    originals = {name: getattr(Store, name) for name in names}

    def nothing(self, *args, **kwargs) -> int:
        return 0

    for name in names:
        setattr(Store, name, nothing)
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(Store, name, original)


@contextmanager
def checkpointer_in_memory() -> Iterator[None]:
    """What-if: the Runtime's AsyncSqliteSaver replaced by LangGraph's InMemorySaver."""
    from contextlib import asynccontextmanager

    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    class _Conn:
        async def execute(self, *args, **kwargs) -> None:  # the Runtime's PRAGMAs
            return None

    @asynccontextmanager
    async def from_conn_string(cls, conn_string: str):
        saver = InMemorySaver()
        saver.conn = _Conn()
        yield saver

    original = AsyncSqliteSaver.__dict__["from_conn_string"]
    AsyncSqliteSaver.from_conn_string = classmethod(from_conn_string)
    try:
        yield
    finally:
        AsyncSqliteSaver.from_conn_string = original


@contextmanager
def _both(*managers: Callable[[], Any]) -> Iterator[None]:
    from contextlib import ExitStack

    with ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager())
        yield


@contextmanager
def _as_is() -> Iterator[None]:
    yield


WHAT_IFS = [
    ("as is", "baseline", _as_is),
    ("memory-store writes during steps skipped", "no_step_writes", no_step_writes),
    ("checkpointer in memory (InMemorySaver)", "memory_checkpointer", checkpointer_in_memory),
    (
        "both",
        "both",
        lambda: _both(no_step_writes, checkpointer_in_memory),
    ),
]


def git_state() -> dict[str, Any]:
    """The commit measured, and whether stepgraph/ had uncommitted changes (read-only git)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "stepgraph"],
            cwd=root,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "stepgraph_dirty": bool(dirty)}


# -- results -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import langgraph.version

    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "gpu": "none",
        "python": platform.python_version(),
        "langgraph": langgraph.version.__version__,
        "platform": platform.platform(),
    }


class Results:
    def __init__(self, out: Path, *, force: bool, sleep_ms: tuple[float, float] = SLEEP_MS) -> None:
        self.out = out
        self.sleep_ms = sleep_ms
        self.path = out / "runtime_scheduling.json"
        self.data: dict[str, Any] = {}
        if self.path.exists() and not force:
            self.data = json.loads(self.path.read_text())
        self.data.setdefault("scheduling", {})
        self.data.setdefault("overhead", {})
        self.data.setdefault("what_if", {})

    def has(self, section: str, key: str) -> bool:
        return key in self.data[section]

    def put(self, section: str, key: str, value: dict[str, Any]) -> None:
        value = {
            **value,
            "measured": datetime.now(UTC).isoformat(timespec="seconds"),
            "loadavg_1m": os.getloadavg()[0],
        }
        self.data[section][key] = value
        self.save()

    def save(self) -> None:
        self.data["machine"] = machine()
        self.data["code"] = git_state()
        self.data["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.data["goals"] = {"ratio_to_critical_path": GOAL_RATIO, "ms_per_step": GOAL_STEP_MS}
        self.data["sleep_ms"] = list(self.sleep_ms)
        self.out.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2) + "\n")
        (self.out / "runtime_scheduling.md").write_text(markdown(self.data))
        plot(self.data, self.out / "runtime_scheduling.png")


def _sizes(section: dict[str, Any]) -> list[str]:
    return sorted(section, key=int)


def markdown(data: dict[str, Any]) -> str:
    m = data["machine"]
    lines = [
        "# Runtime scheduling and per-step overhead",
        "",
        f"Measured {data['date']} on {m['nproc']} cores ({m['cpu']}), {m['memory']}, no GPU; "
        f"Python {m['python']}, LangGraph {m['langgraph']}; stepgraph at commit "
        f"{data.get('code', {}).get('commit', '?')}"
        f"{' (stepgraph/ modified)' if data.get('code', {}).get('stepgraph_dirty') else ''}. "
        "The machine was shared with other "
        "jobs (the 1-minute load average at each measurement is in the JSON), so wall times "
        "carry noise; CPU times are given where they matter.",
        "",
        f"Goal: wall time at most {GOAL_RATIO:.2f}x the critical path at every size; "
        f"per-step overhead median under {GOAL_STEP_MS:g} ms.",
        "",
        f"## Sleeping steps (uniform {_sleep_range(data)}) on random DAGs",
        "",
        "Ratios are wall time / critical path (the longest chain of sleeps). stepgraph: "
        "execution phase = first `step_started` to last `step_finished` event; whole run = "
        "`Runtime.run` wall time. LangGraph baselines use AsyncSqliteSaver with WAL and "
        "`synchronous=NORMAL`, as the Runtime does. Supersteps: StateGraph + `Send`; bound = "
        "the slowest step of each level summed (a superstep scheduler with no overhead). "
        "Functional: bare LangGraph `@task` per step, no stepgraph. Both LangGraph baselines "
        "are whole-run wall times (checkpointer setup included): compare them with "
        "stepgraph's whole run. "
        "Sequential: sum of the sleeps (measured where shown). Each cell is the median of "
        "the repeats (see the JSON); seconds in brackets.",
        "",
        "| steps | depth | critical path s | stepgraph exec phase | stepgraph whole run "
        "| supersteps | superstep bound | functional (bare) | sequential |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    detail = [
        "",
        "stepgraph in detail: the execution phase against the critical path of the sleeps "
        "as they really lasted (asyncio.sleep overshoots on a busy machine; this ratio is "
        "what the scheduler adds), the time before the first step starts and after the last "
        "one ends, and the process CPU time of the whole run.",
        "",
        "| steps | repeats | exec / realized path | startup s | teardown s | CPU s "
        "| exec ratio of each run |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key in _sizes(data["scheduling"]):
        r = data["scheduling"][key]
        sg, ss, fn, sq = r["stepgraph"], r["supersteps"], r["functional"], r["sequential"]
        measured = f" (measured {sq['measured_ratio']:.1f}x)" if "measured_ratio" in sq else ""
        lines.append(
            f"| {key} | {r['depth']} | {r['critical_path_s']:.3f} "
            f"| {sg['exec_ratio']:.2f}x ({sg['exec_phase_s']:.2f} s) "
            f"| {sg['total_ratio']:.2f}x ({sg['total_s']:.2f} s) "
            f"| {ss['ratio']:.2f}x ({ss['wall_s']:.2f} s) | {ss['bound_ratio']:.2f}x "
            f"| {fn['ratio']:.2f}x ({fn['wall_s']:.2f} s) "
            f"| {sq['ratio']:.1f}x ({sq['sum_s']:.1f} s){measured} |"
        )
        each = ", ".join(f"{x:.2f}" for x in sg.get("runs_exec_ratio", [sg["exec_ratio"]]))
        detail.append(
            f"| {key} | {r.get('repeats', 1)} | {sg['exec_vs_realized']:.2f}x "
            f"| {sg['startup_s']:.2f} | {sg['teardown_s']:.2f} | {sg['cpu_s']:.1f} | {each} |"
        )
    lines += detail
    if data["overhead"]:
        lines += [
            "",
            "## Per-step overhead, no-op executors",
            "",
            "Whole `Runtime.run` wall time / steps (and process CPU time / steps), median "
            "over the repeats; bare functional = the same DAG on the bare functional API "
            "with AsyncSqliteSaver, no stepgraph (one run; wall and CPU).",
            "",
            "| steps | repeats | median ms/step | runs ms/step | median CPU ms/step "
            "| bare functional ms/step (CPU) | goal met |",
            "|---:|---:|---:|---|---:|---:|---|",
        ]
        for key in _sizes(data["overhead"]):
            r = data["overhead"][key]
            runs = ", ".join(f"{x:.1f}" for x in r["runs_ms_per_step"])
            lines.append(
                f"| {key} | {len(r['runs_ms_per_step'])} | {r['median_ms_per_step']:.2f} | {runs} "
                f"| {r['median_cpu_ms_per_step']:.2f} | {r['functional_ms_per_step']:.2f} "
                f"({r.get('functional_cpu_ms_per_step', float('nan')):.2f}) "
                f"| {'yes' if r['median_ms_per_step'] < GOAL_STEP_MS else 'no'} |"
            )
        for key in _sizes(data["overhead"]):
            r = data["overhead"][key]
            lines += [
                "",
                f"### Where the time goes, {key} no-op steps (the median run, "
                f"{r['profiled_total_s']:.1f} s)",
                "",
                "Store calls are synchronous on the event loop (their times add up; nested "
                "calls such as `_planned_step` inside `record_step` are counted in both). "
                "Checkpointer writes run in LangGraph's background executor: their awaited times "
                "overlap each other and the run, so the table gives their mean latency instead.",
                "",
                "| call | calls | calls/step | total s | ms/step | share of run |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for row in r["calls"]:
                share = row["share_of_run"]
                if share is None:
                    share_text = f"n/a: mean latency {row['total_s'] / row['calls'] * 1000:.0f} ms"
                else:
                    share_text = f"{share * 100:.0f}%"
                lines.append(
                    f"| `{row['call']}` | {row['calls']} | {row['calls_per_step']:.2f} "
                    f"| {row['total_s']:.2f} | {row['ms_per_step']:.2f} | {share_text} |"
                )
    if data["what_if"]:
        lines += [
            "",
            "## What-ifs: one cost removed from outside the runtime (no-op executors)",
            "",
            "Each variant removes one cost by patching from the benchmark, not the runtime: "
            "the memory-store writes made while steps run (`record_step`, `record_event`, "
            "`record_verdict`) turned into no-ops, and the Runtime's AsyncSqliteSaver swapped "
            "for LangGraph's InMemorySaver. What is left in `both` is the Runtime's own Python "
            "and LangGraph's functional API. Variants are interleaved; median of the runs.",
            "",
            "| steps | variant | median ms/step | runs ms/step | median CPU ms/step |",
            "|---:|---|---:|---|---:|",
        ]
        order = [key for _, key, _ in WHAT_IFS]
        for key in sorted(
            data["what_if"],
            key=lambda k: (int(k.split("/")[0]), order.index(k.split("/")[1])),
        ):
            r = data["what_if"][key]
            runs = ", ".join(f"{x:.1f}" for x in r.get("runs_ms_per_step", [r["ms_per_step"]]))
            lines.append(
                f"| {key.split('/')[0]} | {r['variant']} | {r['ms_per_step']:.2f} | {runs} "
                f"| {r['cpu_ms_per_step']:.2f} |"
            )
    if "profile" in data:
        lines += [
            "",
            f"## cProfile, {data['profile']['steps']} no-op steps "
            f"(cProfile inflates times; see runtime_profile.txt)",
            "",
            "```",
            data["profile"]["top"].rstrip(),
            "```",
        ]
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = _sizes(data["scheduling"])
    if not keys:
        return
    sizes = [int(k) for k in keys]
    rows = [data["scheduling"][k] for k in keys]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    series = [
        ("stepgraph Runtime, execution phase", [r["stepgraph"]["exec_ratio"] for r in rows], "o-"),
        ("stepgraph Runtime, whole run", [r["stepgraph"]["total_ratio"] for r in rows], "o:"),
        ("StateGraph + Send supersteps", [r["supersteps"]["ratio"] for r in rows], "s-"),
        ("sequential", [r["sequential"]["ratio"] for r in rows], "^-"),
        ("bare functional API (reference)", [r["functional"]["ratio"] for r in rows], "x--"),
    ]
    for label, values, style in series:
        ax.plot(sizes, values, style, label=label)
    ax.axhline(GOAL_RATIO, color="grey", linestyle="--", linewidth=1, label="goal 1.10x")
    ax.axhline(1.0, color="black", linewidth=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("steps in the random DAG")
    ax.set_ylabel("wall time / critical path")
    ax.set_title(f"Sleeping steps ({_sleep_range(data)}), {data['machine']['nproc']} cores, no GPU")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- main ----------------------------------------------------------------------------------


def _sleep_range(data: dict[str, Any]) -> str:
    low, high = data.get("sleep_ms", SLEEP_MS)  # files from before --sleep-ms
    return f"{low:g}-{high:g} ms"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run with the median `key` (the upper one of two), with every run's value kept."""
    chosen = dict(sorted(runs, key=lambda r: r[key])[len(runs) // 2])
    chosen[f"runs_{key}"] = [r[key] for r in runs]
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_ints, default=[10, 30, 100, 300, 1000])
    parser.add_argument(
        "--schedule-repeats",
        type=int,
        default=3,
        help="runs of each scheduler per size up to --repeat-max (median kept); 1 above",
    )
    parser.add_argument("--repeat-max", type=int, default=1000)
    parser.add_argument("--overhead-sizes", type=_ints, default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=3, help="no-op runs per overhead size")
    parser.add_argument(
        "--sequential-max",
        type=int,
        default=100,
        help="actually sleep the steps one after another up to this size",
    )
    parser.add_argument("--what-if-sizes", type=_ints, default=[100, 1000])
    parser.add_argument("--no-what-if", action="store_true")
    parser.add_argument("--profile-size", type=int, default=1000, help="0 skips the cProfile")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--force", action="store_true", help="measure again what is recorded")
    parser.add_argument(
        "--sleep-ms", type=_ints, default=[10, 100], help="LO,HI of the uniform step sleeps"
    )
    args = parser.parse_args(argv)
    sleep_ms = (float(args.sleep_ms[0]), float(args.sleep_ms[1]))
    results = Results(args.out, force=args.force, sleep_ms=sleep_ms)

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    for n in args.sizes:
        if results.has("scheduling", str(n)):
            say(f"scheduling {n}: recorded, skipped")
            continue
        dag = Dag(n, args.seed, sleep_ms)
        say(
            f"scheduling {n}: depth {dag.depth}, critical path {dag.critical_path:.3f} s, "
            f"sequential {dag.sequential:.2f} s"
        )
        repeats = args.schedule_repeats if n <= args.repeat_max else 1
        stepgraph, supersteps, functional = [], [], []
        for i in range(repeats):  # interleaved, so load from other jobs falls on all three
            stepgraph.append(run_stepgraph(dag))
            supersteps.append(run_supersteps(dag))
            functional.append(run_functional(dag))
            say(
                f"  run {i + 1}: stepgraph exec {stepgraph[-1]['exec_ratio']:.2f}x "
                f"(vs realized {stepgraph[-1]['exec_vs_realized']:.2f}x), "
                f"whole {stepgraph[-1]['total_ratio']:.2f}x; "
                f"supersteps {supersteps[-1]['ratio']:.2f}x; "
                f"functional {functional[-1]['ratio']:.2f}x"
            )
        entry: dict[str, Any] = {
            "steps": n,
            "depth": dag.depth,
            "edges": dag.graph.number_of_edges(),
            "critical_path_s": dag.critical_path,
            "seed": args.seed,
            "repeats": repeats,
            "stepgraph": _median_run(stepgraph, "exec_ratio"),
            "supersteps": _median_run(supersteps, "ratio"),
            "functional": _median_run(functional, "ratio"),
            "sequential": {"sum_s": dag.sequential, "ratio": dag.sequential / dag.critical_path},
        }
        if n <= args.sequential_max:
            measured = run_sequential(dag)
            entry["sequential"].update(
                measured_s=measured["wall_s"], measured_ratio=measured["ratio"]
            )
        results.put("scheduling", str(n), entry)

    for n in args.overhead_sizes:
        if results.has("overhead", str(n)):
            say(f"overhead {n}: recorded, skipped")
            continue
        dag = Dag(n, args.seed + 1, sleep_ms)
        runs = []
        for i in range(args.repeats):
            timers = Timers()
            run = run_noop(dag, timers=timers)
            run["calls"] = timers.table(n, run["total_s"])
            runs.append(run)
            say(
                f"overhead {n} run {i + 1}: {run['ms_per_step']:.2f} ms/step "
                f"(CPU {run['cpu_ms_per_step']:.2f})"
            )
        median = _median_run(runs, "ms_per_step")
        bare = run_functional(dag, sleep=False)
        results.put(
            "overhead",
            str(n),
            {
                "steps": n,
                "runs_ms_per_step": median["runs_ms_per_step"],
                "median_ms_per_step": statistics.median(r["ms_per_step"] for r in runs),
                "median_cpu_ms_per_step": statistics.median(r["cpu_ms_per_step"] for r in runs),
                "functional_ms_per_step": bare["wall_s"] / n * 1000,
                "functional_cpu_ms_per_step": bare["cpu_s"] / n * 1000,
                "profiled_total_s": median["total_s"],
                "calls": median["calls"],
            },
        )

    if not args.no_what_if:
        for n in args.what_if_sizes:
            dag = Dag(n, args.seed + 1, sleep_ms)
            chosen = [v for v in WHAT_IFS if not results.has("what_if", f"{n}/{v[1]}")]
            runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for i in range(args.repeats):  # interleaved, so load from other jobs falls on all
                for _label, key, manager in chosen:
                    timers = Timers()
                    with manager():
                        run = run_noop(dag, timers=timers, strict=key == "baseline")
                    run["calls"] = timers.table(n, run["total_s"])
                    runs[key].append(run)
                    say(f"what-if {n} {key} run {i + 1}: {run['ms_per_step']:.2f} ms/step")
            for label, key, _manager in chosen:
                run = _median_run(runs[key], "ms_per_step")
                run["cpu_ms_per_step"] = statistics.median(r["cpu_ms_per_step"] for r in runs[key])
                results.put("what_if", f"{n}/{key}", {"variant": label, **run})

    if args.profile_size and "profile" not in results.data:
        n = args.profile_size
        dag = Dag(n, args.seed + 1, sleep_ms)
        profiler = cProfile.Profile()
        profiler.enable()
        run = run_noop(dag)
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(50)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "runtime_profile.txt").write_text(_short_paths(text.getvalue()))
        short = io.StringIO()
        pstats.Stats(profiler, stream=short).sort_stats("tottime").print_stats(15)
        top = short.getvalue()
        top = top[top.index("ncalls") :] if "ncalls" in top else top
        say(f"profile {n}: {run['ms_per_step']:.2f} ms/step under cProfile")
        results.data["profile"] = {
            "steps": n,
            "ms_per_step_under_cprofile": run["ms_per_step"],
            "top": _short_paths(top),
        }
        results.save()
    say(f"results in {args.out}")


def _short_paths(text: str) -> str:
    import sysconfig

    text = text.replace(sysconfig.get_paths()["purelib"], "<site-packages>")
    text = text.replace(sysconfig.get_paths()["stdlib"], "<stdlib>")
    return text.replace(str(Path(__file__).resolve().parents[1]), "<repo>")


if __name__ == "__main__":
    main()
