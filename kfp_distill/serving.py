"""`kfp-distill serve`: an OpenAI-compatible HTTP endpoint for a distilled student.

The student drops in where the teacher was: a client of any OpenAI-compatible server (the `openai` package,
LangChain, curl) points its base URL at `http://HOST:PORT/v1` and sends the same requests. Endpoints:
`POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`, and `GET /health`.

What the student sees is what it was tuned on, `student_prompt(input_text, task)` (a long input cut as tuning
cut it, and to fit the model's context with `max_tokens`): for a chat request the
input text is the last user message (system and earlier turns are not part of the student's format); for a
completion request it is the prompt. The task is `label` (the answer) unless the request asks for the
rationale, by a model name ending in `:rationale` or by the extra body field `kfp_distill_task: "rationale"`.
Any model name is accepted, so clients configured for the teacher need no change.

Generation is greedy (temperature and other sampling settings are ignored: the student was tuned to answer
one way) and one request at a time (one model object on the CPU); `max_tokens` (or `max_completion_tokens`)
and `stop` are honoured; `usage` counts the prompt's and the answer's tokens. `stream: true` is answered as
server-sent events carrying the whole answer in one chunk, so streaming clients work too.

The server is bounded, so a careless or hostile client cannot hold it: one request per connection, whose
line, headers and body must all arrive within `timeout` seconds (else 408, and the connection is dropped;
each connection has its own thread, so a slow one delays no other); a body needs a `Content-Length` (411)
that is one non-negative integer (400) of at most 16 MiB (413); `max_tokens` over `MAX_TOKENS_CAP` (or
the server's own default, when higher) and more than `MAX_PROMPTS` prompts in one request are refused
(400, naming the cap); past `max_connections` open connections a new one is answered 503 at once, with
`Retry-After`, rather than queued without end behind the one model. With an API key (the `KFP_DISTILL_API_KEY` environment variable, so it never shows
in `ps`), every endpoint but `/health` asks for `Authorization: Bearer KEY` (401 otherwise); bound beyond
loopback without one, the server warns that anyone who reaches the port can use it.

It is also a Vertex AI serving container (the custom-container contract): `POST` on the predict route takes
`{"instances": [...]}`, each instance an input text or `{"input_text": TEXT, "rationale": true, "max_tokens":
N}` (both fields optional), and answers `{"predictions": [...]}`, one per instance: the label as
`kfp-distill predict` gives it (the label task's answer, cut as evaluation scores it), or with `rationale`
`{"label": ..., "rationale": ...}`. A refused request is `{"error": "..."}` with a 4xx status, which Vertex AI
passes to the caller. The health route answers `GET` with 200 once the model is loaded. `kfp-distill serve`
takes its port, routes and model from Vertex AI's `AIP_HTTP_PORT`, `AIP_PREDICT_ROUTE`, `AIP_HEALTH_ROUTE` and
`AIP_STORAGE_URI` when they are set.

MODEL is a tuned model directory, a URI of one (`gs://...`: copied into the model cache once, at start), or a
registered model (MLflow name or Vertex AI resource name), served alike: the model's own `StudentPredictor`,
with token counts.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kfp_distill._implementation.model_store import answer, load_model
from kfp_distill._implementation.model_store import load_student as load_tuned_student
from kfp_distill._implementation.models import is_remote, resolve_hf_model
from kfp_distill._implementation.student import StudentPredictor, Task

TASK_FIELD = "kfp_distill_task"
RATIONALE_SUFFIX = ":rationale"
TASKS: tuple[Task, ...] = ("label", "rationale")
DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_CAP = 2048
MAX_PROMPTS = 32
API_KEY_ENV = "KFP_DISTILL_API_KEY"
DEFAULT_TIMEOUT_S = 30.0
# Connections served at once (each holds a thread; those past the first wait for the model): more get a 503.
DEFAULT_MAX_CONNECTIONS = 32
_MAX_BODY_BYTES = 16 << 20
HEALTH_ROUTE = "/health"
# Where Vertex AI-style prediction requests go when AIP_PREDICT_ROUTE does not say.
PREDICT_ROUTE = "/predict"
INSTANCE_FIELDS = ("input_text", "rationale", "max_tokens")


class RequestError(Exception):
    """A request the endpoint refuses, answered as an OpenAI-style error body."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.param = param

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": str(self), "type": kind, "param": self.param, "code": None}}

    def vertex_body(self) -> dict[str, Any]:
        """The error as Vertex AI passes a serving container's error on to its caller."""
        return {"error": str(self)}


