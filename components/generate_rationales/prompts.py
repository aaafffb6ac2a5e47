"""Chat prompts for the teacher: few-shot chain of thought, in two modes.

PREDICT: the teacher answers the question itself (unlabeled rows; the evaluation set, whose labels it must
not see). EXPLAIN: the teacher is shown the question and its correct answer and explains step by step how to
reach it (labeled rows with use_gold_labels). Both end with "The answer is <answer>.", which
`answers.split_completion` parses. Few-shot demonstrations are earlier user/assistant turns in the same mode.
"""

from __future__ import annotations

import enum
import string
from dataclasses import dataclass
from typing import Iterable

from kfp_distill._implementation.jsonl import DatasetError, read_jsonl


class Mode(str, enum.Enum):
    PREDICT = "predict"
    EXPLAIN = "explain"


SYSTEM_INSTRUCTION = (
    "You solve tasks carefully. Think step by step, briefly, then end with a line of the form "
    "'The answer is <answer>.', where <answer> is only the final answer, written the way the task asks for it."
)
DEFAULT_TEMPLATE = "{input_text}"
# Added after the question in EXPLAIN mode, unless the template places {output_text} itself.
EXPLAIN_REQUEST = (
    "The correct answer is: {output_text}\n"
    "Explain step by step how to reach this answer, then end with the line 'The answer is {output_text}.'"
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


def user_turn(template: str, input_text: str, mode: Mode, output_text: str | None = None) -> str:
    """The user's message for one question."""
    if mode is Mode.PREDICT:
        return template.format(input_text=input_text)
    if output_text is None:
        raise ValueError("explain mode needs the label (output_text)")
    if "output_text" in template_placeholders(template):
        return template.format(input_text=input_text, output_text=output_text)
    return template.format(input_text=input_text) + "\n\n" + EXPLAIN_REQUEST.format(output_text=output_text)


def assistant_turn(rationale: str, answer: str) -> str:
    """What a demonstration's teacher says: the rationale, then "The answer is <answer>."."""
    return f"{rationale.strip()} The answer is {answer}" + ("" if answer.endswith(".") else ".")


def build_messages(
    input_text: str,
    mode: Mode,
    output_text: str | None = None,
    demonstrations: Iterable[Demonstration] = (),
    template: str = DEFAULT_TEMPLATE,
) -> list[dict[str, str]]:
    """The chat for one question: system instruction, few-shot turns in the same mode, then the question."""
    messages = [{"role": "system", "content": SYSTEM_INSTRUCTION}]
    for example in demonstrations:
        messages.append({"role": "user", "content": user_turn(template, example.input_text, mode, example.output_text)})
        messages.append({"role": "assistant", "content": assistant_turn(example.rationale, example.output_text)})
    messages.append({"role": "user", "content": user_turn(template, input_text, mode, output_text)})
    return messages


def load_demonstrations(uri: str) -> list[Demonstration]:
    """Reads few-shot examples from JSON Lines with non-empty `input_text`, `rationale` and `output_text`.

    Raises:
        DatasetError: The file is unreadable or empty, or a line lacks a field (named with file and line).
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
        demonstrations.append(Demonstration(**values))
    if not demonstrations:
        raise DatasetError(uri, "the few-shot file holds no examples")
    return demonstrations
