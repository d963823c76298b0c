"""The planner prompt: executors, worked decompositions, the conversation, the instruction.

The examples teach the two things a small model gets wrong (measured): it splits simple
questions into many steps, and it repeats steps. So half of them are one-step plans, and
each multi-step example uses every step exactly once.
"""

from __future__ import annotations

import json

from stepgraph.errors import ConfigError
from stepgraph.models.base import Message

SYSTEM = """You are a planner. You split a task into the fewest steps that can each be done by one executor, and you write the plan as JSON.
Rules:
- A simple task, or one that one executor can finish, gets ONE step.
- Use several steps only when the task has separate parts or needs exact computation.
- Steps that do not need each other's results have no dependency between them, so they run at the same time.
- A step can use an earlier step's result by writing {{s1}} in its instruction; then it must list s1 in depends_on.
- The last step gives the final answer and must depend on the steps it needs.
- Never repeat a step.
- Never do arithmetic inside an instruction: give each calculation its own calculator step and use its result as {{sN}}.

Executors:
{executors}"""


def _built_in_hints() -> dict[str, str]:
    """What the planner reads for each built-in executor, from the executors themselves
    (a record may name built-in executors only, so this table stands in for them)."""
    from stepgraph.executors import CalculatorExecutor, DocsExecutor, PythonExecutor
    from stepgraph.executors.llm import LlmExecutor

    return {
        e.name: e.planner_hint
        for e in (LlmExecutor, CalculatorExecutor, PythonExecutor, DocsExecutor)
    }


PLANNER_HINTS = _built_in_hints()


# What a training, seed or gold record offers the planner: built-in executor names, or name ->
# the text the planner reads, for executors whose description is made at run time (`sql`
# carries its database's tables, an MCP tool its server's words), which no name can stand for.
OfferedExecutors = list[str] | dict[str, str]


def offered_names(executors: OfferedExecutors) -> list[str]:
    """The executor names a record offers (llm always, as `planner_descriptions` does), or
    ValueError saying what to write instead: a name the planner cannot be told about could
    never be planned as the record says."""
    if not executors:
        raise ValueError("no executors; offer at least one")
    if isinstance(executors, dict):
        if empty := [name for name, text in executors.items() if not text.strip()]:
            raise ValueError(f"empty description for {', '.join(empty)}; say what each does")
    elif unknown := [name for name in executors if name not in PLANNER_HINTS]:
        raise ValueError(
            f"unknown executors {', '.join(unknown)}; built-in names are "
            f'{", ".join(PLANNER_HINTS)}, others need a description: {{"name": "what it does"}}'
        )
    return list(executors) if "llm" in executors else ["llm", *executors]


def planner_descriptions(executors) -> dict[str, str]:
    """Executor name -> the text the planner sees, from a registry, a dict of executor
    objects or of descriptions, or a list of built-in names."""
    if hasattr(executors, "names"):
        names, get = executors.names(), executors.get
    elif isinstance(executors, dict):
        names, get = list(executors), executors.__getitem__
    else:
        names, get = list(executors), None
    out = {"llm": PLANNER_HINTS["llm"]} if "llm" not in names else {}
    for name in names:
        if get is not None:
            executor = get(name)
            if isinstance(executor, str):
                out[name] = " ".join(executor.split())
                continue
            out[name] = getattr(executor, "planner_hint", None) or executor.description
        elif name in PLANNER_HINTS:
            out[name] = PLANNER_HINTS[name]
        else:
            known = ", ".join(PLANNER_HINTS)
            raise ConfigError(
                f"no planner description for executor {name!r}; built-in names are {known}, "
                "other executors need a description (name -> text) or a registry"
            )
    return out


