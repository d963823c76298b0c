"""Numeric claims recomputed: arithmetic a model wrote out, and computed results it reports.

Small models copy a calculator's result and then write `12 * 4 = 46` next to it. Two
deterministic checks catch that: every written-out equation `EXPR = VALUE` (and
`P% of X is VALUE`) is recomputed with the calculator's evaluator, and a final answer must
state the results that the computing steps (calculator, python) ended on.

A stated value matches when it equals the true value rounded to the decimals it was
written with: `10 / 3 = 3.33` and `10 / 3 = 3` pass, `10 / 3 = 3.4` does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from stepgraph.executors.calculator import CalculatorError, evaluate, format_number
from stepgraph.executors.written_math import (
    EXPR,
    NUM,
    PCT_OF,
    clean_expression,
    percent_of_expression,
    plain_math,
)
from stepgraph.verifier.verdict import Verdict

# `=`, or the words a model writes for it ("23 * 47 equals 1091"); not a bare "is", which
# follows year ranges and scores ("the 2023-2024 season is 10 games")
_EQUATION = re.compile(
    rf"{EXPR}\s*(?:=|\bequals\b|\bis equal to\b|\bcomes to\b)\s*(?P<value>-?{NUM})(?![\w.]\d)",
    re.IGNORECASE,
)
_PERCENT_OF = re.compile(rf"{PCT_OF}(?:=|is|equals|gives)\s*(?P<value>-?{NUM})", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")


def _decimals(text: str) -> int:
    text = text.rstrip("%")
    return len(text.split(".", 1)[1]) if "." in text else 0


def _value(token: str) -> float:
    """A number as NUM or _NUMBER matched it: `$1,020.50` is 1020.5, `50%` is 0.5."""
    value = float(token.replace("$", "").replace(",", "").rstrip("%"))
    return value / 100 if token.endswith("%") else value


def stated_matches(stated: str, true: float) -> bool:
    """Whether `stated` is `true` as written with its own number of decimals."""
    try:
        value = _value(stated.strip())
    except ValueError:
        return False
    places = _decimals(stated)
    return abs(value - true) <= 0.5 * 10.0**-places + 1e-9 * max(1.0, abs(true))


def equations(text: str) -> list[tuple[str, str, float]]:
    """(as written, stated value, true value) for each arithmetic claim in `text` that the
    calculator can evaluate; what it cannot read is left alone, never guessed."""
    found = []
    text = plain_math(text)
    for match in _EQUATION.finditer(text):
        expr = match.group("expr")
        try:
            true = float(evaluate(clean_expression(expr)))
        except CalculatorError:
            continue
        found.append((match.group(0).strip(), match.group("value"), true))
    for match in _PERCENT_OF.finditer(text):
        try:
            true = float(evaluate(percent_of_expression(match)))
        except CalculatorError:
            continue
        found.append((match.group(0).strip(), match.group("value"), true))
    return found


def check_arithmetic(text: str) -> Verdict | None:
    """One verdict over every equation in `text`; None when it states none."""
    claims = equations(text)
    if not claims:
        return None
    wrong = [
        f"{written} is wrong: it is {format_number(true)}"
        for written, stated, true in claims
        if not stated_matches(stated, true)
    ]
    if wrong:
        return Verdict(check="arithmetic", passed=False, evidence="; ".join(wrong))
    return Verdict(
        check="arithmetic", passed=True, evidence=f"{len(claims)} equation(s) recomputed"
    )


def numbers(text: str) -> list[str]:
    return [n for n in _NUMBER.findall(text) if any(c.isdigit() for c in n)]


def single_number(text: str) -> float | None:
    """The value of an output that is one number (a calculator's result, a program that
    printed one number); None for anything else."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    table = [line for line in lines if line.startswith("|")]
    if table:  # a query's Markdown table: one number only when it is one cell of one row
        body = table[2:]  # after the header and the |---| rule
        cells = body[0].strip("|").split("|") if len(body) == 1 else []
        lines = [cells[0].strip()] if len(cells) == 1 else []
        if not lines:
            return None
    found = numbers(lines[-1])
    if len(found) != 1 or len(lines[-1]) > len(found[0]) + 24:
        return None
    return _value(found[0])


def check_supported(answer: str, sources: Iterable[str]) -> Verdict | None:
    """Where steps brought in facts (a tool, documents, a database), each number the answer
    states must come from them, the task, or one sum, difference, product or quotient of
    two of theirs: a small model fills in figures it never saw (an MCP tool's "high 19 C"
    came back as "20 C"). Integers below 10 are left out: they count things and list
    items far more often than they report a fact. None when the answer states none."""
    given: list[float] = []
    for text in sources:
        for token in numbers(plain_math(text)):
            value = _safe_value(token)
            if value is not None and not any(abs(value - g) < 1e-9 for g in given):
                given.append(value)
    derived = list(given)
    for i, a in enumerate(given[:60]):
        for b in given[i + 1 : 60]:
            derived += [a + b, abs(a - b), a * b] + ([a / b] if b else []) + ([b / a] if a else [])
    stated = []
    for token in numbers(plain_math(answer)):
        value = _safe_value(token)
        if value is None or (value == int(value) and abs(value) < 10):
            continue
        stated.append((token, value))
    if not stated:
        return None
    unsupported = [t for t, v in stated if not any(stated_matches(t, d) for d in derived)]
    if unsupported:
        return Verdict(
            check="supported_numbers",
            passed=False,
            evidence=f"states {', '.join(dict.fromkeys(unsupported))}, which neither the "
            "steps' results nor the task give",
        )
    return Verdict(
        check="supported_numbers",
        passed=True,
        evidence=f"{len(stated)} number(s) found in the steps' results or the task",
    )


def _safe_value(token: str) -> float | None:
    try:
        return _value(token)
    except ValueError:
        return None


