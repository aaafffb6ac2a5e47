"""The model record: `kfp_distill.json` in a tuned model directory, what kfp-distill knows about the model.

tune-student writes it; upload-model, the model store, `kfp-distill serve` and `predict` read it. Schema 1
(records written before the schema was numbered have the same layout and no `schema_version`):

- `schema_version`, `kfp_distill_version`, `created_at`;
- provenance: `student_model_reference`, `teacher_model_reference`, `dataset_uri`, `task_type` (each optional,
  URIs without credentials);
- `architecture` (`causal` or `encoder-decoder`), `prompt_format` and `trained_tasks`: how to prompt the model;
- `tuning`: the tuning settings (`train_steps`, `learning_rate`, ...);
- `metrics`: the tuning run's metrics by name.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from kfp_distill._implementation.redaction import redact_uri

RECORD_FILE = "kfp_distill.json"
SCHEMA_VERSION = 1
# A record is a few KB; `read_record` leaves a larger file unread.
MAX_RECORD_BYTES = 1024**2
# What registries record about a model, read by `read_record`: provenance and the number of tuning steps.
PROVENANCE_KEYS = ("teacher_model_reference", "student_model_reference", "dataset_uri", "train_steps", "task_type")


def write_record(model_dir: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Writes a model's record, stamped with the schema version, into its directory.

    Args:
        model_dir: The tuned model directory.
        record: The record's fields (see the module docstring) but `schema_version`.

    Returns:
        The record's path.
    """
    path = Path(model_dir) / RECORD_FILE
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION, **record}, indent=2) + "\n", encoding="utf-8")
    return path


def _metric(value: Any) -> float | None:
    """A metric's value as a finite float; None for anything else (a boolean, a text, a number no float holds)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return value if math.isfinite(value) else None


def _provenance(value: Any) -> str | None:
    """A provenance field as shown to registries (URIs redacted); None for an empty or non-scalar value."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        return None
    return redact_uri(str(value))


def read_record(model_dir: str | os.PathLike) -> dict[str, Any]:
    """What a model's record says about it for registries: `PROVENANCE_KEYS` as strings and numeric `metrics`.

    Read defensively, never an error: a missing, unreadable or oversized file (over MAX_RECORD_BYTES), or one
    that is not a JSON object, reads as `{}`; a field of the wrong type, or a metric no float holds, is left out.
    """
    try:
        with open(Path(model_dir) / RECORD_FILE, "rb") as handle:
            content = handle.read(MAX_RECORD_BYTES + 1)
        if len(content) > MAX_RECORD_BYTES:
            return {}
        record = json.loads(content.decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: nesting too deep for json
        return {}
    if not isinstance(record, dict):
        return {}
    # The tuning settings (train_steps among them) are nested under "tuning".
    tuning = record.get("tuning") if isinstance(record.get("tuning"), dict) else {}
    # Redacted again: a model tuned before tune-student redacted its record may hold credentials in a URI.
    provenance = {key: _provenance(record.get(key, tuning.get(key))) for key in PROVENANCE_KEYS}
    kept: dict[str, Any] = {key: value for key, value in provenance.items() if value is not None}
    metrics = record.get("metrics")
    if isinstance(metrics, dict):
        values = {str(name): _metric(value) for name, value in metrics.items()}
        kept["metrics"] = {name: value for name, value in values.items() if value is not None}
    return kept
