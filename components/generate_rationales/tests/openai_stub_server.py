"""A loopback OpenAI-compatible server for tests: POST /v1/chat/completions with deterministic answers.

The default answer is computed from the last user message: in explain mode ("The correct answer is: X")
it explains X; otherwise it evaluates the first `a + b` (or -, *) it finds, and says "unknown" when
there is none. A question containing NO_ANSWER gets a reply without an answer line. A `body_responder`
answers from the whole request body instead (its seed, temperature, ...). A request with a `response_format`
of a type in `response_formats` gets the same answer as a JSON object `{"rationale", "answer"}` (a reply with
no answer line stays as it is); another type is refused with `refusal_status`, as a server without that
kind of structured output does. Every request body
and Authorization header is recorded, and so are the most requests ever in flight at once. With an `api_key`
the server demands it, as a hosted teacher does: any other Authorization is answered 401. An `edit_reply`
turns (request body, the chat completion it would send) into the body sent instead: JSON of what it returns,
or bytes as they are (a teacher that answers badly). `GET /v1/models` lists `models` (the entries of its
`data`), or answers 404 when it is None, as a server without a model list does.

Faults: a plan maps a question (the last message) to the faults its first attempts meet, one per attempt:
"429" (with Retry-After), "500", "timeout" (no answer for `timeout_sleep_s`), "truncated" (a 200 whose
body stops halfway) or "reset" (the connection is reset without a response). `seeded_fault_plan` draws one.
"""

from __future__ import annotations

import collections
import json
import random
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable

from kfp_distill._implementation.teacher_reference import TeacherReference, parse_teacher_reference

_EXPLAIN = re.compile(r"The correct answer is: (.+)")
_SUM = re.compile(r"(\d+)\s*([-+*])\s*(\d+)")
NO_ANSWER = "NO_ANSWER"
FAULT_KINDS = ("429", "500", "timeout", "truncated", "reset")


def seeded_fault_plan(questions: Iterable[str], rate: float = 0.2, seed: int = 0) -> dict[str, list[str]]:
    """Faults for a seeded `rate` share of the questions, every kind in turn; the first question drawn
    meets two faults in a row, so one request is retried twice."""
    questions = list(questions)
    chosen = random.Random(seed).sample(questions, k=max(1, round(rate * len(questions))))
    plan = {question: [FAULT_KINDS[n % len(FAULT_KINDS)]] for n, question in enumerate(chosen)}
    plan[chosen[0]].append(FAULT_KINDS[len(chosen) % len(FAULT_KINDS)])
    return plan


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

    def __init__(
        self,
        responder: Callable[[list[dict]], str] = default_responder,
        fault_plan: dict[str, list[str]] | None = None,
        retry_after: str = "1",
        timeout_sleep_s: float = 1.0,
        body_responder: Callable[[dict], str] | None = None,
        response_formats: tuple[str, ...] = ("json_schema", "json_object"),
        refusal_status: int = 400,
        api_key: str | None = None,
        edit_reply: Callable[[dict, dict], object] | None = None,
        models: list[dict] | None = None,
    ):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api_key, self.edit_reply, self.models = api_key, edit_reply, models
        self.model_lists = 0  # GET /v1/models answered
        self.responder, self.body_responder = responder, body_responder
        self.fault_plan = fault_plan or {}
        self.retry_after, self.timeout_sleep_s = retry_after, timeout_sleep_s
        self.response_formats, self.refusal_status = response_formats, refusal_status
        self.requests: list[dict] = []
        self.authorizations: list[str | None] = []
        self.faults_injected: list[str] = []
        self.answered = collections.Counter()  # question -> completions sent in full
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def teacher(self, model: str = "stub") -> TeacherReference:
        """The teacher reference of `model` served here, `<base_url>#<model>`."""
        return parse_teacher_reference(f"{self.base_url}#{model}")

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

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models" or self.server.models is None:
            self.send_error(404)
            return
        with self.server._lock:
            self.server.model_lists += 1
        self._send_json(200, {"object": "list", "data": self.server.models})

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.send_error(404)
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        except (ValueError, ConnectionError):  # a client killed while sending
            return
        question = body["messages"][-1]["content"]
        with self.server._lock:
            self.server.requests.append(body)
            self.server.authorizations.append(self.headers.get("Authorization"))
            number = len(self.server.requests)
            attempt = sum(b["messages"][-1]["content"] == question for b in self.server.requests) - 1
            faults = self.server.fault_plan.get(question, [])
            fault = faults[attempt] if attempt < len(faults) else None
            if fault:
                self.server.faults_injected.append(fault)
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        try:
            self._answer(body, number, fault)
        except ConnectionError:  # the client gave up (timeout fault)
            pass
        finally:
            with self.server._lock:
                self.server.in_flight -= 1

    def _answer(self, body: dict, number: int, fault: str | None) -> None:
        if fault == "reset":
            # Linger 0: closing sends a TCP reset instead of a response.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if self.server.api_key is not None and self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
            self._send_json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
            return
        if fault in ("429", "500"):
            self._send_json(int(fault), {"error": {"message": f"injected {fault}", "type": "injected"}})
            return
        if fault == "timeout":
            time.sleep(self.server.timeout_sleep_s)
        response_format = (body.get("response_format") or {}).get("type")
        if response_format not in (None, "text", *self.server.response_formats):
            message = f"response_format type {response_format!r} is not supported"
            self._send_json(self.server.refusal_status, {"error": {"message": message, "type": "invalid_request_error"}})
            return
        try:
            if self.server.body_responder is not None:
                text = self.server.body_responder(body)
            else:
                text = self.server.responder(body["messages"])
        except StubHTTPError as error:
            self.send_error(error.status)
            return
        if response_format in self.server.response_formats:
            text = as_json_answer(text)
        prompt_tokens = sum(len(message["content"].split()) for message in body["messages"])
        completion_tokens = len(text.split())
        payload = {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        if self.server.edit_reply is not None:
            payload = self.server.edit_reply(body, payload)
        self._send_json(200, payload, truncated=fault == "truncated")
        if fault is None:
            with self.server._lock:
                self.server.answered[body["messages"][-1]["content"]] += 1

    def _send_json(self, status: int, payload, truncated: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", self.server.retry_after)
        self.end_headers()
        if truncated:  # announce the whole body, send half of it, hang up
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        self.wfile.write(data)


def as_json_answer(text: str) -> str:
    """A "... The answer is X." reply as the JSON object a schema-held server sends (unchanged without one)."""
    found = re.search(r"^(.*?)\s*The answer is (.+?)\.?$", text, re.S)
    if not found:
        return text
    return json.dumps({"rationale": found.group(1), "answer": found.group(2)})
