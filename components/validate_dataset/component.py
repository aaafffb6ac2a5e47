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
) -> str:
    """Checks the training and evaluation JSON Lines against the contract; writes normalized, truncated copies.

    Args:
        dataset_uri: The training dataset (local path, `gs://` or `https://` URI).
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

    Returns:
        The task type, given or inferred (the report says why), for the teacher steps and the evaluation.
    """
    import logging

    from kfp_distill.components.validate_dataset.validation import check_accelerator_type
    from kfp_distill.components.validate_dataset.validation import validate_dataset as run_validation

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    check_accelerator_type(accelerator_type)
    result = run_validation(
        dataset_uri=dataset_uri,
        evaluation_data_uri=evaluation_data_uri,
        student_model_reference=student_model_reference,
        train_path=train_dataset.path,
        evaluation_path=evaluation_dataset.path,
        report_path=report.path,
        task_type=task_type,
    )
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    train_dataset.metadata.update(
        {"examples": result.train.examples, "labeled_examples": result.train.labeled_examples, "kind": result.kind}
    )
    evaluation_examples = result.evaluation.examples if result.evaluation else 0
    evaluation_dataset.metadata.update({"examples": evaluation_examples, "labeled_examples": evaluation_examples})
    return result.task_type.name
