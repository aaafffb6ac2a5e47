import json
import re
import shutil

import pytest

from kfp_distill._implementation.jsonl import DatasetError, write_jsonl
from kfp_distill._implementation.student import Prediction, StudentPredictor
from kfp_distill._implementation.tasks import TaskType
from kfp_distill.components.evaluate.evaluation import (
    EvaluationRow,
    TeacherAnswer,
    compare,
    evaluate_student,
    load_evaluation_rows,
    load_teacher_answers,
)

MATH = TaskType("math", "given")
MODELS = ("teacher", "untuned_student", "distilled_student")
# Every score with its 95% interval beside it; the distilled student's accuracy less the teacher's too.
SCORES = {f"{model}_accuracy" for model in (*MODELS, "distilled_student_minus_teacher")}
MATH_METRIC_NAMES = (
    {f"{model}_{name}" for model in MODELS for name in ("latency_s", "examples_per_s")}
    | {f"{score}{suffix}" for score in SCORES for suffix in ("", "_ci_low", "_ci_high")}
    | {"examples", "speedup"}
)

EVALUATION_ROWS = [
    {"input_text": "Tom has 84 apples and splits them in 2 bags. How many per bag?", "output_text": "42"},
    {"input_text": "Ann reads 3 books of 5 pages. How many pages?", "output_text": "( 3 * 5 )"},
    {"input_text": "question: How many parishes are there in Louisiana?", "output_text": "64"},
    {"input_text": "A box holds 6 eggs. How many eggs in 2 boxes?", "output_text": "12"},
]


def _table_row(report: str, title: str) -> list[str]:
    """The cells of the results table's row of `title`, each score without its interval."""
    (line,) = [line for line in report.splitlines() if line.startswith(f"| {title} |")]
    return [re.sub(r" \[.*\]$", "", cell.strip()) for cell in line.strip("|").split("|")[1:]]


def teacher_row(input_text, gold, teacher_label, latency_s):
    return {
        "input_text": input_text,
        "output_text": gold,
        "gold_label": None,
        "teacher_label": teacher_label,
        "rationale": "",
        "agrees_with_gold": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "latency_s": latency_s,
    }


@pytest.fixture
def evaluation_files(tmp_path):
    evaluation_path = tmp_path / "eval.jsonl"
    write_jsonl(evaluation_path, EVALUATION_ROWS)
    # The teacher answered the first three rows only; it is wrong on the third.
    teacher_path = tmp_path / "teacher.jsonl"
    write_jsonl(
        teacher_path,
        [
            teacher_row(EVALUATION_ROWS[0]["input_text"], "42", "84 / 2", 2.0),
            teacher_row(EVALUATION_ROWS[1]["input_text"], "( 3 * 5 )", "15", 4.0),
            teacher_row(EVALUATION_ROWS[2]["input_text"], "64", "60", 6.0),
        ],
    )
    return str(evaluation_path), str(teacher_path)


def test_compare_scores_math_by_value_and_counts_missing_teacher_rows_as_wrong():
    rows = [
        EvaluationRow("q1", "42"),
        EvaluationRow("q2", "( 3 * 5 )"),
        EvaluationRow("q3", "64"),
        EvaluationRow("q4", "12"),
    ]
    teacher = {"q1": TeacherAnswer("42", 3.0), "q2": TeacherAnswer("16", 1.0), "q4": TeacherAnswer(None, 2.0)}
    result = compare(
        rows,
        teacher,
        distilled_answers=["( 84.0 / 2.0 )", "15.", "65", "12 eggs"],
        untuned_answers=["41", "3 * 5", "", "twelve"],
        student_model_reference="tiny",
        distilled_latencies_s=[0.5, 0.5, 0.25, 0.75],
        untuned_latencies_s=[0.25] * 4,
    )
    assert result.task.name == "math"  # inferred: every label is a number or an expression
    assert result.distilled_student.scores.accuracy == 0.75
    assert result.untuned_student.scores.accuracy == 0.25
    # q1 right; q2 wrong; q3 unanswered; q4 answered without a label.
    assert result.teacher.scores.accuracy == 0.25
    assert result.teacher_unanswered == 1
    assert result.teacher.mean_latency_s == pytest.approx(2.0)
    # Three answered rows in 6 s: 0.5 examples/s; the distilled student: 4 rows in 2 s.
    assert result.teacher.examples_per_s == pytest.approx(0.5)
    assert result.distilled_student.examples_per_s == pytest.approx(2.0)
    assert result.speedup == pytest.approx(2.0 / 0.5)
    assert [c.distilled_correct for c in result.comparisons] == [True, True, False, True]
    metrics = result.metrics()
    assert set(metrics) == MATH_METRIC_NAMES
    assert metrics["examples"] == 4.0
    assert metrics["distilled_student_accuracy"] == 0.75
    assert result.confusion_matrix() is None
    assert result.speed_comparison() == "The distilled student answers 4.0x faster than the teacher did."
    result.teacher.latencies_s = [0.25]
    assert result.speed_comparison() == "The distilled student answers 2.0x slower than the teacher did."
    result.teacher.latencies_s = [2.0, 2.0, 2.0]
    report = result.to_markdown()
    assert "Task type: **math** (inferred: every label is a number or an arithmetic expression (4 labels))" in report
    assert _table_row(report, "Teacher") == ["25.0%", "2.000", "0.50"]
    assert "miss 1 of the 4" in report
    assert "| q3 | 64 | — | 65 |" in report


