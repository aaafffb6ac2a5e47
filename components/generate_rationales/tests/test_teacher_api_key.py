"""Which key the OpenAI-compatible teacher sends, and to whom: the teacher's own key to the configured host
only, OpenAI's key to OpenAI's API only."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kfp_distill._implementation.teacher_reference import parse_teacher_reference
from kfp_distill.components.generate_rationales.backends.base import DecodingSettings
from kfp_distill.components.generate_rationales.backends.openai_compatible import OpenAICompatibleBackend

QUESTION = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture
def no_keys(monkeypatch):
    monkeypatch.delenv("KFP_DISTILL_TEACHER_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return monkeypatch


def test_a_teacher_that_demands_its_key_gets_it_from_the_environment(start_stub_server, no_keys):
    server = start_stub_server(api_key="teacher-key")
    backend = OpenAICompatibleBackend(server.teacher())
    no_keys.setenv("KFP_DISTILL_TEACHER_API_KEY", "teacher-key")
    answered = OpenAICompatibleBackend(server.teacher()).complete(QUESTION, DecodingSettings())
    assert "The answer is 5" in answered.text
    with pytest.raises(Exception, match="401"):  # built before the key was set: the server turns it away
        backend.complete(QUESTION, DecodingSettings())
    assert server.authorizations == ["Bearer teacher-key", "Bearer none"]


def test_openais_key_is_never_sent_to_another_host(stub_server, no_keys):
    no_keys.setenv("OPENAI_API_KEY", "sk-openai-key")
    OpenAICompatibleBackend(stub_server.teacher()).complete(QUESTION, DecodingSettings())
    assert stub_server.authorizations == ["Bearer none"]
    for elsewhere in (
        "http://api.openai.com/v1#gpt-4o-mini",  # OpenAI's host, but the key would cross the network in clear
        "https://api.openai.com.example.net/v1#gpt-4o-mini",
        "https://openai-proxy.example.net/v1#gpt-4o-mini",
    ):
        assert OpenAICompatibleBackend(parse_teacher_reference(elsewhere))._client.api_key == "none", elsewhere
    openai = parse_teacher_reference("https://api.openai.com/v1#gpt-4o-mini")
    assert OpenAICompatibleBackend(openai)._client.api_key == "sk-openai-key"


def test_the_teachers_key_stays_behind_when_its_host_redirects_elsewhere(start_stub_server, no_keys):
    elsewhere = start_stub_server()

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(307)
            self.send_header("Location", f"{elsewhere.base_url}/chat/completions")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):
            pass

    redirecting = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=redirecting.serve_forever, daemon=True).start()
    no_keys.setenv("KFP_DISTILL_TEACHER_API_KEY", "teacher-key")
    try:
        port = redirecting.server_address[1]
        backend = OpenAICompatibleBackend(parse_teacher_reference(f"http://127.0.0.1:{port}/v1#stub"))
        backend.complete(QUESTION, DecodingSettings())
    finally:
        redirecting.shutdown()
        redirecting.server_close()
    assert elsewhere.authorizations == [None]  # answered, but never shown the key
