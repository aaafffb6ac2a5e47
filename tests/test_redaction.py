"""No credentials from a URI reach what a run writes: reports, the model card and record, MLflow."""

import functools
import http.server
import json
import logging
import threading
import traceback

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfp_distill._implementation.redaction import redact_uri
from kfp_distill._implementation.teacher_reference import parse_teacher_reference

SECRET = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("uri", "redacted"),
    [
        # The whole user info: a user name is as often a token (`https://TOKEN@host`, `TOKEN:x-oauth-basic@`).
        (f"https://ana:{SECRET}@data.example.com/train.jsonl", "https://***@data.example.com/train.jsonl"),
        (f"https://{SECRET}@proxy.example.com/v1#gpt", "https://***@proxy.example.com/v1#gpt"),
        (f"https://{SECRET}:x-oauth-basic@github.com/o/r", "https://***@github.com/o/r"),
        ("https://ana@h/d.jsonl?alt=media&keyword=x", "https://***@h/d.jsonl?alt=media&keyword=x"),
        # Key names as servers spell them: any case, `-` or `_`, percent-encoded.
        (f"https://h/cb?code={SECRET}&state=1", "https://h/cb?code=***&state=1"),
        (f"https://h/v1?api-key={SECRET}", "https://h/v1?api-key=***"),
        (f"https://h/t?client_secret={SECRET}&Client-Secret={SECRET}", "https://h/t?client_secret=***&Client-Secret=***"),
        (f"https://h/t?refresh_token={SECRET}&X-API-Key={SECRET}", "https://h/t?refresh_token=***&X-API-Key=***"),
        (f"https://h/t?%73ig={SECRET}", "https://h/t?%73ig=***"),
        # A value is cut at "&" only: a ";" inside it does not end it, and ";" also separates parameters.
        (f"https://h/t?sig=a;{SECRET}&b=1", "https://h/t?sig=***&b=1"),
        (f"https://h/t?a=1;sig={SECRET}", "https://h/t?a=1;sig=***"),
        (f"https://h/t?sig=a::{SECRET}", "https://h/t?sig=***"),
        # OAuth's implicit flow puts the token in the fragment.
        (f"https://h/cb#access_token={SECRET}&x=1", "https://h/cb#access_token=***&x=1"),
        # fsspec's chained URIs: each link is redacted.
        (f"simplecache::https://ana:{SECRET}@h/x.jsonl", "simplecache::https://***@h/x.jsonl"),
        (f"zip://train.jsonl::https://{SECRET}@h/d.zip::filecache", "zip://train.jsonl::https://***@h/d.zip::filecache"),
        # A value runs to the next "&", "::" included (it may be the secret's own): later links go with it.
        (f"zip://train.jsonl::https://h/d.zip?sig={SECRET}::filecache", "zip://train.jsonl::https://h/d.zip?sig=***"),
        # A URI behind a prefix of its reader's (`hf:` before a model's URI): read from where its scheme starts.
        (f"hf:https://ana:{SECRET}@h/models/m", "hf:https://***@h/models/m"),
        (f"hf:gs://{SECRET}@bucket/m", "hf:gs://***@bucket/m"),
        (f"hf:simplecache::https://ana:{SECRET}@h/m", "hf:simplecache::https://***@h/m"),
        (f"x:y:https://h/m?sig={SECRET}#k", "x:y:https://h/m?sig=***#k"),
        # Not a URI urlsplit accepts: redacted whole past the scheme when it may hold a credential.
        (f"https://ana:{SECRET}@[::1/x", "https://***"),
        (f"https://[h/x?sig={SECRET}", "https://***"),
        (f"simplecache::https://ana:{SECRET}@[::1/x", "simplecache::https://***"),
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
        ("http://[::1]:8080/v1#qwen", "http://[::1]:8080/v1#qwen"),
        ("https://h/d.jsonl?alt=media&keyword=x&monkey=1#model", "https://h/d.jsonl?alt=media&keyword=x&monkey=1#model"),
        ("smollm2-135m-instruct", "smollm2-135m-instruct"),
        ("/data/my train.jsonl", "/data/my train.jsonl"),
        ("C:\\data\\train.jsonl", "C:\\data\\train.jsonl"),
        ("http://[::1", "http://[::1"),  # not a URI urlsplit accepts, and nothing in it is a credential
    ],
)
def test_redact_uri_replaces_user_info_and_signatures_and_keeps_the_rest(uri, redacted):
    assert redact_uri(uri) == redacted


