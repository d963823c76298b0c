"""A multi-turn assistant whose memory is the store, so a conversation outlives the process.

Each turn is one run in a conversation. The runtime hands the planner (and the llm steps)
the conversation so far: the recent turns, plus older ones that match the new message,
within a token budget; it stores the new turn when the run ends. Nothing is kept in this
process, so `--conversation ID` picks the conversation up again in a new one.

    .venv/bin/python examples/multi_turn.py                          # chat; empty line ends
    .venv/bin/python examples/multi_turn.py 'We are 14 people with a budget of $3,500.'
    .venv/bin/python examples/multi_turn.py --conversation ID "And if 3 more people join?"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from stepgraph import Runtime, StepgraphError, Store
from stepgraph.models import BackendBase


def typed_lines() -> Iterator[str]:
    """Lines typed at the prompt, until an empty line or the end of input."""
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            return
        if not line:
            return
        yield line


def main(
    argv: list[str] | None = None,
    *,
    model: BackendBase | None = None,
    store: Store | str | Path | None = None,
) -> int:
    """Run the turns given (or typed); 0 when every turn's run finished, 2 for a bad id."""
    parser = argparse.ArgumentParser(description="Chat with memory kept in the store.")
    parser.add_argument("message", nargs="*", help="one turn (default: read turns from stdin)")
    parser.add_argument("--conversation", help="id of a conversation to continue")
    parser.add_argument("--model", help="model spec (default: the configured model)")
    parser.add_argument("--store", help="memory store file (default: the user's store)")
    args = parser.parse_args(argv)
    store = store if store is not None else args.store
    runtime = Runtime(model or args.model, store=store)
    try:
        conversation = args.conversation
        if conversation is None:
            conversation = runtime.store.new_conversation(" ".join(args.message)[:80] or None)
        else:
            try:
                earlier = runtime.store.messages(conversation)
            except StepgraphError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"continuing a conversation of {len(earlier)} messages")
        print(f"conversation: {conversation}")
        status = 0
        for message in [" ".join(args.message)] if args.message else typed_lines():
            result = runtime.run(message, conversation_id=conversation)
            print(f"assistant> {result.answer or '(no answer: ' + str(result.error) + ')'}")
            status |= result.status != "done"
        print(f"carry on: .venv/bin/python examples/multi_turn.py --conversation {conversation}")
        return status
    finally:
        runtime.close()  # closes the store only when the runtime opened it


if __name__ == "__main__":
    raise SystemExit(main())
