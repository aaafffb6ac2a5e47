"""Validates a distillation dataset against the contract and writes normalized, truncated copies.

The rules are those of the contract (the README's "The contract"): JSON Lines with `input_text` (required) and
`output_text` (optional; null or absent means unlabeled), plus an optional precomputed `rationale`;
at most 10,000 training examples; an optional evaluation set of 10 to 250 labeled examples;
`input_text` truncated at 7,168 and `output_text` at 1,024 tokens of the student's tokenizer.
Every problem stops the run with a `DatasetError` naming file, line and field, before anything is written.

A file may instead hold an application's logged conversations (`conversations.LOG_FORMATS`), its format decided
by its first row. Each logged row becomes a contract row: `input_text` is the conversation's one rendering, and
`output_text` its logged answer (unless the teacher is to answer afresh); rows that cannot be a text example are
skipped and counted by reason, and a prompt logged again exactly is kept once. Then the same rules apply.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp_distill._implementation.conversations import (
    BEDROCK,
    CONTRACT,
    CUT_OFF,
    FAILED_REQUEST,
    GEMINI,
    NO_USER_TURN,
    NOT_IN_RECORD,
    NOT_TEXT,
    OPENAI_CHAT,
    TOOL_USE,
    UNKNOWN_BODY,
    ConversationError,
    ConversationSkipped,
    detect_format,
    parse_logged_row,
)
from kfp_distill._implementation.jsonl import DatasetError, read_jsonl, write_jsonl
from kfp_distill._implementation.limits import MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS
from kfp_distill._implementation.models import load_tokenizer
from kfp_distill._implementation.redaction import redact_uri
from kfp_distill._implementation.tasks import AUTO, TaskType, resolve_task_type

from .training_amount import TrainingAmount, training_amount

logger = logging.getLogger(__name__)

ALLOWED_FIELDS = ("input_text", "output_text", "rationale")
MAX_TRAIN_EXAMPLES = 10_000
MIN_EVALUATION_EXAMPLES = 10
MAX_EVALUATION_EXAMPLES = 250
# Below this many labeled rows a labeled set is thin ("hundreds of examples" in the contract).
RECOMMENDED_MIN_LABELED = 100
# When the teacher labels, the contract recommends more than this many examples.
RECOMMENDED_MIN_FOR_TEACHER_LABELING = 1_000
# Rows tokenized per call: large enough for the fast tokenizer's parallelism, small enough for memory.
TOKENIZATION_BATCH_SIZE = 256
# Lines named in a warning, so a warning stays one readable line.
EXAMPLE_LINES_SHOWN = 5

# Each format as messages and the report name it: what it is, and the fields its rows are told by.
FORMAT_DESCRIPTIONS = {
    CONTRACT: "input_text, output_text",
    OPENAI_CHAT: "OpenAI chat: messages",
    GEMINI: "Vertex AI Gemini tuning: contents",
    BEDROCK: "Amazon Bedrock invocation log: modelId, input",
}
# Why a well-formed logged row is not taken, besides the conversation's own reasons (conversations.SKIP_REASONS).
BLANK_PROMPT = "the prompt is blank"
BLANK_ANSWER = "the logged answer is blank"
NO_LOGGED_ANSWER = "no logged answer to score against"
# The name of each reason in the metrics (`train_rows_skipped_<name>`), in the order the report lists them.
SKIPPED_METRIC_NAMES = {
    TOOL_USE: "tool_use",
    NOT_TEXT: "not_text",
    NO_USER_TURN: "no_user_turn",
    FAILED_REQUEST: "failed_request",
    CUT_OFF: "cut_off",
    NOT_IN_RECORD: "body_not_in_record",
    UNKNOWN_BODY: "unknown_body",
    BLANK_PROMPT: "blank_prompt",
    BLANK_ANSWER: "blank_answer",
    NO_LOGGED_ANSWER: "no_logged_answer",
}
# A file whose skipped rows are at least this share of its rows is warned of: what remains may no longer look
# like the traffic the student will answer.
SKIPPED_SHARE_WARNED = 0.1

_JSON_TYPE_NAMES = {str: "string", int: "number", float: "number", bool: "boolean", list: "array", dict: "object"}


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _format_named(data_format: str) -> str:
    """`the gemini format (Vertex AI Gemini tuning: contents)`."""
    return f"the {data_format} format ({FORMAT_DESCRIPTIONS[data_format]})"


def _by_reason(skipped: dict[str, int]) -> str:
    """`2 tool calls or tool results, 1 no user turn before the answer`: the most frequent reason first."""
    return ", ".join(f"{count} {reason}" for reason, count in Counter(skipped).most_common())


@dataclass
class FieldTruncation:
    """How much of one text field was cut to fit the token limit."""

    rows: int = 0
    tokens: int = 0


@dataclass
class SplitSummary:
    """Counts for one file (training or evaluation) after validation."""

    examples: int
    labeled_examples: int
    rationale_examples: int
    max_input_tokens_seen: int
    max_output_tokens_seen: int
    input_text_truncation: FieldTruncation
    output_text_truncation: FieldTruncation
    # CONTRACT or one of conversations.LOG_FORMATS.
    data_format: str = CONTRACT
    # The file's rows; only logged rows are left out, skipped by reason or collapsed as a repeated prompt.
    rows_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    duplicates_collapsed: int = 0

    @property
    def unlabeled_examples(self) -> int:
        return self.examples - self.labeled_examples

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())


@dataclass
class ValidationReport:
    """What validation found: counts, dataset kind, truncation and warnings."""

    dataset_uri: str
    evaluation_data_uri: str
    student_model_reference: str
    max_input_tokens: int
    max_output_tokens: int
    train: SplitSummary
    evaluation: SplitSummary | None
    task_type: TaskType
    warnings: list[str] = field(default_factory=list)
    # The passes over the training examples the tuning settings make; None when they were not given.
    training: TrainingAmount | None = None
    # Whether a logged training row's answer became its output_text (else the teacher answers afresh).
    use_logged_answers: bool = True

    @property
    def logged(self) -> bool:
        """Whether the files hold logged conversations (else contract rows)."""
        return self.train.data_format != CONTRACT

    @property
    def kind(self) -> str:
        """`labeled` (every training row has output_text), `unlabeled` (none has) or `mixed`."""
        if self.train.labeled_examples == self.train.examples:
            return "labeled"
        if self.train.labeled_examples == 0:
            return "unlabeled"
        return "mixed"

    def metrics(self) -> dict[str, float]:
        """Scalar metrics for a KFP Metrics artifact; evaluation counts are 0 without an evaluation set."""
        values: dict[str, float] = {"warnings": float(len(self.warnings))}
        if self.training:
            values["training_passes"] = self.training.passes
        for prefix, split in (("train", self.train), ("evaluation", self.evaluation)):
            values[f"{prefix}_examples"] = float(split.examples if split else 0)
            values[f"{prefix}_labeled_examples"] = float(split.labeled_examples if split else 0)
            values[f"{prefix}_unlabeled_examples"] = float(split.unlabeled_examples if split else 0)
            values[f"{prefix}_rows_read"] = float(split.rows_read if split else 0)
            values[f"{prefix}_rows_skipped"] = float(split.rows_skipped if split else 0)
            values[f"{prefix}_duplicates_collapsed"] = float(split.duplicates_collapsed if split else 0)
            for reason, count in (split.skipped.items() if split else ()):
                values[f"{prefix}_rows_skipped_{SKIPPED_METRIC_NAMES[reason]}"] = float(count)
            for name in ("input_text", "output_text"):
                truncation = getattr(split, f"{name}_truncation") if split else FieldTruncation()
                values[f"{prefix}_{name}_truncated_rows"] = float(truncation.rows)
                values[f"{prefix}_{name}_truncated_tokens"] = float(truncation.tokens)
        return values

    def to_markdown(self) -> str:
        """A human-readable report for a KFP Markdown artifact."""
        lines = [
            "# Dataset validation",
            "",
            f"- Training data: `{self.dataset_uri}`",
            f"- Evaluation data: `{self.evaluation_data_uri}`" if self.evaluation else "- Evaluation data: none",
            f"- Student tokenizer: `{self.student_model_reference}`",
            "- Format: " + ", ".join(
                f"{name} **{split.data_format}** ({FORMAT_DESCRIPTIONS[split.data_format]})"
                for name, split in (("training", self.train), ("evaluation", self.evaluation)) if split
            ),
            *(self._logged_lines() if self.logged else []),
            f"- Kind: **{self.kind}**",
            f"- Task type: **{self.task_type.name}** ({self.task_type.how_chosen})",
            *([f"- Training: {self.training.statement}"] if self.training else []),
            "",
            "| | training | evaluation |",
            "|---|---:|---:|",
        ]

        def row(label: str, value) -> str:
            evaluation = value(self.evaluation) if self.evaluation else "-"
            return f"| {label} | {value(self.train)} | {evaluation} |"

        if self.logged:
            lines.append(row("rows read", lambda s: s.rows_read))
        lines.append(row("examples", lambda s: s.examples))
        if self.logged:
            reasons = {*self.train.skipped, *(self.evaluation.skipped if self.evaluation else ())}
            lines += [
                row(f"skipped: {reason}", lambda s, reason=reason: s.skipped.get(reason, 0))
                for reason in SKIPPED_METRIC_NAMES if reason in reasons
            ]
            lines.append(row("duplicate prompts collapsed to the first", lambda s: s.duplicates_collapsed))
        lines += [
            row("labeled (output_text)", lambda s: s.labeled_examples),
            row("unlabeled", lambda s: s.unlabeled_examples),
            row("with a precomputed rationale", lambda s: s.rationale_examples),
            row("longest input_text (tokens)", lambda s: s.max_input_tokens_seen),
            row("longest output_text (tokens)", lambda s: s.max_output_tokens_seen),
            row(f"input_text truncated to {self.max_input_tokens:,} tokens: rows", lambda s: s.input_text_truncation.rows),
            row("input_text tokens dropped", lambda s: s.input_text_truncation.tokens),
            row(
                f"output_text truncated to {self.max_output_tokens:,} tokens: rows",
                lambda s: s.output_text_truncation.rows,
            ),
            row("output_text tokens dropped", lambda s: s.output_text_truncation.tokens),
            "",
            "## Warnings",
            "",
        ]
        lines += [f"- {warning}" for warning in self.warnings] or ["None."]
        return "\n".join(lines) + "\n"

    def _logged_lines(self) -> list[str]:
        answers = (
            "kept: each conversation's final answer is its output_text, a label the teacher explains"
            if self.use_logged_answers else "not used; the teacher answers every training prompt afresh"
        )
        if self.evaluation:
            answers += "; the evaluation rows are scored against theirs"
        return [
            "- Conversations: each rendered into input_text (system prompt and turns, in the order logged); a prompt "
            "logged again exactly is kept once, the first time",
            f"- Logged answers: {answers}",
        ]


@dataclass
class _Row:
    line: int
    input_text: str
    output_text: str | None
    rationale: str | None


def _row_problem(row: dict, evaluation: bool) -> tuple[str, str] | None:
    """Returns (field, message) for the first thing wrong with a row, or None when it is valid."""
    for name in row:
        if name not in ALLOWED_FIELDS:
            message = f"unknown field; allowed fields are {', '.join(ALLOWED_FIELDS)}"
            close = difflib.get_close_matches(name, ALLOWED_FIELDS, n=1, cutoff=0.5)
            return name, message + (f" (did you mean '{close[0]}'?)" if close else "")
    if "input_text" not in row:
        return "input_text", "missing; every example needs input_text (the prompt)"
    for name in ALLOWED_FIELDS:
        value = row.get(name)
        if name == "input_text" or value is not None:
            if not isinstance(value, str):
                allowed = "a string" if name == "input_text" else "a string or null"
                return name, f"must be {allowed}, got {_json_type(value)}"
            if not value:
                return name, "must not be empty" + ("" if name == "input_text" else "; use null or leave it out")
            if not value.strip():
                return name, "must not be blank (only whitespace)"
    if evaluation and row.get("output_text") is None:
        state = "missing" if "output_text" not in row else "null"
        return "output_text", f"{state}; every evaluation example needs output_text (it is scored)"
    if row.get("rationale") is not None and row.get("output_text") is None:
        return "rationale", "given without output_text; a precomputed rationale explains a given answer"
    return None


@dataclass
class _FileRows:
    """The rows taken from one file, and the rows left out of it."""

    data_format: str = CONTRACT
    rows: list[_Row] = field(default_factory=list)
    rows_read: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    duplicates_collapsed: int = 0

    def left_out(self) -> str:
        """What was not taken: `12 rows read: 2 tool calls or tool results, 1 duplicate prompts collapsed`."""
        reasons = [_by_reason(self.skipped)] if self.skipped else []
        if self.duplicates_collapsed:
            reasons.append(f"{self.duplicates_collapsed} duplicate prompts collapsed")
        return f"{self.rows_read} rows read: " + ", ".join(reasons)


def _format_problem(row_format: str | None, file_format: str, first_line: int) -> str | None:
    """Why a row cannot be in this file: one file holds one format (a contract file's other rows are checked
    against the contract, so that their errors name a field)."""
    if row_format == file_format or (row_format is None and file_format == CONTRACT):
        return None
    found = _format_named(row_format) if row_format else f"none of the formats read ({', '.join(FORMAT_DESCRIPTIONS)})"
    return (
        f"a row in {found} in a file of {file_format} rows ({FORMAT_DESCRIPTIONS[file_format]}), the format of its "
        f"first row (line {first_line}); a file holds one format"
    )


def _logged_texts(row: dict, data_format: str, evaluation: bool, use_logged_answers: bool) -> tuple[str, str | None]:
    """The input_text and output_text of a logged row.

    Raises:
        ConversationSkipped: The row is not an example (its conversation's reason, or one of BLANK_PROMPT,
            BLANK_ANSWER and NO_LOGGED_ANSWER).
        ConversationError: The row's structure is not its format's.
    """
    conversation = parse_logged_row(row, data_format)
    answer = conversation.answer if evaluation or use_logged_answers else None  # evaluation rows are scored on it
    if not conversation.input_text.strip():
        raise ConversationSkipped(BLANK_PROMPT)
    if answer is not None and not answer.strip():
        raise ConversationSkipped(BLANK_ANSWER)
    if evaluation and answer is None:
        raise ConversationSkipped(NO_LOGGED_ANSWER)
    return conversation.input_text, answer


def _read_rows(uri: str, max_examples: int, evaluation: bool, use_logged_answers: bool = True) -> _FileRows:
    """Reads and checks every row of one file; raises on the first error, counting the lines with errors after it."""
    read = _FileRows()
    first_line = 0
    prompts_taken: set[str] = set()
    first_problem: tuple[int, str | None, str] | None = None  # line, field, message
    more_error_lines = 0
    stopped_early = False
    lines = read_jsonl(uri)
    while True:
        try:
            line, row = next(lines)
        except StopIteration:
            break
        except DatasetError:
            if first_problem is None:
                raise
            # read_jsonl stops at a line it cannot parse, so later lines go uncounted.
            more_error_lines += 1
            stopped_early = True
            break
        row_format = detect_format(row)
        if not read.rows_read:  # the first row decides the file's format
            read.data_format, first_line = row_format or CONTRACT, line
        read.rows_read += 1
        problem: tuple[str | None, str] | None = None
        message = _format_problem(row_format, read.data_format, first_line)
        if message:
            problem = (None, message)
        elif read.data_format == CONTRACT:
            problem = _row_problem(row, evaluation)
            texts = (row.get("input_text"), row.get("output_text"), row.get("rationale"))
        else:
            try:
                texts = (*_logged_texts(row, read.data_format, evaluation, use_logged_answers), None)
            except ConversationSkipped as skipped:
                read.skipped[skipped.reason] += 1
                continue
            except ConversationError as error:
                problem = (error.field, error.message)
            else:
                if texts[0] in prompts_taken:
                    read.duplicates_collapsed += 1
                    continue
                prompts_taken.add(texts[0])
        if problem and first_problem is None:
            first_problem = (line, *problem)
        elif problem:
            more_error_lines += 1
        elif first_problem is None:
            if len(read.rows) == max_examples:
                raise DatasetError(
                    uri, f"more than {max_examples:,} examples (the limit); this is example {max_examples + 1:,}", line
                )
            read.rows.append(_Row(line, *texts))
    if first_problem is not None:
        line, field_name, message = first_problem
        if more_error_lines:
            count = f"at least {more_error_lines}" if stopped_early else str(more_error_lines)
            plural = "line has" if more_error_lines == 1 else "lines have"
            message += f" ({count} more {plural} errors)"
        raise DatasetError(uri, message, line, field_name)
    return read


def _truncate(texts: list[str], tokenizer, max_tokens: int) -> tuple[list[str], FieldTruncation, int]:
    """Cuts each text to `max_tokens` tokens; returns the texts, what was cut, and the longest token count."""
    truncation = FieldTruncation()
    longest = 0
    result: list[str] = []
    for start in range(0, len(texts), TOKENIZATION_BATCH_SIZE):
        batch = texts[start : start + TOKENIZATION_BATCH_SIZE]
        encoded = tokenizer(batch, add_special_tokens=False)["input_ids"]
        for text, token_ids in zip(batch, encoded):
            longest = max(longest, len(token_ids))
            if len(token_ids) <= max_tokens:
                result.append(text)  # untouched text is kept exactly as given
                continue
            truncation.rows += 1
            truncation.tokens += len(token_ids) - max_tokens
            kept = tokenizer.decode(token_ids[:max_tokens], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            # A cut inside a multi-byte character decodes to U+FFFD; drop that half character.
            while kept.endswith("\ufffd") and not text.startswith(kept):
                kept = kept[:-1]
            result.append(kept)
    return result, truncation, longest


def _normalize(read: _FileRows, tokenizer, max_input_tokens: int, max_output_tokens: int):
    """Truncates a split's texts; returns the normalized rows and their summary."""
    rows = read.rows
    inputs, input_truncation, longest_input = _truncate([r.input_text for r in rows], tokenizer, max_input_tokens)
    labeled = [i for i, r in enumerate(rows) if r.output_text is not None]
    outputs, output_truncation, longest_output = _truncate(
        [rows[i].output_text for i in labeled], tokenizer, max_output_tokens
    )
    output_by_index = dict(zip(labeled, outputs))
    normalized = []
    for index, (row, input_text) in enumerate(zip(rows, inputs)):
        record = {"input_text": input_text, "output_text": output_by_index.get(index)}
        if row.rationale is not None:
            record["rationale"] = row.rationale
        normalized.append(record)
    summary = SplitSummary(
        examples=len(rows),
        labeled_examples=len(labeled),
        rationale_examples=sum(r.rationale is not None for r in rows),
        max_input_tokens_seen=longest_input,
        max_output_tokens_seen=longest_output,
        input_text_truncation=input_truncation,
        output_text_truncation=output_truncation,
        data_format=read.data_format,
        rows_read=read.rows_read,
        skipped=dict(read.skipped),
        duplicates_collapsed=read.duplicates_collapsed,
    )
    return normalized, summary


