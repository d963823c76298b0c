"""The run: plan, execute each step the moment its dependencies are done, verify, compose.

Built on LangGraph's functional API. One `@entrypoint` per run (thread id = run id) with a
checkpointer in the store's database (`checkpoints.py`), one `@task` per step. Measured on random graphs, tasks that start when
their own dependencies finish cost 1.04x the critical path, against 1.3-1.4x for StateGraph
supersteps. LangGraph returns cached task results by call order on resume, so steps are
*called* in the plan's order and each waits for its dependencies inside the task (`Board`).
The tasks never write the store: they emit typed events, which the recorder stores.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.config import get_stream_writer
from langgraph.func import entrypoint, task
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

import stepgraph.telemetry as telemetry
from stepgraph.errors import ConfigError, StepgraphError
from stepgraph.executors.base import Executor, StepInput, StepOutput, declares
from stepgraph.executors.latex import readable_math
from stepgraph.executors.llm import answer as answer_directly
from stepgraph.memory import MemoryStore, Store, open_store
from stepgraph.models.base import BackendBase, Message
from stepgraph.planner.plan import REFERENCE, Plan, Step
from stepgraph.planner.planner import Planner, check_instruction
from stepgraph.runtime._board import Board
from stepgraph.runtime.candidates import (
    PROGRAM_STEP,
    asks_for_number,
    direct_request,
    one_question,
    only_questions,
    plain_request,
    program_answer,
)
from stepgraph.runtime.checkpoints import open_checkpointer
from stepgraph.runtime.events import (
    AnswerGiven,
    Event,
    PlanReady,
    PlanStep,
    RunFinished,
    RunResult,
    StepAttempt,
    StepFinished,
    StepResult,
    StepStarted,
    VerdictMade,
)
from stepgraph.runtime.orchestration import Orchestration, Tasks
from stepgraph.runtime.recorder import Recorder
from stepgraph.verifier import Composer, Composition, Verdict, Verifier
from stepgraph.verifier.choice import (
    Candidate,
    agreed,
    answer_claims,
    choose,
    states_value,
    with_answer_line,
)
from stepgraph.verifier.composer import repaired
from stepgraph.verifier.constraints import extract_constraints
from stepgraph.verifier.numeric import single_number
from stepgraph.verifier.verdict import failures

_CONTINUE = object()


def _traced(describe: Callable[..., tuple[str, dict]]):
    """The method's work as a span under its run's span (`stepgraph.telemetry`):
    `describe(*args)` names it and gives its attributes from the method's arguments after
    `run_id`. Current while the work runs, so model calls and checks nest under it."""

    def decorate(method):
        @functools.wraps(method)
        async def traced(self, run_id: str, *args, **kwargs):
            name, attributes = describe(*args, **kwargs)
            board = self._boards.get(run_id)
            parent = board.trace if board else None
            with telemetry.span(name, parent, run_id=run_id, **attributes) as span:
                result = await method(self, run_id, *args, **kwargs)
                if isinstance(result, dict) and span.is_recording():
                    span.set_attributes(_result_attributes(result))
                return result

        return traced

    return decorate


def _result_attributes(result: dict) -> dict:
    """A task's outcome on its span: status, and a step's tokens as the store keeps them."""
    attributes = {"stepgraph.status": result.get("status")}
    if "step_id" in result:
        attributes["gen_ai.usage.input_tokens"] = result.get("prompt_tokens", 0)
        attributes["gen_ai.usage.output_tokens"] = result.get("completion_tokens", 0)
    return {k: v for k, v in attributes.items() if v is not None}


def _end_run_span(span, event: RunFinished) -> None:
    if span.is_recording():
        span.set_attributes(
            {
                "stepgraph.status": event.status,
                "gen_ai.usage.input_tokens": event.prompt_tokens,
                "gen_ai.usage.output_tokens": event.completion_tokens,
            }
        )
    span.end()


# the data of a lone llm step that the direct candidate answered
_ANSWERED_BY_DIRECT = {"answered_by": "direct"}


def _no_step_finished(steps: list[StepResult]) -> Verdict:
    """The planner judged the task to need steps, and none finished: whatever answers it
    (the direct candidate, unchecked by any step) cannot be called done. Seen with a planner
    that wrote python steps over a table the sql executor held: both failed, and the direct
    answer's invented revenue figures passed every form check."""
    failed = "; ".join(f"{s.step_id} ({s.executor}) {s.status}" for s in steps[:4])
    return Verdict(
        check="planned_steps",
        passed=False,
        evidence=f"no planned step finished ({failed}); the answer rests on none of them",
    )


def render(instruction: str, outputs: dict[str, str]) -> str:
    """Fill `{{id}}` references with dependency outputs; unknown ids stay as written."""
    return REFERENCE.sub(lambda m: outputs.get(m.group(1), m.group(0)).strip(), instruction)


def _transient(exc: BaseException) -> bool:
    """Retry what looks like a passing failure, never a user error or a timeout."""
    return not isinstance(exc, StepgraphError | asyncio.TimeoutError | asyncio.CancelledError)


def load_planner_adapter(model: BackendBase, adapter: str | Path) -> str | None:
    """Load the adapter into a local engine under the name "planner"; a server-side backend
    (OpenAI-compatible) serves adapters by name, so the name is passed through.

    "auto" is the adapter shipped for this model (`stepgraph.evolve.adapters`), if any;
    "none" is no adapter."""
    if str(adapter) == "none":
        return None
    if str(adapter) == "auto":
        from stepgraph.evolve.adapters import shipped_planner_adapter

        adapter = shipped_planner_adapter(model)
        if adapter is None:
            return None
    load = getattr(model, "load_adapter", None)
    if load is None:
        return str(adapter)
    load("planner", adapter)
    return "planner"


