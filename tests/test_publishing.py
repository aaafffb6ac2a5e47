"""`kfp-distill publish`: the compiled pipeline uploaded to a loopback HTTP server standing in for
Artifact Registry, through the real `kfp.registry.RegistryClient`."""

import email
import email.policy
import http.server
import threading
from pathlib import Path

import pytest
import requests
from kfp.registry import registry_client

from kfp_distill.interfaces import cli
from kfp_distill.interfaces.publishing import publish

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ROOT / "compiled" / "distillation.yaml"


class FakeArtifactRegistry(http.server.BaseHTTPRequestHandler):
    """Answers an upload as Artifact Registry does: `PACKAGE/sha256:VERSION` in the body."""

    uploads: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message = email.message_from_bytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body, policy=email.policy.HTTP
        )
        fields = {
            part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()
        }
        type(self).uploads.append(
            {"path": self.path, "authorization": self.headers.get("Authorization"), "fields": fields}
        )
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"distillation/sha256:0123abcd")

    def log_message(self, *args):
        """Keeps the test output quiet."""


@pytest.fixture
def registry(monkeypatch):
    """The fake registry's host URL; no local KFP registry settings may change where the client posts."""
    monkeypatch.setattr(registry_client, "LOCAL_REGISTRY_CONTEXT", "/nonexistent/registry_context.json")
    monkeypatch.setattr(registry_client, "LOCAL_REGISTRY_CREDENTIAL", "/nonexistent/registry_credentials.json")
    FakeArtifactRegistry.uploads = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeArtifactRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/test-project/pipelines"
    server.shutdown()
    server.server_close()


class TokenAuth(requests.auth.AuthBase):
    def __call__(self, request):
        request.headers["Authorization"] = "Bearer test-token"
        return request


def test_publish_uploads_the_compiled_pipeline_with_its_tags(registry):
    uris = publish(registry, ["v0.1.0", "latest"], COMPILED, auth=TokenAuth())

    assert uris == [f"{registry}/distillation/v0.1.0", f"{registry}/distillation/latest"]
    (upload,) = FakeArtifactRegistry.uploads
    assert upload["path"] == "/test-project/pipelines"
    assert upload["authorization"] == "Bearer test-token"
    assert upload["fields"]["content"] == COMPILED.read_bytes()
    assert upload["fields"]["tags"] == b"v0.1.0,latest"


def test_cli_publish_prints_the_template_uri(registry, capsys):
    assert cli.main(["publish", "--host", registry + "/", "--tag", "v0.1.0", "--template", str(COMPILED)]) == 0
    assert capsys.readouterr().out.strip() == f"{registry}/distillation/v0.1.0"
    (upload,) = FakeArtifactRegistry.uploads
    assert upload["fields"]["tags"] == b"v0.1.0"
    assert upload["fields"]["content"] == COMPILED.read_bytes()


def test_cli_publish_explains_a_refused_upload(registry, capsys, tmp_path):
    assert cli.main(["publish", "--host", registry, "--tag", "sha256:abc", "--template", str(COMPILED)]) == 2
    assert "tags must not start" in capsys.readouterr().err
    assert cli.main(["publish", "--host", registry, "--tag", "v1", "--template", str(tmp_path / "none.yaml")]) == 2
    assert "run `kfp-distill compile`" in capsys.readouterr().err
    assert FakeArtifactRegistry.uploads == []
