"""The Vertex AI Model Registry path, through the real Vertex AI SDK, google-cloud-storage and gcsfs, against
the loopback server of conftest.py (REST transport, anonymous credentials)."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from kfp_distill import __version__
from kfp_distill.interfaces import cli
from kfp_distill._implementation.student import StudentPredictor
from kfp_distill._implementation.model_store import answer, list_models, load_model
from kfp_distill._implementation.model_store.vertex_backend import (
    is_resource_name,
    metric_label_value,
    parse_metric_label,
)
from kfp_distill.components.upload_model.component import upload_model
from kfp_distill.components.upload_model.vertex import (
    label_key,
    label_value,
    register_vertex_model,
    serving_container_spec,
    vertex_labels,
)
from kfp_distill.interfaces.serving import load_student_service, vertex_prediction

KEY = "projects/test-project/locations/europe-west4/keyRings/ring/cryptoKeys/key"
PROMPT = "Classify: 5 stocks to buy now"
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# Our image, named as Vertex AI can pull it (the tests' KFP_DISTILL_IMAGE).
OUR_IMAGE = "europe-west4-docker.pkg.dev/test-project/kfp/kfp-distill:0.1.0"


def test_labels_follow_gcp_rules():
    teacher = "http://127.0.0.1:8000/v1#Qwen/Qwen2.5-7B-Instruct"
    assert label_value(teacher) == "http-127-0-0-1-8000-v1-qwen-qwen2-5-7b-instruct"
    long_uri = "gs://a-bucket/" + "very-long-folder/" * 5 + "Train Set.jsonl"
    assert label_value(long_uri).endswith("very-long-folder-train-set-jsonl")
    assert len(label_value(long_uri)) == 63
    assert label_key("/eval_fraction_of_correct_next_step_preds") == "eval_fraction_of_correct_next_step_preds"
    assert label_key("2nd metric") == "nd-metric"
    assert label_key("metric-" + "x" * 80) == "metric-" + "x" * 56
    for value in (0.8125, -1.5, 1e-5, 12345678.0, 3):
        assert LABEL_VALUE.match(metric_label_value(value))
        assert parse_metric_label(metric_label_value(value)) == pytest.approx(value, rel=1e-3)

    record = {"teacher_model_reference": teacher, "dataset_uri": long_uri, "train_steps": "20"}
    metrics = {f"metric {i}": float(i) for i in range(100)}
    labels = vertex_labels(record, metrics)
    assert len(labels) == 64
    assert labels["kfp_distill"] == label_value(__version__)
    assert labels["teacher"] == "http-127-0-0-1-8000-v1-qwen-qwen2-5-7b-instruct"
    assert labels["train_steps"] == "20"
    assert all(LABEL_KEY.match(key) and LABEL_VALUE.match(value) for key, value in labels.items())


def test_resource_names_are_recognised():
    assert is_resource_name("projects/p/locations/us-central1/models/123")
    assert is_resource_name("projects/p/locations/us-central1/models/123@2")
    assert not is_resource_name("models:/tiny/1")
    assert not is_resource_name("projects/p/locations/us-central1/endpoints/123")


def test_upload_stages_the_model_and_records_labels_key_and_container(recorded_student_dir, google_cloud):
    resource_name = register_vertex_model(
        str(recorded_student_dir),
        "Arithmetic student",
        project="test-project",
        location="europe-west4",
        staging_bucket="gs://staging-bucket/runs",
        encryption_spec_key_name=KEY,
        metrics={"distilled_student_accuracy": 0.75},
        kfp_distill_image_uri=OUR_IMAGE,
    )

    assert resource_name == "projects/test-project/locations/europe-west4/models/1000"
    (request,) = google_cloud.upload_requests
    assert request["path"] == "/v1/projects/test-project/locations/europe-west4/models:upload"
    model = request["body"]["model"]
    assert "parentModel" not in request["body"]
    assert model["displayName"] == "Arithmetic student"
    # Our image serves the model: `kfp-distill serve` on all interfaces, its port and routes as Vertex AI calls them.
    assert model["containerSpec"] == {
        "imageUri": OUR_IMAGE,
        "command": ["kfp-distill", "serve"],
        "args": ["--host", "0.0.0.0"],
        "ports": [{"containerPort": 8080}],
        "predictRoute": "/predict",
        "healthRoute": "/health",
    }
    assert model["containerSpec"] == serving_container_spec(OUR_IMAGE)
    assert model["encryptionSpec"] == {"kmsKeyName": KEY}
    assert model["labels"] == {
        "kfp_distill": label_value(__version__),
        "teacher": "qwen2-5-coder-1-5b-instruct",
        "student": "smollm2-135m-instruct",
        "dataset": "gs-bucket-train-jsonl",
        "train_steps": "20",
        "task_type": "classification",
        "metric-final_train_loss": "1_25",
        "metric-eval_fraction_of_correct_next_step_preds": "0_5",
        "metric-distilled_student_accuracy": "0_75",
    }
    assert "from teacher `qwen2.5-coder-1.5b-instruct`" in model["description"]
    # The model directory was copied under the staging bucket, and artifactUri names that copy.
    assert model["artifactUri"].startswith("gs://staging-bucket/runs/")
    folder = model["artifactUri"].removeprefix("gs://staging-bucket/") + "/"
    staged = {name.removeprefix(folder): data for (bucket, name), data in google_cloud.objects.items()}
    assert staged["model.safetensors"] == (recorded_student_dir / "model.safetensors").read_bytes()
    assert {"config.json", "kfp_distill.json", "tokenizer.json"} <= staged.keys()


def test_uploading_the_same_display_name_again_adds_a_version(recorded_student_dir, google_cloud):
    settings = dict(
        project="test-project", location="europe-west4", artifact_uri="gs://pipeline-root/model",
        kfp_distill_image_uri=OUR_IMAGE,
    )
    first = register_vertex_model(str(recorded_student_dir), "student", **settings)
    second = register_vertex_model(str(recorded_student_dir), "student", **settings)
    other = register_vertex_model(str(recorded_student_dir), "", **settings)

    assert first == second == "projects/test-project/locations/europe-west4/models/1000"
    assert google_cloud.upload_requests[1]["body"]["parentModel"] == first
    assert google_cloud.models[first]["versionId"] == "2"
    assert other == "projects/test-project/locations/europe-west4/models/1001"
    assert google_cloud.models[other]["displayName"] == "distilled-smollm2-135m-instruct"
    assert google_cloud.list_filters[0] == 'display_name="student" AND labels.kfp_distill:*'
    # Already in Cloud Storage: nothing staged.
    assert not google_cloud.objects


def test_list_load_and_predict_by_resource_name(recorded_student_dir, google_cloud):
    resource_name = register_vertex_model(
        str(recorded_student_dir), "arithmetic", project="test-project", location="europe-west4",
        staging_bucket="gs://staging-bucket", kfp_distill_image_uri=OUR_IMAGE,
    )

    [info] = list_models(project="test-project", location="europe-west4")
    assert google_cloud.list_filters[-1] == "labels.kfp_distill:*"
    assert (info.uri, info.name, info.version) == (resource_name, "arithmetic", 1)
    assert (info.teacher, info.student) == ("qwen2-5-coder-1-5b-instruct", "smollm2-135m-instruct")
    assert info.metrics == {"final_train_loss": 1.25, "eval_fraction_of_correct_next_step_preds": 0.5}
    assert info.created.year == 2026

    model = load_model(resource_name)
    assert (model.uri, model.task_type) == (resource_name, "classification")
    expected = answer(StudentPredictor(str(recorded_student_dir)), [PROMPT], with_rationale=True)
    assert model.predict(PROMPT, with_rationale=True) == expected
    assert model.predict([PROMPT]) == [expected[0]["label"]]


def test_component_uploads_a_pipeline_output_in_place(recorded_student_dir, google_cloud):
    model = SimpleNamespace(path=str(recorded_student_dir), uri="gs://pipeline-root/run/tune-student/model")
    outputs = upload_model.python_func(
        model=model, model_display_name="tiny", project="test-project", location="us-central1",
        encryption_spec_key_name=KEY, serving_container_image_uri="us-docker.pkg.dev/my/own-image:1",
    )

    assert outputs.model_resource_name == "projects/test-project/locations/us-central1/models/1000"
    body = google_cloud.upload_requests[0]["body"]["model"]
    assert body["artifactUri"] == "gs://pipeline-root/run/tune-student/model"
    # Another image follows its own contract: nothing of ours is imposed on it.
    assert body["containerSpec"] == {"imageUri": "us-docker.pkg.dev/my/own-image:1"}
    assert body["encryptionSpec"]["kmsKeyName"] == KEY


def test_component_needs_a_staging_bucket_for_a_local_model(recorded_student_dir, google_cloud):
    model = SimpleNamespace(path=str(recorded_student_dir), uri=str(recorded_student_dir))
    with pytest.raises(ValueError, match="staging_bucket"):
        upload_model.python_func(
            model=model, model_display_name="tiny", project="test-project", kfp_distill_image_uri=OUR_IMAGE
        )
    assert not google_cloud.upload_requests


def test_cli_lists_and_predicts_with_vertex(recorded_student_dir, google_cloud, capsys):
    resource_name = register_vertex_model(
        str(recorded_student_dir), "arithmetic", project="test-project", location="europe-west4",
        artifact_uri="gs://pipeline-root/model", kfp_distill_image_uri=OUR_IMAGE,
    )
    google_cloud.objects.update(
        {("pipeline-root", f"model/{path.name}"): path.read_bytes() for path in Path(recorded_student_dir).iterdir()}
    )
    capsys.readouterr()

    assert cli.main(["models", "list", "--project", "test-project", "--location", "europe-west4"]) == 0
    listing = capsys.readouterr().out
    assert resource_name in listing and "qwen2-5-coder-1-5b-instruct" in listing

    assert cli.main(["predict", resource_name, PROMPT, "--rationale"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("rationale: ") and printed[-1].startswith("answer: ")


@pytest.mark.parametrize(
    ("image", "named_by"),
    [
        ("ghcr.io/kfp-distill/kfp-distill:0.1.0", "kfp_distill_image_uri"),
        ("docker.io/me/server:1", "serving_container_image_uri"),
    ],
)
def test_an_image_vertex_ai_cannot_pull_is_refused_before_anything_is_sent(
    recorded_student_dir, google_cloud, image, named_by
):
    with pytest.raises(ValueError) as refused:
        register_vertex_model(
            str(recorded_student_dir), "tiny", project="test-project", staging_bucket="gs://staging-bucket",
            **{named_by: image},
        )

    message = str(refused.value)
    assert image in message and "Artifact Registry" in message and "Container Registry" in message
    if named_by == "kfp_distill_image_uri":
        assert "KFP_DISTILL_IMAGE" in message
    assert not google_cloud.upload_requests and not google_cloud.objects and not google_cloud.list_filters


def test_the_uploaded_model_is_served_from_its_cloud_storage_copy_as_vertex_ai_serves_it(
    recorded_student_dir, google_cloud
):
    """What the registered container does at start: the model from AIP_STORAGE_URI (here the stand-in's
    Cloud Storage copy that upload staged), then Vertex AI prediction requests, answered as predict answers."""
    register_vertex_model(
        str(recorded_student_dir), "tiny", project="test-project", location="europe-west4",
        staging_bucket="gs://staging-bucket/runs", kfp_distill_image_uri=OUR_IMAGE,
    )
    artifact_uri = google_cloud.upload_requests[0]["body"]["model"]["artifactUri"]

    service = load_student_service(artifact_uri, max_tokens=64)

    assert service.task_type == "classification"
    expected = answer(StudentPredictor(str(recorded_student_dir)), [PROMPT], True, "classification")
    body = {"instances": [{"input_text": PROMPT, "rationale": True}, PROMPT]}
    assert vertex_prediction(service, body) == {"predictions": [expected[0], expected[0]["label"]]}
