"""The Evol-Instruct rewriting prompts and the elimination judge's prompt.

In-depth evolving and in-breadth evolving follow WizardLM (Xu et al. 2023, appendix A)
word for word where the wording matters: the rewriter is told to stay reasonable for a
human, to keep the non-text parts (tables, code), to add only 10 to 20 words, and never
to mention the rewriting prompt itself. Elimination rule 4 then catches the evolutions that
copy the prompt anyway. "Complicate the input" is WizardLM's fifth in-depth operation; its
wording here asks for data a plan must read (a table, JSON, code), because that is what
makes a decomposition harder.
"""

from __future__ import annotations

from typing import Literal

Operation = Literal[
    "constraints", "deepen", "concretize", "reasoning", "complicate_input", "breadth"
]

IN_DEPTH: tuple[Operation, ...] = (
    "constraints",
    "deepen",
    "concretize",
    "reasoning",
    "complicate_input",
)
OPERATIONS: tuple[Operation, ...] = (*IN_DEPTH, "breadth")

_DEPTH = """I want you act as a Prompt Rewriter.
Your objective is to rewrite a given prompt into a more complex version to make those famous AI systems (e.g., chatgpt and GPT4) a bit harder to handle.
But the rewritten prompt must be reasonable and must be understood and responded by humans.
Your rewriting cannot omit the non-text parts such as the table and code in #The Given Prompt#:. Also, please do not omit the input in #The Given Prompt#.
You SHOULD complicate the given prompt using the following method:
{method}
You should try your best not to make the #Rewritten Prompt# become verbose, #Rewritten Prompt# can only add 10 to 20 words into #The Given Prompt#.
'#The Given Prompt#', '#Rewritten Prompt#', 'given prompt' and 'rewritten prompt' are not allowed to appear in #Rewritten Prompt#
#The Given Prompt#:
{instruction}
#Rewritten Prompt#:
"""

_METHODS: dict[Operation, str] = {
    "constraints": "Please add one more constraints/requirements into #The Given Prompt#",
    "deepen": "If #The Given Prompt# contains inquiries about certain issues, the depth and breadth of the inquiry can be increased.",
    "concretize": "Please replace general concepts with more specific concepts.",
    "reasoning": "If #The Given Prompt# can be solved with just a few simple thinking processes, you can rewrite it to explicitly request multiple-step reasoning.",
    "complicate_input": "Please add a small piece of input data that the answer must use: a short Markdown table, a short JSON object, a few lines of code, or a list of numbers, written inside the prompt.",
}

_BREADTH = """I want you act as a Prompt Creator.
Your goal is to draw inspiration from the #Given Prompt# to create a brand new prompt.
This new prompt should belong to the same domain as the #Given Prompt# but be even more rare.
The LENGTH and complexity of the #Created Prompt# should be similar to that of the #Given Prompt#.
The #Created Prompt# must be reasonable and must be understood and responded by humans.
'#Given Prompt#', '#Created Prompt#', 'given prompt' and 'created prompt' are not allowed to appear in #Created Prompt#
#Given Prompt#:
{instruction}
#Created Prompt#:
"""

# WizardLM's elimination rule 1, asked of the teacher. The criterion is the one the paper
# gives; it is stored with every elimination so a reader can see why.
EQUALITY_CRITERION = (
    "the two prompts have the same constraints and requirements, "
    "and the same depth and breadth of inquiry"
)
_EQUALITY = """Here are two Instructions to ChatGPT AI, do you think they are equal to each other, which meet the following requirements:
1. They have same constraints and requirments.
2. They have same depth and breadth of the inquiry.
The First Prompt: {parent}
The Second Prompt: {child}
Your Judgement (Just answer: Equal or Not Equal. No need to explain the reason.):"""

# Words an evolution must not copy from the prompt that produced it (elimination rule 4).
PROMPT_WORDS = (
    "#the given prompt#",
    "#rewritten prompt#",
    "#given prompt#",
    "#created prompt#",
    "given prompt",
    "rewritten prompt",
    "created prompt",
    "prompt rewriter",
    "prompt creator",
)


def evolution_prompt(operation: Operation, instruction: str) -> str:
    """The text the teacher completes to evolve `instruction` by `operation`."""
    if operation == "breadth":
        return _BREADTH.format(instruction=instruction)
    return _DEPTH.format(method=_METHODS[operation], instruction=instruction)


def equality_prompt(parent: str, child: str) -> str:
    return _EQUALITY.format(parent=parent, child=child)


def parse_equality(text: str) -> bool | None:
    """True for "Equal", False for "Not Equal", None when the judge said neither clearly."""
    answer = text.strip().lower().lstrip("#*:- ").replace("*", "")
    if answer.startswith("not equal"):
        return False
    if answer.startswith("equal"):
        return True
    return None


_LABELS = ("#rewritten prompt#:", "#created prompt#:", "rewritten prompt:", "created prompt:")


def clean_evolution(text: str) -> str:
    """Strip what is formatting, not content: surrounding space and quotes, and the answer
    label when the model repeats the one the prompt ended with. Anything else that names the
    prompt stays, for elimination rule 4 to count."""
    out = text.strip()
    if out.lower().startswith(_LABELS):
        out = out.split(":", 1)[1].strip()
    if len(out) >= 2 and out[0] == out[-1] and out[0] in "\"'":
        out = out[1:-1].strip()
    return out