def check_results_stated(answer: str, results: Iterable[tuple[str, float]]) -> Verdict | None:
    """Every (label, computed value) must appear in the answer; None when there are none. The
    label names the step and what it computed, so a revision knows what the number is."""
    results = list(results)
    if not results:
        return None
    stated = numbers(answer)
    missing = [
        f"{format_number(value)} (the result of {label})"
        for label, value in results
        if not any(stated_matches(n, value) for n in stated)
    ]
    if missing:
        return Verdict(
            check="computed_results_stated",
            passed=False,
            evidence="the answer does not state " + "; ".join(missing),
        )
    return Verdict(
        check="computed_results_stated",
        passed=True,
        evidence=f"{len(results)} computed result(s) stated",
    )


# --- Claims in prose: comparisons, totals, restated results ----------------------------------
#
# These read sentences, not equations, so each one matches a few fixed phrasings and gives
# None for anything else: a missed claim costs nothing, a false alarm costs a revision.

# A number as prose writes it, matched whole: `-$1,020.50`, `474.5`, `20%`.
_PNUM = r"(?<![\w.,$])-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?(?![.,]?\d)(?![A-Za-z])"
_WORD = r"[A-Za-z][A-Za-z'’-]*"
_COMPARATIVES = "greater|more|larger|bigger|higher|less|fewer|smaller|lower"
_VERBS = "exceed|exceeds|exceeded|beat|beats|surpass|surpasses|surpassed|top|tops|topped|outnumber|outnumbers|outnumbered|outweigh|outweighs|outweighed|outsold|outsell|outsells|trail|trails|trailed"
_SUPERLATIVES = "larger|bigger|higher|greater|smaller|lower|lesser|largest|biggest|highest|greatest|smallest|lowest|maximum|minimum|max|min"
# Words that end the unit words after a number (`474.5 dollars from muffins` is one operand).
_UNIT_STOP = (
    rf"(?:is|are|was|were|be|been|being|am|isn|aren|wasn|weren|remains?|remained|stays?|"
    rf"stayed|and|or|but|nor|than|not|never|no|which|that|who|so|because|since|if|then|thus|"
    rf"therefore|hence|while|whereas|{_COMPARATIVES}|{_VERBS}|does|did|do|doesn|didn|don|"
    rf"times|twice|half|as|at|to|by|equal|equals|with|vs|versus)"
)
_UNITS = rf"(?:\s+(?!{_UNIT_STOP}\b){_WORD}){{0,4}}"
_RUNITS = rf"(?:\s+(?!{_UNIT_STOP}\b|of\b){_WORD}){{0,3}}"
_NOTE = r"(?:\s*\([^()\d]{1,40}\))?"  # `474.5 dollars (muffins)`
# A compared operand: a number with its unit words, or a name's number in brackets.
_LEFT = rf"(?:(?P<a>{_PNUM})(?P<au>{_UNITS}){_NOTE}|\(\s*(?P<ap>{_PNUM})\s*\))"
_RIGHT = (
    rf"(?:the\s+|that\s+of\s+)?(?:(?P<b>{_PNUM})(?P<bu>{_RUNITS})"
    rf"|(?:{_WORD}\s+){{0,3}}\(\s*(?P<bp>{_PNUM})\s*\))"
)
_COPULA = r"(?:,?\s+(?:which|that))?\s+(?:is|are|was|were|remains|remained|stays|stayed)"
_ADVERBS = (
    r"(?:\s+(?:much|far|slightly|still|even|significantly|substantially|considerably|clearly|"
    r"indeed|definitely|certainly|actually|also|obviously|way|somewhat|strictly|just|a\s+lot|"
    r"a\s+bit|a\s+little|exactly)){0,2}"
)
_RELATION = (
    rf"(?:(?P<cmp>{_COMPARATIVES})\s+than(?P<oreq>\s+or\s+equal\s+to)?"
    r"|at\s+least\s+as\s+(?P<atleast>large|big|high|great|much|many|small|low|little|few)\s+as"
    rf"|no\s+(?P<nocmp>{_COMPARATIVES})\s+than"
    r"|(?P<eq>equal\s+to|the\s+same\s+as))"
)
_COMPARISON = re.compile(
    rf"{_LEFT}{_COPULA}(?P<neg>n['’]t|\s+not|\s+never)?{_ADVERBS}\s+{_RELATION}\s+{_RIGHT}",
    re.IGNORECASE,
)
_VERB_COMPARISON = re.compile(
    rf"{_LEFT}(?P<neg>\s+(?:does|did|do)(?:n['’]t|\s+not))?{_ADVERBS}\s+(?P<verb>{_VERBS})"
    rf"\s+{_RIGHT}",
    re.IGNORECASE,
)
_SYMBOL_COMPARISON = re.compile(
    rf"{_LEFT}\s*(?<![-=<>])(?P<sym>>=|<=|≥|≤|≠|!=|>|<)(?![=<>])\s*{_RIGHT}", re.IGNORECASE
)
# `Cookies brought in more ($546) than muffins ($474.50)`
_BRACKETED_COMPARISON = re.compile(
    rf"\b(?P<cmp>{_COMPARATIVES})(?:\s+{_WORD}){{0,2}}\s*\(\s*(?P<ap>{_PNUM})\s*\)\s+than\s+"
    rf"(?:{_WORD}\s+){{0,3}}\(\s*(?P<bp>{_PNUM})\s*\)",
    re.IGNORECASE,
)
_OPERAND_LIST = (
    rf"(?P<list>{_PNUM}{_RUNITS}(?:\s*,\s*{_PNUM}{_RUNITS})*,?\s+(?:and|or)\s+{_PNUM}{_RUNITS})"
)
_SUP_NOUN = r"(?:\s+(?:one|number|value|amount|figure|total|sum|of\s+the\s+two))?"
_PICKS = [
    # the larger of 474.5 and 546 is 546
    re.compile(
        rf"\bthe\s+(?P<sup>{_SUPERLATIVES}){_SUP_NOUN}\s+of\s+(?:the\s+(?:two|three)\s+)?"
        rf"{_OPERAND_LIST},?\s+(?:is|was|would\s+be|:)\s+(?:the\s+)?(?P<z>{_PNUM})",
        re.IGNORECASE,
    ),
    # 546 is the larger of 474.5 and 546
    re.compile(
        rf"(?P<z>{_PNUM}){_RUNITS}\s+(?:is|was)\s+the\s+(?P<sup>{_SUPERLATIVES}){_SUP_NOUN}\s+"
        rf"of\s+(?:the\s+(?:two|three)\s*,?\s+)?{_OPERAND_LIST}",
        re.IGNORECASE,
    ),
    # between 474.5 and 546, the larger is 546 / 546 is (the) larger
    re.compile(
        rf"\b(?:between|of|comparing|compare)\s+{_OPERAND_LIST},?\s+(?:the\s+(?P<sup>"
        rf"{_SUPERLATIVES}){_SUP_NOUN}\s+(?:is|was)\s+(?P<z>{_PNUM})|(?P<z2>{_PNUM}){_RUNITS}"
        rf"\s+(?:is|was)\s+(?:the\s+)?(?P<sup2>{_SUPERLATIVES})\b(?!\s+than))",
        re.IGNORECASE,
    ),
    # the larger is 474.5, not 546
    re.compile(
        rf"\bthe\s+(?P<sup>{_SUPERLATIVES}){_SUP_NOUN}\s+(?:is|was)\s+(?P<z>{_PNUM}){_RUNITS},?"
        rf"\s+(?:not|rather\s+than|instead\s+of)\s+(?:the\s+)?(?P<w>{_PNUM})",
        re.IGNORECASE,
    ),
    # 474.5, not 546, is the larger / 474.5 is the larger, not 546
    re.compile(
        rf"(?P<z>{_PNUM}){_RUNITS},?\s+not\s+(?P<w>{_PNUM}){_RUNITS},?\s+(?:is|was)\s+the\s+"
        rf"(?P<sup>{_SUPERLATIVES})\b",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?P<z>{_PNUM}){_RUNITS}\s+(?:is|was)\s+the\s+(?P<sup>{_SUPERLATIVES}){_SUP_NOUN},?"
        rf"\s+not\s+(?:the\s+)?(?P<w>{_PNUM})",
        re.IGNORECASE,
    ),
]
# What may stand right before a compared number for it to be the subject of the claim.
_LEAD_WORDS = {
    "the", "and", "so", "since", "because", "as", "thus", "therefore", "hence", "but",
    "while", "whereas", "yet", "then", "that", "now", "also", "only", "just", "clearly",
    "indeed", "obviously", "yes", "no", "here", "though", "although", "means", "shows",
    "confirms", "about", "approximately", "roughly", "around", "nearly", "almost",
    "exactly", "see", "note", "know", "which", "this", "these", "total", "answer",
}  # fmt: skip
_LEAD_MARKS = set(".!?:;,([{\"'“‘=—–•")
# After the right operand: it is part of a bigger expression (`3 times`, `10% of`, `2 * 4`).
_RIGHT_TAIL = re.compile(r"\s*(?:times\b|x\s*\d|×|\*|/|\+|−|-\s*\$?\d|\^|percent\s+of\b|of\b)")
_TAIL_WORDS = {"tall", "old", "long", "wide", "high", "deep", "away", "ago", "apart", "heavy"}
_MAGNITUDES = {
    "dozen", "dozens", "hundred", "hundreds", "thousand", "thousands", "million", "millions",
    "billion", "billions", "trillion", "k", "m", "bn", "mn", "score", "pair", "pairs",
    "percent", "cent", "cents", "half", "quarter", "third", "fourth", "fifth",
}  # fmt: skip
# Units that convert: a number in one is not comparable with a bare number in another.
_MEASURES = {
    "cent", "second", "sec", "minute", "min", "hour", "hr", "h", "day", "week", "month",
    "year", "yr", "mm", "cm", "m", "km", "inch", "foot", "ft", "yard", "yd", "mile", "mi",
    "g", "gram", "kg", "kilogram", "lb", "pound", "ounce", "oz", "ton", "tonne", "ml", "l",
    "liter", "litre", "gallon", "quart", "pint", "cup", "percent", "degree", "meter",
    "metre", "kilometer", "kilometre", "millimeter", "centimeter",
}  # fmt: skip
_PREPOSITIONS = {"from", "of", "in", "for", "on", "at", "per", "the", "a", "an", "to", "by"}
_RELATION_WORDS = {
    ">": "greater than",
    "<": "less than",
    ">=": "at least",
    "<=": "at most",
    "==": "equal to",
    "!=": "different from",
}
_FLIP = {">": "<=", "<": ">=", ">=": "<", "<=": ">", "==": "!=", "!=": "=="}
_MORE = {"greater", "more", "larger", "bigger", "higher"}
_BOLD = re.compile(r"(?<![\w*])(\*\*|__)(?=[^\s*_])(.+?)(?<=[^\s*_])\1(?![\w*])")


