"""`kfp-distill submit`: the seed's pipelineJobs request body, checked against the compiled template and
turned into a real `aiplatform.PipelineJob` offline."""

import json
import re
import shutil
import socket
from pathlib import Path

import pytest
import yaml
from google.auth.credentials import AnonymousCredentials
from kfp import compiler, dsl

from kfp_distill import IMAGE
from kfp_distill.interfaces import cli
from kfp_distill.interfaces.submitting import (
    RequestError,
    build_pipeline_job,
    load_template,
    parameter_definitions,
    submit,
    validate_request,
)

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ROOT / "compiled" / "distillation.yaml"
SHARED = ROOT.parent / "shared"
CONTRACT = SHARED / "CONTRACT.md"
SEED = SHARED / "seed" / "vertex-ai-distill-text-models.pt.txt"

KEY = "projects/test-project/locations/us-central1/keyRings/ring/cryptoKeys/key"

# What a user types in place of each of the seed's placeholders (text, as in request.json).
SEED_SUBSTITUTIONS = {
    "PIPELINEJOB_DISPLAYNAME": "distill-support-tickets",
    "OUTPUT_DIR": "test-bucket/pipeline-root",
    "PROJECT_ID": "test-project",
    "MODEL_DISPLAYNAME": "support-tickets-student",
    "EVAL_DATASET_URI": "test-bucket/evaluation.jsonl",
    "DATASET_URI": "test-bucket/train.jsonl",
    "MODEL_UPLOAD_REGION": "us-central1",
    "ACCELERATOR_TYPE": "GPU",
    "TEACHER_MODEL_REFERENCE": '"qwen2.5-coder-1.5b-instruct"',
    "STUDENT_MODEL_REFERENCE": '"smollm2-135m-instruct"',
    "STEPS": "200",
    "LEARNING_RATE_MULTIPLIER": "0.5",
    "EVAL_INTERVAL": "10",
    "ENABLE_EARLY_STOPPING": "true",
    # The seed quotes this one: the user's "true" stays a string in the body.
    "ENABLE_CHECKPOINT_SELECTION": "true",
    "TENSORBOARD_ID": "projects/test-project/locations/us-central1/tensorboards/123",
    "ENCRYPTION_KEY_NAME": KEY,
    "SERVICE_ACCOUNT": "distiller@test-project.iam.gserviceaccount.com",
    "TEMPLATE_URI": str(COMPILED),
}

needs_shared = pytest.mark.skipif(
    not (SEED.exists() and CONTRACT.exists()), reason="../shared/ (seed and contract) is not beside this clone"
)


def _contract_parameter_names() -> set[str]:
    section = CONTRACT.read_text().split("## Job parameters")[1].split("Worked example")[0]
    return set(re.findall(r"^\| (\w+) \|", section, flags=re.M)) - {"name"}


def _seed_request_body() -> dict:
    """The seed's request body with its placeholders filled in, parsed as the API would parse it."""
    text = SEED.read_text()
    body = text[text.index('{ "displayName"'):]
    body = body[: body.index("\n")]
    for placeholder, value in SEED_SUBSTITUTIONS.items():
        body = re.sub(rf"\b{placeholder}\b", value.replace("\\", "\\\\"), body)
    return json.loads(body)


