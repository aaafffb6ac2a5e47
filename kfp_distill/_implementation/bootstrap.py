"""Bootstrap confidence intervals over evaluation rows, and paired ones for the difference of two models.

A score on 50 evaluation rows is an estimate: another 50 rows of the same task would give another score. The
percentile bootstrap resamples the rows with replacement `RESAMPLES` times and takes the middle 95% of the
score over the resamples. Two models answered the same rows, so their difference is resampled in pairs: each
resample scores both models on the same rows, which cancels the rows' own difficulty out of the spread.

The resamples are drawn from a seeded generator (`numpy.random.default_rng(SEED)`, one `integers(0, n,
size=(RESAMPLES, n))` draw), so an interval is reproducible from the rows alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 0

# A statistic of a resample: the indices of the rows drawn (with repeats) -> the score on those rows.
Statistic = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval."""

    low: float
    high: float
    confidence: float = CONFIDENCE

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def resample_indices(rows: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """The rows each resample draws: an array of shape (resamples, rows) of row indices.

    Raises:
        ValueError: There are no rows or no resamples.
    """
    if rows < 1 or resamples < 1:
        raise ValueError(f"a bootstrap needs rows and resamples, got {rows} rows and {resamples} resamples")
    return np.random.default_rng(seed).integers(0, rows, size=(resamples, rows))


def percentile_interval(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """The interval holding the middle `confidence` share of the resampled values."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.asarray(values, dtype=float), [tail, 100 - tail])
    return Interval(float(low), float(high), confidence)


def mean_interval(
    row_scores: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE
) -> Interval:
    """The interval of a score that is the mean of per-row scores (accuracy, exact match, F1, ROUGE-L)."""
    scores = np.asarray(row_scores, dtype=float)
    return percentile_interval(scores[resample_indices(len(scores), resamples, seed)].mean(axis=1), confidence)


def statistic_interval(
    statistic: Statistic, rows: int, resamples: int = RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE
) -> Interval:
    """The interval of any score of the rows (macro-F1, corpus chrF): the statistic computed on each resample."""
    return percentile_interval([statistic(drawn) for drawn in resample_indices(rows, resamples, seed)], confidence)


def paired_difference_interval(
    first: Statistic, second: Statistic, rows: int, resamples: int = RESAMPLES, seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """The interval of `first - second` where both are scored on the same resampled rows."""
    return percentile_interval(
        [first(drawn) - second(drawn) for drawn in resample_indices(rows, resamples, seed)], confidence
    )


def mean_statistic(row_scores: Sequence[float]) -> Statistic:
    """The statistic of a mean of per-row scores, for the paired and generic intervals."""
    scores = np.asarray(row_scores, dtype=float)
    return lambda drawn: float(scores[drawn].mean())
