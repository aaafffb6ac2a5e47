"""The evaluate component: the distilled student against the untuned student and the teacher."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from kfp_distill._implementation.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    evaluation_dataset: Input[Dataset],
    teacher_predictions: Input[Dataset],
    student_model_reference: str,
    metrics: Output[Metrics],
    report: Output[Markdown],
):
    """Scores the teacher, the untuned student and the distilled student on the evaluation set.

    Args:
        model: The tuned student model directory.
        evaluation_dataset: The labeled evaluation set (JSON Lines).
        teacher_predictions: generate-rationales' output on the evaluation set (teacher labels and latencies).
        student_model_reference: The student before tuning.
        metrics: Accuracies, mean latencies, example count and the speedup over the teacher.
        report: A Markdown report: results table and the distilled student's worst examples.
    """
    from kfp_distill.components.evaluate.evaluation import evaluate_student

    result = evaluate_student(
        model_dir=model.path,
        evaluation_path=evaluation_dataset.path,
        teacher_predictions_path=teacher_predictions.path,
        student_model_reference=student_model_reference,
        report_path=report.path,
    )
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