@pytest.fixture
def no_network(monkeypatch):
    """Fails any attempt to open a network connection."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@needs_shared
def test_seed_request_body_carries_the_contract_parameters():
    body = _seed_request_body()
    assert set(body["runtimeConfig"]["parameterValues"]) == _contract_parameter_names()
    assert set(body) == {"displayName", "runtimeConfig", "encryptionSpec", "serviceAccount", "templateUri"}


@pytest.fixture
def pullable_template(tmp_path) -> Path:
    """compiled/distillation.yaml as compiled with KFP_DISTILL_IMAGE in Artifact Registry, which Vertex AI can pull
    (the committed one names the default ghcr.io image)."""
    from kfp_distill._implementation.settings import IMAGE

    path = tmp_path / "distillation.yaml"
    path.write_text(COMPILED.read_text().replace(IMAGE, "us-central1-docker.pkg.dev/test-project/images/kfp-distill:0.1.0"))
    return path


@needs_shared
def test_seed_request_with_the_default_image_is_refused_before_anything_is_sent(no_network):
    with pytest.raises(RequestError) as raised:
        validate_request(_seed_request_body())
    (problem,) = raised.value.problems
    assert problem.startswith("Vertex AI cannot pull the serving image 'ghcr.io/") and "KFP_DISTILL_IMAGE" in problem


@needs_shared
def test_seed_request_builds_a_real_pipeline_job_offline(no_network, pullable_template):
    body = _seed_request_body()
    body["templateUri"] = str(pullable_template)
    checked = validate_request(body)

    values = checked.parameter_values
    assert values["train_steps"] == 200 and values["learning_rate_multiplier"] == 0.5
    assert values["enable_checkpoint_selection"] is True, "the seed's quoted boolean is read as a boolean"
    assert checked.service_account == "distiller@test-project.iam.gserviceaccount.com"

    job = build_pipeline_job(checked, project="test-project", location="us-central1", credentials=AnonymousCredentials())
    resource = job._gca_resource
    assert resource.display_name == "distill-support-tickets"
    assert resource.runtime_config.gcs_output_directory == "gs://test-bucket/pipeline-root"
    assert resource.encryption_spec.kms_key_name == KEY
    sent = dict(resource.runtime_config.parameter_values)
    assert set(sent) == _contract_parameter_names()
    assert sent["dataset_uri"] == "gs://test-bucket/train.jsonl"
    assert sent["enable_early_stopping"] is True
    assert resource.pipeline_spec["pipelineInfo"]["name"] == "distillation"
    assert job.project == "test-project" and job.location == "us-central1"


def _request(**parameter_values) -> dict:
    return {
        "displayName": "distill",
        "runtimeConfig": {"gcsOutputDirectory": "gs://test-bucket/root", "parameterValues": parameter_values},
        "templateUri": str(COMPILED),
    }


def test_template_inputs_give_types_and_required():
    definitions = parameter_definitions(load_template(str(COMPILED)))
    assert definitions["dataset_uri"].required and definitions["dataset_uri"].parameter_type == "STRING"
    assert not definitions["train_steps"].required and definitions["train_steps"].parameter_type == "NUMBER_INTEGER"
    assert definitions["learning_rate_multiplier"].parameter_type == "NUMBER_DOUBLE"
    assert definitions["enable_early_stopping"].parameter_type == "BOOLEAN"


def test_every_problem_is_reported_at_once_each_with_its_own_message():
    request = _request(train_steps="300", learning_rate_multiplier=True, enable_early_stopping="yes",
                       teacher_model="x", evaluation_interval=2.5)
    with pytest.raises(RequestError) as raised:
        validate_request(request)
    problems = raised.value.problems
    prefix = "runtimeConfig.parameterValues."
    assert problems == [
        f'{prefix}train_steps: wrong type: expected an integer (NUMBER_INTEGER), got "300"',
        f"{prefix}learning_rate_multiplier: wrong type: expected a number (NUMBER_DOUBLE), got true",
        f'{prefix}enable_early_stopping: wrong type: expected true or false (BOOLEAN), got "yes"',
        f"{prefix}teacher_model: unknown parameter; did you mean teacher_model_reference?",
        f"{prefix}evaluation_interval: wrong type: expected an integer (NUMBER_INTEGER), got 2.5",
        f"{prefix}dataset_uri: missing required parameter (STRING)",
    ]
    assert str(raised.value).startswith("6 problem(s)")


def test_what_would_fail_after_money_is_spent_is_refused_with_the_other_problems(no_network):
    request = _request(
        dataset_uri="gs://b/t.jsonl",
        project="test-project",
        teacher_model_reference="text-unicorn@001",
        student_model_reference="text-bison@002",
        teacher_api_key_secret="projects/test-project/secrets/teacher-key",
        serving_container_image_uri="ghcr.io/me/kfp-distill:0.1.0",
        train_steps="many",
    )
    with pytest.raises(RequestError) as raised:
        submit(request, dry_run=True)
    wrong_type, teacher, student, secret, image = raised.value.problems
    assert wrong_type.startswith("runtimeConfig.parameterValues.train_steps: wrong type")
    assert teacher.startswith("teacher_model_reference 'text-unicorn@001' is a PaLM model") and "gemini-2.5-pro" in teacher
    assert student.startswith("student_model_reference 'text-bison@002' is a PaLM model")
    assert secret.startswith("teacher_api_key_secret is not a Secret Manager secret version name")
    assert image.startswith("Vertex AI cannot pull the serving image 'ghcr.io/me/kfp-distill:0.1.0'")


def test_settings_that_only_apply_with_a_project_are_notes_without_one(tmp_path, capsys, no_network):
    request = _request(
        dataset_uri="gs://b/t.jsonl",
        tensorboard_resource_id="projects/test-project/locations/us-central1/tensorboards/1",
        teacher_api_key_secret="projects/test-project/secrets/teacher-key/versions/latest",
        serving_container_image_uri="ghcr.io/me/kfp-distill:0.1.0",
    )
    (tensorboard, image) = submit(request, dry_run=True).notes
    assert tensorboard.startswith("tensorboard_resource_id is set but project is empty")
    assert image.startswith("without a project nothing is served on Vertex AI")
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    assert cli.main(["submit", str(path), "--dry-run"]) == 0
    assert capsys.readouterr().err.splitlines() == [f"kfp-distill submit: note: {tensorboard}", f"kfp-distill submit: note: {image}"]


def test_an_unsupported_accelerator_type_is_refused_before_anything_is_sent(no_network):
    with pytest.raises(RequestError) as raised:
        validate_request(_request(dataset_uri="gs://b/t.jsonl", accelerator_type="TPU"))
    (problem,) = raised.value.problems
    assert problem.startswith("accelerator_type 'TPU' is not supported yet")


def _renamed(spec: dict, task_name: str, new_name: str) -> dict:
    """`spec` with a root task, its component and its executor renamed, as a user may rename them."""
    tasks = spec["root"]["dag"]["tasks"]
    task = tasks.pop(task_name)
    task["taskInfo"]["name"] = new_name
    tasks[new_name] = task
    for other in tasks.values():
        other["dependentTasks"] = [new_name if name == task_name else name for name in other.get("dependentTasks", [])]
    component = spec["components"].pop(task["componentRef"]["name"])
    task["componentRef"]["name"] = f"comp-{new_name}"
    spec["components"][f"comp-{new_name}"] = component
    executors = spec["deploymentSpec"]["executors"]
    executors[f"exec-{new_name}"] = executors.pop(component["executorLabel"])
    component["executorLabel"] = f"exec-{new_name}"
    return spec


def test_the_preflight_step_is_found_by_what_it_runs_not_by_its_name(tmp_path, no_network):
    template = tmp_path / "renamed.yaml"
    template.write_text(yaml.safe_dump(_renamed(yaml.safe_load(COMPILED.read_text()), "preflight", "settings-check")))
    request = _request(dataset_uri="gs://b/t.jsonl", teacher_model_reference="text-unicorn@001")
    request["templateUri"] = str(template)
    with pytest.raises(RequestError) as raised:
        submit(request, dry_run=True)
    (problem,) = raised.value.problems
    assert problem.startswith("teacher_model_reference 'text-unicorn@001' is a PaLM model")


def _compiled(pipeline, path: Path) -> Path:
    compiler.Compiler().compile(pipeline, str(path))
    return path


def test_a_template_without_a_preflight_step_is_said_to_have_checked_nothing(tmp_path, capsys, no_network):
    # A template of the user's own: our validate-dataset and generate-rationales, no preflight step.
    from kfp_distill._implementation.scripts import load_module

    example = load_module("reuse_components_example", ROOT / "examples" / "reuse_components.py")
    request = _request(dataset_uri="gs://b/t.jsonl", teacher_model_reference="text-unicorn@001")
    request["templateUri"] = str(_compiled(example.review_pipeline, tmp_path / "review.yaml"))
    nothing_checked = "this template has no preflight step: nothing was checked before spending"
    assert submit(request, dry_run=True).notes == [nothing_checked]
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    assert cli.main(["submit", str(path), "--dry-run"]) == 0
    assert capsys.readouterr().err.splitlines() == [f"kfp-distill submit: note: {nothing_checked}"]


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def _teacher_named_at_run_time() -> str:
    return "text-unicorn@001"


def test_a_setting_another_step_gives_at_run_time_is_said_to_be_checked_then(tmp_path, no_network):
    from kfp_distill.components.preflight.component import preflight

    @dsl.pipeline(name="teacher-chosen-at-run-time")
    def teacher_chosen_at_run_time(student_model_reference: str = "text-bison@002"):
        preflight(
            teacher_model_reference=_teacher_named_at_run_time().output, student_model_reference=student_model_reference
        )

    request = _request()
    request["templateUri"] = str(_compiled(teacher_chosen_at_run_time, tmp_path / "chosen.yaml"))
    with pytest.raises(RequestError) as raised:
        submit(request, dry_run=True)
    (problem,) = raised.value.problems
    assert problem.startswith("student_model_reference 'text-bison@002' is a PaLM model")
    request["runtimeConfig"]["parameterValues"] = {"student_model_reference": "smollm2-135m-instruct"}
    assert submit(request, dry_run=True).notes == [
        "teacher_model_reference comes from another step at run time: the preflight step checks it then"
    ]


def test_request_fields_are_checked_too():
    request = {"runtimeConfig": {"parameterValues": {"dataset_uri": "gs://b/t.jsonl"}, "pipelineRoot": "x"},
               "network": "default", "serviceAccount": 7}
    with pytest.raises(RequestError) as raised:
        validate_request(request)
    problems = raised.value.problems
    assert "displayName: missing required field" in problems
    assert "templateUri: missing required field" in problems
    assert any(problem.startswith("network: unknown field") for problem in problems)
    assert any(problem.startswith("runtimeConfig.pipelineRoot: unknown field") for problem in problems)
    assert "serviceAccount: wrong type: expected a string, got 7" in problems


def test_unreadable_template_is_a_problem_not_a_crash(tmp_path):
    request = _request(dataset_uri="gs://b/t.jsonl")
    request["templateUri"] = str(tmp_path / "missing.yaml")
    with pytest.raises(RequestError, match="templateUri: cannot read"):
        validate_request(request)


def test_a_template_that_is_no_pipeline_is_a_problem(tmp_path):
    not_a_pipeline = tmp_path / "notes.yaml"
    not_a_pipeline.write_text("title: not a pipeline\n")
    request = _request(dataset_uri="gs://b/t.jsonl")
    request["templateUri"] = str(not_a_pipeline)
    with pytest.raises(RequestError, match="is not a compiled pipeline"):
        validate_request(request)


def test_integral_numbers_and_file_uris_are_accepted(tmp_path, no_network):
    request = _request(dataset_uri="gs://b/t.jsonl", train_steps=50.0, learning_rate_multiplier=2)
    request["templateUri"] = COMPILED.as_uri()
    checked = validate_request(request)
    assert checked.parameter_values == {"dataset_uri": "gs://b/t.jsonl", "train_steps": 50,
                                        "learning_rate_multiplier": 2.0}
    job = build_pipeline_job(checked, project="test-project", location="us-central1", credentials=AnonymousCredentials())
    assert dict(job._gca_resource.runtime_config.parameter_values)["train_steps"] == 50


def test_artifact_registry_templates_are_downloaded_by_tag(monkeypatch, tmp_path):
    from kfp.registry import RegistryClient

    downloads = []

    def download_pipeline(self, package_name, version=None, tag=None, file_name=None):
        downloads.append((self._host, package_name, version, tag))
        shutil.copy(COMPILED, file_name)
        return file_name

    monkeypatch.setattr(RegistryClient, "download_pipeline", download_pipeline)
    host = "https://us-central1-kfp.pkg.dev/test-project/pipelines"
    template = load_template(f"{host}/distillation/v0.1.0", credentials=AnonymousCredentials())
    load_template(f"{host}/distillation/sha256:abc123", credentials=AnonymousCredentials())
    assert template["pipelineInfo"]["name"] == "distillation"
    assert downloads == [(host, "distillation", None, "v0.1.0"), (host, "distillation", "sha256:abc123", None)]


def test_submit_dry_run_sends_nothing(monkeypatch, no_network):
    from google.cloud import aiplatform

    monkeypatch.setattr(aiplatform.PipelineJob, "submit", lambda *a, **k: pytest.fail("dry run submitted"))
    checked = submit(_request(dataset_uri="gs://b/t.jsonl"), dry_run=True)
    assert checked.parameter_values == {"dataset_uri": "gs://b/t.jsonl"}


def test_submit_sends_the_job_with_the_service_account(monkeypatch, no_network):
    from google.cloud import aiplatform

    submitted = []
    monkeypatch.setattr(aiplatform.PipelineJob, "submit", lambda job, **options: submitted.append((job, options)))
    request = _request(dataset_uri="gs://b/t.jsonl")
    request["serviceAccount"] = "sa@test-project.iam.gserviceaccount.com"

    job = submit(request, project="test-project", location="europe-west4", credentials=AnonymousCredentials())
    assert submitted == [(job, {"service_account": "sa@test-project.iam.gserviceaccount.com"})]
    assert job.location == "europe-west4"
    assert dict(job._gca_resource.runtime_config.parameter_values) == {"dataset_uri": "gs://b/t.jsonl"}


def test_cli_dry_run_prints_the_checked_request(tmp_path, capsys, no_network):
    request = _request(dataset_uri="gs://b/t.jsonl", train_steps=100.0, enable_checkpoint_selection="TRUE")
    request["encryptionSpec"] = {"kmsKeyName": KEY}
    request["serviceAccount"] = "sa@test-project.iam.gserviceaccount.com"
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))

    assert cli.main(["submit", str(path), "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {
        "displayName": "distill",
        "runtimeConfig": {
            "parameterValues": {"dataset_uri": "gs://b/t.jsonl", "train_steps": 100, "enable_checkpoint_selection": True},
            "gcsOutputDirectory": "gs://test-bucket/root",
        },
        "encryptionSpec": {"kmsKeyName": KEY},
        "serviceAccount": "sa@test-project.iam.gserviceaccount.com",
        "templateUri": str(COMPILED),
    }


def test_cli_reports_all_problems_and_fails(tmp_path, capsys):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(_request(train_steps="many", tuning_method=1)))

    assert cli.main(["submit", str(path), "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert "3 problem(s)" in error
    for name in ("train_steps: wrong type", "tuning_method: wrong type", "dataset_uri: missing required"):
        assert name in error
