"""Task-prefix data preparation: every training row teaches the student two tasks.

A distilled row becomes a label example (`[label] input` -> the answer) and a rationale example
(`[rationale] input` -> the teacher's rationale). Each example is the prompt's tokens, exactly as
`StudentPredictor` tokenizes them at inference, then the target's tokens and the end-of-sequence token;
the loss is taken on the target and the end-of-sequence token only. Evaluation rows give label examples
only: the evaluation metrics are about the answers the distilled model will be asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from kfp_distill._implementation.jsonl import DatasetError, read_jsonl
from kfp_distill._implementation.student import Task, student_prompt

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy (and Hugging Face models) skip


@dataclass
class TrainingRow:
    input_text: str
    output_text: str
    rationale: str


@dataclass
class EvaluationRow:
    input_text: str
    output_text: str


@dataclass
class PreparedExamples:
    """Tokenized examples, and how many had to be cut to the configured lengths."""

    examples: list[dict[str, dict[str, list[int]]]] = field(default_factory=list)
    truncated_inputs: int = 0
    truncated_rationales: int = 0


def _text_field(path: str, line: int, row: dict, name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        problem = "is missing" if value is None else f"must be a string, got {type(value).__name__}"
        raise DatasetError(path, problem, line, name)
    return value


def read_training_rows(path: str) -> list[TrainingRow]:
    """Reads generate-rationales' output: rows with `input_text`, `output_text` and `rationale`.

    Raises:
        DatasetError: A row lacks one of those fields, or the file holds no rows.
    """
    rows = [
        TrainingRow(*(_text_field(path, line, row, name) for name in ("input_text", "output_text", "rationale")))
        for line, row in read_jsonl(path)
    ]
    if not rows:
        raise DatasetError(path, "holds no training rows")
    return rows


def read_evaluation_rows(path: str | None) -> list[EvaluationRow]:
    """Reads the evaluation set (labeled rows); no path or an empty file means no evaluation set.

    Raises:
        DatasetError: A row lacks `input_text` or its gold label `output_text`.
    """
    if not path:
        return []
    return [
        EvaluationRow(*(_text_field(path, line, row, name) for name in ("input_text", "output_text")))
        for line, row in read_jsonl(path)
    ]


def encode_example(
    tokenizer, input_text: str, task: Task, target: str, max_input_tokens: int, max_target_tokens: int | None = None
) -> tuple[dict[str, list[int]], bool, bool]:
    """Tokenizes one task example.

    Returns:
        ({"input_ids", "labels"} with labels IGNORE_INDEX on the prompt), whether the prompt was cut,
        whether the target was cut.
    """
    prompt_ids = tokenizer(student_prompt(input_text, task))["input_ids"]
    input_truncated = len(prompt_ids) > max_input_tokens
    if input_truncated:
        # Keep the prompt's line break: it is where the student learned to start answering.
        separator = tokenizer("\n", add_special_tokens=False)["input_ids"]
        prompt_ids = prompt_ids[: max_input_tokens - len(separator)] + separator
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    target_truncated = max_target_tokens is not None and len(target_ids) > max_target_tokens
    if target_truncated:
        target_ids = target_ids[:max_target_tokens]
    target_ids = target_ids + [tokenizer.eos_token_id]
    return (
        {"input_ids": prompt_ids + target_ids, "labels": [IGNORE_INDEX] * len(prompt_ids) + target_ids},
        input_truncated,
        target_truncated,
    )


def prepare_training_examples(
    rows: Sequence[TrainingRow], tokenizer, max_input_tokens: int, max_rationale_tokens: int
) -> PreparedExamples:
    """One {"label": ..., "rationale": ...} example pair per training row."""
    prepared = PreparedExamples()
    for row in rows:
        label, label_input_cut, _ = encode_example(tokenizer, row.input_text, "label", row.output_text, max_input_tokens)
        rationale, _, rationale_cut = encode_example(
            tokenizer, row.input_text, "rationale", row.rationale, max_input_tokens, max_rationale_tokens
        )
        prepared.examples.append({"label": label, "rationale": rationale})
        prepared.truncated_inputs += label_input_cut
        prepared.truncated_rationales += rationale_cut
    return prepared


def prepare_evaluation_examples(rows: Sequence[EvaluationRow], tokenizer, max_input_tokens: int) -> PreparedExamples:
    """One {"label": ...} example per evaluation row, its target the gold label."""
    prepared = PreparedExamples()
    for row in rows:
        label, input_cut, _ = encode_example(tokenizer, row.input_text, "label", row.output_text, max_input_tokens)
        prepared.examples.append({"label": label})
        prepared.truncated_inputs += input_cut
    return prepared


@dataclass
class TaskPrefixCollator:
    """Pads each task's examples on the right into {"task": {"input_ids", "attention_mask", "labels"}} tensors."""

    pad_token_id: int

    def __call__(self, features: Sequence[dict[str, dict[str, list[int]]]]) -> dict[str, dict[str, torch.Tensor]]:
        return {task: self._pad([feature[task] for feature in features]) for task in features[0]}

    def _pad(self, examples: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        length = max(len(example["input_ids"]) for example in examples)
        input_ids, attention_mask, labels = [], [], []
        for example in examples:
            padding = length - len(example["input_ids"])
            input_ids.append(example["input_ids"] + [self.pad_token_id] * padding)
            attention_mask.append([1] * len(example["input_ids"]) + [0] * padding)
            labels.append(example["labels"] + [IGNORE_INDEX] * padding)
        return {
            "input_ids": torch.tensor(input_ids),
            "attention_mask": torch.tensor(attention_mask),
            "labels": torch.tensor(labels),
        }