def test_redact_text_redacts_the_uris_a_message_quotes():
    from kfp_distill._implementation.redaction import redact_text

    message = f"401, message='Unauthorized', url='https://h/d.jsonl?sig={SECRET}' (from s3://ana:{SECRET}@b/x)"
    assert redact_text(message) == "401, message='Unauthorized', url='https://h/d.jsonl?sig=*** (from s3://***@b/x)"
    assert redact_text("no uri: a=1&sig=x") == "no uri: a=1&sig=x"


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
    assert "https://***@models.example.com/smollm2.gguf" in written
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
    assert "https://***@models.example.com/smollm2" in written


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
        assert "https://***@models.example.com" in report


def test_the_validation_report_and_log_hold_no_credentials(tmp_path, tiny_student_dir, caplog):
    from kfp_distill.components.validate_dataset.validation import validate_dataset

    # Served over real HTTP: the URIs must still be read with their credentials, only not written out.
    # Repeated, and leaked into the evaluation set: warnings that name each URI; a byte-order mark, warned of.
    rows = [{"input_text": f"question {i % 5}", "output_text": "answer"} for i in range(10)]
    (tmp_path / "train.jsonl").write_text(
        "\ufeff" + "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
    )
    caplog.set_level(logging.INFO)
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
    assert "byte-order mark" in caplog.text and "validated" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize("status", [401, 500])
def test_a_dataset_error_a_server_gives_holds_no_credentials(status):
    from kfp_distill._implementation.jsonl import DatasetError, read_jsonl

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(DatasetError) as raised:
            list(read_jsonl(f"http://ana:{SECRET}@127.0.0.1:{server.server_address[1]}/d.jsonl?sig={SECRET}"))
    finally:
        server.shutdown()
        server.server_close()
    # What a failed step's log shows: the traceback, causes included.
    shown = "".join(traceback.format_exception(raised.value))
    assert str(status) in str(raised.value)
    assert SECRET not in shown


def test_the_teacher_cache_name_the_generation_report_and_dataset_errors_hold_no_credentials(tmp_path):
    from kfp_distill._implementation.jsonl import DatasetError
    from kfp_distill.components.generate_rationales.cache import default_cache_uri
    from kfp_distill.components.generate_rationales.report import GenerationReport, to_markdown

    from kfp_distill.components.generate_rationales.backends.base import TeacherRequestError
    from kfp_distill.components.generate_rationales.backends.openai_compatible import OpenAICompatibleBackend

    signed = f"https://h/train.jsonl?X-Goog-Signature={SECRET}"
    for reference in (f"https://ana:{SECRET}@h/v1#qwen", f"https://{SECRET}@proxy.example.com/v1#m"):
        assert SECRET not in default_cache_uri(str(tmp_path), reference)
        # The identity is the model the server lists; an unreachable server's error shows no credentials either.
        with pytest.raises(TeacherRequestError) as unreachable:
            OpenAICompatibleBackend(parse_teacher_reference(reference), timeout_s=1).identity
        assert SECRET not in str(unreachable.value)
    # A reference without credentials keeps the name earlier versions gave its cache (its answers stay found).
    assert default_cache_uri("/root", "http://127.0.0.1:8080/v1#qwen") == (
        "/root/teacher-cache/http-127.0.0.1-8080-v1-qwen-"
        + __import__("hashlib").sha256(b"http://127.0.0.1:8080/v1#qwen").hexdigest()[:12] + ".sqlite"
    )
    report = GenerationReport(
        dataset_uri=signed, teacher="llama.cpp:gguf-sha256:0",
        teacher_reference=parse_teacher_reference("smollm2-135m-instruct"),
    )
    assert SECRET not in to_markdown(report)
    error = DatasetError(signed, "file not found", 3, "input_text")
    assert SECRET not in str(error) and error.uri == signed


