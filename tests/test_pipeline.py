"""The compiled pipeline: fresh, true to the contract, and runnable locally end to end."""

import re
from pathlib import Path

import pytest
import yaml

from kfp_distill.compiling import compile_all

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ROOT / "compiled" / "distillation.yaml"
CONTRACT = ROOT.parent / "shared" / "CONTRACT.md"


def test_compiled_pipeline_and_components_are_fresh(tmp_path):
    written = compile_all(tmp_path)
    fresh = {path.relative_to(tmp_path) for path in written}
    assert {Path("distillation.yaml"), Path("components/tune_student.yaml")} <= fresh
    assert len(fresh) == 6, "the pipeline and the five components"
    committed = {path.relative_to(COMPILED.parent) for path in COMPILED.parent.rglob("*.yaml")}
    assert committed == fresh, "compiled/ holds other files than compile_all writes: run `make compile`"
    stale = [str(name) for name in sorted(fresh) if (tmp_path / name).read_text() != (COMPILED.parent / name).read_text()]
    assert not stale, f"compiled/ is stale ({', '.join(stale)}): run `make compile`"


def _pipeline_inputs() -> dict:
    spec = yaml.safe_load(COMPILED.read_text())
    return spec["root"]["inputDefinitions"]["parameters"]


def test_pipeline_has_the_contract_parameters_and_defaults():
    inputs = _pipeline_inputs()
    expected_defaults = {
        "accelerator_type": "GPU",
        "train_steps": 300,
        "learning_rate_multiplier": 1.0,
        "evaluation_interval": 20,
        "enable_early_stopping": True,
    }
    for name, default in expected_defaults.items():
        assert inputs[name]["defaultValue"] == default, name
    assert "defaultValue" not in inputs["dataset_uri"], "dataset_uri is required"


@pytest.mark.skipif(not CONTRACT.exists(), reason="../shared/CONTRACT.md is not beside this clone")
def test_every_contract_parameter_is_a_pipeline_parameter():
    section = CONTRACT.read_text().split("## Job parameters")[1].split("Worked example")[0]
    names = set(re.findall(r"^\| (\w+) \|", section, flags=re.M)) - {"name"}
    assert len(names) == 15
    assert names <= set(_pipeline_inputs())


def test_upload_task_is_named_as_the_vertex_sdk_expects():
    spec = yaml.safe_load(COMPILED.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert "upload-model" in tasks
    assert "model_resource_name" in spec["components"]["comp-upload-model"]["outputDefinitions"]["parameters"]
