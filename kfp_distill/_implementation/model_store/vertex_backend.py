"""The model store's Vertex AI backend: the distilled students upload-model put in a Vertex AI Model Registry.

Every call goes through the Vertex AI SDK (`google.cloud.aiplatform`) with the project and region given, and
otherwise the SDK's own settings: application-default credentials and the regional endpoint, unless
`aiplatform.init(credentials=..., api_endpoint=..., api_transport=...)` set others before (a private endpoint,
or the tests' loopback server).

The labels upload-model writes and this backend reads: `MARKER_LABEL` (the kfp-distill version) marks our
models, `PROVENANCE_LABELS` name the provenance, and each metric is a `METRIC_LABEL_PREFIX` label whose value
`metric_label_value` writes and `parse_metric_label` reads, in the form GCP allows.
"""

from __future__ import annotations

import re
from typing import Any

from kfp_distill._implementation.model_store.base import DistilledModel, RegisteredModelInfo

# Marks the models kfp-distill uploaded (value: the kfp-distill version); listing filters on it.
MARKER_LABEL = "kfp_distill"
# The model record's provenance fields and the labels that hold them.
PROVENANCE_LABELS = {
    "teacher_model_reference": "teacher",
    "student_model_reference": "student",
    "dataset_uri": "dataset",
    "train_steps": "train_steps",
    "task_type": "task_type",
}
METRIC_LABEL_PREFIX = "metric-"
RESOURCE_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/models/[^/@]+(@[^/]+)?$")


def is_resource_name(name: str) -> bool:
    """Whether `name` is a Vertex AI model resource name, `projects/P/locations/L/models/ID[@VERSION]`."""
    return bool(RESOURCE_NAME.match(name))


def metric_label_value(value: float) -> str:
    """A number as a label value: four significant digits, the decimal point written as `_` (0.8125 -> 0_8125)."""
    return f"{value:.4g}".replace(".", "_").replace("+", "")


def parse_metric_label(value: str) -> float | None:
    """The number a metric label holds; None when it holds none."""
    try:
        return float(value.replace("_", "."))
    except ValueError:
        return None


def _model_info(model: Any) -> RegisteredModelInfo:
    labels = dict(model.labels or {})
    metrics = {
        key.removeprefix(METRIC_LABEL_PREFIX): parsed
        for key, value in labels.items()
        if key.startswith(METRIC_LABEL_PREFIX) and (parsed := parse_metric_label(value)) is not None
    }
    return RegisteredModelInfo(
        uri=model.resource_name,
        name=model.display_name,
        version=int(model.version_id) if str(model.version_id or "").isdigit() else 1,
        teacher=labels.get(PROVENANCE_LABELS["teacher_model_reference"]),
        student=labels.get(PROVENANCE_LABELS["student_model_reference"]),
        created=model.create_time,
        metrics=metrics,
    )


def list_vertex_models(project: str, location: str = "") -> list[RegisteredModelInfo]:
    """The distilled models kfp-distill uploaded to one project and region (each model's default version),
    newest first. Teacher, student and metrics are read back from the labels (so in their label form)."""
    from google.cloud import aiplatform

    models = aiplatform.Model.list(
        filter=f"labels.{MARKER_LABEL}:*", order_by="create_time desc", project=project, location=location or None
    )
    return [_model_info(model) for model in models]


def load_vertex_model(resource_name: str) -> DistilledModel:
    """Loads a distilled model from the Vertex AI Model Registry by resource name, the equivalent of
    `TextGenerationModel.get_tuned_model(TUNED_MODEL_NAME)`: its artifact is downloaded (once, into the
    model cache) and run here.

    Args:
        resource_name: `projects/PROJECT/locations/LOCATION/models/ID`, optionally `@VERSION`.

    Raises:
        ValueError: The model has no artifact to download.
    """
    from google.cloud import aiplatform

    from kfp_distill._implementation.student import StudentPredictor

    model = aiplatform.Model(resource_name)
    if not model.uri:
        raise ValueError(f"Vertex AI model {resource_name} has no artifact URI to load the student from")
    task_type = (model.labels or {}).get(PROVENANCE_LABELS["task_type"], "")
    return DistilledModel(resource_name, StudentPredictor(model.uri), task_type)
