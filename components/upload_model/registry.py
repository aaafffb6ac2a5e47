"""Registering distilled students in an MLflow model registry (the model store's MLflow backend lists and
loads them: `kfp_distill/_implementation/model_store`).

Each registered version is an MLflow pyfunc model (see `pyfunc_model.py`), so
`mlflow.pyfunc.load_model("models:/NAME/VERSION")` works wherever kfp-distill is installed; the model store
reads the student directory inside it as data instead, and runs no code stored with a registered model.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

from kfp_distill._implementation.deploy_gate import RECORD_KEY, GateDecision
from kfp_distill._implementation.model_record import PROVENANCE_KEYS, read_record
# Not used here: the pyfunc wrapper stored with each model registered before the model store moved to
# _implementation imports them from this module, and MLflow runs that stored copy, so those models keep loading.
from kfp_distill._implementation.model_store import answer, load_student  # noqa: F401
from kfp_distill._implementation.model_store.mlflow_backend import (
    METRICS_TAG,
    STUDENT_ARTIFACT,
    VERSION_TAG,
    default_registry_uri,
    mlflow_at,
)
from kfp_distill._version import __version__

EXPERIMENT_NAME = "kfp-distill"
_PYFUNC_MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def experiment_id(client: Any, registry_uri: str) -> str:
    """kfp-distill's MLflow experiment in a registry, created when missing."""
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if registry_uri.startswith("sqlite:///"):
        # Keep an SQLite registry's artifacts next to its database, not under the working directory.
        database = Path(registry_uri.removeprefix("sqlite:///")).resolve()
        artifact_location = str(database.parent / "mlartifacts")
    return client.create_experiment(EXPERIMENT_NAME, artifact_location=artifact_location)


def model_name(display_name: str, student_model_reference: str | None = None) -> str:
    """A registry-safe model name: the display name with unsafe characters replaced, else `distilled-<student>`."""
    name = _NAME_UNSAFE.sub("-", display_name).strip("-._")
    if name:
        return name
    student = Path((student_model_reference or "").rstrip("/")).name
    return f"distilled-{_NAME_UNSAFE.sub('-', student).strip('-._') or 'student'}"


def _run_metric_name(name: str) -> str:
    # MLflow metric names are also file names: no leading slash (the contract's names start with one).
    return re.sub(r"[^\w\-. :/]", "_", name).lstrip("/")


def model_description(
    record: Mapping[str, Any], metrics: Mapping[str, float], gate: GateDecision | None = None
) -> str:
    """A registered model's description: its provenance, metrics and deploy gate decision, verbatim."""
    parts = ["Distilled step-by-step by kfp-distill"]
    if "teacher_model_reference" in record:
        parts.append(f"from teacher `{record['teacher_model_reference']}`")
    if "student_model_reference" in record:
        parts.append(f"into student `{record['student_model_reference']}`")
    if "dataset_uri" in record:
        parts.append(f"on `{record['dataset_uri']}`")
    if "train_steps" in record:
        parts.append(f"in {record['train_steps']} tuning steps")
    text = " ".join(parts) + "."
    if metrics:
        text += " Metrics: " + ", ".join(f"{name} = {value:.4g}" for name, value in sorted(metrics.items())) + "."
    if gate is not None:
        text += f" Deploy gate: {gate}."
    return text


def register_model(
    model_dir: str | os.PathLike,
    display_name: str,
    registry_uri: str = "",
    metrics: Mapping[str, float] | None = None,
    gate: GateDecision | None = None,
) -> str:
    """Logs a tuned student as an MLflow pyfunc model and registers it as a new version.

    Args:
        model_dir: The tuned student, a Hugging Face model directory (tune-student's output); its model
            record, when present, supplies the teacher, student, dataset, steps and metrics.
        display_name: The registered model's name (sanitised); empty: `distilled-<student>`.
        registry_uri: An MLflow tracking URI; empty: the embedded SQLite registry.
        metrics: More metrics to record (evaluation results, say); they override the model record's.
        gate: The deploy gate's decision, recorded as the version's `deploy_gate` and `deploy_gate_reason` tags
            and in its description; None: none.

    Returns:
        The model resource name, `models:/<name>/<version>`.

    Raises:
        FileNotFoundError: model_dir is not a model directory.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    record = read_record(model_dir)
    all_metrics = {**record.get("metrics", {}), **{name: float(value) for name, value in (metrics or {}).items()}}
    name = model_name(display_name, record.get("student_model_reference"))
    tags = {key: record[key] for key in PROVENANCE_KEYS if key in record}
    tags[VERSION_TAG] = __version__
    tags[METRICS_TAG] = json.dumps(all_metrics, sort_keys=True)
    if gate is not None:
        tags[RECORD_KEY], tags[f"{RECORD_KEY}_reason"] = gate.decision, gate.reason

    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("string")]),
        params=ParamSchema([ParamSpec("with_rationale", "boolean", False)]),
    )
    uri = registry_uri or default_registry_uri()
    with mlflow_at(uri) as client:
        with mlflow.start_run(experiment_id=experiment_id(client, uri), run_name=name):
            mlflow.log_params({key: record[key] for key in PROVENANCE_KEYS if key in record})
            mlflow.log_metrics({_run_metric_name(key): value for key, value in all_metrics.items()})
            logged = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(_PYFUNC_MODEL_CODE),
                artifacts={STUDENT_ARTIFACT: str(model_dir.resolve())},
                signature=signature,
                pip_requirements=[f"kfp-distill=={__version__}"],
            )
        if not client.search_registered_models(f"name = '{name}'"):
            client.create_registered_model(name, description="A student distilled step-by-step by kfp-distill.")
        # The client, not mlflow.register_model: that one follows MLflow's registry URI, which may differ.
        version = client.create_model_version(
            name,
            source=logged.model_uri,
            run_id=logged.run_id,
            tags=tags,
            description=model_description(record, all_metrics, gate),
            model_id=logged.model_id,
        )
    return f"models:/{name}/{version.version}"
