"""Evaluation: the teacher, the untuned student and the distilled student, scored the same way.

Both students answer every evaluation row with the label task, greedily and one request at a time, so each
latency is a real per-request latency. The teacher is not run again: its answers and latencies come from the
predictions generate-rationales wrote on the evaluation set. Every answer is scored against the row's gold
`output_text` by `answers_match` (normalised text, or equal value for numeric and arithmetic answers).
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

from kfp_distill._implementation.answers import answers_match, extract_answer
from kfp_distill._implementation.jsonl import DatasetError, read_jsonl
from kfp_distill._implementation.student import StudentPredictor

WORST_EXAMPLES_SHOWN = 10
_CELL_CHARS = 160


@dataclass
class EvaluationRow:
    """One labeled evaluation example."""

    input_text: str
    gold: str


@dataclass
class TeacherAnswer:
    """The teacher's answer to one evaluation input, as generate-rationales recorded it."""

    label: str | None
    latency_s: float


@dataclass
class ExampleComparison:
    """What each model answered for one evaluation example; teacher_answer is None when it did not answer."""

    input_text: str
    gold: str
    teacher_answer: str | None
    untuned_answer: str
    distilled_answer: str
    teacher_correct: bool
    untuned_correct: bool
    distilled_correct: bool


@dataclass
class EvaluationResult:
    """Accuracies and mean per-example latencies of the three models, with every example compared."""

    teacher_accuracy: float
    untuned_student_accuracy: float
    distilled_student_accuracy: float
    teacher_latency_s: float | None
    untuned_student_latency_s: float
    distilled_student_latency_s: float
    teacher_unanswered: int
    student_model_reference: str
    comparisons: list[ExampleComparison] = field(default_factory=list)

    @property
    def examples(self) -> int:
        return len(self.comparisons)

    @property
    def speedup(self) -> float | None:
        """How many times faster the distilled student answers than the teacher did."""
        if self.teacher_latency_s is None or self.distilled_student_latency_s <= 0:
            return None
        return self.teacher_latency_s / self.distilled_student_latency_s

    def metrics(self) -> dict[str, float]:
        """The scalar metrics; the teacher's latency and the speedup are left out when the teacher answered none."""
        values = {
            "teacher_accuracy": self.teacher_accuracy,
            "untuned_student_accuracy": self.untuned_student_accuracy,
            "distilled_student_accuracy": self.distilled_student_accuracy,
            "teacher_latency_s": self.teacher_latency_s,
            "untuned_student_latency_s": self.untuned_student_latency_s,
            "distilled_student_latency_s": self.distilled_student_latency_s,
            "examples": float(self.examples),
            "speedup": self.speedup,
        }
        return {name: float(value) for name, value in values.items() if value is not None}

    def worst_examples(self, limit: int = WORST_EXAMPLES_SHOWN) -> list[ExampleComparison]:
        """Examples the distilled student got wrong, those the other models got right first."""
        wrong = [c for c in self.comparisons if not c.distilled_correct]
        return sorted(wrong, key=lambda c: -(int(c.teacher_correct) + int(c.untuned_correct)))[:limit]

    def to_markdown(self) -> str:
        """The report: a results table, then the worst examples side by side."""
        teacher_latency = "n/a" if self.teacher_latency_s is None else f"{self.teacher_latency_s:.3f}"
        lines = [
            "# Evaluation: teacher vs untuned student vs distilled student",
            "",
            f"{self.examples} evaluation examples, scored by exact match after normalisation "
            "(by value for numeric and arithmetic answers).",
            "",
            "| Model | Accuracy | Mean latency (s) |",
            "|---|---|---|",
            f"| Teacher | {self.teacher_accuracy:.1%} | {teacher_latency} |",
            f"| Untuned student (`{_cell(self.student_model_reference)}`) | {self.untuned_student_accuracy:.1%} "
            f"| {self.untuned_student_latency_s:.3f} |",
            f"| Distilled student | {self.distilled_student_accuracy:.1%} | {self.distilled_student_latency_s:.3f} |",
            "",
        ]
        if self.speedup is not None:
            lines += [f"The distilled student answers {self.speedup:.1f}x faster than the teacher did.", ""]
        if self.teacher_unanswered:
            lines += [
                f"The teacher's predictions miss {self.teacher_unanswered} of the {self.examples} evaluation "
                "examples; they count as wrong for the teacher.",
                "",
            ]
        worst = self.worst_examples()
        lines.append("## Worst examples")
        lines.append("")
        if not worst:
            lines.append("The distilled student answered every example correctly.")
            return "\n".join(lines) + "\n"
        lines += [
            f"{len(worst)} of the examples the distilled student got wrong "
            "(✓ marks a correct answer, a dash a missing one).",
            "",
            "| Input | Gold | Teacher | Distilled | Untuned |",
            "|---|---|---|---|---|",
        ]
        for c in worst:
            teacher = "—" if c.teacher_answer is None else _marked(c.teacher_answer, c.teacher_correct)
            lines.append(
                f"| {_cell(c.input_text)} | {_cell(c.gold)} | {teacher} | "
                f"{_marked(c.distilled_answer, c.distilled_correct)} | {_marked(c.untuned_answer, c.untuned_correct)} |"
            )
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text made safe for one Markdown table cell, shortened."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"


def _marked(answer: str, correct: bool) -> str:
    shown = _cell(answer) if answer else "*(empty)*"
    return f"{shown} ✓" if correct else shown


