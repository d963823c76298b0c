"""Output shape: JSON that parses (and matches the step's schema), code that compiles."""

from __future__ import annotations

import json
import re

from stepgraph.verifier.verdict import Verdict

_FENCE = re.compile(r"```(?P<lang>[\w+-]*)[ \t]*\n(?P<body>.*?)```", re.DOTALL)


def json_text(text: str) -> str:
    """The JSON part of an answer: the whole text, or its one fenced block."""
    blocks = _FENCE.findall(text)
    if len(blocks) == 1 and blocks[0][0].lower() in ("", "json"):
        return blocks[0][1].strip()
    return text.strip()


def check_json(text: str, schema: dict | None = None) -> Verdict:
    try:
        value = json.loads(json_text(text))
    except json.JSONDecodeError as exc:
        return Verdict(check="json", passed=False, evidence=f"not valid JSON: {exc}")
    if schema is None:
        return Verdict(check="json", passed=True, evidence="parses as JSON")
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except jsonschema.SchemaError as exc:
        return Verdict(
            check="json_schema",
            passed=None,
            evidence=f"the step's schema is invalid: {exc.message}",
        )
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        return Verdict(check="json_schema", passed=False, evidence=f"at {where}: {exc.message}")
    return Verdict(check="json_schema", passed=True, evidence="matches the step's schema")


def check_code(text: str) -> Verdict | None:
    """Every fenced python block compiles; None when the text has none."""
    blocks = [b for lang, b in _FENCE.findall(text) if lang.lower() in ("python", "py")]
    if not blocks:
        return None
    for index, block in enumerate(blocks, 1):
        try:
            compile(block, f"<block {index}>", "exec")
        except SyntaxError as exc:
            return Verdict(
                check="code_compiles",
                passed=False,
                evidence=f"python block {index}, line {exc.lineno}: {exc.msg}",
            )
    return Verdict(check="code_compiles", passed=True, evidence=f"{len(blocks)} block(s) compile")
