"""Registering distilled students in MLflow's model registry, listing them, and loading one by name; listing and
loading also reach the Vertex AI Model Registry (`vertex.py`) when given a project or a Vertex AI resource name.

By default the registry is embedded: an SQLite database at `<home>/mlflow.db` with the artifacts under
`<home>/mlartifacts`, where home is `$KFP_DISTILL_HOME` or `~/.kfp-distill`. Any MLflow tracking URI (an
MLflow server, Databricks, another database) may be given instead; it serves as tracking and registry URI.
Each registered version is an MLflow pyfunc model (see `pyfunc_model.py`), so
`mlflow.pyfunc.load_model("models:/NAME/VERSION")` works wherever kfp-distill is installed; `load_model` here
reads the student directory inside it as data instead, and runs no code stored with a registered model.
"""

from __future__ import annotations

import json
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Mapping, Sequence

from kfp_distill import __version__
from kfp_distill._implementation.redaction import redact_uri

EXPERIMENT_NAME = "kfp-distill"
# Written by tune-student into the model directory.
TRAINING_RECORD = "kfp_distill.json"
PROVENANCE_KEYS = ("teacher_model_reference", "student_model_reference", "dataset_uri", "train_steps", "task_type")
# Marks the model versions kfp-distill registered, among whatever else a shared registry holds.
VERSION_TAG = "kfp_distill_version"
METRICS_TAG = "metrics"
# The artifact key of the tuned model directory inside the logged pyfunc model.
STUDENT_ARTIFACT = "student"
_PYFUNC_MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def kfp_distill_home() -> Path:
    """Where the embedded registry lives: `$KFP_DISTILL_HOME`, else `~/.kfp-distill`."""
    home = Path(os.environ.get("KFP_DISTILL_HOME") or Path.home() / ".kfp-distill").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_registry_uri() -> str:
    """The embedded SQLite registry's tracking URI."""
    return f"sqlite:///{kfp_distill_home() / 'mlflow.db'}"


