import json
import shutil
from types import SimpleNamespace

import mlflow
import pytest

from kfp_distill._implementation.model_record import RECORD_FILE, SCHEMA_VERSION, read_record, write_record
from kfp_distill._implementation.model_store import answer, list_models, load_model
from kfp_distill._implementation.model_store.mlflow_backend import default_registry_uri, mlflow_at
from kfp_distill.interfaces.cli import main
from kfp_distill.components.upload_model.component import upload_model
from kfp_distill.components.upload_model.registry import experiment_id, model_name, register_model


def test_model_names_are_sanitised_and_default_to_the_student():
    assert model_name("My model: v1/final") == "My-model-v1-final"
    assert model_name("", "smollm2-135m-instruct") == "distilled-smollm2-135m-instruct"
    assert model_name(" ", "gs://bucket/students/tiny-llama/") == "distilled-tiny-llama"
    assert model_name("", None) == "distilled-student"


def test_training_record_is_read_defensively(tmp_path, recorded_student_dir):
    assert read_record(tmp_path) == {}
    (tmp_path / "kfp_distill.json").write_text("{not json")
    assert read_record(tmp_path) == {}
    (tmp_path / "kfp_distill.json").write_text(json.dumps({"train_steps": 5, "dataset_uri": None, "metrics": [1]}))
    assert read_record(tmp_path) == {"train_steps": "5"}
    assert read_record(recorded_student_dir) == {
        "teacher_model_reference": "qwen2.5-coder-1.5b-instruct",
        "student_model_reference": "smollm2-135m-instruct",
        "dataset_uri": "gs://bucket/train.jsonl",
        "train_steps": "20",
        "task_type": "classification",
        "metrics": {"final_train_loss": 1.25, "/eval_fraction_of_correct_next_step_preds": 0.5},
    }


def test_a_written_record_carries_its_schema_version_and_reads_as_a_record_of_before(tmp_path, recorded_student_dir):
    # recorded_student_dir holds a record as tune-student wrote it before records were numbered.
    record_of_before = json.loads((recorded_student_dir / RECORD_FILE).read_text())
    path = write_record(tmp_path, record_of_before)
    assert json.loads(path.read_text()) == {"schema_version": SCHEMA_VERSION, **record_of_before}
    assert read_record(tmp_path) == read_record(recorded_student_dir)


def test_default_registry_is_sqlite_under_kfp_distill_home(registry_home):
    assert default_registry_uri() == f"sqlite:///{registry_home.resolve()}/mlflow.db"


def test_register_list_load_and_predict(recorded_student_dir, registry_home, monkeypatch):
    tracking_uri_before = mlflow.get_tracking_uri()
    resource_name = register_model(recorded_student_dir, "", metrics={"distilled_student_accuracy": 0.75})
    assert resource_name == "models:/distilled-smollm2-135m-instruct/1"
    assert (registry_home / "mlflow.db").is_file()
    assert any((registry_home / "mlartifacts").rglob("model.safetensors"))
    assert mlflow.get_tracking_uri() == tracking_uri_before

    [info] = list_models()
    assert (info.name, info.version, info.uri) == ("distilled-smollm2-135m-instruct", 1, resource_name)
    assert info.teacher == "qwen2.5-coder-1.5b-instruct"
    assert info.student == "smollm2-135m-instruct"
    assert info.metrics == {
        "final_train_loss": 1.25,
        "/eval_fraction_of_correct_next_step_preds": 0.5,
        "distilled_student_accuracy": 0.75,
    }
    version = mlflow.MlflowClient(default_registry_uri(), default_registry_uri()).get_model_version(info.name, "1")
    assert version.tags["dataset_uri"] == "gs://bucket/train.jsonl"
    assert version.tags["train_steps"] == "20"
    assert version.tags["task_type"] == "classification"
    assert "from teacher `qwen2.5-coder-1.5b-instruct`" in version.description
    assert "in 20 tuning steps" in version.description

    by_name = load_model("distilled-smollm2-135m-instruct")
    assert (by_name.uri, by_name.task_type) == (resource_name, "classification")
    [label] = by_name.predict("Classify: 5 stocks to buy now")
    assert isinstance(label, str)
    [answer] = load_model(resource_name).predict(["Classify: 5 stocks to buy now"], with_rationale=True)
    assert answer["label"] == label
    assert isinstance(answer["rationale"], str)

    # The registered model loads with plain MLflow too.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", default_registry_uri())
    assert mlflow.pyfunc.load_model(resource_name).predict(["Classify: 5 stocks to buy now"]) == [label]


