"""An answer that hands the question back instead of answering it.

A small model asked several questions at once sometimes answers the first and copies the
rest back: examples/research_assistant.py on the 0.5B answered "The Team plans to cost per
seat $18 per month, how quickly does support reply to Team customers, and what is planned
for next quarter? Cite the file ..." and every other check passed. What is read here: a
question the instruction asks (a sentence that starts like a question, not text quoted for
rewriting) whose last words the answer repeats up to the same question mark, where the
copies are a large part of the answer and nothing the instruction did not say comes after
the last one. A question restated above its answer ("How many are left? Answer: 9", a
heading) is not one; neither is an instruction that asks for its request to be repeated.
"""

from __future__ import annotations

import re

from stepgraph.verifier.verdict import Verdict

CHECK = "no_repeated_question"
MIN_WORDS = 6  # a copied question shorter than this is too common to mean anything
SHARE = 1 / 3  # of the answer's words, what the copied questions must make up

_SENTENCE = re.compile(r"[^.!?\n]*\?")
_WORD = re.compile(r"[\w'’$%]+")
_ASKING = {
    "what", "how", "which", "who", "whom", "whose", "when", "where", "why", "is", "are",
    "was", "were", "do", "does", "did", "can", "could", "should", "would", "will", "has",
    "have", "had",
}  # fmt: skip


def _words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def asked_questions(instruction: str) -> list[list[str]]:
    """The words of each question the instruction itself asks, up to its question mark."""
    asked = []
    for match in _SENTENCE.finditer(instruction):
        sentence = match.group(0)
        words = _words(sentence)
        if words and words[0] in _ASKING and not re.search(r"[:\"“”]", sentence):
            asked.append(words)
    return asked


def check_echo(instruction: str, answer: str, *, repeat_asked: bool = False) -> Verdict | None:
    """A failed verdict when the answer is largely the instruction's questions copied back
    (the copy quoted as evidence); None otherwise, or when the instruction asks for its
    request to be repeated (`repeat_asked`)."""
    if repeat_asked:
        return None
    asked = asked_questions(instruction)
    if not asked:
        return None
    copied: list[str] = []
    count, end = 0, 0
    for match in _SENTENCE.finditer(answer):
        sentence = match.group(0)
        words = _words(sentence)
        longest = max(_common_tail(words, question) for question in asked)
        if longest >= MIN_WORDS:
            first = list(_WORD.finditer(sentence))[-longest]
            copied.append(" ".join(sentence[first.start() :].split()))
            count, end = count + longest, match.end()
    total = len(_words(answer))
    if not copied or count < SHARE * total:
        return None
    given = set(_words(instruction))
    if any(word not in given for word in _words(answer[end:])):
        return None  # something new follows the copy: "How many are left? Answer: 9"
    quoted = "; ".join(f'"{c}"' for c in copied)
    return Verdict(
        check=CHECK,
        passed=False,
        evidence=f"repeats the question {quoted} word for word instead of answering it",
    )


def _common_tail(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n
