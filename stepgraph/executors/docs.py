"""Search a folder of the user's documents for passages that answer a step.

The folder's text files are split into passages of about 800 characters and indexed in an
in-memory SQLite FTS5 table (BM25 ranking, Porter stemming), which needs no model and no
extra dependency and is fast for the few thousand files a person keeps in such a folder.
The index is rebuilt when a file is added, removed or changed (checked by size and mtime
before every search). A step's question is turned into an OR query of its words without
stop words, each quoted, so FTS5 syntax in the question can never break the query.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from stepgraph.errors import ExecutorError
from stepgraph.executors.base import StepInput, StepOutput

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".json", ".csv"})
CHUNK_CHARS = 800
MAX_FILE_BYTES = 5 * 2**20
DEFAULT_K = 4
MAX_K = 20

_STOP_WORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves find search look tell give show please documents document docs
    passage passages
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


class _TextFromHtml(HTMLParser):
    """Visible text of an HTML page, with block elements on their own paragraphs."""

    BLOCKS = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "section",
            "article",
            "pre",
            "table",
            "ul",
            "ol",
            "blockquote",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head", "noscript"):
            self._skip += 1
        elif tag in self.BLOCKS:
            self._pre += tag == "pre"
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "noscript"):
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self._pre = max(0, self._pre - (tag == "pre"))
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:  # in HTML a line break is a space, except inside <pre>
            self.parts.append(data if self._pre else re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    parser = _TextFromHtml()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return re.sub(r" *\n\s*\n\s*", "\n\n", text).strip()


def read_text(path: Path) -> str:
    """A file's searchable text; HTML without markup, JSON pretty-printed so that its
    values fall on lines of their own."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        return html_to_text(raw)
    if suffix == ".json":
        try:
            return json.dumps(json.loads(raw), indent=1, ensure_ascii=False)
        except ValueError:
            return raw
    return raw


def _pieces(paragraph: str, size: int) -> list[str]:
    """A paragraph longer than `size` cut at line ends, then at spaces, then anywhere."""
    if len(paragraph) <= size:
        return [paragraph]
    for separator in ("\n", " "):
        if separator in paragraph:
            out: list[str] = []
            current = ""
            for part in paragraph.split(separator):
                candidate = f"{current}{separator}{part}" if current else part
                if len(candidate) <= size:
                    current = candidate
                    continue
                if current:
                    out.append(current)
                if len(part) > size:
                    out.extend(_pieces(part, size))
                    current = ""
                else:
                    current = part
            if current:
                out.append(current)
            return out
    return [paragraph[i : i + size] for i in range(0, len(paragraph), size)]


def chunk_text(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Consecutive paragraphs joined up to about `size` characters; long ones cut."""
    chunks: list[str] = []
    current = ""
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        for piece in _pieces(paragraph, size):
            if current and len(current) + 2 + len(piece) > size:
                chunks.append(current)
                current = piece
            else:
                current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def to_fts_query(text: str) -> str:
    """An FTS5 query that matches passages with any of the text's words. Every term is a
    quoted string, so quotes, '*', '-', ':', 'NEAR' or 'AND' in the text are just words."""
    words: list[str] = []
    for word in re.findall(r"\w+", text.lower()):
        if word in STOP_WORDS or word in words or (len(word) == 1 and not word.isdigit()):
            continue
        words.append(word)
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in words)


class DocsExecutor:
    """Full-text search over one folder of documents."""

    name = "docs"
    brings_facts = True  # its output holds facts the model cannot know: see Executor
    planner_hint = "searches the user's documents; the instruction says what to look for."

    def __init__(self, folder: str | Path, *, chunk_chars: int = CHUNK_CHARS) -> None:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ExecutorError(
                f"documents folder {str(path)!r} does not exist or is not a folder; "
                "pass the folder that holds your .txt/.md/.html/.json/.csv files"
            )
        self.folder = path.resolve()
        self.chunk_chars = chunk_chars
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE VIRTUAL TABLE chunks USING fts5("
            "path UNINDEXED, text, tokenize = 'porter unicode61 remove_diacritics 2')"
        )
        self._snapshot: dict[str, tuple[int, int]] | None = None
        files = len(self._scan())
        self.description = (
            f"searches the documents in the folder '{self.folder.name}' ({files} files) for "
            "passages about the instruction's words; use for questions about their content."
        )

    def _scan(self) -> dict[str, tuple[int, int]]:
        """Relative path -> (size, mtime_ns) of every text file; hidden ones left out, and
        so is every file that resolves outside the folder (a symlink to ~/.ssh or /etc)."""
        found: dict[str, tuple[int, int]] = {}
        for path in sorted(self.folder.rglob("*")):
            relative = path.relative_to(self.folder)
            if any(part.startswith(".") for part in relative.parts):
                continue
            if path.suffix.lower() not in TEXT_SUFFIXES or not path.is_file():
                continue
            if not path.resolve().is_relative_to(self.folder):
                continue
            info = path.stat()
            if info.st_size <= MAX_FILE_BYTES:
                found[relative.as_posix()] = (info.st_size, info.st_mtime_ns)
        return found

    def refresh(self) -> bool:
        """Rebuild the index if the folder changed since the last search; True if rebuilt."""
        with self._lock:
            snapshot = self._scan()
            if snapshot == self._snapshot:
                return False
            rows: list[tuple[str, str]] = []
            for relative in snapshot:
                try:
                    text = read_text(self.folder / relative)
                except OSError:
                    continue
                rows.extend((relative, chunk) for chunk in chunk_text(text, self.chunk_chars))
            with self._db:
                self._db.execute("DELETE FROM chunks")
                self._db.executemany("INSERT INTO chunks (path, text) VALUES (?, ?)", rows)
            self._snapshot = snapshot
            return True

    def search(self, query: str, k: int = DEFAULT_K) -> list[dict[str, Any]]:
        """The `k` passages that match `query` best: [{path, text, score}], best first."""
        self.refresh()
        match = to_fts_query(query)
        if not match:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT path, text, bm25(chunks) FROM chunks WHERE chunks MATCH ? "
                "ORDER BY bm25(chunks) LIMIT ?",
                (match, k),
            ).fetchall()
        return [{"path": p, "text": t, "score": round(-s, 4)} for p, t, s in rows]

    async def run(self, step: StepInput) -> StepOutput:
        query = step.args.get("query")
        if not isinstance(query, str) or not query.strip():
            query = step.instruction
        k = step.args.get("k", DEFAULT_K)
        try:
            k = max(1, min(MAX_K, int(k)))
        except (TypeError, ValueError):
            return StepOutput(error=f"k must be a whole number, not {k!r}")
        if not to_fts_query(query):
            return StepOutput(
                error=f'no search words in {query!r}; pass args {{"query": "key words"}}'
            )
        hits = await asyncio.to_thread(self.search, query, k)
        if not hits:
            return StepOutput(output=f"No passage in the documents matches: {query}", data=[])
        output = "\n\n".join(f"[{hit['path']}] {hit['text']}" for hit in hits)
        return StepOutput(output=output, data=hits)