class Runtime:
    """Runs instructions end to end and keeps everything in a memory store.

    `model` executes steps (and plans, unless `planner` is given). Executors default to
    llm, python and calculator, plus docs over the folder `docs` and read-only sql on the
    SQLite file `sql` when given; pass a registry or a list to choose them yourself. `planner_adapter` is a
    LoRA from `stepgraph train planner`: it is switched on for planning only, so planner and
    executors share one base model in memory. The default, "auto", uses the adapter that
    ships for the model when there is one; None or "none" plans with the bare model.
    `calculate` lets the calculator write the result of every sum the model writes out in
    llm steps and the final answer (on backends that continue a reply).

    What is left out (`model`, `store`, `max_steps`, `max_seconds`, `max_tokens`, `plan`)
    comes from the settings, as for the CLI: `stepgraph.toml` and STEPGRAPH_* variables,
    whose defaults are the embedded 0.5B model, the per-user store, 12 steps, 600 s, 20000
    generated tokens and "needed".

    `direct` (on by default) has the model also answer the whole instruction itself, from
    the start of the run: the floor the run's answer must not fall below. The composed and
    the direct answer are cross-checked; when they disagree on a number, a whole-problem
    program, a plain answer (other words, no calculator) and up to `samples` sampled answers
    break the tie, made one at a time until two agree, and the answer is chosen by agreement
    and checks (`stepgraph.verifier.choice`). `tie_budget` bounds what that costs: no
    tie-breaker starts once the candidates have generated that many times the direct
    answer's tokens (None: only `max_tokens` bounds them).
    A run whose final checks fail or whose candidates do not agree ends `unverified`, with
    its answer kept.

    `plan="needed"` (the default) makes a plan only where the model's own answer is not
    confirmed by code first: for a question whose answer is a number, when the direct
    answer and its tie-breakers do not agree; for an instruction whose form code checks,
    when the direct answer fails a check. With executors that bring in facts (documents, a
    database) a plan is always made. `plan="always"` plans every run.

    Python steps run confined by the kernel (docs/security.md); where it cannot confine
    them they fail with a message that says so, unless `python_sandbox="none"` lets
    trusted code run unconfined.
    """

    def __init__(
        self,
        model: BackendBase | str | None = None,
        *,
        store: MemoryStore | str | Path | None = None,
        executors: list[Executor] | dict[str, Executor] | None = None,
        docs: str | Path | None = None,
        sql: str | Path | None = None,
        planner: Planner | None = None,
        planner_adapter: str | Path | None = "auto",
        verifier: Verifier | None = None,
        max_steps: int | None = None,
        max_seconds: float | None = None,
        max_tokens: int | None = None,
        step_timeout: float = 120.0,
        eager: bool = True,
        approve_plan: bool = False,
        constrained: bool = True,
        max_replans: int = 1,
        max_revisions: int = 2,
        calculate: bool = True,
        direct: bool = True,
        samples: int = 2,
        tie_budget: float | None = 3.0,
        plan: Literal["needed", "always"] | None = None,
        python_sandbox: Literal["kernel", "none"] = "kernel",
        mcp: list | None = None,
    ):
        from stepgraph.models.spec import load_model

        telemetry.configure()  # traces exported when the environment asks for them
        settings = None
        if None in (model, store, max_steps, max_seconds, max_tokens, plan):
            # what the caller left out comes from the settings, as for the CLI
            from stepgraph.config import load_settings, store_path

            settings = load_settings()
            model = settings.model if model is None else model
            store = store_path(settings) if store is None else store
            max_steps = settings.max_steps if max_steps is None else max_steps
            max_seconds = settings.max_seconds if max_seconds is None else max_seconds
            max_tokens = settings.max_tokens if max_tokens is None else max_tokens
            plan = settings.plan if plan is None else plan
        _check_budgets(
            max_steps=max_steps,
            max_seconds=max_seconds,
            max_tokens=max_tokens,
            step_timeout=step_timeout,
        )
        if isinstance(model, str):
            from stepgraph.config import load_settings

            settings = settings or load_settings()
            model = load_model(model, **settings.engine_options())
        if executors is not None and (docs is not None or sql is not None):
            raise ConfigError(
                "docs= and sql= add to the default executors; with executors=, register "
                "DocsExecutor or SqlExecutor in it instead"
            )
        self.model = model
        self._owns_store = not isinstance(store, MemoryStore)  # close only a store we opened
        # a path (SQLite) or a postgresql:// URL; None: the default file
        self.store = store if isinstance(store, MemoryStore) else open_store(store)
        self.recorder = Recorder(self.store)  # every store write of a run, off the event loop
        self.executors = _executor_map(
            executors, model, docs=docs, sql=sql, calculate=calculate, sandbox=python_sandbox
        )
        if mcp is None:  # the servers of the settings' [[stepgraph.mcp]] tables
            from stepgraph.config import load_settings

            mcp = (settings or load_settings()).mcp
        self._mcp = self._connect_mcp(mcp, model)
        descriptions = {  # what the planner reads: an executor's own hint, or its description
            n: getattr(e, "planner_hint", None) or e.description for n, e in self.executors.items()
        }
        adapter = (
            load_planner_adapter(model, planner_adapter)
            if planner_adapter and not planner
            else None
        )
        if planner is not None:
            # the caller's planner, told this runtime's executors: a copy, theirs unchanged
            planner = copy.copy(planner)
            planner.executors = descriptions
        self.planner = planner or Planner(
            model,
            executors=descriptions,
            max_steps=max_steps,
            constrained=constrained,
            adapter=adapter,
        )
        self.verifier = verifier or Verifier()
        self.verifier.know(self.executors)  # what each executor declares itself to be
        self.composer = Composer(
            model, self.verifier, max_revisions=max_revisions, calculate=calculate
        )
        self.max_seconds = max_seconds
        self.max_tokens = max_tokens
        self.step_timeout = step_timeout
        self.eager = eager and not approve_plan
        self.approve_plan = approve_plan
        self.max_replans = max_replans
        self.direct = direct
        self.samples = samples
        number = isinstance(tie_budget, int | float) and not isinstance(tie_budget, bool)
        if tie_budget is not None and not (number and tie_budget > 0):
            raise ConfigError(f"tie_budget must be a number above 0 or None, not {tie_budget!r}")
        self.tie_budget = tie_budget
        if plan not in ("needed", "always"):
            raise ConfigError(f"plan must be 'needed' or 'always', not {plan!r}")
        self.planning = plan
        self.calculate = calculate
        self._boards: dict[str, Board] = {}
        # LangGraph's checkpoints: a SQLite file beside a SQLite store; in the same
        # database for a PostgreSQL store (`runtime/checkpoints.py`), where no file is used
        self._checkpoints = (
            Path(self.store.path).with_name(Path(self.store.path).stem + "-checkpoints.db")
            if isinstance(self.store, Store)
            else None
        )

    # -- public API ----------------------------------------------------------------------

    def run(
        self,
        instruction: str,
        *,
        conversation_id: str | None = None,
        plan: Plan | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> RunResult:
        """Plan and run `instruction`; continue `conversation_id` when given. With `plan`,
        skip planning and run that plan (it is validated first)."""
        return asyncio.run(
            self.arun(instruction, conversation_id=conversation_id, plan=plan, on_event=on_event)
        )

    async def arun(
        self,
        instruction: str,
        *,
        conversation_id: str | None = None,
        plan: Plan | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> RunResult:
        stream = self.astream(instruction, conversation_id=conversation_id, plan=plan)
        return await _collect(stream, on_event)

    async def astream(
        self, instruction: str, *, conversation_id: str | None = None, plan: Plan | None = None
    ) -> AsyncIterator[Event | RunResult]:
        """Events as they happen, then the RunResult last."""
        text = check_instruction(instruction)
        plan = self._given_plan(text, plan)
        run_id = await self.recorder.start(
            text,
            conversation_id=conversation_id,
            model=self.model.name,
            planner=getattr(self.planner.model, "name", ""),
        )
        if plan is not None:
            self.recorder(PlanReady(run_id=run_id, plan=plan.model_dump()))
        async for item in self._drive(run_id, {"run_id": run_id}):
            yield item

    def submit(
        self, instruction: str, *, conversation_id: str | None = None, plan: Plan | None = None
    ) -> str:
        """Record `instruction` as a run for a worker to run (`stepgraph worker`), without
        running it here; its run id. Workers on any machine that share this runtime's
        PostgreSQL store pick it up (docs/deploy.md); `store.run(run_id)` shows how far it
        got. With `plan`, the worker runs that plan instead of planning (as `run` does)."""
        text = check_instruction(instruction)
        plan = self._given_plan(text, plan)
        return self.recorder.submit(
            text,
            plan=None if plan is None else plan.model_dump(),
            conversation_id=conversation_id,
            model=self.model.name,
            planner=getattr(self.planner.model, "name", ""),
        )

    def _given_plan(self, instruction: str, plan: Plan | None) -> Plan | None:
        """A plan given to run instead of planning, checked against these executors."""
        if plan is None:
            return None
        return Plan(goal=plan.goal or instruction, steps=plan.steps).validate_for(self.executors)

    def resume(
        self,
        run_id: str,
        *,
        approve: Any = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> RunResult:
        """Continue a run that was killed or interrupted; finished steps do not run again.
        A run waiting for plan approval (`approve_plan=True`) goes on with `approve`: True
        (the default), or a plan (a Plan or its dict) to run instead."""
        return asyncio.run(self.aresume(run_id, approve=approve, on_event=on_event))

    async def aresume(
        self, run_id: str, *, approve: Any = None, on_event: Callable[[Event], None] | None = None
    ) -> RunResult:
        """The async twin of `resume`."""
        from langgraph.types import Command

        run_id = self.store.resolve_run_id(run_id)
        record = self.store.run(run_id)
        if record.status in ("done", "unverified", "partial"):
            raise StepgraphError(
                f"run {run_id} already finished ({record.status}); nothing to resume. "
                f"`stepgraph replay {run_id}` replays it."
            )
        if isinstance(approve, Plan):
            approve = approve.model_dump()
        payload: Any = Command(resume=approve if approve is not None else True)
        if record.status != "interrupted":
            payload = _CONTINUE  # killed, failed or out of budget: continue from the checkpoint
        return await _collect(self._drive(run_id, payload), on_event)

    def _connect_mcp(self, servers: list, model: BackendBase) -> list:
        """Each tool of each MCP server as an executor (`stepgraph.executors.mcp`); a server
        that does not start is left out with a warning that names it."""
        if not servers:
            return []
        from pydantic import ValidationError

        from stepgraph.executors.llm import writing_for
        from stepgraph.executors.mcp import connect

        try:
            connections, tools = connect(servers)
        except ValidationError as exc:  # a malformed server entry
            raise ConfigError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        for tool in tools:
            if tool.name in self.executors:
                raise ConfigError(
                    f"MCP tool {tool.tool!r} of server {tool.server!r} would be executor "
                    f"{tool.name!r}, which exists already: give the server another name"
                )
            self.executors[tool.name] = writing_for(tool, model)
        return connections

    def close(self) -> None:
        """Close the store if this runtime opened it; a Store you passed in stays yours.
        MCP servers this runtime started are stopped."""
        for connection in self._mcp:
            connection.close()
        self.recorder.close()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- driving the LangGraph run -------------------------------------------------------

    async def _drive(self, run_id: str, payload: Any) -> AsyncIterator[Event | RunResult]:
        started = time.perf_counter()
        self._boards[run_id] = Board()
        self._boards[run_id].deadline = started + self.max_seconds
        run_span, self._boards[run_id].trace = telemetry.run_span(run_id, self.model.name)
        status, error, answer = "failed", None, ""
        composed_tokens = [0, 0]
        candidates, chosen = [], None
        try:
            # the store's PostgreSQL database, or the SQLite file beside a SQLite store
            async with open_checkpointer(self.store, self._checkpoints, _Serializer()) as saver:
                workflow = self._workflow(saver)
                config = {"configurable": {"thread_id": run_id}}
                if payload is _CONTINUE:
                    # LangGraph resumes a thread only on `None` input; new input would start
                    # over and run finished tasks again. No checkpoint yet: start afresh.
                    checkpoint = await saver.aget_tuple(config)
                    payload = None if checkpoint else {"run_id": run_id}
                stream = workflow.astream(payload, config, stream_mode=["custom", "updates"])
                deadline = started + self.max_seconds
                iterator = stream.__aiter__()
                while True:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        raise TimeoutError
                    try:
                        mode, chunk = await asyncio.wait_for(iterator.__anext__(), remaining)
                    except StopAsyncIteration:
                        break
                    if mode == "custom" and isinstance(chunk, Event):
                        yield chunk  # recorded when it was told (`_teller`)
                    elif mode == "updates" and "__interrupt__" in chunk:
                        status = "interrupted"
                    elif mode == "updates":
                        for value in chunk.values():
                            if isinstance(value, dict) and "answer" in value and "status" in value:
                                answer, status = value["answer"], value["status"]
                                composed_tokens = [
                                    value.get("prompt_tokens", 0),
                                    value.get("completion_tokens", 0),
                                ]
                                candidates = value.get("candidates", [])
                                chosen = value.get("chosen")
        except TimeoutError:
            status, error = "budget_exceeded", f"the run took longer than {self.max_seconds:g} s"
        except StepgraphError as exc:
            status, error = "failed", str(exc)
        finally:
            self._boards.pop(run_id, None)
        await self.recorder.flush()
        record = self.store.run(run_id)
        steps = [_step_result(s, record) for s in record.steps]
        if status == "budget_exceeded" and not answer:
            # out of time before the choice: the direct answer, if it finished, is still an
            # answer (unchecked; the status says the run did not finish)
            direct = next((s for s in steps if s.step_id == "direct" and s.status == "done"), None)
            if direct is not None:
                answer, chosen = direct.output, "direct"
                error += "; the answer is the model's direct one, not cross-checked"
        prompt = sum(s.prompt_tokens for s in steps) + composed_tokens[0]
        completion = sum(s.completion_tokens for s in steps) + composed_tokens[1]
        seconds = time.perf_counter() - started
        event = RunFinished(run_id=run_id, status=status, error=error)
        if status != "interrupted":
            event = RunFinished(
                run_id=run_id,
                status=status,
                error=error,
                answer=answer,
                seconds=seconds,
                prompt_tokens=prompt,
                completion_tokens=completion,
            )
        self.recorder(event)
        await self.recorder.flush()  # the next run of the conversation reads this turn
        _end_run_span(run_span, event)
        yield event
        yield RunResult(
            run_id=run_id,
            status=status,
            answer=answer,
            plan=record.plan,
            steps=steps,
            conversation_id=record.conversation_id,
            seconds=seconds,
            prompt_tokens=prompt,
            completion_tokens=completion,
            error=error,
            verdicts=[_verdict(v) for v in record.verdicts if v.step_id is None],
            candidates=candidates,
            chosen=chosen,
        )

    def _workflow(self, saver):
        runtime = self

        @task
        async def execute(run_id: str, step: dict) -> dict:
            return await runtime._execute(run_id, Step(**step))

        @task
        async def answer_directly(run_id: str) -> dict:
            return await runtime._direct(run_id)

        @task
        async def compose(run_id: str, results: list[dict], final_ids: list[str]) -> dict:
            return await runtime._compose(run_id, results, final_ids)

        @task
        async def decide(run_id: str, composed: dict, direct: dict | None, results: list) -> dict:
            return await runtime._decide(run_id, composed, direct, results)

        @task
        async def replan(run_id: str, progress: str, round: int) -> dict | None:
            return await runtime._replan(run_id, progress, round)

        @task
        async def break_ties(run_id: str, direct: dict) -> dict:
            return await runtime._break_ties(run_id, direct)

        tasks = Tasks(
            execute=execute,
            answer_directly=answer_directly,
            compose=compose,
            decide=decide,
            replan=replan,
            break_ties=break_ties,
        )

        @entrypoint(checkpointer=saver)
        async def workflow(inputs: dict) -> dict:
            return await Orchestration(runtime, tasks, inputs["run_id"]).run()

        return workflow

    # -- the pieces ----------------------------------------------------------------------

    def _teller(self) -> Callable[[Event], None]:
        """How a task tells what happened: the recorder stores the event as it is told (so
        a task that flushes the recorder before it returns is in the store before LangGraph
        checkpoints it), and the run's stream shows it."""
        stream = get_stream_writer()

        def tell(event: Event) -> None:
            self.recorder(event)
            stream(event)
            if isinstance(event, VerdictMade):
                board = self._boards.get(event.run_id)
                telemetry.check(
                    event.run_id,
                    event.step_id,
                    event.check,
                    event.passed,
                    event.evidence,
                    board.trace if board else None,
                )

        return tell

    def _conversation(self, record) -> list[Message]:
        if not record.conversation_id:
            return []
        return [
            Message(role=m.role, content=m.content)  # type: ignore[arg-type]
            for m in self.store.context(record.conversation_id, record.instruction)
            if m.role in ("user", "assistant")
        ]

    @_traced(lambda *a, **k: ("stepgraph.plan", {}))
    async def _plan(
        self,
        run_id: str,
        instruction: str,
        history: list[Message],
        write,
        dispatch: Callable[[Step], Awaitable[None]] | None,
        *,
        hold_lone_llm: bool = False,
    ) -> Plan:
        """Plan, dispatching each step as it is decoded when `dispatch` is given. With
        `hold_lone_llm`, a first llm step that depends on nothing waits for a second step:
        if none comes, the plan is the direct answer, which is already being decoded."""
        streamed: list[Step] = []
        held: list[Step] = []
        planning = self.planner.stream(instruction, conversation=history or None)
        async for step in planning:
            write(PlanStep(run_id=run_id, step_id=step.id, **step.model_dump(exclude={"id"})))
            if (
                dispatch is not None
                and step.executor in self.executors
                and all(d in {s.id for s in streamed} for d in step.depends_on)
                and step.id not in {s.id for s in streamed}
            ):
                if (
                    hold_lone_llm
                    and not streamed
                    and self._writes_text(step.executor)
                    and not step.depends_on
                ):
                    held.append(step)
                else:
                    for early in held:
                        await dispatch(early)
                    held = []
                    await dispatch(step)
            streamed.append(step)
        plan = planning.plan
        stats = {k: v for k, v in planning.stats.items() if k != "raw"}
        telemetry.annotate(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": getattr(self.planner.model, "name", ""),
                "gen_ai.usage.output_tokens": stats.get("completion_tokens"),
                "stepgraph.steps": len(plan.steps),
            }
        )
        self._boards[run_id].plan_tokens = stats.get("completion_tokens", 0)
        self._boards[run_id].tokens += self._boards[run_id].plan_tokens
        write(PlanReady(run_id=run_id, plan=plan.model_dump(), **stats))
        return plan

    def _confirmable(self, board: Board) -> Literal["number", "form"] | None:
        """How code can confirm the model's own answer before any plan is made, so that a
        plan is made only where it is needed: by candidates that agree on the number the
        task's questions ask for ("number"; several questions that do not agree are then
        planned), or by the form constraints the instruction states, words, sections,
        JSON, ... ("form"). None (plan) for a task that asks for something written beside
        a number, with `plan="always"`, or where an executor could bring in facts the
        model cannot see. Measured with the 0.5B model: on IFEval (112 prompts) a plan's answer
        was chosen over the direct one 4 times and passed Google's checks where the direct
        one failed once, for about half of a run's tokens; on GSM8K (200 problems) the
        composed answer was right 34 times, the direct one 55."""
        if self.planning == "always" or any(
            declares(e, "brings_facts") for e in self.executors.values()
        ):
            return None
        if asks_for_number(board.task, board.history):
            return "number" if only_questions(board.task) else None
        return "form" if extract_constraints(board.task).constraints else None

    @_traced(lambda *a: ("stepgraph.candidates", {}))
    async def _break_ties(self, run_id: str, direct: dict) -> dict:
        """The candidates made before any plan: the direct answer, then tie-breakers while
        no two agree. Returned (plain data) so that a resumed run gets them back. The program
        is not decoded beside the direct answer, though it is always needed: the 0.5B
        model's answer to the demo changed when decoded in a batch with it, and went wrong
        (2 of 2 runs; alone, right 7 of 7)."""
        await self._candidates(run_id, None, direct, [], numeric=True)
        await self.recorder.flush()
        return self._boards[run_id].made

    def _by_candidates(self, run_id: str) -> Plan | None:
        """The one-step plan the candidates answer, for questions asking for numbers: where
        two with sound numbers agree and hold most of the vote (verified), and for a single
        question also where none agree (not verified), since for one question a plan's
        answer is the weaker candidate (GSM8K, 0.5B, 200 problems: right 34 times against
        the direct answer's 55; 7 of 125 where candidates disagreed, first 179) and would
        double the tokens spent (`benchmarks/gsm8k_candidates.py`). None (so: plan) for
        several questions whose candidates do not agree: the plan's computed steps are
        then the evidence, and its answer a candidate beside the ones made here."""
        made = [Candidate(**m["candidate"]) for m in self._boards[run_id].made.values()]
        choice = choose(made, numeric=True)
        if not (choice.verified or one_question(self._boards[run_id].task)):
            return None
        return self._one_step_plan(run_id, f"no plan made: {choice.reason}")

    async def _unplanned(self, run_id: str, direct: dict) -> Plan | None:
        """The one-step plan that is the direct answer, when that answer (with code's form
        repairs) passes every check of the instruction; None (so: plan) when it does not.
        The reason is kept beside the answer's checks."""
        board = self._boards[run_id]
        if direct["status"] != "done":
            return None
        answer = repaired(board.task, direct["output"])
        verdicts = await self.verifier.check_answer(board.task, answer, [], from_results=False)
        if failures(verdicts):
            return None
        passed = sum(bool(v.passed) for v in verdicts)
        return self._one_step_plan(
            run_id,
            f"no plan made: the model's own answer passed all {passed} checks of the instruction",
        )

    def _one_step_plan(self, run_id: str, why: str) -> Plan | None:
        """A plan of one prose step, the whole instruction, which the direct answer answers
        (None without an executor that writes prose). `why` is kept beside the answer's
        checks, as a `planning` verdict."""
        board = self._boards[run_id]
        writer = next((n for n in self.executors if self._writes_text(n)), None)
        if writer is None:
            return None
        plan = Plan(goal=board.task, steps=[Step(id="s1", executor=writer, instruction=board.task)])
        write = self._teller()
        note = Verdict(check="planning", passed=None, evidence=why)
        self._stream_verdicts(run_id, None, [note], write)
        write(PlanReady(run_id=run_id, plan=plan.model_dump(), unplanned=why))
        return plan

    async def _direct(self, run_id: str) -> dict:
        """The direct candidate: the model answers the whole instruction itself. Kept as a
        node of the run (step id "direct") like any step."""
        board = self._boards[run_id]
        request = direct_request(
            board.task, board.history, reasoning=asks_for_number(board.task, board.history)
        )
        return await self._candidate(
            run_id,
            "direct",
            "llm",
            "the model answers the whole instruction itself",
            answer_directly(self.model, request, calculate=self.calculate),
        )

    @_traced(
        lambda name, executor, *a: (
            f"stepgraph.step {name}",
            {"step_id": name, "executor": executor, "candidate": True},
        )
    )
    async def _candidate(
        self, run_id: str, name: str, executor: str, instruction: str, work
    ) -> dict:
        """Run one candidate's work (a coroutine giving a StepOutput) as a recorded node."""
        board = self._boards[run_id]
        write = self._teller()
        write(
            StepStarted(
                run_id=run_id,
                step_id=name,
                executor=executor,
                instruction=instruction,
                candidate=True,
            )
        )
        started = time.perf_counter()
        try:
            output = await asyncio.wait_for(work, self.step_timeout)
        except TimeoutError:
            output = StepOutput(error=f"took longer than {self.step_timeout:g} s")
        except Exception as exc:  # a candidate that crashes is dropped, never the run
            output = StepOutput(error=f"{type(exc).__name__}: {exc}")
        board.tokens += output.completion_tokens
        ok = output.ok and bool(output.output.strip())
        result = StepResult(
            step_id=name,
            executor=executor,
            instruction=instruction,
            output=output.output,
            data=output.data,
            status="done" if ok else "failed",
            error=output.error or (None if ok else "no output"),
            seconds=time.perf_counter() - started,
            prompt_tokens=output.prompt_tokens,
            completion_tokens=output.completion_tokens,
            model=output.model,
        )
        write(_finished(run_id, result, candidate=True))
        await self.recorder.flush()  # stored before LangGraph keeps the task's result
        return result.model_dump()

    def _as_step(self, run_id: str, step: Step, direct: dict) -> dict:
        """A lone llm step answered by the direct candidate (recorded, with no new tokens)."""
        result = StepResult(
            **{
                **direct,
                "step_id": step.id,
                "instruction": step.instruction,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "data": _ANSWERED_BY_DIRECT,
            }
        )
        self._teller()(_finished(run_id, result))
        return result.model_dump()

    @_traced(
        lambda step: (f"stepgraph.step {step.id}", {"step_id": step.id, "executor": step.executor})
    )
    async def _execute(self, run_id: str, step: Step) -> dict:
        board = self._boards[run_id]
        write = self._teller()
        deps = await board.wait(step.depends_on)
        blocked = [d for d, r in deps.items() if r["status"] != "done"]
        outputs = {d: r["output"] for d, r in deps.items()}
        instruction = render(step.instruction, outputs)
        base = StepResult(
            step_id=step.id,
            executor=step.executor,
            instruction=instruction,
            depends_on=step.depends_on,
            attempts=0,
        )
        if blocked:
            result = base.model_copy(
                update={
                    "status": "skipped",
                    "error": f"skipped: {', '.join(blocked)} did not finish",
                }
            )
            write(_finished(run_id, result, args=step.args))
            return result.model_dump()
        if board.tokens >= self.max_tokens:
            result = base.model_copy(update={"status": "skipped", "error": "token budget spent"})
            write(_finished(run_id, result, args=step.args))
            return result.model_dump()
        write(
            StepStarted(
                run_id=run_id,
                step_id=step.id,
                executor=step.executor,
                instruction=instruction,
                args=step.args,
                depends_on=step.depends_on,
            )
        )
        history = board.history if self._writes_text(step.executor) else []
        task = board.task
        if step.id in board.notes:
            task = f"{task}\n\n{board.notes[step.id]}"
        inp = StepInput(
            run_id=run_id,
            task=task,
            step_id=step.id,
            instruction=instruction,
            args=step.args,
            dependencies=outputs,
            conversation=history,
            timeout=self.step_timeout,
        )
        started = time.perf_counter()
        attempts, tokens, feedback, every_verdict = 0, [0, 0], None, []
        kept: tuple[StepOutput, list[dict]] | None = None  # the best attempt with output
        output, verdicts = StepOutput(error="not run"), []
        tried: list[dict] = []  # every attempt's own output and verdicts, for the trace
        for attempt in range(2):  # the first try, and one retry with the verifier's feedback
            attempts = attempt + 1
            output = await self._run_executor(step, inp.model_copy(update={"feedback": feedback}))
            tokens[0] += output.prompt_tokens
            tokens[1] += output.completion_tokens
            checked = await self.verifier.check_step(step, inp, output)
            verdicts = [v.as_dict() for v in checked]  # told when the step ends (or never)
            every_verdict += verdicts
            tried.append(
                {
                    "attempt": attempts,
                    "output": output.output[:4000],
                    "error": output.error,
                    "verdicts": verdicts,
                }
            )
            failed = [v for v in verdicts if v["passed"] is False]
            if (
                output.ok
                and output.output.strip()
                and (kept is None or len(failed) < _failed(kept[1]))
            ):
                kept = (output, verdicts)  # a retry replaces an attempt only if it is better
            if not failed or output.permanent:
                break
            feedback = "; ".join(f"{v['check']}: {v.get('evidence') or 'failed'}" for v in failed)
        board.tokens += tokens[1]
        # An output that fails a check is kept, flagged by its verdicts, and the run goes on
        # (the composer and the final cross-check see the flags); only a step that produced
        # nothing has failed.
        if kept is not None:
            output, verdicts = kept
        ok = kept is not None
        result = base.model_copy(
            update={
                "output": output.output,
                "data": output.data,
                "status": "done" if ok else "failed",
                "error": None if ok else (output.error or feedback or "no output"),
                "attempts": attempts,
                "seconds": time.perf_counter() - started,
                "prompt_tokens": tokens[0],
                "completion_tokens": tokens[1],
                "model": output.model,
                "verdicts": [Verdict(**v) for v in verdicts],  # model_copy does not validate
            }
        )
        if board.current.get(step.id) != step.model_dump():
            return result.model_dump()  # superseded by a repaired plan: leave no trace
        for verdict in every_verdict:
            write(VerdictMade(run_id=run_id, step_id=step.id, **verdict))
        if len(tried) > 1:  # a retried step keeps each attempt, not only the one kept
            for data in tried:
                write(StepAttempt(run_id=run_id, step_id=step.id, **data))
        write(_finished(run_id, result, args=step.args))
        await self.recorder.flush()  # stored before LangGraph keeps the task's result
        return result.model_dump()

    def _writes_text(self, executor: str) -> bool:
        return executor in self.verifier.writing

    async def _run_executor(self, step: Step, inp: StepInput) -> StepOutput:
        executor = self.executors.get(step.executor)
        if executor is None:
            return StepOutput(error=f"no executor named {step.executor!r}")
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(2),
                reraise=True,
                wait=wait_exponential(multiplier=0.2, max=2),
                retry=retry_if_exception(_transient),
            ):
                with attempt:
                    return await asyncio.wait_for(executor.run(inp), self.step_timeout)
        except TimeoutError:
            return StepOutput(error=f"the step took longer than {self.step_timeout:g} s")
        except Exception as exc:  # an executor crash is the step's failure, not the run's
            return StepOutput(error=f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _stream_verdicts(run_id: str, step_id: str | None, verdicts, write) -> None:
        """Tell verdicts (step_id None: the final answer's); the recorder stores them."""
        for verdict in verdicts:
            write(VerdictMade(run_id=run_id, step_id=step_id, **verdict.as_dict()))

    async def _replan(self, run_id: str, progress: str, round: int) -> dict | None:
        """A new plan for what is left, given what was done and what failed; None when the
        planner cannot make one (the run then ends with what it has)."""
        write = self._teller()
        board = self._boards[run_id]
        instruction = (
            f"{board.task}\n\n{progress}\nPlan only the work still needed to finish the task."
        )
        try:
            plan = await self.planner.aplan(instruction, conversation=board.history or None)
        except StepgraphError as exc:
            write(PlanReady(run_id=run_id, round=round, error=str(exc)))
            return None
        renamed = {**plan.renamed(f"r{round}").model_dump(), "goal": board.task}
        write(PlanReady(run_id=run_id, round=round, plan=renamed))
        await self.recorder.flush()
        return plan.model_dump()

    @_traced(lambda *a: ("stepgraph.compose", {}))
    async def _compose(self, run_id: str, results: list[dict], final_ids: list[str]) -> dict:
        """The composed candidate: the final answer written from every step's result and the
        instruction (a last step sees only its own dependencies, and small models drop facts
        on the way), checked against the instruction. Without a direct candidate to weigh it
        against, it is also revised here."""
        board = self._boards[run_id]
        steps = [StepResult(**r) for r in results]
        composed = await self.composer.compose(
            board.task,
            steps,
            history=board.history,
            final_id=final_ids[-1] if final_ids else None,
            can_spend=self._can_spend(board),
            revise=not self.direct,
        )
        board.tokens += composed.completion_tokens
        return {
            **composed.model_dump(),
            "verdicts": [v.model_dump() for v in composed.verdicts],
            "usable": any(s.status == "done" for s in steps),
            "complete": all(s.status == "done" for s in steps if s.step_id in final_ids),
            "final_id": final_ids[-1] if final_ids else None,
        }

    def _can_spend(self, board: Board) -> Callable[[int], bool]:
        return lambda spent: (
            board.tokens + spent < self.max_tokens and time.perf_counter() < board.deadline
        )

    @_traced(lambda *a: ("stepgraph.choose", {}))
    async def _decide(
        self, run_id: str, composed: dict, direct: dict | None, results: list[dict]
    ) -> dict:
        """Cross-check the candidates, choose, and revise the chosen answer for the checks it
        fails. The answer is never dropped for a failed check: a run whose checks fail or
        whose candidates disagree on a number ends "unverified"."""
        write = self._teller()
        board = self._boards[run_id]
        steps = [StepResult(**r) for r in results]
        numeric = asks_for_number(board.task, board.history)
        candidates, drafts = await self._candidates(run_id, composed, direct, steps, numeric)
        grounded = any(
            s.status == "done" and declares(self.executors.get(s.executor), "brings_facts")
            for s in steps
        )
        choice = choose(candidates, numeric=numeric, grounded=grounded)
        tokens = [composed["prompt_tokens"], composed["completion_tokens"]]
        if choice.chosen is None:
            answer, verdicts = composed["answer"], []
        elif direct is None:  # plan only: the composer has revised its answer already
            answer, verdicts = drafts["composed"].answer, drafts["composed"].verdicts
        else:
            final = await self._revise(run_id, choice, drafts[choice.chosen], steps, composed)
            tokens = [tokens[0] + final.prompt_tokens, tokens[1] + final.completion_tokens]
            answer, verdicts = final.answer, final.verdicts
        # verified: the candidates agree on the number it answers with (when it answers with
        # one) and it passes every check that applied, after revision; with no direct
        # candidate (plan only) nothing was cross-checked, and only the checks count
        agreed_value = choice.verified if choice.value is not None and direct is not None else True
        one_number = direct is not None and choice.value is not None and one_question(board.task)
        if one_number and not extract_constraints(board.task).constraints:  # no form to break
            answer = with_answer_line(answer, choice.value)
        if choice.value is not None and not states_value(answer, choice.value):
            # a rewrite for form that lost the number it was chosen for answers nothing
            lost = Verdict(
                check="states_choice",
                passed=False,
                evidence=f"the answer does not state {choice.value:g}, the number chosen",
            )
            verdicts = [*verdicts, lost]
        nothing_finished = bool(steps) and all(s.status != "done" for s in steps)
        agreed = choice.value is not None and choice.verified  # agreement stands in for steps
        if direct is not None and nothing_finished and not agreed:
            verdicts = [*verdicts, _no_step_finished(steps)]
        status = "done" if agreed_value and not failures(verdicts) else "unverified"
        if choice.chosen is None:
            status = "failed"
        elif direct is None and status == "done" and not composed["complete"]:
            status = "partial"
        if direct is not None:  # the choice and its reason, beside the answer's checks
            why = f"{choice.chosen or 'none'} chosen: {choice.reason}"
            if numeric and self._stopped_by_budget(board, candidates):
                why += f"; no further tie-breaker: the tie budget ({self.tie_budget:g}x) was spent"
            cross = Verdict(
                check="cross_check",
                passed=choice.verified if choice.value is not None else None,
                evidence=why,
            )
            verdicts = [*verdicts, cross]
        self._stream_verdicts(run_id, None, verdicts, write)
        # shown plain: claims were read from the model's own markup (\boxed{}) above
        answer = readable_math(answer, board.task)
        write(AnswerGiven(run_id=run_id, answer=answer, status=status))
        await self.recorder.flush()
        return {
            "answer": answer,
            "status": status,
            "prompt_tokens": tokens[0],
            "completion_tokens": tokens[1] + board.plan_tokens,  # the plan's tokens count too
            "candidates": [c.model_dump() for c in choice.candidates],
            "chosen": choice.chosen,
        }

    async def _candidates(
        self,
        run_id: str,
        composed: dict | None,
        direct: dict | None,
        steps: list[StepResult],
        numeric: bool,
    ) -> tuple[list[Candidate], dict[str, Composition]]:
        """The candidates in the order they were made, each checked like a final answer, and
        the drafts of those that can be shown. A tie-breaker (a program, the plain answer,
        then samples; `_tie_breakers`) is made one at a time, only while no two candidates
        agree on a number; one made before the plan (`_break_ties`) is reused, not made again."""
        board = self._boards[run_id]
        candidates: list[Candidate] = []
        drafts: dict[str, Composition] = {}
        lone = direct is not None and len(steps) == 1 and steps[0].data == _ANSWERED_BY_DIRECT
        if composed is not None and not lone:  # a lone llm step's answer is the direct one
            drafts["composed"] = Composition(**composed)
            candidates.append(
                Candidate(
                    name="composed",
                    answer=composed["answer"],
                    claims=answer_claims(composed["answer"], board.task) if numeric else [],
                    failed=_failures(drafts["composed"].verdicts),
                    error=None if composed["usable"] else "no step produced anything",
                )
            )
        if direct is None:
            return candidates, drafts
        for name in ("direct", *self._tie_breakers()):
            made = board.made.get(name)
            settled = (
                not numeric
                or agreed(candidates)
                or not self._can_spend(board)(0)
                or not self._may_break_tie(board)
            )
            if made is None and name != "direct" and settled:
                break
            if made is None:
                result = direct if name == "direct" else await self._tie_breaker(run_id, name)
                made = await self._checked(run_id, name, result, steps, numeric)
                board.made[name] = made
            candidates.append(Candidate(**made["candidate"]))
            if made["draft"] is not None:
                drafts[name] = Composition(**made["draft"])
        return candidates, drafts

    def _may_break_tie(self, board: Board) -> bool:
        """Whether another tie-breaker may start: the candidates made so far (the direct
        answer's included) have generated less than `tie_budget` times the direct answer's
        tokens. Relative to the direct answer because its length is the problem's own size:
        a long problem may spend more. A direct answer that generated nothing sets no bound.
        3, the default, is the issue's own limit on the median problem's tokens: GSM8K dev,
        0.5B, 200 problems, 77 right at 2.76x the direct mode's median tokens (at 4: 76 at
        3.05x; `benchmarks/README.md`). It cuts the second sample, seldom the first."""
        direct = board.made.get("direct", {}).get("tokens") or 0
        if self.tie_budget is None or direct <= 0:
            return True
        return sum(m.get("tokens", 0) for m in board.made.values()) < self.tie_budget * direct

    def _stopped_by_budget(self, board: Board, candidates: list[Candidate]) -> bool:
        """Whether the tie budget is what left tie-breakers unmade: none agreed, and one
        more would have started but for it. Said beside the choice, not hidden."""
        unmade = any(name not in board.made for name in self._tie_breakers())
        return unmade and not agreed(candidates) and not self._may_break_tie(board)

    def _tie_breakers(self) -> list[str]:
        """What breaks a tie between candidates, in the order it is tried: a program for the
        whole problem (independent of the model's prose), the plain answer (greedy, other
        words, no calculator), then the samples. The plain answer before the samples: it errs
        apart from the direct answer and is right as often (`candidates.PLAIN_SYSTEM`), a
        sample less often (GSM8K dev, 0.5B: 41 and 34 of 200 against 57). Replayed on the
        run before it, 70 right against the plain answer's 57 at 3.05x its median tokens;
        run, 73 at 3.07x (`benchmarks/README.md`)."""
        program = ["program"] if "python" in self.executors else []
        return program + ["plain"] + [f"sample-{i}" for i in range(1, self.samples + 1)]

    async def _tie_breaker(self, run_id: str, name: str) -> dict:
        if name == "program":
            board = self._boards[run_id]
            work = program_answer(
                self.executors["python"],
                board.task,
                run_id=run_id,
                timeout=self.step_timeout,
                history=board.history,
            )
            return await self._candidate(run_id, "program", "python", PROGRAM_STEP, work)
        if name == "plain":
            board = self._boards[run_id]
            return await self._candidate(
                run_id,
                "plain",
                "llm",
                "the model answers in other words, without the calculator",
                answer_directly(
                    self.model, plain_request(board.task, board.history), calculate=False
                ),
            )
        return await self._sample(run_id, int(name.rsplit("-", 1)[1]))

    async def _checked(
        self, run_id: str, name: str, result: dict, steps: list[StepResult], numeric: bool
    ) -> dict:
        """A made candidate, checked like a final answer (its verdicts recorded under its
        name), with the draft it can be shown as: plain data, kept for the rest of the run."""
        task = self._boards[run_id].task
        text, checked, error = result["output"].strip(), [], result["error"]
        draft = None
        if name != "program":
            if text:
                checked = await self.verifier.check_answer(task, text, steps, from_results=False)
            self._stream_verdicts(run_id, name, checked, self._teller())
            draft = Composition(answer=text, verdicts=checked).model_dump()
            claims = answer_claims(text, task) if numeric else []
        else:  # a program votes with the one number it printed, or not at all
            value = single_number(text)
            claims = [value] if value is not None else []
            if error is None and not claims:
                error = "printed no single number"
        candidate = Candidate(
            name=name,
            answer=text,
            claims=claims,
            failed=_failures(checked),
            error=error,
            presentable=name != "program",
        )
        # its tokens, for the tie budget (kept with it, so a resumed run counts them too)
        return {
            "candidate": candidate.model_dump(),
            "draft": draft,
            "tokens": result["completion_tokens"],
        }

    async def _revise(
        self, run_id: str, choice, draft: Composition, steps: list[StepResult], composed: dict
    ) -> Composition:
        """The chosen answer revised for the checks it fails, keeping its number; a revision
        that fails (the model's server went away) keeps the answer it was revising."""
        board = self._boards[run_id]
        worked = None  # the conversation a worked answer (reasoning first) was written in
        if choice.chosen == "plain":
            worked = plain_request(board.task, board.history).messages
        elif choice.chosen.startswith("sample-") or (
            choice.chosen == "direct" and asks_for_number(board.task, board.history)
        ):
            worked = direct_request(board.task, board.history, reasoning=True).messages
        try:
            final = await self.composer.finish(
                board.task,
                draft.model_copy(update={"prompt_tokens": 0, "completion_tokens": 0}),
                steps,
                from_results=choice.chosen == "composed",
                history=board.history,
                final_id=composed.get("final_id"),
                can_spend=self._can_spend(board),
                keep=choice.value,
                worked=worked,
            )
        except Exception as exc:
            note = Verdict(check="revision", passed=None, evidence=f"{type(exc).__name__}: {exc}")
            return draft.model_copy(update={"verdicts": [*draft.verdicts, note]})
        board.tokens += final.completion_tokens
        return final

    async def _sample(self, run_id: str, i: int) -> dict:
        board = self._boards[run_id]
        request = direct_request(board.task, board.history, reasoning=True, temperature=0.7, seed=i)
        return await self._candidate(
            run_id,
            f"sample-{i}",
            "llm",
            "a sampled answer to the whole instruction (temperature 0.7)",
            answer_directly(self.model, request, calculate=self.calculate),
        )


def _finished(
    run_id: str, result: StepResult, *, args: dict | None = None, candidate: bool = False
) -> Event:
    """The event that ends a step: what a live view shows and the recorder stores."""
    return StepFinished(
        run_id=run_id,
        step_id=result.step_id,
        status=result.status,
        output=result.output,
        error=result.error,
        seconds=result.seconds,
        attempts=result.attempts,
        candidate=candidate,
        executor=result.executor,
        instruction=result.instruction,
        args=args or {},
        depends_on=result.depends_on,
        result_data=_jsonable(result.data),
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        model=result.model,
    )


def _failed(verdicts: list[dict]) -> int:
    return sum(v["passed"] is False for v in verdicts)


def _failures(verdicts: list[Verdict]) -> list[str]:
    return [f"{v.check}: {v.evidence}" for v in failures(verdicts)]


async def _collect(stream: AsyncIterator, on_event: Callable[[Event], None] | None) -> RunResult:
    """Hand events to `on_event` and return the RunResult that ends every stream."""
    result = None
    async for item in stream:
        if isinstance(item, RunResult):
            result = item
        elif on_event is not None:
            on_event(item)
    assert result is not None, "a run stream always ends with its RunResult"
    return result


def _check_budgets(**budgets: float) -> None:
    """A budget of 0, below 0, inf or nan would only fail inside the run: refuse it here."""
    for name, value in budgets.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive, finite number, not {value!r}")


def _executor_map(
    executors, model: BackendBase, *, docs=None, sql=None, calculate=True, sandbox="kernel"
) -> dict[str, Executor]:
    if executors is None:
        from stepgraph.executors import default_registry
        from stepgraph.executors.llm import LlmExecutor

        llm = LlmExecutor(model, calculate=calculate)
        registry = default_registry(docs_dir=docs, sql_db=sql, llm=llm, python_sandbox=sandbox)
        executors = {name: registry.get(name) for name in registry.names()}
    if isinstance(executors, list):
        executors = {e.name: e for e in executors}
    if not isinstance(executors, dict):  # an ExecutorRegistry
        executors = {name: executors.get(name) for name in executors.names()}
    from stepgraph.executors.llm import writing_for

    # an executor that declares the model writes its code (python) or expression
    # (calculator) gets it written when a step does not carry it
    return {name: writing_for(executor, model) for name, executor in executors.items()}


class _Serializer(JsonPlusSerializer):
    """LangGraph's serializer, for what msgpack cannot hold: an integer past 64 bits in a
    task's result (the calculator's exact 3 ** 100) is written as its digits; the run
    would otherwise end in the serializer's TypeError."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return super().dumps_typed(_checkpointable(obj))


def _checkpointable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _checkpointable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_checkpointable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    return value


def _jsonable(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _verdict(record) -> Verdict:
    return Verdict(check=record.check, passed=record.passed, evidence=record.evidence)


def _step_result(step, record) -> StepResult:
    verdicts = [_verdict(v) for v in record.verdicts if v.step_id == step.step_id]
    return StepResult(
        step_id=step.step_id,
        executor=step.executor or "",
        instruction=step.instruction or "",
        depends_on=step.depends_on or [],
        output=step.output or "",
        data=step.data,
        status=step.status if step.status in ("done", "failed", "skipped") else "failed",
        error=step.error,
        attempts=step.attempts or 0,
        seconds=step.seconds or 0.0,
        prompt_tokens=step.prompt_tokens or 0,
        completion_tokens=step.completion_tokens or 0,
        model=step.model or "",
        verdicts=verdicts,
    )
