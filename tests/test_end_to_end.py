"""The whole pipeline, loaded back from compiled/distillation.yaml and run locally: a real GGUF teacher
(SmolLM2-135M through llama.cpp) labels and explains, a tiny student is tuned in-process (no project, so the
Vertex AI custom-job branch is skipped), evaluated and registered."""

import json
import re
from pathlib import Path

import mlflow
import pytest

from kfp_distill.interfaces import cli
from kfp_distill._implementation.model_store.mlflow_backend import default_registry_uri
from kfp_distill.interfaces.demo import write_demo_data

COMPILED = Path(__file__).resolve().parent.parent / "compiled" / "distillation.yaml"

pytest.importorskip("llama_cpp", reason="the embedded teacher needs llama-cpp-python (the llamacpp extra)")


def _task_dir(run_dir: Path, task: str) -> Path:
    matches = [path for path in run_dir.iterdir() if path.name == task]
    assert matches, f"no outputs of task {task} in {sorted(p.name for p in run_dir.iterdir())}"
    return matches[0]


@pytest.mark.slow
def test_compiled_pipeline_runs_locally_end_to_end(tmp_path, tiny_student_dir, monkeypatch, capsys):
    from kfp import components

    from kfp_distill.pipelines.local_runner import init_local_runner

    monkeypatch.setenv("KFP_DISTILL_HOME", str(tmp_path / "home"))
    files = write_demo_data(tmp_path / "data", train_size=12, evaluation_size=10)
    init_local_runner(tmp_path / "runs")  # kfp.local's SubprocessRunner(use_venv=False)
    pipeline = components.load_component_from_file(str(COMPILED))

    task = pipeline(
        dataset_uri=files["train"],
        evaluation_data_uri=files["evaluation"],
        teacher_model_reference="smollm2-135m-instruct",
        teacher_few_shot_uri=files["few_shot"],
        teacher_max_new_tokens=48,
        teacher_min_answered_fraction=0.5,  # a 135M teacher: its usable share is reported, not held to 90%
        teacher_cache_uri=str(tmp_path / "teacher.sqlite"),
        student_model_reference=tiny_student_dir,
        train_steps=4,
        batch_size=4,
        evaluation_interval=2,
        model_display_name="e2e-test",
        deploy_min_share_of_teacher=0.9,
    )

    assert task.outputs["model_resource_name"].startswith("models:/e2e-test/")
    assert task.outputs["endpoint_resource_name"] == "", "no project: nothing deployed"
    (run_dir,) = (tmp_path / "runs").iterdir()
    distilled = _task_dir(run_dir, "generate-rationales") / "distilled_dataset"
    rows = [json.loads(line) for line in distilled.read_text().splitlines()]
    assert rows and all(row["rationale"] and row["teacher_label"] for row in rows)
    report = (_task_dir(run_dir, "evaluate") / "report").read_text()
    # The demo's word problems are scored by value: one results row per model, with its accuracy.
    assert "10 evaluation examples. Task type: **math**" in report
    for model in ("Teacher", "Untuned student", "Distilled student"):
        assert re.search(rf"^\| {model}\b[^|]*\| \d+\.\d%", report, re.M), model
    # The deploy gate judged the student in the report and its decision reached the registered model.
    (decision,) = re.findall(r"^\*\*Deploy gate: (passed|failed)\*\*: .*90% of the teacher's", report, re.M)
    client = mlflow.MlflowClient(default_registry_uri(), default_registry_uri())
    version = task.outputs["model_resource_name"].rsplit("/", 1)[1]
    assert client.get_model_version("e2e-test", version).tags["deploy_gate"] == decision
    assert list((_task_dir(run_dir, "tune-student") / "tensorboard_logs").rglob("events.out.tfevents.*"))
    # validate-dataset's task type reaches the model's record, so the registered model answers like evaluate scores.
    record = json.loads((_task_dir(run_dir, "tune-student") / "model" / "kfp_distill.json").read_text())
    assert record["task_type"] == "math"
    assert not (run_dir / "tune-student-on-vertex-ai").exists(), "no project: the Vertex AI custom job is skipped"

    assert cli.main(["models", "list"]) == 0
    assert "e2e-test" in capsys.readouterr().out
    assert cli.main(["predict", task.outputs["model_resource_name"], "Write the arithmetic expression: 2 plus 3", "--rationale"]) == 0
    printed = capsys.readouterr().out
    assert "rationale: " in printed and "answer: " in printed
