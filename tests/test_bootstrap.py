"""Bootstrap intervals, checked against a direct computation and against the normal approximation."""

import math

import numpy as np
import pytest

from kfp_distill._implementation.bootstrap import (
    Interval,
    mean_interval,
    mean_statistic,
    paired_difference_interval,
    resample_indices,
    statistic_interval,
)


def test_the_interval_of_a_mean_is_the_percentiles_of_the_resampled_means():
    scores = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
    # Direct computation: the documented draw, then numpy's percentiles of the means.
    drawn = np.random.default_rng(0).integers(0, 10, size=(1000, 10))
    means = np.asarray(scores, dtype=float)[drawn].mean(axis=1)
    expected = Interval(float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))
    assert mean_interval(scores) == expected
    assert statistic_interval(mean_statistic(scores), len(scores)) == expected


def test_an_accuracy_interval_on_many_rows_matches_the_normal_approximation():
    rows = 2000
    scores = [1] * 1400 + [0] * 600  # 70% right
    interval = mean_interval(scores, resamples=2000)
    half_width = 1.96 * math.sqrt(0.7 * 0.3 / rows)
    assert interval.low == pytest.approx(0.7 - half_width, abs=0.005)
    assert interval.high == pytest.approx(0.7 + half_width, abs=0.005)


def test_a_paired_difference_is_narrower_than_its_parts_when_the_models_share_hard_rows():
    rng = np.random.default_rng(1)
    difficulty = rng.random(60)
    teacher = (difficulty < 0.7).astype(float)  # both models miss the hard rows
    student = (difficulty < 0.6).astype(float)
    paired = paired_difference_interval(mean_statistic(student), mean_statistic(teacher), 60)
    assert paired.contains(student.mean() - teacher.mean())
    assert paired.high <= 0  # the student never beats the teacher on a row
    student_alone, teacher_alone = mean_interval(student), mean_interval(teacher)
    unpaired_width = (student_alone.high - student_alone.low) + (teacher_alone.high - teacher_alone.low)
    assert paired.high - paired.low < unpaired_width / 2


def test_resampling_refuses_no_rows():
    with pytest.raises(ValueError, match="0 rows"):
        resample_indices(0)
