"""Chat prompts for the teacher: few-shot chain of thought, in two modes.

PREDICT: the teacher answers the question itself (unlabeled rows; the evaluation set, whose labels it must
not see). EXPLAIN: the teacher is shown the question and its correct answer and explains step by step how to
reach it (labeled rows with use_gold_labels). The answer comes in the run's format (`answer_format`): a JSON
object with a rationale and an answer, or a rationale ending "The answer is <answer>.". Few-shot
demonstrations are earlier user/assistant turns in the same mode and format.

The system instruction depends on the task type (classification, extractive QA, summarization, math, free
text); the user turn is the example's own text unless a template says otherwise, because the examples carry
their task's instruction (the contract asks production traffic to be formatted like them).
"""

from __future__ import annotations

import enum
import string
from dataclasses import dataclass
from typing import Iterable

from kfp_distill._implementation.answers import answers_match, split_completion
from kfp_distill._implementation.jsonl import DatasetError, read_jsonl

from .answer_format import JSON, TEXT, render_answer


class Mode(str, enum.Enum):
    PREDICT = "predict"
    EXPLAIN = "explain"


# How long a rationale the teacher is asked for: "concise" (one or two sentences, as the paper's are) or
# "detailed" (as long as the task needs). Detailed is the default: on e-SNLI with the default teacher it labeled
# 71% of the training rows right against 37%, for 39% more completion tokens (README, Results).
CONCISE = "concise"
DETAILED = "detailed"
RATIONALE_LENGTHS = (CONCISE, DETAILED)
DEFAULT_RATIONALE_LENGTH = DETAILED

# By task type (kfp_distill._implementation.tasks.TASK_TYPES): how to reason ({briefly} is where a concise
# instruction says so, with the words given next to it), and what the answer is. The text format's concise
# instructions are these parts joined as they always were: the demo's results (and its cached answers) were
# made with them. Math and free text share the general instruction, so a task type inferred differently for
# unlabeled rows does not change the demo's prompts.
_GENERAL = (
    "You solve tasks carefully. Think step by step{briefly}",
    ", briefly",
    "only the final answer, written the way the task asks for it.",
)
_INSTRUCTION_PARTS = {
    "math": _GENERAL,
    "free_text": _GENERAL,
    "classification": (
        "You classify texts carefully. Think step by step{briefly} about the evidence for each class",
        ", briefly,",
        "only the name of the class, written exactly as the task writes it.",
    ),
    "extractive_qa": (
        "You answer questions from the context you are given. Think step by step{briefly}, pointing to the "
        "sentence of the context that answers the question",
        ", briefly",
        "the shortest span that answers it, copied exactly from the context.",
    ),
    "summarization": (
        "You summarize texts faithfully. First note{briefly}, step by step, the main points the summary must keep",
        " briefly",
        "the summary itself, written on that one line.",
    ),
}
_TEXT_ANSWER = ", then end with a line of the form 'The answer is <answer>.', where <answer> is "
_JSON_ANSWER = (
    ", then reply with a JSON object only: "
    '{"rationale": "<your step-by-step reasoning, in one or two sentences>", "answer": "<answer>"}, where <answer> is '
)
_JSON_RATIONALE_LENGTH = {CONCISE: "in one or two sentences", DETAILED: "as detailed as the task needs"}
# Classification prompts name the classes, unless there are too many to list.
MAX_LISTED_CLASSES = 20


def validate_rationale_length(rationale_length: str) -> None:
    """Raises ValueError for a rationale length other than `concise` or `detailed`."""
    if rationale_length not in RATIONALE_LENGTHS:
        raise ValueError(f"rationale_length must be one of {', '.join(RATIONALE_LENGTHS)}, got {rationale_length!r}")


def system_instruction(
    task_type: str, classes: Iterable[str] = (), answer_format: str = TEXT, rationale_length: str = DEFAULT_RATIONALE_LENGTH
) -> str:
    """The system instruction for a task type, answer format and rationale length; a classification prompt
    also names the known classes.

    Raises:
        ValueError: A rationale length other than `concise` or `detailed`.
    """
    validate_rationale_length(rationale_length)
    classes = list(classes)
    reasoning, briefly, answer = _INSTRUCTION_PARTS[task_type]
    reasoning = reasoning.format(briefly=briefly if rationale_length == CONCISE else "")
    if answer_format == JSON:
        answer = answer.replace(", written on that one line", "")
        answer_request = _JSON_ANSWER.replace(_JSON_RATIONALE_LENGTH[CONCISE], _JSON_RATIONALE_LENGTH[rationale_length])
    else:
        answer_request = _TEXT_ANSWER
    text = reasoning + answer_request + answer
    if task_type == "classification" and 0 < len(classes) <= MAX_LISTED_CLASSES:
        text += " The classes are: " + ", ".join(classes) + "."
    return text


# The general instruction in the text format (few-shot files are checked against it).
SYSTEM_INSTRUCTION = system_instruction("free_text")

