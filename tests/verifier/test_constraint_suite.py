"""The IFEval-style constraint checks against hand-checked (instruction, answer, expected) cases.

Every expected outcome below was worked out by hand (word counts are written next to the answer),
never by running the code. Each case asserts the exact set of checks the instruction yields, so a
false constraint (an extra check), a false pass and a false fail all fail the test."""

from __future__ import annotations

import json
import re
from typing import get_args

import pytest

from stepgraph.verifier.composer import trimmed
from stepgraph.verifier.constraints import (
    Constraint,
    ConstraintKind,
    Constraints,
    check_answer,
    count_bullets,
    count_paragraphs,
    count_sentences,
    count_words,
    extract_constraints,
)
from stepgraph.verifier.verdict import failures

C = pytest.param

CASES = [
    # --- word counts ------------------------------------------------------------------------
    C(
        "Describe the sea in at most 10 words.",
        "The sea is vast, blue and full of life.",  # 9 words
        {"max_words": True},
        id="max-words-pass",
    ),
    C(
        "Describe the sea in at most 10 words.",
        "The sea is vast, deep, blue and full of strange and wonderful life.",  # 13
        {"max_words": False},
        id="max-words-fail",
    ),
    C(
        "Write at least 12 words about cats.",
        "Cats are curious animals that love to sleep in warm sunny spots all day long.",  # 15
        {"min_words": True},
        id="min-words-pass",
    ),
    C(
        "Write at least 12 words about cats.",
        "Cats are curious animals.",  # 4
        {"min_words": False},
        id="min-words-fail",
    ),
    C(
        "Describe yourself in exactly five words.",
        "Curious, kind, patient, funny, loyal.",  # 5
        {"exact_words": True},
        id="exact-words-number-word-pass",
    ),
    C(
        "Describe yourself in exactly five words.",
        "I am very curious and kind.",  # 6
        {"exact_words": False},
        id="exact-words-fail",
    ),
    C(
        "Answer in fewer than 8 words: what is water?",
        "Water is H2O.",  # 3; fewer than 8 = at most 7
        {"max_words": True},
        id="fewer-than-pass",
    ),
    C(
        "Summarize it in fewer than 5 words.",
        "It is a short story.",  # 5: not fewer than 5
        {"max_words": False},
        id="fewer-than-boundary-fail",
    ),
    C(
        "Explain gravity in under twenty words.",
        "Gravity is the force that pulls masses toward each other.",  # 10
        {"max_words": True},
        id="under-twenty-words-pass",
    ),
    C(
        "Use no more than six words.",
        "Water boils at one hundred degrees Celsius.",  # 7
        {"max_words": False},
        id="no-more-than-fail",
    ),
    C(
        "Write more than 5 words about rain.",
        "Rain falls softly on the roof.",  # 6: more than 5
        {"min_words": True},
        id="more-than-pass",
    ),
    C(
        "Write more than 5 words about rain.",
        "Rain falls on the roof.",  # 5: not more than 5
        {"min_words": False},
        id="more-than-boundary-fail",
    ),
    C(
        "Describe autumn in between 5 and 10 words.",
        "Leaves turn red and gold, then fall.",  # 7
        {"range_words": True},
        id="between-words-pass",
    ),
    C(
        "Describe autumn in between 5 and 10 words.",
        "Leaves fall.",  # 2
        {"range_words": False},
        id="between-words-fail",
    ),
    C(
        "Write a 10-word summary of Hamlet.",
        "A prince avenges his father's murder, and nearly everyone dies.",  # 10; 8..12 allowed
        {"range_words": True},
        id="n-word-summary-pass",
    ),
    C(
        "Write a 10-word summary of Hamlet.",
        "Prince Hamlet seeks revenge.",  # 4
        {"range_words": False},
        id="n-word-summary-fail",
    ),
    C(
        "Keep your reply no longer than 4 words.",
        "Yes, that works fine.",  # 4
        {"max_words": True},
        id="no-longer-than-pass",
    ),
    C(
        "Limit your answer to 3 words.",
        "The capital is Paris.",  # 4
        {"max_words": False},
        id="limit-to-words-fail",
    ),
    C(
        "Answer in at most 4 words.",
        "- **Paris** is lovely",  # 3: markdown symbols are not words
        {"max_words": True},
        id="markdown-symbols-not-words",
    ),
    C(
        "Reply in at most 3 words.",
        "I don't know.",  # 3: don't is one word
        {"max_words": True},
        id="contraction-is-one-word",
    ),
    C(
        "Answer in one word: what is the capital of France?",
        "The capital is Paris.",  # 4
        {"exact_words": False},
        id="one-word-fail",
    ),
    # --- sentence counts --------------------------------------------------------------------
    C(
        "Explain rain in at most 2 sentences.",
        "Water vapor condenses into droplets. They fall when heavy.",
        {"max_sentences": True},
        id="max-sentences-pass",
    ),
    C(
        "Explain rain in at most 2 sentences.",
        "Water evaporates. It condenses into clouds. Droplets fall as rain.",
        {"max_sentences": False},
        id="max-sentences-fail",
    ),
    C(
        "Answer in exactly 2 sentences.",
        "Dr. Smith measured 3.5 liters, e.g. in the lab. The result was clear.",
        {"exact_sentences": True},
        id="sentences-decimals-and-abbreviations",
    ),
    C(
        "Summarize the text in 3 sentences.",
        "It is about a war. Many people die.",
        {"exact_sentences": False},
        id="in-n-sentences-fail",
    ),
    C(
        "Answer in one sentence: why is the sky blue?",
        "Air molecules scatter blue light more than red light.",
        {"exact_sentences": True},
        id="one-sentence-pass",
    ),
    C(
        "Your response should contain at least 3 sentences.",
        "Sure! Here it is.",
        {"min_sentences": False},
        id="min-sentences-fail",
    ),
    C(
        "Your response should contain less than 3 sentences.",
        "Yes. No. Maybe.",
        {"max_sentences": False},
        id="less-than-sentences-fail",
    ),
    C(
        "Write about dogs in 3-5 sentences.",
        "Dogs are loyal. They love walks. They guard homes. They play fetch.",
        {"range_sentences": True},
        id="sentence-range-pass",
    ),
    # --- paragraph counts -------------------------------------------------------------------
    C(
        "Write exactly 2 paragraphs about tea.",
        "Tea is old.\n\nTea is tasty.",
        {"exact_paragraphs": True},
        id="exact-paragraphs-pass",
    ),
    C(
        "Write exactly 2 paragraphs about tea.",
        "Tea is old. Tea is tasty.",
        {"exact_paragraphs": False},
        id="exact-paragraphs-fail",
    ),
    C(
        "There should be 3 paragraphs. Paragraphs are separated with the markdown divider: ***",
        "First part.\n***\nSecond part.\n***\nThird part.",
        {"exact_paragraphs": True},
        id="ifeval-divider-paragraphs",
    ),
    C(
        "Answer in 2 paragraphs.",
        "# Tea\n\nTea is old.\n\nTea is tasty.",
        {"exact_paragraphs": True},
        id="heading-is-not-a-paragraph",
    ),
    C(
        "Write a 3-paragraph essay on trees.",
        "Trees grow.\n\nTrees give shade.",
        {"exact_paragraphs": False},
        id="n-paragraph-essay-fail",
    ),
    C(
        "Use at most 2 paragraphs.",
        "One paragraph only.",
        {"max_paragraphs": True},
        id="max-paragraphs-pass",
    ),
    # --- bullet counts ----------------------------------------------------------------------
    C(
        "Your answer must contain exactly 3 bullet points. Use the markdown bullet points such "
        "as: * This is point 1.",
        "* Apples\n* Pears\n* Plums",
        {"exact_bullets": True, "markdown_format": True},
        id="ifeval-exact-bullets-pass",
    ),
    C(
        "Your answer must contain exactly 3 bullet points. Use the markdown bullet points such "
        "as: * This is point 1.",
        "* Apples\n* Pears",
        {"exact_bullets": False, "markdown_format": True},
        id="ifeval-exact-bullets-fail",
    ),
    C(
        "Give me a list of 4 items to pack for a beach trip.",
        "1. Towel\n2. Sunscreen\n3) Hat\n4. Water",
        {"exact_bullets": True},
        id="list-of-items-numbered",
    ),
    C(
        "Use exactly 2 bullet points.",
        "- Fruit\n  - apples\n  - pears\n- Vegetables",
        {"exact_bullets": True},
        id="nested-bullets-not-counted",
    ),
    C(
        "List your ideas in at most 2 bullets.",
        "• one\n• two\n• three",
        {"max_bullets": False},
        id="max-bullets-fail",
    ),
    C(
        "Write at least 2 bullet points.",
        "- a point\n\n* * *\n\nSome text",
        {"min_bullets": False},
        id="divider-is-not-a-bullet",
    ),
    # --- required / forbidden words ---------------------------------------------------------
    C(
        "Include the keywords apple and banana in your response.",
        "An Apple a day; a BANANA too.",
        {"required_words": True},
        id="required-keywords-pass",
    ),
    C(
        "Include the keywords apple and banana in your response.",
        "I like apples and bananas.",
        {"required_words": False},
        id="required-keywords-word-boundary-fail",
    ),
    C(
        "Use the word 'serendipity' in your story.",
        "It was pure serendipity.",
        {"required_words": True},
        id="use-the-word-pass",
    ),
    C(
        "Mention Paris and Berlin in your answer.",
        "Paris is lovely.",
        {"required_words": False},
        id="mention-fail",
    ),
    C(
        "Your answer must contain the phrase 'climate change'.",
        "Climate   change is real.",
        {"required_words": True},
        id="required-phrase-whitespace",
    ),
    C(
        "Describe the movie without using the words good, bad or nice.",
        "The movie was gripping and memorable.",
        {"forbidden_words": True},
        id="forbidden-pass",
    ),
    C(
        "Describe the movie without using the words good, bad or nice.",
        "It was a Good film, not bad.",
        {"forbidden_words": False},
        id="forbidden-fail",
    ),
    C(
        "Avoid the word 'very' in your answer.",
        "Every scene was great.",
        {"forbidden_words": True},
        id="forbidden-word-boundary-pass",
    ),
    C(
        "Never mention London.",
        "I visited london last year.",
        {"forbidden_words": False},
        id="never-mention-case-insensitive",
    ),
    C(
        'Answer in fewer than 20 words and do not use the word "very".',
        "It is very good.",  # 4
        {"max_words": True, "forbidden_words": False},
        id="max-words-and-forbidden",
    ),
    # --- start / end phrases ----------------------------------------------------------------
    C(
        "Start your answer with 'Yes'.",
        "Yes, the store is open.",
        {"starts_with": True},
        id="start-pass",
    ),
    C(
        "Start your answer with 'Yes'.",
        "Yesterday it was open.",
        {"starts_with": False},
        id="start-word-boundary-fail",
    ),
    C(
        'Begin your response with "Dear Anna".',
        "**Dear Anna,**\n\nThanks for the letter.",
        {"starts_with": True},
        id="start-ignores-markdown",
    ),
    C(
        "End your response with the phrase 'Thank you'.",
        "That is all. Thank you!",
        {"ends_with": True},
        id="end-allows-trailing-punctuation",
    ),
    C(
        "End your response with the phrase 'Thank you'.",
        "Thank you for reading.",
        {"ends_with": False},
        id="end-fail",
    ),
    C(
        "Finish your response with this exact phrase 'Any other questions?'. No other words "
        "should follow this phrase.",
        "Here is the plan. Any other questions?",
        {"ends_with": True},
        id="ifeval-end-phrase-pass",
    ),
    C(
        "Finish your response with this exact phrase 'Any other questions?'. No other words "
        "should follow this phrase.",
        "Here is the plan. Any other questions",
        {"ends_with": False},
        id="end-phrase-punctuation-required",
    ),
    C(
        'Write a limerick. The first word of your response should be "There".',
        "There once was a cat from Peru.",
        {"starts_with": True},
        id="first-word-pass",
    ),
    C(
        "Start your answer with the word Hello and end it with the word Goodbye.",
        "Hello there, friend. Goodbye.",
        {"starts_with": True, "ends_with": True},
        id="bare-start-and-end-words",
    ),
    # --- letter case ------------------------------------------------------------------------
    C(
        "Your entire response should be in English, and in all lowercase letters. No capital "
        "letters are allowed.",
        "the weather today is sunny and warm, with a light breeze from the west.",
        {"language": True, "lowercase": True},
        id="ifeval-lowercase-pass",
    ),
    C(
        "Your entire response should be in English, and in all lowercase letters. No capital "
        "letters are allowed.",
        "The weather today is sunny and warm, with a light breeze from the west.",
        {"language": True, "lowercase": False},
        id="ifeval-lowercase-fail",
    ),
    C("Respond in all caps.", "I LOVE THIS PLAN!", {"uppercase": True}, id="all-caps-pass"),
    C(
        "Write your answer in all capital letters.",
        "I love THIS plan.",
        {"uppercase": False},
        id="capital-letters-fail",
    ),
    # --- JSON / Markdown --------------------------------------------------------------------
    C(
        "Wrap your entire output in JSON format.",
        '{"name": "Ada", "age": 36}',
        {"json_format": True},
        id="json-pass",
    ),
    C(
        "Wrap your entire output in JSON format.",
        '```json\n{"ok": true}\n```',
        {"json_format": True},
        id="json-fenced-pass",
    ),
    C(
        "Return a JSON object with keys name and age.",
        'Sure! {"name": "Ada", "age": 36}',
        {"json_format": False},
        id="json-with-prose-fail",
    ),
    C(
        "Use markdown headings to organize your answer.",
        "# Intro\nText\n## Details\nMore",
        {"markdown_format": True},
        id="markdown-headings-pass",
    ),
    C(
        "Use markdown headings to organize your answer.",
        "**Intro**: text",
        {"markdown_format": False},
        id="markdown-headings-fail",
    ),
    C(
        "Format your answer in Markdown.",
        "Use *care* when cooking.",
        {"markdown_format": True},
        id="markdown-emphasis-pass",
    ),
    C(
        "Format your answer in Markdown.",
        "Plain text only.",
        {"markdown_format": False},
        id="markdown-fail",
    ),
    # --- sections ---------------------------------------------------------------------------
    C(
        "Your response must have 2 sections. Mark the beginning of each section with Section X.",
        "Section 1\nHistory of tea.\nSection 2\nHow to brew it.",
        {"exact_sections": True},
        id="ifeval-sections-pass",
    ),
    C(
        "Your response must have 2 sections. Mark the beginning of each section with Section X.",
        "Section 1\nHistory and brewing of tea.",
        {"exact_sections": False},
        id="ifeval-sections-fail",
    ),
    C(
        "Write a blog post with 3 sections.",
        "## One\na\n## Two\nb\n## Three\nc",
        {"exact_sections": True},
        id="sections-as-headings-pass",
    ),
    C(
        "Write a blog post with 3 sections.",
        "Just one block of text.",
        {"exact_sections": None},
        id="sections-unmarked-no-verdict",
    ),
    # --- language ---------------------------------------------------------------------------
    C(
        "Answer in French: what is your favourite season?",
        "Ma saison préférée est l'automne, parce que les arbres sont magnifiques.",
        {"language": True},
        id="french-pass",
    ),
    C(
        "Respond only in Spanish.",
        "My favourite season is autumn because the trees are beautiful.",
        {"language": False},
        id="spanish-fail",
    ),
    C("Respond only in Spanish.", "Hola amigo", {"language": None}, id="too-short-no-verdict"),
    C(
        "Write a short poem in German.",
        "Der Wind weht leise über das Feld, und die Sonne geht langsam unter.",
        {"language": True},
        id="german-pass",
    ),
    # --- no form constraints ----------------------------------------------------------------
    C("What is 17 * 23?", "391", {}, id="plain-arithmetic"),
    C(
        "Plan a 3-day trip to Rome for 2 people with a budget of 900 euros.",
        "Day 1: Colosseum. Day 2: Vatican. Day 3: Trastevere.",
        {},
        id="plain-trip-numbers-are-content",
    ),
    C(
        "Summarize the 5 steps of the water cycle.",
        "Evaporation, condensation, precipitation, collection, transpiration.",
        {},
        id="plain-five-steps",
    ),
    C("Compute the total. Do not forget the tax.", "The total is 12.", {}, id="plain-tax"),
    C(
        "What does 'Schadenfreude' mean in German?",
        "Pleasure at someone else's misfortune.",
        {},
        id="plain-word-meaning-in-german",
    ),
    C(
        "Write a function that counts the words in a string. It must handle empty strings.",
        "def count(s): return len(s.split())",
        {},
        id="plain-code-about-words",
    ),
    C(
        "Translate these 2 sentences into French: I am tired. I want to sleep.",
        "Je suis fatigué. Je veux dormir.",
        {},
        id="plain-translate-two-sentences",
    ),
    C(
        "Explain the role of women in French society.",
        "Women have shaped French society.",
        {},
        id="plain-french-society",
    ),
    C(
        "Write a Flask endpoint that will return JSON.",
        "@app.get('/')\ndef index(): return {}",
        {},
        id="plain-code-returns-json",
    ),
    C("How do I make a table in markdown?", "Use pipes.", {}, id="plain-markdown-question"),
    C(
        "The document has 5 sections; summarize it.",
        "It covers five topics.",
        {},
        id="plain-input-sections",
    ),
    C(
        "There are 50 books in a small library. Half of them are written in English, and 10% in "
        "German. All others are written in Spanish. How many Spanish books are there?",
        "30",
        {},
        id="plain-books-written-in-english",
    ),
    C(
        "Check if a string is a palindrome. You can assume that the string is not empty and "
        "contains only lowercase letters.",
        "Compare it with its reverse.",
        {},
        id="plain-input-is-lowercase",
    ),
    C(
        "Which composer wrote the oratorio “Messiah”, which includes the “Hallelujah” chorus?",
        "Handel.",
        {},
        id="plain-quoted-title-is-not-a-keyword",
    ),
    C(
        "Alex has caught 5 more than Stan, and Stan has caught 13 less than 4 times as many as "
        "Adelwolfe. How many has Stan caught?",
        "Stan has caught 115.",
        {},
        id="plain-less-than-times-is-arithmetic",
    ),
    C(
        "The text contains at least 300 words; summarize it in 2 sentences.",
        "It is long. It is good.",
        {"exact_sentences": True},
        id="input-length-is-not-answer-length",
    ),
    # --- unparsed phrases: reported, never checked -----------------------------------------
    C(
        "Each bullet point should have at most 10 words.",
        "- a b c",
        {"unparsed_constraint": None},
        id="unparsed-per-bullet-words",
    ),
    C(
        "Your answer must be at most 280 characters.",
        "Short.",
        {"unparsed_constraint": None},
        id="unparsed-characters",
    ),
    C(
        "Write 3 bullet points of at most 10 words each.",
        "- one\n- two\n- three",
        {"exact_bullets": True, "unparsed_constraint": None},
        id="bullets-read-per-bullet-words-unparsed",
    ),
    C("The tone must be formal.", "Hi!", {"unparsed_constraint": None}, id="unparsed-tone"),
    # --- IFEval's other kinds ----------------------------------------------------------------
    C(
        "Do not use any commas in your response.",
        "No commas here",
        {"no_comma": True},
        id="no-comma-pass",
    ),
    C(
        "Do not use any commas in your response.",
        "Yes, it is.",
        {"no_comma": False},
        id="no-comma-fail",
    ),
    C(
        "Use no more than 5 words in all capital letters.",
        "HELLO world",  # 1 word in capitals
        {"max_capital_words": True},
        id="capital-word-frequency-pass",
    ),
    C(
        "Use words in all capital letters at least 2 times.",
        "This is VERY IMPORTANT.",  # VERY, IMPORTANT
        {"min_capital_words": True},
        id="capital-word-frequency-min-pass",
    ),
    C(
        "Write a letter with at least 2 placeholders in square brackets, such as [name].",
        "Dear [name], see you at [place].",
        {"min_placeholders": True},
        id="placeholders-pass",
    ),
    C(
        "Write a letter with at least 2 placeholders in square brackets, such as [name].",
        "Dear [name], see you soon.",
        {"min_placeholders": False},
        id="placeholders-fail",
    ),
    C(
        "Highlight at least 2 sections with markdown, i.e. *highlighted section*.",
        "*One* idea and **two** ideas.",
        {"min_highlights": True, "markdown_format": True},
        id="highlights-pass",
    ),
    C(
        "Highlight at least 2 sections with markdown, i.e. *highlighted section*.",
        "No highlights here.",
        {"min_highlights": False, "markdown_format": False},
        id="highlights-fail",
    ),
    C(
        "The word 'rain' should appear at least 2 times.",
        "Rain, rain, go away.",
        {"keyword_frequency": True},
        id="keyword-frequency-pass",
    ),
    C(
        "The word 'rain' should appear at least 2 times.",
        "Rainy days are rainy.",  # whole words only: 0
        {"keyword_frequency": False},
        id="keyword-frequency-fail",
    ),
    C(
        "Make sure the letter z appears at least 3 times.",
        "Zebras zigzag in a zoo.",  # 4 z
        {"letter_frequency": True},
        id="letter-frequency-pass",
    ),
    C(
        "Make sure the letter z appears at least 3 times.",
        "Cats nap.",
        {"letter_frequency": False},
        id="letter-frequency-fail",
    ),
    C(
        "Your answer must contain a title, wrapped in double angular brackets, such as "
        "<<poem of joy>>.",
        "<<Spring>>\nFlowers bloom.",
        {"title": True},
        id="title-pass",
    ),
    C(
        "Your answer must contain a title, wrapped in double angular brackets, such as "
        "<<poem of joy>>.",
        "Spring\nFlowers bloom.",
        {"title": False},
        id="title-fail",
    ),
    C(
        "At the end of your response, please add a postscript starting with P.S.",
        "See you soon.\nP.S. Bring snacks.",
        {"postscript": True},
        id="postscript-pass",
    ),
    C(
        "At the end of your response, please add a postscript starting with P.S.",
        "See you soon.",
        {"postscript": False},
        id="postscript-fail",
    ),
    C(
        "Wrap your entire response with double quotation marks.",
        '"Hello there."',
        {"quotation": True},
        id="quotation-pass",
    ),
    C(
        "Wrap your entire response with double quotation marks.",
        "Hello there.",
        {"quotation": False},
        id="quotation-fail",
    ),
    C(
        "Give two different responses, separated by 6 asterisk symbols: ******.",
        "Yes.\n******\nNo.",
        {"two_responses": True},
        id="two-responses-pass",
    ),
    C(
        "Give two different responses, separated by 6 asterisk symbols: ******.",
        "Yes.",
        {"two_responses": False},
        id="two-responses-fail",
    ),
    C(
        "Write a haiku about snow.\nFirst repeat the request above word for word without "
        "change, then give your answer.",
        "Write a haiku about snow.\nSoft white flakes falling",
        {"repeat_request": True},
        id="repeat-request-pass",
    ),
    C(
        "Write a haiku about snow.\nFirst repeat the request above word for word without "
        "change, then give your answer.",
        "Soft white flakes falling",
        {"repeat_request": False},
        id="repeat-request-fail",
    ),
    C(
        'Is water wet? Answer with one of the following options: "My answer is yes.", '
        '"My answer is no.", "My answer is maybe."',
        "My answer is yes.",
        {"constrained_response": True},
        id="constrained-response-pass",
    ),
    C(
        'Is water wet? Answer with one of the following options: "My answer is yes.", '
        '"My answer is no.", "My answer is maybe."',
        "Sure.",
        {"constrained_response": False},
        id="constrained-response-fail",
    ),
    C(
        "There should be 2 paragraphs. Paragraph 2 must start with the word However.",
        "Tea is old.\n\nHowever, coffee is newer.",
        {"exact_paragraphs": True, "paragraph_first_word": True},
        id="paragraph-first-word-pass",
    ),
    C(
        "There should be 2 paragraphs. Paragraph 2 must start with the word However.",
        "Tea is old.\n\nCoffee is newer.",
        {"exact_paragraphs": True, "paragraph_first_word": False},
        id="paragraph-first-word-fail",
    ),
    # --- contradictions still check both sides ----------------------------------------------
    C(
        "Write at least 200 words and at most 50 words.",
        "Short answer here.",  # 3
        {"min_words": False, "max_words": True},
        id="conflicting-word-bounds",
    ),
    C(
        "Include the word 'cat' and do not use the word 'cat'.",
        "A cat sat.",
        {"required_words": True, "forbidden_words": False},
        id="conflicting-required-forbidden",
    ),
    # --- combinations -----------------------------------------------------------------------
    C(
        "Answer in at most 3 sentences and at most 60 words.",
        "Yes. It works.",  # 2 sentences, 3 words
        {"max_sentences": True, "max_words": True},
        id="sentences-and-words",
    ),
    C(
        "Write an essay of at least 300 words with exactly 3 paragraphs.",
        "Too short.\n\nSecond.\n\nThird.",  # 4 words, 3 paragraphs
        {"min_words": False, "exact_paragraphs": True},
        id="words-and-paragraphs",
    ),
]


