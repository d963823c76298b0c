"""Every instruction kind of Google's IFEval, read from the instruction's text alone.

For each kind: at least three phrasings in IFEval's style (written for these tests, not taken
from the benchmark's prompts), each asserting the exact constraint read (kind and numbers,
words or phrase); then an answer that passes the check and one that fails it. Expected values
were worked out by hand (counts are written next to the answers)."""

from __future__ import annotations

import pytest

from stepgraph.verifier.constraints import (
    Constraint,
    count_capital_words,
    count_highlights,
    count_placeholders,
    extract_constraints,
)

P = pytest.param


def _only(instruction: str, kind: str) -> Constraint:
    found = [c for c in extract_constraints(instruction).constraints if c.kind == kind]
    assert len(found) == 1, (kind, extract_constraints(instruction).constraints)
    return found[0]


def _read(c: Constraint) -> dict:
    return {
        "low": c.low,
        "high": c.high,
        "words": c.words,
        "phrase": c.phrase,
        "case": c.case,
        "language": c.language,
        "marker": c.marker,
        "index": c.index,
    }


# (instruction, kind, the fields that must have been read; fields not named must be empty)
PHRASINGS = [
    # --- word counts -----------------------------------------------------------------------
    P("Describe a rainy morning in at least 150 words.", "word_count", {"low": 150}, id="w-min"),
    P("Summarize the plot of Hamlet in 60 or fewer words.", "word_count", {"high": 60}, id="w-max"),
    P("Write a bio of exactly 40 words.", "word_count", {"low": 40, "high": 40}, id="w-exact"),
    P("Keep the whole reply under 25 words.", "word_count", {"high": 24}, id="w-under"),
    P("Write a 250+ word review of the film.", "word_count", {"low": 250}, id="w-plus"),
    P("Write a product review with 80 or more words.", "word_count", {"low": 80}, id="w-or-more"),
    P(
        "Draft a toast. The total number of words in your answer must be 120 or more.",
        "word_count",
        {"low": 120},
        id="w-number-of",
    ),
    P(
        "Tell me about Mars. Please don't write anything longer than 40 words.",
        "word_count",
        {"high": 40},
        id="w-negated-longer-than",
    ),
    # --- sentence counts -------------------------------------------------------------------
    P("Your reply should contain less than 4 sentences.", "sentence_count", {"high": 3}, id="s-lt"),
    P(
        "Describe your hometown. Respond with at least 15 sentences.",
        "sentence_count",
        {"low": 15},
        id="s-min",
    ),
    P(
        "Explain photosynthesis to a child, using less than a total of 6 sentences.",
        "sentence_count",
        {"high": 5},
        id="s-total-of",
    ),
    P(
        "Write a fable. The number of sentences in your answer should be in the range of 8 to 12.",
        "sentence_count",
        {"low": 8, "high": 12},
        id="s-range",
    ),
    # --- paragraph counts ------------------------------------------------------------------
    P(
        "Write a story about a lighthouse keeper in exactly 4 paragraphs, separated by the "
        "markdown divider ***.",
        "paragraph_count",
        {"low": 4, "marker": "***", "high": 4},
        id="p-divider",
    ),
    P(
        "Compose a lullaby. Split it into 3 parts, with each part separated by ***.",
        "paragraph_count",
        {"low": 3, "marker": "***", "high": 3},
        id="p-parts",
    ),
    P(
        "Write a poem about winter with exactly 5 stanzas. Separate the stanzas with three "
        "asterisks: ***",
        "paragraph_count",
        {"low": 5, "marker": "***", "high": 5},
        id="p-stanzas",
    ),
    P(
        "Give me study tips using this format:\n\nTip 1 ...\n***\nTip 2 ...\n***\nTip 3 ...",
        "paragraph_count",
        {"low": 3, "marker": "***", "high": 3},
        id="p-template",
    ),
    # --- sections --------------------------------------------------------------------------
    P(
        "Write a grant proposal with 4 sections. Mark the beginning of each section with "
        "SECTION X.",
        "section_count",
        {"low": 4, "high": 4, "marker": "SECTION"},
        id="sec-mark",
    ),
    P(
        "Write a 3 section guide to composting. Each section should be clearly labelled as "
        "Section X.",
        "section_count",
        {"low": 3, "high": 3, "marker": "Section"},
        id="sec-labelled",
    ),
    P(
        "Write a 2 paragraph review in capital letters. Label each paragraph with PARAGRAPH X.",
        "section_count",
        {"low": 2, "high": 2, "marker": "PARAGRAPH"},
        id="sec-paragraph-labels",
    ),
    P(
        "Your essay should have at least 3 sections, with each section starting with Section X.",
        "section_count",
        {"low": 3, "marker": "Section"},
        id="sec-at-least",
    ),
    # --- bullet points ---------------------------------------------------------------------
    P(
        "Your reply must contain exactly 5 bullet points. Use markdown bullet points such as:\n"
        "* This is a point",
        "bullet_count",
        {"low": 5, "high": 5},
        id="b-exact",
    ),
    P(
        "List exactly 4 benefits of cycling using markdown bullet points.",
        "bullet_count",
        {"low": 4, "high": 4},
        id="b-using",
    ),
    P(
        "Your list should be in the format of 6 bullet points like:\n* item",
        "bullet_count",
        {"low": 6, "high": 6},
        id="b-format-of",
    ),
    # --- highlighted sections --------------------------------------------------------------
    P(
        "Highlight at least 4 sections of your essay with markdown, i.e. *highlighted section*.",
        "highlight_count",
        {"low": 4},
        id="h-highlight",
    ),
    P(
        "Write a haiku and italicize at least one phrase in markdown, like *this*.",
        "highlight_count",
        {"low": 1},
        id="h-italicize",
    ),
    P(
        "Include three bold text sections in your reply, e.g. **important**.",
        "highlight_count",
        {"low": 3},
        id="h-bold-noun",
    ),
    P(
        "Write a memo. At least 2 sections should be highlighted with markdown.",
        "highlight_count",
        {"low": 2},
        id="h-passive",
    ),
    P(
        "Please highlight some key ideas with asterisks, like *key idea*.",
        "highlight_count",
        {"low": 1},
        id="h-some",
    ),
    P(
        "The guide should have 4 or more sections. Highlight each section name like this: "
        "*section name*",
        "highlight_count",
        {"low": 4},
        id="h-each-section-name",
    ),
    # --- placeholders ----------------------------------------------------------------------
    P(
        "Write a rental agreement template containing at least 6 placeholders in square "
        "brackets, like [tenant name].",
        "placeholder_count",
        {"low": 6},
        id="ph-min",
    ),
    P(
        "Write a wedding invitation. It must include at least two placeholders represented by "
        "square brackets, e.g. [date].",
        "placeholder_count",
        {"low": 2},
        id="ph-words",
    ),
    P(
        "Draft an email with exactly 3 placeholders such as [company].",
        "placeholder_count",
        {"low": 3, "high": 3},
        id="ph-exact",
    ),
    # --- title -----------------------------------------------------------------------------
    P(
        "Write a cover letter. Your answer must contain a title, wrapped in double angular "
        "brackets, such as <<cover letter>>.",
        "title",
        {},
        id="t-contain",
    ),
    P(
        "Give the poem a title in double angular brackets, i.e. <<title>>.",
        "title",
        {},
        id="t-give",
    ),
    P("Write a limerick with a title like <<The Old Man>>.", "title", {}, id="t-example-only"),
    # --- postscript ------------------------------------------------------------------------
    P(
        "Write a thank-you note. At the end of your response, please explicitly add a "
        "postscript starting with P.S.",
        "postscript",
        {"phrase": "P.S."},
        id="ps-ps",
    ),
    P(
        "Describe a sunset and end it with a post script starting with P.P.S",
        "postscript",
        {"phrase": "P.P.S"},
        id="ps-pps",
    ),
    P(
        'Tell me about otters, and add a note that starts with "P.S." at the very end.',
        "postscript",
        {"phrase": "P.S."},
        id="ps-note",
    ),
    # --- lowercase -------------------------------------------------------------------------
    P(
        "Write a short bio in all lowercase letters. No capital letters are allowed.",
        "case",
        {"case": "lower"},
        id="lc-all",
    ),
    P(
        "Explain gravity. Make sure every letter of your answer is lowercase.",
        "case",
        {"case": "lower"},
        id="lc-every-letter",
    ),
    P(
        "Write a chant for a football club without using any capital letters.",
        "case",
        {"case": "lower"},
        id="lc-without-using",
    ),
    P(
        "Your whole reply should not contain any capital letters.",
        "case",
        {"case": "lower"},
        id="lc-not-contain",
    ),
    # --- capital letters -------------------------------------------------------------------
    P(
        "Write a protest chant. Your whole response must be in capital letters only.",
        "case",
        {"case": "upper"},
        id="uc-only",
    ),
    P("Write a slogan and capitalize every letter.", "case", {"case": "upper"}, id="uc-every"),
    P(
        "All letters in your reply must be capitalized.",
        "case",
        {"case": "upper"},
        id="uc-all-letters",
    ),
    # --- words in capital letters ----------------------------------------------------------
    P(
        "Write a pep talk in which words with all capital letters appear at least 4 times.",
        "capital_word_count",
        {"low": 4},
        id="cw-frequency",
    ),
    P(
        "Write a review. Use fewer than 3 words in all capital letters.",
        "capital_word_count",
        {"high": 2},
        id="cw-fewer-than",
    ),
    P(
        "Make sure that all-caps words appear at most twice in your reply.",
        "capital_word_count",
        {"high": 2},
        id="cw-all-caps-twice",
    ),
    P(
        "Your ad should include at least 6 words in all caps.",
        "capital_word_count",
        {"low": 6},
        id="cw-n-words",
    ),
    # --- no commas -------------------------------------------------------------------------
    P("Write a haiku without any commas.", "no_comma", {}, id="nc-without"),
    P(
        "Describe a forest. Do not use a single comma anywhere in your response.",
        "no_comma",
        {},
        id="nc-single",
    ),
    P("Commas are not allowed in your answer.", "no_comma", {}, id="nc-not-allowed"),
    P("Describe a forest. Your reply should be comma-free.", "no_comma", {}, id="nc-free"),
    # --- keyword inclusion -----------------------------------------------------------------
    P(
        "Write a blog post about bees. Make sure to include the keywords pollen and hive.",
        "required_words",
        {"words": ["pollen", "hive"]},
        id="kw-bare",
    ),
    P(
        'Your answer should contain the words "orbit" and "gravity".',
        "required_words",
        {"words": ["orbit", "gravity"]},
        id="kw-quoted",
    ),
    P(
        'Compose a riddle that has the word "shadow" in it.',
        "required_words",
        {"words": ["shadow"]},
        id="kw-has",
    ),
    P(
        'Write a toast and include the line "cheers to us".',
        "required_words",
        {"words": ["cheers to us"]},
        id="kw-line",
    ),
    # --- keyword frequency -----------------------------------------------------------------
    P(
        'Write about autumn. The word "leaf" should appear at least 4 times.',
        "keyword_frequency",
        {"low": 4, "words": ["leaf"]},
        id="kf-at-least",
    ),
    P(
        'Make sure the keyword "river" is used less than 3 times in your answer.',
        "keyword_frequency",
        {"high": 2, "words": ["river"]},
        id="kf-less-than",
    ),
    P(
        "Mention the word ocean exactly twice.",
        "keyword_frequency",
        {"low": 2, "high": 2, "words": ["ocean"]},
        id="kf-twice",
    ),
    P(
        "Include the word lantern 2 to 4 times in your story.",
        "keyword_frequency",
        {"low": 2, "high": 4, "words": ["lantern"]},
        id="kf-range",
    ),
    P(
        "Mention the name Oliver only once.",
        "keyword_frequency",
        {"low": 1, "high": 1, "words": ["Oliver"]},
        id="kf-only-once",
    ),
    # --- letter frequency ------------------------------------------------------------------
    P(
        "Write a tongue twister in which the letter s appears at least 12 times.",
        "letter_frequency",
        {"low": 12, "words": ["s"]},
        id="lf-at-least",
    ),
    P(
        "Make sure the letter z shows up fewer than 2 times.",
        "letter_frequency",
        {"high": 1, "words": ["z"]},
        id="lf-fewer",
    ),
    P(
        'The letter "K" should appear at most 3 times in your answer.',
        "letter_frequency",
        {"high": 3, "words": ["k"]},
        id="lf-quoted-upper",
    ),
    P(
        "Write a sentence without using the letter a at all.",
        "letter_frequency",
        {"high": 0, "words": ["a"]},
        id="lf-none",
    ),
    # --- forbidden words -------------------------------------------------------------------
    P(
        "Describe a cat without using the words fluffy or cute.",
        "forbidden_words",
        {"words": ["fluffy", "cute"]},
        id="fw-without",
    ),
    P(
        'Write a toast. The word "love" should not appear in your response.',
        "forbidden_words",
        {"words": ["love"]},
        id="fw-should-not-appear",
    ),
    P(
        "Your answer must not include keywords ['cold', 'snow'].",
        "forbidden_words",
        {"words": ["cold", "snow"]},
        id="fw-list",
    ),
    P(
        "Avoid using the following words: quick, fast, rapid\nKeep it short.",
        "forbidden_words",
        {"words": ["quick", "fast", "rapid"]},
        id="fw-line-list",
    ),
    P(
        "Please do not mention apples and pears anywhere in your answer.",
        "forbidden_words",
        {"words": ["apples", "pears"]},
        id="fw-bare-in-answer",
    ),
    P(
        'Write a poem that doesn\'t include the keywords "moon" and "star".',
        "forbidden_words",
        {"words": ["moon", "star"]},
        id="fw-doesnt",
    ),
    # --- JSON ------------------------------------------------------------------------------
    P(
        "List three facts about owls. Wrap your whole output in JSON format; markdown ticks are "
        "fine.",
        "json_format",
        {},
        id="j-wrap",
    ),
    P(
        "Describe the moon. I want the entire response in JSON format.",
        "json_format",
        {},
        id="j-want",
    ),
    P("Put your entire answer in JSON format.", "json_format", {}, id="j-put"),
    # --- quotation -------------------------------------------------------------------------
    P(
        "Write a motto for a bakery. Wrap your entire response with double quotation marks.",
        "quotation",
        {},
        id="q-wrap",
    ),
    P(
        "Describe a storm, and put double quotes around your whole response.",
        "quotation",
        {},
        id="q-around",
    ),
    P(
        "Make sure your entire reply is enclosed in double quotation marks.",
        "quotation",
        {},
        id="q-enclosed",
    ),
    # --- end phrase ------------------------------------------------------------------------
    P(
        'Write a letter to a pen pal. End your response with the exact phrase "Write back '
        'soon!" No other words should follow this phrase.',
        "ends_with",
        {"phrase": "Write back soon!"},
        id="e-exact-phrase",
    ),
    P(
        "Describe Venice. Finish your answer with this exact phrase: See you there.",
        "ends_with",
        {"phrase": "See you there"},
        id="e-colon",
    ),
    P(
        'Write a speech. The very last sentence of your response should be "Thank you all.".',
        "ends_with",
        {"phrase": "Thank you all."},
        id="e-last-sentence",
    ),
    P(
        "Tell a story about a fox. The very end of your response should read exactly like: and "
        "they lived happily.",
        "ends_with",
        {"phrase": "and they lived happily"},
        id="e-very-end",
    ),
    P(
        'Write a rant about traffic. End the rant with "Rant over." and nothing else.',
        "ends_with",
        {"phrase": "Rant over."},
        id="e-the-rant",
    ),
    # --- repeat the request ----------------------------------------------------------------
    P(
        "Write a poem about a lamp.\nFirst repeat the request above word for word without "
        "change, then give your answer. Do not say any words before repeating the request.",
        "repeat_request",
        {"phrase": "Write a poem about a lamp."},
        id="r-above",
    ),
    P(
        "Repeat the request below exactly as it is, then answer it. Do not say anything before "
        "repeating it.\n\nName three rivers in Africa.",
        "repeat_request",
        {"phrase": "Name three rivers in Africa."},
        id="r-below",
    ),
    P(
        'Tell me a fact about volcanoes.\nFirst, repeat "Tell me a fact about volcanoes." '
        "word for word, then answer.",
        "repeat_request",
        {"phrase": "Tell me a fact about volcanoes."},
        id="r-quoted",
    ),
    P(
        "Suggest a name for a cafe. Use at most 20 words.\n\nBefore you give your answer, repeat "
        "the request above without changing a single word.",
        "repeat_request",
        {"phrase": "Suggest a name for a cafe. Use at most 20 words."},
        id="r-before-you",
    ),
    # --- two responses ---------------------------------------------------------------------
    P(
        "Write two haikus about rain. Separate the two haikus with 6 asterisk symbols: ******.",
        "two_responses",
        {},
        id="2r-symbols",
    ),
    P(
        "Give two different answers to the question, separated by six asterisks (******).",
        "two_responses",
        {},
        id="2r-six",
    ),
    P(
        "Provide exactly two versions of the slogan, and separate them with ******.",
        "two_responses",
        {},
        id="2r-bare",
    ),
    # --- response language -----------------------------------------------------------------
    P(
        "Write a riddle about the sea entirely in German, no other language is allowed.",
        "language",
        {"language": "de"},
        id="lang-entirely",
    ),
    P(
        "Describe a market using only Japanese, no other language is allowed.",
        "language",
        {"language": "ja"},
        id="lang-using-only",
    ),
    P("Tell a joke in Spanish only.", "language", {"language": "es"}, id="lang-only-after"),
    P(
        "Your ENTIRE response should be in Swahili language.",
        "language",
        {"language": "sw"},
        id="lang-entire-response",
    ),
    # --- constrained options ---------------------------------------------------------------
    P(
        "Is the Earth round? Choose from the following: ('My answer is yes.', 'My answer is "
        "no.', 'My answer is maybe.')",
        "constrained_response",
        {"words": ["My answer is yes.", "My answer is no.", "My answer is maybe."]},
        id="c-tuple",
    ),
    P(
        "Can cats swim? Your reply must contain exactly one of the following phrases:\n"
        "My answer is yes.\nMy answer is no.\nMy answer is maybe.",
        "constrained_response",
        {"words": ["My answer is yes.", "My answer is no.", "My answer is maybe."]},
        id="c-lines",
    ),
    P(
        'Is coffee healthy? Answer "My answer is yes." or "My answer is no." or "My answer is '
        'maybe."',
        "constrained_response",
        {"words": ["My answer is yes.", "My answer is no.", "My answer is maybe."]},
        id="c-or",
    ),
    # --- first word of the n-th paragraph --------------------------------------------------
    P(
        "Write an essay with exactly 4 paragraphs separated by two new lines. The 2-nd "
        'paragraph must start with word "moreover".',
        "paragraph_first_word",
        {"phrase": "moreover", "index": 2},
        id="pf-2nd",
    ),
    P(
        "There should be 3 paragraphs. Paragraphs are separated by two line breaks. Paragraph "
        "3 must start with the word Finally.",
        "paragraph_first_word",
        {"phrase": "Finally", "index": 3},
        id="pf-paragraph-n",
    ),
    P(
        'Write 2 paragraphs about tea. Start the first paragraph with the word "Tea".',
        "paragraph_first_word",
        {"phrase": "Tea", "index": 1},
        id="pf-start-the-first",
    ),
    P(
        "Write 3 paragraphs. The last paragraph should begin with the word Overall.",
        "paragraph_first_word",
        {"phrase": "Overall", "index": -1},
        id="pf-last",
    ),
]

