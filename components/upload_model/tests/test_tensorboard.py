"""Copying tune-student's TensorBoard scalars to Vertex AI TensorBoard, through the Vertex AI SDK's GAPIC client
against the loopback server of conftest.py (REST transport, anonymous credentials)."""

from types import SimpleNamespace

import pytest
from google.cloud.aiplatform_v1.types import TensorboardTimeSeries

from kfp_distill._implementation.tensorboard_events import read_scalar_events
from kfp_distill.components.upload_model.component import upload_model
from kfp_distill.components.upload_model.tensorboard import (
    MAX_POINTS_PER_WRITE,
    resource_id,
    tensorboard_name,
    upload_tensorboard_scalars,
    write_batches,
)

SCALAR = TensorboardTimeSeries.ValueType.SCALAR
TENSORBOARD = "projects/test-project/locations/europe-west4/tensorboards/777"
# Two of the contract's scalars: training loss at every step, evaluation accuracy every other step.
LOGGED = {
    "/train_total_loss": {step: 2.0 / step for step in range(1, 6)},
    "/eval_fraction_of_correct_next_step_preds": {2: 0.25, 4: 0.5},
}


@pytest.fixture
def log_dir(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    folder = tmp_path / "tensorboard"
    with SummaryWriter(log_dir=str(folder)) as writer:
        for step in range(1, 6):
            for tag, points in LOGGED.items():
                if step in points:
                    writer.add_scalar(tag, points[step], global_step=step)
    return folder


def written_points(google_cloud) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every data point written, in order, the tag read back from its time series."""
    resources = google_cloud.tensorboard_resources
    return [
        (resources[point["time_series"]]["displayName"], int(point["step"]), point["scalar"]["value"])
        for point in google_cloud.tensorboard_points
    ]


def posts(google_cloud, suffix: str) -> list[dict]:
    return [r for r in google_cloud.tensorboard_requests if r["method"] == "POST" and r["path"].endswith(suffix)]


def expected_points() -> list[tuple[str, int, float]]:
    return sorted((tag, step, pytest.approx(value)) for tag, points in LOGGED.items() for step, value in points.items())


def test_ids_and_tensorboard_names(monkeypatch):
    from google.cloud.aiplatform import initializer

    # A bare ID's region defaults to the SDK's, the job's region on Vertex AI (CLOUD_ML_REGION).
    monkeypatch.setattr(initializer, "global_config", initializer._Config())
    monkeypatch.delenv("GOOGLE_CLOUD_REGION", raising=False)
    monkeypatch.setenv("CLOUD_ML_REGION", "asia-east1")
    assert resource_id("distillation-20261128051600") == "distillation-20261128051600"
    assert resource_id("Arithmetic student / v2") == "arithmetic-student-v2"
    assert resource_id("x" * 200) == "x" * 128
    assert resource_id("") == "kfp-distill"
    assert tensorboard_name(TENSORBOARD) == TENSORBOARD
    assert tensorboard_name("777", project="p", location="us-east1") == "projects/p/locations/us-east1/tensorboards/777"
    assert tensorboard_name("777", project="p") == "projects/p/locations/asia-east1/tensorboards/777"
    with pytest.raises(ValueError, match="bare ID: give the project"):
        tensorboard_name("777")
    with pytest.raises(ValueError, match="neither a TensorBoard resource name"):
        tensorboard_name("projects/p/tensorboards/777", project="p")


def test_read_scalar_events_reads_every_step(log_dir):
    scalars = read_scalar_events(str(log_dir))
    assert {tag: {step: value for step, (_, value) in points.items()} for tag, points in scalars.items()} == {
        tag: pytest.approx(points) for tag, points in LOGGED.items()
    }


def test_writes_are_batched_within_the_api_limit():
    long_series = {step: (1.0e9 + step, float(step)) for step in range(2 * MAX_POINTS_PER_WRITE + 7)}
    scalars = {"/a": long_series, "/b": {0: (1.0e9, 0.5)}}
    batches = list(write_batches(scalars, {"/a": "1", "/b": "2"}))

    sizes = [sum(len(series.values) for series in batch) for batch in batches]
    assert sizes == [MAX_POINTS_PER_WRITE, MAX_POINTS_PER_WRITE, 8]
    written = [(series.tensorboard_time_series_id, point.step) for batch in batches for series in batch
               for point in series.values]
    assert sorted(written) == sorted([("1", step) for step in long_series] + [("2", 0)])


def test_upload_creates_experiment_run_and_scalar_time_series(log_dir, google_cloud):
    experiment = upload_tensorboard_scalars(str(log_dir), TENSORBOARD, "Distillation 2026-11-28")

    assert experiment == f"{TENSORBOARD}/experiments/distillation-2026-11-28"
    (create_experiment,) = posts(google_cloud, "/experiments")
    assert create_experiment["query"]["tensorboardExperimentId"] == "distillation-2026-11-28"
    assert create_experiment["body"]["displayName"] == "Distillation 2026-11-28"
    (create_run,) = posts(google_cloud, "/runs")
    assert create_run["path"] == f"/v1/{experiment}/runs"
    assert create_run["query"]["tensorboardRunId"] == "tune-student"
    created_series = [request["body"] for request in posts(google_cloud, "/timeSeries")]
    assert sorted(series["displayName"] for series in created_series) == sorted(LOGGED)
    # The REST client sends enums as their numbers.
    assert all(series["valueType"] == SCALAR and series["pluginName"] == "scalars" for series in created_series)
    (write,) = posts(google_cloud, ":write")
    assert write["path"] == f"/v1/{experiment}/runs/tune-student:write"
    assert all(series["valueType"] == SCALAR for series in write["body"]["timeSeriesData"])
    assert sorted(written_points(google_cloud)) == expected_points()


def test_a_rerun_reuses_what_exists_and_rewrites_the_same_steps(log_dir, google_cloud):
    first = upload_tensorboard_scalars(str(log_dir), TENSORBOARD, "distillation-1")
    resources = dict(google_cloud.tensorboard_resources)
    second = upload_tensorboard_scalars(str(log_dir), TENSORBOARD, "distillation-1")

    assert first == second
    assert google_cloud.tensorboard_resources == resources
    assert len(posts(google_cloud, "/timeSeries")) == len(LOGGED)
    # The second upload wrote each point once more, to the same time series and steps (Vertex AI overwrites them).
    points = written_points(google_cloud)
    half = len(points) // 2
    assert sorted(points[:half]) == sorted(points[half:]) == expected_points()


def test_a_bare_id_without_a_project_is_refused_before_any_request(log_dir, google_cloud):
    with pytest.raises(ValueError, match="projects/PROJECT/locations/LOCATION/tensorboards/ID"):
        upload_tensorboard_scalars(str(log_dir), "777", "distillation-1")
    assert not google_cloud.tensorboard_requests


def test_component_uploads_the_scalars_to_a_tensorboard_in_the_jobs_region(
    recorded_student_dir, log_dir, google_cloud, monkeypatch, capsys
):
    # On Vertex AI the job's region is in CLOUD_ML_REGION; the model goes to another region here.
    monkeypatch.setenv("CLOUD_ML_REGION", "europe-west4")
    model = SimpleNamespace(path=str(recorded_student_dir), uri="gs://pipeline-root/run/tune-student/model")
    outputs = upload_model.python_func(
        model=model, model_display_name="tiny", project="test-project", location="us-central1",
        tensorboard_logs=SimpleNamespace(path=str(log_dir)), tensorboard_resource_id="777",
        pipeline_job_name="distillation-20261128051600",
        kfp_distill_image_uri="us-central1-docker.pkg.dev/test-project/kfp/kfp-distill:0.1.0",  # one Vertex AI pulls
    )

    assert outputs.model_resource_name == "projects/test-project/locations/us-central1/models/1000"
    experiment = f"{TENSORBOARD}/experiments/distillation-20261128051600"
    assert experiment in google_cloud.tensorboard_resources
    assert sorted(written_points(google_cloud)) == expected_points()
    assert f"Vertex AI TensorBoard experiment {experiment}" in capsys.readouterr().out


def test_component_without_a_project_sends_nothing(recorded_student_dir, log_dir, registry_home, google_cloud, capsys):
    model = SimpleNamespace(path=str(recorded_student_dir), uri=str(recorded_student_dir))
    outputs = upload_model.python_func(
        model=model, model_display_name="tiny", tensorboard_logs=SimpleNamespace(path=str(log_dir)),
        tensorboard_resource_id=TENSORBOARD,
    )

    assert outputs.model_resource_name == "models:/tiny/1"
    assert not google_cloud.tensorboard_requests
    assert "tensorboard_resource_id needs a project" in capsys.readouterr().out
