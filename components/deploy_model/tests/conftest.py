"""deploy-model's tests use upload-model's fixtures: a student with a training record and the loopback Vertex AI."""

from pathlib import Path

from kfp_distill._implementation.scripts import load_module

_upload_model_fixtures = load_module(
    "upload_model_test_fixtures", Path(__file__).resolve().parents[2] / "upload_model" / "tests" / "conftest.py"
)
recorded_student_dir = _upload_model_fixtures.recorded_student_dir
google_cloud = _upload_model_fixtures.google_cloud