_EMPTY = {
    "low": None,
    "high": None,
    "words": [],
    "phrase": "",
    "case": None,
    "language": "",
    "marker": None,
    "index": None,
}


@pytest.mark.parametrize(("instruction", "kind", "expected"), PHRASINGS)
def test_each_phrasing_is_read(instruction: str, kind: str, expected: dict) -> None:
    assert _read(_only(instruction, kind)) == _EMPTY | expected


def test_every_kind_has_three_phrasings() -> None:
    kinds: dict[str, int] = {}
    for p in PHRASINGS:
        kinds[p.values[1]] = kinds.get(p.values[1], 0) + 1
    assert len(kinds) == 24  # "case" covers both lowercase and capital letters
    assert min(kinds.values()) >= 3, kinds


# (instruction, kind, an answer that passes, one that fails)
CHECKS = [
    P(
        "Describe a rainy morning in at least 10 words.",
        "word_count",
        "Grey clouds hang low and the streets shine with cold rain.",  # 11
        "Grey clouds and cold rain.",  # 5
        id="word-count",
    ),
    P(
        "Your reply should contain less than 3 sentences.",
        "sentence_count",
        "It rains. It pours.",
        "It rains. It pours. It stops.",
        id="sentence-count",
    ),
    P(
        "Write exactly 3 paragraphs separated by the markdown divider ***.",
        "paragraph_count",
        "One.\n***\nTwo.\n***\nThree.",
        "One.\n***\nTwo.",
        id="paragraph-count",
    ),
    P(
        "Your answer must have 2 sections. Mark the beginning of each section with SECTION X.",
        "section_count",
        "SECTION 1\nRoots.\nSECTION 2\nLeaves.",
        "SECTION 1\nRoots and leaves.",
        id="sections",
    ),
    P(
        "Your answer must contain exactly 2 bullet points. Use markdown bullet points such as:\n"
        "* This is a point",
        "bullet_count",
        "* Apples\n* Pears",
        "1. Apples\n2. Pears",  # numbered items are not bullet points
        id="bullets",
    ),
    P(
        "Highlight at least 2 sections in your answer with markdown, i.e. *highlighted section*.",
        "highlight_count",
        "The *first* point and the **second** one.",
        "* a list item is not a highlight\n* nor is this",
        id="highlights",
    ),
    P(
        "The letter must contain at least 2 placeholders represented by square brackets, such "
        "as [address].",
        "placeholder_count",
        "Dear [name], we meet at [place].",
        "Dear [name], see the [site](http://example.com).",  # a link is no placeholder
        id="placeholders",
    ),
    P(
        "Your answer must contain a title, wrapped in double angular brackets, such as "
        "<<my title>>.",
        "title",
        "<<Autumn Notes>>\nLeaves fall.",
        "Autumn Notes\nLeaves fall. <<>>",
        id="title",
    ),
    P(
        "At the end of your response, please explicitly add a postscript starting with P.P.S",
        "postscript",
        "Thanks for reading.\n\nP.P.S. More soon.",
        "Thanks for reading.\n\nP.S. More soon.",
        id="postscript",
    ),
    P(
        "Your entire response should be in English, and in all lowercase letters.",
        "case",
        "the sea is calm today.",
        "The sea is calm today.",
        id="lowercase",
    ),
    P(
        "Your entire response should be in English, and in all capital letters.",
        "case",
        "THE SEA IS CALM TODAY.",
        "THE SEA IS calm TODAY.",
        id="uppercase",
    ),
    P(
        "In your response, words with all capital letters should appear at least 3 times.",
        "capital_word_count",
        "The BIG SALE starts NOW.",  # BIG, SALE, NOW
        "The BIG sale starts now.",  # BIG
        id="capital-words",
    ),
    P(
        "Do not use any commas in your response.",
        "no_comma",
        "Apples and pears and plums.",
        "Apples, pears and plums.",
        id="no-comma",
    ),
    P(
        "Include the keywords harbor and sail in the response.",
        "required_words",
        "We sail out of the harbor at dawn.",
        "We sailed out of the harbors.",
        id="keywords",
    ),
    P(
        "In your response, the word tide should appear at least 2 times.",
        "keyword_frequency",
        "The tide rises; the TIDE falls.",
        "The tides rise; the tide falls.",  # "tides" is another word
        id="keyword-frequency",
    ),
    P(
        "In your response, the letter q should appear less than 2 times.",
        "letter_frequency",
        "A quiet night.",  # one q
        "A Quiet quest.",  # two q, case aside
        id="letter-frequency",
    ),
    P(
        'Do not include the words "storm" or "thunder" in the response.',
        "forbidden_words",
        "The sky was grey and the wind was loud.",
        "A storm rolled in.",
        id="forbidden-words",
    ),
    P(
        "Wrap your entire output in JSON format. You can use markdown ticks such as ```.",
        "json_format",
        '```json\n{"city": "Oslo"}\n```',
        'Here you go: {"city": "Oslo"}',
        id="json",
    ),
    P(
        "Wrap your entire response with double quotation marks.",
        "quotation",
        '"Rain falls, and the city sleeps."',
        "“Rain falls, and the city sleeps.”",  # IFEval takes the plain mark only
        id="quotation",
    ),
    P(
        'Finish your response with this exact phrase "Any other questions?". No other words '
        "should follow this phrase.",
        "ends_with",
        "That is the plan. Any other questions?",
        "Any other questions? That is the plan.",
        id="end-phrase",
    ),
    P(
        "Write a limerick about a goat.\nFirst repeat the request word for word without change, "
        "then give your answer.",
        "repeat_request",
        "Write a limerick about a goat.\n\nThere once was a goat from Peru...",
        "Write a limerick about goats.\n\nThere once was a goat from Peru...",
        id="repeat",
    ),
    P(
        "Give two different responses. Responses and only responses should be separated by 6 "
        "asterisk symbols: ******.",
        "two_responses",
        "Yes, it is.\n******\nNo, it is not.",
        "Yes, it is.\n******\nYes, it is.",  # the same twice
        id="two-responses",
    ),
    P(
        "Your ENTIRE response should be in French language, no other language is allowed.",
        "language",
        "Le chat dort sur le canapé depuis ce matin, tranquille et heureux.",
        "The cat has been sleeping on the sofa since this morning, calm and happy.",
        id="language",
    ),
    P(
        "Is the sky green? Answer with one of the following options: ('My answer is yes.', 'My "
        "answer is no.', 'My answer is maybe.')",
        "constrained_response",
        "The sky is blue. My answer is no.",
        "No, it is blue.",
        id="constrained",
    ),
    P(
        "There should be 3 paragraphs. Paragraphs are separated with two new lines. The 2nd "
        "paragraph must start with the word meanwhile.",
        "paragraph_first_word",
        "It rained.\n\n**Meanwhile**, the river rose.\n\nThen it stopped.",
        "It rained.\n\nThe river rose meanwhile.\n\nThen it stopped.",
        id="paragraph-first-word",
    ),
]


