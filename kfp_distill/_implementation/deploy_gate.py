"""The deploy gate: whether the distilled student scored enough of the teacher's score to be deployed.

The pipeline's `deploy_min_share_of_teacher` is the share of the teacher's score on the task's main metric
(`task_metrics.MAIN_METRIC`) that the distilled student must reach on the evaluation rows; 0 turns the gate off.
With `deploy_gate_on_lower_bound`, the student must reach it with 95% confidence instead: the lower bound of the
paired bootstrap interval of `student - share x teacher` (`bootstrap.paired_difference_interval`) must be at
least 0. evaluate judges; without evaluation rows nothing can be judged. upload-model records the decision on
the registered model either way, and deploy-model deploys only what `deploys` allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kfp_distill._implementation.bootstrap import Statistic, paired_difference_interval

PASSED = "passed"
FAILED = "failed"
NOT_JUDGED = "not judged"
OFF = "off"
DECISIONS = (PASSED, FAILED, NOT_JUDGED, OFF)
# The label (Vertex AI) and tag (MLflow) that record the decision on the registered model.
RECORD_KEY = "deploy_gate"


@dataclass(frozen=True)
class GateDecision:
    """The gate's decision (one of `DECISIONS`) and, in words, why."""

    decision: str
    reason: str

    def __str__(self) -> str:
        return f"{self.decision}: {self.reason}"


def min_share_problem(min_share: float) -> str | None:
    """What is wrong with a share the gate cannot hold a student to (negative, not finite); None: nothing."""
    if math.isfinite(min_share) and min_share >= 0:
        return None
    return (
        f"deploy_min_share_of_teacher is {min_share}; it is 0 (no deploy gate) or the share of the teacher's score "
        "the distilled student must reach, such as 0.9"
    )


def check_min_share(min_share: float) -> None:
    """Refuses a share the gate cannot hold a student to.

    Raises:
        ValueError: min_share is negative or not a finite number.
    """
    problem = min_share_problem(min_share)
    if problem:
        raise ValueError(problem)


def deploys(decision: str) -> bool:
    """Whether deploy-model deploys a student with this decision: one that passed, or any with the gate off.

    Raises:
        ValueError: decision is not one of `DECISIONS`.
    """
    if decision not in DECISIONS:
        raise ValueError(f"unknown deploy gate decision {decision!r}; expected one of {', '.join(DECISIONS)}")
    return decision in (PASSED, OFF)


def without_evaluation(min_share: float) -> GateDecision:
    """The gate's decision when the run has no evaluation rows (evaluation_data_uri empty)."""
    check_min_share(min_share)
    if min_share == 0:
        return GateDecision(OFF, "the deploy gate is off (deploy_min_share_of_teacher is 0) and there were no "
                                 "evaluation rows")
    return GateDecision(
        NOT_JUDGED,
        f"no evaluation rows (evaluation_data_uri is empty), so whether the distilled student reaches "
        f"{min_share:.0%} of the teacher's score could not be judged; give evaluation_data_uri, or set "
        "deploy_min_share_of_teacher to 0 to deploy without the gate",
    )


def judge(
    metric_title: str,
    student: Statistic,
    teacher: Statistic,
    rows: int,
    min_share: float,
    on_lower_bound: bool = False,
) -> GateDecision:
    """Judges the distilled student against the teacher on one metric of the evaluation rows.

    Args:
        metric_title: The metric's name as the reports write it (`Accuracy`, `F1 (SQuAD)`).
        student: The distilled student's metric on a resample of the rows (`TaskScores.statistics`).
        teacher: The teacher's metric on the same resample.
        rows: The number of evaluation rows.
        min_share: The share of the teacher's score the student must reach; 0: the gate is off.
        on_lower_bound: Hold the 95% interval's lower bound of `student - min_share x teacher` to 0, not the
            scores themselves.

    Raises:
        ValueError: min_share is negative or not finite.
    """
    check_min_share(min_share)
    every_row = np.arange(rows)
    student_score, teacher_score = student(every_row), teacher(every_row)
    scores = (
        f"the distilled student's {metric_title} is {student_score:.1%} and the teacher's {teacher_score:.1%} "
        f"on {rows} evaluation rows"
    )
    if min_share == 0:
        return GateDecision(OFF, f"the deploy gate is off (deploy_min_share_of_teacher is 0); {scores}")
    required = min_share * teacher_score
    if not on_lower_bound:
        passed = _at_least(student_score, required)
        comparison = "at least" if passed else "below"
        return GateDecision(
            PASSED if passed else FAILED,
            f"{scores}: {comparison} {min_share:.0%} of the teacher's ({required:.1%})",
        )
    interval = paired_difference_interval(student, lambda drawn: min_share * teacher(drawn), rows)
    passed = _at_least(interval.low, 0.0)
    return GateDecision(
        PASSED if passed else FAILED,
        f"{scores}; the 95% interval of the student's score less {min_share:.0%} of the teacher's, paired over "
        f"the rows, is [{interval.low:+.1%}, {interval.high:+.1%}], whose lower bound is "
        f"{'at least' if passed else 'below'} 0",
    )


def _at_least(value: float, bound: float) -> bool:
    """value >= bound, where a bound met exactly counts though float rounding put it a hair above (0.8 x 0.75)."""
    return value >= bound or math.isclose(value, bound, rel_tol=1e-9, abs_tol=1e-12)