def _outcomes(instruction: str, answer: str) -> dict[str, bool | None]:
    got: dict[str, bool | None] = {}
    for v in check_answer(instruction, answer):
        assert v.check not in got or got[v.check] == v.passed, f"{v.check} disagrees with itself"
        got[v.check] = v.passed
    return got


@pytest.mark.parametrize(("instruction", "answer", "expected"), CASES)
def test_suite_case(instruction: str, answer: str, expected: dict[str, bool | None]) -> None:
    assert _outcomes(instruction, answer) == expected


def test_suite_is_large_and_covers_every_kind() -> None:
    assert len(CASES) >= 70
    kinds = {c.kind for case in CASES for c in extract_constraints(case.values[0]).constraints}
    assert kinds == set(get_args(ConstraintKind))


# --- counting rules -----------------------------------------------------------------------------


def test_count_words_ignores_markdown_and_link_targets() -> None:
    assert count_words("# Title\n\n- one two\n- three\n1. four") == 5
    assert count_words("[link text](http://example.com/a/b) here") == 3
    assert count_words("Don't stop-me now, it's **bold**") == 5


def test_count_sentences() -> None:
    assert count_sentences("I met Dr. Smith e.g. yesterday. It was 3.5 degrees. Wow?!") == 3
    assert count_sentences("# Title\n\nFirst sentence. Second\n\n- item one\n- item two.") == 4
    assert count_sentences("No punctuation here") == 1
    assert count_sentences("") == 0


