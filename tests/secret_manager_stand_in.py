"""A loopback stand-in for Google's Secret Manager REST API and OAuth token endpoint, for tests.

It serves `GET /v1/{name}:access` (accessSecretVersion, global and regional names) as Secret Manager does:
the payload base64-encoded with its CRC32C, `latest` resolved to the highest version, 404 for a missing
version, 403 for one the caller may not read, and 401 unless the request carries a token signed by the
service account it made (`write_adc_file` writes that account's key as Application Default Credentials, so
Google's own client authenticates as a Vertex AI job's service account would; it signs its own JWTs).
Every request's method, path and Authorization header is recorded.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import google_crc32c
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as auth_exceptions
from google.auth import jwt

SERVICE_ACCOUNT = "kfp-distill-job@my-project.iam.gserviceaccount.com"
_ACCESS = re.compile(r"^/v1/(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/[^/]+)/versions/(?P<version>[^/:]+):access$")


class SecretManagerStandIn(ThreadingHTTPServer):
    """Serves on 127.0.0.1 at a free port.

    Args:
        versions: Secret version name (`projects/P/secrets/S/versions/N`) -> payload.
        denied: Secret version names the caller may not read (403).
        damaged: Answer with a CRC32C that does not match the payload.
    """

    daemon_threads = True

    def __init__(self, versions: dict[str, bytes], denied: tuple[str, ...] = (), damaged: bool = False):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.versions, self.denied, self.damaged = versions, set(denied), damaged
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.requests: list[tuple[str, str, str | None]] = []
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def write_adc_file(self, directory: Path) -> Path:
        """The service account's key file, for GOOGLE_APPLICATION_CREDENTIALS."""
        private_key = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = Path(directory) / "service_account.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "my-project",
                    "private_key_id": "stand-in-key",
                    "private_key": private_key.decode(),
                    "client_email": SERVICE_ACCOUNT,
                    "client_id": "1",
                    "token_uri": f"{self.endpoint}/token",  # never asked: the client signs its own tokens
                }
            )
        )
        return path

    def authenticated(self, authorization: str | None) -> bool:
        """Whether a request's Authorization is a token the service account signed."""
        token = (authorization or "").removeprefix("Bearer ")
        public_key = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        try:
            claims = jwt.decode(token, certs=public_key.decode())
        except (ValueError, auth_exceptions.GoogleAuthError):
            return False
        return claims.get("iss") == SERVICE_ACCOUNT

    def __enter__(self) -> "SecretManagerStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: SecretManagerStandIn

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path, self.headers.get("Authorization")))
        found = _ACCESS.match(self.path.split("?")[0])
        if not found:
            self._error(404, "NOT_FOUND", f"no route {self.path}")
            return
        if not self.server.authenticated(self.headers.get("Authorization")):
            self._error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
            return
        name = self._resolved(found["secret"], found["version"])
        if name in self.server.denied:
            self._error(403, "PERMISSION_DENIED", f"Permission 'secretmanager.versions.access' denied for '{name}'")
            return
        if name not in self.server.versions:
            self._error(404, "NOT_FOUND", f"Secret Version [{name}] not found.")
            return
        data = self.server.versions[name]
        checksum = int(google_crc32c.Checksum(data).hexdigest(), 16) + (1 if self.server.damaged else 0)
        payload = {"data": base64.b64encode(data).decode(), "dataCrc32c": str(checksum)}
        self._send(200, {"name": name, "payload": payload})

    def _resolved(self, secret: str, version: str) -> str:
        if version != "latest":
            return f"{secret}/versions/{version}"
        numbers = [int(name.rsplit("/", 1)[1]) for name in self.server.versions if name.startswith(f"{secret}/versions/")]
        return f"{secret}/versions/{max(numbers)}" if numbers else f"{secret}/versions/latest"

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"error": {"code": status, "message": message, "status": code}})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