DEFAULT_TEMPLATE = "{input_text}"
# Added after the question in EXPLAIN mode, unless the template places {output_text} itself.
EXPLAIN_REQUEST = (
    "The correct answer is: {output_text}\n"
    "Explain step by step how to reach this answer, then end with the line 'The answer is {output_text}.'"
)
EXPLAIN_REQUEST_JSON = (
    "The correct answer is: {output_text}\n"
    "Explain step by step how to reach this answer in the rationale, and give {output_text} as the answer."
)
PLACEHOLDERS = ("input_text", "output_text")


class PromptTemplateError(ValueError):
    """A prompt_template that cannot be filled in."""


@dataclass(frozen=True)
class Demonstration:
    """A few-shot example: a question, its step-by-step rationale, and its answer."""

    input_text: str
    rationale: str
    output_text: str


def template_placeholders(template: str) -> set[str]:
    """Validates a prompt template and returns the placeholders it uses.

    Raises:
        PromptTemplateError: Unbalanced braces, positional `{}`, an unknown placeholder, or no {input_text}.
    """
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise PromptTemplateError(
            f"prompt_template cannot be parsed ({error}); write a literal brace as '{{{{' or '}}}}'"
        ) from None
    unknown = sorted({name for name in fields if name not in PLACEHOLDERS})
    if unknown:
        shown = ", ".join("{" + name + "}" for name in unknown)
        raise PromptTemplateError(
            f"prompt_template uses unknown placeholder(s) {shown}; the known ones are {{input_text}} and "
            "{output_text} (explain mode only); write a literal brace as '{{' or '}}'"
        )
    if "input_text" not in fields:
        raise PromptTemplateError("prompt_template must contain {input_text}")
    return set(fields)


def validate_template(template: str, modes: Iterable[Mode]) -> None:
    """Checks the template can build every prompt of the run, before the first request.

    Raises:
        PromptTemplateError: See `template_placeholders`; also {output_text} when some prompt is in PREDICT
            mode, where the teacher must not see a label.
    """
    if "output_text" in template_placeholders(template) and Mode.PREDICT in set(modes):
        raise PromptTemplateError(
            "prompt_template uses {output_text}, but some rows are asked without their label (rows with no "
            "output_text, or use_gold_labels=False); leave {output_text} out and explain mode appends the "
            "label itself"
        )


def user_turn(
    template: str, input_text: str, mode: Mode, output_text: str | None = None, answer_format: str = TEXT
) -> str:
    """The user's message for one question."""
    if mode is Mode.PREDICT:
        return template.format(input_text=input_text)
    if output_text is None:
        raise ValueError("explain mode needs the label (output_text)")
    if "output_text" in template_placeholders(template):
        return template.format(input_text=input_text, output_text=output_text)
    request = EXPLAIN_REQUEST_JSON if answer_format == JSON else EXPLAIN_REQUEST
    return template.format(input_text=input_text) + "\n\n" + request.format(output_text=output_text)


def build_messages(
    input_text: str,
    mode: Mode,
    output_text: str | None = None,
    demonstrations: Iterable[Demonstration] = (),
    template: str = DEFAULT_TEMPLATE,
    system: str = SYSTEM_INSTRUCTION,
    answer_format: str = TEXT,
) -> list[dict[str, str]]:
    """The chat for one question: system instruction, few-shot turns in the same mode and answer format,
    then the question."""
    messages = [{"role": "system", "content": system}]
    for example in demonstrations:
        question = user_turn(template, example.input_text, mode, example.output_text, answer_format)
        answer = render_answer(example.rationale, example.output_text, answer_format)
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": user_turn(template, input_text, mode, output_text, answer_format)})
    return messages


def load_demonstrations(uri: str) -> list[Demonstration]:
    """Reads few-shot examples from JSON Lines with non-empty `input_text`, `rationale` and `output_text`.

    Every example is checked the way the teacher's answers are read back: its assistant turn ("<rationale>
    The answer is <output_text>.") must parse to its own output_text, or the teacher would learn to write
    answers that cannot be read (a multi-line summary, a rationale that looks like the next question).

    Raises:
        DatasetError: The file is unreadable or empty, a line lacks a field, or an example's answer does not
            survive parsing (named with file, line and field).
    """
    demonstrations = []
    for line, row in read_jsonl(uri):
        values = {}
        for field in ("input_text", "rationale", "output_text"):
            value = row.get(field)
            if not isinstance(value, str) or not value.strip():
                problem = "is missing" if value is None else "must be a non-empty string"
                raise DatasetError(uri, f"few-shot example: {field} {problem}", line, field)
            values[field] = value.strip()
        rationale, parsed = split_completion(render_answer(values["rationale"], values["output_text"], TEXT))
        if parsed is None or not rationale or not answers_match(parsed, values["output_text"]):
            raise DatasetError(
                uri,
                f"few-shot example: its answer turn parses to {parsed!r} instead of its output_text (the teacher's "
                "answers are read from the line after the last 'The answer is'; keep output_text on one line and "
                "leave answer lines and new questions out of the rationale)",
                line,
                "output_text",
            )
        demonstrations.append(Demonstration(**values))
    if not demonstrations:
        raise DatasetError(uri, "the few-shot file holds no examples")
    return demonstrations
