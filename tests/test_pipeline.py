"""The compiled pipeline: fresh, true to the contract, and runnable locally end to end."""

import re
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from kfp import dsl
from kfp.dsl import Input, Model, Output

from kfp_distill._implementation.settings import IMAGE
from kfp_distill.interfaces.compiling import compile_all

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ROOT / "compiled" / "distillation.yaml"
COMPILED_KUBEFLOW = ROOT / "compiled" / "distillation-kubeflow.yaml"
CONTRACT = ROOT.parent / "shared" / "CONTRACT.md"


def test_compiled_pipeline_and_components_are_fresh(tmp_path):
    written = compile_all(tmp_path)
    fresh = {path.relative_to(tmp_path) for path in written}
    assert {Path("distillation.yaml"), Path("distillation-kubeflow.yaml"), Path("components/deploy_model.yaml")} <= fresh
    assert Path("components/preflight.yaml") in fresh
    assert len(fresh) == 9, "the pipeline for Vertex AI and kfp.local, the same for Kubeflow, and the seven components"
    committed = {path.relative_to(COMPILED.parent) for path in COMPILED.parent.rglob("*.yaml")}
    assert committed == fresh, "compiled/ holds other files than compile_all writes: run `make compile`"
    stale = [str(name) for name in sorted(fresh) if (tmp_path / name).read_text() != (COMPILED.parent / name).read_text()]
    assert not stale, f"compiled/ is stale ({', '.join(stale)}): run `make compile`"


def test_each_tasks_program_loads_as_its_executor_loads_it():
    # The executor runs a component's own source alone (after kfp's imports): a default naming a module-level
    # constant (`= IMAGE`) is a NameError in every run of that task, found only when the pipeline runs.
    executors = yaml.safe_load(COMPILED.read_text())["deploymentSpec"]["executors"]
    programs = {
        name: executor["container"]["command"][-1]
        for name, executor in executors.items()
        if "ephemeral_component" in " ".join(executor["container"].get("command", []))
    }
    assert {"exec-preflight", "exec-validate-dataset", "exec-upload-model", "exec-deploy-model"} <= set(programs)
    for name, program in programs.items():
        exec(compile(program, f"ephemeral_component ({name})", "exec"), {})


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
        "use_logged_answers": True,
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


def _spec() -> dict:
    return yaml.safe_load(COMPILED.read_text())


def _branch_running(spec: dict, component_name: str) -> tuple[str, str]:
    """The tuning branch (condition component) whose DAG holds a task of `component_name`, and its condition."""
    branches = spec["components"]["comp-condition-branches-1"]["dag"]["tasks"]
    for branch in branches.values():
        tasks = spec["components"][branch["componentRef"]["name"]]["dag"]["tasks"]
        if any(task["componentRef"]["name"] == component_name for task in tasks.values()):
            return branch["componentRef"]["name"], branch["triggerPolicy"]["condition"]
    raise AssertionError(f"no tuning branch runs {component_name}")


def _task_names(spec: dict, name: str, task: dict) -> set[str]:
    """The name of `task` and those of every task inside it, at any depth (conditions are DAGs of tasks)."""
    inner = spec["components"][task["componentRef"]["name"]].get("dag", {}).get("tasks", {})
    return {name}.union(*(_task_names(spec, *subtask) for subtask in inner.items()))


def test_gpu_tuning_with_a_project_is_a_vertex_ai_custom_job_on_8_a100s():
    spec = _spec()
    job = spec["components"]["comp-tune-student-on-vertex-ai"]
    (pool,) = job["inputDefinitions"]["parameters"]["worker_pool_specs"]["defaultValue"]
    assert pool["machine_spec"] == {
        "machine_type": "a2-ultragpu-8g",
        "accelerator_type": "NVIDIA_A100_80GB",
        "accelerator_count": 8,
    }
    assert pool["replica_count"] == 1
    # The job runs our tune-student code in our image.
    assert pool["container_spec"]["args"][-1] == "tune_student"
    in_process = spec["deploymentSpec"]["executors"]["exec-tune-student"]["container"]
    assert pool["container_spec"]["image_uri"] == in_process["image"]
    launcher = spec["deploymentSpec"]["executors"]["exec-tune-student-on-vertex-ai"]["container"]
    assert "google_cloud_pipeline_components.container.v1.custom_job.launcher" in launcher["command"]

    branch, condition = _branch_running(spec, "comp-tune-student-on-vertex-ai")
    assert condition == "!(inputs.parameter_values['pipelinechannel--project'] == '')"
    inputs = spec["components"][branch]["dag"]["tasks"]["tune-student-on-vertex-ai"]["inputs"]["parameters"]
    assert inputs["project"] == {"componentInputParameter": "pipelinechannel--project"}
    cmek = inputs["encryption_spec_key_name"]
    assert cmek == {"componentInputParameter": "pipelinechannel--encryption_spec_key_name"}


