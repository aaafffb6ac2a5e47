"""The tune-student component: distilling step-by-step tuning of the student on labels and rationales."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from kfp_distill._implementation.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune_student(
    distilled_dataset: Input[Dataset],
    evaluation_dataset: Input[Dataset],
    student_model_reference: str,
    teacher_model_reference: str,
    dataset_uri: str,
    model: Output[Model],
    tensorboard_logs: Output[Artifact],
    metrics: Output[Metrics],
    train_steps: int = 300,
    batch_size: int = 8,
    micro_batch_size: int = 0,
    learning_rate_multiplier: float = 1.0,
    evaluation_interval: int = 20,
    enable_early_stopping: bool = True,
    early_stopping_metric: str = "task_metric",
    enable_checkpoint_selection: bool = True,
    tuning_method: str = "full",
    alpha: float = 0.5,
    trust_remote_code: bool = False,
    mixed_precision: str = "auto",
    task_type: str = "",
):
    """Tunes the student on the teacher's labels and rationales (two tasks, one model).

    Args:
        distilled_dataset: generate-rationales' output (input_text, output_text, rationale).
        evaluation_dataset: The labeled evaluation set; an empty file for none.
        student_model_reference: The student to tune (a catalog name, a Hugging Face id, a local path or a URI).
        teacher_model_reference: The teacher that wrote the rationales (recorded in the model card).
        dataset_uri: The training dataset the job was given (recorded in the model card).
        model: The tuned model directory (safetensors, tokenizer, README.md model card, kfp_distill.json and
            training_curves.png, loss and token accuracy by step, shown in the card). Checkpoints are
            written next to it, in `<model path>-checkpoints` (on Vertex AI a Cloud Storage folder that a retried
            task finds again and resumes from), and removed once the model is written.
        tensorboard_logs: TensorBoard event files with the contract's training and evaluation scalars, and
            beside them the task's metrics of the student's generated answers at each evaluation (`/eval_f1`,
            `/eval_exact_match`, `/eval_accuracy`, `/eval_macro_f1`, `/eval_rouge_l` or `/eval_chrf`).
        metrics: Final training loss and token accuracy, evaluation accuracies and the task's metrics of the
            generated answers, steps run, the selected step, speed (tokens/s), peak memory, final learning rate.
        train_steps: Tuning steps (optimizer steps); examples seen = steps x batch size, each as a label and a
            rationale example.
        batch_size: Training rows per tuning step (the contract's batch size).
        micro_batch_size: Rows per forward and backward pass, a divisor of batch_size (gradients are accumulated to
            the batch size: the same step in less memory); 0 (None here): the most rows whose activations fit a
            memory budget (1,024 MiB on a CPU; on a GPU half its memory less weights, gradients and optimizer
            states).
        learning_rate_multiplier: Multiplies the recommended learning rate of the tuning method.
        evaluation_interval: Tuning steps between evaluations (only with evaluation data).
        enable_early_stopping: Stop when the evaluation metric chosen by `early_stopping_metric` stops improving.
        early_stopping_metric: What early stopping watches: `token_accuracy`, the evaluation token accuracy under
            teacher forcing (the contract's meaning), or `task_metric`, the task's main metric (accuracy, SQuAD F1,
            ROUGE-L or chrF) on the answers the student generates for the evaluation rows at each evaluation.
        enable_checkpoint_selection: Return the checkpoint whose generated answers to the evaluation rows scored
            best on the task's main metric instead of the last.
        tuning_method: `full` tunes every weight; `lora` tunes low-rank adapters, merged into the weights at the
            end.
        alpha: Weight of the label loss; the rationale loss gets `1 - alpha`.
        trust_remote_code: Let tuning and evaluation run a student repository's own Python code (auto_map); off,
            such a student is refused. Turn it on only for a source you trust.
        mixed_precision: `auto`: bf16 autocast where the hardware speeds it up (a GPU with bf16, a CPU with
            AVX512-BF16 or AMX), the weights' precision elsewhere; `bf16` and `no` decide it everywhere, e.g. so
            that runs on different machines compare.
        task_type: The task type validate-dataset settled on: its metrics score the student's answers at each
            evaluation, and it is recorded with the model (kfp_distill.json), so that the registered model cuts
            its answers as evaluation scores them (a summary whole, any other answer to its line); empty:
            inferred from the evaluation rows (not recorded without them).
    """
    inputs = dict(locals())  # first, while the inputs are all that is bound here
    from kfp_distill.components.tune_student.config import TuningConfig
    from kfp_distill.components.tune_student.distributed import tune_on_every_device
    from kfp_distill.components.tune_student.tuning import TuningRequest

    config = TuningConfig.from_component_inputs(inputs)
    request = TuningRequest(
        train_path=distilled_dataset.path,
        evaluation_path=evaluation_dataset.path,
        model_dir=model.path,
        tensorboard_dir=tensorboard_logs.path,
        config=config,
        provenance={"teacher_model_reference": teacher_model_reference, "dataset_uri": dataset_uri},
        checkpoint_dir=f"{model.path}-checkpoints",
        task_type=task_type,
    )
    result = tune_on_every_device(request)  # one process per GPU when there are several
    for name, value in result.metrics.items():
        if value is not None:
            metrics.log_metric(name, float(value))