@contextmanager
def _mlflow_at(registry_uri: str) -> Iterator[Any]:
    """A client of one registry, with MLflow's tracking URI pointed at it meanwhile (logging and loading
    models read the process-wide URI); whatever was set before, or nothing, is set again afterwards.
    """
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    uri = registry_uri or default_registry_uri()
    with _use_tracking_uri(uri):
        yield mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(client: Any, registry_uri: str) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if registry_uri.startswith("sqlite:///"):
        # Keep an SQLite registry's artifacts next to its database, not under the working directory.
        database = Path(registry_uri.removeprefix("sqlite:///")).resolve()
        artifact_location = str(database.parent / "mlartifacts")
    return client.create_experiment(EXPERIMENT_NAME, artifact_location=artifact_location)


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_training_record(model_dir: str | os.PathLike) -> dict[str, Any]:
    """What tune-student recorded about the model: provenance strings and numeric metrics.

    Read defensively: a missing or unreadable file, or a field of the wrong type, is left out, never an error.
    """
    try:
        record = json.loads((Path(model_dir) / TRAINING_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    # tune-student nests its settings (train_steps among them) under "tuning".
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


def model_description(record: Mapping[str, Any], metrics: Mapping[str, float]) -> str:
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
    return text


def register_model(
    model_dir: str | os.PathLike,
    display_name: str,
    registry_uri: str = "",
    metrics: Mapping[str, float] | None = None,
) -> str:
    """Logs a tuned student as an MLflow pyfunc model and registers it as a new version.

    Args:
        model_dir: The tuned student, a Hugging Face model directory (tune-student's output); its
            `kfp_distill.json`, when present, supplies the teacher, student, dataset, steps and metrics.
        display_name: The registered model's name (sanitised); empty: `distilled-<student>`.
        registry_uri: An MLflow tracking URI; empty: the embedded SQLite registry.
        metrics: More metrics to record (evaluation results, say); they override the training record's.

    Returns:
        The model resource name, `models:/<name>/<version>`.

    Raises:
        FileNotFoundError: model_dir is not a model directory.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    record = read_training_record(model_dir)
    all_metrics = {**record.get("metrics", {}), **{name: float(value) for name, value in (metrics or {}).items()}}
    name = model_name(display_name, record.get("student_model_reference"))
    tags = {key: record[key] for key in PROVENANCE_KEYS if key in record}
    tags[VERSION_TAG] = __version__
    tags[METRICS_TAG] = json.dumps(all_metrics, sort_keys=True)

    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("string")]),
        params=ParamSchema([ParamSpec("with_rationale", "boolean", False)]),
    )
    uri = registry_uri or default_registry_uri()
    with _mlflow_at(uri) as client:
        with mlflow.start_run(experiment_id=_experiment_id(client, uri), run_name=name):
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
            description=model_description(record, all_metrics),
            model_id=logged.model_id,
        )
    return f"models:/{name}/{version.version}"


@dataclass
class RegisteredModelInfo:
    """One registered version of a distilled student."""

    uri: str  # what load_model and `kfp-distill predict` take: `models:/NAME/VERSION` or a Vertex AI resource name
    name: str
    version: int
    teacher: str | None
    student: str | None
    created: datetime
    metrics: dict[str, float] = field(default_factory=dict)


def list_models(registry_uri: str = "", project: str = "", location: str = "") -> list[RegisteredModelInfo]:
    """The distilled models kfp-distill registered.

    Args:
        registry_uri: An MLflow tracking URI; empty: the embedded SQLite registry.
        project: A Google Cloud project: list its Vertex AI Model Registry instead (each model's default
            version, newest first).
        location: The Vertex AI region (with project); empty: the SDK's default.

    Returns:
        From MLflow, every version of every model, by name then version.
    """
    if project:
        from kfp_distill.components.upload_model.vertex import list_vertex_models

        return list_vertex_models(project, location)
    with _mlflow_at(registry_uri) as client:
        versions = [v for v in client.search_model_versions() if VERSION_TAG in v.tags]
    models = []
    for version in versions:
        try:
            metrics = json.loads(version.tags.get(METRICS_TAG, "{}"))
        except ValueError:
            metrics = {}
        models.append(
            RegisteredModelInfo(
                uri=f"models:/{version.name}/{version.version}",
                name=version.name,
                version=int(version.version),
                teacher=version.tags.get("teacher_model_reference"),
                student=version.tags.get("student_model_reference"),
                created=datetime.fromtimestamp(version.creation_timestamp / 1000, tz=timezone.utc),
                metrics=metrics if isinstance(metrics, dict) else {},
            )
        )
    return sorted(models, key=lambda model: (model.name, model.version))


def answer(predictor: Any, texts: Sequence[str], with_rationale: bool = False, task_type: str = "") -> list:
    """A student's answers: the label task's answer per text, and with_rationale the rationale task's output too.

    Args:
        predictor: A `StudentPredictor` of the distilled model.
        texts: Input texts, formatted like the training inputs.
        with_rationale: Also generate each answer's rationale (a second generation per input).
        task_type: The task type the student was tuned for (its training record's `task_type`): answers are
            cut as evaluation scores them, a summary whole and any other answer to its line. Empty: unknown.

    Returns:
        One label (str) per input, or with_rationale: one `{"label": ..., "rationale": ...}` dict per input.
    """
    from kfp_distill._implementation.answers import label_answer

    labels = [label_answer(p.text, task_type) for p in predictor.predict(texts, task="label")]
    if not with_rationale:
        return labels
    rationales = [p.text for p in predictor.predict(texts, task="rationale")]
    return [{"label": label, "rationale": rationale} for label, rationale in zip(labels, rationales)]


class DistilledModel:
    """A registered distilled student, loaded and ready to answer.

    Attributes:
        uri: The registry's name for it (`models:/NAME/VERSION` or a Vertex AI resource name).
        predictor: Its `StudentPredictor`: raw generations with their tokenizer (what `kfp-distill serve`
            answers with, token counts included), for when `predict`'s extracted labels are not what is wanted.
        task_type: The task type it was tuned for, from its training record; empty when not recorded.
    """

    def __init__(self, uri: str, predictor: Any, task_type: str = ""):
        self.uri = uri
        self.predictor = predictor
        self.task_type = task_type

    def predict(self, texts: str | Sequence[str], with_rationale: bool = False) -> list:
        """The student's answers, formatted like its training inputs.

        Args:
            texts: One input text or several.
            with_rationale: Also generate each answer's rationale (a second generation per input).

        Returns:
            One label (str) per input, or with_rationale: one `{"label": ..., "rationale": ...}` dict per input.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        return answer(self.predictor, texts, with_rationale, self.task_type)


def _resolve_version(client: Any, name_or_uri: str) -> tuple[str, str]:
    """(name, version) of `models:/NAME/VERSION`, or of a bare name's latest version."""
    if name_or_uri.startswith("models:/"):
        name, _, version = name_or_uri.removeprefix("models:/").rpartition("/")
        if not name or not version.isdigit():
            raise ValueError(f"expected models:/NAME/VERSION, got '{name_or_uri}'")
        return name, version
    if "'" in name_or_uri:
        raise ValueError(f"not a registered model name: {name_or_uri!r}")
    versions = client.search_model_versions(f"name = '{name_or_uri}'")
    if not versions:
        known = sorted({model.name for model in client.search_registered_models()})
        raise LookupError(
            f"no model named '{name_or_uri}' in the registry; registered: {', '.join(known) or 'none'}"
        )
    return name_or_uri, str(max(int(v.version) for v in versions))


def load_model(name_or_uri: str, registry_uri: str = "") -> DistilledModel:
    """Loads a registered distilled student.

    Args:
        name_or_uri: A registered model name (its latest version is loaded), a `models:/NAME/VERSION` URI, or
            a Vertex AI model resource name (`projects/PROJECT/locations/LOCATION/models/ID[@VERSION]`).
        registry_uri: An MLflow tracking URI; empty: the embedded SQLite registry.

    Raises:
        LookupError: No model has that name.
        ValueError: The version is not a kfp-distill model (none of its code is run to find out).
    """
    from kfp_distill.components.upload_model.vertex import is_resource_name, load_vertex_model

    if is_resource_name(name_or_uri):
        return load_vertex_model(name_or_uri)
    with _mlflow_at(registry_uri) as client:
        name, version = _resolve_version(client, name_or_uri)
        student_dir = _download_student(client, name, version)
    return DistilledModel(f"models:/{name}/{version}", *load_student(student_dir))


def load_student(student_dir: str | os.PathLike) -> tuple[Any, str]:
    """A tuned model directory's `StudentPredictor` and the task type its training record names (empty if none);
    its weights are read as data (safetensors, no remote code)."""
    from kfp_distill._implementation.student import StudentPredictor

    return StudentPredictor(str(student_dir)), read_training_record(student_dir).get("task_type", "")


def _download_student(client: Any, name: str, version: str) -> str:
    """The registered version's student directory, downloaded. The version's MLmodel file is read as data:
    `mlflow.pyfunc.load_model` would run the Python code stored with the model, which on a shared registry
    anyone who may register a model can write.

    Raises:
        ValueError: The version is not a kfp-distill model (no student directory where ours keep it).
    """
    import mlflow
    import yaml

    # Resolved with the client so that the registry asked is this one, whatever MLflow's registry URI is.
    location = client.get_model_version_download_uri(name, version).rstrip("/")
    mlmodel = yaml.safe_load(Path(mlflow.artifacts.download_artifacts(f"{location}/MLmodel")).read_text()) or {}
    flavor = (mlmodel.get("flavors") or {}).get("python_function") or {}
    path = ((flavor.get("artifacts") or {}).get(STUDENT_ARTIFACT) or {}).get("path")
    refused = (
        f"models:/{name}/{version} is not a kfp-distill model (no '{STUDENT_ARTIFACT}' model directory in its "
        "MLmodel); it was not loaded and none of its code was run"
    )
    if not isinstance(path, str) or PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
        raise ValueError(refused)
    student_dir = mlflow.artifacts.download_artifacts(f"{location}/{path}")
    if not (Path(student_dir) / "config.json").is_file():
        raise ValueError(refused)
    return student_dir