def test_without_a_project_tuning_runs_in_process_and_one_model_reaches_evaluate_and_upload():
    spec = _spec()
    _, condition = _branch_running(spec, "comp-tune-student")
    assert condition == "inputs.parameter_values['pipelinechannel--project'] == ''"
    picked = spec["components"]["comp-condition-branches-1"]["dag"]["outputs"]["artifacts"]
    # dsl.OneOf over the two branches' models, and over their training logs (for the evaluation report).
    selected = {
        name: sorted(selector["outputArtifactKey"] for selector in one_of["artifactSelectors"])
        for name, one_of in picked.items()
    }
    assert sorted(selected.values()) == [
        ["pipelinechannel--tune-student-model", "pipelinechannel--tune-student-on-vertex-ai-model"],
        [
            "pipelinechannel--tune-student-on-vertex-ai-tensorboard_logs",
            "pipelinechannel--tune-student-tensorboard_logs",
        ],
    ]
    tasks = spec["root"]["dag"]["tasks"]
    upload = tasks["upload-model"]["inputs"]["artifacts"]["model"]
    one_of = upload["taskOutputArtifact"]["outputArtifactKey"]
    assert selected[one_of][0] == "pipelinechannel--tune-student-model"
    assert upload["taskOutputArtifact"]["producerTask"] == "condition-branches-1"
    (evaluation_branch,) = [task for name, task in tasks.items() if "evaluate" in _task_names(spec, name, task)]
    handed_on = evaluation_branch["inputs"]["artifacts"]
    assert {"outputArtifactKey": one_of, "producerTask": "condition-branches-1"} in [
        artifact.get("taskOutputArtifact") for artifact in handed_on.values()
    ]


def test_preflight_is_the_first_step_and_every_paid_step_waits_for_it():
    spec = _spec()
    tasks = spec["root"]["dag"]["tasks"]
    assert "dependentTasks" not in tasks["preflight"], "preflight waits for nothing"
    assert tasks["validate-dataset"]["dependentTasks"] == ["preflight"]

    teacher_tasks = [
        name
        for name, task in tasks.items()
        if any(inner.startswith("generate-rationales") for inner in _task_names(spec, name, task))
    ]
    assert len(teacher_tasks) == 2, "the training teacher and the evaluation branch"
    for name in teacher_tasks:
        assert "validate-dataset" in tasks[name]["dependentTasks"], name


def test_preflight_takes_each_setting_it_checks_once_under_the_pipelines_name():
    from kfp_distill._implementation.preflight import SETTINGS

    checked = _spec()["root"]["dag"]["tasks"]["preflight"]["inputs"]["parameters"]
    assert set(checked) == set(SETTINGS)
    for name in set(SETTINGS) - {"kfp_distill_image_uri"}:
        assert checked[name] == {"componentInputParameter": name}, name
    # The serving image by default, checked as upload-model will use it: the image the components were compiled with.
    assert checked["kfp_distill_image_uri"] == {"runtimeValue": {"constant": IMAGE}}


def test_validate_dataset_takes_only_what_it_uses():
    used = _spec()["root"]["dag"]["tasks"]["validate-dataset"]["inputs"]["parameters"]
    # The data and its student, the task type, whether logged answers become labels, and the tuning settings the
    # report's passes over the data are worked out for.
    assert set(used) == {"dataset_uri", "evaluation_data_uri", "student_model_reference", "task_type",
                         "use_logged_answers", "train_steps", "batch_size", "enable_checkpoint_selection"}
    for name, source in used.items():
        assert source == {"componentInputParameter": name}, name


