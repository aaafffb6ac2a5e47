"""Deploying to a Vertex AI endpoint, through the real Vertex AI SDK against upload-model's loopback Vertex AI."""

import pytest

from kfp_distill.components.deploy_model.component import deploy_registered_model
from kfp_distill.components.deploy_model.deployment import deploy_to_endpoint
from kfp_distill.components.upload_model.vertex import register_vertex_model

KEY = "projects/test-project/locations/europe-west4/keyRings/ring/cryptoKeys/key"
SERVICE_ACCOUNT = "serving@test-project.iam.gserviceaccount.com"
IMAGE = "europe-west4-docker.pkg.dev/test-project/kfp/kfp-distill:0.1.0"


@pytest.fixture
def model_resource_name(recorded_student_dir, google_cloud):
    return register_vertex_model(
        str(recorded_student_dir), "arithmetic-student", project="test-project", location="europe-west4",
        artifact_uri="gs://pipeline-root/model", kfp_distill_image_uri=IMAGE,
    )


def _requests(google_cloud, method: str, suffix: str) -> list[dict]:
    return [r for r in google_cloud.endpoint_requests if r["method"] == method and r["path"].endswith(suffix)]


def test_a_model_is_deployed_to_a_new_endpoint_of_its_name_with_the_settings_given(model_resource_name, google_cloud):
    endpoint = deploy_to_endpoint(
        model_resource_name, machine_type="n1-standard-4", min_replica_count=1, max_replica_count=3,
        traffic_percentage=100, encryption_spec_key_name=KEY, service_account=SERVICE_ACCOUNT,
    )

    assert endpoint == "projects/test-project/locations/europe-west4/endpoints/2000"
    (created,) = _requests(google_cloud, "POST", "/endpoints")
    assert created["path"] == "/v1/projects/test-project/locations/europe-west4/endpoints"
    assert created["body"]["displayName"] == "arithmetic-student"
    assert created["body"]["encryptionSpec"] == {"kmsKeyName": KEY}
    (deployed,) = _requests(google_cloud, "POST", ":deployModel")
    assert deployed["path"] == f"/v1/{endpoint}:deployModel"
    assert deployed["body"]["deployedModel"] == {
        "model": model_resource_name + "@1",  # the SDK deploys the version it loaded
        "displayName": "arithmetic-student",
        "dedicatedResources": {
            "machineSpec": {"machineType": "n1-standard-4"},
            "minReplicaCount": 1,
            "maxReplicaCount": 3,
        },
        "serviceAccount": SERVICE_ACCOUNT,
    }
    assert deployed["body"]["trafficSplit"] == {"0": 100}


def test_an_endpoint_of_the_models_name_is_found_and_reused(model_resource_name, google_cloud):
    first = deploy_to_endpoint(model_resource_name)
    second = deploy_to_endpoint(model_resource_name, traffic_percentage=50)

    assert first == second
    assert len(_requests(google_cloud, "POST", "/endpoints")) == 1
    listed = _requests(google_cloud, "GET", "/endpoints")
    assert listed[-1]["query"]["filter"] == 'display_name="arithmetic-student"'
    deploys = _requests(google_cloud, "POST", ":deployModel")
    assert [d["body"]["trafficSplit"]["0"] for d in deploys] == [100, 50]
    # The cheap CPU defaults: one n1-standard-2 replica.
    assert deploys[0]["body"]["deployedModel"]["dedicatedResources"] == {
        "machineSpec": {"machineType": "n1-standard-2"}, "minReplicaCount": 1, "maxReplicaCount": 1,
    }
    assert "serviceAccount" not in deploys[0]["body"]["deployedModel"]


def test_the_component_deploys_with_a_project_and_returns_the_endpoint(model_resource_name, google_cloud):
    outputs = deploy_registered_model.python_func(
        model_resource_name=model_resource_name, project="test-project", encryption_spec_key_name=KEY,
        service_account=SERVICE_ACCOUNT,
    )

    assert outputs.endpoint_resource_name == "projects/test-project/locations/europe-west4/endpoints/2000"
    assert len(_requests(google_cloud, "POST", ":deployModel")) == 1


