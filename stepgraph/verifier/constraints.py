"""Deterministic instruction-constraint checks (IFEval-style).

An instruction such as "Answer in French, in at most 50 words, and do not use the word 'very'"
carries constraints on the *form* of the answer that no step result can be judged without. They
are the constraints Evol-Instruct's "add constraints" rewrites introduce and IFEval verifies, and
they can be checked by code, so nobody has to trust a model's opinion of a word count. Every
instruction kind of Google's IFEval benchmark is read from the instruction's text alone.

`extract_constraints` reads them with a table of small regex rules (`_RULES`, tried in order; a
later rule never reads text an earlier one has read). It only extracts what it is confident
about, because a false constraint makes the runtime revise a good answer: a phrase that looks
like a constraint on the answer's form but that no rule can read safely (a per-item count such as
"at most 10 words per bullet", a character limit, a tone) is reported in `unparsed`, never checked.

Counting rules
--------------
* words: tokens matched by ``\\b[\\w'-]+\\b`` after markdown symbols are dropped (heading ``#``,
  blockquote ``>``, list markers ``-``/``*``/``+``/``•``/``1.``/``1)``, emphasis ``*``/``_``/
  backticks, code-fence lines, link targets). "don't" and "well-known" are one word each; "3.5"
  is two (the same split as IFEval's ``\\w+`` tokenizer for decimals).
* sentences: a sentence ends at ``.``, ``!`` or ``?`` (runs such as "?!" or "..." end one
  sentence) followed by whitespace or the end of the text. A decimal such as 3.5 never ends one,
  nor do the abbreviations e.g., i.e., Mr., Mrs., Ms., Dr., Prof., Sr., Jr., St., vs., cf.,
  approx., fig. A blank line, a list item and a heading also end a sentence; markdown
  heading lines are not sentences. Text with no closing punctuation is one sentence.
* paragraphs: blocks separated by blank lines or by a divider line (``***``, ``---``, ``___``;
  ``***`` is IFEval's separator and also counts inline, surrounded by whitespace). A block that
  is only a markdown heading is not a paragraph.
* bullets: lines starting (after indentation) with ``-``, ``*``, ``+``, ``•``, ``1.`` or ``1)``
  followed by a space; only top-level items count (nested items, indented deeper than the least
  indented item, do not), and continuation text never does. Divider lines are not bullets. A
  count of "bullet points" counts the unordered items only; "a list of N items" counts all.
* sections: lines starting with the named marker and a number ("SECTION 1", "Section 2",
  matched case-insensitively, optionally as a heading or in bold); without a named marker,
  markdown headings. With neither marker nor headings there is no verdict (sections may be
  marked some other way).
* the n-th paragraph's first word: paragraphs as counted above; case, markdown and quotation
  marks around the word aside.
* placeholders: ``[text]`` (not a markdown link ``[text](url)``). Highlights: ``*text*`` or
  ``**text**`` within one line, a list marker ``* `` not opening one (IFEval's count). Words in
  capital letters: words (as counted above, but split at apostrophes) equal to their
  ``.upper()``, "I" and "NASA" alike.
  A title: ``<<text>>`` on one line. A postscript: "P.S." (with its dot) or "P.P.S" anywhere,
  in any case.
* commas: any ``,``. Quotation: the stripped answer starts and ends with ``"``. Two responses:
  the answer split at ``******`` gives exactly two non-empty, different parts (IFEval's rule).
* a word's frequency: whole-word, case-insensitive (like required words); a letter's: the
  letter's occurrences in the lowercased answer. "Only once" is exactly once.
* the request to repeat: the answer, whitespace collapsed and case aside, starts with it.
  Constrained options: the answer contains one of them (case and spacing aside).
* "an N-word answer", "in N words", "about N words": about N, i.e. within N // 5 either side
  (exact for N < 5). "fewer than / under N" means at most N - 1, "more than / over N" at least
  N + 1.
* start / end phrases: case-insensitive, whitespace-collapsed, ignoring leading/trailing
  whitespace, markdown quote/heading/emphasis marks and quotation marks; an end phrase that does
  not itself end in punctuation may be followed by ``.``, ``!`` or ``?``. A phrase must end (start)
  on a word boundary: "Yes" does not match "Yesterday".
* required / forbidden words: whole-word, case-insensitive ("apple" does not match "apples").
* case: IFEval's rule, the whole answer equals its ``.lower()`` (``.upper()``).
* JSON: the whole answer parses with ``json.loads``, optionally inside one fenced code block.
* Markdown: at least one heading, list item, emphasis, code fence, table row or link (only
  headings when the instruction asks for headings, and so on).
* language: ``langdetect`` (seeded, as IFEval does); answers under 3 words (and under 12
  letters, for scripts without spaces) get no verdict, and so does a detection below p=0.6
  that disagrees with the required language.

What is read
------------
* A count is read after a quantifier ("at least", "no more than", "under", "exactly",
  "between N and M", "N-M", "N words or fewer", "a word limit of N", "limit it to N") or, for
  sentences, paragraphs, bullets and sections, after a frame that makes it the answer's own
  ("in 3 sentences", "write 2 paragraphs", "should have 4 sections", "there should be 3
  paragraphs", "a 3-paragraph essay", "a list of 5 items"). A bare number before a noun ("the 5
  steps", "a 3-day trip", "translate these 2 sentences") is content, never a constraint.
* A count that may be about a part of the answer ("each", "per", "the first", "a title of",
  "3 paragraphs with at most 2 sentences", "the word X in at least 2 sentences") is not
  checked but reported as unparsed, as is a count of characters, lines or syllables.
* Bare (unquoted) words are only read after a noun that names them ("the keywords apple and
  banana", "the word X should appear 3 times"), as proper nouns after "mention", or as a list
  of two or more that the sentence puts in the answer ("do not mention X and Y in your
  response"); start/end phrases need quotes, "the phrase"/"the word", or a colon.
* Language, JSON and Markdown need a verb that puts the answer in them ("answer in French",
  "respond in JSON", "format your answer in Markdown"), or "entirely in Russian", "using only
  Hindi", "in Urdu only, no other language is allowed"; "what does X mean in German?" and
  "write a function that returns JSON" are content.
* A request to repeat ("First repeat the request above word for word without change, then give
  your answer") is read with its sentences ("do not say anything before repeating it"); the
  request is the quoted text after "repeat", the first line ("repeat the first line"), the text
  below or after the instruction ("the request below", an instruction that opens the prompt), or
  else the text above it. The request's own constraints are read as the rest of the prompt.
* Counts of highlighted sections are minimums, as in IFEval ("include two italic sections" is at
  least two). Sections, parts or stanzas "separated by ***", and a format given with ``***``
  lines between its parts, are paragraphs. "Label each paragraph with PARAGRAPH X" counts the
  paragraphs by their labels, "highlight each section name" the sections by their highlights.
* What a rule has read is no context for the rules after it: "a title in <<>> and less than 5
  sentences" counts the answer's sentences, not the title's.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from stepgraph.verifier.verdict import Verdict

__all__ = [
    "Constraint",
    "Constraints",
    "check_answer",
    "count_bullets",
    "count_paragraphs",
    "count_sentences",
    "count_words",
    "extract_constraints",
]

ConstraintKind = Literal[
    "word_count",
    "sentence_count",
    "paragraph_count",
    "bullet_count",
    "section_count",
    "required_words",
    "forbidden_words",
    "starts_with",
    "ends_with",
    "case",
    "json_format",
    "markdown_format",
    "language",
    "no_comma",
    "placeholder_count",
    "highlight_count",
    "capital_word_count",
    "keyword_frequency",
    "letter_frequency",
    "title",
    "postscript",
    "quotation",
    "two_responses",
    "repeat_request",
    "constrained_response",
    "paragraph_first_word",
]

# ---------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------

_WORD = re.compile(r"\b[\w'-]+\b")
_FENCE_LINE = re.compile(r"^[ \t]*(?:```|~~~).*$", re.M)
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_LINE_MARKS = re.compile(r"^[ \t]*(?:>[ \t]*)*(?:#{1,6}[ \t]+|(?:[-*+•]|\d+[.)])[ \t]+)?", re.M)
_EMPHASIS = re.compile(r"[*`~]+|(?<!\w)_+|_+(?!\w)")
_BULLET = re.compile(r"^(?P<indent>[ \t]*)(?:[-*+•]|\d+[.)])[ \t]+\S.*$", re.M)
_DIVIDER = re.compile(r"^[ \t]*(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+\S", re.M)
# fmt: off
_ABBREVIATIONS = {
    "e.g", "i.e", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "cf", "approx", "fig",
}
# fmt: on
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")


def _plain_text(text: str) -> str:
    """The answer without markdown symbols, so that they never count as words."""
    text = _FENCE_LINE.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _LINE_MARKS.sub("", text)
    return _EMPHASIS.sub(" ", text)


def count_words(text: str) -> int:
    return len(_WORD.findall(_plain_text(text)))


def _is_bullet_line(line: str) -> bool:
    return bool(_BULLET.fullmatch(line)) and not _DIVIDER.fullmatch(line)


def _sentence_blocks(text: str) -> list[str]:
    """Runs of prose: a blank line, a list item or a heading starts a new one; headings are
    dropped because a title is not a sentence."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if not line.strip() or _DIVIDER.fullmatch(line) or _HEADING.match(line):
            blocks.append([])
        elif _is_bullet_line(line):
            blocks.append([line])
        else:
            blocks[-1].append(line)
    return [" ".join(b) for b in blocks if b]


def count_sentences(text: str) -> int:
    total = 0
    for block in _sentence_blocks(_FENCE_LINE.sub("", text)):
        block = _plain_text(block)
        start = 0
        for m in _SENTENCE_END.finditer(block):
            if m.group().rstrip("\"'”’)]") == ".":
                before = re.search(r"([\w.]+)$", block[start : m.start()])
                if before and before.group(1).lower() in _ABBREVIATIONS:
                    continue
            if re.search(r"\w", block[start : m.end()]):
                total += 1
            start = m.end()
        if re.search(r"\w", block[start:]):
            total += 1
    return total


def _paragraphs(text: str) -> list[str]:
    text = re.sub(r"(?:^|(?<=\s))\*{3,}(?=\s|$)", "\n\n", text)
    lines = ["" if _DIVIDER.fullmatch(line) else line for line in text.splitlines()]
    blocks = re.split(r"\n[ \t]*\n", "\n".join(lines))
    return [
        b.strip()
        for b in blocks
        if re.search(r"\w", b) and not all(_HEADING.match(x) for x in b.strip().splitlines())
    ]


def count_paragraphs(text: str) -> int:
    return len(_paragraphs(text))


def count_divided_parts(text: str) -> int:
    """Parts between ``***`` dividers, for an instruction that separates its paragraphs with
    them: IFEval's count (an empty part counts only at either end, where it is dropped; an
    empty part between two dividers makes the count 0, which fails any requirement)."""
    parts = re.split(r"\s?\*\*\*\s?", text)
    kept = [p for p in parts if p.strip()]
    if any(not p.strip() for p in parts[1:-1]):
        return 0
    return len(kept)


_ORDERED_MARK = re.compile(r"[ \t]*\d+[.)]")


def count_bullets(text: str, unordered_only: bool = False) -> int:
    """Top-level list items only: sub-items belong to the item above them. `unordered_only`
    leaves numbered items out ("3 bullet points" asks for ``* item``, not ``1. item``)."""
    indents = [
        len(m.group("indent").expandtabs(4))
        for m in _BULLET.finditer(text)
        if not _DIVIDER.fullmatch(m.group())
        and not (unordered_only and _ORDERED_MARK.match(m.group()))
    ]
    if not indents:
        return 0
    top = min(indents)
    return sum(1 for i in indents if i <= top + 1)


def count_placeholders(text: str) -> int:
    """Square-bracketed placeholders such as ``[address]``; a markdown link ``[text](url)`` is
    not one."""
    return sum(1 for m in re.finditer(r"\[([^\[\]\n]*)\](?!\()", text) if m.group(1).strip())


def count_highlights(text: str) -> int:
    """Markdown-highlighted spans on one line, ``*italic*`` or ``**bold**``, as IFEval counts
    them; a list marker ``* `` opens none, and an empty ``**`` or a ``***`` divider is none."""
    text = re.sub(r"^([ \t]*)[*+-][ \t]+", r"\1", text, flags=re.M)
    bold = re.compile(r"\*\*([^\n*]+)\*\*")
    n = sum(1 for m in bold.finditer(text) if m.group(1).strip())
    rest = bold.sub(" ", text)
    return n + sum(1 for m in re.finditer(r"\*([^\n*]+)\*", rest) if m.group(1).strip())


def count_capital_words(text: str) -> int:
    """Words written in capital letters only ("NASA", "I"), as IFEval counts them: an
    apostrophe splits a word, so "NASA's" has one ("NASA")."""
    return sum(1 for w in re.findall(r"\b[\w-]+\b", _plain_text(text)) if w.isupper())


def _marker_line(marker: str, tail: str = "") -> re.Pattern[str]:
    """A line opening a section: the marker and its number ("SECTION 2", "## Section IV",
    "**Part 3**"), case aside; `tail` extends the match past the number."""
    return re.compile(
        rf"^[ \t>]*(?:#{{1,6}}[ \t]*)?[*_]{{0,3}}{re.escape(marker)}[ \t]+(?:\d+|[IVXLC]+)\b"
        + tail,
        re.I | re.M,
    )


def _count_sections(text: str, marker: str | None) -> tuple[int | None, str]:
    if marker:
        return len(_marker_line(marker).findall(text)), f"sections marked '{marker} N'"
    headings = len(_HEADING.findall(text))
    if not headings:
        return None, "no section marker named and no markdown headings"
    return headings, "sections (markdown headings)"


# ---------------------------------------------------------------------------------------------
# Numbers in instructions
# ---------------------------------------------------------------------------------------------

# fmt: off
_SMALL = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]
# fmt: on
# fmt: off
_NUMBER_WORDS = {w: i for i, w in enumerate(_SMALL)} | {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
}
# fmt: on
_NW = "(?:" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")\b"
_NUM_CORE = (
    rf"(?:\d{{1,3}}(?:,\d{{3}})+(?!\d)|\d+|a\s+single|single|a\s+(?:hundred|thousand)\b|{_NW})"
    rf"(?:(?:\s+|-){_NW}|(?:(?<=hundred)|(?<=thousand))\s+and\s+{_NW})*"
)


def _num(group: str) -> str:
    return rf"(?P<{group}>{_NUM_CORE})"


def _to_int(text: str) -> int:
    text = text.lower().replace(",", "").strip()
    if text.isdigit():
        return int(text)
    total = current = 0
    for token in re.split(r"[\s-]+", text):
        if token in ("", "and"):
            continue
        value = 1 if token in ("a", "single") else _NUMBER_WORDS[token]
        if value == 100:
            current = max(current, 1) * 100
        elif value == 1000:
            total += max(current, 1) * 1000
            current = 0
        else:
            current += value
    return total + current


# ---------------------------------------------------------------------------------------------
# The constraint model
# ---------------------------------------------------------------------------------------------

# kind: (the unit in a verdict's name, "max_words"; the unit in words, for a prompt)
_COUNT_UNITS = {
    "word_count": ("words", "words"),
    "sentence_count": ("sentences", "sentences"),
    "paragraph_count": ("paragraphs", "paragraphs"),
    "bullet_count": ("bullets", "bullets"),
    "section_count": ("sections", "sections"),
    "placeholder_count": ("placeholders", "placeholders in square brackets such as [name]"),
    "highlight_count": ("highlights", "sections highlighted in markdown such as *highlighted*"),
    "capital_word_count": ("capital_words", "words in all capital letters"),
}
_COUNTERS: dict[str, Callable[[str], int]] = {
    "word_count": count_words,
    "sentence_count": count_sentences,
    "paragraph_count": count_paragraphs,
    "bullet_count": count_bullets,
    "placeholder_count": count_placeholders,
    "highlight_count": count_highlights,
    "capital_word_count": count_capital_words,
}