def _stopped_before_spending(tmp_path, stub_teacher, capfd, **arguments) -> tuple[str, str]:
    """Runs the compiled pipeline locally with the stub teacher and `arguments`, which the preflight step must refuse
    before the data is read or the teacher asked anything; returns what the run printed and the preflight report."""
    from kfp import components

    from kfp_distill.interfaces.demo import write_demo_data
    from kfp_distill.pipelines.local_runner import init_local_runner

    files = write_demo_data(tmp_path / "data", train_size=12, evaluation_size=10)
    init_local_runner(tmp_path / "runs")
    pipeline = components.load_component_from_file(str(COMPILED))
    with pytest.raises(RuntimeError, match="preflight"):
        pipeline(
            dataset_uri=files["train"],
            evaluation_data_uri=files["evaluation"],
            project="my-project",
            teacher_model_reference=f"{stub_teacher.base_url}#stub-teacher",
            teacher_cache_uri=str(tmp_path / "teacher.sqlite"),
            **arguments,
        )
    assert stub_teacher.requests == []
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert sorted(path.name for path in run_dir.iterdir()) == ["preflight"]
    return capfd.readouterr().out, (run_dir / "preflight" / "report").read_text()


def test_tpu_stops_the_compiled_pipeline_at_preflight_before_the_teacher_is_asked(tmp_path, stub_teacher, capfd):
    pullable = "us-central1-docker.pkg.dev/my-project/kfp/kfp-distill:0.1.0"
    printed, report = _stopped_before_spending(
        tmp_path, stub_teacher, capfd, accelerator_type="TPU", serving_container_image_uri=pullable
    )
    assert "PreflightError: refused before anything was spent: accelerator_type 'TPU' is not supported yet" in printed
    assert "accelerator_type 'TPU' is not supported yet" in report


def test_vertex_ai_gets_one_yaml_document_and_kubeflow_the_same_with_the_teacher_key_from_a_kubernetes_secret():
    # Vertex AI's SDK reads a template with yaml.safe_load, which refuses a second document.
    (vertex,) = yaml.safe_load_all(COMPILED.read_text())
    pipeline, platform = yaml.safe_load_all(COMPILED_KUBEFLOW.read_text())
    assert pipeline == vertex
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    # Both teacher steps, the training one and the evaluation one (inside its condition: a channel of the parameter).
    assert sorted(executors) == ["exec-generate-rationales", "exec-generate-rationales-2"]
    for name, config in executors.items():
        (secret,) = config["secretAsEnv"]
        assert secret["keyToEnv"] == [{"secretKey": "api_key", "envVar": "KFP_DISTILL_TEACHER_API_KEY"}]
        assert secret["optional"] is True, "a pod starts where no such secret exists"
        # Named at run time by a pipeline parameter, not fixed at compile time.
        assert secret["secretNameParameter"]["componentInputParameter"].endswith("teacher_api_key_kubernetes_secret")
    inputs = vertex["root"]["inputDefinitions"]["parameters"]
    assert inputs["teacher_api_key_kubernetes_secret"]["defaultValue"] == "kfp-distill-teacher-api-key"
    assert inputs["teacher_api_key_secret"]["defaultValue"] == ""


def test_the_teacher_steps_read_the_named_secret():
    spec = _spec()
    teacher_steps = [
        task
        for component in [spec["root"], *spec["components"].values()]
        for task in component.get("dag", {}).get("tasks", {}).values()
        if task["componentRef"]["name"].startswith("comp-generate-rationales")
    ]
    assert len(teacher_steps) == 2
    for task in teacher_steps:
        assert task["inputs"]["parameters"]["teacher_api_key_secret"]["componentInputParameter"].endswith(
            "teacher_api_key_secret"
        )
    upload = spec["root"]["dag"]["tasks"]["upload-model"]["inputs"]["parameters"]
    assert upload["serving_container_image_uri"] == {"componentInputParameter": "serving_container_image_uri"}


