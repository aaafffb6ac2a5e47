"""evaluate's 95% intervals, checked against a direct computation, and the deploy gate's decisions."""

import numpy as np
import pytest

from kfp_distill._implementation.tasks import TaskType
from kfp_distill.components.evaluate.evaluation import EvaluationRow, TeacherAnswer, compare

MATH = TaskType("math", "given")
ROWS = 40
# The teacher answers rows 0-29 right (75%), the distilled student rows 10-33 (60%), the untuned student none.
TEACHER_RIGHT = set(range(30))
DISTILLED_RIGHT = set(range(10, 34))


def _result(**gate):
    rows = [EvaluationRow(f"question {i}", str(i)) for i in range(ROWS)]
    teacher = {row.input_text: TeacherAnswer(row.gold if i in TEACHER_RIGHT else "-1", 1.0) for i, row in enumerate(rows)}
    distilled = [row.gold if i in DISTILLED_RIGHT else "-1" for i, row in enumerate(rows)]
    return compare(rows, teacher, distilled, ["-1"] * ROWS, "tiny", [0.1] * ROWS, [0.1] * ROWS, MATH, **gate)


def _direct_interval(values: np.ndarray) -> tuple[float, float]:
    """The documented percentile bootstrap, written out: 1,000 draws of the rows from default_rng(0)."""
    drawn = np.random.default_rng(0).integers(0, ROWS, size=(1000, ROWS))
    low, high = np.percentile(values[drawn].mean(axis=1), [2.5, 97.5])
    return float(low), float(high)


def _right(rows: set[int]) -> np.ndarray:
    return np.asarray([float(i in rows) for i in range(ROWS)])


def test_every_score_carries_its_interval_and_the_difference_a_paired_one():
    metrics = _result().metrics()

    teacher, distilled = _right(TEACHER_RIGHT), _right(DISTILLED_RIGHT)
    for name, right in (("teacher", teacher), ("distilled_student", distilled), ("untuned_student", np.zeros(ROWS))):
        low, high = _direct_interval(right)
        assert metrics[f"{name}_accuracy_ci_low"] == pytest.approx(low)
        assert metrics[f"{name}_accuracy_ci_high"] == pytest.approx(high)
        assert low <= metrics[f"{name}_accuracy"] <= high
    assert metrics["distilled_student_minus_teacher_accuracy"] == pytest.approx(0.60 - 0.75)
    # Paired: each resample's student mean less the teacher's mean on the same rows.
    low, high = _direct_interval(distilled - teacher)
    assert metrics["distilled_student_minus_teacher_accuracy_ci_low"] == pytest.approx(low)
    assert metrics["distilled_student_minus_teacher_accuracy_ci_high"] == pytest.approx(high)
    # Pairing takes the rows' difficulty out: narrower than two independent intervals would make the difference.
    unpaired = np.sqrt(teacher.var() / ROWS + distilled.var() / ROWS) * 2 * 1.96
    assert high - low < unpaired


def test_the_reports_show_each_score_with_its_interval():
    result = _result()
    report = result.to_markdown()
    low, high = _direct_interval(_right(DISTILLED_RIGHT))
    assert f"| Distilled student | 60.0% [{low * 100:.1f}, {high * 100:.1f}] |" in report
    assert "| Distilled student − teacher | -15.0 pts [" in report
    assert "95% intervals, from 1,000 bootstrap resamples of the 40 evaluation rows" in report


def test_a_student_below_the_share_of_the_teachers_score_fails_the_gate_and_the_report_says_why():
    result = _result(min_share_of_teacher=0.9)

    assert result.gate.decision == "failed"
    assert result.gate.reason == (
        "the distilled student's Accuracy is 60.0% and the teacher's 75.0% on 40 evaluation rows: below 90% of the "
        "teacher's (67.5%)"
    )
    assert f"**Deploy gate: failed**: {result.gate.reason}." in result.to_markdown()


def test_a_student_at_the_share_passes_and_the_gate_is_off_at_zero():
    assert _result(min_share_of_teacher=0.8).gate.decision == "passed"  # 60% >= 0.8 x 75%
    off = _result()
    assert off.gate.decision == "off"
    assert off.gate.reason.startswith("the deploy gate is off (deploy_min_share_of_teacher is 0)")


def test_on_the_lower_bound_a_student_must_reach_the_share_with_95_percent_confidence():
    # 60% >= 0.75 x 75% = 56.25% on the scores, but with 40 rows the interval reaches well below it.
    assert _result(min_share_of_teacher=0.75).gate.decision == "passed"
    strict = _result(min_share_of_teacher=0.75, gate_on_lower_bound=True)
    assert strict.gate.decision == "failed"
    teacher, distilled = _right(TEACHER_RIGHT), _right(DISTILLED_RIGHT)
    low, high = _direct_interval(distilled - 0.75 * teacher)
    assert f"is [{low:+.1%}, {high:+.1%}], whose lower bound is below 0" in strict.gate.reason
    # A small enough share passes even on the lower bound.
    assert _result(min_share_of_teacher=0.3, gate_on_lower_bound=True).gate.decision == "passed"


def test_a_negative_share_is_refused():
    with pytest.raises(ValueError, match="deploy_min_share_of_teacher is -0.5"):
        _result(min_share_of_teacher=-0.5)