@dataclass
class Answer:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class StudentService:
    """One loaded student answering requests one at a time.

    Args:
        predictor: The student.
        model_id: The name `/v1/models` lists.
        max_tokens: Tokens generated when a request does not say.
        max_tokens_cap: The most tokens a request may ask for; raised to `max_tokens` when that is higher.
        max_prompts: The most prompts one completion request (or instances one prediction request) may hold.
        task_type: The task type the student was tuned for (its training record's): how predictions cut the
            label, as `kfp-distill predict` does. Empty: unknown.
    """

    predictor: StudentPredictor
    model_id: str
    max_tokens: int = DEFAULT_MAX_TOKENS
    max_tokens_cap: int = MAX_TOKENS_CAP
    max_prompts: int = MAX_PROMPTS
    task_type: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # A server started with a higher default than the cap means to allow that many tokens.
        self.max_tokens_cap = max(self.max_tokens_cap, self.max_tokens)

    def _prompt_tokens(self, input_text: str, task: Task) -> int:
        """The prompt's token count at the predictor's current token limit; a limit past the context is a 400."""
        try:
            return len(self.predictor.input_ids(input_text, task))
        except ValueError as error:  # max_tokens larger than the model's context
            raise RequestError(str(error), param="max_tokens") from None

    def answer(self, input_text: str, task: Task, max_tokens: int | None = None, stop: list[str] = ()) -> Answer:
        """The student's greedy answer to one input, cut at the first stop string, with token counts."""
        tokenizer = self.predictor.tokenizer
        limit = max_tokens or self.max_tokens
        with self._lock:
            # The predictor reads its token limit per call; the lock keeps each request's limit its own.
            self.predictor.max_new_tokens = limit
            prompt_tokens = self._prompt_tokens(input_text, task)
            (prediction,) = self.predictor.predict([input_text], task=task)
        # The predictor returns text, not token ids: the answer is counted by tokenizing it again, which
        # can differ from the generated count by a token where a word was split differently.
        completion_tokens = min(len(tokenizer(prediction.text, add_special_tokens=False)["input_ids"]), limit)
        answer = Answer(
            text=prediction.text,
            finish_reason="length" if completion_tokens >= limit else "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
        cut = min((answer.text.find(s) for s in stop if s and s in answer.text), default=-1)
        if cut >= 0:
            answer.text, answer.finish_reason = answer.text[:cut], "stop"
        return answer

    def prediction(self, input_text: str, with_rationale: bool, max_tokens: int | None = None) -> str | dict:
        """What `kfp-distill predict` answers for one input: the label, or with_rationale label and rationale."""
        with self._lock:
            self.predictor.max_new_tokens = max_tokens or self.max_tokens
            # A max_tokens past the context is the caller's error (400), found before anything is generated.
            for task in ("label", "rationale") if with_rationale else ("label",):
                self._prompt_tokens(input_text, task)
            (result,) = answer(self.predictor, [input_text], with_rationale, self.task_type)
        return result

    def models(self) -> dict[str, Any]:
        ids = [self.model_id, self.model_id + RATIONALE_SUFFIX]
        return {
            "object": "list",
            "data": [{"id": i, "object": "model", "created": self.created, "owned_by": "kfp-distill"} for i in ids],
        }


def load_student(model: str, registry_uri: str = "", max_tokens: int = DEFAULT_MAX_TOKENS) -> StudentService:
    """Loads a student to serve.

    Args:
        model: A tuned model directory (tune-student's output), a URI of one (`gs://...`, Vertex AI's
            AIP_STORAGE_URI: copied into the model cache once), or a registered model, resolved as
            `kfp-distill predict` resolves it (the model store's `load_model`: a name for its latest version,
            `models:/NAME/VERSION`, or a Vertex AI model resource name).
        registry_uri: The MLflow registry for registered names; empty: the embedded one.
        max_tokens: Tokens generated when a request does not say.
    """
    path = Path(model).expanduser()
    if path.is_dir() or is_remote(model):
        local = str(path) if path.is_dir() else resolve_hf_model(model)
        predictor, task_type = load_tuned_student(local)
        model_id = path.resolve().name if path.is_dir() else model.rstrip("/").rsplit("/", 1)[-1]
    else:
        registered = load_model(model, registry_uri)
        predictor, task_type, model_id = registered.predictor, registered.task_type, model
    return StudentService(predictor, model_id=model_id, max_tokens=max_tokens, task_type=task_type)


def _task(body: dict[str, Any]) -> Task:
    task = body.get(TASK_FIELD)
    if task is None:
        task = "rationale" if str(body.get("model", "")).endswith(RATIONALE_SUFFIX) else "label"
    if task not in TASKS:
        raise RequestError(f"{TASK_FIELD} must be one of {', '.join(TASKS)}, got {task!r}", param=TASK_FIELD)
    return task


def _max_tokens(body: dict[str, Any], cap: int) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RequestError(f"max_tokens must be a positive integer, got {value!r}", param="max_tokens")
    if value > cap:
        raise RequestError(f"max_tokens is {value}, over this server's cap of {cap}", param="max_tokens")
    return value


def _stop(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestError("stop must be a string or a list of strings", param="stop")
    return stop


def _message_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    raise RequestError("a message's content must be a string or a list of content parts", param="messages")


def _last_user_message(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list", param="messages")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise RequestError("messages hold no user message: the student answers the last one", param="messages")
    return _message_text(users[-1].get("content"))


def _prompts(body: dict[str, Any], cap: int) -> list[str]:
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise RequestError("prompt must be a string or a non-empty list of strings (token ids are not accepted)",
                           param="prompt")
    if len(prompts) > cap:
        raise RequestError(f"prompt holds {len(prompts)} prompts, over this server's cap of {cap} per request",
                           param="prompt")
    return prompts


def _usage(answers: list[Answer]) -> dict[str, int]:
    prompt = sum(a.prompt_tokens for a in answers)
    completion = sum(a.completion_tokens for a in answers)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_completion(service: StudentService, body: dict[str, Any]) -> dict[str, Any]:
    """The `chat.completion` object answering one chat request."""
    max_tokens = _max_tokens(body, service.max_tokens_cap)
    answer = service.answer(_last_user_message(body), _task(body), max_tokens, _stop(body))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or service.model_id,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.text},
            "logprobs": None,
            "finish_reason": answer.finish_reason,
        }],
        "usage": _usage([answer]),
    }