def load_evaluation_rows(evaluation_path: str) -> list[EvaluationRow]:
    """Reads the labeled evaluation set.

    Raises:
        DatasetError: A row has no `input_text`, or no gold `output_text` to score against.
    """
    rows = []
    for line, row in read_jsonl(evaluation_path):
        input_text, gold = row.get("input_text"), row.get("output_text")
        if not isinstance(input_text, str):
            raise DatasetError(evaluation_path, "expected a string", line, "input_text")
        if not isinstance(gold, str) or not gold.strip():
            raise DatasetError(evaluation_path, "evaluation examples need a gold label to be scored", line, "output_text")
        rows.append(EvaluationRow(input_text, gold))
    if not rows:
        raise DatasetError(evaluation_path, "the evaluation set is empty")
    return rows


def load_teacher_answers(teacher_predictions_path: str) -> dict[str, TeacherAnswer]:
    """Reads generate-rationales' rows on the evaluation set, keyed by input_text.

    Raises:
        DatasetError: A row lacks a string `input_text`, a string or null `teacher_label`, or a number `latency_s`.
    """
    answers = {}
    for line, row in read_jsonl(teacher_predictions_path):
        input_text, label, latency = row.get("input_text"), row.get("teacher_label"), row.get("latency_s")
        if not isinstance(input_text, str):
            raise DatasetError(teacher_predictions_path, "expected a string", line, "input_text")
        if label is not None and not isinstance(label, str):
            raise DatasetError(teacher_predictions_path, "expected a string or null", line, "teacher_label")
        if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not math.isfinite(latency):
            raise DatasetError(teacher_predictions_path, "expected a number of seconds", line, "latency_s")
        answers[input_text] = TeacherAnswer(label, float(latency))
    return answers


def _student_answers(model_reference: str, inputs: list[str], max_new_tokens: int) -> tuple[list[str], float]:
    """The answers a student gives to the label task, and its mean latency per example."""
    predictor = StudentPredictor(model_reference, max_new_tokens=max_new_tokens)
    predictions = predictor.predict(inputs, task="label")
    # Only one model in memory at a time: free this one before the next is loaded.
    del predictor
    gc.collect()
    return [extract_answer(p.text) for p in predictions], fmean(p.latency_s for p in predictions)


def compare(
    rows: list[EvaluationRow],
    teacher_answers: dict[str, TeacherAnswer],
    distilled_answers: list[str],
    untuned_answers: list[str],
    student_model_reference: str,
    distilled_latency_s: float,
    untuned_latency_s: float,
) -> EvaluationResult:
    """Scores every model's answers against the gold labels; a row the teacher did not answer is wrong for it."""
    comparisons = []
    answered_latencies = []
    for row, distilled, untuned in zip(rows, distilled_answers, untuned_answers, strict=True):
        teacher = teacher_answers.get(row.input_text)
        if teacher is not None:
            answered_latencies.append(teacher.latency_s)
        teacher_label = None if teacher is None else (teacher.label or "")
        comparisons.append(
            ExampleComparison(
                input_text=row.input_text,
                gold=row.gold,
                teacher_answer=teacher_label,
                untuned_answer=untuned,
                distilled_answer=distilled,
                teacher_correct=teacher_label is not None and answers_match(teacher_label, row.gold),
                untuned_correct=answers_match(untuned, row.gold),
                distilled_correct=answers_match(distilled, row.gold),
            )
        )
    examples = len(comparisons)
    return EvaluationResult(
        teacher_accuracy=sum(c.teacher_correct for c in comparisons) / examples,
        untuned_student_accuracy=sum(c.untuned_correct for c in comparisons) / examples,
        distilled_student_accuracy=sum(c.distilled_correct for c in comparisons) / examples,
        teacher_latency_s=fmean(answered_latencies) if answered_latencies else None,
        untuned_student_latency_s=untuned_latency_s,
        distilled_student_latency_s=distilled_latency_s,
        teacher_unanswered=examples - len(answered_latencies),
        student_model_reference=student_model_reference,
        comparisons=comparisons,
    )


def evaluate_student(
    model_dir: str,
    evaluation_path: str,
    teacher_predictions_path: str,
    student_model_reference: str,
    report_path: str,
    max_new_tokens: int = 64,
) -> EvaluationResult:
    """Compares the distilled student with the untuned student and the teacher on the evaluation set.

    Args:
        model_dir: The tuned student, a Hugging Face model directory (tune-student's output).
        evaluation_path: The labeled evaluation set (JSON Lines with `input_text` and `output_text`).
        teacher_predictions_path: generate-rationales' output on the evaluation set, run without gold labels;
            rows are joined to the evaluation set by `input_text`.
        student_model_reference: The student before tuning (any model reference `models.py` resolves).
        report_path: Where the Markdown report is written.
        max_new_tokens: The most tokens a student may generate for one answer.

    Returns:
        The accuracies, mean latencies and per-example comparisons; `metrics()` gives the scalar metrics.

    Raises:
        DatasetError: An evaluation row has no gold label, or a teacher prediction row is malformed.
    """
    # Read both files before loading any model, so bad input fails fast.
    rows = load_evaluation_rows(evaluation_path)
    teacher_answers = load_teacher_answers(teacher_predictions_path)
    inputs = [row.input_text for row in rows]
    distilled_answers, distilled_latency = _student_answers(model_dir, inputs, max_new_tokens)
    untuned_answers, untuned_latency = _student_answers(student_model_reference, inputs, max_new_tokens)
    result = compare(
        rows,
        teacher_answers,
        distilled_answers,
        untuned_answers,
        student_model_reference,
        distilled_latency_s=distilled_latency,
        untuned_latency_s=untuned_latency,
    )
    report = Path(report_path)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(result.to_markdown(), encoding="utf-8")
    return result