def test_what_would_fail_after_money_is_spent_stops_the_compiled_pipeline_at_preflight(tmp_path, stub_teacher, capfd):
    printed, report = _stopped_before_spending(
        tmp_path,
        stub_teacher,
        capfd,
        student_model_reference="text-bison@002",
        teacher_api_key_secret="projects/my-project/secrets/teacher-key",
        serving_container_image_uri="ghcr.io/me/kfp-distill:0.1.0",
    )
    assert "PreflightError: 3 problems found before anything was spent" in printed
    for problem in ("student_model_reference 'text-bison@002' is a PaLM model",
                    "teacher_api_key_secret is not a Secret Manager secret version name",
                    "Vertex AI cannot pull the serving image 'ghcr.io/me/kfp-distill:0.1.0'"):
        assert problem in printed
        assert problem in report


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def _write_model(text: str, model: Output[Model]):
    with open(model.path, "w") as file:
        file.write(text)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def _read_model(model: Input[Model]) -> str:
    with open(model.path) as file:
        return file.read()


@dsl.pipeline
def _one_of_two_models(where: str) -> str:
    with dsl.If(where == "here"):
        here = _write_model(text="tuned here")
    with dsl.Else():
        there = _write_model(text="tuned there")
    return _read_model(model=dsl.OneOf(here.outputs["model"], there.outputs["model"])).output


@pytest.mark.parametrize("where, expected", [("here", "tuned here"), ("there", "tuned there")])
def test_the_local_runner_hands_on_the_model_of_the_branch_that_ran(tmp_path, where, expected):
    from kfp_distill.pipelines.local_runner import init_local_runner

    init_local_runner(tmp_path)
    assert _one_of_two_models(where=where).output == expected


def test_the_model_is_deployed_after_upload_and_both_resource_names_are_pipeline_outputs():
    spec = _spec()
    tasks = spec["root"]["dag"]["tasks"]
    outputs = spec["root"]["outputDefinitions"]["parameters"]
    assert set(outputs) == {"model_resource_name", "endpoint_resource_name"}
    selectors = spec["root"]["dag"]["outputs"]["parameters"]
    assert selectors["model_resource_name"]["valueFromParameter"] == {
        "outputParameterKey": "model_resource_name", "producerSubtask": "upload-model"
    }
    assert selectors["endpoint_resource_name"]["valueFromParameter"] == {
        "outputParameterKey": "endpoint_resource_name", "producerSubtask": "deploy-model"
    }

    deploy = tasks["deploy-model"]
    # After upload, and after the evaluation branch or its else branch has decided the deploy gate.
    assert deploy["dependentTasks"] == [_gate_branches(spec), "upload-model"]
    parameters = deploy["inputs"]["parameters"]
    assert parameters["model_resource_name"]["taskOutputParameter"] == {
        "outputParameterKey": "model_resource_name", "producerTask": "upload-model"
    }
    # The project decides inside the task (no project: nothing deployed), as do deploy_model and the settings.
    for name, pipeline_parameter in {
        "project": "project",
        "deploy_model": "deploy_model",
        "machine_type": "deploy_machine_type",
        "min_replica_count": "deploy_min_replica_count",
        "max_replica_count": "deploy_max_replica_count",
        "traffic_percentage": "deploy_traffic_percentage",
        "encryption_spec_key_name": "encryption_spec_key_name",
    }.items():
        assert parameters[name] == {"componentInputParameter": pipeline_parameter}, name
    assert parameters["service_account"]["runtimeValue"]["constant"] == "{{$.pipeline_service_account}}"
    defaults = {name: _pipeline_inputs()[name]["defaultValue"] for name in (
        "deploy_model", "deploy_machine_type", "deploy_min_replica_count", "deploy_max_replica_count",
        "deploy_traffic_percentage",
    )}
    assert defaults == {
        "deploy_model": True, "deploy_machine_type": "n1-standard-2", "deploy_min_replica_count": 1,
        "deploy_max_replica_count": 1, "deploy_traffic_percentage": 100,
    }


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def _echo(text: str) -> str:
    return text


def _gate_branches(spec: dict) -> str:
    """The task of the evaluation branch and its else branch, which picks the deploy gate's decision (dsl.OneOf)."""
    (name,) = [
        name for name, task in spec["root"]["dag"]["tasks"].items()
        if {"evaluate", "gate-without-evaluation"} <= _task_names(spec, name, task)
    ]
    return name