def test_second_registration_bumps_the_version_and_a_bare_name_loads_the_latest(tiny_student_dir, registry_home):
    first = register_model(tiny_student_dir, "tiny student")
    second = register_model(tiny_student_dir, "tiny student")
    assert (first, second) == ("models:/tiny-student/1", "models:/tiny-student/2")
    models = list_models()
    assert [(m.name, m.version) for m in models] == [("tiny-student", 1), ("tiny-student", 2)]
    # No training record: registered without provenance.
    assert models[0].teacher is None and models[0].metrics == {}
    assert load_model("tiny-student").uri == second


def test_loading_an_unknown_name_says_what_is_registered(tiny_student_dir, registry_home):
    register_model(tiny_student_dir, "known")
    with pytest.raises(LookupError, match="registered: known"):
        load_model("unknown")


def test_component_registers_in_mlflow_without_a_project(tiny_student_dir, registry_home):
    model = SimpleNamespace(path=tiny_student_dir, uri=tiny_student_dir)
    outputs = upload_model.python_func(model=model, model_display_name="tiny")
    assert outputs.model_resource_name == "models:/tiny/1"
    assert upload_model.component_spec.outputs.keys() == {"model_resource_name"}


def test_answers_are_cut_as_evaluation_scores_the_recorded_task():
    from kfp_distill._implementation.student import Prediction

    class Student:
        def predict(self, texts, task, task_type=""):
            return [Prediction(f"First line of {text}.\nSecond line.", 0.1) for text in texts]

    assert answer(Student(), ["a"], task_type="summarization") == ["First line of a.\nSecond line."]
    assert answer(Student(), ["a"], task_type="classification") == answer(Student(), ["a"]) == ["First line of a"]


def test_predict_answers_an_extractive_question_with_a_span_of_its_context(
    varied_student_dir, registry_home, tmp_path, capsys
):
    model_dir = shutil.copytree(varied_student_dir, tmp_path / "model")
    write_record(model_dir, {"task_type": "extractive_qa"})
    register_model(model_dir, "reader")
    context = "Beijing is the capital of China. Over 21 million people live there."
    question = f"question: How many people live in Beijing? context: {context}"

    assert main(["predict", "reader", question, "--rationale"]) == 0

    printed = capsys.readouterr().out
    assert printed.startswith("rationale: ") and "\nanswer: " in printed
    span = printed.split("\nanswer: ")[1].rstrip("\n")
    assert span and span in context
    assert load_model("reader").predict(question) == [span]


class _CodeThatMustNotRun(mlflow.pyfunc.PythonModel):
    """Someone else's pyfunc model: loading it the pyfunc way runs this code."""

    def __init__(self, marker):
        self.marker = marker

    def load_context(self, context):
        with open(self.marker, "w") as handle:
            handle.write("ran")

    def predict(self, context, model_input, params=None):
        return ["intruder"]


def test_a_pyfunc_model_that_is_not_ours_is_refused_without_running_its_code(tmp_path, registry_home, tiny_student_dir):
    register_model(tiny_student_dir, "ours")  # the registry is shared: ours loads, theirs is refused
    marker = tmp_path / "ran"
    with mlflow_at(default_registry_uri()) as client:
        # In kfp-distill's experiment, whose artifacts live under the registry's home (not ./mlruns).
        with mlflow.start_run(experiment_id=experiment_id(client, default_registry_uri())):
            logged = mlflow.pyfunc.log_model(
                name="model", python_model=_CodeThatMustNotRun(str(marker)), pip_requirements=["mlflow"]
            )
        client.create_registered_model("theirs")
        client.create_model_version("theirs", source=logged.model_uri, run_id=logged.run_id, model_id=logged.model_id)
    with pytest.raises(ValueError, match=r"models:/theirs/1 is not a kfp-distill model .*none of its code was run"):
        load_model("theirs")
    assert not marker.exists()
    assert load_model("ours").uri == "models:/ours/1"


