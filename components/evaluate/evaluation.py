"""Evaluation: the teacher, the untuned student and the distilled student, scored the same way.

Both students answer every evaluation row with the label task, greedily and one request at a time, so each
latency is a real per-request latency. The teacher is not run again: its answers and latencies come from
the predictions generate-rationales wrote on the evaluation set. Every answer is scored against the row's
gold `output_text` with the metrics of the task type (`task_metrics.py`), given or inferred from the rows.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

from kfp_distill._implementation.answers import label_answer
from kfp_distill._implementation.jsonl import DatasetError, read_jsonl
from kfp_distill._implementation.redaction import redact_uri
from kfp_distill._implementation.student import StudentPredictor
from kfp_distill._implementation.tasks import TaskType, infer_task_type, resolve_task_type
from kfp_distill.components.evaluate.task_metrics import (
    METRIC_TITLES,
    METRICS_BY_TASK,
    TaskScores,
    confusion_matrix,
    score_answers,
)

WORST_EXAMPLES_SHOWN = 10
MODEL_TITLES = {"teacher": "Teacher", "untuned_student": "Untuned student", "distilled_student": "Distilled student"}
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
    """What each model answered for one evaluation example, and how it scored.

    Scores are the task's per-example score, from 0 to 1; teacher_answer is None when the teacher did not answer.
    """

    input_text: str
    gold: str
    teacher_answer: str | None
    untuned_answer: str
    distilled_answer: str
    teacher_correct: bool
    untuned_correct: bool
    distilled_correct: bool
    teacher_score: float
    untuned_score: float
    distilled_score: float


@dataclass
class ModelResult:
    """One model's scores on the task, and its latency on each example it answered."""

    scores: TaskScores
    latencies_s: list[float]

    @property
    def mean_latency_s(self) -> float | None:
        return fmean(self.latencies_s) if self.latencies_s else None

    @property
    def examples_per_s(self) -> float | None:
        """Examples answered per second, one request at a time."""
        total = sum(self.latencies_s)
        return len(self.latencies_s) / total if total > 0 else None


@dataclass
class EvaluationResult:
    """The three models' scores and latencies on the task, with every example compared."""

    task: TaskType
    teacher: ModelResult
    untuned_student: ModelResult
    distilled_student: ModelResult
    teacher_unanswered: int
    student_model_reference: str
    comparisons: list[ExampleComparison] = field(default_factory=list)

    @property
    def examples(self) -> int:
        return len(self.comparisons)

    @property
    def speedup(self) -> float | None:
        """How many times faster the distilled student answers than the teacher did."""
        teacher, distilled = self.teacher.mean_latency_s, self.distilled_student.mean_latency_s
        if teacher is None or not distilled:
            return None
        return teacher / distilled

    def speed_comparison(self) -> str | None:
        """The distilled student's speed against the teacher's, in words; None when the teacher was not timed."""
        if self.speedup is None:
            return None
        if self.speedup >= 1:
            return f"The distilled student answers {self.speedup:.1f}x faster than the teacher did."
        return f"The distilled student answers {1 / self.speedup:.1f}x slower than the teacher did."

    def models(self) -> dict[str, ModelResult]:
        """The three models by metric prefix: teacher, untuned_student, distilled_student."""
        return {
            "teacher": self.teacher,
            "untuned_student": self.untuned_student,
            "distilled_student": self.distilled_student,
        }

    def confusion_matrix(self) -> tuple[list[str], list[list[int]]] | None:
        """The distilled student's confusion matrix (categories, rows of counts) on a classification task."""
        if self.task.name != "classification":
            return None
        return confusion_matrix([c.distilled_answer for c in self.comparisons], [c.gold for c in self.comparisons])

    def metrics(self) -> dict[str, float]:
        """The scalar metrics, by name.

        Per model: `<model>_accuracy`, the task's metrics, `<model>_latency_s` (mean) and
        `<model>_examples_per_s`; then `examples` and `speedup`. The teacher's latency, throughput and the
        speedup are left out when the teacher answered none.
        """
        values: dict[str, float | None] = {}
        for prefix, model in self.models().items():
            values[f"{prefix}_accuracy"] = model.scores.accuracy
            values.update({f"{prefix}_{name}": value for name, value in model.scores.values.items()})
            values[f"{prefix}_latency_s"] = model.mean_latency_s
            values[f"{prefix}_examples_per_s"] = model.examples_per_s
        values["examples"] = float(self.examples)
        values["speedup"] = self.speedup
        return {name: float(value) for name, value in values.items() if value is not None}

    def worst_examples(self, limit: int = WORST_EXAMPLES_SHOWN) -> list[ExampleComparison]:
        """Examples where the distilled student scored below full marks, lowest score first.

        Among equal scores, those the other models did best on come first.
        """
        missed = [c for c in self.comparisons if c.distilled_score < 1.0]
        return sorted(missed, key=lambda c: (c.distilled_score, -(c.teacher_score + c.untuned_score)))[:limit]

    def to_markdown(self) -> str:
        """The report: the task type, a results table, then the worst examples side by side."""
        metric_names = METRICS_BY_TASK[self.task.name]
        titles = " | ".join(METRIC_TITLES[name] for name in metric_names)
        lines = [
            "# Evaluation: teacher vs untuned student vs distilled student",
            "",
            f"{self.examples} evaluation examples. Task type: **{self.task.name}** ({self.task.reason}).",
            "",
            f"| Model | {titles} | Mean latency (s) | Examples/s |",
            "|---|" + "---|" * (len(metric_names) + 2),
        ]
        for prefix, model in self.models().items():
            title = MODEL_TITLES[prefix]
            if prefix == "untuned_student":
                title += f" (`{_cell(self.student_model_reference)}`)"
            cells = [f"{model.scores.values[name]:.1%}" for name in metric_names]
            cells += [_number(model.mean_latency_s, ".3f"), _number(model.examples_per_s, ".2f")]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        lines.append("")
        speed = self.speed_comparison()
        if speed:
            lines += [speed, ""]
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
            f"{len(worst)} of the examples the distilled student did worst on "
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


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


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


