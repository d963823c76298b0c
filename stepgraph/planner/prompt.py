"""The planner prompt: executors, worked decompositions, the conversation, the instruction.

The examples teach the two things a small model gets wrong (measured): it splits simple
questions into many steps, and it repeats steps. So half of them are one-step plans, and
each multi-step example uses every step exactly once.
"""

from __future__ import annotations

import json

from stepgraph.models.base import Message

SYSTEM = """You are a planner. You split a task into the fewest steps that can each be done by one executor, and you write the plan as JSON.
Rules:
- A simple task, or one that one executor can finish, gets ONE step.
- Use several steps only when the task has separate parts or needs exact computation.
- Steps that do not need each other's results have no dependency between them, so they run at the same time.
- A step can use an earlier step's result by writing {{s1}} in its instruction; then it must list s1 in depends_on.
- The last step gives the final answer and must depend on the steps it needs.
- Never repeat a step.

Executors:
{executors}"""

# (instruction, plan steps). Kept small and hand-checked; not part of any evaluation set.
EXAMPLES: list[tuple[str, list[dict]]] = [
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
    (
        "A shop sells pens at $3 each. Tom buys 14 pens and pays with a $50 bill. How much change does he get?",
        [
            {"id": "s1", "depends_on": [], "executor": "calculator", "instruction": "50 - 14 * 3"},
            {
                "id": "s2",
                "depends_on": ["s1"],
                "executor": "llm",
                "instruction": "Tom's change is {{s1}} dollars. State the answer in one sentence.",
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
) -> list[Message]:
    """Chat messages for one plan. The system text and examples stay identical from call to
    call, so the engine reuses their KV cache; what varies comes last."""
    allowed = set(executors)
    lines = "\n".join(f"- {name}: {text}" for name, text in executors.items())
    messages = [Message(role="system", content=SYSTEM.format(executors=lines))]
    for example, steps in EXAMPLES:
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