def test_compare_uses_the_task_metrics_of_the_given_task_type():
    rows = [EvaluationRow("question: Where? context: In Paris, France.", "Paris"), EvaluationRow("q", "Rome")]
    result = compare(
        rows,
        {},
        ["Paris, France", "Rome"],
        ["", "rome"],
        "tiny",
        [0.1, 0.1],
        [0.1, 0.1],
        task=TaskType("extractive_qa", "given"),
    )
    metrics = result.metrics()
    # "paris france" vs "paris": F1 2/3; "rome": exact. EM 1/2, F1 (2/3 + 1) / 2.
    assert metrics["distilled_student_exact_match"] == pytest.approx(0.5)
    assert metrics["distilled_student_f1"] == pytest.approx(5 / 6)
    assert metrics["untuned_student_f1"] == pytest.approx(0.5)
    assert "| Model | Exact match | F1 (SQuAD) |" in result.to_markdown()


def test_metrics_leave_out_teacher_latency_and_speedup_when_the_teacher_answered_nothing():
    result = compare([EvaluationRow("q", "1")], {}, ["1"], ["2"], "tiny", [0.1], [0.1])
    assert result.teacher.scores.accuracy == 0.0
    assert set(result.metrics()) == MATH_METRIC_NAMES - {"teacher_latency_s", "teacher_examples_per_s", "speedup"}
    assert "n/a" in result.to_markdown()
    assert "answered every example correctly" in result.to_markdown()


def test_worst_examples_put_rows_other_models_got_right_first():
    rows = [EvaluationRow(f"q{i}", "7") for i in range(3)]
    teacher = {"q0": TeacherAnswer("1", 1.0), "q1": TeacherAnswer("7", 1.0), "q2": TeacherAnswer("7", 1.0)}
    result = compare(rows, teacher, ["1", "1", "1"], ["1", "1", "7"], "tiny", [0.1] * 3, [0.1] * 3)
    assert [c.input_text for c in result.worst_examples()] == ["q2", "q1", "q0"]
    assert len(result.worst_examples(limit=2)) == 2


def test_worst_examples_rank_by_the_task_score():
    rows = [EvaluationRow(f"q{i}", "the red big house") for i in range(3)]
    # SQuAD F1 against "red big house": 1.0 (left out), 2/3 ("red big"), 0.
    result = compare(
        rows, {}, ["red big house", "red big", "boat"], [""] * 3, "tiny", [0.1] * 3, [0.1] * 3,
        task=TaskType("extractive_qa", "given"),
    )
    assert [(c.input_text, round(c.distilled_score, 3)) for c in result.worst_examples()] == [("q2", 0.0), ("q1", 0.8)]


