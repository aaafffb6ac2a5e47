"""The checks made before any money is spent: retired models, the teacher's secret, the serving image, and the
settings that only apply with a project (notes without one)."""

import pytest

from kfp_distill._implementation.preflight import PreflightError, preflight

GOOD = {
    "project": "my-project",
    "teacher_model_reference": "gemini-2.5-flash",
    "student_model_reference": "smollm2-135m-instruct",
    "teacher_api_key_secret": "projects/my-project/secrets/teacher-key/versions/latest",
    "tensorboard_resource_id": "projects/my-project/locations/us-central1/tensorboards/1",
    "serving_container_image_uri": "us-central1-docker.pkg.dev/my-project/kfp-distill/kfp-distill:0.1.0",
    "deploy_model": True,
    "deploy_machine_type": "n1-standard-2",
    "deploy_min_replica_count": 1,
    "deploy_max_replica_count": 3,
    "deploy_traffic_percentage": 100,
}
# A teacher that runs without a project (a Vertex AI one cannot).
LOCAL_TEACHER = {"teacher_model_reference": "qwen2.5-coder-1.5b-instruct"}
BAD_ENDPOINT = {
    "deploy_machine_type": "n1 standard 2",
    "deploy_min_replica_count": 0,
    "deploy_max_replica_count": -1,
    "deploy_traffic_percentage": 101,
}


def test_settings_vertex_ai_can_run_pass_with_nothing_to_say():
    assert preflight(GOOD).problems == [] and preflight(GOOD).notes == []
    for image in ("gcr.io/my-project/kfp-distill:0.1.0", "eu.gcr.io/my-project/kfp-distill", "europe-west4-docker.pkg.dev/p/r/i@sha256:ab"):
        assert preflight({**GOOD, "serving_container_image_uri": image}).problems == [], image


def test_every_problem_is_found_at_once_each_with_its_own_message():
    found = preflight(
        {
            **GOOD,
            "teacher_model_reference": "text-unicorn@001",
            "student_model_reference": "text-bison@002",
            "teacher_api_key_secret": "projects/my-project/secrets/teacher-key",
            "serving_container_image_uri": "ghcr.io/kfp-distill/kfp-distill:0.1.0",
        }
    )
    teacher, student, secret, image = found.problems
    assert teacher.startswith("teacher_model_reference 'text-unicorn@001' is a PaLM model") and "gemini-2.5-flash" in teacher
    assert student.startswith("student_model_reference 'text-bison@002' is a PaLM model") and "smollm2-135m-instruct" in student
    assert secret.startswith("teacher_api_key_secret is not a Secret Manager secret version name")
    assert "ghcr.io/kfp-distill/kfp-distill:0.1.0" in image and "Artifact Registry" in image and "gcr.io" in image
    assert "leave serving_container_image_uri empty" in image
    two = preflight({**GOOD, "teacher_model_reference": "vertex:chat-bison", "student_model_reference": "code-gecko"})
    assert len(two.problems) == 2 and str(PreflightError(two.problems)).startswith("2 problems found")
    assert str(PreflightError(two.problems[:1])) == f"refused before anything was spent: {two.problems[0]}"


def test_settings_that_only_apply_with_a_project_are_notes_without_one():
    local = {
        **GOOD, **LOCAL_TEACHER, "project": "", "serving_container_image_uri": "ghcr.io/kfp-distill/kfp-distill:0.1.0"
    }
    found = preflight(local)
    assert found.problems == []
    tensorboard, image = found.notes
    assert tensorboard.startswith("tensorboard_resource_id is set but project is empty")
    assert image.startswith("without a project nothing is served on Vertex AI")
    # Retired models and a malformed secret are refused with or without a project.
    assert len(preflight({**local, "teacher_model_reference": "text-bison", "teacher_api_key_secret": "k"}).problems) == 2


def test_the_teacher_and_the_preflight_read_one_list_of_retired_models():
    from kfp_distill._implementation.retired_models import RetiredModelError
    from kfp_distill._implementation.teacher_reference import parse_teacher_reference
    from kfp_distill.components.generate_rationales.backends import backend_for

    for reference in ("text-unicorn@001", "code-gecko@002", "publishers/google/models/codechat-bison"):
        assert preflight({"teacher_model_reference": reference}).problems, reference
        with pytest.raises(RetiredModelError) as raised:
            backend_for(parse_teacher_reference(reference), project="my-project")
        assert str(raised.value) == preflight({"teacher_model_reference": reference}).problems[0]


