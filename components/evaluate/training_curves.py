"""The tuning's training curves, read back from the TensorBoard event files tune-student writes."""

from __future__ import annotations

from pathlib import Path

# The contract's scalar names, as every tuning writes them.
LOSS_TAGS = ("/train_total_loss", "/eval_total_loss")
TOKEN_ACCURACY_TAGS = ("/train_fraction_of_correct_next_step_preds", "/eval_fraction_of_correct_next_step_preds")

Curve = list[tuple[int, float]]


def read_scalars(log_dir: str | Path) -> dict[str, Curve]:
    """Every scalar in the event files under log_dir, as (step, value) pairs sorted by step.

    A step logged twice (a resumed tuning writes a second event file) keeps the value written last.
    Returns an empty dict when log_dir does not exist or holds no event files.
    """
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    root = Path(log_dir)
    if not root.is_dir():
        return {}
    run_dirs = sorted({path.parent for path in root.rglob("events.out.tfevents.*") if path.is_file()})
    by_step: dict[str, dict[int, float]] = {}
    for run_dir in run_dirs:
        # size_guidance 0 keeps every point: the default samples scalars down to 10,000.
        accumulator = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})
        accumulator.Reload()
        for tag in accumulator.Tags()[SCALARS]:
            points = by_step.setdefault(tag, {})
            for event in sorted(accumulator.Scalars(tag), key=lambda e: e.wall_time):
                points[event.step] = event.value
    return {tag: sorted(points.items()) for tag, points in by_step.items()}
