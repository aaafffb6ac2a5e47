"""Uploading a distilled student to the Vertex AI Model Registry (the model store's Vertex AI backend lists and
loads the models uploaded: `kfp_distill/_implementation/model_store`).

Every call goes through the Vertex AI SDK (`google.cloud.aiplatform`) with the project and region given, and
otherwise the SDK's own settings: application-default credentials and the regional endpoint, unless
`aiplatform.init(credentials=..., api_endpoint=..., api_transport=...)` set others before (a private endpoint,
or the tests' loopback server).

The uploaded model's artifact is the tuned model directory in Cloud Storage; its serving container is our own
image running `kfp-distill serve` (Vertex AI's custom-container contract: see kfp_distill/interfaces/serving.py), unless
another image is named. Vertex AI pulls serving images only from Artifact Registry or Container Registry, so
the image is checked for that before anything is sent. Labels
record the provenance and the metrics in the form GCP allows (lowercase, at most 63 characters of
`[a-z0-9_-]`); the description keeps them verbatim.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping

from kfp_distill._implementation.deploy_gate import RECORD_KEY, GateDecision
from kfp_distill._implementation.model_record import read_record
from kfp_distill._implementation.model_store.vertex_backend import (
    MARKER_LABEL,
    METRIC_LABEL_PREFIX,
    PROVENANCE_LABELS,
    metric_label_value,
)
from kfp_distill._implementation.preflight import serving_image_problem
from kfp_distill._implementation.settings import IMAGE
from kfp_distill._implementation.vertex_filters import display_name_filter
from kfp_distill._version import __version__

from .registry import model_description, model_name

# How Vertex AI runs our image as a serving container: it sets AIP_HTTP_PORT to the first port, AIP_PREDICT_ROUTE
# and AIP_HEALTH_ROUTE to the routes, and AIP_STORAGE_URI to its copy of artifact_uri, which `kfp-distill serve`
# reads; all interfaces, as Vertex AI's proxy reaches the container from outside it.
SERVING_COMMAND = ["kfp-distill", "serve"]
SERVING_ARGS = ["--host", "0.0.0.0"]
SERVING_PORT = 8080
PREDICT_ROUTE = "/predict"
HEALTH_ROUTE = "/health"
MAX_LABELS = 64
MAX_LABEL_LENGTH = 63
MAX_DISPLAY_NAME_LENGTH = 128
_LABEL_UNSAFE = re.compile(r"[^a-z0-9_-]+")


def label_value(text: str) -> str:
    """`text` as a GCP label value: lowercase, unsafe runs as `-`, its last 63 characters (a URI's most
    telling part, the file or model name, is at its end)."""
    return _LABEL_UNSAFE.sub("-", text.lower()).strip("-")[-MAX_LABEL_LENGTH:]


def label_key(text: str) -> str:
    """`text` as a GCP label key: like a label value, but starting with a letter and cut at its end."""
    key = _LABEL_UNSAFE.sub("-", text.lower()).lstrip("0123456789_-")[:MAX_LABEL_LENGTH].rstrip("-")
    return key or "unnamed"


def vertex_labels(
    record: Mapping[str, Any], metrics: Mapping[str, float], gate: GateDecision | None = None
) -> dict[str, str]:
    """The labels of an uploaded model: the kfp-distill marker, provenance, the deploy gate's decision
    (`deploy_gate`: `passed`, `failed`, `not-judged` or `off`), then metrics while there is room."""
    labels = {MARKER_LABEL: label_value(__version__)}
    labels.update({key: label_value(str(record[field])) for field, key in PROVENANCE_LABELS.items() if field in record})
    if gate is not None:
        labels[RECORD_KEY] = label_value(gate.decision)
    for name, value in sorted(metrics.items()):
        if len(labels) == MAX_LABELS:
            break
        if math.isfinite(value):
            labels[label_key(METRIC_LABEL_PREFIX + name.lstrip("/"))] = metric_label_value(value)
    return {key: value for key, value in labels.items() if value}


def serving_container_spec(image: str) -> dict[str, Any]:
    """The containerSpec of a model served by our image (`image`), as the Model Registry records it."""
    return {
        "imageUri": image,
        "command": SERVING_COMMAND,
        "args": SERVING_ARGS,
        "ports": [{"containerPort": SERVING_PORT}],
        "predictRoute": PREDICT_ROUTE,
        "healthRoute": HEALTH_ROUTE,
    }


def check_serving_image(image: str, ours: bool) -> None:
    """Refuses a serving image Vertex AI cannot pull (it pulls from Artifact Registry and Container Registry only).

    Raises:
        ValueError: Naming the image, where Vertex AI pulls from, and (for ours) KFP_DISTILL_IMAGE.
    """
    problem = serving_image_problem(image, ours)
    if problem:
        raise ValueError(problem)


def register_vertex_model(
    model_dir: str,
    display_name: str,
    project: str,
    location: str = "",
    artifact_uri: str = "",
    staging_bucket: str = "",
    encryption_spec_key_name: str = "",
    serving_container_image_uri: str = "",
    metrics: Mapping[str, float] | None = None,
    kfp_distill_image_uri: str = IMAGE,
    gate: GateDecision | None = None,
) -> str:
    """Uploads a tuned student to the Vertex AI Model Registry.

    A model of the same display name that kfp-distill uploaded before gets a new version (made the default);
    otherwise a new model is created.

    Args:
        model_dir: The tuned student directory, read for its model record (provenance, metrics) and
            uploaded when artifact_uri is empty.
        display_name: The model's display name; empty: `distilled-<student>`.
        project: The Google Cloud project.
        location: The region to upload to; empty: the SDK's default (`GOOGLE_CLOUD_REGION` or
            `CLOUD_ML_REGION` when set, as on Vertex AI, else us-central1).
        artifact_uri: The same directory already in Cloud Storage (`gs://...`, a pipeline output on Vertex AI).
        staging_bucket: A `gs://` folder to copy model_dir into when artifact_uri is empty.
        encryption_spec_key_name: A Cloud KMS key for the model (CMEK).
        serving_container_image_uri: Another serving container, run as its own contract says; empty (or our
            image): our image running `kfp-distill serve`.
        metrics: More metrics to record; they override the model record's.
        kfp_distill_image_uri: Our image (the components' image, KFP_DISTILL_IMAGE when they were compiled).
        gate: The deploy gate's decision, recorded as the `deploy_gate` label and in the description; None: none.

    Returns:
        The model resource name, `projects/PROJECT/locations/LOCATION/models/ID`.

    Raises:
        ValueError: The model is neither in Cloud Storage nor given a staging bucket, or the serving image is
            one Vertex AI cannot pull.
        FileNotFoundError: model_dir is not a model directory.
    """
    from google.cloud import aiplatform

    ours = serving_container_image_uri in ("", kfp_distill_image_uri)
    image = kfp_distill_image_uri if ours else serving_container_image_uri
    check_serving_image(image, ours)
    container = serving_container_spec(image) if ours else {"imageUri": image}
    if not (Path(model_dir) / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    if not artifact_uri.startswith("gs://") and not staging_bucket.startswith("gs://"):
        raise ValueError(
            f"the model at '{artifact_uri or model_dir}' is not in Cloud Storage: give staging_bucket "
            "(a gs:// folder) to copy it there for the Vertex AI upload"
        )
    record = read_record(model_dir)
    all_metrics = {**record.get("metrics", {}), **{name: float(value) for name, value in (metrics or {}).items()}}
    student = record.get("student_model_reference")
    display_name = display_name.strip()[:MAX_DISPLAY_NAME_LENGTH] or model_name("", student)
    location = location or None
    earlier = aiplatform.Model.list(
        filter=f"{display_name_filter(display_name)} AND labels.{MARKER_LABEL}:*",
        order_by="create_time desc",
        project=project,
        location=location,
    )
    model = aiplatform.Model.upload(
        display_name=display_name,
        parent_model=earlier[0].resource_name if earlier else None,
        description=model_description(record, all_metrics, gate),
        artifact_uri=artifact_uri or str(Path(model_dir).resolve()),
        staging_bucket=staging_bucket or None,
        serving_container_image_uri=image,
        serving_container_command=container.get("command"),
        serving_container_args=container.get("args"),
        serving_container_ports=[SERVING_PORT] if ours else None,
        serving_container_predict_route=container.get("predictRoute"),
        serving_container_health_route=container.get("healthRoute"),
        labels=vertex_labels(record, all_metrics, gate),
        encryption_spec_key_name=encryption_spec_key_name or None,
        project=project,
        location=location,
    )
    return model.resource_name