# (instruction, plan steps). Kept small and hand-checked; not part of any evaluation set.
EXAMPLES: list[tuple[str, list[dict]]] = [
    (
        "A farm sells eggs at $0.25 each and milk at $1.10 per litre. This week it sold 1240 eggs and 385 litres of milk. What was its revenue, and which product earned more?",
        [
            {"id": "s1", "depends_on": [], "executor": "calculator", "instruction": "1240 * 0.25"},
            {"id": "s2", "depends_on": [], "executor": "calculator", "instruction": "385 * 1.10"},
            {
                "id": "s3",
                "depends_on": ["s1", "s2"],
                "executor": "calculator",
                "instruction": "{{s1}} + {{s2}}",
            },
            {
                "id": "s4",
                "depends_on": ["s1", "s2", "s3"],
                "executor": "llm",
                "instruction": "Eggs earned {{s1}} dollars and milk earned {{s2}} dollars, {{s3}} dollars in total. State the total revenue and which product earned more.",
            },
        ],
    ),
    (
        "Compare Python and Rust for writing a web server in under 120 words, covering speed and ease of learning.",
        [
            {
                "id": "s1",
                "depends_on": [],
                "executor": "llm",
                "instruction": "List the strengths and weaknesses of Python for writing a web server: speed and ease of learning.",
            },
            {
                "id": "s2",
                "depends_on": [],
                "executor": "llm",
                "instruction": "List the strengths and weaknesses of Rust for writing a web server: speed and ease of learning.",
            },
            {
                "id": "s3",
                "depends_on": ["s1", "s2"],
                "executor": "llm",
                "instruction": "Using {{s1}} and {{s2}}, write a comparison of Python and Rust for a web server in under 120 words.",
            },
        ],
    ),
    (
        "Find the sum of all prime numbers below 1000 and say whether it is even or odd.",
        [
            {
                "id": "s1",
                "depends_on": [],
                "executor": "python",
                "instruction": "Compute the sum of all prime numbers below 1000 and print it.",
            },
            {
                "id": "s2",
                "depends_on": ["s1"],
                "executor": "llm",
                "instruction": "The sum of the primes below 1000 is {{s1}}. Say whether it is even or odd.",
            },
        ],
    ),
    (
        "A shop sells pens at $3 each. Tom buys 14 pens and pays with a $50 bill. How much change does he get?",
        [
            {"id": "s1", "depends_on": [], "executor": "calculator", "instruction": "50 - 14 * 3"},
            {
                "id": "s2",
                "depends_on": ["s1"],
                "executor": "llm",
                "instruction": "Tom pays $50 for 14 pens at $3 each and gets {{s1}} dollars back. State his change in one sentence.",
            },
        ],
    ),
    (
        "Write a haiku about autumn rain.",
        [
            {
                "id": "s1",
                "depends_on": [],
                "executor": "llm",
                "instruction": "Write a haiku about autumn rain.",
            }
        ],
    ),
    (
        "What is the capital of Australia?",
        [
            {
                "id": "s1",
                "depends_on": [],
                "executor": "llm",
                "instruction": "Answer: what is the capital of Australia?",
            }
        ],
    ),
]


def plan_json(steps: list[dict]) -> str:
    """Compact JSON in the key order the grammar uses."""
    ordered = [{k: s[k] for k in ("id", "depends_on", "executor", "instruction")} for s in steps]
    return json.dumps({"steps": ordered}, separators=(",", ":"), ensure_ascii=False)


def planner_messages(
    instruction: str,
    *,
    executors: dict[str, str],
    conversation: list[Message] | None = None,
    feedback: str | None = None,
    previous: str | None = None,
    few_shot: bool = True,
) -> list[Message]:
    """Chat messages for one plan. The system text and examples stay identical from call to
    call, so the engine reuses their KV cache; what varies comes last.

    A fine-tuned planner is trained and run with `few_shot=False`: it learned the examples'
    lesson from its training data, and the prompt is a fifth as long."""
    allowed = set(executors)
    lines = "\n".join(f"- {name}: {text}" for name, text in executors.items())
    messages = [Message(role="system", content=SYSTEM.format(executors=lines))]
    for example, steps in EXAMPLES if few_shot else []:
        if all(s["executor"] in allowed for s in steps):
            messages.append(Message(role="user", content=f"Task: {example}"))
            messages.append(Message(role="assistant", content=plan_json(steps)))
    task = f"Task: {instruction}"
    if conversation:
        turns = "\n".join(f"{m.role}: {m.content}" for m in conversation)
        task = f"Conversation so far:\n{turns}\n\n{task}\n(Plan for this task; use the conversation for context.)"
    messages.append(Message(role="user", content=task))
    if feedback and previous:
        messages.append(Message(role="assistant", content=previous))
        messages.append(
            Message(
                role="user", content=f"That plan is invalid: {feedback}\nWrite a corrected plan."
            )
        )
    return messages