def test_count_paragraphs_and_bullets() -> None:
    assert count_paragraphs("p1\n\np2\n\n\np3") == 3
    assert count_paragraphs("p1 *** p2 *** p3") == 3
    assert count_paragraphs("# Heading\n\np1\n\n---\n\np2") == 2
    assert count_bullets("- a\n- b\n  - nested\n* c\n\n***\n") == 3
    assert count_bullets("1. a\n2) b\n• c\ntext") == 3
    assert count_bullets("*emphasis* is not a bullet") == 0


# --- extraction details ---------------------------------------------------------------------------


def test_sources_and_params_are_recorded() -> None:
    cs = extract_constraints("Explain photosynthesis in under fifty words, in French.")
    words = next(c for c in cs.constraints if c.kind == "word_count")
    assert (words.low, words.high, words.source) == (None, 49, "under fifty words")
    language = next(c for c in cs.constraints if c.kind == "language")
    assert language.language == "fr"


def test_section_marker_joins_the_count() -> None:
    cs = extract_constraints(
        "Your response must have 3 sections. Mark the beginning of each section with SECTION X."
    )
    assert [(c.kind, c.low, c.high, c.marker) for c in cs.constraints] == [
        ("section_count", 3, 3, "SECTION")
    ]


def test_word_numbers_are_read() -> None:
    cs = extract_constraints("Write an essay of at least three hundred and fifty words.")
    assert [(c.low, c.high) for c in cs.constraints] == [(350, None)]
    # "twenty-five" is one number, not a range from twenty to five
    cs = extract_constraints("Use at least twenty-five words.")
    assert [(c.check_name, c.low) for c in cs.constraints] == [("min_words", 25)]