def test_an_evaluation_row_without_gold_label_is_named_by_line_and_field(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text(json.dumps({"input_text": "a", "output_text": "b"}) + "\n" + json.dumps({"input_text": "c"}) + "\n")
    with pytest.raises(DatasetError) as error:
        load_evaluation_rows(str(path))
    assert (error.value.line, error.value.field) == (2, "output_text")


def test_a_teacher_row_without_latency_is_named_by_line_and_field(tmp_path):
    path = tmp_path / "teacher.jsonl"
    row = teacher_row("a", "b", "b", 1.0)
    del row["latency_s"]
    write_jsonl(path, [teacher_row("x", "y", "y", 1.0), row])
    with pytest.raises(DatasetError) as error:
        load_teacher_answers(str(path))
    assert (error.value.line, error.value.field) == (2, "latency_s")


def test_an_unknown_task_type_fails_before_any_model_loads(evaluation_files, tmp_path):
    evaluation_path, teacher_path = evaluation_files
    with pytest.raises(ValueError, match="task_type must be"):
        evaluate_student(
            "no-such-model", evaluation_path, teacher_path, "no-such-model", str(tmp_path / "r.md"), task_type="qa"
        )


def test_evaluate_student_runs_both_real_students(tiny_student_dir, evaluation_files, tmp_path):
    evaluation_path, teacher_path = evaluation_files
    report_path = tmp_path / "report" / "report.md"
    html_path = tmp_path / "report" / "report.html"
    result = evaluate_student(
        model_dir=tiny_student_dir,
        evaluation_path=evaluation_path,
        teacher_predictions_path=teacher_path,
        student_model_reference=tiny_student_dir,
        report_path=str(report_path),
        max_new_tokens=4,
        html_report_path=str(html_path),
    )
    metrics = result.metrics()
    assert set(metrics) == MATH_METRIC_NAMES
    assert metrics["examples"] == 4.0
    assert metrics["teacher_accuracy"] == 0.5
    assert metrics["teacher_latency_s"] == pytest.approx(4.0)
    for name in ("untuned_student_accuracy", "distilled_student_accuracy"):
        assert 0.0 <= metrics[name] <= 1.0
    assert metrics["distilled_student_latency_s"] > 0 and metrics["untuned_student_latency_s"] > 0
    assert metrics["speedup"] == pytest.approx(4.0 / metrics["distilled_student_latency_s"])
    # The same weights, greedy: both "students" give the same answers.
    assert [c.distilled_answer for c in result.comparisons] == [c.untuned_answer for c in result.comparisons]
    report = report_path.read_text()
    assert _table_row(report, "Teacher") == ["50.0%", "4.000", "0.25"]
    assert "miss 1 of the 4" in report
    assert "No TensorBoard logs were given" in html_path.read_text()


def test_evaluate_student_accuracies_with_known_student_outputs(
    tiny_student_dir, evaluation_files, tmp_path, monkeypatch
):
    evaluation_path, teacher_path = evaluation_files
    # Two students in two folders, each with its own outputs, told apart by the folder it was loaded from: a
    # swap of the distilled and the untuned student in evaluate_student changes both accuracies.
    distilled_dir, untuned_dir = (shutil.copytree(tiny_student_dir, tmp_path / name) for name in ("tuned", "base"))
    outputs = {
        str(distilled_dir): ["( 84.0 / 2.0 )", "15", "63", "12\nmore text"],
        str(untuned_dir): ["The answer is 42.", "16", "", "eggs"],
    }
    seen_tasks = []

    def known_predict(self, input_texts, task="label", task_type=""):
        seen_tasks.append((task, task_type))
        return [Prediction(text, 0.01) for text in outputs[self.model.name_or_path]]

    monkeypatch.setattr(StudentPredictor, "predict", known_predict)
    report_path = tmp_path / "report.md"
    result = evaluate_student(str(distilled_dir), evaluation_path, teacher_path, str(untuned_dir), str(report_path))
    assert seen_tasks == [("label", "math"), ("label", "math")]
    assert result.distilled_student.scores.accuracy == 0.75
    assert result.untuned_student.scores.accuracy == 0.25
    assert result.teacher.scores.accuracy == 0.5
    assert result.speedup == pytest.approx(400.0)
    report = report_path.read_text()
    assert _table_row(report, "Distilled student") == ["75.0%", "0.010", "100.00"]
    assert "| question: How many parishes are there in Louisiana? | 64 | 60 | 63 | *(empty)* |" in report

    # In the pipeline validate-dataset settles the task type and says how; the report repeats it.
    stated = "inferred: every label is a number or an arithmetic expression (4 labels)"
    evaluate_student(
        str(distilled_dir), evaluation_path, teacher_path, str(untuned_dir), str(report_path), task_type="math",
        task_type_reason=stated,
    )
    assert f"Task type: **math** ({stated})" in report_path.read_text()


SPAN_ROWS = [
    {"input_text": "question: How many people live in Beijing? context: Beijing is the capital of China. Over 21 "
                   "million people live there.", "output_text": "Over 21 million people"},
    {"input_text": "question: How many parishes are there in Louisiana? context: The U.S. state of Louisiana is "
                   "divided into 64 parishes.", "output_text": "64"},
]


def test_both_students_answer_extractive_questions_with_spans_of_their_context(varied_student_dir, tmp_path):
    evaluation_path, teacher_path = tmp_path / "eval.jsonl", tmp_path / "teacher.jsonl"
    write_jsonl(evaluation_path, SPAN_ROWS)
    write_jsonl(teacher_path, [teacher_row(row["input_text"], row["output_text"], "64", 1.0) for row in SPAN_ROWS])

    result = evaluate_student(
        varied_student_dir, str(evaluation_path), str(teacher_path), varied_student_dir, str(tmp_path / "r.md"),
        max_new_tokens=8,
    )

    assert result.task.name == "extractive_qa"
    for comparison in result.comparisons:
        context = comparison.input_text.split("context: ")[1]
        for answer in (comparison.distilled_answer, comparison.untuned_answer):
            assert answer and answer in context