@pytest.mark.parametrize(("instruction", "kind", "passing", "failing"), CHECKS)
def test_each_check_passes_and_fails(instruction: str, kind: str, passing: str, failing: str):
    constraint = _only(instruction, kind)
    assert constraint.check(passing).passed is True
    assert constraint.check(failing).passed is False


def test_every_kind_has_a_check_case() -> None:
    assert {p.values[1] for p in CHECKS} == {p.values[1] for p in PHRASINGS}


# --- the counters ---------------------------------------------------------------------------------


def test_count_placeholders() -> None:
    assert count_placeholders("[name] at [address], [ ] and [](x) [link](http://a.b)") == 2
    assert count_placeholders("no brackets") == 0


def test_count_highlights() -> None:
    assert count_highlights("*a* and **b** and ***c***") == 3
    assert count_highlights("* item one\n* item two\n***\n******") == 0
    assert count_highlights("* item with *emphasis*") == 1


def test_count_capital_words() -> None:
    # "I", "NASA" (an apostrophe splits "NASA's") and "COVID-19"; not "ok" or "s"
    assert count_capital_words("I saw NASA's COVID-19 data, ok?") == 3
    assert count_capital_words("**BOLD** text") == 1


# --- what is not a constraint ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "instruction",
    [
        'What does the word "serendipity" mean?',
        'How many times does the letter r appear in "strawberry"?',
        'Count the commas in this sentence: "a, b, c".',
        "Why do people use P.S. in letters?",
        "Explain what double quotation marks are used for in English.",
        "Write a Python function that repeats a string 3 times.",
        "Repeat after me: I will not forget.",
        "The story has 5 parts and uses the word dragon 12 times. Summarize it.",
        "What is a title in double angular brackets used for in wiki markup?",
        "Two people are trying to avoid using the letter t. Describe their talk.",
    ],
)
def test_content_is_not_read_as_a_constraint(instruction: str) -> None:
    cs = extract_constraints(instruction)
    assert cs.constraints == []
    assert cs.unparsed == []


