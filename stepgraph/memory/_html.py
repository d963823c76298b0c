"""A run as one self-contained HTML page, for people who inspect traces.

Everything from the store is passed through `html.escape`: step outputs are model text and
may contain markup. The plan graph is an inline SVG drawn here, and the page has no
script and loads nothing: it reads the same offline, in a mail attachment or a CI
artifact, as online.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from stepgraph.memory.records import RunRecord, StepRecord, VerdictRecord

# Fill and stroke of a graph node by status; any other status is drawn grey.
STATUS_COLOURS = {
    **dict.fromkeys(("done", "ok", "succeeded", "completed", "passed"), ("#dff3e2", "#17702a")),
    **dict.fromkeys(("failed", "error"), ("#fbe0de", "#b3261e")),
}
NODE_W, NODE_H, GAP_X, GAP_Y = 240, 44, 28, 40

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 70rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; }
pre { background: #f6f6f6; padding: .6rem; overflow-x: auto; white-space: pre-wrap; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; }
.status-done, .passed-yes { color: #17702a; }
.status-failed, .passed-no { color: #b3261e; }
section.step { border-top: 1px solid #ddd; margin-top: 1.5rem; }
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _tokens(prompt: int | None, completion: int | None) -> str:
    if prompt is None and completion is None:
        return ""
    return f"{prompt or 0} in, {completion or 0} out"


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _plan_steps(run: RunRecord) -> list[dict[str, Any]]:
    """The latest plan's steps, or, without a plan, the steps as recorded."""
    steps = (run.plan or {}).get("steps") or []
    if steps:
        return [s for s in steps if isinstance(s, dict)]
    return [
        {
            "id": s.step_id,
            "executor": s.executor,
            "instruction": s.instruction,
            "depends_on": s.depends_on or [],
        }
        for s in run.steps
    ]


def _layers(steps: list[dict[str, Any]]) -> list[list[str]]:
    """Step ids by depth: a step sits one layer below its deepest dependency."""
    ids = [str(s.get("id")) for s in steps]
    deps = {
        str(s.get("id")): [str(d) for d in s.get("depends_on") or [] if str(d) in ids]
        for s in steps
    }
    depth: dict[str, int] = {}

    def level(sid: str, seen: frozenset = frozenset()) -> int:
        if sid not in depth:
            below = [level(d, seen | {sid}) for d in deps[sid] if d not in seen]
            depth[sid] = 1 + max(below, default=-1)
        return depth[sid]

    for sid in ids:
        level(sid)
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for sid in ids:
        layers[depth[sid]].append(sid)
    return layers


