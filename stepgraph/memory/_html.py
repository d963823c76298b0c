"""A run as one self-contained HTML page, for people who inspect traces.

Everything from the store is passed through `html.escape`: step outputs are model text and
may contain markup. The plan graph is drawn by Mermaid from a CDN; the same plan is also an
HTML table, so the page reads fully offline.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from stepgraph.memory.records import RunRecord, StepRecord, VerdictRecord

# Statuses drawn green or red in the graph; any other status is drawn plain.
STATUS_CLASS = {
    **dict.fromkeys(("done", "ok", "succeeded", "completed", "passed"), ":::done"),
    **dict.fromkeys(("failed", "error"), ":::failed"),
}
MERMAID_CDN = "https://cdn.jsdelivr.net/npm/mermaid@11/dist/mermaid.esm.min.mjs"

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


def _mermaid_label(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    for char, entity in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, entity)
    return text


def mermaid(run: RunRecord) -> str:
    """The plan graph as Mermaid flowchart text (nodes n0, n1, ... so any step id is safe)."""
    steps = _plan_steps(run)
    status = {s.step_id: s.status for s in run.steps}
    node = {str(s.get("id")): f"n{i}" for i, s in enumerate(steps)}
    lines = ["flowchart TD"]
    for s in steps:
        sid = str(s.get("id"))
        label = _mermaid_label(f"{sid} [{s.get('executor') or '?'}]: {s.get('instruction') or ''}")
        style = STATUS_CLASS.get(status.get(sid, ""), "")
        lines.append(f'  {node[sid]}["{label}"]{style}')
    for s in steps:
        for dep in s.get("depends_on") or []:
            if str(dep) in node:
                lines.append(f"  {node[str(dep)]} --> {node[str(s.get('id'))]}")
    lines.append("  classDef done fill:#dff3e2,stroke:#17702a")
    lines.append("  classDef failed fill:#fbe0de,stroke:#b3261e")
    return "\n".join(lines)


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


def _step_section(step: StepRecord, verdicts: list[VerdictRecord]) -> str:
    parts = [
        f'<section class="step" id="step-{_e(step.step_id)}">',
        f'<h3>{_e(step.step_id)} <small class="status-{_e(step.status)}">{_e(step.status)}'
        f"</small></h3>",
        "<dl>",
        f"<dt>executor</dt><dd>{_e(step.executor)}</dd>",
        f"<dt>attempts</dt><dd>{step.attempts}</dd>",
        f"<dt>seconds</dt><dd>{_e(step.seconds)}</dd>",
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
    parts.append(f"<h4>Verdicts</h4>{_verdicts_table(verdicts)}</section>")
    return "\n".join(parts)


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
<dt>seconds</dt><dd>{_e(run.seconds)}</dd>
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
<pre class="mermaid">{_e(mermaid(run))}</pre>
<table><tr><th>step</th><th>executor</th><th>instruction</th><th>depends on</th>
<th>status</th></tr>
{"".join(plan_rows)}
</table>
<h2>Steps</h2>
{"".join(_step_section(s, [v for v in run.verdicts if v.step_id == s.step_id]) for s in run.steps)}
<h2>Events</h2>
<details><summary>{len(run.events)} events</summary>
<table><tr><th>seq</th><th>type</th><th>time</th><th>payload</th></tr>{events}</table>
</details>
<script type="module">
import mermaid from "{MERMAID_CDN}";
mermaid.initialize({{ startOnLoad: true, securityLevel: "strict" }});
</script>
</body>
</html>
"""
