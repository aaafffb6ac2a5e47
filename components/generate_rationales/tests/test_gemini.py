"""The Gemini (Vertex AI) teacher against a loopback server standing in for Vertex AI's generateContent."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from google.oauth2.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from kfp_distill._implementation.jsonl import load_rows, write_jsonl
from kfp_distill._implementation.scripts import load_module
from kfp_distill._implementation.retired_models import RetiredModelError
from kfp_distill._implementation.teacher_reference import parse_teacher_reference
from kfp_distill.components.generate_rationales.asking import Answer, Teacher
from kfp_distill.components.generate_rationales.backends import backend_for
from kfp_distill.components.generate_rationales.backends.base import DecodingSettings, TeacherRequestError
from kfp_distill.components.generate_rationales.backends.gemini import GeminiBackend
from kfp_distill.components.generate_rationales.cache import AnswerCache
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.generate_rationales.generation import generate_rationales
from kfp_distill.components.generate_rationales.report import GenerationReport
from kfp_distill.components.generate_rationales.retry import RetryPolicy

MODEL_PATH = "/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent"
CONVERSATION = [
    {"role": "system", "content": "Explain, then answer."},
    {"role": "user", "content": "What is 1 + 1?"},
    {"role": "assistant", "content": "1 + 1 = 2. The answer is 2."},
    {"role": "user", "content": "What is 2 + 3?"},
]


def gemini_answer(text: str, finish_reason: str = "STOP", thoughts: int = 0) -> dict:
    usage = {"promptTokenCount": 21, "candidatesTokenCount": 9, "totalTokenCount": 30 + thoughts}
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish_reason}],
        "usageMetadata": usage,
        "modelVersion": "gemini-2.5-flash",
    }


class VertexStub(ThreadingHTTPServer):
    """Records every request (path, headers, JSON body) and answers with `replies` in turn, then with what
    `responder` (the stub OpenAI server's default answers) says to the conversation.

    A reply is (status, headers, JSON body), "sleep:<seconds>" (answer that late), "reset" (hang up at once)
    or "truncated" (announce a whole answer, send half of it, hang up).
    """

    daemon_threads = True

    def __init__(self, responder, replies=(), as_json=lambda text: text):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.responder, self.as_json = responder, as_json
        self.replies = list(replies)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _Handler(BaseHTTPRequestHandler):
    server: VertexStub

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": body, "at": time.monotonic()}
            )
            reply = self.server.replies.pop(0) if self.server.replies else None
        if reply == "reset":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        truncated = reply == "truncated"
        if isinstance(reply, str):  # answer late, or cut short
            if reply.startswith("sleep:"):
                time.sleep(float(reply.removeprefix("sleep:")))
            reply = None
        if reply is None:
            messages = [{"content": turn["parts"][0]["text"]} for turn in body["contents"]]
            text = self.server.responder(messages)
            if body.get("generationConfig", {}).get("responseMimeType") == "application/json":
                text = self.server.as_json(text)  # held to the request's schema, as Gemini's structured output is
            reply = (200, {}, gemini_answer(text))
        status, headers, payload = reply
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data[: len(data) // 2] if truncated else data)
            self.close_connection = truncated
        except ConnectionError:  # the client timed out
            pass


def error_body(status: int, name: str, details: list | None = None) -> dict:
    return {"error": {"code": status, "message": f"injected {status}", "status": name, "details": details or []}}


@pytest.fixture
def vertex(stub, monkeypatch):
    """Starts stand-ins for Vertex AI on loopback; stops them after the test."""
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(variable, "127.0.0.1")
    for variable in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_VERTEX_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    servers = []

    def start(replies=()):
        servers.append(VertexStub(stub.default_responder, replies, stub.as_json_answer))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def gemini(server, model="gemini-2.5-flash", project="my-project", location="us-central1", **options):
    # Fixed credentials: no Application Default Credentials, no token refresh, no network.
    return GeminiBackend(
        parse_teacher_reference(model), project, location, base_url=server.url,
        credentials=Credentials(token="test-token"), **options
    )


def test_the_request_carries_the_conversation_the_settings_and_the_model_path(vertex):
    server = vertex([(200, {}, gemini_answer("2 + 3 = 5. The answer is 5.", thoughts=4))])
    completion = gemini(server).complete(CONVERSATION, DecodingSettings(max_new_tokens=64, temperature=0.5, seed=7))

    (request,) = server.requests
    assert request["path"] == MODEL_PATH.format(project="my-project", location="us-central1", model="gemini-2.5-flash")
    assert request["headers"]["Authorization"] == "Bearer test-token"
    body = request["body"]
    assert body["systemInstruction"]["parts"] == [{"text": "Explain, then answer."}]
    assert [(turn["role"], turn["parts"][0]["text"]) for turn in body["contents"]] == [
        ("user", "What is 1 + 1?"),
        ("model", "1 + 1 = 2. The answer is 2."),
        ("user", "What is 2 + 3?"),
    ]
    generation_config = dict(body["generationConfig"])
    # gemini-2.5-flash may think; the rationale is its reasoning. (The SDK writes this field's name in
    # snake case, which Vertex AI's JSON parser accepts as it does camel case.)
    assert generation_config.pop("thinkingConfig") in ({"thinkingBudget": 0}, {"thinking_budget": 0})
    assert generation_config == {"temperature": 0.5, "seed": 7, "maxOutputTokens": 64, "candidateCount": 1}
    assert completion.text == "2 + 3 = 5. The answer is 5."
    assert (completion.prompt_tokens, completion.completion_tokens, completion.finish_reason) == (21, 9 + 4, "stop")


def test_a_model_that_cannot_stop_thinking_gets_no_thinking_config_and_the_default_location_is_global(vertex):
    server = vertex()
    gemini(server, model="gemini-2.0-flash-001", location="").complete(CONVERSATION[1:2], DecodingSettings())
    (request,) = server.requests
    assert request["path"] == MODEL_PATH.format(project="my-project", location="global", model="gemini-2.0-flash-001")
    assert "thinkingConfig" not in request["body"]["generationConfig"]
    assert "systemInstruction" not in request["body"]


def test_max_tokens_is_reported_as_length(vertex):
    server = vertex([(200, {}, gemini_answer("1 + 1 is", finish_reason="MAX_TOKENS"))])
    assert gemini(server).complete(CONVERSATION, DecodingSettings()).finish_reason == "length"


RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}


@pytest.mark.parametrize(
    "reply, kind, retryable, retry_after_s",
    [
        ((429, {"Retry-After": "3"}, error_body(429, "RESOURCE_EXHAUSTED")), "http 429", True, 3.0),
        ((429, {}, error_body(429, "RESOURCE_EXHAUSTED", [RETRY_INFO])), "http 429", True, 7.0),
        ((503, {}, error_body(503, "UNAVAILABLE")), "http 503", True, None),
        ((500, {}, error_body(500, "INTERNAL")), "http 500", True, None),
        ((400, {}, error_body(400, "INVALID_ARGUMENT")), "http 400", False, None),
        ((404, {}, error_body(404, "NOT_FOUND")), "http 404", False, None),
        ((200, {}, {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}), "blocked", False, None),
        ("reset", "connection", True, None),
        ("truncated", "connection", True, None),
        ("sleep:1.0", "timeout", True, None),
    ],
)
def test_errors_are_mapped_to_teacher_request_errors(vertex, reply, kind, retryable, retry_after_s):
    backend = gemini(vertex([reply]), timeout_s=0.3)
    with pytest.raises(TeacherRequestError) as raised:
        backend.complete(CONVERSATION, DecodingSettings())
    assert (raised.value.kind, raised.value.retryable, raised.value.retry_after_s) == (kind, retryable, retry_after_s)
    assert "my-project/us-central1" in str(raised.value)


def test_a_429_is_retried_after_its_retry_after_through_the_teacher(vertex, tmp_path):
    server = vertex([(429, {"Retry-After": "0.3"}, error_body(429, "RESOURCE_EXHAUSTED"))])
    # No backoff of its own (base delay 0): any wait between the attempts comes from Retry-After.
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.0)
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        teacher = Teacher(gemini(server), cache, DecodingSettings(), retry_policy=policy)
        (answer,) = teacher.ask_all([CONVERSATION])

    assert isinstance(answer, Answer) and answer.completion.text == "We compute 2 + 3 = 5. The answer is 5."
    first, second = server.requests
    assert second["at"] - first["at"] >= 0.3
    assert first["body"] == second["body"]
    assert (teacher.stats.requests, dict(teacher.stats.request_errors)) == (1, {"http 429": 1})


def test_generate_rationales_sends_to_the_pipelines_project_and_location(vertex, tmp_path, monkeypatch):
    import google.auth

    server = vertex()
    # The SDK's own defaults, as on a pipeline worker: the base URL from the environment, Application
    # Default Credentials (here fixed ones).
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", server.url)
    monkeypatch.setattr(google.auth, "default", lambda *args, **kwargs: (Credentials(token="adc-token"), None))
    write_jsonl(tmp_path / "data.jsonl", [{"input_text": f"What is {n} + 7?", "output_text": None} for n in range(3)])

    report = GenerationReport.of(generate_rationales(
        tmp_path / "data.jsonl", tmp_path / "out.jsonl", tmp_path / "report.md",
        GenerationConfig("vertex:gemini-2.5-pro", project="pipeline-project", location="europe-west4"),
        cache_path=tmp_path / "cache.sqlite",
    ))

    assert [row["teacher_label"] for row in load_rows(tmp_path / "out.jsonl")] == ["7", "8", "9"]
    # Structured output: a JSON answer held to the schema, rationale first.
    config = server.requests[-1]["body"]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert list(config["responseJsonSchema"]["properties"]) == ["rationale", "answer"]
    assert report.answer_format == "json"
    assert {request["path"] for request in server.requests} == {
        MODEL_PATH.format(project="pipeline-project", location="europe-west4", model="gemini-2.5-pro")
    }
    assert {request["headers"]["Authorization"] for request in server.requests} == {"Bearer adc-token"}
    assert report.teacher == "vertex-ai#gemini-2.5-pro"
    # 12 answers: 3 rows, and 3 samples of each that the teacher made its demonstrations from (no labels).
    assert len(server.requests) == 12
    assert report.estimated_cost_usd == pytest.approx((12 * 21 * 1.25 + 12 * 9 * 10.00) / 1e6)


@pytest.mark.parametrize("reference", ["gemini-2.5-flash", "vertex:gemini-2.5-pro"])
def test_a_vertex_teacher_without_a_project_fails_before_any_request(reference):
    with pytest.raises(ValueError, match="needs a Google Cloud project"):
        backend_for(parse_teacher_reference(reference), location="us-central1")


@pytest.mark.parametrize(
    "reference",
    ["text-unicorn@001", "text-bison@002", "chat-bison", "code-bison-32k", "vertex:text-bison",
     "publishers/google/models/text-unicorn@001"],
)
def test_retired_palm_models_name_the_gemini_models_to_use(reference):
    with pytest.raises(RetiredModelError, match="gemini-2.5-flash") as raised:
        backend_for(parse_teacher_reference(reference), project="my-project")
    assert "retired" in str(raised.value)


def test_backend_for_builds_a_gemini_teacher_in_the_given_project():
    teacher = parse_teacher_reference("gemini-2.0-flash-001")
    backend = backend_for(teacher, 30.0, project="my-project", location="us-east5")
    assert isinstance(backend, GeminiBackend)
    assert (backend.identity, backend.project, backend.location) == (
        "vertex-ai#gemini-2.0-flash-001",
        "my-project",
        "us-east5",
    )


# Property-based test of the response reader: whatever body Vertex AI's place is taken by, the answer is
# either checked and cached, readable ever after, or the request fails with a TeacherRequestError.
RESPONSES = load_module("generate_rationales_teacher_responses", Path(__file__).with_name("teacher_responses.py"))
any_json, maybe, or_any, token_counts = RESPONSES.any_json, RESPONSES.maybe, RESPONSES.or_any, RESPONSES.token_counts
parts = st.lists(or_any(maybe(text=or_any(st.text()), thought=or_any(st.booleans()))), max_size=3)
candidates = st.lists(
    or_any(maybe(
        content=or_any(maybe(role=st.just("model"), parts=or_any(parts))),
        finishReason=or_any(st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "A_NEW_REASON"])),
    )),
    min_size=1, max_size=2,
)
usages = maybe(
    promptTokenCount=token_counts, candidatesTokenCount=token_counts, thoughtsTokenCount=token_counts,
    totalTokenCount=token_counts,
)
gemini_bodies = or_any(st.fixed_dictionaries(
    {"candidates": or_any(candidates), "usageMetadata": or_any(usages)},
    optional={"promptFeedback": or_any(maybe(blockReason=or_any(st.text(max_size=10)))), "modelVersion": any_json},
))


def test_any_body_reads_as_a_checked_answer_or_a_teacher_request_error(vertex, tmp_path):
    server = vertex()
    backend = gemini(server)

    @settings(max_examples=150, deadline=None)
    @given(gemini_bodies)
    def read(body):
        server.replies = [(200, {}, body)]
        try:
            completion = backend.complete(CONVERSATION, DecodingSettings())
        except TeacherRequestError:
            return
        RESPONSES.assert_cached_and_read_back(completion, tmp_path)

    read()