def _prose(text: str) -> str:
    """`text` with LaTeX and Markdown bold read as plain text, one kind of minus sign."""
    return _BOLD.sub(r"\2", plain_math(text)).replace("−", "-").replace("’", "'")


def _plain_value(token: str) -> float:
    """A number as written, percent sign dropped: `20%` is 20, `$1,020.50` is 1020.5."""
    return float(token.replace("$", "").replace(",", "").rstrip("%"))


def _singular(word: str) -> str:
    word = word.lower()
    if word in ("feet", "foot"):
        return "foot"
    if word in ("dollar", "dollars", "usd", "bucks", "buck"):
        return "dollar"
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _unit(token: str, words: str) -> str:
    """What a number counts, as far as its text says: `$`, `%`, or its first unit word."""
    if "$" in token:
        return "dollar"
    if token.endswith("%"):
        return "percent"
    first = words.split()[0].lower() if words.split() else ""
    return "" if not first or first in _PREPOSITIONS else _singular(first)


def _comparable(ta: str, wa: str, tb: str, wb: str) -> bool:
    """Whether two numbers are in the same unit, so their values compare: `2 dozen` and `20`,
    `5 miles` and `3`, `2 students` and `5 feet` are not."""
    words_a = {w.lower() for w in wa.split()}
    words_b = {w.lower() for w in wb.split()}
    if (words_a & _MAGNITUDES) != (words_b & _MAGNITUDES):
        return False
    if (words_a | words_b) & _TAIL_WORDS:
        return False
    if "per" in words_a | words_b:
        return wa.lower().split("per", 1)[-1].strip() == wb.lower().split("per", 1)[-1].strip()
    ua, ub = _unit(ta, wa), _unit(tb, wb)
    if ua == ub:
        return True
    if ua and ub:
        return False
    return (ua or ub) not in _MEASURES