@pytest.mark.parametrize(
    "instruction",
    [
        "Use the word 'spark' at least twice in each paragraph.",
        "Do not use commas in the title.",
        'Start your answer with "Yes" or "No".',
    ],
)
def test_a_part_or_a_choice_is_reported_not_checked(instruction: str) -> None:
    cs = extract_constraints(instruction)
    assert cs.constraints == []
    assert cs.unparsed == [instruction]


def test_the_request_to_repeat_keeps_its_own_constraints() -> None:
    cs = extract_constraints(
        "Write a riddle about a clock. Do not use any commas.\n\nFirst repeat the request above "
        "word for word without change, then give your answer. Do not say any words or "
        "characters before repeating the request."
    )
    assert [(c.kind, c.phrase) for c in cs.constraints] == [
        ("no_comma", ""),
        ("repeat_request", "Write a riddle about a clock. Do not use any commas."),
    ]
    assert cs.unparsed == []  # "do not say any words before ..." is part of the instruction


def test_a_title_read_is_no_context_for_a_count() -> None:
    cs = extract_constraints(
        "Write a note with a title in double angular brackets, i.e. <<title>>, and have less "
        "than 4 sentences."
    )
    assert [(c.kind, c.high) for c in cs.constraints] == [("title", None), ("sentence_count", 3)]