# Language names an instruction may use, to ISO 639-1 codes as langdetect reports them.
# fmt: off
LANGUAGES = {
    "english": "en", "french": "fr", "spanish": "es", "castilian": "es", "german": "de",
    "italian": "it", "portuguese": "pt", "dutch": "nl", "russian": "ru", "chinese": "zh",
    "mandarin": "zh", "japanese": "ja", "korean": "ko", "arabic": "ar", "hindi": "hi",
    "bengali": "bn", "turkish": "tr", "polish": "pl", "swedish": "sv", "norwegian": "no",
    "danish": "da", "finnish": "fi", "greek": "el", "hebrew": "he", "thai": "th",
    "vietnamese": "vi", "indonesian": "id", "ukrainian": "uk", "czech": "cs", "slovak": "sk",
    "slovenian": "sl", "romanian": "ro", "hungarian": "hu", "persian": "fa", "farsi": "fa",
    "urdu": "ur", "swahili": "sw", "tamil": "ta", "telugu": "te", "marathi": "mr",
    "gujarati": "gu", "kannada": "kn", "malayalam": "ml", "punjabi": "pa", "nepali": "ne",
    "bulgarian": "bg", "croatian": "hr", "catalan": "ca", "lithuanian": "lt", "latvian": "lv",
    "estonian": "et", "tagalog": "tl", "afrikaans": "af", "albanian": "sq", "macedonian": "mk",
    "welsh": "cy", "somali": "so",
}
# fmt: on
_LANGUAGE_NAMES = {code: name.title() for name, code in reversed(LANGUAGES.items())}


def _norm(text: str) -> str:
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return re.sub(r"\s+", " ", text).strip().lower()


def _term_pattern(term: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(t) for t in term.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.I)


_EDGE_MARKS = "\"'“”‘’`*_>#"


class Constraint(BaseModel):
    """One requirement on the answer's form, kept with the phrase it was read from so that a
    reviewer can see why the runtime asked for a revision."""

    kind: ConstraintKind
    source: str
    low: int | None = None  # counts: at least / at most; equal for "exactly"
    high: int | None = None
    words: list[str] = Field(default_factory=list)  # required / forbidden words and phrases
    phrase: str = ""  # starts_with / ends_with
    case: Literal["lower", "upper"] | None = None
    language: str = ""  # ISO 639-1 code
    marker: str | None = None  # section marker word such as "Section" in "Section 1";
    # "***" for paragraphs the instruction separates with that divider
    element: str | None = None  # markdown element asked for: heading, list, emphasis, table;
    # for bullet counts, "bullet" when only unordered items (``* x``, ``- x``) count
    index: int | None = None  # paragraph_first_word: which paragraph, from 1

    @property
    def check_name(self) -> str:
        """The verdict's name: one per direction of a count, so feedback reads "max_words"."""
        if self.kind in _COUNT_UNITS:
            unit = _COUNT_UNITS[self.kind][0]
            if self.low is not None and self.low == self.high:
                return f"exact_{unit}"
            if self.low is not None and self.high is not None:
                return f"range_{unit}"
            return f"min_{unit}" if self.low is not None else f"max_{unit}"
        if self.kind == "case":
            return f"{self.case}case"
        return self.kind

    def describe(self) -> str:
        """The constraint in plain words, for a composer prompt and for verdict evidence."""
        if self.kind in _COUNT_UNITS:
            one = (self.high if self.low is None else self.low) == 1 and self.high in (1, None)
            text = f"{self._bounds_text()} {_counted(_COUNT_UNITS[self.kind][1], 1 if one else 2)}"
            if self.kind == "section_count" and self.marker:
                text += f", each starting with '{self.marker} N'"
            if self.kind == "bullet_count" and self.element == "bullet":
                text += " (markdown bullets such as '* item', not a numbered list)"
            if self.kind == "paragraph_count" and self.marker == "***":
                text += ", separated by a line holding only ***"
            return text
        quoted = ", ".join(f"'{w}'" for w in self.words)
        first = self.words[0] if self.words else ""
        paragraph = "the last paragraph" if (self.index or 1) < 0 else f"paragraph {self.index}"
        return {
            "required_words": lambda: f"include the words {quoted}",
            "forbidden_words": lambda: f"do not use the words {quoted}",
            "starts_with": lambda: f"start the answer with '{self.phrase}'",
            "ends_with": lambda: f"end the answer with '{self.phrase}'",
            "case": lambda: f"write the whole answer in {self.case}case letters",
            "json_format": lambda: "the whole answer must be valid JSON",
            "markdown_format": lambda: (
                "format the answer in Markdown"
                + (f" (use {self.element}s)" if self.element else "")
            ),
            "language": lambda: (
                "write the answer in " + _LANGUAGE_NAMES.get(self.language, self.language)
            ),
            "no_comma": lambda: "do not use any commas",
            "keyword_frequency": lambda: f"use the word '{first}' {self._bounds_text()} times",
            "letter_frequency": lambda: f"use the letter '{first}' {self._bounds_text()} times",
            "title": lambda: (
                "include a title wrapped in double angular brackets, such as <<title>>"
            ),
            "postscript": lambda: f"end with a postscript starting with {self.phrase}",
            "quotation": lambda: "wrap the whole answer in double quotation marks",
            "two_responses": lambda: (
                "give two different responses separated by 6 asterisks (******), and nothing else"
            ),
            "repeat_request": lambda: (
                f"first repeat the request word for word, then answer it: '{self.phrase}'"
            ),
            "constrained_response": lambda: "answer with one of: " + quoted,
            "paragraph_first_word": lambda: f"start {paragraph} with the word '{self.phrase}'",
        }[self.kind]()

    def _bounds_text(self) -> str:
        if self.low is not None and self.low == self.high:
            return f"exactly {self.low}"
        if self.low is not None and self.high is not None:
            return f"between {self.low} and {self.high}"
        return f"at least {self.low}" if self.low is not None else f"at most {self.high}"

    def check(self, answer: str) -> Verdict:
        passed, evidence = _CHECKS[self.kind](self, answer)
        return Verdict(check=self.check_name, passed=passed, evidence=evidence)

    def repair(self, answer: str) -> str | None:
        """A mechanical fix, so that no model call is spent on what code can do, and that
        changes the answer's form, never its content: letter case, a start or end phrase or
        the request to repeat put in place, a forbidden word or the commas deleted, quotation
        marks, the answer's own paragraphs regrouped (and divided by ``***`` or marked
        "SECTION N"), its own heading made a <<title>>, highlights put on its own headings
        and first sentences, a numbered list made bullets, the JSON it holds cut out (or the
        whole text made a JSON string), a sentence of two clauses split where too few
        sentences were given. None where only a rewrite would do (word counts, too many
        sentences, language, required words, a postscript or placeholders, whose content
        code cannot invent); the caller re-checks the result against every constraint. A passing
        answer is returned as is."""
        fixer = _REPAIRS.get(self.kind)
        if fixer is None:
            return None
        if self.check(answer).passed:
            return answer
        return fixer(self, answer)


def cuts(text: str) -> list[str]:
    """`text` cut after each whole sentence or line, longest first: where an answer too long
    for an upper bound can end (`composer.trimmed`)."""
    ends = {m.end() for m in _SENTENCE_END.finditer(text)} | {
        m.start() for m in re.finditer(r"\n", text)
    }
    found = [text[:end].rstrip() for end in sorted(ends, reverse=True)]
    return [cut for cut in dict.fromkeys(found) if cut and cut != text.rstrip()]


def _check_count(c: Constraint, answer: str) -> tuple[bool | None, str]:
    unit = _COUNT_UNITS[c.kind][1]
    if c.kind == "section_count":
        n, what = _count_sections(answer, c.marker)
        if n is None:
            return None, f"{what}; cannot count sections ({c._bounds_text()} required)"
        unit = what
    elif c.kind == "paragraph_count" and c.marker == "***":
        n, unit = count_divided_parts(answer), "parts between *** dividers"
    elif c.kind == "bullet_count" and c.element == "bullet":
        n, unit = count_bullets(answer, unordered_only=True), "bullets (numbered items not counted)"
    else:
        n = _COUNTERS[c.kind](answer)
    ok = _in_bounds(c, n)
    bound = f"{c._bounds_text()} {'required' if c.low is not None else 'allowed'}"
    return ok, f"{n} {_counted(unit, n)}; {bound}"


def _counted(unit: str, n: int) -> str:
    """`unit` (plural, "sentences", "words in all capital letters") for a count of `n`:
    "1 sentence", not "1 sentences", which the model reads in its feedback."""
    if n != 1:
        return unit
    first, _, rest = unit.partition(" ")
    return (first[:-1] if first.endswith("s") else first) + (f" {rest}" if rest else "")


def _in_bounds(c: Constraint, n: int) -> bool:
    return (c.low is None or n >= c.low) and (c.high is None or n <= c.high)


def _check_required(c: Constraint, answer: str) -> tuple[bool | None, str]:
    missing = [w for w in c.words if not _term_pattern(w).search(answer)]
    if missing:
        return False, "missing: " + ", ".join(f"'{w}'" for w in missing)
    return True, "all present: " + ", ".join(f"'{w}'" for w in c.words)


def _check_forbidden(c: Constraint, answer: str) -> tuple[bool | None, str]:
    found = [(w, len(_term_pattern(w).findall(answer))) for w in c.words]
    found = [(w, n) for w, n in found if n]
    if found:
        return False, "used: " + ", ".join(f"'{w}' ({n}x)" for w, n in found)
    return True, "none used: " + ", ".join(f"'{w}'" for w in c.words)


def _strip_edges(text: str) -> str:
    return _norm(text).strip(_EDGE_MARKS + " ")


def _starts_with(text: str, phrase: str) -> bool:
    text, phrase = _strip_edges(text), _strip_edges(phrase)
    return text.startswith(phrase) and not (
        phrase[-1:].isalnum() and text[len(phrase) : len(phrase) + 1].isalnum()
    )


def _check_start(c: Constraint, answer: str) -> tuple[bool | None, str]:
    if not _strip_edges(c.phrase):
        return None, f"the phrase '{c.phrase}' has no text to look for"
    ok = _starts_with(answer, c.phrase)
    return ok, f"answer starts with '{answer.strip()[: len(c.phrase) + 10]}'"


def _check_end(c: Constraint, answer: str) -> tuple[bool | None, str]:
    text, phrase = _strip_edges(answer), _strip_edges(c.phrase)
    if not phrase:
        return None, f"the phrase '{c.phrase}' has no text to look for"
    if phrase[-1:].isalnum():
        text = _strip_edges(text.rstrip(".!?…"))
    ok = text.endswith(phrase) and not (
        phrase[:1].isalnum() and text[-len(phrase) - 1 : -len(phrase)].isalnum()
    )
    return ok, f"answer ends with '{answer.strip()[-(len(c.phrase) + 10) :]}'"


def _check_case(c: Constraint, answer: str) -> tuple[bool | None, str]:
    wrong = re.findall(r"[^\W\d_]", answer)
    wrong = [ch for ch in wrong if ch != (ch.lower() if c.case == "lower" else ch.upper())]
    if not wrong:
        return True, f"all letters are {c.case}case"
    other = "uppercase" if c.case == "lower" else "lowercase"
    return False, f"{len(wrong)} {other} letters, e.g. '{''.join(wrong[:10])}'"


_JSON_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n(.*?)\n?[ \t]*```", re.S | re.I)


def _check_json(c: Constraint, answer: str) -> tuple[bool | None, str]:
    text = answer.strip()
    fenced = _JSON_FENCE.fullmatch(text)
    if fenced:
        text = fenced.group(1)
    try:
        json.loads(text)
    except ValueError as exc:
        return False, f"not JSON: {exc}"
    return True, "parses as JSON" + (" (in a fenced block)" if fenced else "")


_MARKDOWN_ELEMENTS = {
    "heading": _HEADING,
    "list": _BULLET,
    "emphasis": re.compile(
        r"(\*\*|__)\S(?:.*?\S)?\1|(?<![*\w])\*[^*\s][^*\n]*\*(?!\*)|(?<!\w)_[^_\s][^_\n]*_(?!\w)"
    ),
    "table": re.compile(r"^[ \t]*\|.*\|[ \t]*$", re.M),
    "code": re.compile(r"^[ \t]*```", re.M),
    "link": _LINK,
}


def _check_markdown(c: Constraint, answer: str) -> tuple[bool | None, str]:
    wanted = [c.element] if c.element else list(_MARKDOWN_ELEMENTS)
    found = [name for name in wanted if _MARKDOWN_ELEMENTS[name].search(answer)]
    if found:
        return True, "markdown found: " + ", ".join(found)
    return False, "no markdown " + (f"{c.element}s" if c.element else "elements") + " found"


def _check_language(c: Constraint, answer: str) -> tuple[bool | None, str]:
    letters = len(re.findall(r"[^\W\d_]", answer))
    if count_words(answer) < 3 and letters < 12:
        return None, "answer too short to detect its language"
    import langdetect  # here, not at the top: its profiles load slowly and few tasks need it
    from langdetect.lang_detect_exception import LangDetectException

    langdetect.DetectorFactory.seed = 0
    try:
        best = langdetect.detect_langs(answer)[0]
    except LangDetectException as exc:
        return None, f"language not detected: {exc}"
    code = best.lang.split("-")[0]
    if code != c.language and best.prob < 0.6:
        return None, f"language unclear (best guess {code}, p={best.prob:.2f})"
    return code == c.language, f"detected {code} (p={best.prob:.2f}); {c.language} required"


def _check_no_comma(c: Constraint, answer: str) -> tuple[bool | None, str]:
    n = answer.count(",")
    if not n:
        return True, "no commas"
    at = answer.index(",")
    return False, f"{n} commas, e.g. '{answer[max(0, at - 20) : at + 1].strip()}'"


def _check_keyword_frequency(c: Constraint, answer: str) -> tuple[bool | None, str]:
    n = len(_term_pattern(c.words[0]).findall(answer))
    return _in_bounds(c, n), f"'{c.words[0]}' used {n} times; {c._bounds_text()} required"


def _check_letter_frequency(c: Constraint, answer: str) -> tuple[bool | None, str]:
    n = answer.lower().count(c.words[0].lower())
    return _in_bounds(c, n), f"'{c.words[0]}' appears {n} times; {c._bounds_text()} required"


_TITLE = re.compile(r"<<([^\n]+?)>>")


def _check_title(c: Constraint, answer: str) -> tuple[bool | None, str]:
    for m in _TITLE.finditer(answer):
        if m.group(1).strip("<> \t"):
            return True, f"title {m.group()}"
    return False, "no title wrapped in double angular brackets, such as <<title>>"


def _postscript_pattern(marker: str) -> re.Pattern[str]:
    """IFEval's markers: "P.P.S" (a dot after the S optional), "P.S." (dot required)."""
    if re.match(r"p\.?\s*p\.?\s*s", marker, _F):
        return re.compile(r"(?<!\w)p\.\s?p\.\s?s\b", _F)
    return re.compile(r"(?<!\w)p\.\s?s\.", _F)


def _check_postscript(c: Constraint, answer: str) -> tuple[bool | None, str]:
    m = _postscript_pattern(c.phrase).search(answer)
    if m:
        return True, f"postscript: '{answer[m.start() : m.start() + 40].strip()}'"
    return False, f"no postscript starting with {c.phrase}"


def _check_quotation(c: Constraint, answer: str) -> tuple[bool | None, str]:
    text = answer.strip()
    ok = len(text) > 1 and text[0] == '"' and text[-1] == '"'
    return ok, f"answer starts with {text[:1]!r} and ends with {text[-1:]!r}; '\"' required"


SEPARATOR = "******"  # between two responses (IFEval's combination:two_responses)


def _check_two_responses(c: Constraint, answer: str) -> tuple[bool | None, str]:
    """IFEval's rule: split at ``******``; exactly two non-empty, different parts (an empty
    part may only stand at either end)."""
    parts = answer.split(SEPARATOR)
    kept = []
    for i, part in enumerate(parts):
        if part.strip():
            kept.append(part.strip())
        elif 0 < i < len(parts) - 1:
            return False, "an empty response between two ****** separators"
    if len(kept) != 2:
        return False, f"{len(kept)} responses separated by ******; 2 required"
    if kept[0] == kept[1]:
        return False, "the two responses are the same"
    return True, "two different responses separated by ******"


def _check_repeat(c: Constraint, answer: str) -> tuple[bool | None, str]:
    ok = _norm(answer).startswith(_norm(c.phrase))
    return ok, f"answer starts with '{answer.strip()[:60]}'; the request must come first"


def _check_constrained(c: Constraint, answer: str) -> tuple[bool | None, str]:
    found = [o for o in c.words if _phrase_search(o, answer)]
    if found:
        return True, f"answers with '{found[0]}'"
    return False, "none of the options: " + ", ".join(f"'{o}'" for o in c.words)


