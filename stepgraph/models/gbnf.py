"""GBNF grammars checked before llama.cpp sees them: a grammar it cannot parse would crash
the process rather than raise, so every grammar a request carries is parsed here first
(by xgrammar), and the names llama.cpp takes are checked by hand (xgrammar takes more).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

from stepgraph.errors import GrammarError

# A rule definition at the start of a line, and the names llama.cpp accepts (xgrammar takes more).
_RULE = re.compile(r"^[ \t]*([^\s\"\[(|#:]\S*?)[ \t]*::=", re.M)
_NAME = re.compile(r"[A-Za-z0-9-]+")


@lru_cache(maxsize=64)
def check_gbnf(grammar: str) -> None:
    """Raise GrammarError if the grammar does not parse (instead of a llama.cpp segfault).

    Importing xgrammar imports torch, several seconds on a small CPU, so a grammar that
    parsed once is remembered (its SHA-256, in the cache directory) and later processes
    skip the import. Only successes are remembered; a grammar that failed is checked again.
    """
    bad = [name for name in _RULE.findall(grammar) if not _NAME.fullmatch(name)]
    if bad:
        raise GrammarError(
            f"invalid grammar: rule names {', '.join(bad)} are not allowed; "
            "llama.cpp takes letters, digits and hyphens only"
        )
    digest = hashlib.sha256(grammar.encode()).hexdigest()
    known = _checked_file()
    try:
        if digest in known.read_text().split():
            return
    except OSError:
        pass
    import xgrammar

    try:
        xgrammar.Grammar.from_ebnf(grammar)
    except Exception as exc:  # xgrammar raises RuntimeError/ValueError with the parse error
        raise GrammarError(f"invalid grammar: {exc}") from None
    try:
        known.parent.mkdir(parents=True, exist_ok=True)
        with known.open("a") as f:  # one short line per append: safe across processes
            f.write(digest + "\n")
    except OSError:
        pass  # a read-only cache only costs the check next time


def _checked_file() -> Path:
    from stepgraph.models.embedded import cache_root  # lazily: it reads the environment

    return cache_root() / "grammars-parsed.txt"
