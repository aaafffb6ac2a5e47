"""The tuning's training curves, read back from the TensorBoard event files tune-student writes."""

from __future__ import annotations

from pathlib import Path

from kfp_distill._implementation.tensorboard_events import read_scalar_events

# The contract's scalar names, as every tuning writes them.
LOSS_TAGS = ("/train_total_loss", "/eval_total_loss")
TOKEN_ACCURACY_TAGS = ("/train_fraction_of_correct_next_step_preds", "/eval_fraction_of_correct_next_step_preds")

Curve = list[tuple[int, float]]


def read_scalars(log_dir: str | Path) -> dict[str, Curve]:
    """Every scalar in the event files under log_dir, as (step, value) pairs sorted by step (see
    `read_scalar_events`: the last write of a step wins; no event files, no scalars)."""
    return {
        tag: sorted((step, value) for step, (_, value) in points.items())
        for tag, points in read_scalar_events(log_dir).items()
    }