def _phrase_search(phrase: str, answer: str) -> bool:
    """The option anywhere in the answer, as a whole phrase; case and spacing aside (IFEval
    also takes the case as given: "my answer is no." passes here, not there)."""
    body = re.escape(_norm(phrase))
    return bool(re.search(rf"(?<!\w){body}(?!\w)", _norm(answer)))


def _check_paragraph_first_word(c: Constraint, answer: str) -> tuple[bool | None, str]:
    """The n-th paragraph (as `count_paragraphs` splits them; -1 is the last) starts with the
    word, case and markdown or quotation marks around it aside."""
    paragraphs, n = _paragraphs(answer), c.index or 1
    which = "the last paragraph" if n < 0 else f"paragraph {n}"
    if not paragraphs or len(paragraphs) < n:
        return False, f"{len(paragraphs)} paragraphs; {which} must start with '{c.phrase}'"
    paragraph = paragraphs[n - 1] if n > 0 else paragraphs[-1]
    got = " ".join(_strip_edges(paragraph).split()[: len(c.phrase.split())])
    return _starts_with(paragraph, c.phrase), f"{which} starts with '{got}'; '{c.phrase}' required"


_CHECKS: dict[str, Callable[[Constraint, str], tuple[bool | None, str]]] = {
    **dict.fromkeys(_COUNT_UNITS, _check_count),
    "required_words": _check_required,
    "forbidden_words": _check_forbidden,
    "starts_with": _check_start,
    "ends_with": _check_end,
    "case": _check_case,
    "json_format": _check_json,
    "markdown_format": _check_markdown,
    "language": _check_language,
    "no_comma": _check_no_comma,
    "keyword_frequency": _check_keyword_frequency,
    "letter_frequency": _check_letter_frequency,
    "title": _check_title,
    "postscript": _check_postscript,
    "quotation": _check_quotation,
    "two_responses": _check_two_responses,
    "repeat_request": _check_repeat,
    "constrained_response": _check_constrained,
    "paragraph_first_word": _check_paragraph_first_word,
}


def _repair_forbidden(c: Constraint, answer: str) -> str:
    for _ in range(10):  # removing one word can join two halves of another only so often
        before = answer
        for w in c.words:
            word = _term_pattern(w).pattern
            # the word with the space before it, or (at a line start) the space after it
            answer = re.sub(rf"[ \t]+{word}|{word}[ \t]*", "", answer, flags=re.I)
        if answer == before:
            break
    return answer


def _block_start(answer: str) -> bool:
    return bool(re.match(r"\s*(?:#|>|```|[-*+•][ \t]|\d+[.)][ \t]|[{\[])", answer))


def _repair_start(c: Constraint, answer: str) -> str:
    sep = "\n\n" if _block_start(answer) else " "
    return f"{c.phrase}{sep}{answer.lstrip()}"


def _repair_end(c: Constraint, answer: str) -> str:
    last = answer.rstrip().splitlines()[-1] if answer.strip() else ""
    sep = "\n\n" if _block_start(last) or last.strip().startswith("|") else " "
    return f"{answer.rstrip()}{sep}{c.phrase}" if answer.strip() else c.phrase


def _repair_no_comma(c: Constraint, answer: str) -> str:
    """Drops the commas: a thousands separator closes up ("1,000" -> "1000"), a comma between
    two words becomes a space, and any other comma goes."""
    answer = re.sub(r"(?<=\d),(?=\d{3}\b)", "", answer)
    answer = re.sub(r"(?<=\S),(?=[^\s,])", " ", answer)
    return answer.replace(",", "")


_CLAUSE_JOIN = re.compile(r"(?:,\s+and|;)\s+(?P<next>[a-z])")


def _repair_sentences(c: Constraint, answer: str) -> str | None:
    """Too few sentences: a sentence of two clauses joined by ", and" or ";" split in two
    ("It took in $1020.50, and cookies brought in more." -> "... $1020.50. Cookies ..."),
    first joins first, until there are enough. A join with fewer than four words on either
    side is a list ("pears, and plums"), not two clauses, and stays. None where no join can
    be split or there are too many sentences (only a rewrite can say less)."""
    if c.low is None or count_sentences(answer) >= c.low:
        return None
    for _ in range(c.low - count_sentences(answer)):
        for match in _CLAUSE_JOIN.finditer(answer):
            before = re.split(r"[.!?]\s", answer[: match.start()])[-1]
            after = _SENTENCE_END.split(answer[match.start("next") :], maxsplit=1)[0]
            if len(before.split()) >= 4 and len(after.split()) >= 4:
                rest = answer[match.start("next") :]
                answer = answer[: match.start()] + ". " + rest[0].upper() + rest[1:]
                break
        else:
            return None
    return answer


def _repair_quotation(c: Constraint, answer: str) -> str:
    """Adds the quotation mark missing at either end; nothing inside changes."""
    text = answer.strip()
    return ("" if text.startswith('"') else '"') + text + ("" if text.endswith('"') else '"')


def _repair_repeat(c: Constraint, answer: str) -> str:
    """Puts the request, word for word, first. A first paragraph that is a near copy of it (a
    repetition with a word changed) is replaced rather than kept beside the exact copy."""
    request = c.phrase.strip()
    first, sep, rest = answer.strip().partition("\n\n")
    if sep and difflib.SequenceMatcher(None, _norm(first), _norm(request)).ratio() >= 0.8:
        return f"{request}\n\n{rest.lstrip()}"
    return f"{request}\n\n{answer.lstrip()}"


def _target(c: Constraint, n: int) -> int:
    """The count nearest `n` that the constraint allows."""
    if c.low is not None and n < c.low:
        return c.low
    if c.high is not None and n > c.high:
        return c.high
    return n


def _blocks(answer: str) -> list[str]:
    """The answer's paragraphs, split at blank lines and dividers, a heading kept with the
    paragraph under it."""
    text = re.sub(r"(?:^|(?<=\s))\*{3,}(?=\s|$)", "\n\n", answer.strip())
    lines = ["" if _DIVIDER.fullmatch(line) else line for line in text.splitlines()]
    blocks, heading = [], ""
    for block in re.split(r"\n[ \t]*\n", "\n".join(lines)):
        block = block.strip()
        if not block:
            continue
        if all(_HEADING.match(x) for x in block.splitlines()):
            heading = f"{heading}\n{block}".strip()
            continue
        blocks.append(f"{heading}\n{block}" if heading else block)
        heading = ""
    if heading:
        blocks.append(heading)
    return blocks


def _regrouped(blocks: list[str], n: int) -> list[str] | None:
    """`blocks` as `n` paragraphs, the words unchanged: the shortest neighbours joined, or the
    longest paragraph split at the sentence end nearest its middle. None when there are not
    enough sentences to split."""
    blocks = list(blocks)
    while len(blocks) > n > 0:
        i = min(range(len(blocks) - 1), key=lambda j: len(blocks[j]) + len(blocks[j + 1]))
        blocks[i : i + 2] = [f"{blocks[i]} {blocks[i + 1]}"]
    while len(blocks) < n:
        i = max(range(len(blocks)), key=lambda j: len(blocks[j])) if blocks else -1
        if i < 0:
            return None
        ends = [m.end() for m in _SENTENCE_END.finditer(blocks[i]) if m.end() < len(blocks[i])]
        if not ends:
            return None
        cut = min(ends, key=lambda e: abs(e - len(blocks[i]) / 2))
        blocks[i : i + 1] = [blocks[i][:cut].strip(), blocks[i][cut:].strip()]
    return blocks


def _repair_paragraphs(c: Constraint, answer: str) -> str | None:
    """The answer's own paragraphs regrouped to the count asked for; with ``***`` dividers
    between them when the instruction separates paragraphs so."""
    blocks = _blocks(answer)
    grouped = _regrouped(blocks, _target(c, len(blocks)))
    if grouped is None:
        return None
    return ("\n\n***\n\n" if c.marker == "***" else "\n\n").join(grouped)


def _repair_sections(c: Constraint, answer: str) -> str | None:
    """The answer's paragraphs regrouped to the count asked for, each marked as the
    instruction writes the marker ("SECTION 1"); markers the answer had ("SECTION X:",
    a wrong count) are taken off first, the words after them kept."""
    if not c.marker:
        return None
    marked = _marker_line(c.marker, tail=r"[*_]{0,3}[ \t]*[:.)-]?[ \t]*")
    blocks = [b for b in _blocks(marked.sub("", answer)) if b.strip()]
    grouped = _regrouped(blocks, _target(c, len(blocks)))
    if grouped is None:
        return None
    return "\n\n".join(f"{c.marker} {i}\n{b}" for i, b in enumerate(grouped, 1))


_TITLE_LINE = re.compile(
    r"#{1,6}[ \t]+(.+?)[ \t#]*|\*\*(.+?)\*\*:?|__(.+?)__|title:[ \t]*(.+)", re.I
)


def _repair_title(c: Constraint, answer: str) -> str | None:
    """A first line that is already a title (a markdown heading, a bold line, "Title: ...")
    rewritten as <<title>>. The model's own title only: code does not write one."""
    first, _, rest = answer.strip().partition("\n")
    m = _TITLE_LINE.fullmatch(first.strip())
    if not m:
        return None
    title = next(g for g in m.groups() if g).strip(" *_\"'")
    return f"<<{title}>>\n{rest}" if title else None


def _repair_highlights(c: Constraint, answer: str) -> str | None:
    """Highlights added to the answer's own text, nothing else changed: headings first
    (``## Name`` becomes ``*Name*``), then sentences of prose lines, each line's first
    sentence before any line's second. None when the answer has too few of those to reach
    the count."""
    need = (c.low or 0) - count_highlights(answer)
    lines = answer.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"[ \t]{0,3}#{1,6}[ \t]+([^*\n]+?)[ \t#]*$", line)
        if need > 0 and m:
            lines[i], need = f"*{m.group(1)}*", need - 1
    spans = []  # (rank in its line, line, start, end) of each sentence of a prose line
    for i, line in enumerate(lines):
        if not line.strip() or "*" in line or _is_bullet_line(line) or _HEADING.match(line):
            continue
        start = len(line) - len(line.lstrip())
        for rank, m in enumerate([*_SENTENCE_END.finditer(line), None]):
            end = m.end() if m else len(line)
            if line[start:end].strip():
                spans.append((rank, i, start, end))
            if m is None:
                break
            start = end + len(line[end:]) - len(line[end:].lstrip())
    if len(spans) < need:
        return None
    for _, i, start, end in sorted(sorted(spans)[: max(need, 0)], key=lambda x: -x[2]):
        text = lines[i][start:end].rstrip()
        lines[i] = f"{lines[i][:start]}*{text}*{lines[i][start + len(text) :]}"
    return "\n".join(lines)


def _repair_bullets(c: Constraint, answer: str) -> str | None:
    """A numbered list written where bullets were asked for: its items become ``* `` items."""
    numbered = re.compile(r"^([ \t]*)\d+[.)][ \t]+", re.M)
    if not numbered.search(answer):
        return None
    return numbered.sub(r"\1* ", answer)


_ANY_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)


def _repair_json(c: Constraint, answer: str) -> str:
    """The JSON the answer holds (a fenced block, or from its first bracket to the matching
    last one), alone; an answer holding none becomes a JSON object with the whole text as
    its "answer"."""
    text = answer.strip()
    found = [m.group(1) for m in _ANY_FENCE.finditer(text)]
    for opener, closer in (("{", "}"), ("[", "]")):
        if opener in text and closer in text:
            found.append(text[text.index(opener) : text.rindex(closer) + 1])
    for part in found:
        try:
            json.loads(part)
        except ValueError:
            continue
        return part.strip()
    return json.dumps({"answer": text}, ensure_ascii=False, indent=2)


_REPAIRS: dict[str, Callable[[Constraint, str], str | None]] = {
    "paragraph_count": _repair_paragraphs,
    "section_count": _repair_sections,
    "title": _repair_title,
    "highlight_count": _repair_highlights,
    "bullet_count": _repair_bullets,
    "json_format": _repair_json,
    "case": lambda c, a: a.lower() if c.case == "lower" else a.upper(),
    "starts_with": _repair_start,
    "ends_with": _repair_end,
    "forbidden_words": _repair_forbidden,
    "no_comma": _repair_no_comma,
    "quotation": _repair_quotation,
    "repeat_request": _repair_repeat,
    "sentence_count": _repair_sentences,
}


class Constraints(BaseModel):
    """Everything read from one instruction. Unparsed phrases and conflicts are kept so that the
    runtime can tell the user what it could not check or cannot satisfy, instead of guessing."""

    constraints: list[Constraint] = Field(default_factory=list)
    unparsed: list[str] = Field(default_factory=list)
    conflicts: list[str] = Field(default_factory=list)

    def check(self, answer: str) -> list[Verdict]:
        verdicts = [c.check(answer) for c in self.constraints]
        verdicts += [
            Verdict(
                check="unparsed_constraint",
                passed=None,
                evidence=f"could not read the constraint '{phrase}'; not checked",
            )
            for phrase in self.unparsed
        ]
        return verdicts

    def describe(self) -> str:
        return "\n".join(f"- {c.describe()}" for c in self.constraints)

    def room(self, default: int = 768, most: int = 3072) -> int:
        """Tokens to let an answer run to: `default`, or what the length asked for needs
        ("at least 50 sentences"), up to `most`. With the 768 that suits most answers the
        0.5B model stopped at 16 of 50 sentences and 25 of 31 (IFEval), where its answer
        with 1024 tokens had met them."""
        needed = 0
        for c in self.constraints:
            if c.low is not None and c.kind in _TOKENS_PER:
                needed = max(needed, int(c.low * _TOKENS_PER[c.kind] * 1.3))
        return min(max(default, needed), most)


# about how many tokens one unit of a length takes in the model's prose
_TOKENS_PER = {"word_count": 1.5, "sentence_count": 30, "paragraph_count": 90, "bullet_count": 25}


# ---------------------------------------------------------------------------------------------
# Extraction: the rule table
# ---------------------------------------------------------------------------------------------

_F = re.I


@dataclass
class _Hit:
    """What a rule read at one match: constraints, or a reason it refused (then the sentence is
    reported as unparsed), and where the text it read ends."""

    constraints: list[Constraint] = field(default_factory=list)
    end: int = -1
    rejected: str = ""
    quoted: tuple[int, int] | None = None  # repeat_request: where the request to repeat is


@dataclass(frozen=True)
class _Rule:
    name: str
    pattern: re.Pattern[str]
    read: Callable[[re.Match[str], str], _Hit | None]


_SENTENCE_BREAK = re.compile(r"(?<=[.!?;])(?<!\be\.g\.)(?<!\bi\.e\.)\s+|\n\s*")


def _sentence_span(text: str, pos: int) -> tuple[int, int]:
    start, end = 0, len(text)
    for m in _SENTENCE_BREAK.finditer(text):
        if m.end() <= pos:
            start = m.end()
        elif m.start() >= pos:
            end = m.start()
            break
    return start, end


def _prefix(text: str, m: re.Match[str]) -> str:
    return text[_sentence_span(text, m.start())[0] : m.start()]


# Words before a count (in the same sentence) that make it a count of a part of the answer.
_SCOPE_BEFORE = re.compile(
    r"\b(?:each|every|per|apiece)\b(?!\s+(?:separated|divided|split)\b)"
    r"|\bthe\s+(?:first|second|third|fourth|fifth|last|final|latter|former|other)\b"
    r"|\b(?:first|second|third|fourth|fifth|last|final|opening|closing|introductory|concluding)"
    r"\s+(?:[\w-]+\s+)?(?:paragraph|sentence|section|bullet|line|item|part|word|stanza)s?\b"
    r"|\b(?:title|headline|heading|subheading|caption|postscript|subject\s+line|tagline|slogan"
    r"|hashtag)s?\b|\bp\.\s?s\.|\bhighlight"
    r"|\bparagraph\s+\d"
    r"|\b(?:a|one|the|single)\s+(?:single\s+)?(?:paragraph|sentence|bullet(?:\s+point)?|section"
    r"|line|item)\s+(?:of|with|containing|having|that)\b",
    _F,
)
# "3 paragraphs with at most 2 sentences": the count is per paragraph.
_PER_PART_TAIL = re.compile(
    r"(?:paragraphs?|sentences?|bullets?|bullet\s+points?|sections?|lines?|items?|stanzas?"
    r"|verses?|points?)\s*,?\s*(?:each\s+)?(?:with|of|containing|having|that\s+(?:each\s+)?"
    r"(?:have|has|contains?)|consisting\s+of|made\s+of)\s+$",
    _F,
)
# "the word 'X' in at least 2 sentences": a frequency, not a length.
_FREQUENCY_TAIL = re.compile(
    r"\b(?:the|a|each)\s+(?:key)?(?:words?|phrases?|letters?|terms?)\s+"
    r"(?:[\"“'‘][^\"”'’]*[\"”'’]|[A-Za-z][\w'-]*)\s+"
    r"(?:(?:should|must|to)\s+)?(?:appear|occur|be\s+used)?\s*(?:in|within|across)\s+$",
    _F,
)
_SCOPE_AFTER = re.compile(
    r"\s*(?:each\b(?!\s+(?:of|with|containing|having|consisting|made|separated|divided|split)\b)"
    r"|apiece\b|per\s+\w+"
    r"|in\s+(?:each|every|the\s+(?:first|second|third|last|final|opening|closing|title|heading))\b"
    r"|in\s+(?:all\s+)?(?:caps|capitals?|capital\s+letters|upper[\s-]?case|lower[\s-]?case)\b"
    r"|for\s+(?:each|every|the\s+(?:title|heading|first|last))\b|long\s+each\b)",
    _F,
)
_TOTAL = re.compile(
    r"\b(?:in\s+total|total|overall|altogether|in\s+all\b(?!\s+(?:caps|capital|upper|lower)))\b"
    r"|\b(?:entire|whole|complete)\s+(?:answer|response|reply|output|text)\b",
    _F,
)


