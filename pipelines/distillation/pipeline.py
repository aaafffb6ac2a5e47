"""The `distillation` pipeline: check the settings, validate, teach, tune, evaluate, register."""

from typing import NamedTuple

from google_cloud_pipeline_components import _placeholders as google_cloud_placeholders
from google_cloud_pipeline_components.v1.custom_job import create_custom_training_job_from_component
from kfp import dsl, kubernetes

from kfp_distill import DEFAULT_STUDENT, DEFAULT_TEACHER, IMAGE, TEACHER_API_KEY_ENV
from kfp_distill.components.deploy_model.component import deploy_registered_model
from kfp_distill.components.evaluate.component import evaluate, gate_without_evaluation
from kfp_distill.components.generate_rationales.component import generate_rationales
from kfp_distill.components.preflight.component import preflight
from kfp_distill.components.tune_student.component import tune_student
from kfp_distill.components.upload_model.component import upload_model
from kfp_distill.components.validate_dataset.component import validate_dataset

# accelerator_type "GPU" on Vertex AI: the contract's tuning machine, one node with 8 x NVIDIA A100 80GB.
VERTEX_AI_GPU_MACHINE = {
    "machine_type": "a2-ultragpu-8g",
    "accelerator_type": "NVIDIA_A100_80GB",
    "accelerator_count": 8,
}

# The same tune-student component, run as a Vertex AI custom job on that machine. Named apart from the in-process
# task so the compiled YAML and the Vertex AI console tell the two branches apart.
tune_student_on_vertex_ai = create_custom_training_job_from_component(
    tune_student, display_name="kfp-distill-tune-student", **VERTEX_AI_GPU_MACHINE
)
tune_student_on_vertex_ai.component_spec.name = "tune-student-on-vertex-ai"

# On Kubeflow the teacher's key comes from this field of a Kubernetes secret (its name a pipeline parameter).
KUBERNETES_SECRET_KEY = "api_key"
DEFAULT_KUBERNETES_SECRET = "kfp-distill-teacher-api-key"


