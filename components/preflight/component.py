"""The preflight pipeline component: a thin KFP wrapper around `report.check_and_report`."""

from kfp import dsl
from kfp.dsl import Markdown, Output

from kfp_distill._implementation.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def preflight(
    teacher_model_reference: str,
    student_model_reference: str,
    report: Output[Markdown],
    project: str = "",
    teacher_api_key_secret: str = "",
    accelerator_type: str = "GPU",
    tensorboard_resource_id: str = "",
    serving_container_image_uri: str = "",
    kfp_distill_image_uri: str = "",
    deploy_model: bool = True,
    deploy_machine_type: str = "n1-standard-2",
    deploy_min_replica_count: int = 1,
    deploy_max_replica_count: int = 1,
    deploy_traffic_percentage: int = 100,
    deploy_min_share_of_teacher: float = 0.0,
):
    """Checks a job's settings before anything is paid for, and stops the run naming every problem at once:
    what would otherwise fail only after the teacher was asked or the student tuned.

    Args:
        teacher_model_reference: The teacher; one that names no teacher, or cannot run (a retired PaLM model,
            refused with the models to use instead; a Vertex AI model without `project`), is refused.
        student_model_reference: The student; a retired PaLM name is refused likewise.
        report: The problems and notes (Markdown).
        project: The job's Google Cloud project; empty: settings that only apply with one are notes.
        teacher_api_key_secret: The Secret Manager secret version of the teacher's key; checked for its form only.
        accelerator_type: The tuning accelerator; only `GPU` is supported (`TPU` not yet).
        tensorboard_resource_id: The Vertex AI TensorBoard for the tuning metrics (a note without a project).
        serving_container_image_uri: The container upload-model registers the distilled model with; empty: ours,
            `kfp_distill_image_uri`. With a project it must be in Artifact Registry or Container Registry.
        kfp_distill_image_uri: Our image, the serving container by default (the pipeline passes KFP_DISTILL_IMAGE
            as it was when compiled); empty: none to check.
        deploy_model: Whether the model is to be deployed; only then are the deploy settings checked.
        deploy_machine_type: The endpoint's machine type.
        deploy_min_replica_count: Replicas the endpoint always runs (at least 1).
        deploy_max_replica_count: Replicas it scales up to (at least the minimum).
        deploy_traffic_percentage: The new deployment's share of the endpoint's traffic (0 to 100).
        deploy_min_share_of_teacher: The deploy gate's share of the teacher's score (0: no gate; not negative).
    """
    # First, while the inputs are all that is bound here: every one but the report is a setting the checks read.
    settings = {name: value for name, value in locals().items() if name != "report"}
    import logging

    from kfp_distill.components.preflight.report import check_and_report

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    check_and_report(settings, report.path)