# What the instruction asks to be written, when that is the whole answer: "Create a slogan
# ... The slogan must include exactly 2 bullet points" counts the answer's bullets.
_ANSWER_NOUN = r"slogan|tagline|headline|caption|hashtag|subject\s+line|title"
_WHOLE_ANSWER = re.compile(
    r"\b(?:write|create|give|generate|compose|draft|suggest|make|come\s+up\s+with|invent"
    r"|craft|propose)\s+(?:me\s+|us\s+)?(?:a|an|one)\s+(?:(?!with\b|for\b|and\b|of\b|about\b)"
    rf"[\w'-]+\s+){{0,2}}(?P<noun>{_ANSWER_NOUN})s?\b",
    _F,
)


def _asked_for(text: str, part: str) -> bool:
    """Whether `part` (a noun such as "slogan" that usually names a part of the answer) is
    what the instruction asks to be written, so that a count about it is about the answer."""
    noun = re.search(_ANSWER_NOUN, part, _F)
    return noun is not None and any(
        noun.group().lower().split() == m.group("noun").lower().split()
        for m in _WHOLE_ANSWER.finditer(text)
    )


def _scope_problem(text: str, m: re.Match[str]) -> str:
    """Why a count (or phrase) found at `m` might be about a part of the answer, or ''."""
    before = _prefix(text, m)
    after = text[m.end() : _sentence_span(text, m.start())[1]]
    near = re.split(r"[,;:]|\b(?:and|with|but)\b", before, flags=_F)[-1]
    if _TOTAL.search(near + m.group() + after[:30]):
        return ""
    part = _SCOPE_BEFORE.search(before + " " + m.group())
    if part and not _asked_for(text, part.group()):
        return "applies to a part of the answer"
    if _PER_PART_TAIL.search(before) or _FREQUENCY_TAIL.search(before):
        return "applies to a part of the answer"
    if _SCOPE_AFTER.match(after):
        return "applies to a part of the answer"
    return ""


# --- counts ---------------------------------------------------------------------------------

_QUANT_KINDS = [
    (
        "min",
        r"at\s+least|no\s+(?:less|fewer)\s+than|not\s+(?:less|fewer)\s+than|a\s+minimum\s+of"
        r"|minimum\s+of|minimum|min\.?",
    ),
    (
        "max",
        r"at\s+most|no\s+more\s+than|not\s+more\s+than|no\s+longer\s+than|not\s+longer\s+than"
        r"|a\s+maximum\s+of|maximum\s+of|maximum|max\.?|up\s+to|within"
        r"|(?:must|should|shall|will|does|do)\s+not\s+exceed|(?:doesn't|don't|never|not\s+to)\s+exceed"
        r"|without\s+exceeding|not\s+exceeding",
    ),
    ("lt", r"fewer\s+than|less\s+than|under|below|shorter\s+than"),
    ("gt", r"more\s+than|over|greater\s+than|longer\s+than|in\s+excess\s+of"),
    ("exact", r"exactly|precisely"),
    ("about", r"about|around|approximately|roughly|approx\.?|~"),
]
_QUANT_ALT = "|".join(f"(?:{p})" for _, p in _QUANT_KINDS)
_QUANT = f"(?P<q>{_QUANT_ALT})"
_ADJ = (
    r"(?:(?:short|brief|concise|complete|full|separate|distinct|clear|simple|long|numbered"
    r"|bulleted|markdown|key|main|different|well-written|coherent)\s+){0,2}"
)
_UNIT = (
    r"(?P<unit>words?|sentences?|paragraphs?|bullet(?:ed)?[\s-]*points?|bullets?"
    r"|(?:bulleted|numbered|list)\s+items?|sections?|placeholders?)\b"
)
_UNIT_NO_WORDS = (
    r"(?P<unit>sentences?|paragraphs?|bullet(?:ed)?[\s-]*points?|bullets?"
    r"|(?:bulleted|numbered|list)\s+items?|sections?|placeholders?)\b"
)
_UNIT_SINGULAR = r"(?P<unit>word|sentence|paragraph|section|bullet(?:[\s-]point)?)"


def _unit_kind(unit: str) -> str:
    unit = unit.lower()
    for kind, stem in (
        ("word_count", "word"),
        ("sentence_count", "sentence"),
        ("paragraph_count", "paragraph"),
        ("section_count", "section"),
        ("placeholder_count", "placeholder"),
    ):
        if unit.startswith(stem):
            return kind
    return "bullet_count"


def _quant_kind(q: str) -> str:
    for kind, pattern in _QUANT_KINDS:
        if re.fullmatch(pattern, q.strip(), _F):
            return kind
    raise ValueError(q)


