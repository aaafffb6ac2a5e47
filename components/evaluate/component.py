"""The evaluate component: the distilled student against the untuned student and the teacher; and the deploy
gate's stand-in for a run without evaluation data."""

from typing import NamedTuple

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
    task_type_reason: str = "",
    trust_remote_code: bool = False,
    min_share_of_teacher: float = 0.0,
    gate_on_lower_bound: bool = False,
) -> NamedTuple("Outputs", [("gate_decision", str), ("gate_reason", str)]):
    """Scores the teacher, the untuned student and the distilled student on the evaluation set, each score with
    its 95% interval, and judges whether the distilled student may be deployed.

    Args:
        model: The tuned student model directory.
        evaluation_dataset: The labeled evaluation set (JSON Lines).
        teacher_predictions: generate-rationales' output on the evaluation set (teacher labels and latencies).
        student_model_reference: The student before tuning.
        metrics: Per model the task's metrics, accuracy, mean latency and examples/s; the distilled student's
            scores less the teacher's; a 95% interval (`_ci_low`, `_ci_high`) beside every score; example count
            and the speedup over the teacher.
        report: A Markdown report: task type, results table with intervals, the deploy gate's decision and the
            distilled student's worst examples.
        html_report: A self-contained HTML report: results, training curves, latency and throughput, worst examples.
        classification_metrics: The distilled student's confusion matrix; left empty unless the task is
            classification.
        tensorboard_logs: tune-student's TensorBoard logs, plotted as training curves in the HTML report.
        task_type: `auto` (inferred from the evaluation set), classification, extractive_qa, summarization,
            math or free_text.
        task_type_reason: How `task_type` was chosen, as validate-dataset states it, for the report; empty:
            the report says how evaluate chose it.
        trust_remote_code: Run the student repository's own Python code, if it has some (off: refused).
        min_share_of_teacher: The deploy gate: the share of the teacher's score on the task's main metric (accuracy,
            SQuAD F1, ROUGE-L or chrF) that the distilled student must reach on the evaluation rows to be deployed,
            0.9 for 90%; a student below it, or one without evaluation rows to judge it on, is registered with the
            decision recorded, not deployed. 0: no gate.
        gate_on_lower_bound: Hold the deploy gate to the lower bound of the 95% interval (paired bootstrap over the
            evaluation rows) of the student's score less that share of the teacher's: the student is deployed only
            when it reaches the share with that confidence.

    Returns:
        gate_decision: `passed`, `failed` or `off` (min_share_of_teacher 0); deploy-model deploys only `passed`
            and `off`.
        gate_reason: Why, with the two scores.
    """
    from collections import namedtuple

    from kfp_distill.components.evaluate.evaluation import evaluate_student

    result = evaluate_student(
        model_dir=model.path,
        evaluation_path=evaluation_dataset.path,
        teacher_predictions_path=teacher_predictions.path,
        student_model_reference=student_model_reference,
        report_path=report.path,
        task_type=task_type,
        task_type_reason=task_type_reason,
        html_report_path=html_report.path,
        tensorboard_dir=tensorboard_logs.path if tensorboard_logs is not None else None,
        trust_remote_code=trust_remote_code,
        min_share_of_teacher=min_share_of_teacher,
        gate_on_lower_bound=gate_on_lower_bound,
    )
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    confusion = result.confusion_matrix()
    if confusion is not None:
        classification_metrics.log_confusion_matrix(*confusion)
    print(f"deploy gate {result.gate}")
    return namedtuple("Outputs", ["gate_decision", "gate_reason"])(result.gate.decision, result.gate.reason)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def gate_without_evaluation(
    min_share_of_teacher: float = 0.0,
) -> NamedTuple("Outputs", [("gate_decision", str), ("gate_reason", str)]):
    """The deploy gate's decision in a run without evaluation data, where evaluate does not run.

    Args:
        min_share_of_teacher: evaluate's input of that name; 0: the gate is off.

    Returns:
        gate_decision: `off` when min_share_of_teacher is 0, else `not judged` (not deployed).
        gate_reason: Why, and what to do.
    """
    from collections import namedtuple

    from kfp_distill._implementation.deploy_gate import without_evaluation

    gate = without_evaluation(min_share_of_teacher)
    print(f"deploy gate {gate}")
    return namedtuple("Outputs", ["gate_decision", "gate_reason"])(gate.decision, gate.reason)
