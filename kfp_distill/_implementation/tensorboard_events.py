"""Reading back the TensorBoard event files tune-student writes (for the report and for the upload)."""

from __future__ import annotations

from pathlib import Path

# tag -> step -> (wall time in seconds since the epoch, value)
ScalarEvents = dict[str, dict[int, tuple[float, float]]]


def read_scalar_events(log_dir: str | Path) -> ScalarEvents:
    """Every scalar of the event files in `log_dir` and its subfolders, unsampled.

    A step logged twice (a resumed tuning writes a second event file) keeps the value written last.
    Returns an empty dict when `log_dir` does not exist or holds no event files.
    """
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    root = Path(log_dir)
    if not root.is_dir():
        return {}
    written: dict[str, list] = {}
    for folder in sorted({path.parent for path in root.rglob("events.out.tfevents.*") if path.is_file()}):
        # size_guidance 0 keeps every event: the default keeps a sample of 10,000 per tag.
        events = EventAccumulator(str(folder), size_guidance={SCALARS: 0})
        events.Reload()
        for tag in events.Tags()[SCALARS]:
            written.setdefault(tag, []).extend(events.Scalars(tag))
    scalars: ScalarEvents = {}
    for tag, tag_events in written.items():
        # In the order written, over every folder, so that a step's last write wins.
        for event in sorted(tag_events, key=lambda e: e.wall_time):
            scalars.setdefault(tag, {})[event.step] = (event.wall_time, event.value)
    return scalars