def _is_year(token: str) -> bool:
    return bool(re.fullmatch(r"1[89]\d\d|2[01]\d\d", token))


def _subject_ok(text: str, start: int) -> bool:
    """Whether the number at `start` opens its clause (`Since 474.5 is ...`, `so 12 is ...`)
    rather than ending a phrase it belongs to (`half of 10`, `3 * 4`, `Room 12`, `if 8`)."""
    line = text[:start].rsplit("\n", 1)[-1]
    before = line.rstrip()
    if not before or re.fullmatch(r"\s*(?:[-*•>]|\d+[.)])", before):
        return True  # start of a line, a bullet, a numbered item
    if before[-1] in _LEAD_MARKS:
        return True
    word = re.search(r"([A-Za-z']+)$", before)
    return bool(word) and word.group(1).lower() in _LEAD_WORDS


def _holds(a: float, relation: str, b: float, ta: str = "", tb: str = "") -> bool:
    if relation in ("==", "!="):
        same = stated_matches(ta, b) or stated_matches(tb, a) if ta and tb else abs(a - b) < 1e-9
        return same if relation == "==" else not same
    return {
        ">": a > b,
        "<": a < b,
        ">=": a >= b,
        "<=": a <= b,
    }[relation]


def _relation(match: re.Match) -> str | None:
    """The relation a comparison match states, `>` `<` `>=` `<=` `==` `!=`, negation applied."""
    groups = match.groupdict()
    if groups.get("sym"):
        sym = {"≥": ">=", "≤": "<=", "≠": "!=", "!=": "!="}.get(groups["sym"], groups["sym"])
        return sym
    if groups.get("verb"):
        relation = "<" if groups["verb"].lower().startswith("trail") else ">"
    elif groups.get("cmp"):
        more = groups["cmp"].lower() in _MORE
        relation = (">" if more else "<") + ("=" if groups.get("oreq") else "")
    elif groups.get("atleast"):
        big = groups["atleast"].lower() in {"large", "big", "high", "great", "much", "many"}
        relation = ">=" if big else "<="
    elif groups.get("nocmp"):
        relation = "<=" if groups["nocmp"].lower() in _MORE else ">="
    elif groups.get("eq"):
        relation = "=="
    else:
        return None
    return _FLIP[relation] if groups.get("neg") else relation


def _tail_ok(text: str, end: int, right_words: str) -> bool:
    """The right operand is a plain number, not `3 times ...`, `10% of ...`, `5 feet tall`."""
    if _RIGHT_TAIL.match(text, end):
        return False
    nxt = re.match(r"\s+([A-Za-z]+)", text[end:])
    return not (nxt and nxt.group(1).lower() in _TAIL_WORDS) and not (
        {w.lower() for w in right_words.split()} & _TAIL_WORDS
    )


def _numeric_comparisons(text: str) -> list[tuple[int, int, str, bool, str]]:
    """(start, end, claim as written, holds, evidence when it does not) per comparison."""
    found = []
    for pattern in (_COMPARISON, _VERB_COMPARISON, _SYMBOL_COMPARISON, _BRACKETED_COMPARISON):
        for match in pattern.finditer(text):
            groups = match.groupdict()
            ta, tb = groups.get("a") or groups.get("ap"), groups.get("b") or groups.get("bp")
            wa, wb = groups.get("au") or "", groups.get("bu") or ""
            relation = _relation(match)
            if not (ta and tb and relation):
                continue
            if groups.get("a") and not _subject_ok(text, match.start("a")):
                continue
            if groups.get("ap") and pattern is not _BRACKETED_COMPARISON:
                before = text[: match.start()].rstrip()  # `cookies ($546)`: a name's number
                if not before or not before[-1].isalpha():
                    continue
            if not _tail_ok(text, match.end(), wb) or not _comparable(ta, wa, tb, wb):
                continue
            if (_is_year(ta) and (wa.strip() or _is_year(tb))) or (_is_year(tb) and wb.strip()):
                continue
            shown_a, shown_b = ta.replace("$", ""), tb.replace("$", "")
            if ta.endswith("%") == tb.endswith("%"):  # compared as written: 20% and 15%
                ta, tb = ta.rstrip("%"), tb.rstrip("%")
            holds = _holds(_value(ta), relation, _value(tb), ta, tb)
            if holds:
                evidence = ""
            elif relation in (">", "<", "=="):
                evidence = f"{shown_a} is not {_RELATION_WORDS[relation]} {shown_b}"
            else:  # a negated or bounded claim: say what does hold
                evidence = f"{shown_a} is {_RELATION_WORDS[_FLIP[relation]]} {shown_b}"
            start = match.start()
            bracketed = groups.get("ap") and pattern is not _BRACKETED_COMPARISON
            if bracketed and (name := re.search(r"[A-Za-z]+\s*$", text[:start])):
                start = name.start()  # `cookies ($546)`: the claim names its subject
            found.append((start, match.end(), text[start : match.end()].strip(), holds, evidence))
    return found