def _line_list(lines: list[int]) -> str:
    shown = ", ".join(str(line) for line in lines[:EXAMPLE_LINES_SHOWN])
    return shown + (", ..." if len(lines) > EXAMPLE_LINES_SHOWN else "")


def _duplicate_warning(rows: list[_Row], uri: str) -> str | None:
    first_line: dict[str, int] = {}
    repeated_lines = []
    for row in rows:
        if row.input_text in first_line:
            repeated_lines.append(row.line)
        else:
            first_line[row.input_text] = row.line
    if not repeated_lines:
        return None
    return (
        f"{uri}: {len(repeated_lines)} examples repeat an earlier example's input_text exactly "
        f"(lines {_line_list(repeated_lines)})"
    )


def _warnings(
    train: list[_Row], evaluation: list[_Row], report: ValidationReport
) -> list[str]:
    warnings = []
    labeled, total = report.train.labeled_examples, report.train.examples
    if 0 < labeled < RECOMMENDED_MIN_LABELED:
        warnings.append(
            f"only {labeled} labeled training examples; hundreds are recommended for a labeled dataset"
        )
    if labeled < total <= RECOMMENDED_MIN_FOR_TEACHER_LABELING:
        warnings.append(
            f"{total - labeled} of {total} training examples are unlabeled; more than "
            f"{RECOMMENDED_MIN_FOR_TEACHER_LABELING:,} examples are recommended when the teacher labels"
        )
    for split, uri, use in ((report.train, report.dataset_uri, "learns only from"),
                            (report.evaluation, report.evaluation_data_uri, "is scored only on")):
        if split and split.rows_skipped and split.rows_skipped >= SKIPPED_SHARE_WARNED * split.rows_read:
            warnings.append(
                f"{uri}: {split.rows_skipped} of {split.rows_read} logged rows were skipped "
                f"({_by_reason(split.skipped)}); the student "
                f"{use} the rest: check that they are still like the traffic it will answer"
            )
    for rows, uri in ((train, report.dataset_uri), (evaluation, report.evaluation_data_uri)):
        duplicates = _duplicate_warning(rows, uri)
        if duplicates:
            warnings.append(duplicates)
    training_inputs = {row.input_text for row in train}
    leaked = [row.line for row in evaluation if row.input_text in training_inputs]
    if leaked:
        warnings.append(
            f"{report.evaluation_data_uri}: {len(leaked)} evaluation examples have an input_text that is also in "
            f"the training data, which inflates evaluation scores (lines {_line_list(leaked)})"
        )
    for name, split in (("training", report.train), ("evaluation", report.evaluation)):
        for field_name, limit in (("input_text", report.max_input_tokens), ("output_text", report.max_output_tokens)):
            truncation = getattr(split, f"{field_name}_truncation") if split else None
            if truncation and truncation.rows:
                warnings.append(
                    f"{truncation.rows} {name} {field_name} values were truncated to {limit:,} tokens "
                    f"({truncation.tokens:,} tokens dropped)"
                )
    return warnings