# Property-based: URIs built with secrets in every credential-bearing part. The secrets carry a mark
# that the other parts (lowercase, and key names without digits) cannot spell, so a secret found in the output
# is a leak.
_MARK = "S3cr3t~"
_UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
_SUB_DELIMS = "!$&'()*+,;="
# What a user name may hold (percent-encoded bytes too); a password may hold ":" besides. Some characters
# that urlsplit refuses in a host ("[", "＠") are there, to reach the parse failures.
_USER_CHARS = _UNRESERVED + _SUB_DELIMS + "%é[＠"
_PASSWORD_CHARS = _USER_CHARS + ":"
# What a query value may hold ("&" and "#" end it).
_VALUE_CHARS = _UNRESERVED + "!$'()*+,;=:@/?%[]é"
# Key names credentials are sent under, as the services that use them spell them.
_SECRET_KEYS = (
    "sig", "Signature", "X-Goog-Signature", "X-Goog-Credential", "X-Amz-Signature", "X-Amz-Credential",
    "X-Amz-Security-Token", "token", "access_token", "refresh_token", "id_token", "key", "api_key", "api-key",
    "apikey", "X-API-Key", "code", "client_secret", "password", "passwd", "pwd", "secret", "auth",
)
_PLAIN_KEYS = ("alt", "page", "sv", "se", "sp", "generation", "keyword", "model", "format", "monkey", "v")
_PROTOCOLS = ("simplecache", "filecache", "blockcache")
_lowercase = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_hosts = st.one_of(
    st.builds("{}.{}".format, _lowercase, _lowercase), st.just("127.0.0.1"), st.just("[::1]"), st.just("[fe80::1]")
)


def _any_case(draw, name: str) -> str:
    return "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)


@st.composite
def _link(draw, secrets: list[str], with_secrets: bool) -> str:
    """One URI (a link of a chain); with_secrets: secrets in user info, query and fragment, each recorded."""

    def secret(alphabet: str) -> str:
        value = _MARK + draw(st.text(alphabet, max_size=10))
        secrets.append(value)
        return value

    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(_PROTOCOLS))
    scheme = draw(st.sampled_from(["https", "http", "gs", "s3", "ftp", "hf"]))
    host = draw(_hosts)
    userinfo = ""
    if with_secrets:
        kind = draw(st.sampled_from(["none", "user", "user and password", "password"]))
        if kind == "user":
            userinfo = secret(_USER_CHARS) + "@"
        elif kind == "user and password":
            userinfo = f"{secret(_USER_CHARS)}:{secret(_PASSWORD_CHARS)}@"
        elif kind == "password":
            userinfo = f"{draw(_lowercase)}:{secret(_PASSWORD_CHARS)}@"
        if draw(st.integers(0, 9)) == 0:
            host = "[" + host.strip("[]")  # an unbalanced bracket: urlsplit raises
    port = draw(st.sampled_from(["", ":8080", ":443"]))
    path = "".join("/" + segment for segment in draw(st.lists(_lowercase, max_size=3)))
    parameters = []
    for _ in range(draw(st.integers(0, 4))):
        if with_secrets and draw(st.booleans()):
            parameters.append(f"{_any_case(draw, draw(st.sampled_from(_SECRET_KEYS)))}={secret(_VALUE_CHARS)}")
        else:
            parameters.append(f"{draw(st.sampled_from(_PLAIN_KEYS))}={draw(_lowercase)}")
    query = ""
    if parameters:
        query = "?" + draw(st.sampled_from(["&", ";"])).join(parameters)
    fragment = draw(st.sampled_from(["", "#" + draw(_lowercase)]))
    if with_secrets and draw(st.integers(0, 4)) == 0:
        fragment = f"#access_token={secret(_VALUE_CHARS.replace('?', ''))}&token_type=bearer"
    return f"{scheme}://{userinfo}{host}{port}{path}{query}{fragment}"