def test_either_or_word_list_is_not_guessed() -> None:
    cs = extract_constraints("Use the words 'big' or 'large'.")
    assert cs.constraints == []
    assert cs.unparsed == ["Use the words 'big' or 'large'."]


def test_describe_lists_each_constraint() -> None:
    cs = extract_constraints(
        "Answer in French, in at most 50 words, and do not use the word 'very'."
    )
    assert cs.describe() == (
        "- write the answer in French\n- at most 50 words\n- do not use the words 'very'"
    )
    assert extract_constraints("What is 17 * 23?").describe() == ""


# --- conflicts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instruction", "fragment"),
    [
        ("Write at least 200 words and at most 50 words.", "at least 200 words"),
        ("Use exactly 3 bullet points and at least 5 bullet points.", "exactly 3 bullets"),
        ("Write in all lowercase and in all caps.", "lowercase"),
        ("Include the word 'cat' and do not use the word 'cat'.", "'cat' is both required"),
        ("Answer in JSON and use exactly 3 bullet points.", "JSON"),
        ("Respond in JSON. Your response must have 2 sections.", "JSON"),
    ],
)
def test_conflicts_are_reported_and_constraints_kept(instruction: str, fragment: str) -> None:
    cs = extract_constraints(instruction)
    assert len(cs.conflicts) == 1
    assert fragment in cs.conflicts[0]
    assert len(cs.constraints) >= 2


