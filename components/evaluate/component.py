"""The evaluate component: the distilled student against the untuned student and the teacher."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from kfp_distill._implementation.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    evaluation_dataset: Input[Dataset],
    teacher_predictions: Input[Dataset],
    student_model_reference: str,
    metrics: Output[Metrics],
    report: Output[Markdown],
    html_report: Output[HTML],
    classification_metrics: Output[ClassificationMetrics],
    tensorboard_logs: Input[Artifact] = None,
    task_type: str = "auto",
    trust_remote_code: bool = False,
):
    """Scores the teacher, the untuned student and the distilled student on the evaluation set.

    Args:
        model: The tuned student model directory.
        evaluation_dataset: The labeled evaluation set (JSON Lines).
        teacher_predictions: generate-rationales' output on the evaluation set (teacher labels and latencies).
        student_model_reference: The student before tuning.
        metrics: Per model the task's metrics, accuracy, mean latency and examples/s; example count and the
            speedup over the teacher.
        report: A Markdown report: task type, results table and the distilled student's worst examples.
        html_report: A self-contained HTML report: results, training curves, latency and throughput, worst examples.
        classification_metrics: The distilled student's confusion matrix; left empty unless the task is
            classification.
        tensorboard_logs: tune-student's TensorBoard logs, plotted as training curves in the HTML report.
        task_type: `auto` (inferred from the evaluation set), classification, extractive_qa, summarization,
            math or free_text.
        trust_remote_code: Run the student repository's own Python code, if it has some (off: refused).
    """
    from kfp_distill.components.evaluate.evaluation import evaluate_student

    result = evaluate_student(
        model_dir=model.path,
        evaluation_path=evaluation_dataset.path,
        teacher_predictions_path=teacher_predictions.path,
        student_model_reference=student_model_reference,
        report_path=report.path,
        task_type=task_type,
        html_report_path=html_report.path,
        tensorboard_dir=tensorboard_logs.path if tensorboard_logs is not None else None,
        trust_remote_code=trust_remote_code,
    )
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    confusion = result.confusion_matrix()
    if confusion is not None:
        classification_metrics.log_confusion_matrix(*confusion)
