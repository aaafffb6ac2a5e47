"""examples/reuse_components.py: our components inside another pipeline, from Python and from the compiled YAML."""

import csv
import json
from pathlib import Path

import yaml
from kfp import compiler

from kfp_distill._implementation.scripts import load_module

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "reuse_components.py"


def _example():
    return load_module("reuse_components_example", EXAMPLE)


def test_both_forms_compile_to_the_same_three_steps(tmp_path):
    example = _example()
    for pipeline in (example.review_pipeline, example.review_pipeline_from_yaml):
        path = tmp_path / f"{pipeline.name}.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        spec = yaml.safe_load(path.read_text())
        assert set(spec["root"]["dag"]["tasks"]) == {"validate-dataset", "generate-rationales", "export-for-review"}
        assert set(spec["root"]["inputDefinitions"]["parameters"]) >= {"dataset_uri", "teacher_model_reference"}
        teacher_inputs = spec["root"]["dag"]["tasks"]["generate-rationales"]["inputs"]["artifacts"]["dataset"]
        assert teacher_inputs["taskOutputArtifact"]["producerTask"] == "validate-dataset"


def test_python_form_runs_locally_with_a_loopback_teacher(tmp_path, tiny_student_dir, stub_teacher, monkeypatch):
    from kfp import local

    monkeypatch.setenv("KFP_DISTILL_HOME", str(tmp_path / "home"))
    rows = [{"input_text": f"What is {n} + {n + 1}?", "output_text": str(2 * n + 1)} for n in range(3)]
    rows.append({"input_text": "What is 10 * 4?"})  # unlabeled: the teacher labels it, and it heads the sheet
    dataset = tmp_path / "train.jsonl"
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "runs"))

    task = _example().review_pipeline(
        dataset_uri=str(dataset),
        teacher_model_reference=f"{stub_teacher.base_url}#stub-teacher",
        student_model_reference=tiny_student_dir,
        teacher_cache_uri=str(tmp_path / "teacher.sqlite"),
    )

    assert task.output == 4
    assert stub_teacher.requests, "the teacher was asked"
    (run_dir,) = (tmp_path / "runs").iterdir()
    with open(run_dir / "export-for-review" / "review_sheet", newline="") as sheet:
        reviewed = list(csv.DictReader(sheet))
    assert [row["agrees_with_gold"] for row in reviewed] == ["", "True", "True", "True"]
    assert reviewed[0]["input_text"] == "What is 10 * 4?" and reviewed[0]["teacher_label"] == "40"
    assert all(row["rationale"] for row in reviewed)