def _write_outputs(outputs: list[tuple[Path, Any]]) -> None:
    """Writes every output, or none: on failure the files already written are removed."""
    written: list[Path] = []
    try:
        for path, content in outputs:
            if isinstance(content, str):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
            else:
                write_jsonl(path, content)
            written.append(path)
    except BaseException:
        for path in [*written, outputs[len(written)][0]]:
            if path.is_file():
                path.unlink()
        raise


def validate_dataset(
    dataset_uri: str,
    evaluation_data_uri: str,
    student_model_reference: str,
    train_path: str | os.PathLike,
    evaluation_path: str | os.PathLike,
    report_path: str | os.PathLike,
    *,
    max_input_tokens: int = MAX_INPUT_TOKENS,
    max_output_tokens: int = MAX_OUTPUT_TOKENS,
    max_train_examples: int = MAX_TRAIN_EXAMPLES,
    task_type: str = AUTO,
    train_steps: int | None = None,
    batch_size: int | None = None,
    enable_checkpoint_selection: bool = False,
    use_logged_answers: bool = True,
) -> ValidationReport:
    """Validates the training (and evaluation) data and writes normalized copies and a Markdown report.

    Args:
        dataset_uri: The training JSON Lines file: a local path or any fsspec URI (`gs://`, `https://`, ...).
        evaluation_data_uri: The evaluation JSON Lines file, or "" for none.
        student_model_reference: The student model whose tokenizer counts and truncates tokens.
        train_path: Where the normalized training rows are written.
        evaluation_path: Where the normalized evaluation rows are written (an empty file without evaluation data).
        report_path: Where the Markdown report is written.
        max_input_tokens: Token limit for `input_text`; longer texts are truncated.
        max_output_tokens: Token limit for `output_text`; longer texts are truncated.
        max_train_examples: The most training examples accepted.
        task_type: One of `tasks.TASK_TYPES`, or `auto` to infer it from both datasets' inputs and labels;
            decided once here so that the teacher steps and the evaluation use the same one.
        train_steps: The tuning steps; with `batch_size`, the report states the passes over the training
            examples they make and warns of settings likely to train badly (`training_amount`). None: not stated.
        batch_size: The examples per tuning step.
        enable_checkpoint_selection: Whether tuning keeps its best evaluated checkpoint instead of the last.
        use_logged_answers: For training data of logged conversations: whether a conversation's final answer
            becomes its `output_text`, a label the teacher explains; False: every training row is unlabeled and
            the teacher answers it afresh. Logged evaluation rows are always scored against their logged answers,
            and contract rows keep their `output_text` either way.

    Returns:
        The validation report (also written to `report_path`).

    Raises:
        DatasetError: A file is missing, unreadable or breaks a rule; the message names file, line and field.
            Nothing is written then.
        ValueError: `train_steps` or `batch_size` is not a positive whole number. Nothing is written then.
    """
    train = _read_rows(dataset_uri, max_train_examples, evaluation=False, use_logged_answers=use_logged_answers)
    if not train.rows and train.rows_read:
        message = f"has no examples: every one of its {train.rows_read} rows was skipped ({_by_reason(train.skipped)})"
        raise DatasetError(dataset_uri, message)
    if not train.rows:
        raise DatasetError(dataset_uri, "has no examples; a dataset needs at least one line with input_text")
    evaluation = _FileRows()
    if evaluation_data_uri:
        evaluation = _read_rows(evaluation_data_uri, MAX_EVALUATION_EXAMPLES, evaluation=True)
        if evaluation.rows_read and evaluation.data_format != train.data_format:
            raise DatasetError(
                evaluation_data_uri,
                f"is in {_format_named(evaluation.data_format)}, but the training data "
                f"{redact_uri(dataset_uri)} is in {_format_named(train.data_format)}; give both in one "
                "format, so that the student is evaluated on inputs rendered as it was trained on",
            )
        if len(evaluation.rows) < MIN_EVALUATION_EXAMPLES:
            left_out = f" ({evaluation.left_out()})" if len(evaluation.rows) < evaluation.rows_read else ""
            raise DatasetError(
                evaluation_data_uri,
                f"has {len(evaluation.rows)} examples; an evaluation set needs "
                f"{MIN_EVALUATION_EXAMPLES} to {MAX_EVALUATION_EXAMPLES}{left_out}",
            )
    train_rows, evaluation_rows = train.rows, evaluation.rows

    all_rows = train_rows + evaluation_rows
    resolved_task_type = resolve_task_type(
        task_type, [row.input_text for row in all_rows], [row.output_text for row in all_rows]
    )
    tokenizer = load_tokenizer(student_model_reference)
    train_normalized, train_summary = _normalize(train, tokenizer, max_input_tokens, max_output_tokens)
    evaluation_normalized, evaluation_summary = [], None
    if evaluation_data_uri:
        evaluation_normalized, evaluation_summary = _normalize(
            evaluation, tokenizer, max_input_tokens, max_output_tokens
        )
    report = ValidationReport(  # its URIs go into the report and its warnings: no credentials
        dataset_uri=redact_uri(dataset_uri),
        evaluation_data_uri=redact_uri(evaluation_data_uri),
        student_model_reference=redact_uri(student_model_reference),
        max_input_tokens=max_input_tokens,
        max_output_tokens=max_output_tokens,
        train=train_summary,
        evaluation=evaluation_summary,
        task_type=resolved_task_type,
        use_logged_answers=use_logged_answers,
    )
    report.warnings = _warnings(train_rows, evaluation_rows, report)
    if train_steps is not None and batch_size is not None:
        report.training = training_amount(
            train_summary.examples, resolved_task_type.name, train_steps, batch_size, enable_checkpoint_selection,
            evaluation_data=bool(evaluation_rows),
        )
        report.warnings += report.training.warnings
    for warning in report.warnings:
        logger.warning(warning)

    _write_outputs(
        [
            (Path(train_path), train_normalized),
            (Path(evaluation_path), evaluation_normalized),
            (Path(report_path), report.to_markdown()),
        ]
    )
    logger.info(
        "validated %s (%s): %d training examples (%s), %d evaluation examples",
        report.dataset_uri, train_summary.data_format, train_summary.examples, report.kind,
        evaluation_summary.examples if evaluation_summary else 0,
    )
    return report
