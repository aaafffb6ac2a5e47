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