@st.composite
def _uris(draw, with_secrets: bool) -> tuple[str, list[str]]:
    secrets: list[str] = []
    links = [draw(_link(secrets, with_secrets)) for _ in range(draw(st.integers(1, 3)))]
    # A reader's prefix before the URI, as a teacher reference has (`hf:https://...`).
    return draw(st.sampled_from(["", "", "hf:", "a:b:"])) + "::".join(links), secrets


@settings(max_examples=400, deadline=None)
@given(_uris(with_secrets=True))
def test_redact_uri_leaves_no_secret_of_any_credential_bearing_part(uri_and_secrets):
    uri, secrets = uri_and_secrets
    redacted = redact_uri(uri)
    assert not [secret for secret in secrets if secret in redacted], redacted


@settings(max_examples=200, deadline=None)
@given(_uris(with_secrets=False))
def test_redact_uri_returns_a_uri_without_credentials_as_given(uri_and_secrets):
    uri, _ = uri_and_secrets
    assert redact_uri(uri) == uri


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text("ab:/@?#&;=%[]\\\t\n.＠" + _MARK, max_size=60)))
def test_redact_uri_never_raises_and_returns_text(text):
    assert isinstance(redact_uri(text), str)


def test_tuning_s_log_names_the_student_without_credentials(tmp_path, tiny_student_dir, monkeypatch, capsys):
    import shutil

    from kfp_distill._implementation import models
    from kfp_distill._implementation.jsonl import write_jsonl
    from kfp_distill.components.tune_student.config import TuningConfig
    from kfp_distill.components.tune_student.tuning import TuningRequest, run_tuning

    signed = f"https://storage.googleapis.com/b/student?X-Goog-Signature={SECRET}"
    # Cloud Storage's stand-in: the signed URL "downloads" the tiny student.
    stand_in = tmp_path / "downloaded"
    monkeypatch.setattr(models, "_download", lambda _: shutil.copytree(tiny_student_dir, stand_in, dirs_exist_ok=True))
    rows = [{"input_text": f"{i} plus {i}?", "output_text": str(2 * i), "rationale": f"{i} and {i} make {2 * i}."}
            for i in range(4)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    (tmp_path / "eval.jsonl").write_text("")
    config = TuningConfig(signed, train_steps=1, batch_size=4)
    run_tuning(TuningRequest(str(tmp_path / "train.jsonl"), str(tmp_path / "eval.jsonl"), str(tmp_path / "model"),
                             str(tmp_path / "tensorboard"), config, {}))

    shown = capsys.readouterr()
    assert "tuning https://storage.googleapis.com/b/student?X-Goog-Signature=***" in shown.out
    assert SECRET not in shown.out + shown.err


def test_the_teacher_cache_s_failed_copies_and_unreadable_caches_are_logged_without_credentials(
    monkeypatch, caplog
):
    import time

    import fsspec

    from kfp_distill.components.generate_rationales import cache

    uri, older = f"memory://ana:{SECRET}@bucket/teacher.sqlite", f"memory://ana:{SECRET}@bucket/older.sqlite"
    with fsspec.open(older, "wb") as handle:
        handle.write(b"not a SQLite file")  # an earlier cache, unreadable

    def refused(self):  # as fsspec's file systems say it: the path they were given, credentials and all
        raise PermissionError(f"403 writing {self.remote_path}.shards/x.sqlite; see {uri}?sig={SECRET}")

    monkeypatch.setattr(cache._RemoteCopy, "upload", refused)
    with pytest.raises(RuntimeError), cache.local_cache_file(uri, sync_interval_s=0.01, read_also=[older]):
        time.sleep(0.2)  # the periodic copy fails too
        raise RuntimeError("the task's own error")
    messages = [record.getMessage() for record in caplog.records if "answer cache" in record.getMessage()]
    copies = [message for message in messages if "copying" in message]
    assert len(copies) >= 2, messages
    assert "unreadable" in messages[0] and "memory://***@bucket/older.sqlite" in messages[0]
    assert all("memory://***@bucket/teacher.sqlite" in message for message in copies), copies
    assert all(SECRET not in message for message in messages), messages
