"""Let the model write out its reasoning while the calculator does its arithmetic.

A small model reasons in the right order more often than it multiplies correctly: a
quarter of the wrong GSM8K answers of the 0.5B model hold a written-out equation with a
wrong result (measured, 9 of 36), and every later line builds on that result. So the
model writes until it reaches `=`; when the text before it ends with an arithmetic
expression, the calculator's value is written after the `=` and the model goes on from
there, with the right number in front of it. Anything else (`x = 5` in code, `==`) is left
to the model.

This needs a backend that continues a reply (`continues_replies`); on others, and with a
request that carries a grammar or schema, it is one plain completion.
"""

from __future__ import annotations

from collections import Counter

from stepgraph.executors.written_math import trailing_value
from stepgraph.models.base import BackendBase, Completion, Message, Request


async def complete_calculating(
    model: BackendBase, request: Request, *, enabled: bool = True, max_values: int = 24
) -> tuple[Completion, int]:
    """`request` completed with the calculator writing every result the model computes;
    also how many values it wrote. Tokens of all the rounds are added up. `enabled=False`
    (a caller's switch) and backends that cannot continue a reply get one plain call."""
    if (
        not enabled
        or not model.continues_replies
        or request.grammar is not None
        or request.json_schema is not None
    ):
        return await model.acomplete(request), 0
    text, values, prompt, completion, seconds = "", 0, 0, 0, 0.0
    first_token: float | None = None
    seen: Counter[str] = Counter()  # the text before each `=`: a model that loops repeats it
    while True:
        messages = list(request.messages)
        if text:
            messages.append(Message(role="assistant", content=text))
        budget = request.max_tokens - completion
        stop = [*request.stop, "="] if values < max_values else request.stop
        done = await model.acomplete(
            request.model_copy(update={"messages": messages, "max_tokens": budget, "stop": stop})
        )
        if not text:
            first_token = done.first_token_seconds  # the reply's, not the last round's
        text += done.text
        prompt += done.prompt_tokens
        completion += done.completion_tokens
        seconds += done.seconds
        if done.stopped_by != "=" or completion >= request.max_tokens:
            break
        seen[text[-40:]] += 1
        if seen[text[-40:]] >= 3:
            break  # the same line a third time: the model is looping, end the reply here
        value = trailing_value(text)
        if value is None:
            text += "="
        else:
            text += ("= " if text.endswith(" ") else "=") + value + " "
            values += 1
    at_equals = done.stopped_by == "="  # ended there: a loop, or the budget spent
    return done.model_copy(
        update={
            "text": text.rstrip() if at_equals else text,
            "stopped_by": None if at_equals else done.stopped_by,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "seconds": seconds,
            "first_token_seconds": first_token,
        }
    ), values