def completion(service: StudentService, body: dict[str, Any]) -> dict[str, Any]:
    """The `text_completion` object answering one completion request (one choice per prompt)."""
    task, max_tokens, stop = _task(body), _max_tokens(body, service.max_tokens_cap), _stop(body)
    answers = [service.answer(prompt, task, max_tokens, stop) for prompt in _prompts(body, service.max_prompts)]
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.get("model") or service.model_id,
        "choices": [
            {"index": i, "text": a.text, "logprobs": None, "finish_reason": a.finish_reason} for i, a in enumerate(answers)
        ],
        "usage": _usage(answers),
    }


def _instance(instance: Any, index: int, cap: int) -> tuple[str, bool, int | None]:
    """(input text, with rationale, max tokens) of one Vertex AI instance: a string, or an object."""
    where = f"instances[{index}]"
    if isinstance(instance, str):
        return instance, False, None
    if not isinstance(instance, dict) or not isinstance(instance.get("input_text"), str):
        raise RequestError(f'{where} must be an input text or an object with a string "input_text"')
    unknown = sorted(set(instance) - set(INSTANCE_FIELDS))
    if unknown:
        raise RequestError(f"{where} has unknown field(s) {', '.join(unknown)}; known: {', '.join(INSTANCE_FIELDS)}")
    rationale = instance.get("rationale", False)
    if not isinstance(rationale, bool):
        raise RequestError(f'{where}: "rationale" must be true or false, got {rationale!r}')
    try:
        max_tokens = _max_tokens(instance, cap)
    except RequestError as error:
        raise RequestError(f"{where}: {error}") from None
    return instance["input_text"], rationale, max_tokens


def vertex_prediction(service: StudentService, body: dict[str, Any]) -> dict[str, Any]:
    """Vertex AI's online prediction: `{"instances": [...]}` answered `{"predictions": [...]}`, one per instance
    (the label, or `{"label", "rationale"}` for an instance that asks). Every instance is checked before the
    first is answered, so a bad one costs no generation."""
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise RequestError('the request body must be {"instances": [...]} with at least one instance')
    if len(instances) > service.max_prompts:
        raise RequestError(
            f"the request holds {len(instances)} instances, over this server's cap of {service.max_prompts}"
        )
    checked = [_instance(instance, i, service.max_tokens_cap) for i, instance in enumerate(instances)]
    return {"predictions": [service.prediction(*instance) for instance in checked]}