# `$1314, which does not fit the budget of $2500`, `1,044 dollars stays within the $2,500
# budget`, `$2,700 exceeds the budget of $2,500`: a cost against a stated budget. A verb is
# required (`$200 over the budget` is an excess, not a cost), and a number for the budget.
_BUDGET_VERBS = (
    r"fits?|fitted|stays?|stayed|remains?|remained|falls?|fell|comes?|came|exceeds?|exceeded"
    r"|exceeding"
)
_BUDGET_COMPARISON = re.compile(
    rf"(?P<a>{_PNUM})(?P<au>(?:\s+(?!{_UNIT_STOP}\b|(?:{_BUDGET_VERBS})\b){_WORD}){{0,4}})"
    rf"{_NOTE}(?:,?\s+(?:which|that|so\s+it|and(?:\s+(?:so|it|this|that))?))?"
    r"(?P<neg>\s+(?:does|did|do|would|will|can|could)(?:n['’]t|\s+not))?"
    r"(?:\s+(?P<verb>is|are|was|were|be|stays?|stayed|remains?|remained|falls?|fell"
    r"|comes?\s+in|came\s+in|(?P<fit>fits?|fitted)))?"
    rf"(?P<neg2>\s+not|n['’]t)?{_ADVERBS}"
    r"(?:\s+(?P<within>within|in|into|inside|under|below)"
    r"|\s+(?P<over>over|above|beyond|outside|(?P<exceed>exceeds?|exceeded|exceeding)))?"
    r"\s+(?:the|a|an|our|your|their|its|this|that|his|her)\s+"
    rf"(?:(?P<b>{_PNUM})\s+)?budget(?:\s+of\s+(?P<b2>{_PNUM}))?(?![\w.,]?\d)",
    re.IGNORECASE,
)
# Before the cost: `The total is $1314, which ...`, `comes to $1314 and ...`.
_COST_LEAD = {"is", "was", "are", "were", "be", "of", "to", "costs", "cost", "totals", "at"}


def _budget_claims(text: str) -> list[tuple[int, int, str, bool, str]]:
    """Costs said to fit (or not) a budget stated with its number, recomputed."""
    found = []
    for match in _BUDGET_COMPARISON.finditer(text):
        groups = match.groupdict()
        ta, tb = groups.get("a"), groups.get("b") or groups.get("b2")
        if not ta or not tb or (groups.get("b") and groups.get("b2")):
            continue
        if groups.get("fit") or (groups.get("within") and groups.get("verb")):
            relation = "<="
        elif groups.get("exceed") or (groups.get("over") and groups.get("verb")):
            relation = ">"
        else:
            continue  # `$200 over the budget`: no verb, no claim about the cost
        if bool(groups.get("neg")) != bool(groups.get("neg2")):
            relation = _FLIP[relation]
        before = re.search(r"([A-Za-z']+)\s*$", text[: match.start("a")])
        lead_ok = before is not None and before.group(1).lower() in _COST_LEAD
        if not (lead_ok or _subject_ok(text, match.start("a"))):
            continue
        if not _comparable(ta, groups.get("au") or "", tb, "") or "%" in ta + tb:
            continue
        a, b = _plain_value(ta), _plain_value(tb)
        holds = _holds(a, relation, b)
        shown_a, shown_b = ta.replace("$", ""), tb.replace("$", "")
        fits = "within" if a <= b else "over"
        evidence = "" if holds else f"{shown_a} is {fits} the budget of {shown_b}"
        found.append((match.start(), match.end(), match.group(0).strip(), holds, evidence))
    return found


def _picks(text: str) -> list[tuple[int, int, str, bool, str]]:
    """`the larger of X and Y is Z`, `the larger is Z, not W`: Z must be the max (or min)."""
    found = []
    for pattern in _PICKS:
        for match in pattern.finditer(text):
            groups = match.groupdict()
            z = groups.get("z") or groups.get("z2")
            sup = (groups.get("sup") or groups.get("sup2") or "").lower()
            if not z or not sup:
                continue
            listed = groups.get("list")
            tokens = re.findall(_PNUM, listed) if listed else [z, groups["w"]]
            if len(tokens) < 2 or len({t.endswith("%") for t in tokens + [z]}) > 1:
                continue
            values = [_plain_value(t) for t in tokens]
            biggest = sup.startswith(("larg", "big", "high", "great", "max"))
            target = max(values) if biggest else min(values)
            holds = stated_matches(z.rstrip("%"), target)
            kind = "larger" if biggest else "smaller"
            shown = " and ".join(t.replace("$", "") for t in tokens)
            evidence = (
                ""
                if holds
                else f"the {kind} of {shown} is {format_number(target)}, not {z.replace('$', '')}"
            )
            found.append((match.start(), match.end(), match.group(0).strip(), holds, evidence))
    return found


_PICK_MAX = (
    "higher|larger|greater|bigger|more|warmer|hotter|longer|taller|heavier|faster|older|"
    "highest|largest|greatest|biggest|most|warmest|hottest|longest|tallest|heaviest|"
    "fastest|oldest"
)
_PICK_MIN = (
    "lower|smaller|fewer|less|colder|cooler|shorter|lighter|slower|cheaper|younger|lowest|"
    "smallest|fewest|least|coldest|coolest|shortest|lightest|slowest|cheapest|youngest"
)

# comparatives between two names: the numeric ones and those of a pick (`warmer`, `cheaper`)
_NAMED_CMP = f"{_COMPARATIVES}|{_PICK_MAX}|{_PICK_MIN}"


def _name_pattern(name: str) -> str:
    name = name.strip().lower()
    stem = name[:-1] if name.endswith("s") and len(name) > 3 else name
    return re.escape(stem).replace(r"\ ", r"\s+") + r"(?:s|es)?"


