"""The teacher's key, read from Secret Manager (a loopback stand-in) by a local run of the compiled pipeline,
reaches the teacher and nothing else: not the compiled YAML, the run's artifacts and reports, the model card,
the teacher cache, the registry records or the logs."""

import base64
import os
from pathlib import Path

import pytest

from kfp_distill._implementation.scripts import load_module
from kfp_distill._implementation.teacher_key import TEACHER_API_KEY_ENV

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ROOT / "compiled"
STUB_SERVER = ROOT / "components/generate_rationales/tests/openai_stub_server.py"
KEY = "sk-leak-probe-7f3a9c21e4b86d05"
SECRET = "projects/my-project/secrets/teacher-api-key"


def _files_holding(directory: Path, needles: list[bytes]) -> list[str]:
    return [
        str(path)
        for path in directory.rglob("*")
        if path.is_file() and any(needle in path.read_bytes() for needle in needles)
    ]


@pytest.mark.slow
def test_a_pipeline_run_gives_the_key_to_the_teacher_and_writes_it_nowhere(
    tmp_path, tiny_student_dir, secret_manager, monkeypatch, capfd
):
    from kfp import components

    from kfp_distill.interfaces.demo import write_demo_data
    from kfp_distill.pipelines.local_runner import init_local_runner

    monkeypatch.delenv(TEACHER_API_KEY_ENV, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("KFP_DISTILL_HOME", str(tmp_path / "home"))  # the embedded MLflow registry
    secret_manager.versions[f"{SECRET}/versions/1"] = f"{KEY}\n".encode()
    files = write_demo_data(tmp_path / "data", train_size=10, evaluation_size=10)
    init_local_runner(tmp_path / "runs")
    pipeline = components.load_component_from_file(str(COMPILED / "distillation.yaml"))
    stub_server = load_module("generate_rationales_openai_stub_server", STUB_SERVER)

    with stub_server.OpenAIStubServer(api_key=KEY) as teacher:  # answers only requests that carry the key
        task = pipeline(
            dataset_uri=files["train"],
            evaluation_data_uri=files["evaluation"],
            teacher_model_reference=f"{teacher.base_url}#stub-teacher",
            teacher_api_key_secret=f"{SECRET}/versions/latest",
            teacher_few_shot_uri=files["few_shot"],
            teacher_cache_uri=str(tmp_path / "teacher.sqlite"),
            student_model_reference=tiny_student_dir,
            train_steps=2,
            batch_size=4,
            evaluation_interval=1,
            model_display_name="leak-probe",
        )
    assert task.outputs["model_resource_name"].startswith("models:/leak-probe/")
    # Both teacher steps (training and evaluation rows) read the secret and sent the key, and only it.
    assert len(teacher.requests) >= 20
    assert set(teacher.authorizations) == {f"Bearer {KEY}"}
    assert TEACHER_API_KEY_ENV not in os.environ

    needles = [KEY.encode(), base64.b64encode(KEY.encode())]
    assert _files_holding(COMPILED, needles) == []
    run_files = [path for path in (tmp_path / "runs").rglob("*") if path.is_file()]
    assert any(path.name == "README.md" and path.parent.name == "model" for path in run_files), "the model card"
    leaked = [path for path in _files_holding(tmp_path, needles) if "adc" not in Path(path).parts]
    assert leaked == [], "the key was written out"
    registry = [path for path in (tmp_path / "home").rglob("*") if path.is_file()]
    assert registry, "the registry records were searched"
    printed = capfd.readouterr()
    assert KEY not in printed.out and KEY not in printed.err
