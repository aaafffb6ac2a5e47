"""Task-marker data preparation: every training row teaches the student two tasks.

A distilled row becomes a label example (`input [label]` -> the answer) and a rationale example
(`input [rationale]` -> the teacher's rationale). Each example is the prompt's tokens, exactly as
`StudentPredictor` tokenizes them at inference, then the target's tokens and the end-of-sequence token;
the loss is taken on the target and the end-of-sequence token only. Evaluation rows give label examples
only: the evaluation metrics are about the answers the distilled model will be asked for. A training set
without rationales (no row has one) gives label examples only too: standard fine-tuning, the baseline that
distilling step-by-step is measured against.

The two examples of a row start with the same input tokens, so `SharedPrefixCollator` packs them into one
sequence, `[input][label branch][rationale branch]`, with an attention mask and position ids under which
each branch sees exactly what it would see alone: the model processes the input once for both tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler

from kfp_distill._implementation.jsonl import DatasetError, read_jsonl
from kfp_distill._implementation.student import StudentTask, student_input_ids, task_marker_ids

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy (and Hugging Face models) skip


@dataclass
class TrainingRow:
    input_text: str
    output_text: str
    rationale: str | None = None  # None in a label-only training set
    uri: str = ""  # where the row was read, for errors that name file and line
    line: int | None = None


@dataclass
class EvaluationRow:
    input_text: str
    output_text: str
    uri: str = ""
    line: int | None = None


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

    A file whose rows all lack `rationale` is a label-only training set (standard fine-tuning).

    Raises:
        DatasetError: A row lacks `input_text` or `output_text`, some rows have a rationale and another
            lacks it, or the file holds no rows.
    """
    records = list(read_jsonl(path))
    if not records:
        raise DatasetError(path, "holds no training rows")
    with_rationales = any("rationale" in row for _, row in records)
    rows = []
    for line, row in records:
        if with_rationales and "rationale" not in row:
            raise DatasetError(
                path, "is missing while other rows have one (a label-only training set has none in any row)",
                line, "rationale",
            )
        rows.append(TrainingRow(
            _text_field(path, line, row, "input_text"),
            _text_field(path, line, row, "output_text"),
            _text_field(path, line, row, "rationale") if with_rationales else None,
            path,
            line,
        ))
    return rows


def read_evaluation_rows(path: str | None) -> list[EvaluationRow]:
    """Reads the evaluation set (labeled rows); no path or an empty file means no evaluation set.

    Raises:
        DatasetError: A row lacks `input_text` or its gold label `output_text`.
    """
    if not path:
        return []
    return [
        EvaluationRow(*(_text_field(path, line, row, name) for name in ("input_text", "output_text")), path, line)
        for line, row in read_jsonl(path)
    ]


class TargetTooLongError(ValueError):
    """A target that leaves no room for an input in the student's context."""


def _encode_row(encode, tokenizer, row: TrainingRow | EvaluationRow, task: StudentTask, field_name: str, *limits: int):
    """`encode` on one row with `field_name` as the target; a target too long is named by file, line and field."""
    try:
        return encode(tokenizer, row.input_text, task, getattr(row, field_name), *limits)
    except TargetTooLongError as error:
        raise DatasetError(row.uri or "<rows>", str(error), row.line, field_name) from None


def encode_example(
    tokenizer,
    input_text: str,
    task: StudentTask,
    target: str,
    max_input_tokens: int,
    max_target_tokens: int | None = None,
    max_sequence_tokens: int | None = None,
) -> tuple[dict[str, list[int]], bool, bool]:
    """Tokenizes one task example.

    Args:
        max_input_tokens: Longest input (the prompt's tokens before its task marker).
        max_target_tokens: Longest target (before the end of sequence); None: no limit.
        max_sequence_tokens: The student's context length: a longer example's input is cut further to fit.

    Returns:
        ({"input_ids", "labels"} with labels IGNORE_INDEX on the prompt), whether the prompt was cut,
        whether the target was cut.
    """
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    target_truncated = max_target_tokens is not None and len(target_ids) > max_target_tokens
    if target_truncated:
        target_ids = target_ids[:max_target_tokens]
    target_ids = target_ids + [tokenizer.eos_token_id]
    marker = task_marker_ids(tokenizer, task)
    if max_sequence_tokens is not None:
        max_input_tokens = min(max_input_tokens, max_sequence_tokens - len(marker) - len(target_ids))
        if max_input_tokens < 1:
            raise TargetTooLongError(
                f"a {task} target of {len(target_ids)} tokens leaves no room for an input in the student's "
                f"{max_sequence_tokens}-token context"
            )
    prompt_ids, input_truncated = student_input_ids(tokenizer, input_text, task, max_input_tokens)
    return (
        {"input_ids": prompt_ids + target_ids, "labels": [IGNORE_INDEX] * len(prompt_ids) + target_ids},
        input_truncated,
        target_truncated,
    )


def prepare_training_examples(
    rows: Sequence[TrainingRow], tokenizer, max_input_tokens: int, max_rationale_tokens: int, encode=encode_example
) -> PreparedExamples:
    """One {"label": ..., "rationale": ...} example pair per training row ({"label": ...} for a row without one).

    Args:
        encode: How one task example is tokenized: `encode_example` (causal LMs) or
            `seq2seq.encode_seq2seq_example` (encoder-decoders).
    """
    prepared = PreparedExamples()
    for row in rows:
        label, label_input_cut, _ = _encode_row(encode, tokenizer, row, "label", "output_text", max_input_tokens)
        prepared.truncated_inputs += label_input_cut
        if row.rationale is None:
            prepared.examples.append({"label": label})
            continue
        rationale, _, rationale_cut = _encode_row(
            encode, tokenizer, row, "rationale", "rationale", max_input_tokens, max_rationale_tokens
        )
        prepared.examples.append({"label": label, "rationale": rationale})
        prepared.truncated_rationales += rationale_cut
    return prepared


