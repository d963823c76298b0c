"""Pull complete step objects out of a plan's JSON while it is still being decoded."""

from __future__ import annotations

import json


class StepScanner:
    """Feed text pieces; get back each `{...}` inside the `steps` array once it closes.

    Tracks only string state and brace depth, so it works on any prefix of
    `{"steps":[{...},{...}]}` and never needs the rest of the document.
    """

    def __init__(self) -> None:
        self.text = ""
        self._pos = 0
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._start: int | None = None

    def feed(self, piece: str) -> list[dict]:
        self.text += piece
        found = []
        while self._pos < len(self.text):
            ch = self.text[self._pos]
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif ch == "\\":
                    self._escape = True
                elif ch == '"':
                    self._in_string = False
            elif ch == '"':
                self._in_string = True
            elif ch in "{[":
                self._depth += 1
                if ch == "{" and self._depth == 3:
                    self._start = self._pos
            elif ch in "}]":
                if ch == "}" and self._depth == 3 and self._start is not None:
                    try:
                        obj = json.loads(self.text[self._start : self._pos + 1])
                    except json.JSONDecodeError:
                        obj = None
                    if isinstance(obj, dict):
                        found.append(obj)
                    self._start = None
                self._depth -= 1
            self._pos += 1
        return found