def test_compatible_constraints_do_not_conflict() -> None:
    for instruction in (
        "Write at least 50 words and at most 200 words.",
        "Start your answer with 'yes' and write in lowercase letters.",
        "Start your answer with 'Dear Sir' and write in lowercase letters.",
        "Include the word 'cat' and do not use the word 'dog'.",
        "Respond in JSON and in English.",
    ):
        cs = extract_constraints(instruction)
        assert len(cs.constraints) == 2, instruction
        assert cs.conflicts == [], instruction


# --- unparsed -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "instruction",
    [
        "Each paragraph must have at most 3 sentences.",
        "Use the word 'spark' at least twice in each paragraph.",
        "Write a poem with at most 4 lines.",
        "Use at least 3 emojis in your answer.",
        'Each bullet point should start with the word "Note".',
        "Do not use commas in the title.",
    ],
)
def test_unparsed_phrases_are_reported_not_checked(instruction: str) -> None:
    cs = extract_constraints(instruction)
    assert cs.unparsed
    assert not [c for c in cs.constraints if c.kind in ("word_count", "sentence_count")]
    verdicts = [v for v in cs.check("anything") if v.check == "unparsed_constraint"]
    assert verdicts and all(v.passed is None for v in verdicts)
    assert cs.unparsed[0] in verdicts[0].evidence