def prepare_evaluation_examples(
    rows: Sequence[EvaluationRow], tokenizer, max_input_tokens: int, encode=encode_example
) -> PreparedExamples:
    """One {"label": ...} example per evaluation row, its target the gold label (`encode` as for training)."""
    prepared = PreparedExamples()
    for row in rows:
        label, input_cut, _ = _encode_row(encode, tokenizer, row, "label", "output_text", max_input_tokens)
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


def shared_prefix_length(first: Sequence[int], second: Sequence[int]) -> int:
    """How many leading tokens two sequences have in common."""
    length = 0
    for a, b in zip(first, second):
        if a != b:
            break
        length += 1
    return length


@dataclass
class SharedPrefixCollator(TaskPrefixCollator):
    """Packs each row's label and rationale examples into one sequence that shares their common prefix.

    A row becomes `[prefix][label branch][rationale branch]` (then padding): the prefix is the tokens both
    examples start with (the input), each branch the rest of one example (task marker, target, end of
    sequence). The attention mask lets the label branch see the prefix and itself, the rationale branch
    the prefix and itself (never the label branch), padding nothing but itself; position ids restart after
    the prefix for each branch. Each branch's tokens thus get exactly the hidden states they would get alone.
    Targets are aligned with the position whose logits predict them (no shift left to do), one tensor per
    task, because the last prefix position predicts the first token of both branches.

    Batches with label examples only (evaluation, label-only tuning) are padded as `TaskPrefixCollator` pads them.

    Returns:
        {"shared_prefix": {"input_ids", "position_ids", "attention_mask" (bool, batch x 1 x length x length,
        True where a query may attend to a key), "token_mask" (True on tokens, False on padding),
        "label_targets", "rationale_targets"}}.
    """

    def __call__(self, features: Sequence[dict[str, dict[str, list[int]]]]) -> dict[str, dict[str, torch.Tensor]]:
        if set(features[0]) != {"label", "rationale"}:
            return super().__call__(features)
        rows = [self._pack(feature["label"], feature["rationale"]) for feature in features]
        length = max(len(row["input_ids"]) for row in rows)
        batch = {
            name: torch.full((len(rows), length), fill, dtype=torch.long)
            for name, fill in (
                ("input_ids", self.pad_token_id),
                ("position_ids", 0),
                ("label_targets", IGNORE_INDEX),
                ("rationale_targets", IGNORE_INDEX),
            )
        }
        # Padding attends to itself only, so no row of the mask is empty (an empty row makes NaNs in attention).
        attention_mask = torch.eye(length, dtype=torch.bool).repeat(len(rows), 1, 1, 1)
        token_mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for index, row in enumerate(rows):
            used = len(row["input_ids"])
            for name in batch:
                batch[name][index, :used] = torch.tensor(row[name])
            attention_mask[index, 0, :used, :used] = row["attention_mask"]
            token_mask[index, :used] = True
        return {"shared_prefix": {**batch, "attention_mask": attention_mask, "token_mask": token_mask}}

    @staticmethod
    def _pack(label: dict[str, list[int]], rationale: dict[str, list[int]]) -> dict:
        prefix = shared_prefix_length(label["input_ids"], rationale["input_ids"])
        label_length, rationale_length = len(label["input_ids"]), len(rationale["input_ids"])
        length = label_length + rationale_length - prefix
        # Causal attention everywhere, then the rationale branch is cut off from the label branch.
        attention_mask = torch.ones(length, length, dtype=torch.bool).tril()
        attention_mask[label_length:, prefix:label_length] = False
        # The logits at position p predict the example's token p + 1; in the packed row the rationale
        # branch's positions are shifted by the label branch's length.
        rationale_positions = list(range(prefix)) + list(range(label_length, length))
        rationale_targets = [IGNORE_INDEX] * length
        for position, target in zip(rationale_positions, rationale["labels"][1:]):
            if target != IGNORE_INDEX:
                rationale_targets[position] = target
        return {
            "input_ids": label["input_ids"] + rationale["input_ids"][prefix:],
            "position_ids": list(range(label_length)) + list(range(prefix, rationale_length)),
            "attention_mask": attention_mask,
            "label_targets": label["labels"][1:] + [IGNORE_INDEX] * (length - label_length + 1),
            "rationale_targets": rationale_targets,
        }


def packed_length(example: dict[str, dict[str, list[int]]]) -> int:
    """Tokens of a training example pair as one step processes them (the shared input once)."""
    label, rationale = example["label"], example.get("rationale")
    if rationale is None:  # a label-only example
        return len(label["input_ids"]) + len(label.get("decoder_ids", ()))
    if "decoder_ids" in label:  # encoder-decoder: the input, then both decoders
        return len(label["input_ids"]) + len(label["decoder_ids"]) + len(rationale["decoder_ids"])
    return len(label["input_ids"]) + len(rationale["input_ids"]) - shared_prefix_length(label["input_ids"], rationale["input_ids"])


class SeededLengthGroupedSampler(LengthGroupedSampler):
    """Hugging Face's length-grouped order (random mega-batches, each sorted by length), drawn from seed + epoch.

    The order of an epoch depends on nothing else, so a run resumed from a checkpoint goes through its
    epoch's rows in the order the interrupted run did and skips exactly the batches it had trained on.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed + epoch)
