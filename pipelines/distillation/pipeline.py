"""The `distillation` pipeline: validate, teach, tune, evaluate, register."""

from kfp import dsl

from kfp_distill._implementation.models import DEFAULT_STUDENT, DEFAULT_TEACHER
from kfp_distill.components.evaluate.component import evaluate
from kfp_distill.components.generate_rationales.component import generate_rationales
from kfp_distill.components.tune_student.component import tune_student
from kfp_distill.components.upload_model.component import upload_model
from kfp_distill.components.validate_dataset.component import validate_dataset


@dsl.pipeline(
    name="distillation",
    description="Distilling step-by-step: a teacher labels and explains examples, a student learns both.",
)
def distillation(
    dataset_uri: str,
    project: str = "",
    location: str = "",
    model_display_name: str = "",
    accelerator_type: str = "GPU",
    teacher_model_reference: str = DEFAULT_TEACHER,
    student_model_reference: str = DEFAULT_STUDENT,
    train_steps: int = 300,
    learning_rate_multiplier: float = 1.0,
    evaluation_data_uri: str = "",
    evaluation_interval: int = 20,
    enable_early_stopping: bool = True,
    enable_checkpoint_selection: bool = False,
    tensorboard_resource_id: str = "",
    encryption_spec_key_name: str = "",
    batch_size: int = 8,
    tuning_method: str = "full",
    alpha: float = 0.5,
    teacher_prompt_template: str = "",
    teacher_few_shot_uri: str = "",
    teacher_max_new_tokens: int = 256,
    teacher_cache_uri: str = "",
    teacher_max_concurrency: int = 8,
    teacher_max_total_tokens: int = 0,
    registry_uri: str = "",
) -> str:
    """Distils a teacher into a student and registers the result.

    Args:
        dataset_uri: JSON Lines training data (`input_text`, optional `output_text`).
        project: Google Cloud project; empty keeps everything off Google Cloud.
        location: Region the distilled model is uploaded to.
        model_display_name: Display name of the distilled model.
        accelerator_type: `GPU` or `TPU` on Vertex AI; local runs use the machine's own device.
        teacher_model_reference: The teacher: a catalog name, a GGUF path or URI, `<base_url>#<model>` for
            an OpenAI-compatible server, or `precomputed` when the data carries rationales.
        student_model_reference: The student: a catalog name, a Hugging Face id, a local path or a URI.
        train_steps: Tuning steps; examples seen = steps x batch size.
        learning_rate_multiplier: Multiplies the recommended learning rate.
        evaluation_data_uri: Evaluation data (10 to 250 labeled examples); enables evaluation.
        evaluation_interval: Tuning steps between evaluations.
        enable_early_stopping: Stop when evaluation token accuracy stops improving.
        enable_checkpoint_selection: Return the best evaluated checkpoint instead of the last.
        tensorboard_resource_id: A Vertex AI TensorBoard instance for the metrics.
        encryption_spec_key_name: A customer-managed encryption key.
        batch_size: Examples per tuning step.
        tuning_method: `full` or `lora`.
        alpha: Weight of the label loss; the rationale loss gets `1 - alpha`.
        teacher_prompt_template: Overrides the teacher's user-turn template (`{input_text}`, `{output_text}`).
        teacher_few_shot_uri: JSON Lines of worked examples (`input_text`, `rationale`, `output_text`).
        teacher_max_new_tokens: Longest teacher completion.
        teacher_cache_uri: Where the teacher's answers are kept, so a re-run re-asks nothing.
        teacher_max_concurrency: Teacher requests in flight at once (HTTP endpoints).
        teacher_max_total_tokens: Token budget of each teacher step's requests; 0: no cap.
        registry_uri: An MLflow tracking URI; empty uses the embedded SQLite registry.

    Returns:
        The registered model's resource name.
    """
    validation = validate_dataset(
        dataset_uri=dataset_uri,
        evaluation_data_uri=evaluation_data_uri,
        student_model_reference=student_model_reference,
    ).set_display_name("validate-dataset")

    # The teacher labels the training rows and answers the evaluation rows with the same prompt and cache.
    teacher_settings = dict(
        teacher_model_reference=teacher_model_reference,
        prompt_template=teacher_prompt_template,
        few_shot_uri=teacher_few_shot_uri,
        max_new_tokens=teacher_max_new_tokens,
        cache_uri=teacher_cache_uri,
        max_concurrency=teacher_max_concurrency,
        max_total_tokens=teacher_max_total_tokens,
    )
    teaching = generate_rationales(
        dataset=validation.outputs["train_dataset"], **teacher_settings
    ).set_display_name("generate-rationales")

    tuning = tune_student(
        distilled_dataset=teaching.outputs["distilled_dataset"],
        evaluation_dataset=validation.outputs["evaluation_dataset"],
        student_model_reference=student_model_reference,
        teacher_model_reference=teacher_model_reference,
        dataset_uri=dataset_uri,
        train_steps=train_steps,
        batch_size=batch_size,
        learning_rate_multiplier=learning_rate_multiplier,
        evaluation_interval=evaluation_interval,
        enable_early_stopping=enable_early_stopping,
        enable_checkpoint_selection=enable_checkpoint_selection,
        tuning_method=tuning_method,
        alpha=alpha,
    ).set_display_name("tune-student")

    with dsl.If(evaluation_data_uri != "", name="evaluation-data-given"):
        teacher_on_evaluation = generate_rationales(
            dataset=validation.outputs["evaluation_dataset"], use_gold_labels=False, **teacher_settings
        ).set_display_name("teacher-on-evaluation-data")
        evaluate(
            model=tuning.outputs["model"],
            evaluation_dataset=validation.outputs["evaluation_dataset"],
            teacher_predictions=teacher_on_evaluation.outputs["distilled_dataset"],
            student_model_reference=student_model_reference,
        ).set_display_name("evaluate")

    upload = upload_model(
        model=tuning.outputs["model"],
        model_display_name=model_display_name,
        project=project,
        location=location,
        registry_uri=registry_uri,
        encryption_spec_key_name=encryption_spec_key_name,
    ).set_display_name("upload-model")
    return upload.outputs["model_resource_name"]