@pytest.mark.parametrize(
    "instruction",
    [
        "What is 17 * 23?",
        "Compute the total. Do not forget the tax.",
        "Only use the data from the table.",
        "Write a function that counts the words in a string. It must handle empty strings.",
        "Sort these words alphabetically: apple, pear, fig. Do not include duplicates.",
        "What is the length of a football field? Give the answer in meters only.",
        "Finish your response with 'Bye'. No other words should follow this phrase.",
    ],
)
def test_ordinary_task_content_is_not_unparsed(instruction: str) -> None:
    assert extract_constraints(instruction).unparsed == []


# --- repair -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instruction", "answer"),
    [
        ("Write in all lowercase letters.", "The Sky Is Blue."),
        ("Respond in all caps.", "the sky is blue."),
        ("Start your answer with 'Yes'.", "the store is open."),
        ("Start your answer with 'Summary:'.", "# Title\n\nText."),
        ("End your response with 'Is there anything else I can help with?'", "Done."),
        ("End your response with 'Bye'.", "- item one\n- item two"),
        ("Do not use the words 'very' or 'really'.", "It is very, very good and really nice."),
    ],
)
def test_repair_makes_the_check_pass(instruction: str, answer: str) -> None:
    (constraint,) = extract_constraints(instruction).constraints
    assert constraint.check(answer).passed is False
    repaired = constraint.repair(answer)
    assert repaired is not None
    assert constraint.check(repaired).passed is True