def _student_answers(
    model_reference: str, inputs: list[str], max_new_tokens: int, task_type: str, trust_remote_code: bool
) -> tuple[list[str], list[float]]:
    """The answers a student gives to the label task, and its latency on each example."""
    predictor = StudentPredictor(model_reference, max_new_tokens=max_new_tokens, trust_remote_code=trust_remote_code)
    predictions = predictor.predict(inputs, task="label")
    # Only one model in memory at a time: free this one before the next is loaded.
    del predictor
    gc.collect()
    return [label_answer(p.text, task_type) for p in predictions], [p.latency_s for p in predictions]


def compare(
    rows: list[EvaluationRow],
    teacher_answers: dict[str, TeacherAnswer],
    distilled_answers: list[str],
    untuned_answers: list[str],
    student_model_reference: str,
    distilled_latencies_s: list[float],
    untuned_latencies_s: list[float],
    task: TaskType | None = None,
) -> EvaluationResult:
    """Scores every model's answers against the gold labels; a row the teacher did not answer is wrong for it.

    Args:
        rows: The labeled evaluation rows.
        teacher_answers: The teacher's answers, keyed by input_text.
        distilled_answers: The distilled student's answers, aligned with rows.
        untuned_answers: The untuned student's answers, aligned with rows.
        student_model_reference: The student before tuning (named in the report).
        distilled_latencies_s: The distilled student's latency on each row.
        untuned_latencies_s: The untuned student's latency on each row.
        task: The task type; None infers it from the rows.
    """
    if task is None:
        task = infer_task_type([row.input_text for row in rows], [row.gold for row in rows])
    golds = [row.gold for row in rows]
    teacher_rows = [teacher_answers.get(row.input_text) for row in rows]
    teacher_labels = [None if t is None else (t.label or "") for t in teacher_rows]
    teacher = ModelResult(score_answers(task.name, teacher_labels, golds), [t.latency_s for t in teacher_rows if t])
    untuned = ModelResult(score_answers(task.name, untuned_answers, golds), list(untuned_latencies_s))
    distilled = ModelResult(score_answers(task.name, distilled_answers, golds), list(distilled_latencies_s))
    comparisons = [
        ExampleComparison(
            input_text=row.input_text,
            gold=row.gold,
            teacher_answer=teacher_labels[i],
            untuned_answer=untuned_answer,
            distilled_answer=distilled_answer,
            teacher_correct=teacher.scores.correct[i],
            untuned_correct=untuned.scores.correct[i],
            distilled_correct=distilled.scores.correct[i],
            teacher_score=teacher.scores.example_scores[i],
            untuned_score=untuned.scores.example_scores[i],
            distilled_score=distilled.scores.example_scores[i],
        )
        for i, (row, distilled_answer, untuned_answer) in enumerate(
            zip(rows, distilled_answers, untuned_answers, strict=True)
        )
    ]
    return EvaluationResult(
        task=task,
        teacher=teacher,
        untuned_student=untuned,
        distilled_student=distilled,
        teacher_unanswered=sum(t is None for t in teacher_rows),
        student_model_reference=redact_uri(student_model_reference),  # the report is read by others
        comparisons=comparisons,
    )


def evaluate_student(
    model_dir: str,
    evaluation_path: str,
    teacher_predictions_path: str,
    student_model_reference: str,
    report_path: str,
    max_new_tokens: int = 64,
    task_type: str = "auto",
    html_report_path: str | None = None,
    tensorboard_dir: str | None = None,
    trust_remote_code: bool = False,
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
        task_type: `auto` (inferred from the evaluation rows) or one of `tasks.TASK_TYPES`.
        html_report_path: Where the HTML report (tables, plots, worst examples) is written; None: no HTML.
        tensorboard_dir: tune-student's TensorBoard logs, plotted as training curves in the HTML report.
        trust_remote_code: Run the student repository's own Python code, if it has some (off: refused).

    Returns:
        The scores, latencies and per-example comparisons; `metrics()` gives the scalar metrics.

    Raises:
        DatasetError: An evaluation row has no gold label, or a teacher prediction row is malformed.
        ValueError: task_type is not a known task type.
    """
    # Read both files and settle the task type before loading any model, so bad input fails fast.
    rows = load_evaluation_rows(evaluation_path)
    teacher_answers = load_teacher_answers(teacher_predictions_path)
    inputs = [row.input_text for row in rows]
    task = resolve_task_type(task_type, inputs, [row.gold for row in rows])
    distilled_answers, distilled_latencies = _student_answers(
        model_dir, inputs, max_new_tokens, task.name, trust_remote_code
    )
    untuned_answers, untuned_latencies = _student_answers(
        student_model_reference, inputs, max_new_tokens, task.name, trust_remote_code
    )
    result = compare(
        rows,
        teacher_answers,
        distilled_answers,
        untuned_answers,
        student_model_reference,
        distilled_latencies_s=distilled_latencies,
        untuned_latencies_s=untuned_latencies,
        task=task,
    )
    _write(report_path, result.to_markdown())
    if html_report_path:
        from kfp_distill.components.evaluate.html_report import render_html
        from kfp_distill.components.evaluate.training_curves import read_scalars

        scalars = read_scalars(tensorboard_dir) if tensorboard_dir else {}
        _write(html_report_path, render_html(result, scalars, tensorboard_given=bool(tensorboard_dir)))
    return result


def _write(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