def stream_events(response: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A whole response as the chunks of a stream: the content, then the finish reason, then (asked) usage."""
    chat = response["object"] == "chat.completion"
    base = {key: response[key] for key in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk" if chat else "text_completion"
    events = []
    for choice in response["choices"]:
        if chat:
            delta = {"role": "assistant", "content": choice["message"]["content"]}
            events.append({**base, "choices": [{"index": choice["index"], "delta": delta, "finish_reason": None}]})
            last = {"index": choice["index"], "delta": {}, "finish_reason": choice["finish_reason"]}
        else:
            events.append({**base, "choices": [{**choice, "finish_reason": None}]})
            last = {**choice, "text": ""}
        events.append({**base, "choices": [last]})
    if include_usage:
        events.append({**base, "choices": [], "usage": response["usage"]})
    return events


class _DeadlineReader(io.RawIOBase):
    """A connection's incoming bytes, each read bounded by what is left of the time the request may take.

    A timeout per read alone would let a client that sends a byte now and then hold its connection forever.
    """

    def __init__(self, connection: socket.socket, seconds: float):
        super().__init__()
        self._connection = connection
        self._deadline = time.monotonic() + seconds
        self.timed_out = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        timeout = self._connection.gettimeout()  # the one writes use, restored after the read
        try:
            if left <= 0:
                raise TimeoutError("the request's time is up")
            self._connection.settimeout(left)
            return self._connection.recv_into(buffer)
        except TimeoutError:
            self.timed_out = True
            raise
        finally:
            self._connection.settimeout(timeout)


class _Handler(BaseHTTPRequestHandler):
    server_version = "kfp-distill"
    service: StudentService  # set on the subclass create_server makes, as are the next four
    timeout: float  # seconds for a whole request to arrive, and for each write of the answer
    api_key: str
    predict_route: str  # Vertex AI's prediction requests
    health_routes: frozenset[str]
    # What a 408 for a request line that never arrived is logged and answered with.
    requestline = ""
    request_version = "HTTP/1.0"

    def _route(self) -> str:
        return self.path.rstrip("/") or "/"

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the stream the base class opened, replaced by one with a deadline
        self._reader = _DeadlineReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._reader)
        self._answered = False

    def handle_one_request(self) -> None:
        super().handle_one_request()
        # The base class drops a request whose line or headers do not arrive in time without a word.
        if self._reader.timed_out and not self._answered:
            try:
                self._send_error(self._timed_out())
            except OSError:  # the client is gone
                pass

    def _timed_out(self) -> RequestError:
        return RequestError(f"the request did not arrive within {self.timeout:g} seconds", HTTPStatus.REQUEST_TIMEOUT)

    def _authorized(self) -> bool:
        if not self.api_key or self._route() in self.health_routes:  # probes carry no key
            return True
        # Compared as bytes in constant time: the header as sent (read as Latin-1), the key as UTF-8.
        sent = self.headers.get("Authorization", "").encode("latin-1")
        return hmac.compare_digest(sent, b"Bearer " + self.api_key.encode("utf-8"))

    def do_GET(self) -> None:
        if not self._authorized():
            self._send_error(RequestError("a valid API key is required: Authorization: Bearer KEY",
                                          HTTPStatus.UNAUTHORIZED))
        elif self._route() == "/v1/models":
            self._send_json(HTTPStatus.OK, self.service.models())
        elif self._route() in self.health_routes:
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        else:
            self._send_error(RequestError(f"no such endpoint: GET {self.path}", HTTPStatus.NOT_FOUND))

    def do_POST(self) -> None:
        routes = {
            "/v1/chat/completions": chat_completion,
            "/v1/completions": completion,
            self.predict_route: vertex_prediction,
        }
        route = routes.get(self._route())
        try:
            if not self._authorized():  # before the body is read: a caller without the key costs nothing
                raise RequestError("a valid API key is required: Authorization: Bearer KEY", HTTPStatus.UNAUTHORIZED)
            if route is None:
                raise RequestError(f"no such endpoint: POST {self.path}", HTTPStatus.NOT_FOUND)
            body = self._read_json()
            response = route(self.service, body)
        except RequestError as error:
            self._send_error(error)
            return
        except Exception as error:  # the server keeps serving; the client learns what failed
            self._send_error(RequestError(f"{type(error).__name__}: {error}", HTTPStatus.INTERNAL_SERVER_ERROR))
            return
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._send_stream(stream_events(response, include_usage))
        else:
            self._send_json(HTTPStatus.OK, response)

    def _content_length(self) -> int:
        values = self.headers.get_all("Content-Length") or []
        if not values:
            raise RequestError("a request body needs a Content-Length header (chunked bodies are not accepted)",
                               HTTPStatus.LENGTH_REQUIRED)
        value = values[0].strip()
        if len(set(values)) > 1 or not (value.isascii() and value.isdigit()):
            raise RequestError(f"Content-Length must be one non-negative integer, got {', '.join(values)!r}")
        # Checked on the digits first: a number of thousands of digits is over the cap, and int() refuses it.
        digits = value.lstrip("0")
        if len(digits) > len(str(_MAX_BODY_BYTES)) or int(digits or "0") > _MAX_BODY_BYTES:
            raise RequestError(f"request body over {_MAX_BODY_BYTES} bytes", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return int(digits or "0")

    def _read_json(self) -> dict[str, Any]:
        length = self._content_length()
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            raise self._timed_out() from None
        try:
            body = json.loads(data or b"null")
        except ValueError as error:
            raise RequestError(f"the request body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        return body

    def _send_json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        self._answered = True
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, error: RequestError) -> None:
        # Vertex AI's callers see the error of a prediction request as its body says it.
        vertex = self.command == "POST" and self._route() == self.predict_route
        self._send_json(error.status, error.vertex_body() if vertex else error.body())

    def _send_stream(self, events: list[dict[str, Any]]) -> None:
        self._answered = True
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode("utf-8"))
        self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once; one more is answered 503 and closed."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], max_connections: int):
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        if self._slots.acquire(blocking=False):
            super().process_request(request, client_address)  # the thread it starts frees the slot
            return
        error = RequestError(
            f"the server is busy: {self.max_connections} connections are open; retry shortly",
            HTTPStatus.SERVICE_UNAVAILABLE,
        )
        data = json.dumps(error.body()).encode("utf-8")
        head = (
            f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            "Retry-After: 1\r\nConnection: close\r\n\r\n"
        )
        try:
            request.settimeout(1.0)  # a client that reads nothing cannot hold the accepting thread
            request.sendall(head.encode("ascii") + data)
        except OSError:  # the client is gone
            pass
        self.shutdown_request(request)

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def create_server(
    service: StudentService,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    api_key: str | None = None,
    api_key_env: str = API_KEY_ENV,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    predict_route: str = PREDICT_ROUTE,
    health_route: str = HEALTH_ROUTE,
) -> ThreadingHTTPServer:
    """An HTTP server for the service, bound and ready for `serve_forever()`; each connection gets a thread.

    Args:
        service: The student to serve.
        host: The address to bind; beyond loopback without an API key, a warning goes to stderr.
        port: The port; 0: any free port.
        api_key: The key requests must carry as `Authorization: Bearer KEY`; None: the value of the environment
            variable `api_key_env` names; empty: no key.
        api_key_env: The environment variable holding the key when `api_key` is None (an environment variable,
            not an argument, so that the key never shows in `ps`).
        timeout: Seconds a request (line, headers and body) may take to arrive, and each write of an answer.
        max_connections: Connections served at once; one more is answered 503 with `Retry-After`.
        predict_route: The path of Vertex AI-style prediction requests (Vertex AI's AIP_PREDICT_ROUTE).
        health_route: A health-check path (Vertex AI's AIP_HEALTH_ROUTE), answered besides `/health`.
    """
    api_key = os.environ.get(api_key_env, "") if api_key is None else api_key
    attributes = {
        "service": service,
        "api_key": api_key,
        "timeout": timeout,
        "predict_route": predict_route.rstrip("/") or "/",
        "health_routes": frozenset({HEALTH_ROUTE, health_route.rstrip("/") or "/"}),
    }
    server = _BoundedServer((host, port), type("StudentHandler", (_Handler,), attributes), max_connections)
    bound, bound_port = server.server_address[:2]
    if not api_key and not ipaddress.ip_address(bound).is_loopback:
        print(
            f"warning: serving on {bound}:{bound_port} without an API key: anyone who can reach port {bound_port} "
            f"can use the model; set {api_key_env} to require one (behind an endpoint that authenticates "
            "callers itself, such as Vertex AI's, there is no need)",
            file=sys.stderr,
            flush=True,
        )
    return server
