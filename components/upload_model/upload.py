"""Where upload-model registers the tuned student: the Vertex AI Model Registry (with the tuning scalars in a
Vertex AI TensorBoard when one is named) with a project, else an MLflow registry."""

from __future__ import annotations

from kfp_distill._implementation.deploy_gate import GateDecision
from kfp_distill._implementation.settings import IMAGE

from .registry import register_model
from .tensorboard import upload_tensorboard_scalars
from .vertex import register_vertex_model


def upload_model(
    model_dir: str,
    model_uri: str,
    model_display_name: str,
    project: str = "",
    location: str = "",
    registry_uri: str = "",
    encryption_spec_key_name: str = "",
    staging_bucket: str = "",
    serving_container_image_uri: str = "",
    tensorboard_dir: str | None = None,
    tensorboard_resource_id: str = "",
    pipeline_job_name: str = "",
    kfp_distill_image_uri: str = "",
    gate: GateDecision | None = None,
) -> str:
    """Registers the tuned student (the upload-model component's work; its docstring describes the settings).

    Args:
        model_dir: The tuned student directory.
        model_uri: The same directory's URI: a `gs://` one is uploaded to Vertex AI in place.
        tensorboard_dir: tune-student's TensorBoard event files; None: none.
        gate: The deploy gate's decision, recorded on the registered model; None: none.

    Returns:
        The model resource name: `projects/PROJECT/locations/LOCATION/models/ID`, or `models:/<name>/<version>`.
    """
    if project:
        if tensorboard_resource_id and tensorboard_dir is not None:
            # Before the model: a retry after a TensorBoard failure then registers the model once. Rewriting
            # the scalars is idempotent. A bare TensorBoard ID is looked up in the job's region (the SDK's
            # default), as the contract places the instance there; `location` is where the model goes.
            experiment = upload_tensorboard_scalars(
                tensorboard_dir, tensorboard_resource_id, pipeline_job_name or model_display_name, project=project
            )
            print(f"tuning metrics in Vertex AI TensorBoard experiment {experiment}")
        return register_vertex_model(
            model_dir,
            model_display_name,
            project=project,
            location=location,
            artifact_uri=model_uri if model_uri.startswith("gs://") else "",
            staging_bucket=staging_bucket,
            encryption_spec_key_name=encryption_spec_key_name,
            serving_container_image_uri=serving_container_image_uri,
            kfp_distill_image_uri=kfp_distill_image_uri or IMAGE,
            gate=gate,
        )
    if encryption_spec_key_name:
        print("encryption_spec_key_name applies to the Vertex AI upload only; the MLflow registry ignores it")
    if tensorboard_resource_id:
        print("tensorboard_resource_id needs a project (without one nothing is sent to Google Cloud): not uploaded")
    return register_model(model_dir, model_display_name, registry_uri=registry_uri, gate=gate)
