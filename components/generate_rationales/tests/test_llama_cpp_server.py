"""Structured answers from a real llama.cpp server: llama-cpp-python's OpenAI-compatible server (the
`llamacpp-server` extra) serves the SmolLM2-135M GGUF on loopback, and generate_rationales asks it, through a
loopback proxy that records what was sent and what the server answered."""

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from kfp_distill._implementation.jsonl import load_rows, write_jsonl
from kfp_distill._implementation.models import DEFAULT_STUDENT, resolve_gguf
from kfp_distill._implementation.scripts import load_module
from kfp_distill.components.generate_rationales.answer_format import MIN_RATIONALE_CHARS
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.generate_rationales.generation import generate_rationales
from kfp_distill.components.generate_rationales.report import GenerationReport

pytest.importorskip(
    "llama_cpp.server.app",
    reason="llama-cpp-python's server is not installed (pip install 'kfp-distill[llamacpp-server]')",
)

REPOSITORY = Path(__file__).resolve().parents[3]
# The teacher throughput benchmark's helpers start the server, under the name its own tests load it by.
throughput = load_module("teacher_throughput", REPOSITORY / "benchmarks" / "teacher_throughput.py")
CLASSES = ["business", "entertainment"]
SEED_FORMAT = "Classify the following text into one of the following classes: [business, entertainment] Text: {}"
HEADLINES = ["Bank profits rise as interest rates climb", "Actor wins an award for a new comedy film", "Factory orders fall"]
SHOTS = [
    {"input_text": SEED_FORMAT.format("Retailer cuts jobs after weak sales"),
     "rationale": "Jobs and sales at a retailer are about a company's money.", "output_text": "business"},
    {"input_text": SEED_FORMAT.format("Pop star releases her third album"),
     "rationale": "An album by a pop star is music, which people watch and hear for fun.",
     "output_text": "entertainment"},
]  # fmt: skip
MAX_NEW_TOKENS = 96
SLOT_CONTEXT = 2048


class RecordingProxy(ThreadingHTTPServer):
    """Passes requests on to `upstream` unchanged and records each POST's body with the server's status and
    response body."""

    daemon_threads = True

    def __init__(self, upstream: str):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream
        self.exchanges: list[tuple[dict, int, dict]] = []
        self.base_url = f"http://127.0.0.1:{self.server_address[1]}/v1"


class _ProxyHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the model list, unrecorded
        response = httpx.get(self.server.upstream + self.path.removeprefix("/v1"), timeout=60)
        self.send_response(response.status_code)
        self.send_header("Content-Type", response.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        response = httpx.post(
            self.server.upstream + self.path.removeprefix("/v1"),
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=600,
        )
        self.server.exchanges.append((json.loads(body), response.status_code, response.json()))
        self.send_response(response.status_code)
        self.send_header("Content-Type", response.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)

    def log_message(self, *args) -> None:  # quiet test output
        pass


@pytest.fixture(scope="module")
def llama_cpp_server(tmp_path_factory):
    """llama-cpp-python's server on a free loopback port, serving SmolLM2-135M; yields its base URL."""
    scratch = tmp_path_factory.mktemp("llama-cpp-server")
    port = throughput.free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    # No llama-server binary at that path, so the benchmark's command is llama-cpp-python's server.
    _, command = throughput.server_command(
        scratch / "no-llama-server", resolve_gguf(DEFAULT_STUDENT), port, 1, SLOT_CONTEXT, os.cpu_count() or 1
    )
    log_path = scratch / "server.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NO_PROXY", "127.0.0.1")  # loopback requests bypass any proxy
        patch.setenv("no_proxy", "127.0.0.1")
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            throughput.wait_until_ready(process, base_url, log_path)
            yield base_url
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture
def recording_proxy(llama_cpp_server):
    """A running RecordingProxy in front of the llama.cpp server."""
    proxy = RecordingProxy(llama_cpp_server)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


@pytest.mark.parametrize("answer_format", ["json", "auto"])
def test_llama_cpp_server_holds_answers_to_the_schema_it_takes_as_json_object(
    recording_proxy, answer_format, tmp_path
):
    write_jsonl(tmp_path / "shots.jsonl", SHOTS)
    write_jsonl(tmp_path / "data.jsonl", [{"input_text": SEED_FORMAT.format(text), "output_text": None} for text in HEADLINES])
    report = GenerationReport.of(generate_rationales(
        tmp_path / "data.jsonl", tmp_path / "out.jsonl", tmp_path / "report.md",
        GenerationConfig(
            f"{recording_proxy.base_url}#smollm2", few_shot_uri=str(tmp_path / "shots.jsonl"),
            max_new_tokens=MAX_NEW_TOKENS, max_concurrency=1, answer_format=answer_format,
        ),
        cache_path=tmp_path / "cache.sqlite",
    ))  # fmt: skip
    (first, refused, refusal), *taken = recording_proxy.exchanges
    # The server refuses OpenAI's json_schema (its response_format takes only "text" and "json_object"), with
    # a 500 that carries FastAPI's validation error of the field, where other FastAPI servers answer 422...
    assert first["response_format"]["type"] == "json_schema" and refused == 500
    assert "validation error" in refusal["error"]["message"] and "'response_format'" in refusal["error"]["message"]
    # ... and takes the same schema as json_object, from then on the only form asked.
    assert [status for _, status, _ in taken] == [200] * len(HEADLINES)
    for body, _, response in taken:
        assert body["response_format"]["type"] == "json_object"
        assert body["response_format"]["schema"]["properties"]["answer"]["enum"] == CLASSES
        answer = json.loads(response["choices"][0]["message"]["content"])  # the whole reply is the object
        assert list(answer) == ["rationale", "answer"] and answer["answer"] in CLASSES
    assert report.answer_format == "json" and report.answered == len(HEADLINES) and not report.unparseable
    # The answers are cached under the model the server lists (its one model, under the alias it was started
    # with, whatever name is asked), not under its address.
    assert report.teacher == f"openai-compatible#{throughput.SERVED_MODEL}"
    outputs = load_rows(tmp_path / "out.jsonl")
    assert [row["input_text"] for row in outputs] == [SEED_FORMAT.format(text) for text in HEADLINES]
    for row in outputs:
        assert row["teacher_label"] in CLASSES and len(row["rationale"]) >= MIN_RATIONALE_CHARS