def _quant_bounds(how: str, n: int) -> tuple[int | None, int | None]:
    return {
        "min": (n, None),
        "max": (None, n),
        "lt": (None, n - 1),
        "gt": (n + 1, None),
        "exact": (n, n),
        "about": (n - n // 5, n + n // 5),
    }[how]


def _count_hit(
    m: re.Match[str], text: str, how: str, n: int, m2: int | None = None, kind: str = ""
) -> _Hit | None:
    unit = m.groupdict().get("unit") or ""
    kind = kind or _unit_kind(unit)
    low, high = (min(n, m2), max(n, m2)) if m2 is not None else _quant_bounds(how, n)
    if problem := _scope_problem(text, m):
        return _Hit(rejected=problem)
    if high is not None and high < 0:
        return None
    # "3 bullet points" asks for markdown bullets; "a list of 3 items" for any list items
    element = "bullet" if kind == "bullet_count" and "bullet" in unit.lower() else None
    return _Hit([Constraint(kind=kind, source="", low=low, high=high, element=element)])


def _read_range(m: re.Match[str], text: str) -> _Hit | None:
    return _count_hit(m, text, "", _to_int(m.group("n")), _to_int(m.group("m")))


def _read_dash_range(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "3-5 sentences"; but "twenty-five words" is one number, not a range from 20 to 5."""
    n, m2 = _to_int(m.group("n")), _to_int(m.group("m"))
    return _count_hit(m, text, "", n, m2) if n < m2 else None


# "I don't want anything longer than 30 words": a negated "more than" is a maximum
_NEGATED_BEFORE = re.compile(r"(?:\bnot|n't|\bnever)(?:\s+[\w'-]+){0,3}\s*$", _F)


def _read_quantified(m: re.Match[str], text: str) -> _Hit | None:
    how, n = _quant_kind(m.group("q")), _to_int(m.group("n"))
    if how in ("gt", "lt") and _NEGATED_BEFORE.search(_prefix(text, m)):
        how = "max" if how == "gt" else "min"
    return _count_hit(m, text, how, n)


def _read_postfix(m: re.Match[str], text: str) -> _Hit | None:
    post = m.group("post").lower()
    how = "min" if re.search(r"more|longer|above|over|min|least", post) else "max"
    return _count_hit(m, text, how, _to_int(m.group("n")))


def _read_plus(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "a 300+ word essay" and "600+ words long": at least that many."""
    return _count_hit(m, text, "min", _to_int(m.group("n")))


def _read_limit(m: re.Match[str], text: str) -> _Hit | None:
    q = m.groupdict().get("q")
    return _count_hit(m, text, _quant_kind(q) if q else "max", _to_int(m.group("n")))


def _read_count_noun(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "a word count of 100" and "word limit: 100"."""
    q = m.group("q")
    if q:
        how = _quant_kind(q)
    elif m.group("post").lower() in ("limit", "maximum"):
        how = "max"
    elif m.group("post").lower() == "minimum":
        how = "min"
    else:
        how = "about" if m.group("unit").lower() == "word" else "exact"
    return _count_hit(m, text, how, _to_int(m.group("n")))


def _read_approximate(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "a 100-word summary" and "answer in 50 words" as a target length, not an exact one."""
    unit = m.group("unit").lower()
    return _count_hit(
        m, text, "about" if unit.startswith("word") else "exact", _to_int(m.group("n"))
    )


_WRITING_VERB = re.compile(
    r"\b(?:write|compose|draft|create|produce|generate|craft|answer|respond|reply)\b", _F
)


def _read_framed(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "in 3 sentences", "should have 2 paragraphs", "there should be 4 sections" as a
    count the answer must have, even without "exactly"."""
    frame = m.group("frame").lower()
    if frame == "with":
        before = _prefix(text, m)
        if not _WRITING_VERB.search(before) or re.search(r"\bgiven\b", before, _F):
            return None
    return _count_hit(m, text, "exact", _to_int(m.group("n")))


def _read_list(m: re.Match[str], text: str) -> _Hit | None:
    q = m.groupdict().get("q")
    return _count_hit(
        m, text, _quant_kind(q) if q else "exact", _to_int(m.group("n")), kind="bullet_count"
    )


def _read_unsupported(m: re.Match[str], text: str) -> _Hit | None:
    """Reports "at most 280 characters" rather than guessing. "N times" only counts when the
    sentence is about a word or letter ("13 less than 4 times as many" is arithmetic)."""
    if m.group().lower().endswith(("time", "times")):
        start, end = _sentence_span(text, m.start())
        if not re.search(_TIMES_OF, text[start:end]):
            return None
    return _Hit(rejected="a count of something no rule counts")


_TIMES_OF = re.compile(r"\b(?:words?|letters?|phrases?|keywords?|terms?|characters?)\b", _F)


# --- phrases and terms ------------------------------------------------------------------------

_QUOTE_AT = re.compile(r"\"([^\"\n]+)\"|“([^”\n]+)”|‘([^’\n]+)’|'([^\n]+?)'(?!\w)|`([^`\n]+)`")
# Words that end a bare word list ("use the words apple and banana in your answer").
# fmt: off
_STOPWORDS = {
    "the", "a", "an", "in", "on", "at", "of", "to", "for", "with", "your", "you", "it", "its",
    "this", "that", "these", "those", "and", "or", "but", "be", "is", "are", "as", "by", "from",
    "any", "all", "some", "each", "every", "words", "word", "phrase", "phrases", "term", "terms",
    "keyword", "keywords", "response", "answer", "reply", "text", "output", "when", "while", "if",
    "more", "less", "than", "such", "like", "following", "instead", "either", "both", "only",
    "also", "too", "i", "do", "don't", "not", "never", "use", "write", "make", "keep", "avoid",
    "respond", "start", "begin", "end", "finish", "include", "mention", "describe", "explain",
    "give", "provide", "please", "then", "so", "must", "should", "can", "will",
}
# fmt: on
_TERM_NOUN = re.compile(
    r"\s*(?P<any>(?:any|all)\s+(?:of\s+)?)?(?:the\s+|these\s+|this\s+)?(?:following\s+)?"
    r"(?:(?P<noun>(?:key\s*)?words?|keywords?|terms?|phrases?)|(?P<quoted_noun>lines?|sentences?))?"
    r"\s*(?:like\s+|such\s+as\s+)?:?\s*(?P<bracket>\[\s*(?=[\"'“‘]))?",
    _F,
)
_TERM_END = re.compile(r"\s*(?:[,.;:!?)\]]|$|\n|\s(?:and|or|in|anywhere|throughout|within)\b)", _F)
_TERM_SEP = re.compile(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+|\s*[&/]\s*", _F)
_BARE_TERM = re.compile(r"[A-Za-z][\w'-]*")
_PROPER_NOUN = re.compile(r"[A-Z][\w'-]*(?:[ \t]+[A-Z][\w'-]*)*")
# "do not use the letter 'e'", "avoid commas": not words, and not checked as words.
_NOT_WORDS = re.compile(
    r"\s*(?:the\s+|any\s+)?(?:letters?|characters?|commas?|punctuation|symbols?|emojis?|numbers?"
    r"|digits?|capital|upper|lower)\b",
    _F,
)


def _quoted_at(text: str, pos: int) -> tuple[str, int] | None:
    m = _QUOTE_AT.match(text, pos)
    if not m:
        return None
    return next(g for g in m.groups() if g is not None).strip(), m.end()


def _read_terms(
    text: str, pos: int, capitalized: bool = False
) -> tuple[list[str], int, bool, bool]:
    """Terms after "use the words": quoted ones, or bare single words after a noun such as
    "words"/"keywords" (or, where `capitalized`, bare proper nouns: "mention Paris")."""
    if _NOT_WORDS.match(text, pos):
        return [], pos, False, False
    lead = _TERM_NOUN.match(text, pos)
    assert lead is not None
    pos = lead.end()
    # "the words X and Y" names words; "say any word before..." does not
    any_word = (lead.group("any") or "").lower()
    bare_ok = bool(lead.group("noun")) and not (any_word.startswith("any") and "of" not in any_word)
    terms: list[str] = []
    end, had_or, after_conjunction, quoted_list = pos, False, False, None
    while True:
        quoted = _quoted_at(text, pos)
        if quoted and quoted_list is not False:
            term, nxt = quoted
            quoted_list = True
        else:
            bare = _BARE_TERM.match(text, pos)
            if quoted_list or not bare or bare.group().lower() in _STOPWORDS:
                break
            if not (bare_ok or (capitalized and bare.group()[0].isupper())):
                break
            if not bare_ok:  # a proper noun may run on: "mention the Eiffel Tower"
                bare = _PROPER_NOUN.match(text, pos) or bare
            # "the words good, bad, describe the movie": a bare word followed by more text
            # after a plain comma starts the next clause.
            if terms and not after_conjunction and not _TERM_END.match(text, bare.end()):
                break
            term, nxt = bare.group(), bare.end()
            quoted_list = False
        terms.append(term)
        end = nxt
        sep = _TERM_SEP.match(text, nxt)
        if after_conjunction or not sep:
            break  # "X, Y and Z" ends at Z
        after_conjunction = bool(re.search(r"\b(?:and|or)\b|[&/]", sep.group(), _F))
        had_or = had_or or bool(re.search(r"\bor\b|/", sep.group(), _F))
        pos = sep.end()
    if lead.group("bracket") and (close := re.compile(r"\s*\]").match(text, end)):
        end = close.end()  # a list written as ['a', 'b']
    # a symbol ("use '*' for bullets") is not a word to look for
    return [t for t in terms if re.search(r"\w", t)], end, had_or, bare_ok


_PHRASE_VERB_BEFORE = re.compile(
    r"\b(?:start|begin|end|finish|conclude|open|close)\w*(?:\s+[\w-]+){0,4}\s*$", _F
)


# "do not mention nursery and storytelling in your response": a list of bare words that the
# sentence says are about the answer
_IN_ANSWER = re.compile(
    r"\s+(?:in|throughout|anywhere\s+in)\s+(?:your|the)\s+(?:entire\s+|whole\s+)?"
    r"(?:answer|response|reply|output|text)\b",
    _F,
)
_BARE_LIST = re.compile(
    r"\s+(?P<list>[A-Za-z][\w'-]*(?:\s*,\s*[A-Za-z][\w'-]*)*,?\s+(?:and|or)\s+[A-Za-z][\w'-]*)"
)


def _bare_list_in_answer(text: str, pos: int) -> tuple[list[str], int]:
    listed = _BARE_LIST.match(text, pos)
    if not listed or not _IN_ANSWER.match(text, listed.end()):
        return [], pos
    words = _TERM_SEP.split(listed.group("list"))
    if any(w.lower() in _STOPWORDS for w in words):
        return [], pos
    return words, listed.end()


def _terms_hit(m: re.Match[str], text: str, kind: str) -> _Hit | None:
    verb = m.group().lower()
    terms, end, had_or, named = _read_terms(text, m.end(), capitalized="mention" in verb)
    if not terms and kind == "forbidden_words":
        terms, end = _bare_list_in_answer(text, m.end())
        had_or, named = False, bool(terms)
    if not terms or (verb in ("with", "has", "have", "having") and not named):
        return None
    if verb == "with" and _PHRASE_VERB_BEFORE.search(_prefix(text, m)):
        return None  # "start with word X" is a start phrase, not a required word
    if had_or and kind == "required_words":
        return _Hit(end=end, rejected="either/or word list")
    return _Hit([Constraint(kind=kind, source="", words=terms)], end=end)


def _read_required(m: re.Match[str], text: str) -> _Hit | None:
    return _terms_hit(m, text, "required_words")


def _read_forbidden(m: re.Match[str], text: str) -> _Hit | None:
    return _terms_hit(m, text, "forbidden_words")


_PHRASE_NOUN = re.compile(
    r"\s*(?:exactly\s+)?(?:(?P<article>the|this|these)\s+(?:following\s+)?"
    r"(?:exact\s+|precise\s+|same\s+)?(?P<noun>phrase|words?|sentence|line|greeting|question"
    r"|salutation|text|statement)(?:\s+of)?\s*:?\s*"
    r"|(?P<bare_noun>word|phrase)\s+|(?P<colon>:)\s*)?",
    _F,
)
# What "end ... with" may name when it means the whole answer: "your response", "the rant",
# "the blog post"; not a part of it ("the title", "the second paragraph").
_ANSWER_OBJECT = re.compile(
    r"(?:(?:your|the|this|my)\s+)?(?:(?:entire|whole|full|complete|final)\s+)?"
    r"(?:(?:[\w-]+\s+)?(?:answer|response|reply|output|message|text|essay|letter|email|e-mail"
    r"|story|poem|post|note|speech|article|summary|rant|tweet|review|song|lyrics|limerick|haiku"
    r"|joke|riddle|rap|pitch|proposal|ad|advertisement|description|resume|dialogue|script|memo"
    r"|report|template|announcement|newsletter|toast|blog|conversation)\s*|it\s*)?",
    _F,
)
_PHRASE_SCOPE = re.compile(
    r"\b(?:each|every)\b|\bparagraph\s+\d|\b(?:first|second|third|fourth|fifth|last|final|next)"
    r"\s+(?:paragraph|sentence|section|bullet|line|item|part|stanza)|\b(?:postscript|p\.\s?s\.)"
    r"|\b(?:title|heading|headline|subject\s+line|paragraphs?|sentences?|lines?|bullets?"
    r"|sections?|items?|stanzas?|verses?)\s+(?:should|must|has\s+to|needs\s+to|will)\b",
    _F,
)


def _read_phrase(text: str, pos: int, single_word: bool = False) -> tuple[str, int] | None:
    lead = _PHRASE_NOUN.match(text, pos)
    assert lead is not None
    quoted = _quoted_at(text, lead.end())
    if quoted:
        return quoted
    if (lead.group("bare_noun") or "").lower() == "phrase":
        return None  # "begin with phrase" + no quotes: too vague to read
    noun = (lead.group("noun") or lead.group("bare_noun") or "").lower()
    if lead.group("colon") and not single_word:
        noun = "phrase"  # "end with: That is all you need!"
    if noun == "word" or (single_word and not noun):
        bare = re.compile(r"[\w'-]+").match(text, lead.end())
        return (bare.group(), bare.end()) if bare else None
    if not noun:
        return None
    bare = re.compile(
        r"[^\n]+?(?=[.;](?:\s|$)|\n|$|,?\s+and\s+(?:then\s+)?(?:end|finish|start|begin|use|do|include)\b)",
        _F,
    )
    found = bare.match(text, lead.end())
    return (found.group().strip(), found.end()) if found and found.group().strip() else None


def _phrase_hit(m: re.Match[str], text: str, kind: str, single_word: bool = False) -> _Hit | None:
    read = _read_phrase(text, m.end(), single_word)
    if read is None:
        return None
    phrase, end = read
    if re.match(r"\s*,?\s+or\s+[\"“'‘]", text[end:]):
        return _Hit(end=end, rejected="either/or phrase")  # "start with 'Yes' or 'No'"
    obj = m.groupdict().get("obj") or ""
    if not _ANSWER_OBJECT.fullmatch(obj) or _PHRASE_SCOPE.search(_prefix(text, m) + " " + obj):
        return _Hit(end=end, rejected="applies to a part of the answer")
    return _Hit([Constraint(kind=kind, source="", phrase=phrase)], end=end)


def _read_start(m: re.Match[str], text: str) -> _Hit | None:
    return _phrase_hit(m, text, "starts_with")


def _read_end(m: re.Match[str], text: str) -> _Hit | None:
    return _phrase_hit(m, text, "ends_with")


def _read_first_word(m: re.Match[str], text: str) -> _Hit | None:
    kind = "starts_with" if m.group("which").lower() == "first" else "ends_with"
    return _phrase_hit(m, text, kind, single_word=True)


# --- case, formats, language, sections --------------------------------------------------------

_CASE_SCOPE_BEFORE = re.compile(
    r"\b(?:words?|names?|acronyms?|initials|keywords?|first\s+letters?|title|headings?|headline"
    r"|each|every|letter\s+\w)\b",
    _F,
)
_CASE_SCOPE_AFTER = re.compile(
    r"\s*(?:for|in|on)\s+(?:the\s+|all\s+|each\s+|every\s+)?(?:title|headings?|names?|first"
    r"|keywords?|key\s+words|acronyms?|initials|labels?)\b|[^.!?\n]*\b(?:\d+|once|twice)\s+times?\b"
    r"|[^.!?\n]*\b(?:once|twice)\b",
    _F,
)


_CASE_DESCRIPTION = re.compile(
    r"\b(?:contains?|consists?\s+of|has|have|is|are|uses)\s+(?:only\s+|all\s+)?(?:in\s+)?$", _F
)
_MODAL = re.compile(
    r"\b(?:should|must|needs?\s+to|has\s+to|have\s+to|shall|make\s+sure|ensure|be\s+sure)\b", _F
)


def _case_reader(case: str) -> Callable[[re.Match[str], str], _Hit | None]:
    def read(m: re.Match[str], text: str) -> _Hit | None:
        after = text[m.end() : _sentence_span(text, m.start())[1]]
        before = _prefix(text, m)
        if _CASE_DESCRIPTION.search(before) and not _MODAL.search(before + after):
            return None  # "... and contains only lowercase letters" describes some input
        # "write the names in capitals" is about the names; "an essay on first names, without
        # capital letters" is about the essay: only the clause the case is in counts
        clause = re.split(r"[,;:]|--+|—", before)[-1]
        if _CASE_SCOPE_BEFORE.search(clause) or _CASE_SCOPE_AFTER.match(after):
            return _Hit(rejected="letter case of a part of the answer")
        return _Hit([Constraint(kind="case", source="", case=case)])

    return read


_QUESTION_START = re.compile(
    r"^\s*(?:how|what|why|which|where|when|can\s+i|could\s+i|is|are|does|do\s+i)\b", _F
)
_CODE_CONTEXT = re.compile(
    r"\b(?:function|method|endpoint|api|program|script|code|class|server|service|that|which)\b", _F
)


def _read_json(m: re.Match[str], text: str) -> _Hit | None:
    before = _prefix(text, m)
    whole = re.search(
        r"\b(?:entire|whole|full)\s+(?:output|response|answer|reply)\b", m.group(), _F
    )
    if (_CODE_CONTEXT.search(before) and not whole) or _QUESTION_START.match(before + m.group()):
        return None
    return _Hit([Constraint(kind="json_format", source="")])


_MARKDOWN_ELEMENT_WORDS = [
    ("heading", r"head|title"),
    ("emphasis", r"bold|italic|emphasis|highlight"),
    ("list", r"list|bullet"),
    ("table", r"table"),
]


def _read_markdown(m: re.Match[str], text: str) -> _Hit | None:
    if _QUESTION_START.match(_prefix(text, m) + m.group()):
        return None
    if re.match(r"\s+(?:divider|separator|horizontal\s+rule|rule)s?\b", text[m.end() :], _F):
        return None  # "separated with the markdown divider ***" asks for paragraphs
    element = None
    named = (m.groupdict().get("el") or "").lower()
    for name, words in _MARKDOWN_ELEMENT_WORDS:
        if re.search(words, named):
            element = name
    return _Hit([Constraint(kind="markdown_format", source="", element=element)])


def _read_language(m: re.Match[str], text: str) -> _Hit | None:
    trailing = m.group().lstrip(", ").lower().startswith(("and", "in"))
    at_end = re.match(r"\s*(?:only\s*|please\s*)?(?:[.!?]|$)", text[m.end() :], _F)
    if trailing and not at_end and not _ANSWER_WORD.search(_prefix(text, m)):
        return None  # ", and in French, ..." only counts at the end or after "your answer"
    code = LANGUAGES[m.group("lang").lower()]
    return _Hit([Constraint(kind="language", source="", language=code)])


_ANSWER_WORD = re.compile(r"\b(?:answer|response|reply|output|respond|write|written)\b", _F)


def _read_language_only(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "entirely in Russian", "using only Hindi", "in Urdu only, no other language is
    allowed"; "a word that exists only in German" names no language for the answer."""
    start, end = _sentence_span(text, m.start())
    if not re.search(
        r"no\s+other\s+language|\b(?:answer|response|reply|output|respond|write|written|rewrite"
        r"|tell|translate|compose|it'?s|it\s+is|use|using)\b",
        text[start:end],
        _F,
    ):
        return None
    return _Hit(
        [Constraint(kind="language", source="", language=LANGUAGES[m.group("lang").lower()])]
    )


def _read_marker(m: re.Match[str], text: str) -> _Hit | None:
    """A marker such as "SECTION X" for the sections (or, "label each paragraph with PARAGRAPH
    X", the paragraphs) the answer is counted by; `element` keeps which, until a count joins
    it (`_attach_markers`)."""
    part = (m.groupdict().get("part") or "section").lower()
    return _Hit(
        [Constraint(kind="section_count", source="", low=1, marker=m.group("marker"), element=part)]
    )


_LANG = "(?P<lang>" + "|".join(LANGUAGES) + r")\b"
_LANG_END = (
    r"(?:\s+language)?(?=\s*(?:$|[.,;:!?)\"'”’]|\b(?:only|please|and|with|without|no|throughout"
    r"|as|so|for|too|but|about|of|on|that|to|using|from|except)\b))"
)
_NUM_N, _NUM_M = _num("n"), _num("m")
_VERB_OBJ = r"\s+(?P<obj>(?:[\w-]+\s+){0,4}?)"


# --- IFEval's other kinds: commas, placeholders, highlights, titles, postscripts, ... ---------

_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "last": -1, "final": -1,
}  # fmt: skip
_ORD = r"(?:" + "|".join(_ORDINALS) + r"|\d+\s*-?\s*(?:st|nd|rd|th))"


def _ordinal(text: str) -> int:
    """Which paragraph: "second", "2nd", "2-nd", "2" and "two" are 2; "last" is -1."""
    text = text.lower().strip()
    if text in _ORDINALS:
        return _ORDINALS[text]
    digits = re.match(r"\d+", text)
    return int(digits.group()) if digits else _to_int(text)


# How often: "at least 3 times", "less than twice", "6 or 7 times", "3 to 5 times", "only once".
_FREQ = (
    rf"(?:(?P<fq>{_QUANT_ALT}|only|just)\s+(?:a\s+total\s+of\s+)?)?"
    rf"(?:(?P<fn>{_NUM_CORE})\s+(?:(?:to|or|-|–)\s+(?P<fm>{_NUM_CORE})\s+)?times?\b"
    r"|(?P<fw>once|twice|thrice)\b)"
)
_FREQ_AFTER = re.compile(
    rf"[ \t]*(?:(?!(?:and|but|or|words?|letters?)\b)[\w'-]+[ \t]+){{0,7}}?{_FREQ}", _F
)
_FREQ_WORDS = {"once": 1, "twice": 2, "thrice": 3}


def _freq_bounds(m: re.Match[str]) -> tuple[int | None, int | None]:
    n = _FREQ_WORDS[m.group("fw").lower()] if m.group("fw") else _to_int(m.group("fn"))
    if m.group("fm"):
        return min(n, _to_int(m.group("fm"))), max(n, _to_int(m.group("fm")))
    q = (m.group("fq") or "").lower()
    how = "exact" if q in ("", "only", "just") else _quant_kind(q)
    return _quant_bounds("exact" if how == "about" else how, n)


_FREQ_SCOPE_AFTER = re.compile(r"\s*(?:in|within|for)\s+(?:each|every)\b|\s*(?:each|per)\b", _F)


def _frequency_hit(m: re.Match[str], text: str, term_end: int, kind: str, term: str) -> _Hit | None:
    freq = _FREQ_AFTER.match(text, term_end)
    if not freq:
        return None
    low, high = _freq_bounds(freq)
    if _FREQ_SCOPE_AFTER.match(text, freq.end()) or re.search(
        r"\b(?:each|every|per)\s+(?:paragraph|sentence|section|line|bullet|stanza)",
        _prefix(text, m),
        _F,
    ):
        return _Hit(end=freq.end(), rejected="a frequency in a part of the answer")
    if high is not None and high < 0:
        return None
    return _Hit(
        [Constraint(kind=kind, source="", low=low, high=high, words=[term])], end=freq.end()
    )


# "the word X should not appear": a forbidden word
_NEVER_APPEAR = re.compile(
    r"[ \t]+(?:should|must|may|can|will|does|do|is\s+to)?[ \t]*(?:not|n't|never)[ \t]+"
    r"(?:appear|occur|be\s+(?:used|included|mentioned|said|written))\b",
    _F,
)


def _read_keyword_frequency(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "the word 'X' should appear at least 3 times", "include the word X at least
    twice", "mention the name Sarah only once", and "the word X should not appear"."""
    quoted = _quoted_at(text, m.end())
    if quoted:
        term, term_end = quoted
    else:
        bare = _BARE_TERM.match(text, m.end())
        if not bare or bare.group().lower() in _STOPWORDS or m.group("verb"):
            return None
        term, term_end = bare.group(), bare.end()
    if not re.search(r"\w", term):
        return None
    never = _NEVER_APPEAR.match(text, term_end)
    if never and not m.group("verb"):
        return _Hit([Constraint(kind="forbidden_words", source="", words=[term])], end=never.end())
    return _frequency_hit(m, text, term_end, "keyword_frequency", term)


_LETTER = re.compile(r"[\"“'‘`]?(?P<let>[^\W\d_]|#)[\"”'’`]?(?![\w'])", _F)


def _read_letter_frequency(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "the letter q should appear at least 5 times", "include the letter 'l' at least
    15 times", and, as at most 0, "do not use the letter e"."""
    letter = _LETTER.match(text, m.end())
    if not letter:
        return None
    found = Constraint(kind="letter_frequency", source="", words=[letter.group("let").lower()])
    if m.group("neg"):
        if re.search(r"\b(?:try|tries|trying|tried)\s+to\s*$", _prefix(text, m), _F):
            return None  # "two people who are trying to avoid the letter t" is content
        tail = re.compile(r"\s+(?:anywhere|whatsoever|at\s+all)\b").match(text, letter.end())
        found.high = 0
        return _Hit([found], end=tail.end() if tail else letter.end())
    never = _NEVER_APPEAR.match(text, letter.end())
    if never:
        found.high = 0
        return _Hit([found], end=never.end())
    return _frequency_hit(m, text, letter.end(), "letter_frequency", found.words[0])


def _read_hashtags(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "at least 4 hashtags" as at least 4 '#' characters, as IFEval counts them."""
    low, high = _quant_bounds(_quant_kind(m.group("q")), _to_int(m.group("n")))
    return _Hit([Constraint(kind="letter_frequency", source="", words=["#"], low=low, high=high)])


def _read_capital_words(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "at least 10 words in all capital letters" and "words with all capital letters
    should appear at least 3 times"; "use (some) words in all caps" alone is at least one."""
    if m.groupdict().get("n"):
        how = _quant_kind(m.group("q"))
        n = _to_int(m.group("n"))
        if _NEGATED_BEFORE.search(_prefix(text, m)) and how in ("gt", "lt"):
            how = "max" if how == "gt" else "min"
        low, high, end = *_quant_bounds(how, n), m.end()
    elif m.groupdict().get("noun"):
        freq = _FREQ_AFTER.match(text, m.end())
        if not freq:
            return None
        (low, high), end = _freq_bounds(freq), freq.end()
    else:
        low, high, end = 1, None, m.end()
    if problem := _scope_problem(text, m):
        return _Hit(end=end, rejected=problem)
    return _Hit([Constraint(kind="capital_word_count", source="", low=low, high=high)], end=end)


def _read_highlights(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "highlight at least 3 sections with markdown", "include two italic text
    sections", "italicize 5 of your favorite names": at least that many highlighted spans (a
    highlight count is a minimum, as in IFEval, even without "at least"). "Highlight some key
    parts" is at least one; "highlight each section name" is one per section (the section
    count joins it in `_attach_highlighted_sections`)."""
    if m.groupdict().get("each"):
        return _Hit([Constraint(kind="highlight_count", source="", low=None, element="each")])
    if not m.groupdict().get("n"):
        return _Hit([Constraint(kind="highlight_count", source="", low=1)])
    q, n = m.groupdict().get("q"), _to_int(m.group("n"))
    low, high = _quant_bounds(_quant_kind(q), n) if q else (n, None)
    if high == low:
        high = None  # "exactly 3 highlighted sections": IFEval counts at least
    return _Hit([Constraint(kind="highlight_count", source="", low=low, high=high)])


def _read_no_comma(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "do not use any commas", "without commas", "commas are not allowed"; commas in a
    part ("no commas in the title", "numbers without commas") are not checked."""
    start, end = _sentence_span(text, m.start())
    if re.search(
        r"\b(?:title|heading|headline|names?|numbers?|keywords?)\b",
        text[start:end],
        _F,
    ) and not re.search(r"\b(?:response|answer|reply|output|entire|whole)\b", text[start:end], _F):
        return _Hit(rejected="commas in a part of the answer")
    return _Hit([Constraint(kind="no_comma", source="")])


def _read_title(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "a title wrapped in double angular brackets, i.e. <<title>>" (with its example)."""
    if _QUESTION_START.match(_prefix(text, m) + m.group()):
        return None
    example = re.compile(
        r"[ \t]*,?[ \t]*(?:\(?(?:i\.e\.|e\.g\.|such\s+as|like|for\s+example|as\s+in)[,:]?[ \t]*)?"
        r"<<[^<>\n]*>>\)?",
        _F,
    ).match(text, m.end())
    return _Hit([Constraint(kind="title", source="")], end=example.end() if example else m.end())


_POSTSCRIPT_CONTEXT = re.compile(
    r"\bpost[\s-]?script|\b(?:add|include|append|end|finish|close|conclude|write)\w*\b"
    r"|\bwith\s+an?\b|\bat\s+the\s+end\b",
    _F,
)


def _read_postscript(m: re.Match[str], text: str) -> _Hit | None:
    """Reads the marker in "add a postscript starting with P.P.S"; a P.S. the sentence does
    not ask to add ("why do letters have a P.S.?") is not one."""
    start, end = _sentence_span(text, m.start())
    before = text[max(0, start - 200) : m.start()]
    if not _POSTSCRIPT_CONTEXT.search(before + text[m.end() : end]):
        return None
    marker = "P.P.S" if re.match(r"p\.\s?p", m.group("marker"), _F) else "P.S."
    return _Hit([Constraint(kind="postscript", source="", phrase=marker)])


_QUOTE_WRAP_VERB = re.compile(
    r"\b(?:wrap|wrapped|wrapping|enclose|enclosed|enclosing|put|surround|surrounded|inside"
    r"|within|between)\b",
    _F,
)
_QUOTE_PART = re.compile(
    r"\b(?:each|every|title|names?|dialogue|speech|quotes?|quotations|words?|phrases?|terms?"
    r"|keywords?|strings?|keys?|values?|lines?)\b",
    _F,
)


def _read_quotation(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "wrap your entire response with double quotation marks" (and "put double quotes
    around your answer"); double quotes around a part (a title, each keyword) are not it."""
    start, end = _sentence_span(text, m.start())
    before, after = text[start : m.start()], text[m.end() : end]
    if not _QUOTE_WRAP_VERB.search(before + " " + after[:40]):
        return None
    if not (_ANSWER_WORD.search(before) or re.match(r"\s*around\s+(?:your|the)\s+", after, _F)):
        return None
    # what is wrapped: the words after the verb ("wrap each keyword in"), or after "around"
    verbs = list(_QUOTE_WRAP_VERB.finditer(before))
    wrapped = before[verbs[-1].end() :] if verbs else ""
    around = re.match(r"\s*around\s+([^.,;\n]*)", after, _F)
    wrapped += " " + (around.group(1) if around else "")
    if _QUOTE_PART.search(re.sub(r"\([^)]*\)", "", wrapped)):
        return _Hit(rejected="quotation marks around a part of the answer")
    around = re.compile(
        r"\s+around\s+(?:your|the)\s+(?:entire\s+|whole\s+)?(?:answer|response|reply|output)\b", _F
    ).match(text, m.end())
    return _Hit([Constraint(kind="quotation", source="")], end=around.end() if around else m.end())


def _read_two_responses(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "give two different responses separated by 6 asterisk symbols ******"."""
    if re.search(r"\b(?:three|four|five|3|4|5)\s+(?:different\s+)?\w+s\b", _prefix(text, m), _F):
        return _Hit(rejected="more than two responses")
    return _Hit([Constraint(kind="two_responses", source="")])


# A constrained answer's options: quoted ('My answer is yes.', "My answer is no.") or one a line.
_OPTION = re.compile(
    r"[\"“”'‘’](?P<opt>[^\"“”\n]+?)[\"“”'‘’](?=\s*(?:[,;)\]]|\bor\b|\band\b|--|$|\n|\.(?:\s|$)))",
    _F,
)
_OPTION_SEP = re.compile(r"\s*(?:,\s*(?:or\s+|and\s+)?|\s+or\s+|;\s*)", _F)


def _read_options(text: str, pos: int) -> tuple[list[str], int]:
    lines = re.compile(r"[ \t]*\n((?:[ \t]*(?:[-*•]\s+)?[^\n]{1,80}(?:\n|$)){2,10})").match(
        text, pos
    )
    if lines and not _OPTION.match(text, re.compile(r"\s*").match(text, pos).end()):
        opts = [re.sub(r"^[-*•]\s+", "", x.strip()) for x in lines.group(1).splitlines()]
        opts = [o for o in opts if o]
        return opts, lines.end()
    pos = re.compile(r"\s*\(?\s*").match(text, pos).end()
    options, end = [], pos
    while opt := _OPTION.match(text, pos):
        options.append(opt.group("opt").strip())
        end = opt.end()
        sep = _OPTION_SEP.match(text, end)
        if not sep:
            break
        pos = sep.end()
    close = re.compile(r"\s*\)").match(text, end)
    return options, close.end() if close else end


def _read_constrained(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "answer with one of the following options: 'My answer is yes.', ..." and
    'answer "My answer is yes." or "My answer is no."'."""
    options, end = _read_options(text, m.end())
    if len(options) < 2:
        return None
    return _Hit([Constraint(kind="constrained_response", source="", words=options)], end=end)


def _read_paragraph_first_word(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "the 2nd paragraph must start with the word X", "Paragraph 1 must start with word
    X", "start the first paragraph with 'X'"; the paragraph count is read on its own."""
    read = _read_phrase(text, m.end(), single_word=True)
    if read is None:
        return None
    phrase, end = read
    groups = m.groupdict()
    index = _ordinal(next(groups[g] for g in ("ord", "ord2", "num", "num2") if groups.get(g)))
    return _Hit(
        [Constraint(kind="paragraph_first_word", source="", phrase=phrase, index=index)], end=end
    )


_DIVIDER_MENTION = re.compile(
    r"(?<!\*)\*{3}(?!\*)|\b(?:three|3)\s+asterisks?\b|\bmarkdown\s+divider", _F
)


def _read_divided(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "3 parts separated by ***" and "exactly 6 stanzas. Separate the stanzas using ***"
    as a paragraph count: ``***`` is a paragraph divider."""
    start, end = _sentence_span(text, m.start())
    nxt = _sentence_span(text, min(len(text), end + 1))[1]
    near = text[start:nxt]
    if not (_DIVIDER_MENTION.search(near) and re.search(r"separat|split|divid|break", near, _F)):
        return None
    q = m.groupdict().get("q")
    return _count_hit(
        m, text, _quant_kind(q) if q else "exact", _to_int(m.group("n")), kind="paragraph_count"
    )


# --- repeating the request ---------------------------------------------------------------------

_REPEAT_WORDS = re.compile(
    r"\b(?:repeat\w*|repleat\w*|say|said|saying|chang\w*|add|before|word\s+(?:for|by)\s+word)\b",
    _F,
)
_REQUEST_NOUN = re.compile(
    r"\b(?:request|prompt|question|instructions?|sentence|line|text|query|task)\b", _F
)
_REPEAT_VERBATIM = re.compile(
    r"word\s+(?:for|by)\s+word|without\s+(?:any\s+)?chang|exact|verbatim|as\s+it\s+is|\bfirst\b"
    r"|\bbefore\b|beginning|above|below|following",
    _F,
)


def _quoted_span(text: str, pos: int) -> tuple[int, int] | None:
    m = _QUOTE_AT.match(text, re.compile(r"\s*").match(text, pos).end())
    if not m:
        return None
    return next(m.span(g) for g in range(1, 6) if m.group(g) is not None)


def _read_repeat(m: re.Match[str], text: str) -> _Hit | None:
    """Reads "First repeat the request above word for word without change, then give your
    answer" and finds the request: quoted after "repeat", the first line, the text above the
    instruction, or (for "below"/"following", or an instruction that opens the prompt) the
    text after it. The instruction's sentences ("do not say anything before repeating") are
    read with it; the request is left for the other rules, whose constraints it carries."""
    start, end = _sentence_span(text, m.start())
    sentence = text[start:end]
    if re.search(
        r"(?:\bnot|n't|\bnever|\bavoid|\bwithout)\s+(?:\w+\s+){0,2}$", text[start : m.start()], _F
    ):
        return None
    if not _REPEAT_VERBATIM.search(sentence) or not (
        _REQUEST_NOUN.search(sentence) or _quoted_span(text, m.end())
    ):
        return None
    # the instruction: this sentence and the ones after it that talk about repeating
    para_end = text.find("\n\n", end)
    para_end = len(text) if para_end < 0 else para_end
    stop = end
    for a, b in _spans(text, _SENTENCE_BREAK):
        if a < end or b > para_end:
            continue
        if not _REPEAT_WORDS.search(text[a:b]):
            break
        stop = b
    quoted = _quoted_span(text, m.end())
    if quoted and quoted[1] - quoted[0] > 15:
        return _Hit([Constraint(kind="repeat_request", source="")], end=stop, quoted=quoted)
    if re.search(r"\bfirst\s+line\b", sentence, _F):
        line_end = text.find("\n")
        request = (0, line_end if 0 <= line_end < start else start)
    elif re.search(r"\b(?:below|following)\b", sentence, _F) or not text[:start].strip():
        request = (stop, len(text))
    else:
        request = (0, start)
    if not text[slice(*request)].strip():
        return None
    return _Hit([Constraint(kind="repeat_request", source="")], end=stop, quoted=request)


_RULES: list[_Rule] = [
    # The request to repeat comes first: its sentences ("do not say any words before repeating
    # the request") are not about words to avoid.
    _Rule("repeat_request", re.compile(r"\b(?:repeat|repleat)(?:ing)?\b", _F), _read_repeat),
    # Section markers come next: "begin each section with 'SECTION X'" is not a start phrase.
    _Rule(
        "section_marker",
        re.compile(
            r"\b(?:mark|label|start|begin|prefix|title|head|number)\w*\s+(?:the\s+)?"
            r"(?:beginning\s+of\s+)?(?:each|every)\s+(?:new\s+)?section\s+(?:with|by|using|as)\s+"
            r"(?:the\s+(?:word|label|heading|text)\s+)?[\"“'‘`]?(?P<marker>[A-Za-z]+)\s+"
            r"(?:X|N|\d+|\{\w*\}|\[\w*\]|#)\b[\"”'’`]?",
            _F,
        ),
        _read_marker,
    ),
    _Rule(
        "section_marker_each",
        re.compile(
            r"\b(?:each|every)\s+(?:new\s+)?(?P<part>section|paragraph|part|chapter)\b"
            r"(?:\s+[\w'-]+){0,5}?\s+(?:with|as|by|using)\s+(?:the\s+(?:word|label|heading|text)\s+)?"
            r"[\"“'‘`]?(?P<marker>[A-Za-z]+)\s+(?:X|N|\d+|\{\w*\}|\[\w*\]|#)\b[\"”'’`]?",
            _F,
        ),
        _read_marker,
    ),
    _Rule(
        "two_responses",
        re.compile(
            r"\b(?:separat\w*|split\w*|divid\w*|break\w*)\s+(?:[\w'-]+\s+){0,5}?(?:with|by|using"
            r"|via)\s+(?:exactly\s+)?(?:(?:6|six)\s+asterisks?(?:\s+(?:symbols?|marks?|markers?"
            r"|signs?|characters?))?(?:\s*:?\s*\(?\*{6,}\)?)?|\*{6,})",
            _F,
        ),
        _read_two_responses,
    ),
    # "The 2nd paragraph must start with the word X": before the start phrases, which would
    # read it as a start of the whole answer.
    _Rule(
        "paragraph_first_word",
        re.compile(
            rf"\b(?:the\s+|your\s+)?(?P<ord>{_ORD})\s+paragraph\s+(?:(?:should|must|has\s+to"
            r"|needs\s+to|will|shall)\s+(?:also\s+)?)?(?:start|begin)s?\s+with\b",
            _F,
        ),
        _read_paragraph_first_word,
    ),
    _Rule(
        "paragraph_n_first_word",
        re.compile(
            rf"\bparagraph\s+(?P<num>\d+|{_NW})\s+(?:(?:should|must|has\s+to|needs\s+to|will"
            r"|shall)\s+(?:also\s+)?)?(?:start|begin)s?\s+with\b",
            _F,
        ),
        _read_paragraph_first_word,
    ),
    _Rule(
        "start_paragraph_with",
        re.compile(
            rf"\b(?:start|begin)\s+(?:the\s+|your\s+)?(?:(?P<ord2>{_ORD})\s+paragraph"
            r"|paragraph\s+(?P<num2>\d+))\s+with\b",
            _F,
        ),
        _read_paragraph_first_word,
    ),
    _Rule(
        "postscript",
        re.compile(r"[\"“'‘]?(?<![\w.])(?P<marker>p\.\s?(?:p\.\s?)?s\b\.?)[\"”'’]?", _F),
        _read_postscript,
    ),
    _Rule(
        "title",
        re.compile(
            r"(?:\b(?:a|the|your)\s+title\b[^.\n<]{0,30}?)?\bdouble\s+angul?ar\s+brackets?\b"
            r"|\bdouble\s+angle\s+brackets?\b|\btitle\b[^.\n<]{0,40}?<<[^<>\n]+>>",
            _F,
        ),
        _read_title,
    ),
    _Rule(
        "quotation",
        re.compile(r"\bdouble\s+(?:quotation\s+marks?|quotes?|quote\s+marks?)\b", _F),
        _read_quotation,
    ),
    _Rule(
        "hashtags",
        re.compile(
            rf"\b{_QUANT}\s+{_NUM_N}\s+hashtags?\b(?:\s*,?\s*(?:each\s+)?(?:starting|beginning"
            r"|that\s+starts?)\s+with\s+[\"“'‘]?#[\"”'’]?)?",
            _F,
        ),
        _read_hashtags,
    ),
    _Rule(
        "letter_frequency",
        re.compile(
            r"\b(?P<neg>(?:do\s+not|don't|never|must\s+not|should\s+not|cannot|can't|without"
            r"|avoid|refrain\s+from|not\s+to|no)\s+(?:(?:use|using|include|including|write"
            r"|writing|type|typing|contain|containing|have|having)\s+)?(?:any\s+)?)?(?:the\s+)?"
            r"letter\s+",
            _F,
        ),
        _read_letter_frequency,
    ),
    _Rule(
        "keyword_frequency",
        re.compile(
            r"\b(?:(?:the|a)\s+)?(?:key\s*)?(?:word|keyword|term|name)\s+(?=\S)"
            r"|\b(?P<verb>mention|use|include|say|repeat|write)\s+(?=[\"“'‘])",
            _F,
        ),
        _read_keyword_frequency,
    ),
    _Rule(
        "capital_words_counted",
        re.compile(
            rf"\b{_QUANT}\s+{_NUM_N}\s+(?:[\w-]+\s+)?words?(?:\s+or\s+phrases?)?\s+(?:(?:that\s+are"
            r"|which\s+are|are|be|to\s+be|written|should\s+be)\s+)?(?:in|with|using)\s+(?:all\s+)?"
            r"(?:capital\s+letters|caps|capitals|upper[\s-]?case(?:\s+letters)?)\b",
            _F,
        ),
        _read_capital_words,
    ),
    _Rule(
        "capital_words_adjective",
        re.compile(
            rf"\b{_QUANT}\s+{_NUM_N}\s+(?:all[\s-]caps|(?:fully\s+)?capitali[sz]ed|upper[\s-]?case"
            r"|capital)\s+words\b",
            _F,
        ),
        _read_capital_words,
    ),
    _Rule(
        "capital_words_frequency",
        re.compile(
            r"(?P<noun>\b(?:all[\s-]caps\s+words|(?:capitali[sz]ed|upper[\s-]?case)\s+words"
            r"|words?\s+(?:with|in|using|written\s+in)\s+(?:all\s+)?(?:capital\s+letters|caps"
            r"|capitals|upper[\s-]?case(?:\s+letters)?))(?:\s*\([^()\n]{0,60}\))?)",
            _F,
        ),
        _read_capital_words,
    ),
    _Rule(
        "capital_words_some",
        re.compile(
            r"\buse\s+(?:some\s+|a\s+few\s+)?words\s+(?:in|with)\s+(?:all\s+)?(?:capital\s+letters"
            r"|caps|capitals)\b",
            _F,
        ),
        _read_capital_words,
    ),
    _Rule(
        "highlights_verb",
        re.compile(
            r"\b(?:highlight|italici[sz]e|bold|emphasi[sz]e)(?:s|ed|ing)?(?:/\w+)?\s+"
            rf"(?:(?:in|with|using)\s+markdown\s+)?(?:{_QUANT}\s+)?{_NUM_N}\s+(?:of\s+(?:your|the"
            r"|my)\s+)?(?:[\w-]+\s+){0,2}?(?:sections?|parts?|phrases?|passages?|portions?"
            r"|segments?|spans?|words?|names?|sentences?|points?|lines?|items?)\b",
            _F,
        ),
        _read_highlights,
    ),
    _Rule(
        "highlights_noun",
        re.compile(
            rf"(?:\b{_QUANT}\s+)?(?<![\w.-]){_NUM_N}\s+(?:italic(?:i[sz]ed)?|highlighted|bold(?:ed)?"
            r"|emphasi[sz]ed)\s+(?:text\s+)?(?:sections?|phrases?|parts?|passages?|spans?|words?"
            r"|segments?)\b",
            _F,
        ),
        _read_highlights,
    ),
    _Rule(
        "highlights_passive",
        re.compile(
            rf"\b{_QUANT}\s+{_NUM_N}\s+(?:[\w-]+\s+)?(?:sections?|parts?|phrases?)\s+(?:should|must"
            r"|need\s+to|has\s+to|have\s+to|to|will)\s+be\s+(?:highlighted|italici[sz]ed"
            r"|bold(?:ed)?|emphasi[sz]ed)\b",
            _F,
        ),
        _read_highlights,
    ),
    _Rule(
        "highlights_some",
        re.compile(
            r"\bhighlight\w*\s+(?:some|a\s+few|several)\s+(?:[\w-]+\s+){0,2}?(?:sections?|parts?"
            r"|phrases?|points?|words?|passages?|ideas?|concepts?|terms?|facts?|names?)\b",
            _F,
        ),
        _read_highlights,
    ),
    _Rule(
        "highlights_each_section",
        re.compile(
            r"\bhighlight\w*\s+(?:the\s+)?(?P<each>each|every)\s+(?:section|part)\s*"
            r"(?:name|title|heading)?s?\b",
            _F,
        ),
        _read_highlights,
    ),
    _Rule(
        "no_comma",
        re.compile(
            r"(?:\b(?:no|zero|without|never|avoid|avoiding|refrain\s+from|free\s+of|not)|n't)"
            r"(?:\s+(?:to|use|using|include|including|contain|containing|have|having|put|putting"
            r"|add|adding|type|typing|write|writing|any|a|single|the|of|with))*\s+commas?\b"
            r"|\bcommas?\s+(?:are|is)\s+(?:not\s+(?:allowed|permitted|to\s+be\s+used)|forbidden"
            r"|prohibited|banned|disallowed)\b|\bcomma[\s-]free\b",
            _F,
        ),
        _read_no_comma,
    ),
    _Rule(
        "count_as_bullets",
        re.compile(
            rf"\b{_QUANT}\s+{_NUM_N}\s+(?!(?:words?|sentences?|paragraphs?|sections?|lines?"
            r"|placeholders?|times?|bullets?|bullet\s+points?)\b)(?:[\w-]+\s+){1,8}?(?:using|in|as"
            r"|with)\s+(?:the\s+)?(?:markdown\s+)?(?P<unit>bullet[\s-]?points?|bullets)\b",
            _F,
        ),
        _read_quantified,
    ),
    _Rule(
        "count_divided",
        re.compile(
            rf"(?:\b{_QUANT}\s+)?(?<![\w.-]){_NUM_N}\s+(?:[\w-]+\s+)?(?P<unit>parts|sections"
            r"|stanzas|verses|scenes|blocks|chunks|segments|pieces)\b",
            _F,
        ),
        _read_divided,
    ),
    _Rule(
        "first_or_last_word",
        re.compile(
            r"\b(?:the\s+)?(?:very\s+)?(?P<which>first|last|final)\s+(?P<what>word|sentence|line)"
            r"\s+of\s+(?:your|the)\s+(?:entire\s+)?(?:answer|response|reply|output)\s+(?:should"
            r"|must|has\s+to|needs\s+to|will|shall)\s+be\b",
            _F,
        ),
        _read_first_word,
    ),
    _Rule(
        "end_reads",
        re.compile(
            r"\b(?:the\s+)?(?:very\s+)?end\s+of\s+(?:your|the)\s+(?:entire\s+|whole\s+)?"
            r"(?:answer|response|reply|output)\s+(?:should|must|has\s+to|needs\s+to|will|shall)\s+"
            r"(?:read|be)\b(?:\s+(?:exactly|precisely))?(?:\s+(?:like|as))?",
            _F,
        ),
        _read_end,
    ),
    _Rule(
        "starts_with",
        re.compile(
            r"\b(?:start|begin|open|commence)(?:s|ning|ing|ed)?"
            + _VERB_OBJ
            + r"(?:with|by\s+(?:saying|writing))\b",
            _F,
        ),
        _read_start,
    ),
    _Rule(
        "ends_with",
        re.compile(
            r"\b(?:end|finish|conclude|close|wrap\s+up)(?:s|ing|ed)?"
            + _VERB_OBJ
            + r"(?:with|by\s+(?:saying|writing))\b",
            _F,
        ),
        _read_end,
    ),
    _Rule(
        "constrained_options",
        re.compile(
            r"\b(?:(?:exactly\s+)?one\s+of\s+the\s+following|choose\s+(?:one\s+)?(?:from|among)\s+"
            r"the\s+following|(?:from|among)\s+the\s+following\s+(?:phrases|options|answers"
            r"|choices))(?:\s+(?:phrases|options|answers|responses|choices|sentences))?\s*:?",
            _F,
        ),
        _read_constrained,
    ),
    _Rule(
        "constrained_quoted",
        re.compile(r"\b(?:answer|respond|reply)(?:\s+(?:with|using))?\s*:?(?=\s+[\"“”'‘(])", _F),
        _read_constrained,
    ),
    _Rule(
        "forbidden_words",
        re.compile(
            r"\b(?:(?:do\s+not|don't|does\s+not|doesn't|never|must\s+not|mustn't|should\s+not"
            r"|shouldn't|cannot|can't|may\s+not|will\s+not|won't|(?:and|or|but|to)\s+not|not\s+to)"
            r"\s+(?:use|include|say|write|mention|contain|type|utter)"
            r"|without\s+(?:using|mentioning|saying|including|writing|the\s+use\s+of)"
            r"|refrain\s+from\s+(?:using|mentioning|saying)|avoid(?:\s+using|\s+mentioning)?"
            r"|exclude|omit)\b",
            _F,
        ),
        _read_forbidden,
    ),
    _Rule(
        "required_words",
        re.compile(
            r"\b(?:include|use|using|incorporate|contain|containing|feature|mention|mentioning"
            r"|with|has|have|having)\b",
            _F,
        ),
        _read_required,
    ),
    _Rule(
        "case_lower_negated",
        re.compile(
            r"(?:\b(?:no|without(?:\s+using)?(?:\s+any)?|(?:do\s+not|don't|never|avoid)\s+"
            r"(?:use\s+|using\s+)?(?:any\s+)?)|(?:\bnot|n't)\s+(?:contain|include|have|use)\s+"
            r"(?:any\s+)?)\s*(?:capital|upper[\s-]?case|capitali[sz]ed)\s+letters?\b"
            r"|\bno\s+capitals\b|\b(?:no|without(?:\s+any)?)\s+capitali[sz]ations?\b",
            _F,
        ),
        _case_reader("lower"),
    ),
    _Rule(
        "case_upper_negated",
        re.compile(
            r"(?:\b(?:no|without(?:\s+using)?(?:\s+any)?|(?:do\s+not|don't|never|avoid)\s+"
            r"(?:use\s+|using\s+)?(?:any\s+)?)|(?:\bnot|n't)\s+(?:contain|include|have|use)\s+"
            r"(?:any\s+)?)\s*lower[\s-]?case\s+letters?\b",
            _F,
        ),
        _case_reader("upper"),
    ),
    _Rule(
        "case_lower",
        re.compile(
            r"\b(?:every|each|all(?:\s+of\s+the)?)\s+(?:single\s+)?letters?\b[^.!?\n]{0,40}?"
            r"\blower[\s-]?case[ds]?\b|\blower[\s-]?case[ds]?\b(?:\s+(?:letters?|characters?))?",
            _F,
        ),
        _case_reader("lower"),
    ),
    _Rule(
        "case_upper",
        re.compile(
            r"\ball\s+caps\b|\ball\s+(?:capital|capitali[sz]ed)\s+letters\b"
            r"|\b(?:in|using|with)\s+(?:all\s+)?capital\s+letters\b|\bin\s+(?:all\s+)?capitals\b"
            r"|\bupper[\s-]?case\b(?:\s+letters)?|\bcapital\s+letters\s+only\b"
            r"|\b(?:only\s+use|use\s+only)\s+capital\s+letters\b"
            r"|\bcapitali[sz]e\s+(?:every|each|all(?:\s+of)?(?:\s+the)?)\s+letters?\b"
            r"|\b(?:every|each|all(?:\s+of\s+the)?)\s+(?:single\s+)?letters?\b[^.!?\n]{0,40}?"
            r"\b(?:be|is|are)\s+(?:capitali[sz]ed|upper[\s-]?case|in\s+(?:upper[\s-]?case|capitals))\b",
            _F,
        ),
        _case_reader("upper"),
    ),
    _Rule(
        "json_format",
        re.compile(
            r"\b(?:answer|respond|reply|output|return)\s+(?:(?:only|strictly|solely|exclusively)\s+)?"
            r"(?:(?:in|as|using|with)\s+)?(?:a\s+|an\s+)?(?:valid\s+|raw\s+|pure\s+|proper\s+)?json\b"
            r"|\b(?:give|provide|present|write|format|formatted|wrap|wrapped|structure|structured"
            r"|answer|respond|reply|output|return)\s+(?:(?:your|the|this|my|me|it|entire|whole"
            r"|full|final|complete|answer|response|output|reply|result|results|everything)\s+){0,4}"
            r"(?:in|as|using|into|with)\s+(?:a\s+|an\s+)?(?:valid\s+|raw\s+|pure\s+|proper\s+)?json\b"
            r"|\b(?:answer|response|output|reply)\s+(?:should|must|has\s+to|needs\s+to|will|shall)"
            r"\s+(?:only\s+)?be\s+(?:[\w-]+\s+){0,2}?(?:(?:in|as)\s+)?(?:a\s+|an\s+)?(?:valid\s+)?json\b"
            r"|\b(?:in|as)\s+(?:a\s+|an\s+)?(?:valid\s+)?json\s+(?:format|object|array)\b"
            r"|\bjson\s+only\b|\bonly\s+(?:valid\s+)?json\b"
            r"|\b(?:entire|whole|full)\s+(?:output|response|answer|reply)\s+(?:[\w-]+\s+){0,3}?"
            r"(?:in|as)\s+(?:a\s+)?(?:valid\s+)?json\b",
            _F,
        ),
        _read_json,
    ),
    _Rule(
        "markdown_format",
        re.compile(
            r"\b(?:use|using|with|include|add|apply)\s+(?:some\s+|proper\s+|the\s+)?markdown"
            r"(?:\s+(?P<el>headings?|headers?|titles?|bold(?:\s+text)?|italics?|emphasis|lists?"
            r"|bullet[\s-]*points?|bullets?|tables?|formatting|syntax|format))?\b"
            r"|\b(?:format|formatted|write|written|answer|respond|reply|output|return|provide|give"
            r"|present)\s+(?:[\w-]+\s+){0,3}?(?:in|using|with|as)\s+markdown\b"
            r"|\b(?:answer|response|reply|output)\s+(?:should|must|has\s+to|needs\s+to|will)\s+"
            r"(?:be\s+)?(?:[\w-]+\s+){0,2}?(?:in|using|with|as)\s+markdown\b",
            _F,
        ),
        _read_markdown,
    ),
    _Rule(
        "language",
        re.compile(
            r"\b(?:answer|respond|reply|write|response|output|tell\s+me)\s+(?:[\w-]+\s+){0,3}?"
            r"(?:in|using)\s+"
            r"(?:the\s+)?" + _LANG + _LANG_END,
            _F,
        ),
        _read_language,
    ),
    _Rule(
        "language_trailing",
        re.compile(
            r"(?:,\s*|\band\s+)(?:only\s+|entirely\s+)?in\s+(?:the\s+)?" + _LANG + _LANG_END, _F
        ),
        _read_language,
    ),
    _Rule(
        "language_only",
        re.compile(
            r"\b(?:(?:entirely|completely|solely|exclusively|wholly|fully|only)\s+(?:in\s+)?"
            r"|in\s+(?:entirely|only|completely|solely)\s+|(?:using|use)\s+(?:only\s+)?)"
            r"(?:the\s+)?" + _LANG + _LANG_END,
            _F,
        ),
        _read_language_only,
    ),
    _Rule(
        "language_only_after",
        re.compile(r"\b(?:in\s+)?(?:the\s+)?" + _LANG + r"(?:\s+language)?\s+only\b", _F),
        _read_language_only,
    ),
    _Rule(
        "language_no_other",
        re.compile(
            r"\bin\s+(?:the\s+)?" + _LANG + r"(?:\s+language)?(?=[^.!?\n]*\bno\s+other\s+language)",
            _F,
        ),
        _read_language_only,
    ),
    # Counts, most specific first.
    _Rule(
        "count_number_of_range",
        re.compile(
            rf"\b(?:total\s+)?number\s+of\s+{_UNIT}\s+(?:[\w-]+\s+){{0,6}}?(?:in\s+the\s+range\s+of"
            rf"|between|from)\s+{_NUM_N}\s+(?:to|and|-|–)\s+{_NUM_M}\b",
            _F,
        ),
        _read_range,
    ),
    _Rule(
        "count_number_of",
        re.compile(
            rf"\b(?:total\s+)?number\s+of\s+{_UNIT}\s+(?:[\w-]+\s+){{0,6}}?{_QUANT}\s+{_NUM_N}\b",
            _F,
        ),
        _read_quantified,
    ),
    _Rule(
        "count_number_of_postfix",
        re.compile(
            rf"\b(?:total\s+)?number\s+of\s+{_UNIT}\s+(?:[\w-]+\s+){{0,6}}?{_NUM_N}\s+(?P<post>or\s+"
            r"(?:more|less|fewer|greater|above|below|over|under))\b",
            _F,
        ),
        _read_postfix,
    ),
    _Rule(
        "count_plus",
        re.compile(rf"(?<![\w.-]){_NUM_N}\s*\+[\s-]*{_ADJ}{_UNIT}", _F),
        _read_plus,
    ),
    _Rule(
        "count_or_more_before",
        re.compile(
            rf"(?<![\w.-]){_NUM_N}\s+(?P<post>or\s+(?:more|greater|above|over|less|fewer|under"
            rf"|below))\s+{_ADJ}{_UNIT}",
            _F,
        ),
        _read_postfix,
    ),
    _Rule(
        "count_between",
        re.compile(rf"\bbetween\s+{_NUM_N}\s+and\s+{_NUM_M}\s+{_ADJ}{_UNIT}", _F),
        _read_range,
    ),
    _Rule(
        "count_from_to",
        re.compile(rf"\bfrom\s+{_NUM_N}\s+to\s+{_NUM_M}\s+{_ADJ}{_UNIT}", _F),
        _read_range,
    ),
    _Rule(
        "count_dash_range",
        re.compile(
            rf"(?<![\w.-]){_NUM_N}\s*(?:-|–|—|\bto\b|\bor\b)\s*{_NUM_M}[\s-]+{_ADJ}{_UNIT}", _F
        ),
        _read_dash_range,
    ),
    _Rule(
        "count_limit_to",
        re.compile(
            rf"\blimit(?:ed)?\s+(?:[\w-]+\s+){{0,3}}?to\s+(?:{_QUANT}\s+)?{_NUM_N}\s+{_ADJ}{_UNIT}",
            _F,
        ),
        _read_limit,
    ),
    _Rule(
        "count_quantified",
        re.compile(rf"\b{_QUANT}\s+(?:of\s+|a\s+total\s+of\s+)?{_NUM_N}\s*-?\s*{_ADJ}{_UNIT}", _F),
        _read_quantified,
    ),
    _Rule(
        "count_postfix",
        re.compile(
            rf"(?<![\w.-]){_NUM_N}[\s-]+{_ADJ}{_UNIT}\s+(?P<post>or\s+(?:fewer|less|under|below)"
            r"|or\s+(?:more|longer|above|over)|max(?:imum)?|min(?:imum)?|at\s+most|at\s+least"
            r"|tops)\b",
            _F,
        ),
        _read_postfix,
    ),
    _Rule(
        "count_noun_limit",
        re.compile(
            rf"(?<![\w.-]){_NUM_N}[\s-]+(?P<unit>word|sentence|paragraph)[\s-]+"
            r"(?P<post>limit|maximum|max|cap|minimum|min)\b",
            _F,
        ),
        _read_postfix,
    ),
    _Rule(
        "count_noun_first",
        re.compile(
            r"\b(?P<unit>word|sentence|paragraph)[\s-]+(?P<post>count|limit|maximum|minimum)\s+"
            r"(?:of\s+|is\s+|:\s*|(?:should|must)\s+(?:be\s+)?)?"
            rf"(?:{_QUANT}\s+)?{_NUM_N}\b",
            _F,
        ),
        _read_count_noun,
    ),
    _Rule(
        "count_list_of",
        re.compile(
            r"\b(?:bulleted\s+|numbered\s+|bullet[\s-]point\s+|markdown\s+)?list\s+(?:of|with"
            rf"|containing)\s+(?:{_QUANT}\s+)?{_NUM_N}\s+{_ADJ}(?:items?|points?|entries|entry"
            r"|elements?|bullets?|bullet\s+points?)\b",
            _F,
        ),
        _read_list,
    ),
    _Rule(
        "count_n_item_list",
        re.compile(
            rf"(?<![\w.-]){_NUM_N}[\s-]+(?:item|point|bullet|entry)[\s-]+(?:bulleted\s+"
            r"|numbered\s+)?list\b",
            _F,
        ),
        _read_list,
    ),
    _Rule(
        "count_framed",
        re.compile(
            r"\b(?P<frame>in|into|use|using|write|give|provide|with"
            r"|(?:split|divide|divided|organi[sz]e|organi[sz]ed|break|broken)\s+(?:[\w-]+\s+){0,3}?into"
            r"|(?:should|must|shall|will|needs?\s+to|has\s+to|have\s+to)\s+(?:only\s+)?(?:have"
            r"|contain|consist\s+of|include|comprise|be\s+made\s+(?:up\s+)?of|be\s+in|be)"
            r"|there\s+(?:should|must|will)\s+be|(?:answer|respond|reply)\s+with"
            r"|(?:in\s+)?the\s+(?:form|format)\s+of|you\s+have)\s+"
            rf"(?:only\s+|just\s+)?{_NUM_N}\s+{_ADJ}{_UNIT_NO_WORDS}",
            _F,
        ),
        _read_framed,
    ),
    _Rule(
        "count_adjective",
        re.compile(
            rf"(?<![\w.-]){_NUM_N}[\s-]+{_UNIT_SINGULAR}(?=[\s-]+"
            r"(?!(?:limit|count|maximum|max|minimum|min|or|and|to|in|of|per|each|long|points?"
            r"|bullets?)\b)[a-z])",
            _F,
        ),
        _read_approximate,
    ),
    _Rule(
        "count_in_words",
        re.compile(rf"\bin\s+(?:just\s+|only\s+)?{_NUM_N}\s+{_ADJ}(?P<unit>words?)\b", _F),
        _read_approximate,
    ),
    # Counts of units no rule checks: reported, never guessed.
    _Rule(
        "count_unsupported",
        re.compile(
            rf"\b(?:{_QUANT}|between|exactly)\s+(?:of\s+)?{_NUM_N}\s+(?:[\w-]+\s+)?"
            r"(?:characters?|chars|letters?|lines?|syllables?|stanzas?|verses?|tokens?|pages?"
            r"|emojis?|hashtags?|commas?|exclamation\s+marks?|times)\b",
            _F,
        ),
        _read_unsupported,
    ),
]

# --- unparsed phrases and conflicts -----------------------------------------------------------

_CLAUSE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n\s*|,\s+|\s+(?:and|but|then)\s+", _F)
_CUE = re.compile(
    r"\b(?:at\s+least|at\s+most|exactly|no\s+more\s+than|no\s+less\s+than|fewer\s+than"
    r"|less\s+than|more\s+than|must|do\s+not|don't|without|only|limit|never|avoid|refrain)\b",
    _F,
)
_FORM_NOUN = re.compile(
    r"\b(?:words?|sentences?|paragraphs?|characters?|chars|lines?|letters?|format(?:ting|ted)?"
    r"|style|tone|length|long|short|commas?|punctuation|capitali[sz]\w*|capitals?|uppercase"
    r"|lowercase|syllables?|bullets?|sections?|stanzas?|verses?|markdown|json|quotation"
    r"|quotes|placeholders?|emojis?|exclamation)\b",
    _F,
)
# ...and that it is about the answer: it names the answer, is an order about wording, or its
# subject is a property of the text ("the tone must be formal").
_ABOUT_ANSWER = re.compile(r"\b(?:your|answer|response|reply|output)\b", _F)
_IMPERATIVE_START = re.compile(
    r"^\s*(?:please\s+)?(?:use|keep|avoid|do\s+not|don't|never|limit|refrain|only|each|every)\b"
    r"|^\s*(?:the\s+|its\s+)?(?:tone|style|length|format(?:ting)?|register|wording)\b",
    _F,
)


def _looks_like_form_constraint(clause: str) -> bool:
    return bool(
        _CUE.search(clause)
        and _FORM_NOUN.search(clause)
        and (_ABOUT_ANSWER.search(clause) or _IMPERATIVE_START.match(clause))
    )


# A sentence about the input, not an order about the answer: "The string contains only
# lowercase letters", "Assume the list has at least one item". A modal verb makes it an order
# again: "The story should begin with 'Once'".
_DESCRIBES_INPUT = re.compile(
    r"\s*(?:(?:you\s+(?:can|may|should|must)\s+)?(?:assume|suppose))\b"
    r"|\s*(?:the|this|that|these|those|each|every|its)\s+(?:given\s+|following\s+|input\s+"
    r"|original\s+)?(?:text|document|article|passage|string|input|file|paragraph|list|array|email"
    r"|letter|story|essay|book|message|sentence|data|parameter|word|poem|song|report|speech"
    r"|chapter|table|query|user|customer|author|person|name)s?\b"
    r"(?![^.!?\n]*\b(?:should|must|needs?\s+to|has\s+to|have\s+to|shall)\b)",
    _F,
)


def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(a < end and start < b for a, b in spans)


def _mask(text: str) -> str:
    """Blank out code blocks and long quotations: text the answer works on, not instructions."""

    def blank(m: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", m.group())

    text = re.sub(r"```.*?```", blank, text, flags=re.S)
    return re.sub(r"\"[^\"]{200,}\"|“[^”]{200,}”", blank, text)


def _count_conflicts(cs: list[Constraint]) -> list[str]:
    found = []
    kinds = (*_COUNT_UNITS, "keyword_frequency", "letter_frequency")
    counts = [c for c in cs if c.kind in kinds]
    for i, a in enumerate(counts):
        for b in counts[i + 1 :]:
            if a.kind != b.kind or [w.lower() for w in a.words] != [w.lower() for w in b.words]:
                continue
            if (a.low is not None and b.high is not None and a.low > b.high) or (
                b.low is not None and a.high is not None and b.low > a.high
            ):
                found.append(
                    f"{a.describe()} ('{a.source}') contradicts {b.describe()} ('{b.source}')"
                )
    return found


def _conflicts(cs: list[Constraint]) -> list[str]:
    found = _count_conflicts(cs)
    cases = {c.case: c for c in cs if c.kind == "case"}
    if "lower" in cases and "upper" in cases:
        found.append(
            f"all lowercase ('{cases['lower'].source}') contradicts all uppercase "
            f"('{cases['upper'].source}')"
        )
    required = {w.lower(): c for c in cs if c.kind == "required_words" for w in c.words}
    required |= {
        c.words[0].lower(): c for c in cs if c.kind == "keyword_frequency" and (c.low or 0) > 0
    }
    for c in cs:
        if c.kind == "forbidden_words":
            for w in c.words:
                if w.lower() in required:
                    found.append(
                        f"'{w}' is both required ('{required[w.lower()].source}') and "
                        f"forbidden ('{c.source}')"
                    )
    # a start/end phrase and a letter case never conflict: phrases match case-insensitively
    if any(c.kind == "json_format" for c in cs):
        for c in cs:
            if c.kind in ("bullet_count", "section_count"):
                found.append(f"a JSON answer cannot also have {c.describe()} ('{c.source}')")
    # the request must be repeated as it is, so it cannot break the rules the answer keeps
    for r in (c for c in cs if c.kind == "repeat_request"):
        for c in cs:
            broken = (c.kind == "no_comma" and "," in r.phrase) or (
                c.kind == "case"
                and r.phrase != (r.phrase.lower() if c.case == "lower" else r.phrase.upper())
            )
            if broken:
                found.append(
                    f"the request to repeat word for word breaks '{c.describe()}' ('{c.source}')"
                )
    return found


def _dedupe(cs: list[Constraint]) -> list[Constraint]:
    seen, out = set(), []
    for c in cs:
        key = (
            c.kind,
            c.low,
            c.high,
            tuple(w.lower() for w in c.words),
            c.phrase.lower(),
            c.case,
            c.language,
            (c.marker or "").lower(),
            c.element,
            c.index,
        )
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _attach_markers(cs: list[Constraint]) -> list[Constraint]:
    """One constraint, not two: "3 sections" says how many, "mark each section with SECTION X"
    says how to count them. "Write 2 paragraphs. Label each paragraph with PARAGRAPH X" counts
    the paragraphs by their labels."""
    markers = [c for c in cs if c.kind == "section_count" and c.marker]
    if not markers:
        return cs
    marker, part = markers[0], markers[0].element or "section"
    for c in markers:
        c.element = None
    counts = [
        c
        for c in cs
        if not c.marker
        and (c.kind == "section_count" or (part == "paragraph" and c.kind == "paragraph_count"))
    ]
    if not counts:
        return cs
    for c in counts:
        c.kind, c.marker = "section_count", marker.marker
        c.source = f"{c.source} / {marker.source}"
    return [c for c in cs if c is not marker]


def _attach_highlighted_sections(cs: list[Constraint]) -> list[Constraint]:
    """Joins "5 or more sections" and "highlight each section name as *name*": the sections
    are counted by their highlighted names."""
    each = [c for c in cs if c.kind == "highlight_count" and c.element == "each"]
    if not each:
        return cs
    counts = [c for c in cs if c.kind == "section_count" and not c.marker]
    for c in each:
        c.element = None
        c.low = max(counts[0].low or 1, 1) if counts else 1
        if counts:
            c.source = f"{counts[0].source} / {c.source}"
    return [c for c in cs if c not in counts[:1]] if counts else cs


_TEMPLATE_DIVIDER = re.compile(r"^[ \t]*\*{3}[ \t]*$", re.M)


def _template_paragraphs(text: str, cs: list[Constraint]) -> list[Constraint]:
    """A format to follow, given with ``***`` lines between its parts ("Use the exact format
    below: ... *** ... *** ..."), asks for that many paragraphs, divided the same way."""
    dividers = list(_TEMPLATE_DIVIDER.finditer(text))
    if not dividers or any(c.kind == "paragraph_count" for c in cs):
        return cs
    before = text[max(0, dividers[0].start() - 400) : dividers[0].start()]
    if not re.search(r"\b(?:format|example|template|like|below|follows?)\b", before, _F):
        return cs
    n = len(dividers) + 1
    source = f"the format given, with {n} parts between *** dividers"
    return [*cs, Constraint(kind="paragraph_count", source=source, low=n, high=n, marker="***")]


def _divided_paragraphs(text: str, cs: list[Constraint]) -> list[Constraint]:
    """Paragraphs the instruction separates with ``***`` ("Paragraphs are separated with the
    markdown divider: ***") are counted by those dividers only: blank lines do not part them."""
    if not (_DIVIDER_MENTION.search(text) and re.search(r"separat|split|divid", text, _F)):
        return cs
    for c in cs:
        if c.kind == "paragraph_count":
            c.marker = "***"
    return cs


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with what rules have read blanked out (lines kept): read words no longer count
    as context for other rules ("a title in <<>> and less than 5 sentences" is not about the
    title's sentences)."""
    chars = list(text)
    for a, b in spans:
        for i in range(a, b):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


def extract_constraints(instruction: str) -> Constraints:
    """Read the form constraints of an instruction once, so that every step result and the
    final answer are checked against the same list, and the composer prompt can state it."""
    text = _mask(instruction)
    read: list[tuple[int, Constraint]] = []
    consumed: list[tuple[int, int]] = []
    unparsed: list[str] = []
    for rule in _RULES:
        view = _blank(text, consumed)
        for m in rule.pattern.finditer(view):
            if _overlaps(consumed, m.start(), m.end()):
                continue
            if _DESCRIBES_INPUT.match(view[slice(*_sentence_span(view, m.start()))]):
                continue
            hit = rule.read(m, view)
            if hit is None:
                continue
            end = max(m.end(), hit.end)
            if _overlaps(consumed, m.start(), end):
                continue
            consumed.append((m.start(), end))
            if hit.rejected:
                start, stop = _sentence_span(view, m.start())
                unparsed.append(instruction[start:stop].strip())
            for c in hit.constraints:
                c.source = instruction[m.start() : end].strip()
                if hit.quoted:
                    c.phrase = instruction[slice(*hit.quoted)].strip()
                read.append((m.start(), c))
    for start, end in _spans(text, _CLAUSE_BREAK):
        clause = text[start:end]
        if not _overlaps(consumed, start, end) and _looks_like_form_constraint(clause):
            unparsed.append(instruction[start:end].strip().rstrip(".;"))
    constraints = _dedupe([c for _, c in sorted(read, key=lambda x: x[0])])
    constraints = _attach_highlighted_sections(_attach_markers(constraints))
    constraints = _divided_paragraphs(text, _template_paragraphs(text, constraints))
    return Constraints(
        constraints=constraints,
        unparsed=list(dict.fromkeys(unparsed)),
        conflicts=_conflicts(constraints),
    )


def _spans(text: str, separator: re.Pattern[str]) -> list[tuple[int, int]]:
    spans, last = [], 0
    for m in separator.finditer(text):
        spans.append((last, m.start()))
        last = m.end()
    spans.append((last, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def check_answer(instruction: str, answer: str) -> list[Verdict]:
    """For callers that check one answer against one instruction and keep nothing else."""
    return extract_constraints(instruction).check(answer)