# --- repairs -----------------------------------------------------------------------------------


def test_repair_removes_commas() -> None:
    c = _only("Do not use any commas in your response.", "no_comma")
    assert c.repair("Yes, 1,000 apples,pears, and plums,\nthen more") == (
        "Yes 1000 apples pears and plums\nthen more"
    )


def test_repair_adds_only_the_missing_quotation_marks() -> None:
    c = _only("Wrap your entire response with double quotation marks.", "quotation")
    assert c.repair("  Hello there.  ") == '"Hello there."'
    assert c.repair('"Hello" she said.') == '"Hello" she said."'
    assert c.check(c.repair('"Hello" she said.')).passed is True


def test_repair_puts_the_request_first_and_replaces_a_near_copy() -> None:
    c = _only(
        "Write a limerick about a goat.\nFirst repeat the request word for word without change, "
        "then give your answer.",
        "repeat_request",
    )
    assert c.repair("A goat from Peru.") == "Write a limerick about a goat.\n\nA goat from Peru."
    assert c.repair("Write a limerick about the goat.\n\nA goat from Peru.") == (
        "Write a limerick about a goat.\n\nA goat from Peru."
    )


@pytest.mark.parametrize(
    ("instruction", "kind"),
    [
        ("At the end of your response, please add a postscript starting with P.S.", "postscript"),
        ("Your answer must contain a title, wrapped in double angular brackets.", "title"),
        (
            "Highlight at least 2 sections with markdown, i.e. *highlighted section*.",
            "highlight_count",
        ),
        ("Give two different responses separated by 6 asterisk symbols ******.", "two_responses"),
        ("The word tide should appear at least 2 times.", "keyword_frequency"),
    ],
)
def test_no_repair_that_would_invent_content(instruction: str, kind: str) -> None:
    assert _only(instruction, kind).repair("Plain text.") is None


# --- conflicts and descriptions ------------------------------------------------------------------


def test_a_request_to_repeat_that_breaks_a_rule_is_a_conflict() -> None:
    cs = extract_constraints(
        "Write a poem, short and sweet. Do not use any commas.\nFirst repeat the request above "
        "word for word without change, then give your answer."
    )
    assert len(cs.conflicts) == 1
    assert "do not use any commas" in cs.conflicts[0]


def test_a_word_both_counted_and_forbidden_is_a_conflict() -> None:
    cs = extract_constraints(
        "The word 'moon' should appear at least 2 times. Do not use the word 'moon'."
    )
    assert cs.conflicts == [
        "'moon' is both required ('The word 'moon' should appear at least 2 times') and "
        "forbidden ('Do not use the word 'moon'')"
    ]


def test_descriptions() -> None:
    cs = extract_constraints(
        "Write about tides. The word 'tide' should appear at least 2 times. Include at least 3 "
        "placeholders such as [name]. Add a postscript starting with P.P.S"
    )
    assert cs.describe() == (
        "- use the word 'tide' at least 2 times\n"
        "- at least 3 placeholders in square brackets such as [name]\n"
        "- end with a postscript starting with P.P.S"
    )