def test_repair_forbidden_keeps_the_rest() -> None:
    c = Constraint(kind="forbidden_words", source="", words=["very"])
    assert c.repair("It is very good.") == "It is good."
    assert c.repair("Very good!") == "good!"


@pytest.mark.parametrize(
    ("instruction", "answer", "expected"),
    [
        (
            "Answer in two sentences.",
            "The bakery took in $1020.50 on Saturday, and cookies brought in more money.",
            "The bakery took in $1020.50 on Saturday. Cookies brought in more money.",
        ),
        (
            "Your reply must have exactly 3 sentences.",
            "The sum is 12 in total; the larger part is 7 of them, and the smaller part is 5.",
            "The sum is 12 in total. The larger part is 7 of them. The smaller part is 5.",
        ),
        (
            "Write at least 2 sentences.",
            "Paris is the capital of France; it sits on the river Seine.",
            "Paris is the capital of France. It sits on the river Seine.",
        ),
    ],
)
def test_too_few_sentences_are_made_by_splitting_two_clauses(instruction, answer, expected):
    (constraint,) = extract_constraints(instruction).constraints
    assert constraint.kind == "sentence_count" and constraint.check(answer).passed is False
    assert constraint.repair(answer) == expected
    assert constraint.check(expected).passed is True


@pytest.mark.parametrize(
    "answer",
    [
        "I bought apples, pears, and plums.",  # a list, not two clauses
        "One. Two. Three. Four.",  # too many: only a rewrite can say less
        "It is big; it is red.",  # too short on either side to be sure
    ],
)
def test_a_join_that_is_not_two_clauses_is_not_split(answer):
    (constraint,) = extract_constraints("Answer in exactly 2 sentences.").constraints
    assert constraint.repair(answer) is None


def test_repair_leaves_a_passing_answer_alone() -> None:
    c = Constraint(kind="case", source="", case="lower")
    assert c.repair("already lower") == "already lower"


@pytest.mark.parametrize(
    "instruction",
    [
        "Answer in at most 5 words.",
        "Use exactly 3 bullet points.",
        "Respond only in Spanish.",
        "Include the keywords apple and banana.",
        "Use markdown headings.",
    ],
)
def test_no_repair_without_a_safe_fix(instruction: str) -> None:
    (constraint,) = extract_constraints(instruction).constraints
    assert constraint.repair("x " * 40) is None


def _fixed(instruction: str, answer: str) -> str:
    """The answer repaired for the one constraint of the instruction that it fails, which it
    must then pass."""
    cs = extract_constraints(instruction).constraints
    (constraint,) = [c for c in cs if c.check(answer).passed is False]
    fixed = constraint.repair(answer)
    assert fixed is not None and constraint.check(fixed).passed is True, fixed
    return fixed


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.replace("SECTION", ""))


def test_repair_regroups_paragraphs_between_dividers() -> None:
    instruction = "Write exactly 3 paragraphs. Separate paragraphs with the markdown divider: ***"
    answer = "One. Two.\n\nThree.\n\nFour five.\n\nSix."
    fixed = _fixed(instruction, answer)
    assert fixed.count("***") == 2 and _words(fixed) == _words(answer)
    # blank lines alone do not part paragraphs the instruction divides with ***
    assert _fixed(instruction, "A.\n\nB.\n\nC.") == "A.\n\n***\n\nB.\n\n***\n\nC."


def test_repair_splits_a_paragraph_at_a_sentence_end() -> None:
    fixed = _fixed("Write exactly 2 paragraphs.", "First sentence here. Second one there.")
    assert fixed == "First sentence here.\n\nSecond one there."


def test_no_paragraph_repair_without_sentences_to_split() -> None:
    (c,) = extract_constraints("Write exactly 2 paragraphs.").constraints
    assert c.repair("one long line with no sentence end") is None


def test_repair_marks_sections_in_the_instruction_s_words() -> None:
    instruction = (
        "Your answer must have 2 sections. Mark the beginning of each section with SECTION X."
    )
    fixed = _fixed(instruction, "Intro text.\n\nBody text.")
    assert fixed == "SECTION 1\nIntro text.\n\nSECTION 2\nBody text."


def test_repair_renumbers_sections_the_answer_marked_wrongly() -> None:
    instruction = (
        "Your response must contain 3 sections, mark the beginning of each section with SECTION X."
    )
    answer = "SECTION X: Start\nA dog. A man.\n\nSECTION X: End\nThey walk."
    fixed = _fixed(instruction, answer)
    assert fixed == "SECTION 1\nStart\nA dog.\n\nSECTION 2\nA man.\n\nSECTION 3\nEnd\nThey walk."


def test_repair_makes_the_answer_s_own_heading_a_title() -> None:
    instruction = "Include a title wrapped in double angular brackets, such as <<poem of joy>>."
    assert _fixed(instruction, "# Spring Rain\nSoft drops fall.").startswith("<<Spring Rain>>\n")
    assert _fixed(instruction, "**Spring**\nSoft.").startswith("<<Spring>>\n")
    (c,) = extract_constraints(instruction).constraints
    assert c.repair("Soft drops fall on the roof all night.") is None  # no title to move


def test_repair_highlights_headings_then_first_sentences() -> None:
    instruction = "Highlight at least 2 sections with markdown, i.e. *highlighted section*."
    fixed = _fixed(instruction, "## Why\nBecause it rains. Often.\n\nThen it stops.")
    assert fixed == "*Why*\n*Because it rains.* Often.\n\nThen it stops."
    three = Constraint(kind="highlight_count", source="", low=3)
    assert three.repair("One. Two. Three.\nFour five.") == "*One.* *Two.* Three.\n*Four five.*"
    assert three.repair("Only one sentence here") is None


