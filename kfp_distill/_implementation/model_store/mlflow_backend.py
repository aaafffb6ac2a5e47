"""The model store's MLflow backend: the distilled students registered in an MLflow model registry.

By default the registry is embedded: an SQLite database at `<home>/mlflow.db` with the artifacts under
`<home>/mlartifacts`, where home is `$KFP_DISTILL_HOME` or `~/.kfp-distill`. Any MLflow tracking URI (an
MLflow server, Databricks, another database) may be given instead; it serves as tracking and registry URI.
upload-model registers each version as an MLflow pyfunc model holding the tuned model directory; loading
here reads that directory as data and runs no code stored with a registered model.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from kfp_distill._implementation.model_store.base import DistilledModel, RegisteredModelInfo, load_student

# Marks the model versions kfp-distill registered, among whatever else a shared registry holds.
VERSION_TAG = "kfp_distill_version"
METRICS_TAG = "metrics"
# The artifact key of the tuned model directory inside the logged pyfunc model.
STUDENT_ARTIFACT = "student"


def kfp_distill_home() -> Path:
    """Where the embedded registry lives: `$KFP_DISTILL_HOME`, else `~/.kfp-distill`."""
    home = Path(os.environ.get("KFP_DISTILL_HOME") or Path.home() / ".kfp-distill").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_registry_uri() -> str:
    """The embedded SQLite registry's tracking URI."""
    return f"sqlite:///{kfp_distill_home() / 'mlflow.db'}"


@contextmanager
def mlflow_at(registry_uri: str) -> Iterator[Any]:
    """A client of one registry (empty: the embedded one), with MLflow's tracking URI pointed at it meanwhile
    (logging and loading models read the process-wide URI); whatever was set before, or nothing, is set again
    afterwards.
    """
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    uri = registry_uri or default_registry_uri()
    with _use_tracking_uri(uri):
        yield mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def list_mlflow_models(registry_uri: str = "") -> list[RegisteredModelInfo]:
    """Every version of every distilled model kfp-distill registered in one registry, by name then version."""
    with mlflow_at(registry_uri) as client:
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


def load_mlflow_model(name_or_uri: str, registry_uri: str = "") -> DistilledModel:
    """A registered name's latest version, or a `models:/NAME/VERSION`, loaded.

    Raises:
        LookupError: No model has that name.
        ValueError: The version is not a kfp-distill model (none of its code is run to find out).
    """
    with mlflow_at(registry_uri) as client:
        name, version = _resolve_version(client, name_or_uri)
        student_dir = _download_student(client, name, version)
    return DistilledModel(f"models:/{name}/{version}", *load_student(student_dir))


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
