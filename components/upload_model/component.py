"""The upload-model component: registers the distilled student and returns its resource name."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from kfp_distill._implementation.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def upload_model(
    model: Input[Model],
    model_display_name: str = "",
    project: str = "",
    location: str = "",
    registry_uri: str = "",
    encryption_spec_key_name: str = "",
    staging_bucket: str = "",
    serving_container_image_uri: str = "",
    tensorboard_logs: Input[Artifact] = None,
    tensorboard_resource_id: str = "",
    pipeline_job_name: str = "",
    kfp_distill_image_uri: str = "",
    gate_decision: str = "",
    gate_reason: str = "",
) -> NamedTuple("Outputs", [("model_resource_name", str)]):
    """Registers the tuned student: in the Vertex AI Model Registry with a project, else in MLflow's; with a
    project and a Vertex AI TensorBoard, copies the tuning scalars there too.

    Args:
        model: The tuned student model directory.
        model_display_name: The registered model's name; empty: `distilled-<student>`.
        project: A Google Cloud project: upload to its Vertex AI Model Registry; empty: MLflow.
        location: The Vertex AI region to upload to (with project); empty: the job's region, else us-central1.
        registry_uri: An MLflow tracking URI; empty: the embedded SQLite registry under `$KFP_DISTILL_HOME`.
        encryption_spec_key_name: A Cloud KMS key for the Vertex AI model (with project).
        staging_bucket: A `gs://` folder for the model when it is not in Cloud Storage yet (with a project).
        serving_container_image_uri: With a project, the container Vertex AI serves the distilled model with, run as
            its own contract says; it must be in Artifact Registry (`LOCATION-docker.pkg.dev/...`) or Container
            Registry (`gcr.io/...`), which the preflight step checks first. Empty: the kfp-distill image
            (KFP_DISTILL_IMAGE when compiled) running `kfp-distill serve`.
        tensorboard_logs: tune-student's TensorBoard event files, copied to tensorboard_resource_id.
        tensorboard_resource_id: A Vertex AI TensorBoard instance (same region as the job) to receive the tuning
            metrics, `projects/P/locations/L/tensorboards/ID` or a bare ID in `project`: upload-model copies
            tune-student's scalars into an experiment named after the pipeline job (run `tune-student`). Needs
            `project`; without one nothing is sent.
        pipeline_job_name: The pipeline job's name, the TensorBoard experiment's; empty: model_display_name (or
            `kfp-distill` when that is empty too).
        kfp_distill_image_uri: Our image, the serving container by default: the pipeline passes KFP_DISTILL_IMAGE
            as it was when compiled (the image the steps run in); empty: KFP_DISTILL_IMAGE in this task's
            environment, else the default name. Vertex AI pulls it only from Artifact Registry or Container
            Registry, which is checked before the upload.
        gate_decision: The deploy gate's decision (evaluate's output), recorded on the registered model: the
            `deploy_gate` label in Vertex AI, tag in MLflow; empty: none recorded.
        gate_reason: Why the gate decided so, recorded beside it (`deploy_gate_reason` tag, the description).

    Returns:
        model_resource_name: `projects/PROJECT/locations/LOCATION/models/ID`, or `models:/<name>/<version>`.
    """
    from collections import namedtuple

    from kfp_distill._implementation.deploy_gate import GateDecision
    from kfp_distill.components.upload_model.upload import upload_model as upload

    outputs = namedtuple("Outputs", ["model_resource_name"])
    return outputs(
        upload(
            model_dir=model.path,
            model_uri=model.uri,
            model_display_name=model_display_name,
            project=project,
            location=location,
            registry_uri=registry_uri,
            encryption_spec_key_name=encryption_spec_key_name,
            staging_bucket=staging_bucket,
            serving_container_image_uri=serving_container_image_uri,
            tensorboard_dir=tensorboard_logs.path if tensorboard_logs is not None else None,
            tensorboard_resource_id=tensorboard_resource_id,
            pipeline_job_name=pipeline_job_name,
            kfp_distill_image_uri=kfp_distill_image_uri,
            gate=GateDecision(gate_decision, gate_reason) if gate_decision else None,
        )
    )
