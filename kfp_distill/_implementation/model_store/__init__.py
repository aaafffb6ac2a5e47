"""The model store: the distilled students upload-model registered, listed, loaded by name and asked.

Two backends stand behind it, as the teachers stand behind generate-rationales' `backend_for`:

  * MLflow (`mlflow_backend`): a registered name (its latest version) or `models:/NAME/VERSION`, in the
    embedded registry under `$KFP_DISTILL_HOME` or any MLflow tracking URI;
  * Vertex AI (`vertex_backend`): a model resource name, `projects/P/locations/L/models/ID[@VERSION]`, or with
    a project, that project's Vertex AI Model Registry.

`kfp-distill models list`, `predict` and `serve` go through it; upload-model writes what it reads (the MLflow
tags and Vertex AI labels named in the backends).
"""

from __future__ import annotations

from kfp_distill._implementation.model_store.base import DistilledModel, RegisteredModelInfo, answer, load_student
from kfp_distill._implementation.model_store.mlflow_backend import list_mlflow_models, load_mlflow_model
from kfp_distill._implementation.model_store.vertex_backend import (
    is_resource_name,
    list_vertex_models,
    load_vertex_model,
)

__all__ = ["DistilledModel", "RegisteredModelInfo", "answer", "list_models", "load_model", "load_student"]


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
        return list_vertex_models(project, location)
    return list_mlflow_models(registry_uri)


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
    if is_resource_name(name_or_uri):
        return load_vertex_model(name_or_uri)
    return load_mlflow_model(name_or_uri, registry_uri)