# The pyfunc wrapper as upload-model stored it with every model it registered before the model store moved to
# kfp_distill/_implementation (MLflow keeps a copy of it with each model and runs that copy when loading).
WRAPPER_BEFORE_THE_MODEL_STORE = '''
import mlflow
from mlflow.pyfunc import PythonModel

from kfp_distill.components.upload_model.registry import STUDENT_ARTIFACT, answer, load_student


class DistilledStudentModel(PythonModel):
    def load_context(self, context):
        self.predictor, self.task_type = load_student(context.artifacts[STUDENT_ARTIFACT])

    def predict(self, context, model_input, params=None):
        texts = model_input.iloc[:, 0].tolist() if hasattr(model_input, "iloc") else list(model_input)
        return answer(self.predictor, texts, bool((params or {}).get("with_rationale")), self.task_type)


mlflow.models.set_model(DistilledStudentModel())
'''


def test_a_model_registered_with_the_wrapper_of_before_the_model_store_still_loads(
    recorded_student_dir, registry_home, tmp_path, monkeypatch
):
    from kfp_distill.components.upload_model import registry

    old_wrapper = tmp_path / "pyfunc_model.py"
    old_wrapper.write_text(WRAPPER_BEFORE_THE_MODEL_STORE)
    monkeypatch.setattr(registry, "_PYFUNC_MODEL_CODE", old_wrapper)
    resource_name = register_model(recorded_student_dir, "registered-before")
    stored = next((registry_home / "mlartifacts").rglob("pyfunc_model.py")).read_text()
    assert "from kfp_distill.components.upload_model.registry import" in stored

    [label] = load_model(resource_name).predict(["Classify: 5 stocks to buy now"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", default_registry_uri())
    # MLflow's own loading runs the stored wrapper, which imports the module path of its day.
    assert mlflow.pyfunc.load_model(resource_name).predict(["Classify: 5 stocks to buy now"]) == [label]


def test_predict_and_serve_answer_a_conversation_with_a_system_prompt_alike(
    varied_student_dir, registry_home, tmp_path, capsys
):
    from kfp_distill.interfaces.serving import chat_completion, load_student_service

    register_model(shutil.copytree(varied_student_dir, tmp_path / "model"), "assistant")
    conversation = [
        {"role": "system", "content": "You are the bank's support assistant. Name the customer's intent."},
        {"role": "user", "content": "I lost my card"},
        {"role": "assistant", "content": "lost_or_stolen_card"},
        {"role": "user", "content": "and how long until a new one arrives?"},
    ]
    messages_file = tmp_path / "conversation.json"
    messages_file.write_text(json.dumps({"messages": conversation}))

    assert main(["predict", "assistant", "--messages", str(messages_file)]) == 0

    predicted = capsys.readouterr().out.removeprefix("answer: ").rstrip("\n")
    served = chat_completion(load_student_service("assistant"), {"messages": conversation})
    assert served["choices"][0]["message"]["content"] == predicted
    # The earlier turns are part of what both read: the last message alone is another question.
    assert main(["predict", "assistant", conversation[-1]["content"]]) == 0
    assert capsys.readouterr().out.removeprefix("answer: ").rstrip("\n") != predicted


def test_the_deploy_gate_decision_is_recorded_on_the_registered_version(recorded_student_dir, registry_home):
    from kfp_distill._implementation.deploy_gate import GateDecision

    gate = GateDecision("failed", "the distilled student's Accuracy is 50.0%: below 90% of the teacher's (90.0%)")
    resource_name = register_model(recorded_student_dir, "gated", gate=gate)

    version = mlflow.MlflowClient(default_registry_uri(), default_registry_uri()).get_model_version("gated", "1")
    assert resource_name == "models:/gated/1"
    assert version.tags["deploy_gate"] == "failed"
    assert version.tags["deploy_gate_reason"] == gate.reason
    assert version.description.endswith(f" Deploy gate: failed: {gate.reason}.")