def plan_svg(run: RunRecord) -> str:
    """The plan graph as an inline SVG: one box per step (id, executor, the start of its
    instruction), coloured by status, an arrow from each dependency, top to bottom."""
    steps = _plan_steps(run)
    if not steps:
        return "<p>No plan.</p>"
    by_id = {str(s.get("id")): s for s in steps}
    status = {s.step_id: s.status for s in run.steps}
    layers = _layers(steps)
    width = max(len(layer) for layer in layers) * (NODE_W + GAP_X) + GAP_X
    height = len(layers) * (NODE_H + GAP_Y) + GAP_Y
    where: dict[str, tuple[int, int]] = {}
    for row, layer in enumerate(layers):
        left = (width - len(layer) * (NODE_W + GAP_X) + GAP_X) // 2
        for col, sid in enumerate(layer):
            where[sid] = (left + col * (NODE_W + GAP_X), GAP_Y + row * (NODE_H + GAP_Y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="plan graph" '
        'font-family="system-ui, sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker></defs>',
    ]
    for sid, step in by_id.items():
        x, y = where[sid]
        for dep in step.get("depends_on") or []:
            if str(dep) in where:
                dx, dy = where[str(dep)]
                parts.append(
                    f'<line x1="{dx + NODE_W // 2}" y1="{dy + NODE_H}" x2="{x + NODE_W // 2}" '
                    f'y2="{y}" stroke="#666" marker-end="url(#arrow)"/>'
                )
    for sid, step in by_id.items():
        x, y = where[sid]
        fill, stroke = STATUS_COLOURS.get(status.get(sid, ""), ("#f4f4f4", "#888"))
        text = " ".join(str(step.get("instruction") or "").split())
        text = text if len(text) <= 36 else text[:35] + "…"
        parts.append(
            f'<a href="#step-{_e(sid)}"><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" '
            f'rx="6" fill="{fill}" stroke="{stroke}"/>'
            f'<text x="{x + 8}" y="{y + 17}" font-weight="600">{_e(sid)} · '
            f"{_e(step.get('executor') or '?')} · {_e(status.get(sid, 'not run'))}</text>"
            f'<text x="{x + 8}" y="{y + 34}">{_e(text)}</text></a>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def _verdicts_table(verdicts: list[VerdictRecord]) -> str:
    if not verdicts:
        return "<p>No verdicts.</p>"
    rows = []
    for v in verdicts:
        passed = {True: "yes", False: "no", None: "no verdict"}[v.passed]
        rows.append(
            f'<tr><td>{_e(v.check)}</td><td class="passed-{passed.split()[0]}">{passed}</td>'
            f"<td>{_e(v.evidence)}</td></tr>"
        )
    return (
        "<table><tr><th>check</th><th>passed</th><th>evidence</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _attempts(attempts: list[dict]) -> str:
    """Each attempt of a retried step, with its own output and verdicts (the step above
    shows the attempt that was kept)."""
    if len(attempts) < 2:
        return ""
    items = []
    for a in attempts:
        rows = "".join(
            f"<tr><td>{_e(v.get('check'))}</td>"
            f"<td>{ {True: 'yes', False: 'no', None: 'no verdict'}.get(v.get('passed')) }</td>"
            f"<td>{_e(v.get('evidence'))}</td></tr>"
            for v in a.get("verdicts") or []
        )
        error = f"<h5>Error</h5><pre>{_e(a['error'])}</pre>" if a.get("error") else ""
        items.append(
            f"<h5>attempt {_e(a.get('attempt'))}</h5><pre>{_e(a.get('output'))}</pre>{error}"
            f"<table><tr><th>check</th><th>passed</th><th>evidence</th></tr>{rows}</table>"
        )
    return f"<details><summary>{len(attempts)} attempts</summary>{''.join(items)}</details>"


def _step_section(
    step: StepRecord, verdicts: list[VerdictRecord], attempts: list[dict] = ()
) -> str:
    parts = [
        f'<section class="step" id="step-{_e(step.step_id)}">',
        f'<h3>{_e(step.step_id)} <small class="status-{_e(step.status)}">{_e(step.status)}'
        f"</small></h3>",
        "<dl>",
        f"<dt>executor</dt><dd>{_e(step.executor)}</dd>",
        f"<dt>attempts</dt><dd>{step.attempts}</dd>",
        f"<dt>time</dt><dd>{_seconds(step.seconds)}</dd>",
        f"<dt>tokens</dt><dd>{_tokens(step.prompt_tokens, step.completion_tokens)}</dd>",
        f"<dt>model</dt><dd>{_e(step.model)}</dd>",
        "</dl>",
        f"<h4>Instruction</h4><pre>{_e(step.instruction)}</pre>",
    ]
    if step.args:
        parts.append(f"<h4>Arguments</h4><pre>{_e(_json(step.args))}</pre>")
    if step.input is not None:
        parts.append(f"<h4>Input</h4><pre>{_e(_json(step.input))}</pre>")
    parts.append(f"<h4>Output</h4><pre>{_e(step.output)}</pre>")
    if step.data is not None:
        parts.append(f"<h4>Data</h4><pre>{_e(_json(step.data))}</pre>")
    if step.error:
        parts.append(f"<h4>Error</h4><pre>{_e(step.error)}</pre>")
    parts.append(
        f"<h4>Verdicts</h4>{_verdicts_table(verdicts)}{_attempts(list(attempts))}</section>"
    )
    return "\n".join(parts)


def _plan_versions(run: RunRecord) -> str:
    """Every plan the run had (a replan adds one), oldest first; the graph shows the last."""
    if len(run.plans) < 2:
        return ""
    items = []
    for version in run.plans:
        rows = "".join(
            f"<tr><td>{_e(s.get('id'))}</td><td>{_e(s.get('executor'))}</td>"
            f"<td>{_e(s.get('instruction'))}</td>"
            f"<td>{_e(', '.join(map(str, s.get('depends_on') or [])))}</td></tr>"
            for s in version.plan.get("steps") or []
            if isinstance(s, dict)
        )
        items.append(
            f"<h4>version {version.version} <small>{_e(version.created)}</small></h4>"
            "<table><tr><th>step</th><th>executor</th><th>instruction</th><th>depends on</th>"
            f"</tr>{rows}</table>"
        )
    return f"<details><summary>{len(run.plans)} plan versions</summary>{''.join(items)}</details>"


def render_run_html(run: RunRecord) -> str:
    steps = _plan_steps(run)
    recorded = {s.step_id: s for s in run.steps}
    plan_rows = []
    for s in steps:
        sid = str(s.get("id"))
        done = recorded.get(sid)
        status = done.status if done else "not run"
        plan_rows.append(
            f'<tr><td><a href="#step-{_e(sid)}">{_e(sid)}</a></td><td>{_e(s.get("executor"))}'
            f"</td><td>{_e(s.get('instruction'))}</td>"
            f"<td>{_e(', '.join(map(str, s.get('depends_on') or [])))}</td>"
            f'<td class="status-{_e(status)}">{_e(status)}</td></tr>'
        )
    events = "".join(
        f"<tr><td>{e.seq}</td><td>{_e(e.type)}</td><td>{_e(e.created)}</td>"
        f"<td><pre>{_e(_json(e.payload))}</pre></td></tr>"
        for e in run.events
    )
    goal = (run.plan or {}).get("goal")
    attempts: dict[str, list[dict]] = {}
    for e in run.events:
        if e.type == "step_attempt" and isinstance(e.payload, dict):
            attempts.setdefault(str(e.payload.get("step_id")), []).append(e.payload)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>stepgraph run {_e(run.id)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{_e(run.instruction)}</h1>
<dl>
<dt>run</dt><dd>{_e(run.id)}</dd>
<dt>status</dt><dd class="status-{_e(run.status)}">{_e(run.status)}</dd>
<dt>model</dt><dd>{_e(run.model)}</dd>
<dt>planner</dt><dd>{_e(run.planner)}</dd>
<dt>conversation</dt><dd>{_e(run.conversation_id)}</dd>
<dt>started</dt><dd>{_e(run.created)}</dd>
<dt>finished</dt><dd>{_e(run.finished)}</dd>
<dt>time</dt><dd>{_seconds(run.seconds)}</dd>
<dt>tokens</dt><dd>{_tokens(run.prompt_tokens, run.completion_tokens)}</dd>
<dt>plan versions</dt><dd>{len(run.plans)}</dd>
</dl>
<h2>Answer</h2>
<pre>{_e(run.answer)}</pre>
{f"<h3>Error</h3><pre>{_e(run.error)}</pre>" if run.error else ""}
<h3>Verdicts on the answer</h3>
{_verdicts_table([v for v in run.verdicts if v.step_id is None])}
<h2>Plan</h2>
{f"<p>Goal: {_e(goal)}</p>" if goal else ""}
{plan_svg(run)}
<table><tr><th>step</th><th>executor</th><th>instruction</th><th>depends on</th>
<th>status</th></tr>
{"".join(plan_rows)}
</table>
{_plan_versions(run)}
<h2>Steps</h2>
{"".join(_step_section(s, [v for v in run.verdicts if v.step_id == s.step_id], attempts.get(s.step_id, [])) for s in run.steps)}
<h2>Events</h2>
<details><summary>{len(run.events)} events</summary>
<table><tr><th>seq</th><th>type</th><th>time</th><th>payload</th></tr>{events}</table>
</details>
</body>
</html>
"""
