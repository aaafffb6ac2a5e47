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


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_record(model_dir: str | os.PathLike) -> dict[str, Any]:
    """What a model's record says about it for registries: `PROVENANCE_KEYS` as strings and numeric `metrics`.

    Read defensively: a missing or unreadable file, or a field of the wrong type, is left out, never an error.
    """
    try:
        record = json.loads((Path(model_dir) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    # The tuning settings (train_steps among them) are nested under "tuning".
    tuning = record.get("tuning") if isinstance(record.get("tuning"), dict) else {}
    found = {key: record.get(key, tuning.get(key)) for key in PROVENANCE_KEYS}
    # Redacted again: a model tuned before tune-student redacted its record may hold credentials in a URI.
    kept: dict[str, Any] = {
        key: redact_uri(str(value))
        for key, value in found.items()
        if isinstance(value, (str, int)) and value not in ("", True, False)
    }
    metrics = record.get("metrics")
    if isinstance(metrics, dict):
        kept["metrics"] = {str(name): float(value) for name, value in metrics.items() if _finite_number(value)}
    return kept
