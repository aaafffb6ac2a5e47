"""The validate-dataset pipeline component: a thin KFP wrapper around `validation.validate_dataset`."""

from typing import NamedTuple

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
    task_type: str = "auto",
    train_steps: int = 300,
    batch_size: int = 8,
    enable_checkpoint_selection: bool = False,
    use_logged_answers: bool = True,
) -> NamedTuple("Outputs", [("task_type", str), ("task_type_reason", str)]):
    """Checks the training and evaluation JSON Lines against the contract, or reads them as logged conversations;
    writes normalized, truncated copies.

    Args:
        dataset_uri: JSON Lines training data (`input_text`, optional `output_text`; a local path, `gs://` or
            `https://` URI), or an application's logged conversations in OpenAI chat, Gemini tuning or Amazon
            Bedrock invocation log format (docs/logs.md).
        student_model_reference: The student model; its tokenizer counts and truncates tokens.
        train_dataset: The normalized training rows (JSON Lines).
        evaluation_dataset: The normalized evaluation rows (JSON Lines; empty without evaluation data).
        report: The validation report (Markdown).
        metrics: Example, truncation and warning counts.
        evaluation_data_uri: Evaluation data (10 to 250 labeled examples); enables evaluation. Empty: none.
        task_type: `classification`, `extractive_qa`, `summarization`, `math` or `free_text`: the teacher's
            instruction, how answers are compared and which metrics the evaluation reports; `auto`: inferred once by
            validate-dataset from the training and evaluation data.
        train_steps: The tuning steps; the report states the passes over the training examples that steps x
            `batch_size` make, and warns when they are far from the recommended settings for the task type or
            repeat a small dataset many times with the last checkpoint kept.
        batch_size: The examples per tuning step.
        enable_checkpoint_selection: Whether tuning keeps its best evaluated checkpoint instead of the last.
        use_logged_answers: For logged conversations: a conversation's final answer becomes its `output_text`, a
            label the teacher explains; false: the teacher answers every training prompt afresh. Logged evaluation
            rows are scored against their logged answers either way.

    Returns:
        task_type: The task type, given or inferred, for the teacher steps, tuning and the evaluation.
        task_type_reason: How it was chosen, as the report states it (given as the parameter, or inferred and
            from which sign in the examples), for the evaluation report.
    """
    import logging
    from collections import namedtuple

    from kfp_distill.components.validate_dataset.validation import validate_dataset as run_validation

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
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
    outputs = namedtuple("Outputs", ["task_type", "task_type_reason"])
    return outputs(result.task_type.name, result.task_type.how_chosen)