def test_a_teacher_that_cannot_run_is_refused_as_the_teacher_step_would_refuse_it():
    from kfp_distill._implementation.teacher_reference import parse_teacher_reference
    from kfp_distill.components.generate_rationales.backends import backend_for

    # A Vertex AI teacher without a project could not run at all: a problem, not a note.
    (vertex,) = preflight({**GOOD, "project": ""}).problems
    assert vertex.startswith(
        "teacher_model_reference 'gemini-2.5-flash' runs on Vertex AI and needs a Google Cloud project"
    )
    with pytest.raises(ValueError) as raised:
        backend_for(parse_teacher_reference("gemini-2.5-flash"))
    assert str(raised.value) == vertex
    # A reference that names no teacher, with the reason the parser gives, credentials redacted.
    (endpoint,) = preflight({**GOOD, "teacher_model_reference": "https://ana:hunter2@h/v1"}).problems
    assert endpoint.startswith("teacher_model_reference 'https://***@h/v1' is neither an OpenAI-compatible endpoint")
    assert "hunter2" not in endpoint
    # Left out: not checked here (a request's missing value is a problem of its own).
    assert preflight({**GOOD, "teacher_model_reference": ""}).problems == []


def test_malformed_endpoint_settings_are_refused_with_a_project_and_notes_without_one():
    machine, minimum, maximum, traffic = preflight({**GOOD, **BAD_ENDPOINT}).problems
    assert machine.startswith("deploy_machine_type 'n1 standard 2' is not a machine type")
    assert minimum.startswith("deploy_min_replica_count is 0")
    assert maximum.startswith("deploy_max_replica_count is -1, below deploy_min_replica_count (0)")
    assert traffic.startswith("deploy_traffic_percentage is 101")
    local = preflight({**GOOD, **BAD_ENDPOINT, **LOCAL_TEACHER, "project": ""})
    assert local.problems == []
    assert len(local.notes) == 5  # the four, and the TensorBoard one
    assert all(note.startswith("without a project nothing is deployed; with one: deploy_") for note in local.notes[1:])
    # Not deploying: the endpoint settings are not used, so not checked.
    assert preflight({**GOOD, **BAD_ENDPOINT, "deploy_model": False}).problems == []


def test_without_a_serving_image_of_its_own_the_kfp_distill_image_is_the_one_checked():
    ours = {**GOOD, "serving_container_image_uri": "", "kfp_distill_image_uri": "ghcr.io/kfp-distill/kfp-distill:0.1.0"}
    (problem,) = preflight(ours).problems
    assert problem.startswith("Vertex AI cannot pull the serving image 'ghcr.io/kfp-distill/kfp-distill:0.1.0'")
    assert "KFP_DISTILL_IMAGE" in problem
    assert preflight({**ours, "kfp_distill_image_uri": "gcr.io/my-project/kfp-distill:0.1.0"}).problems == []


def test_accelerator_type_is_refused_unless_it_is_the_contracts_gpu_with_or_without_a_project():
    assert preflight({**GOOD, "accelerator_type": "GPU"}).problems == []
    assert "accelerator_type" not in GOOD and preflight(GOOD).problems == [], "GPU when not given"
    for project in ("my-project", ""):
        (tpu,) = preflight({**GOOD, **LOCAL_TEACHER, "project": project, "accelerator_type": "TPU"}).problems
        assert tpu.startswith("accelerator_type 'TPU' is not supported yet") and "set accelerator_type to 'GPU'" in tpu
        # With a project the pipeline tunes on its GPU machine whatever the value: only the exact spelling passes.
        (lower,) = preflight({**GOOD, **LOCAL_TEACHER, "project": project, "accelerator_type": "gpu"}).problems
        assert lower == "accelerator_type must be 'GPU' or 'TPU' ('TPU' is not supported yet), got 'gpu'"


def test_a_deploy_gate_share_the_gate_cannot_hold_is_refused_with_or_without_a_project():
    assert preflight({**GOOD, "deploy_min_share_of_teacher": 0.9}).problems == []
    for project in ("my-project", ""):
        for share in (-0.1, float("nan")):
            # A local teacher: without a project a Vertex AI teacher would be a problem of its own.
            settings = {**GOOD, "project": project, "teacher_model_reference": "smollm2-135m-instruct"}
            (problem,) = preflight({**settings, "deploy_min_share_of_teacher": share}).problems
            assert problem.startswith(f"deploy_min_share_of_teacher is {share}; it is 0 (no deploy gate)")
