"""GBNF grammars checked before llama.cpp sees them: a grammar it cannot parse can crash
or hang the process rather than raise (`root ::= "a"{2,1}` hangs llama.cpp 0.3.36), so
every grammar a request carries is parsed first, where a crash costs nothing: by llama.cpp's
own parser in a child process when the model file is known, else by xgrammar when it is
installed (the `gpu` extra). The names llama.cpp takes are checked by hand either way.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from stepgraph.errors import GrammarError

# A rule definition at the start of a line, and the names llama.cpp accepts (xgrammar takes more).
_RULE = re.compile(r"^[ \t]*([^\s\"\[(|#:]\S*?)[ \t]*::=", re.M)
_NAME = re.compile(r"[A-Za-z0-9-]+")
PARSE_SECONDS = 30  # a parse takes under a second; a hang is stopped after this
# llama.cpp's parser, given the grammar on stdin and a model file for its vocabulary; exit 3
# when it returns no sampler (a parse error, which it prints on stderr)
_PARSE = """
import sys, llama_cpp
model = llama_cpp.Llama(sys.argv[1], vocab_only=True, verbose=False)
vocab = llama_cpp.llama_model_get_vocab(model.model)
grammar = sys.stdin.buffer.read()
sys.exit(0 if llama_cpp.llama_sampler_init_grammar(vocab, grammar, b"root") else 3)
"""


@lru_cache(maxsize=64)
def check_gbnf(grammar: str, model: str | None = None) -> None:
    """Raise GrammarError if the grammar does not parse (instead of a llama.cpp crash).

    `model`: a GGUF file whose vocabulary llama.cpp's parser can use. Without one, xgrammar
    parses it; without xgrammar either, only the names are checked here and the backend,
    which knows its model, checks the grammar again. Both parsers are slow to start (a
    process; xgrammar imports torch), so a grammar that parsed once is remembered (its
    SHA-256, in the cache directory) and later processes skip the parse. Only successes are
    remembered; a grammar that failed is checked again.
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
    if model is not None:
        _parse_with_llama_cpp(grammar, model)
    elif not _parse_with_xgrammar(grammar):
        return  # not parsed: not remembered as parsed
    try:
        known.parent.mkdir(parents=True, exist_ok=True)
        with known.open("a") as f:  # one short line per append: safe across processes
            f.write(digest + "\n")
    except OSError:
        pass  # a read-only cache only costs the check next time


def _parse_with_llama_cpp(grammar: str, model: str) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PARSE, model],
            input=grammar.encode(),
            capture_output=True,
            timeout=PARSE_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise GrammarError(
            f"invalid grammar: llama.cpp's parser did not finish in {PARSE_SECONDS:g} s"
        ) from None
    if done.returncode == 0:
        return
    said = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
    why = said[-1].strip() if said else f"exit status {done.returncode}"
    raise GrammarError(f"invalid grammar: llama.cpp cannot parse it: {why}")


def _parse_with_xgrammar(grammar: str) -> bool:
    """Parse with xgrammar; False when it is not installed."""
    try:
        import xgrammar
    except ImportError:
        return False
    try:
        xgrammar.Grammar.from_ebnf(grammar)
    except Exception as exc:  # xgrammar raises RuntimeError/ValueError with the parse error
        raise GrammarError(f"invalid grammar: {exc}") from None
    return True


def _checked_file() -> Path:
    from stepgraph.models.embedded import cache_root  # lazily: it reads the environment

    return cache_root() / "grammars-parsed.txt"
