"""Evaluation: the teacher, the untuned student and the distilled student, scored the same way.

Both students answer every evaluation row with the label task, greedily and one request at a time, so each
latency is a real per-request latency; an extractive-QA answer is decoded as a span of its context, as
`predict` and `serve` decode it. The teacher is not run again: its answers and latencies come from
the predictions generate-rationales wrote on the evaluation set. Every answer is scored against the row's
gold `output_text` with the metrics of the task type (`kfp_distill/_implementation/task_metrics.py`, which tuning
uses too), given or inferred from the rows; every score gets a 95% bootstrap interval over the rows, and the
deploy gate (`kfp_distill/_implementation/deploy_gate.py`) judges the distilled student against the teacher.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass
from pathlib import Path

from kfp_distill._implementation.deploy_gate import check_min_share, judge
from kfp_distill._implementation.jsonl import DatasetError, read_jsonl
from kfp_distill._implementation.redaction import redact_uri
from kfp_distill._implementation.student import StudentPredictor, label_answers
from kfp_distill._implementation.task_metrics import MAIN_METRIC, METRIC_TITLES, score_answers
from kfp_distill._implementation.tasks import TaskType, infer_task_type, resolve_task_type

from .html_report import render_html
from .results import EvaluationResult, ExampleComparison, ModelResult
from .training_curves import read_scalars


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
    answered = label_answers(predictor, inputs, task_type)
    # Only one model in memory at a time: free this one before the next is loaded.
    del predictor
    gc.collect()
    return [label for _, label in answered], [prediction.latency_s for prediction, _ in answered]


def compare(
    rows: list[EvaluationRow],
    teacher_answers: dict[str, TeacherAnswer],
    distilled_answers: list[str],
    untuned_answers: list[str],
    student_model_reference: str,
    distilled_latencies_s: list[float],
    untuned_latencies_s: list[float],
    task: TaskType | None = None,
    min_share_of_teacher: float = 0.0,
    gate_on_lower_bound: bool = False,
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
        min_share_of_teacher: The deploy gate: the share of the teacher's main-metric score the distilled
            student must reach; 0: off.
        gate_on_lower_bound: Hold the gate to the 95% interval's lower bound (`deploy_gate.judge`).
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
        gate=judge(
            METRIC_TITLES[MAIN_METRIC[task.name]],
            distilled.scores.statistics[MAIN_METRIC[task.name]],
            teacher.scores.statistics[MAIN_METRIC[task.name]],
            len(rows),
            min_share_of_teacher,
            gate_on_lower_bound,
        ),
    )


def evaluate_student(
    model_dir: str,
    evaluation_path: str,
    teacher_predictions_path: str,
    student_model_reference: str,
    report_path: str,
    max_new_tokens: int = 64,
    task_type: str = "auto",
    task_type_reason: str = "",
    html_report_path: str | None = None,
    tensorboard_dir: str | None = None,
    trust_remote_code: bool = False,
    min_share_of_teacher: float = 0.0,
    gate_on_lower_bound: bool = False,
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
        task_type_reason: How `task_type` was chosen where it was settled before (validate-dataset's words);
            empty: the report says how it was chosen here.
        html_report_path: Where the HTML report (tables, plots, worst examples) is written; None: no HTML.
        tensorboard_dir: tune-student's TensorBoard logs, plotted as training curves in the HTML report.
        trust_remote_code: Run the student repository's own Python code, if it has some (off: refused).
        min_share_of_teacher: The deploy gate: the share of the teacher's main-metric score the distilled
            student must reach; 0: off.
        gate_on_lower_bound: Hold the gate to the 95% interval's lower bound (`deploy_gate.judge`).

    Returns:
        The scores, latencies, per-example comparisons and the gate's decision; `metrics()` gives the scalar
        metrics.

    Raises:
        DatasetError: An evaluation row has no gold label, or a teacher prediction row is malformed.
        ValueError: task_type is not a known task type, or min_share_of_teacher is negative.
    """
    # Read both files and settle the task type before loading any model, so bad input fails fast.
    check_min_share(min_share_of_teacher)
    rows = load_evaluation_rows(evaluation_path)
    teacher_answers = load_teacher_answers(teacher_predictions_path)
    inputs = [row.input_text for row in rows]
    task = resolve_task_type(task_type, inputs, [row.gold for row in rows])
    if task_type_reason:  # settled by validate-dataset, which says whether it was given or inferred
        task = TaskType.from_how_chosen(task.name, task_type_reason)
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
        min_share_of_teacher=min_share_of_teacher,
        gate_on_lower_bound=gate_on_lower_bound,
    )
    _write(report_path, result.to_markdown())
    if html_report_path:
        scalars = read_scalars(tensorboard_dir) if tensorboard_dir else {}
        _write(html_report_path, render_html(result, scalars, tensorboard_given=bool(tensorboard_dir)))
    return result


def _write(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
