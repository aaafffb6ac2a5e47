"""The upload-model component: registers the distilled student and returns its resource name."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Model

from kfp_distill._implementation.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def upload_model(
    model: Input[Model],
    model_display_name: str,
    project: str = "",
    location: str = "",
    registry_uri: str = "",
    encryption_spec_key_name: str = "",
) -> NamedTuple("Outputs", [("model_resource_name", str)]):
    """Registers the tuned student in MLflow's model registry.

    Args:
        model: The tuned student model directory.
        model_display_name: The registered model's name; empty: `distilled-<student>`.
        project: A Google Cloud project: the Vertex AI Model Registry (not available yet); empty: MLflow.
        location: The Vertex AI region to upload to (with project).
        registry_uri: An MLflow tracking URI; empty: the embedded SQLite registry under `$KFP_DISTILL_HOME`.
        encryption_spec_key_name: A Cloud KMS key for the Vertex AI upload (with project).

    Returns:
        model_resource_name: `models:/<name>/<version>`.
    """
    from collections import namedtuple

    from kfp_distill.components.upload_model.registry import register_model

    if project:
        raise NotImplementedError(
            f"uploading to the Vertex AI Model Registry (project '{project}', location '{location or 'default'}') "
            "is tracked in a later issue and not implemented yet; leave project empty to register the model "
            "in MLflow (registry_uri, or the embedded registry)"
        )
    if encryption_spec_key_name:
        print("encryption_spec_key_name applies to the Vertex AI upload only; the MLflow registry ignores it")
    outputs = namedtuple("Outputs", ["model_resource_name"])
    return outputs(register_model(model.path, model_display_name, registry_uri=registry_uri))