def _named_comparisons(text: str, known: list[tuple[str, float]]) -> list:
    """`muffins brought in more than cookies` with both names' values known. Only the bare
    comparative (`more than`, not `more units than`), no number between the two names."""
    names = {n.strip().lower(): float(v) for n, v in known if n and n.strip()}
    if len(names) < 2:
        return []
    ordered = sorted(names, key=len, reverse=True)
    alternation = "|".join(f"(?:{_name_pattern(n)})" for n in ordered)
    pattern = re.compile(
        rf"\b(?P<x>{alternation})\b(?P<mid>[^\d.;:!?,()$%\n]{{0,50}}?)\b(?P<cmp>{_NAMED_CMP})"
        rf"\s+than\s+(?:the\s+|that\s+of\s+|those\s+of\s+)?(?P<y>{alternation})\b",
        re.IGNORECASE,
    )

    def value_of(written: str) -> tuple[str, float] | None:
        for name in ordered:
            if re.fullmatch(_name_pattern(name), written.lower()):
                return name, names[name]
        return None

    found = []
    for match in pattern.finditer(text):
        mid = match.group("mid").lower()
        if re.search(rf"\b(?:{_NAMED_CMP}|times|twice|half|{alternation}|as|if|whether)\b", mid):
            continue
        x, y = value_of(match.group("x")), value_of(match.group("y"))
        if not x or not y or x[0] == y[0]:
            continue
        relation = ">" if re.fullmatch(_PICK_MAX, match.group("cmp").lower()) else "<"
        if re.search(r"\b(?:not|never)\b|n't\b", mid):
            relation = _FLIP[relation]
        holds = _holds(x[1], relation, y[1])
        evidence = (
            ""
            if holds
            else f"{x[0]} ({format_number(x[1])}) is not {_RELATION_WORDS[relation]} "
            f"{y[0]} ({format_number(y[1])})"
        )
        found.append((match.start(), match.end(), match.group(0).strip(), holds, evidence))
    return found


_NAME = r"[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*){0,2}"
# `in Lisbon will be 19°C`, `Oslo: high 4 C`: a capitalized name and the first number after
# it in the same clause, with no other capitalized word between them
_NAMED_VALUE = re.compile(
    rf"\b(?P<name>{_NAME})\b(?:(?![A-Z])[^.;!?\d\n]){{0,25}}?(?P<num>{_PNUM})"
)
_NOT_NAMES = {
    "the", "a", "an", "in", "on", "at", "it", "this", "that", "these", "so", "and", "but",
    "answer", "step", "based", "therefore", "thus", "today", "tomorrow", "yesterday", "total",
    "i", "we", "you", "they", "he", "she", "there", "then", "since", "if", "for", "of",
}  # fmt: skip
_SUP = rf"(?P<sup>{_PICK_MAX}|{_PICK_MIN})"
_BE = r"(?:is|was|are|were|will\s+be|would\s+be)"
_NAMED_PICKS = [
    # the city with the higher high will be Oslo
    re.compile(
        rf"\b[Tt]he\s+(?:\w+\s+){{0,3}}?with\s+the\s+{_SUP}\b(?:\s+\w+){{0,2}}?\s+{_BE}\s+"
        rf"(?P<z>{_NAME})"
    ),
    # Oslo will have the higher high
    re.compile(rf"\b(?P<z>{_NAME})\s+(?:has|had|have|will\s+have|would\s+have)\s+the\s+{_SUP}\b"),
    # Oslo will be (the) warmer (one), with no `than` after it in the clause
    re.compile(
        rf"\b(?P<z>{_NAME})\s+{_BE}\s+(?:the\s+)?(?:(?:slightly|much|far)\s+)?{_SUP}\b"
        r"(?![^.;!?\n]*\bthan\b)"
    ),
]