def test_the_deploy_gate_is_decided_by_evaluate_or_without_evaluation_data_and_reaches_upload_and_deploy():
    spec = _spec()
    branches = _gate_branches(spec)
    picked = spec["components"][f"comp-{branches}"]["dag"]["outputs"]["parameters"]
    selected = {
        name: sorted(selector["outputParameterKey"] for selector in one_of["valueFromOneof"]["parameterSelectors"])
        for name, one_of in picked.items()
    }
    assert sorted(selected.values()) == [
        ["pipelinechannel--evaluate-gate_decision", "pipelinechannel--gate-without-evaluation-gate_decision"],
        ["pipelinechannel--evaluate-gate_reason", "pipelinechannel--gate-without-evaluation-gate_reason"],
    ]
    tasks = spec["root"]["dag"]["tasks"]
    for task in ("upload-model", "deploy-model"):
        parameters = tasks[task]["inputs"]["parameters"]
        for output in ("gate_decision", "gate_reason"):
            source = parameters[output]["taskOutputParameter"]
            assert source["producerTask"] == branches
            assert selected[source["outputParameterKey"]][0] == f"pipelinechannel--evaluate-{output}"
    conditions = {}
    for branch in spec["components"][f"comp-{branches}"]["dag"]["tasks"].values():
        component = spec["components"][branch["componentRef"]["name"]]
        for name, task in component["dag"]["tasks"].items():
            conditions[name] = (branch["triggerPolicy"]["condition"], task["inputs"]["parameters"])
    condition, evaluate_inputs = conditions["evaluate"]
    assert condition == "inputs.parameter_values['pipelinechannel--evaluation_data_uri'] != ''"
    assert evaluate_inputs["min_share_of_teacher"] == {
        "componentInputParameter": "pipelinechannel--deploy_min_share_of_teacher"
    }
    assert evaluate_inputs["gate_on_lower_bound"] == {
        "componentInputParameter": "pipelinechannel--deploy_gate_on_lower_bound"
    }
    condition, without_inputs = conditions["gate-without-evaluation"]
    assert condition == "!(inputs.parameter_values['pipelinechannel--evaluation_data_uri'] != '')"
    assert without_inputs["min_share_of_teacher"] == {
        "componentInputParameter": "pipelinechannel--deploy_min_share_of_teacher"
    }
    defaults = _pipeline_inputs()
    # Off by default: the contract's request deploys what it tuned.
    assert defaults["deploy_min_share_of_teacher"]["defaultValue"] == 0.0
    assert defaults["deploy_gate_on_lower_bound"]["defaultValue"] is False


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def _failed_gate() -> NamedTuple("Outputs", [("gate_decision", str), ("gate_reason", str)]):
    from collections import namedtuple

    return namedtuple("Outputs", ["gate_decision", "gate_reason"])("failed", "below the share")


@dsl.pipeline
def _gate_of_the_branch_that_ran(evaluation_data_uri: str, min_share: float) -> str:
    from kfp_distill.components.evaluate.component import gate_without_evaluation

    with dsl.If(evaluation_data_uri != ""):
        judged = _failed_gate()
    with dsl.Else():
        unjudged = gate_without_evaluation(min_share_of_teacher=min_share)
    return _echo(text=dsl.OneOf(judged.outputs["gate_decision"], unjudged.outputs["gate_decision"])).output


@pytest.mark.parametrize(
    "evaluation_data_uri, min_share, expected",
    [("eval.jsonl", 0.9, "failed"), ("", 0.9, "not judged"), ("", 0.0, "off")],
)
def test_the_local_runner_hands_on_the_gate_decision_of_the_branch_that_ran(
    tmp_path, evaluation_data_uri, min_share, expected
):
    from kfp_distill.pipelines.local_runner import init_local_runner

    init_local_runner(tmp_path)
    assert _gate_of_the_branch_that_ran(evaluation_data_uri=evaluation_data_uri, min_share=min_share).output == expected


@dsl.pipeline
def _with_the_service_account() -> str:
    from google_cloud_pipeline_components import _placeholders as google_cloud_placeholders

    return _echo(text=google_cloud_placeholders.SERVICE_ACCOUNT_PLACEHOLDER).output


def test_the_local_runner_gives_the_pipeline_service_account_as_empty(tmp_path):
    # deploy-model is given the job's service account; locally there is none (kfp.local 2.17.3 crashed on it).
    from kfp_distill.pipelines.local_runner import init_local_runner

    init_local_runner(tmp_path)
    assert _with_the_service_account().output == ""
