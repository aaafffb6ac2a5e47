"""A loopback OpenAI-compatible server for tests: POST /v1/chat/completions with deterministic answers.

The default answer is computed from the last user message: in explain mode ("The correct answer is: X")
it explains X; otherwise it evaluates the first `a + b` (or -, *) it finds, and says "unknown" when
there is none. A question containing NO_ANSWER gets a reply without an answer line. Every request body
and Authorization header is recorded. `kill_client_on_request` SIGKILLs a client process when a given
request arrives, so the requests before it have all been answered.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

_EXPLAIN = re.compile(r"The correct answer is: (.+)")
_SUM = re.compile(r"(\d+)\s*([-+*])\s*(\d+)")
NO_ANSWER = "NO_ANSWER"


class StubHTTPError(Exception):
    """Raised by a responder to answer with an HTTP error status instead of a completion."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def default_responder(messages: list[dict]) -> str:
    question = messages[-1]["content"]
    explained = _EXPLAIN.search(question)
    if explained:
        answer = explained.group(1).strip()
        return f"The question asks for {answer}, step by step it follows. The answer is {answer}."
    if NO_ANSWER in question:
        return "I keep thinking about this and never conclude"
    found = _SUM.search(question)
    if not found:
        return "I cannot work this out. The answer is unknown."
    left, operator, right = int(found.group(1)), found.group(2), int(found.group(3))
    value = {"+": left + right, "-": left - right, "*": left * right}[operator]
    return f"We compute {left} {operator} {right} = {value}. The answer is {value}."


class OpenAIStubServer(ThreadingHTTPServer):
    """Serves on 127.0.0.1 at a free port; `base_url` ends in /v1."""

    daemon_threads = True

    def __init__(self, responder: Callable[[list[dict]], str] = default_responder):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.responder = responder
        self.requests: list[dict] = []
        self.authorizations: list[str | None] = []
        self._lock = threading.Lock()
        self._kill: tuple[int, int] | None = None
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def kill_client_on_request(self, request_number: int, pid: int) -> None:
        """SIGKILLs `pid` when request number `request_number` (1-based) arrives, before answering it."""
        self._kill = (request_number, pid)

    def __enter__(self) -> "OpenAIStubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIStubServer

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server._lock:
            self.server.requests.append(body)
            self.server.authorizations.append(self.headers.get("Authorization"))
            number = len(self.server.requests)
            kill = self.server._kill
            if kill is not None and number == kill[0]:
                os.kill(kill[1], signal.SIGKILL)
                self.close_connection = True
                return
        try:
            text = self.server.responder(body["messages"])
        except StubHTTPError as error:
            self.send_error(error.status)
            return
        prompt_tokens = sum(len(message["content"].split()) for message in body["messages"])
        completion_tokens = len(text.split())
        payload = json.dumps(
            {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
