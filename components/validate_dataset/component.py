"""The validate-dataset pipeline component: a thin KFP wrapper around `validation.validate_dataset`."""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Metrics, Output

from kfp_distill._implementation.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate_dataset(
    dataset_uri: str,
    student_model_reference: str,
    train_dataset: Output[Dataset],
    evaluation_dataset: Output[Dataset],
    report: Output[Markdown],
    metrics: Output[Metrics],
    evaluation_data_uri: str = "",
    accelerator_type: str = "GPU",
    task_type: str = "auto",
    project: str = "",
    teacher_model_reference: str = "",
    teacher_api_key_secret: str = "",
    tensorboard_resource_id: str = "",
    serving_container_image_uri: str = "",
    kfp_distill_image_uri: str = "",
    deploy_model: bool = False,
    deploy_machine_type: str = "n1-standard-2",
    deploy_min_replica_count: int = 1,
    deploy_max_replica_count: int = 1,
    deploy_traffic_percentage: int = 100,
    train_steps: int = 300,
    batch_size: int = 8,
    enable_checkpoint_selection: bool = False,
    use_logged_answers: bool = True,
) -> str:
    """Checks the training and evaluation JSON Lines against the contract, or reads them as logged conversations;
    writes normalized, truncated copies.

    Args:
        dataset_uri: The training dataset (local path, `gs://` or `https://` URI): contract rows, or logged
            conversations in OpenAI chat, Gemini tuning or Amazon Bedrock invocation log format.
        student_model_reference: The student model; its tokenizer counts and truncates tokens.
        train_dataset: The normalized training rows (JSON Lines).
        evaluation_dataset: The normalized evaluation rows (JSON Lines; empty without evaluation data).
        report: The validation report (Markdown).
        metrics: Example, truncation and warning counts.
        evaluation_data_uri: The evaluation dataset (10 to 250 labeled examples), or "" for none.
        accelerator_type: The job's tuning accelerator, checked here so an unsupported one (`TPU`) fails
            before any teacher call.
        task_type: `classification`, `extractive_qa`, `summarization`, `math`, `free_text`, or `auto` to infer
            it from both datasets.
        project: The job's Google Cloud project; empty: settings that only apply with one are notes.
        teacher_model_reference: The teacher; a retired PaLM name stops the run here.
        teacher_api_key_secret: The Secret Manager secret version of the teacher's key; checked for its form only.
        tensorboard_resource_id: The Vertex AI TensorBoard for the tuning metrics (a note without a project).
        serving_container_image_uri: The container upload-model registers the distilled model with; empty: ours,
            `kfp_distill_image_uri`. With a project it must be in Artifact Registry or Container Registry.
        kfp_distill_image_uri: Our image, the serving container by default (the pipeline passes KFP_DISTILL_IMAGE
            as it was when compiled).
        deploy_model: Whether the model is to be deployed; only then are the deploy settings checked.
        deploy_machine_type: The endpoint's machine type.
        deploy_min_replica_count: Replicas the endpoint always runs (at least 1).
        deploy_max_replica_count: Replicas it scales up to (at least the minimum).
        deploy_traffic_percentage: The new deployment's share of the endpoint's traffic (0 to 100).
        train_steps: The tuning steps; the report states the passes over the training examples that steps x
            `batch_size` make, and warns when they are far from the recommended settings for the task type or
            repeat a small dataset many times with the last checkpoint kept.
        batch_size: The examples per tuning step.
        enable_checkpoint_selection: Whether tuning keeps its best evaluated checkpoint instead of the last.
        use_logged_answers: For logged conversations: a conversation's final answer becomes its label, which the
            teacher explains; false: the teacher answers every training prompt afresh. Logged evaluation rows are
            scored against their logged answers either way.

    Returns:
        The task type, given or inferred (the report says why), for the teacher steps and the evaluation.
    """
    import logging

    from kfp_distill._implementation.preflight import check_before_spending
    from kfp_distill.components.validate_dataset.validation import check_accelerator_type
    from kfp_distill.components.validate_dataset.validation import validate_dataset as run_validation

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    check_accelerator_type(accelerator_type)
    # Before the data is read: these stop a job that would fail after the teacher or the tuning was paid for.
    notes = check_before_spending(
        {
            "project": project,
            "teacher_model_reference": teacher_model_reference,
            "student_model_reference": student_model_reference,
            "teacher_api_key_secret": teacher_api_key_secret,
            "tensorboard_resource_id": tensorboard_resource_id,
            "serving_container_image_uri": serving_container_image_uri,
            "kfp_distill_image_uri": kfp_distill_image_uri,
            "deploy_model": deploy_model,
            "deploy_machine_type": deploy_machine_type,
            "deploy_min_replica_count": deploy_min_replica_count,
            "deploy_max_replica_count": deploy_max_replica_count,
            "deploy_traffic_percentage": deploy_traffic_percentage,
        }
    )
    for note in notes:
        logging.getLogger("kfp_distill.preflight").warning(note)
    result = run_validation(
        dataset_uri=dataset_uri,
        evaluation_data_uri=evaluation_data_uri,
        student_model_reference=student_model_reference,
        train_path=train_dataset.path,
        evaluation_path=evaluation_dataset.path,
        report_path=report.path,
        task_type=task_type,
        train_steps=train_steps,
        batch_size=batch_size,
        enable_checkpoint_selection=enable_checkpoint_selection,
        use_logged_answers=use_logged_answers,
    )
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    train_dataset.metadata.update(
        {"examples": result.train.examples, "labeled_examples": result.train.labeled_examples, "kind": result.kind}
    )
    evaluation_examples = result.evaluation.examples if result.evaluation else 0
    evaluation_dataset.metadata.update({"examples": evaluation_examples, "labeled_examples": evaluation_examples})
    return result.task_type.name
