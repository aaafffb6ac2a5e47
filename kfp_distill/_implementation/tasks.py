"""Task types: the five kinds of task the teacher prompts and the evaluation know, and how to tell them apart.

A task type is given by the user (`task_type`) or inferred from the examples: from the labels when there
are any (numbers, a few repeated classes, long texts) and from how the inputs are laid out (`context:`,
"classify", "summarize"), the same layouts the contract's examples use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from statistics import fmean
from typing import Sequence

from kfp_distill._implementation.answers import arithmetic_value, normalize_text
from kfp_distill._implementation.spans import CONTEXT_MARKER, QUESTION_MARKER

TASK_TYPES = ("classification", "extractive_qa", "summarization", "math", "free_text")
AUTO = "auto"

# The share of examples that must show a sign for it to decide the task type.
_MOST = 0.8
# "one of the following ...": a list of classes or options to choose from (multiple choice).
_CLASSIFY_CUE = re.compile(
    r"\bclassif(?:y|ication)\b|\bclasses\b|\bcategor(?:y|ies|ize)\b|\bsentiment\b|\bone of the following\b", re.I
)
_SUMMARIZE_CUE = re.compile(r"\bsummar(?:y|ize|ise|ization|isation)\b|\btl;?dr\b|\bheadline\b", re.I)
# Classification labels are short names; a label of more words is an answer or a text.
_CLASS_LABEL_WORDS = 4
# Summaries are sentences, and shorter than what they summarise.
_SUMMARY_WORDS = 8
_SUMMARY_LENGTH_RATIO = 0.6


@dataclass(frozen=True)
class TaskType:
    """A task type and why it was chosen (given by the user, or which sign in the examples decided it)."""

    name: str
    reason: str
    given: bool = False

    @property
    def how_chosen(self) -> str:
        """The reason as a report states it: given by the user, or inferred and from which sign."""
        return self.reason if self.given else f"{_INFERRED}{self.reason}"

    @classmethod
    def from_how_chosen(cls, name: str, how_chosen: str) -> "TaskType":
        """The task type an earlier step settled, from its `how_chosen` text (validate-dataset's output)."""
        if how_chosen.startswith(_INFERRED):
            return cls(name, how_chosen.removeprefix(_INFERRED))
        return cls(name, how_chosen, given=True)


_INFERRED = "inferred: "


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def _words(text: str) -> int:
    return len(text.split())


def infer_task_type(input_texts: Sequence[str], output_texts: Sequence[str | None] = ()) -> TaskType:
    """Infers the task type from example inputs and, when there are any, their labels.

    The signs are tried in this order, the first that holds for at least 80% of the examples wins:
    inputs laid out as `question: ... context: ...` (extractive QA; a number answer found in a context is
    still extractive QA); labels that are all numbers or arithmetic expressions (math); an input that asks to
    classify, or short labels that repeat (classification); an input that asks to summarise, or labels of
    sentences shorter than their inputs (summarization). Anything else is free text.

    Args:
        input_texts: The examples' inputs.
        output_texts: Their labels, aligned with the inputs; None or empty strings for unlabeled examples.

    Returns:
        The task type, with the sign that decided it.
    """
    inputs = list(input_texts)
    if not inputs:
        return TaskType("free_text", "there are no examples to infer a task type from")
    pairs = [(text, label.strip()) for text, label in zip(inputs, output_texts) if label and label.strip()]
    labels = [label for _, label in pairs]

    if _share([bool(CONTEXT_MARKER.search(text)) for text in inputs]) >= _MOST:
        return TaskType("extractive_qa", "the inputs carry a `context:` passage to answer from")
    if pairs and _share([bool(QUESTION_MARKER.search(text)) for text, _ in pairs]) >= _MOST and _share(
        [normalize_text(label) in normalize_text(text) for text, label in pairs]
    ) >= _MOST:
        return TaskType("extractive_qa", "the inputs ask a `question:` and the labels are spans of the inputs")
    if labels and all(arithmetic_value(label) is not None for label in labels):
        return TaskType("math", f"every label is a number or an arithmetic expression ({len(labels)} labels)")
    if _share([bool(_CLASSIFY_CUE.search(text)) for text in inputs]) >= _MOST:
        return TaskType("classification", "the inputs ask to classify")
    classes = {normalize_text(label) for label in labels}
    if (
        len(labels) >= 4
        and len(classes) <= max(2, len(labels) // 2)
        and all(_words(label) <= _CLASS_LABEL_WORDS for label in labels)
    ):
        return TaskType(
            "classification", f"{len(labels)} short labels take only {len(classes)} distinct values"
        )
    if _share([bool(_SUMMARIZE_CUE.search(text)) for text in inputs]) >= _MOST:
        return TaskType("summarization", "the inputs ask for a summary")
    if labels and fmean(_words(label) for label in labels) >= _SUMMARY_WORDS and _share(
        [len(label) <= _SUMMARY_LENGTH_RATIO * len(text) for text, label in pairs]
    ) >= _MOST:
        return TaskType("summarization", "the labels are sentences much shorter than their inputs")
    if not labels:
        return TaskType("free_text", "no labels and no input layout that names a task")
    return TaskType("free_text", "the labels are neither numbers, nor a few repeated classes, nor summaries")


def resolve_task_type(
    task_type: str, input_texts: Sequence[str], output_texts: Sequence[str | None] = ()
) -> TaskType:
    """The task type the user gave, or the inferred one when they gave `auto` (or nothing).

    Raises:
        ValueError: task_type is neither `auto` nor one of TASK_TYPES.
    """
    chosen = (task_type or AUTO).strip().lower()
    if chosen == AUTO:
        return infer_task_type(input_texts, output_texts)
    if chosen not in TASK_TYPES:
        raise ValueError(f"task_type must be {AUTO!r} or one of {', '.join(TASK_TYPES)}; got {task_type!r}")
    return TaskType(chosen, "given as the task_type parameter", given=True)