@pytest.mark.parametrize(
    "settings",
    [
        {"model_resource_name": "models:/arithmetic-student/1", "project": ""},
        {"model_resource_name": "projects/test-project/locations/europe-west4/models/1000", "project": "test-project",
         "deploy_model": False},
    ],
    ids=["no project", "deploy_model false"],
)
def test_without_a_project_or_with_deploy_model_false_nothing_is_deployed(settings, google_cloud, capsys):
    outputs = deploy_registered_model.python_func(**settings)

    assert outputs.endpoint_resource_name == ""
    assert not google_cloud.endpoint_requests
    if not settings["project"]:
        assert "kfp-distill serve models:/arithmetic-student/1" in capsys.readouterr().out


def _judged_below_the_gate():
    """evaluate's judgment of a student at 50% against a teacher at 100%, with the gate at 90% of the teacher."""
    from kfp_distill._implementation.tasks import TaskType
    from kfp_distill.components.evaluate.evaluation import EvaluationRow, TeacherAnswer, compare

    rows = [EvaluationRow(f"{i} + {i}?", str(2 * i)) for i in range(1, 11)]
    teacher = {row.input_text: TeacherAnswer(row.gold, 1.0) for row in rows}
    student = [row.gold if i % 2 else "0" for i, row in enumerate(rows)]
    result = compare(rows, teacher, student, ["0"] * 10, "tiny", [0.1] * 10, [0.1] * 10, TaskType("math", "given"),
                     min_share_of_teacher=0.9)
    return result.gate


def test_a_student_below_the_gate_is_registered_with_the_decision_and_not_deployed(
    recorded_student_dir, google_cloud, capsys
):
    gate = _judged_below_the_gate()
    assert gate.decision == "failed"

    model_resource_name = register_vertex_model(
        str(recorded_student_dir), "arithmetic-student", project="test-project", location="europe-west4",
        artifact_uri="gs://pipeline-root/model", kfp_distill_image_uri=IMAGE, gate=gate,
    )
    outputs = deploy_registered_model.python_func(
        model_resource_name=model_resource_name, project="test-project", gate_decision=gate.decision,
        gate_reason=gate.reason,
    )

    (uploaded,) = google_cloud.upload_requests
    assert uploaded["body"]["model"]["labels"]["deploy_gate"] == "failed"
    assert f"Deploy gate: failed: {gate.reason}." in uploaded["body"]["model"]["description"]
    assert outputs.endpoint_resource_name == ""
    assert not google_cloud.endpoint_requests
    printed = capsys.readouterr().out
    assert "not deployed: the deploy gate decided 'failed' (the distilled student's Accuracy is 50.0% and the " \
           "teacher's 100.0% on 10 evaluation rows: below 90% of the teacher's (90.0%))" in printed
    assert f"{model_resource_name} is registered" in printed


@pytest.mark.parametrize("decision", ["passed", "off"])
def test_a_student_that_passed_or_has_no_gate_is_deployed(model_resource_name, google_cloud, decision):
    outputs = deploy_registered_model.python_func(
        model_resource_name=model_resource_name, project="test-project", gate_decision=decision, gate_reason="why"
    )
    assert outputs.endpoint_resource_name == "projects/test-project/locations/europe-west4/endpoints/2000"


def test_a_student_the_gate_could_not_judge_is_not_deployed(model_resource_name, google_cloud, capsys):
    from kfp_distill._implementation.deploy_gate import without_evaluation

    gate = without_evaluation(0.9)
    outputs = deploy_registered_model.python_func(
        model_resource_name=model_resource_name, project="test-project", gate_decision=gate.decision,
        gate_reason=gate.reason,
    )
    assert outputs.endpoint_resource_name == "" and not google_cloud.endpoint_requests
    assert "no evaluation rows (evaluation_data_uri is empty)" in capsys.readouterr().out


def test_an_unknown_gate_decision_is_refused(model_resource_name, google_cloud):
    with pytest.raises(ValueError, match="unknown deploy gate decision 'maybe'"):
        deploy_registered_model.python_func(model_resource_name=model_resource_name, project="test-project", gate_decision="maybe")