def _teacher_key_from_kubernetes_secret(task: dsl.PipelineTask, secret_name) -> None:
    """Mounts the secret's `api_key` as the variable the teacher reads; optional, so a pod without it starts.

    Only Kubeflow reads this (compiled/distillation-kubeflow.yaml); Vertex AI and kfp.local ignore it.
    """
    kubernetes.use_secret_as_env(
        task, secret_name=secret_name, secret_key_to_env={KUBERNETES_SECRET_KEY: TEACHER_API_KEY_ENV}, optional=True
    )


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
    early_stopping_metric: str = "task_metric",
    enable_checkpoint_selection: bool = True,
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
    teacher_self_consistency_samples: int = 1,
    teacher_answer_format: str = "auto",
    teacher_probe_rows: int = 8,
    teacher_rationale_length: str = "detailed",
    teacher_min_answered_fraction: float = 0.9,
    teacher_api_key_secret: str = "",
    teacher_api_key_kubernetes_secret: str = DEFAULT_KUBERNETES_SECRET,
    class_names: str = "",
    drop_contradicting_rationales: bool = False,
    registry_uri: str = "",
    serving_container_image_uri: str = "",
    deploy_model: bool = True,
    deploy_machine_type: str = "n1-standard-2",
    deploy_min_replica_count: int = 1,
    deploy_max_replica_count: int = 1,
    deploy_traffic_percentage: int = 100,
    deploy_min_share_of_teacher: float = 0.0,
    deploy_gate_on_lower_bound: bool = False,
    task_type: str = "auto",
    trust_remote_code: bool = False,
    use_logged_answers: bool = True,
) -> NamedTuple("Outputs", [("model_resource_name", str), ("endpoint_resource_name", str)]):
    """Distils a teacher into a student and registers the result.

    Args:
        dataset_uri: JSON Lines training data (`input_text`, optional `output_text`; a local path, `gs://` or
            `https://` URI), or an application's logged conversations in OpenAI chat, Gemini tuning or Amazon
            Bedrock invocation log format (docs/logs.md).
        project: Google Cloud project; empty keeps everything off Google Cloud.
        location: Region the distilled model is uploaded to, and where a Vertex AI teacher runs.
        model_display_name: The registered model's name; empty: `distilled-<student>`.
        accelerator_type: `GPU`: with a project, tuning runs as a Vertex AI custom job on 8 x NVIDIA A100 80GB;
            without one, in the pipeline's own process or pod, on its devices. `TPU` is not supported yet:
            the preflight step stops the run before the teacher is asked anything.
        teacher_model_reference: The teacher, e.g. `qwen2.5-coder-1.5b-instruct` (llama.cpp, the default),
            `http://127.0.0.1:8080/v1#qwen` (an OpenAI-compatible server), `gemini-2.5-flash` (Vertex AI, in
            `project` and `location`), `hf:Qwen/Qwen2.5-7B-Instruct` or `precomputed` (the data carries rationales);
            every form, and which wins where two could apply: docs/teachers.md.
        student_model_reference: The student: a catalog name, a Hugging Face id, a local path or a URI.
        train_steps: Tuning steps (optimizer steps); examples seen = steps x batch size, each as a label and a
            rationale example.
        learning_rate_multiplier: Multiplies the recommended learning rate of the tuning method.
        evaluation_data_uri: Evaluation data (10 to 250 labeled examples); enables evaluation. Empty: none.
        evaluation_interval: Tuning steps between evaluations (only with evaluation data).
        enable_early_stopping: Stop when the evaluation metric chosen by `early_stopping_metric` stops improving.
        early_stopping_metric: What early stopping watches: `token_accuracy`, the evaluation token accuracy under
            teacher forcing (the contract's meaning), or `task_metric`, the task's main metric (accuracy, SQuAD
            F1, ROUGE-L or chrF) on the answers the student generates for the evaluation rows at each evaluation.
        enable_checkpoint_selection: Return the checkpoint whose generated answers to the evaluation rows scored
            best on the task's main metric instead of the last.
        tensorboard_resource_id: A Vertex AI TensorBoard instance (same region as the job) to receive the
            tuning metrics, `projects/P/locations/L/tensorboards/ID` or a bare ID in `project`: upload-model
            copies tune-student's scalars into an experiment named after the pipeline job (run `tune-student`).
            Needs `project`; without one nothing is sent.
        encryption_spec_key_name: A customer-managed encryption key.
        batch_size: Training rows per tuning step (the contract's batch size).
        tuning_method: `full` tunes every weight; `lora` tunes low-rank adapters, merged into the weights at the
            end.
        alpha: Weight of the label loss; the rationale loss gets `1 - alpha`.
        teacher_prompt_template: The teacher's user turn, with `{input_text}` (and `{output_text}` when it explains
            labels); empty: the question as it is.
        teacher_few_shot_uri: JSON Lines of worked examples (`input_text`, `rationale`, `output_text`); empty: up to
            4 labeled rows explained by the teacher, or zero-shot when no row has a label.
        teacher_max_new_tokens: The most tokens the teacher writes per answer.
        teacher_cache_uri: Where the teacher's answers are kept, so a re-run re-asks nothing: an SQLite file, a
            local path or a gs:// URI copied down and back as answers arrive; empty: `<pipeline
            root>/teacher-cache/<teacher>-<digest>.sqlite`, found again by retried tasks and later runs (outside a
            pipeline, the kfp-distill cache folder).
        teacher_max_concurrency: Teacher requests in flight at once (HTTP endpoints; llama.cpp asks one at a time).
        teacher_max_total_tokens: Token budget of each teacher step's requests (answers from the cache are free);
            the rows left are reported "not asked: budget reached". 0: no cap.
        teacher_self_consistency_samples: Answers sampled per example, each with its own seed at the
            self-consistency temperature (0.7 unless set otherwise); above 1 the majority answer becomes the
            teacher's label. Tokens and cost count every sample.
        teacher_answer_format: `json` (rationale and answer held to a JSON schema where the teacher's backend
            supports it: llama.cpp, OpenAI-compatible servers, Gemini), `text` ("... The answer is X."), or `auto`:
            `json` where supported, else `text` (also when a server refuses it).
        teacher_probe_rows: Rows each teacher step asks first; it stops, saying what the teacher said and what
            to do, when fewer than half of them got a usable answer. 0: no probe.
        teacher_rationale_length: `concise` (one or two sentences, as the paper's rationales are) or `detailed` (as
            long as the task needs): what the teacher is asked to write.
        teacher_min_answered_fraction: A teacher step fails when a smaller share of the rows it asked about got a
            usable answer; it stops as soon as that is certain.
        teacher_api_key_secret: A Secret Manager secret version (`projects/P/secrets/S/versions/latest`) holding an
            OpenAI-compatible teacher's API key, read by the teacher steps at run time with the job's service
            account (it needs roles/secretmanager.secretAccessor on the secret). The key itself is never a
            parameter: parameters are recorded in the job. Empty: the key comes from the step's environment.
        teacher_api_key_kubernetes_secret: On Kubeflow (compiled/distillation-kubeflow.yaml), the Kubernetes secret
            in the run's namespace whose `api_key` becomes the teacher steps' KFP_DISTILL_TEACHER_API_KEY; a missing
            secret leaves it unset. Vertex AI and kfp.local ignore it.
        class_names: Comma-separated classes of a classification task (the teacher's answer is held to them);
            empty: from the labels, else from the instruction in the inputs (`classes: [a, b]`).
        drop_contradicting_rationales: Leave out of the training data the labeled examples whose teacher
            answer contradicts the label (the evaluation step keeps them, to score the teacher fairly).
        registry_uri: An MLflow tracking URI; empty: the embedded SQLite registry under `$KFP_DISTILL_HOME`.
        serving_container_image_uri: With a project, the container Vertex AI serves the distilled model with, run as
            its own contract says; it must be in Artifact Registry (`LOCATION-docker.pkg.dev/...`) or Container
            Registry (`gcr.io/...`), which the preflight step checks first. Empty: the kfp-distill image
            (KFP_DISTILL_IMAGE when compiled) running `kfp-distill serve`.
        deploy_model: With a project, deploy the registered model to the Vertex AI endpoint of its display name
            (created, with encryption_spec_key_name, when there is none; found and reused when there is), served by
            the kfp-distill image (or serving_container_image_uri) as the pipeline job's service account. Without a
            project, or false, nothing is deployed: serve the model with `kfp-distill serve`.
        deploy_machine_type: The endpoint's machine type (a small CPU machine by default).
        deploy_min_replica_count: Replicas the endpoint always runs.
        deploy_max_replica_count: Replicas the endpoint scales up to under load.
        deploy_traffic_percentage: The share (0-100) of the endpoint's traffic the new deployment gets; models
            already deployed there share the rest.
        deploy_min_share_of_teacher: The deploy gate: the share of the teacher's score on the task's main metric
            (accuracy, SQuAD F1, ROUGE-L or chrF) that the distilled student must reach on the evaluation rows to
            be deployed, 0.9 for 90%; a student below it, or one without evaluation rows to judge it on, is
            registered with the decision recorded, not deployed. 0: no gate.
        deploy_gate_on_lower_bound: Hold the deploy gate to the lower bound of the 95% interval (paired
            bootstrap over the evaluation rows) of the student's score less that share of the teacher's: the
            student is deployed only when it reaches the share with that confidence.
        task_type: `classification`, `extractive_qa`, `summarization`, `math` or `free_text`: the teacher's
            instruction, how answers are compared and which metrics the evaluation reports; `auto`: inferred
            once by validate-dataset from the training and evaluation data.
        trust_remote_code: Let tuning and evaluation run a student repository's own Python code (auto_map);
            off, such a student is refused. Turn it on only for a source you trust.
        use_logged_answers: For logged conversations: a conversation's final answer becomes its `output_text`, a
            label the teacher explains; false: the teacher answers every training prompt afresh. Logged evaluation
            rows are scored against their logged answers either way.

    Returns:
        model_resource_name: The registered model's resource name.
        endpoint_resource_name: The Vertex AI endpoint the model was deployed to; empty when nothing was
            deployed (no project, deploy_model false, or a deploy gate not passed).
    """
    # First, before the data is read or anything is paid for: what would otherwise fail only after the teacher was
    # asked or the student tuned.
    checks = preflight(
        project=project,
        teacher_model_reference=teacher_model_reference,
        student_model_reference=student_model_reference,
        teacher_api_key_secret=teacher_api_key_secret,
        accelerator_type=accelerator_type,
        tensorboard_resource_id=tensorboard_resource_id,
        serving_container_image_uri=serving_container_image_uri,
        # A constant, not the component's default: a default is kept in the component's source, run without IMAGE.
        kfp_distill_image_uri=IMAGE,
        deploy_model=deploy_model,
        deploy_machine_type=deploy_machine_type,
        deploy_min_replica_count=deploy_min_replica_count,
        deploy_max_replica_count=deploy_max_replica_count,
        deploy_traffic_percentage=deploy_traffic_percentage,
        deploy_min_share_of_teacher=deploy_min_share_of_teacher,
    ).set_display_name("preflight")

    validation = (
        validate_dataset(
            dataset_uri=dataset_uri,
            evaluation_data_uri=evaluation_data_uri,
            student_model_reference=student_model_reference,
            task_type=task_type,
            train_steps=train_steps,
            batch_size=batch_size,
            enable_checkpoint_selection=enable_checkpoint_selection,
            use_logged_answers=use_logged_answers,
        )
        .set_display_name("validate-dataset")
        .after(checks)
    )

    # The teacher labels the training rows and answers the evaluation rows with the same prompt and cache.
    teacher_settings = dict(
        teacher_model_reference=teacher_model_reference,
        prompt_template=teacher_prompt_template,
        few_shot_uri=teacher_few_shot_uri,
        max_new_tokens=teacher_max_new_tokens,
        cache_uri=teacher_cache_uri,
        max_concurrency=teacher_max_concurrency,
        max_total_tokens=teacher_max_total_tokens,
        task_type=validation.outputs["task_type"],
        self_consistency_samples=teacher_self_consistency_samples,
        answer_format=teacher_answer_format,
        probe_rows=teacher_probe_rows,
        rationale_length=teacher_rationale_length,
        min_answered_fraction=teacher_min_answered_fraction,
        class_names=class_names,
        pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,
        project=project,
        location=location,
        teacher_api_key_secret=teacher_api_key_secret,
    )
    teaching = generate_rationales(
        dataset=validation.outputs["train_dataset"],
        drop_contradicting_rationales=drop_contradicting_rationales,
        **teacher_settings,
    ).set_display_name("generate-rationales")
    _teacher_key_from_kubernetes_secret(teaching, teacher_api_key_kubernetes_secret)

    tuning_settings = dict(
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
        early_stopping_metric=early_stopping_metric,
        enable_checkpoint_selection=enable_checkpoint_selection,
        tuning_method=tuning_method,
        alpha=alpha,
        trust_remote_code=trust_remote_code,
        task_type=validation.outputs["task_type"],
    )
    # Without a project nothing goes to Google Cloud: kfp.local and Kubeflow tune in the task's own process.
    with dsl.If(project == "", name="no-google-cloud-project"):
        tuning_here = tune_student(**tuning_settings).set_display_name("tune-student")
    # The preflight step has stopped every accelerator_type but GPU by now, so this branch is the GPU machine.
    with dsl.Else(name="vertex-ai-custom-job"):
        tuning_on_vertex_ai = tune_student_on_vertex_ai(
            **tuning_settings,
            # `location` is where the model is uploaded; the job runs in the pipeline job's region (the default).
            project=project,
            encryption_spec_key_name=encryption_spec_key_name,
            # The job runs as the pipeline job's service account, so it reads and writes what the pipeline can.
            service_account=google_cloud_placeholders.SERVICE_ACCOUNT_PLACEHOLDER,
            # Vertex AI's AIP_MODEL_DIR, AIP_CHECKPOINT_DIR and AIP_TENSORBOARD_LOG_DIR, inside the pipeline root.
            base_output_directory=f"{dsl.PIPELINE_ROOT_PLACEHOLDER}/{dsl.PIPELINE_JOB_ID_PLACEHOLDER}/tune-student",
        ).set_display_name("tune-student")
    tuned_model = dsl.OneOf(tuning_here.outputs["model"], tuning_on_vertex_ai.outputs["model"])
    training_logs = dsl.OneOf(
        tuning_here.outputs["tensorboard_logs"], tuning_on_vertex_ai.outputs["tensorboard_logs"]
    )

    with dsl.If(evaluation_data_uri != "", name="evaluation-data-given"):
        teacher_on_evaluation = generate_rationales(
            dataset=validation.outputs["evaluation_dataset"], use_gold_labels=False, **teacher_settings
        ).set_display_name("teacher-on-evaluation-data")
        _teacher_key_from_kubernetes_secret(teacher_on_evaluation, teacher_api_key_kubernetes_secret)
        evaluation = evaluate(
            model=tuned_model,
            evaluation_dataset=validation.outputs["evaluation_dataset"],
            teacher_predictions=teacher_on_evaluation.outputs["distilled_dataset"],
            student_model_reference=student_model_reference,
            tensorboard_logs=training_logs,
            task_type=validation.outputs["task_type"],
            task_type_reason=validation.outputs["task_type_reason"],
            trust_remote_code=trust_remote_code,
            min_share_of_teacher=deploy_min_share_of_teacher,
            gate_on_lower_bound=deploy_gate_on_lower_bound,
        ).set_display_name("evaluate")
    # deploy-model, outside the branch, needs a decision either way: without evaluation rows the gate is off or
    # could not judge.
    with dsl.Else(name="no-evaluation-data"):
        no_evaluation = gate_without_evaluation(min_share_of_teacher=deploy_min_share_of_teacher).set_display_name(
            "deploy-gate-without-evaluation"
        )
    gate_decision = dsl.OneOf(evaluation.outputs["gate_decision"], no_evaluation.outputs["gate_decision"])
    gate_reason = dsl.OneOf(evaluation.outputs["gate_reason"], no_evaluation.outputs["gate_reason"])

    upload = upload_model(
        model=tuned_model,
        model_display_name=model_display_name,
        project=project,
        location=location,
        registry_uri=registry_uri,
        serving_container_image_uri=serving_container_image_uri,
        kfp_distill_image_uri=IMAGE,
        encryption_spec_key_name=encryption_spec_key_name,
        tensorboard_logs=training_logs,
        tensorboard_resource_id=tensorboard_resource_id,
        pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        gate_decision=gate_decision,
        gate_reason=gate_reason,
    ).set_display_name("upload-model")
    # Always a task, as in Google Cloud Pipeline Components' RLHF pipeline: a pipeline output cannot come from
    # inside a dsl.If. Without a project, with deploy_model false or a gate not passed it deploys nothing and
    # answers "".
    deployment = deploy_registered_model(
        model_resource_name=upload.outputs["model_resource_name"],
        project=project,
        deploy_model=deploy_model,
        machine_type=deploy_machine_type,
        min_replica_count=deploy_min_replica_count,
        max_replica_count=deploy_max_replica_count,
        traffic_percentage=deploy_traffic_percentage,
        encryption_spec_key_name=encryption_spec_key_name,
        service_account=google_cloud_placeholders.SERVICE_ACCOUNT_PLACEHOLDER,
        gate_decision=gate_decision,
        gate_reason=gate_reason,
    ).set_display_name("deploy-model")
    outputs = NamedTuple("Outputs", [("model_resource_name", str), ("endpoint_resource_name", str)])
    return outputs(
        model_resource_name=upload.outputs["model_resource_name"],
        endpoint_resource_name=deployment.outputs["endpoint_resource_name"],
    )
