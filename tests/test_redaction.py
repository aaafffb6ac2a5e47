"""No credentials from a URI reach what a run writes: reports, the model card and record, MLflow."""

import functools
import http.server
import json
import threading

import pytest

from kfp_distill._implementation.redaction import redact_uri

SECRET = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("uri", "redacted"),
    [
        (f"https://ana:{SECRET}@data.example.com/train.jsonl", "https://ana:***@data.example.com/train.jsonl"),
        (
            f"https://storage.googleapis.com/b/train.jsonl?X-Goog-Algorithm=GOOG4&X-Goog-Signature={SECRET}&alt=media",
            "https://storage.googleapis.com/b/train.jsonl?X-Goog-Algorithm=GOOG4&X-Goog-Signature=***&alt=media",
        ),
        (f"https://x.blob.core.windows.net/c/eval.jsonl?sv=2022&sig={SECRET}", "https://x.blob.core.windows.net/c/eval.jsonl?sv=2022&sig=***"),
        (f"https://h/v1?token={SECRET}&key={SECRET}#qwen", "https://h/v1?token=***&key=***#qwen"),
        (f"https://h/d.jsonl?Signature={SECRET}", "https://h/d.jsonl?Signature=***"),
        # Nothing secret: returned as given, byte for byte.
        ("gs://bucket/train.jsonl", "gs://bucket/train.jsonl"),
        ("http://127.0.0.1:8080/v1#qwen2.5-coder-1.5b", "http://127.0.0.1:8080/v1#qwen2.5-coder-1.5b"),
        ("https://ana@h/d.jsonl?alt=media&keyword=x", "https://ana@h/d.jsonl?alt=media&keyword=x"),
        ("smollm2-135m-instruct", "smollm2-135m-instruct"),
        ("/data/my train.jsonl", "/data/my train.jsonl"),
        ("C:\\data\\train.jsonl", "C:\\data\\train.jsonl"),
        ("http://[::1", "http://[::1"),  # not a URI urlsplit accepts
    ],
)
def test_redact_uri_replaces_passwords_and_signatures_and_keeps_the_rest(uri, redacted):
    assert redact_uri(uri) == redacted


def test_the_model_record_and_card_hold_no_credentials():
    from kfp_distill.components.tune_student.config import TuningConfig
    from kfp_distill.components.tune_student.tuning import _model_card, _model_facts

    config = TuningConfig(student_model_reference=f"https://ana:{SECRET}@models.example.com/smollm2.gguf")
    provenance = {
        "teacher_model_reference": f"https://api.example.com/v1?key={SECRET}#gpt",
        "dataset_uri": f"https://storage.googleapis.com/b/train.jsonl?X-Goog-Signature={SECRET}",
    }
    metrics = {"steps_run": 3, "stopped_early": False, "selected_step": 3, "train_examples": 4, "evaluation_examples": 0}

    facts = _model_facts(config, provenance, metrics, encoder_decoder=False, tasks=("label", "rationale"))
    written = json.dumps(facts) + _model_card(facts)

    assert SECRET not in written
    assert "https://ana:***@models.example.com/smollm2.gguf" in written
    assert "X-Goog-Signature=***" in written


def test_mlflow_params_tags_and_description_hold_no_credentials(tmp_path):
    import mlflow

    from kfp_distill.components.upload_model.registry import register_model

    # A model directory tuned before tune-student redacted its record.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}", encoding="utf-8")
    record = {
        "teacher_model_reference": f"https://api.example.com/v1?token={SECRET}#gpt",
        "student_model_reference": f"https://ana:{SECRET}@models.example.com/smollm2",
        "dataset_uri": f"https://h/train.jsonl?sig={SECRET}",
        "metrics": {"train_loss": 0.5},
    }
    (model_dir / "kfp_distill.json").write_text(json.dumps(record), encoding="utf-8")
    registry = f"sqlite:///{tmp_path / 'mlflow.db'}"

    register_model(model_dir, "redacted-student", registry_uri=registry)

    client = mlflow.MlflowClient(tracking_uri=registry, registry_uri=registry)
    version = client.get_model_version("redacted-student", "1")
    run = client.get_run(version.run_id)
    written = json.dumps([run.data.params, run.data.tags, version.tags, version.description])
    assert SECRET not in written
    assert "https://ana:***@models.example.com/smollm2" in written


def test_the_evaluation_reports_hold_no_credentials():
    from kfp_distill.components.evaluate.evaluation import EvaluationRow, TeacherAnswer, compare
    from kfp_distill.components.evaluate.html_report import render_html

    result = compare(
        [EvaluationRow("q1", "42")],
        {"q1": TeacherAnswer("42", 1.0)},
        distilled_answers=["42"],
        untuned_answers=["41"],
        student_model_reference=f"https://ana:{SECRET}@models.example.com/smollm2",
        distilled_latencies_s=[0.5],
        untuned_latencies_s=[0.5],
    )

    for report in (result.to_markdown(), render_html(result, {})):
        assert SECRET not in report
        assert "ana:***@models.example.com" in report


def test_the_validation_report_holds_no_credentials(tmp_path, tiny_student_dir):
    from kfp_distill.components.validate_dataset.validation import validate_dataset

    # Served over real HTTP: the URIs must still be read with their credentials, only not written out.
    # Repeated, and leaked into the evaluation set: warnings that name each URI.
    rows = [{"input_text": f"question {i % 5}", "output_text": "answer"} for i in range(10)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://ana:{SECRET}@127.0.0.1:{server.server_address[1]}"
    out = tmp_path / "out"
    try:
        report = validate_dataset(
            f"{base}/train.jsonl?X-Goog-Signature={SECRET}",
            f"{base}/train.jsonl?sig={SECRET}",
            tiny_student_dir,
            out / "train.jsonl",
            out / "eval.jsonl",
            out / "report.md",
        )
    finally:
        server.shutdown()
        server.server_close()

    written = (out / "report.md").read_text(encoding="utf-8")
    assert report.warnings and all(SECRET not in warning for warning in report.warnings)
    assert SECRET not in written
    assert "X-Goog-Signature=***" in written


def test_the_teacher_cache_name_the_generation_report_and_dataset_errors_hold_no_credentials(tmp_path):
    from kfp_distill._implementation.jsonl import DatasetError
    from kfp_distill.components.generate_rationales.cache import default_cache_uri
    from kfp_distill.components.generate_rationales.generation import GenerationReport

    signed = f"https://h/train.jsonl?X-Goog-Signature={SECRET}"
    name = default_cache_uri(str(tmp_path), f"https://ana:{SECRET}@h/v1#qwen")
    assert SECRET not in name
    # A reference without credentials keeps the name earlier versions gave its cache (its answers stay found).
    assert default_cache_uri("/root", "http://127.0.0.1:8080/v1#qwen") == (
        "/root/teacher-cache/http-127.0.0.1-8080-v1-qwen-"
        + __import__("hashlib").sha256(b"http://127.0.0.1:8080/v1#qwen").hexdigest()[:12] + ".sqlite"
    )
    report = GenerationReport(dataset_uri=signed, teacher="llama.cpp:gguf-sha256:0")
    assert SECRET not in report.to_markdown()
    error = DatasetError(signed, "file not found", 3, "input_text")
    assert SECRET not in str(error) and error.uri == signed
