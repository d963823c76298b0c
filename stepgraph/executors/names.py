"""A mechanical fix for one mistake small models make in the programs they write: a name
used in another case than the one it was assigned in.

The 0.5B writes `seattle_sheep = 20` and then `4 * Seattle_sheep` (proper nouns keep their
capital); the program dies with a NameError, and its one rewrite with the error repeats it.
GSM8K dev, 0.5B, 2026-12-05: 7 of the 200 whole-problem programs died so; with the names
fixed 4 of the 7 printed the right answer. The fix is safe because it only touches a name
that nothing binds, which would raise NameError when read anyway, and only when exactly one
bound name matches it ignoring case. What it changed is reported with the step's data.
"""

from __future__ import annotations

import ast
import builtins

_BUILTINS = frozenset(dir(builtins))


def fix_name_case(code: str, known: frozenset[str] = frozenset({"deps"})) -> tuple[str, list[str]]:
    """`code` with each unbound name that matches exactly one bound name ignoring case
    renamed to it, and the renames ("Seattle_sheep -> seattle_sheep"). `known`: names the
    program is given from outside (the python executor's `deps`). Code that does not parse,
    or imports with `*` (which binds names no one can see here), is returned unchanged."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code, []
    nodes = list(ast.walk(tree))
    if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in nodes):
        return code, []
    bound = {name for node in nodes for name in _binds(node)}
    by_case: dict[str, set[str]] = {}
    for name in bound:
        by_case.setdefault(name.casefold(), set()).add(name)
    edits = []  # (line, start byte, end byte, old, new)
    for node in nodes:
        if not isinstance(node, ast.Name) or not isinstance(node.ctx, ast.Load):
            continue
        if node.id in bound or node.id in _BUILTINS or node.id in known:
            continue
        matches = by_case.get(node.id.casefold(), set())
        if len(matches) == 1:
            (new,) = matches
            edits.append((node.lineno, node.col_offset, node.end_col_offset, node.id, new))
    if not edits:
        return code, []
    lines = code.splitlines(keepends=True)
    # offsets are in UTF-8 bytes; editing from the end keeps the earlier ones valid
    for lineno, start, end, _, new in sorted(edits, reverse=True):
        raw = lines[lineno - 1].encode()
        lines[lineno - 1] = (raw[:start] + new.encode() + raw[end:]).decode()
    return "".join(lines), sorted({f"{old} -> {new}" for *_, old, new in edits})


def _binds(node: ast.AST) -> list[str]:
    """The names `node` binds in some scope of the program."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
        return [node.id]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.alias):
        return [(node.asname or node.name).split(".")[0]]
    if isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
        return [node.name]
    if isinstance(node, ast.MatchMapping) and node.rest:
        return [node.rest]
    if isinstance(node, ast.Global | ast.Nonlocal):
        return list(node.names)
    return []