def test_repair_turns_a_numbered_list_into_bullets() -> None:
    instruction = "Your answer must contain exactly 2 bullet points in markdown format."
    assert _fixed(instruction, "Tips:\n1. Sleep.\n2. Eat.") == "Tips:\n* Sleep.\n* Eat."


def test_repair_cuts_out_the_json_or_wraps_the_text() -> None:
    instruction = "Wrap your entire output in JSON format."
    assert _fixed(instruction, 'Here it is:\n```json\n{"a": 1}\n```\nDone.') == '{"a": 1}'
    assert _fixed(instruction, 'Sure! {"a": [1, 2]} hope it helps') == '{"a": [1, 2]}'
    assert json.loads(_fixed(instruction, "Just prose, no data.")) == {
        "answer": "Just prose, no data."
    }


def test_repaired_keeps_only_fixes_that_reduce_failures() -> None:
    from stepgraph.verifier.composer import repaired

    task = "Wrap your entire response with double quotation marks. Answer in lowercase letters."
    assert repaired(task, "Hello There") == '"hello there"'
    assert repaired(task, '"already fine"') == '"already fine"'


def test_constraints_check_gives_one_verdict_per_constraint_and_unparsed() -> None:
    cs = Constraints(
        constraints=[Constraint(kind="word_count", source="at most 3 words", high=3)],
        unparsed=["in a formal tone"],
    )
    verdicts = cs.check("one two three four")
    assert [(v.check, v.passed) for v in verdicts] == [
        ("max_words", False),
        ("unparsed_constraint", None),
    ]
    assert verdicts[0].evidence == "4 words; at most 3 allowed"
    assert "in a formal tone" in verdicts[1].evidence


@pytest.mark.parametrize(
    ("instruction", "answer", "cut"),
    [
        (
            "Answer with less than 12 words.",
            "Cats are great pets. They sleep a lot and purr. They hunt mice at night.",
            "Cats are great pets. They sleep a lot and purr.",
        ),
        ("Use at most 2 sentences.", "One. Two is here! Three? Four.", "One. Two is here!"),
        (
            "Respond in fewer than 8 words.",
            "First line of it\nSecond line here\nThird line goes on",
            "First line of it\nSecond line here",
        ),
        ("Answer in between 2 and 3 sentences.", "A. B. C. D. E.", "A. B. C."),
        (
            "Your answer must contain exactly 2 bullet points.",
            "* Born in a village.\n* Born in a town.\n* Born in a city.",
            "* Born in a village.\n* Born in a town.",
        ),
        (
            "Use less than 3 sentences, and end with: That is all.",
            "Eggs. Boxes. Twelve. That is all.",
            "Eggs. That is all",  # room left for the end phrase, put back by code
        ),
    ],
)
def test_trimmed_cuts_after_the_last_sentence_that_fits(instruction, answer, cut) -> None:
    assert trimmed(instruction, answer) == cut
    assert not failures(extract_constraints(instruction).check(cut))


def test_nothing_is_trimmed_where_no_cut_fits_or_no_upper_bound_fails() -> None:
    assert trimmed("Respond in fewer than 4 words.", "Supercalifragilistic wordy answer") == (
        "Supercalifragilistic wordy answer"
    )
    assert trimmed("Respond in fewer than 4 words.", "Fine. Good.") == "Fine. Good."
    assert trimmed("Write at least 40 words.", "Short. Shorter.") == "Short. Shorter."


@pytest.mark.parametrize(
    ("instruction", "kind", "low", "high"),
    [
        (
            "Create a slogan for my company. The slogan must include exactly 2 bullet points.",
            "bullet_count",
            2,
            2,
        ),
        (
            "Write a catchy tagline for a bakery. The tagline should have at most 8 words.",
            "word_count",
            None,
            8,
        ),
        (
            "Come up with a headline for this story. The headline must be fewer than 10 words.",
            "word_count",
            None,
            9,
        ),
    ],
)
def test_a_count_about_what_the_instruction_asks_for_is_about_the_answer(
    instruction, kind, low, high
) -> None:
    (constraint,) = extract_constraints(instruction).constraints
    assert (constraint.kind, constraint.low, constraint.high) == (kind, low, high)


@pytest.mark.parametrize(
    "instruction",
    [
        "Write a blog post about cats with a title. The title must be at most 5 words.",
        "Write an essay about dogs. Its title should contain at most 4 words.",
        "Write a poem. The title must have exactly 3 words.",
    ],
)
def test_a_count_about_a_part_of_the_answer_is_not_read_as_the_answer_s(instruction) -> None:
    found = extract_constraints(instruction)
    assert found.constraints == [] and len(found.unparsed) == 1


@pytest.mark.parametrize(
    ("task", "room"),
    [
        ("Write a poem about the sea.", 768),
        ("Write a poem about the sea in at most 50 words.", 768),
        ("Write an essay to investors. The essay should be at least 50 sentences long.", 1950),
        ("Write a blog post of at least 800 words.", 1560),
        ("Write a story with at least 300 sentences.", 3072),
    ],
)
def test_an_answer_gets_room_for_the_length_asked_for(task, room):
    from stepgraph.runtime.candidates import direct_request

    assert extract_constraints(task).room() == room
    assert direct_request(task, [], reasoning=False).max_tokens == room