def _named_values(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for match in _NAMED_VALUE.finditer(text):
        words = match.group("name").split()
        while words and words[0].lower() in _NOT_NAMES:  # `The West` is West
            words.pop(0)
        if words:
            values.setdefault(" ".join(words).lower(), _plain_value(match.group("num")))
    return values


def _two_named_values(text: str) -> list[tuple[str, float]]:
    """The text's own named numbers, where it names exactly two (see `_named_picks`)."""
    values = _named_values(text)
    return list(values.items()) if len(values) == 2 else []


def _named_picks(text: str) -> list:
    """`the city with the higher high will be Oslo` after the answer gave Lisbon 19 and
    Oslo 4: with exactly two names given numbers in the text, the one picked as higher (or
    warmer, larger, ...) must have the larger number, the one picked as lower the smaller.
    With more or fewer than two named numbers nothing is read: the pick could be among
    things the text does not number."""
    if len(values := _named_values(text)) != 2:
        return []
    found = []
    for pattern in _NAMED_PICKS:
        for match in pattern.finditer(text):
            z = match.group("z").strip().lower()
            if z not in values:
                continue
            (other,) = [n for n in values if n != z]
            biggest = bool(re.fullmatch(_PICK_MAX, match.group("sup").lower()))
            a, b = values[z], values[other]
            holds = a >= b if biggest else a <= b
            evidence = (
                ""
                if holds
                else f"{match.group('z')} has {format_number(a)} against "
                f"{format_number(b)} for the other"
            )
            found.append((match.start(), match.end(), match.group(0).strip(), holds, evidence))
    return found


def _distinct(claims: list) -> list:
    """Claims in text order, one per stretch of text (the first pattern to read it wins)."""
    kept: list = []
    for claim in claims:
        if not any(claim[0] < k[1] and k[0] < claim[1] for k in kept):
            kept.append(claim)
    return sorted(kept)


def check_comparisons(text: str, known: Iterable[tuple[str, float]] = ()) -> Verdict | None:
    """Comparison claims recomputed from the numbers they compare: `474.5 dollars is greater
    than 546 dollars`, `$12 is more than $30`, `cookies ($546) beat muffins ($474.50)`,
    `the larger of 474.5 and 546 is 474.5`, `474.5 < 546`, `$1314 does not fit the budget
    of $2500`, `Lisbon 19 C ... Oslo 4 C ... the warmer will be Oslo`. With `known` (name, value)
    pairs, `muffins brought in more than cookies` too. None when the text compares no two
    numbers: `more than 3 times`, `at least 5 of them`, `less than half` are not claims."""
    text = _prose(text)
    claims = _distinct(
        _numeric_comparisons(text)
        + _picks(text)
        + _budget_claims(text)
        + _named_comparisons(text, list(known) or _two_named_values(text))
        + _named_picks(text)
    )
    return _claims_verdict("comparison_claims", claims, "comparison(s)")


_TOTAL_WORD = re.compile(
    r"\b(?:total(?:s|ed|led|ing|ling)?|together|altogether|combined|in\s+all|"
    r"sum(?:s|med|ming)?)\b",
    re.IGNORECASE,
)
# A part's label words: `from muffins`, `kg of flour`; never a total word or a connective.
_LABEL = (
    r"(?!(?:and|plus|or|total\w*|together|altogether|combined|sum\w*|in\s+(?:all|total)|for|"
    r"making|makes?|made|which|that|so|giving|gives?|gave|bringing|brings?|brought|comes?|"
    r"came|adds?|adding|equals?|is|are|was|were|with|each|per|more|less|than)\b)[A-Za-z][A-Za-z'-]*"
)
_PART = rf"(?:{_PNUM}(?:\s+{_LABEL}){{0,3}}|(?:{_LABEL}\s+){{0,2}}\(\s*{_PNUM}\s*\))"
_PARTS = (
    rf"(?P<list>{_PART}(?:\s*,\s*{_PART})*(?:\s*,?\s+(?:and|plus)\s+|\s*\+\s*|\s*,\s*(?:and|plus)\s+)"
    rf"{_PART})"
)
_TOTAL = rf"(?P<total>{_PNUM})(?P<units>(?:\s+{_LABEL}){{0,3}})"
_BRIDGE_WORD = (
    r"(?:for|a|an|the|total\w*|sum\w*|of|to|is|was|are|were|be|which|that|that's|so|"
    r"mak(?:es|ing|e)|made|giv(?:es|ing|e)|gave|bring(?:s|ing)?|brought|com(?:es|ing|e)|came|"
    r"add(?:s|ing|ed)?|up|amount(?:s|ing|ed)?|equal(?:s|ing)?|together|altogether|combined|"
    r"grand|overall|in|all|and|they|these|those|them|this|it|we|he|she|weigh(?:s|ed|ing)?|"
    r"cost(?:s|ing)?|earn(?:s|ed|ing)?|get(?:s|ting)?|got|yield(?:s|ed|ing)?)"
)
_END = r"(?=\s*(?:[.;!?),]|$))"
_TOTAL_CLAIMS = [
    # 474.50 from muffins and 546.00 from cookies, 1,020.50 in total / for a total of ...
    re.compile(
        rf"(?P<pre>\b(?:together|altogether|combined|in\s+total|in\s+all),?\s+)?{_PARTS}"
        rf"(?P<bridge>\s*[,:(—–]\s*(?:{_BRIDGE_WORD}\s+){{0,6}}|\s+(?:{_BRIDGE_WORD}\s+){{1,6}})"
        rf"{_TOTAL}(?P<trail>\s+(?:in\s+total|altogether|in\s+all|combined|together|total))?{_END}",
        re.IGNORECASE,
    ),
    # In total, the bakery made $1,020.50 ($474.50 from muffins and $546 from cookies)
    re.compile(
        r"(?P<pre>\b(?:in\s+total|altogether|in\s+all|together|combined)\b,?(?:\s+[A-Za-z][A-Za-z'-]*){0,6}\s+"
        r"|\b(?:(?:a|the|our|their|its|his|her)\s+)?(?:grand\s+|combined\s+)?(?:total|sum)"
        r"(?:\s+[A-Za-z]+){0,2}?\s+(?:is|was|of|are|were|comes\s+to|came\s+to|:)\s+"
        r"|\btotal(?:s|ed|led|ing|ling)\s+)"
        rf"{_TOTAL}\s*(?:\(|:|—|–|,\s*(?:with|namely|i\.e\.,?|that\s+is,?|made\s+up\s+of|"
        rf"consisting\s+of|comprising|from)?)\s*{_PARTS}\)?(?=\s*(?:[.;!?]|$))",
        re.IGNORECASE,
    ),
    # The total of 12 kg and 15 kg is 27 kg
    re.compile(
        rf"(?P<pre>\b(?:the\s+)?(?:total|sum|combined\s+[A-Za-z]+)\s+of\s+){_PARTS}\s*,?\s+"
        rf"(?:is|was|are|were|comes\s+to|came\s+to|equals|makes|gives|:)\s+{_TOTAL}{_END}",
        re.IGNORECASE,
    ),
]
# A sentence where a listed number need not be a part: rates, approximations, differences.
_NOT_A_PARTITION = re.compile(
    r"\b(?:each|per|every|times|twice|half|minus|left|remaining|remains?|difference|average|"
    r"except|excluding|without|of\s+which|including|includes?|spent|leaving|after)\b"
    r"|\b(?:over|under|about|around|approximately|roughly|nearly|almost|at\s+least|at\s+most|"
    r"up\s+to|more\s+than|less\s+than|fewer\s+than|some|only)\s+\$?\d"
    r"|[~≈=×*/^]|\d\s*[xX]\s*\d|\d\s*-\s*\$?\d",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|[;\n]+")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _parts(listed: str) -> list[tuple[str, str]]:
    """(number, its label words) for each part of a list `474.50 from muffins and $546 ...`."""
    found = []
    for item in re.finditer(rf"(?P<n>{_PNUM})(?P<w>(?:\s+{_LABEL}){{0,3}})", listed):
        found.append((item.group("n"), item.group("w")))
    return found


def _same_units(parts: list[tuple[str, str]], total: tuple[str, str]) -> bool:
    """Parts and total in one unit: `12 kg` and `15 kg` of `27 kg`, `2 shirts` and `3 hats`
    of `5 items`; not `2 shirts and 3 hats` of `$25`, not `1 kg and 500 g`."""
    every = [*parts, total]
    if len({t.endswith("%") for t, _ in every}) > 1:
        return False
    magnitudes = [frozenset(w.lower() for w in words.split()) & _MAGNITUDES for _, words in every]
    if len(set(magnitudes)) > 1:
        return False
    units = {_unit(t, w) for t, w in every} - {""}
    measured = units & (_MEASURES | {"dollar", "percent"})
    return len(units) <= 1 or not measured


def _total_claims(sentence: str) -> list[tuple[int, int, str, bool, str]] | None:
    """The total claims in one sentence; None when a number in it is neither a total nor
    one of its parts, or the sentence reads as something other than a plain sum."""
    if _NOT_A_PARTITION.search(sentence):
        return None
    found = []
    for pattern in _TOTAL_CLAIMS:
        for match in pattern.finditer(sentence):
            words = "".join(match.groupdict().get(g) or "" for g in ("pre", "bridge", "trail"))
            if not _TOTAL_WORD.search(words):
                continue
            parts = _parts(match.group("list"))
            total = (match.group("total"), match.group("units") or "")
            if len(parts) < 2 or not _same_units(parts, total):
                return None
            written = sum(_plain_value(t) for t, _ in parts)
            holds = stated_matches(total[0].rstrip("%"), written)
            shown = " + ".join(t.replace("$", "") for t, _ in parts)
            evidence = (
                ""
                if holds
                else f"{shown} = {format_number(written)}{'%' if total[0].endswith('%') else ''}, "
                f"not {total[0].replace('$', '')}"
            )
            found.append((match.start(), match.end(), match.group(0).strip(), holds, evidence))
    found = _distinct(found)
    covered = [(s, e) for s, e, *_ in found]
    for number in re.finditer(_PNUM, sentence):
        if not any(s <= number.start() < e for s, e in covered):
            return None  # a number the claim does not account for: not a plain sum
    return found


def check_totals(text: str) -> Verdict | None:
    """A total stated in prose, recomputed from the parts listed with it in one sentence:
    `474.50 from muffins and 546.00 from cookies, 1,100.50 in total`, `In total, the bakery
    made $1,100.50 ($474.50 from muffins and $546 from cookies)`, `Together they weigh 30 kg:
    12 kg and 15 kg`. Only a sentence with a total word (total, together, altogether, combined,
    in all, sum), two or more listed parts and no other number; equations are left to
    check_arithmetic. None when no sentence makes such a claim."""
    claims = []
    for sentence in _sentences(_prose(text)):
        claims.extend(_total_claims(sentence) or [])
    return _claims_verdict("total_claims", claims, "total(s)")


_LABEL_STOPWORDS = {
    "the", "and", "for", "from", "with", "into", "that", "this", "what", "how", "many", "much",
    "each", "per", "compute", "computes", "computed", "calculate", "calculates", "calculated",
    "calculation", "find", "determine", "evaluate", "work", "out", "get", "use", "using",
    "multiply", "multiplied", "add", "adding", "subtract", "subtracted", "divide", "divided",
    "times", "plus", "minus", "result", "results", "value", "values", "number", "numbers",
    "answer", "step", "python", "calculator", "print", "expression", "given", "then", "its",
    "their", "are", "was", "were", "will", "by", "of", "is", "all", "sum", "product",
    "difference", "quotient", "amount", "dollars", "dollar", "cents", "percent", "percentage",
}  # fmt: skip
_HEDGES = re.compile(
    r"\b(?:about|around|approximately|approx|roughly|nearly|almost|over|under|some|circa|"
    r"close\s+to|just\s+(?:over|under))\s*\$?$|[~≈]\s*\$?$",
    re.IGNORECASE,
)


def _label_words(label: str) -> list[str]:
    words = re.findall(r"[A-Za-z]{3,}", label.split(":", 1)[-1] if ":" in label[:12] else label)
    return list(dict.fromkeys(w.lower() for w in words if w.lower() not in _LABEL_STOPWORDS))


def _word_pattern(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        stem = word[:-3]
    elif word.endswith("s") and not word.endswith("ss") and len(word) > 4:
        stem = word[:-1]
    else:
        stem = word
    return rf"\b{re.escape(stem)}\w*"


def _near(text: str, start: int, end: int, words: list[str], reach: int = 60) -> bool:
    """Whether one of `words` is within `reach` characters of text[start:end], same sentence."""
    before = text[max(0, start - reach) : start]
    after = text[end : end + reach]
    before = re.split(r"[.!?](?:\s|$)|[;\n]", before)[-1]
    after = re.split(r"[.!?](?:\s|$)|[;\n]", after)[0]
    window = f"{before} {after}"
    return any(re.search(_word_pattern(w), window, re.IGNORECASE) for w in words)


def restated_results(text: str, results: Iterable[tuple[str, float]]) -> Verdict | None:
    """An answer restating a computed result with a different number: the words of the
    result's label (`s1: muffins revenue 95 * 4.99`, 474.05) next to a number within 5 % of
    it that is not it as written (`muffins brought in $474.50`). Conservative: a result the
    answer states correctly anywhere, a number hedged (`about 470`) or equal to another
    result are left alone. None when the answer restates no result near its label."""
    results = [(label, float(value)) for label, value in results]
    if not results or not text:
        return None
    text = _prose(text)
    tokens = [(m.start(), m.end(), m.group(0)) for m in re.finditer(_PNUM, text)]
    wrong, right = [], 0
    for label, value in results:
        words = _label_words(label)
        if not words or value == 0:
            continue
        correct = [t for t in tokens if stated_matches(t[2].rstrip("%"), value)]
        if correct:
            right += any(_near(text, s, e, words) for s, e, _ in correct)
            continue
        for start, end, token in tokens:
            stated = _plain_value(token)
            if abs(stated - value) > 0.05 * abs(value):
                continue
            if any(stated_matches(token.rstrip("%"), other) for _, other in results):
                continue
            if _HEDGES.search(text[max(0, start - 20) : start]) or not _near(
                text, start, end, words
            ):
                continue
            wrong.append(f"{token.replace('$', '')} where {label} computed {format_number(value)}")
            break
    if wrong:
        return Verdict(
            check="restated_results",
            passed=False,
            evidence="the answer restates a computed result differently: " + "; ".join(wrong),
        )
    if right:
        return Verdict(
            check="restated_results", passed=True, evidence=f"{right} computed result(s) restated"
        )
    return None


def _claims_verdict(check: str, claims: list, what: str) -> Verdict | None:
    """One verdict over recomputed claims (start, end, as written, holds, evidence); None
    when there are none."""
    if not claims:
        return None
    wrong = [
        f'"{written}" is wrong: {evidence}'
        for _, _, written, holds, evidence in claims
        if not holds
    ]
    if wrong:
        return Verdict(check=check, passed=False, evidence="; ".join(wrong))
    return Verdict(check=check, passed=True, evidence=f"{len(claims)} {what} recomputed")
