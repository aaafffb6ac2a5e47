"""`kfp-distill serve`: an OpenAI-compatible HTTP endpoint for a distilled student.

The student drops in where the teacher was: a client of any OpenAI-compatible server (the `openai` package,
LangChain, curl) points its base URL at `http://HOST:PORT/v1` and sends the same requests. Endpoints:
`POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`, and `GET /health`.

What the student sees is what it was tuned on, `student_prompt(input_text, task)` (a long input cut as tuning
cut it, and to fit the model's context with `max_tokens`): for a chat request the input text is its messages
rendered as validate-dataset renders a logged conversation for tuning (`conversations.render_prompt`: a lone
user message is its text; a system prompt and earlier turns are part of it, in order); for a completion request
it is the prompt. The task is `label` (the answer) unless the request asks for the rationale, by a model name
ending in `:rationale` or by the extra body field `kfp_distill_task: "rationale"`. The label is answered as
`kfp-distill predict` answers it (`student.label_answers`: an extractive-QA answer decoded as a span of its
context, then cut as evaluation scores it); the rationale as generated. Any model name is accepted, so clients
configured for the teacher need no change.

Generation is greedy (temperature and other sampling settings are ignored: the student was tuned to answer
one way) and one request at a time, in the order they arrive (one model object on the CPU, on a thread of its
own, so `/health` and refusals are answered while it works); `max_tokens` (or `max_completion_tokens`) and
`stop` are honoured; `usage` counts the prompt's and the answer's tokens. `stream: true` is answered as
server-sent events carrying the whole answer in one chunk, so streaming clients work too.

The server is uvicorn (HTTP/1.1 by h11) running a small ASGI application, as Vertex AI custom containers and
KServe conventionally are. It is bounded, so a careless or hostile client cannot hold it:

- Time: one request per connection, whose line, headers and body must all arrive within `timeout` seconds
  (else 408, and the connection is dropped); an answer the client leaves unread for `timeout` seconds drops
  the connection too. A waiting connection holds no thread, so a slow one delays no other.
- Bytes: a body needs a `Content-Length` (411; chunked bodies are not accepted) that is one non-negative
  integer (400) of at most `MAX_BODY_BYTES`, 16 MiB (413), all refused before the body is read; the request
  line and headers get at most 64 KiB (431).
- Memory, bounded before a body is parsed: a body must be UTF-8 JSON at most `MAX_JSON_DEPTH` (64) levels
  deep with at most `MAX_JSON_VALUES` (32,768) values and object keys (else 400), which a linear scan of its
  bytes checks before `json.loads` builds anything (16 MiB of `{}` would become some 400 MiB of dicts).
  Parsing then builds the body's text, decoded once and parsed once, at most 4 bytes for each body byte (a
  string with one character beyond U+FFFF takes 4 bytes for every character), plus a few hundred bytes a
  value: at most 8 times the body (128 MiB for 16 MiB; twice the body for ASCII text), one body at a time.
  A request waiting for the model keeps only its checked fields (at most 4 times its body), not the body.
  Bodies over `SMALL_BODY_BYTES` (1 MiB) share `LARGE_BODIES_BYTES` (64 MiB) from the start of their
  reading until their answer is ready; one that does not fit is answered 503 with `Retry-After` before it
  is read. So the `max_connections` (32) requests hold at most 32 x 1 MiB + 64 MiB of bodies, and at most
  4 times that of fields, however they are sent.
- Work: `max_tokens` over `MAX_TOKENS_CAP` (or the server's own default, when higher) and more than
  `MAX_PROMPTS` prompts in one request are refused (400, naming the cap).
- Connections: past `max_connections` open connections (or requests still waiting for the model, their
  clients gone or not) a new one is answered 503 at once, with `Retry-After`, rather than queued without end
  behind the one model.
- Who: with an API key (the `KFP_DISTILL_API_KEY` environment variable, so it never shows in `ps`), every
  endpoint but `/health` asks for `Authorization: Bearer KEY` (401 otherwise); bound beyond loopback without
  one, the server warns that anyone who reaches the port can use it.

Apart from the HTTP layer: request parsing is pure functions that raise `RefusedRequest` (`decode_body`,
`parse_chat_request`, `parse_completion_request`, `parse_prediction_request`), the model's work is behind
`StudentService` (`answer_chat`, `answer_completion`, `answer_prediction` answer a checked request), and
`chat_completion`, `completion` and `vertex_prediction` answer a decoded body, parsing it first.

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

import asyncio
import contextlib
import functools
import hmac
import ipaddress
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import unquote, urlsplit

import uvicorn
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from uvicorn.protocols.http.h11_impl import H11Protocol

from kfp_distill._implementation.conversations import (
    ConversationError,
    ConversationSkipped,
    read_chat_messages,
    render_prompt,
)
from kfp_distill._implementation.model_store import answer, load_model, load_student
from kfp_distill._implementation.models import is_remote, resolve_hf_model
from kfp_distill._implementation.redaction import redact_uri
from kfp_distill._implementation.student import STUDENT_TASKS, StudentPredictor, StudentTask, label_answers

TASK_FIELD = "kfp_distill_task"
RATIONALE_SUFFIX = ":rationale"
DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_CAP = 2048
MAX_PROMPTS = 32
API_KEY_ENV = "KFP_DISTILL_API_KEY"
DEFAULT_TIMEOUT_S = 30.0
# Connections served at once (those past the first wait for the model): more get a 503.
DEFAULT_MAX_CONNECTIONS = 32
MAX_BODY_BYTES = 16 << 20
MAX_JSON_DEPTH = 64
MAX_JSON_VALUES = 32_768
# Bodies up to this size are always read; larger ones share LARGE_BODIES_BYTES.
SMALL_BODY_BYTES = 1 << 20
LARGE_BODIES_BYTES = 64 << 20
MAX_HEAD_BYTES = 64 << 10
HEALTH_ROUTE = "/health"
# Where Vertex AI-style prediction requests go when AIP_PREDICT_ROUTE does not say.
PREDICT_ROUTE = "/predict"
INSTANCE_FIELDS = ("input_text", "rationale", "max_tokens")


class RefusedRequest(Exception):
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
class StudentReply:
    """What the student generated for one prompt, why it stopped and the tokens it read and wrote."""

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

    def _prompt_tokens(self, input_text: str, task: StudentTask) -> int:
        """The prompt's token count at the predictor's current token limit; a limit past the context is a 400."""
        try:
            return len(self.predictor.input_ids(input_text, task))
        except ValueError as error:  # max_tokens larger than the model's context
            raise RefusedRequest(str(error), param="max_tokens") from None

    def answer(
        self, input_text: str, task: StudentTask, max_tokens: int | None = None, stop: list[str] = ()
    ) -> StudentReply:
        """The student's greedy answer to one input, cut at the first stop string, with token counts: the label
        task's answer as `kfp-distill predict` gives it (`label_answers`), the rationale task's as generated."""
        tokenizer = self.predictor.tokenizer
        limit = max_tokens or self.max_tokens
        with self._lock:
            # The predictor reads its token limit per call; the lock keeps each request's limit its own.
            self.predictor.max_new_tokens = limit
            prompt_tokens = self._prompt_tokens(input_text, task)
            if task == "label":
                ((prediction, text),) = label_answers(self.predictor, [input_text], self.task_type)
            else:
                (prediction,) = self.predictor.predict([input_text], task=task)
                text = prediction.text
        # The predictor returns text, not token ids: what was generated is counted by tokenizing it again, which
        # can differ from the generated count by a token where a word was split differently.
        completion_tokens = min(len(tokenizer(prediction.text, add_special_tokens=False)["input_ids"]), limit)
        answer = StudentReply(
            text=text,
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
            for task in STUDENT_TASKS if with_rationale else ("label",):
                self._prompt_tokens(input_text, task)
            (result,) = answer(self.predictor, [input_text], with_rationale, self.task_type)
        return result

    def models(self) -> dict[str, Any]:
        ids = [self.model_id, self.model_id + RATIONALE_SUFFIX]
        return {
            "object": "list",
            "data": [{"id": i, "object": "model", "created": self.created, "owned_by": "kfp-distill"} for i in ids],
        }


def load_student_service(model: str, registry_uri: str = "", max_tokens: int = DEFAULT_MAX_TOKENS) -> StudentService:
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
        predictor, task_type = load_student(local)
        model_id = path.resolve().name if path.is_dir() else served_model_id(model)
    else:
        registered = load_model(model, registry_uri)
        predictor, task_type, model_id = registered.predictor, registered.task_type, model
    return StudentService(predictor, model_id=model_id, max_tokens=max_tokens, task_type=task_type)


def served_model_id(uri: str) -> str:
    """The name a model served from a URI is listed under: the last folder of its path, without a query (a
    signed URL's signature) or credentials."""
    return urlsplit(redact_uri(uri)).path.rstrip("/").rsplit("/", 1)[-1] or "model"


def _route(path: str) -> str:
    return path.rstrip("/") or "/"


# Request parsing: pure functions of a request's body that raise RefusedRequest, apart from the HTTP layer.

# Every byte but those of JSON's structure (quotes, brackets, commas, colons), deleted before the scan.
_NOT_JSON_STRUCTURE = bytes(set(range(256)) - set(b'"[]{},:'))
_QUOTE, _OPENING, _CLOSING = ord('"'), b"[{", b"]}"
# json.loads joins surrogate pairs, so a surrogate left in a string is unpaired, and no tokenizer encodes it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_json_shape(data: bytes | bytearray) -> None:
    """Refuses JSON nested deeper than MAX_JSON_DEPTH or with more than MAX_JSON_VALUES values and object keys,
    from its bytes alone, in time linear in their length, before anything is built.

    Every value but the first, and every key, follows one of `[ { , :`; counting those outside strings bounds
    what json.loads builds. For input that is not JSON the scan stops where a string or a closing bracket
    stands where JSON allows none: json.loads refuses the input there, having built only what was counted.
    """
    if b"\\" in data:  # without escaped backslashes and quotes, each quote left opens or closes a string
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = data.translate(None, _NOT_JSON_STRUCTURE)
    values, strings, depth, position = 1, 0, 0, 0
    while position < len(structure):
        token = structure[position]
        position += 1
        if token == _QUOTE:
            strings += 1
            end = structure.find(b'"', position)
            if end < 0 or strings > values:  # unterminated, or more strings than places for them
                return
            position = end + 1
        elif token in _CLOSING:
            depth -= 1
            if depth < 0:
                return
        else:
            values += 1
            if values > MAX_JSON_VALUES:
                raise RefusedRequest(f"the request body holds more than {MAX_JSON_VALUES} JSON values")
            if token in _OPENING:
                depth += 1
                if depth > MAX_JSON_DEPTH:
                    raise RefusedRequest(f"the request body is nested too deep: over {MAX_JSON_DEPTH} levels")


def decode_body(data: bytes | bytearray) -> dict[str, Any]:
    """A request body as the JSON object it must be: UTF-8 JSON within the depth and value caps, checked
    before it is parsed (the module docstring says what that bounds)."""
    _check_json_shape(data)
    try:
        body = json.loads(data.decode("utf-8-sig") or "null")
    except UnicodeDecodeError as error:
        raise RefusedRequest(f"the request body is not UTF-8: {error}") from None
    except ValueError as error:
        raise RefusedRequest(f"the request body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise RefusedRequest("the request body must be a JSON object")
    return body


@dataclass(frozen=True)
class ChatRequest:
    """A checked chat request: what the student reads, and how the answer is made and sent."""

    input_text: str
    task: StudentTask
    max_tokens: int | None
    stop: list[str]
    model: str  # as the request names it; empty: not named
    stream: bool = False
    include_usage: bool = False


@dataclass(frozen=True)
class CompletionRequest:
    """A checked completion request: one answer per prompt."""

    prompts: list[str]
    task: StudentTask
    max_tokens: int | None
    stop: list[str]
    model: str
    stream: bool = False
    include_usage: bool = False


@dataclass(frozen=True)
class PredictionRequest:
    """A checked Vertex AI prediction request: (input text, with rationale, max tokens) per instance."""

    instances: list[tuple[str, bool, int | None]]


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RefusedRequest(f"model must be a string, got {model!r}", param="model")
    return model or ""


def _task(body: dict[str, Any], model: str) -> StudentTask:
    task = body.get(TASK_FIELD)
    if task is None:
        task = "rationale" if model.endswith(RATIONALE_SUFFIX) else "label"
    if task not in STUDENT_TASKS:
        raise RefusedRequest(f"{TASK_FIELD} must be one of {', '.join(STUDENT_TASKS)}, got {task!r}", param=TASK_FIELD)
    return task


def _max_tokens(body: dict[str, Any], cap: int) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RefusedRequest(f"max_tokens must be a positive integer, got {value!r}", param="max_tokens")
    if value > cap:
        raise RefusedRequest(f"max_tokens is {value}, over this server's cap of {cap}", param="max_tokens")
    return value


def _stop(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RefusedRequest("stop must be a string or a list of strings", param="stop")
    return stop


def _stream(body: dict[str, Any]) -> tuple[bool, bool]:
    """(stream, include usage): `stream` and `stream_options.include_usage`, each true, false or left out."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RefusedRequest(f"stream must be true or false, got {stream!r}", param="stream")
    options = body.get("stream_options")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise RefusedRequest(f"stream_options must be an object, got {options!r}", param="stream_options")
    include_usage = options.get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        raise RefusedRequest(f"stream_options.include_usage must be true or false, got {include_usage!r}",
                           param="stream_options")
    return bool(stream), bool(include_usage)


def _model_text(text: str, where: str, param: str | None = None) -> str:
    """Text the student reads, refused if a `\\ud800`-style escape left an unpaired surrogate in it."""
    if _SURROGATE.search(text):
        raise RefusedRequest(f"{where} holds an unpaired surrogate (a \\ud800-\\udfff escape alone), which is not text",
                           param=param)
    return text


def _conversation_text(body: dict[str, Any]) -> str:
    """What the student reads for a chat request: its messages rendered as logged conversations are for tuning."""
    try:
        prompt = read_chat_messages(body.get("messages"))
    except ConversationError as error:
        raise RefusedRequest(str(error), param="messages") from None
    except ConversationSkipped as skipped:
        raise RefusedRequest(f"the student reads text conversations only; this one has {skipped.reason}",
                           param="messages") from None
    return _model_text(render_prompt(prompt), "the conversation", "messages")


def _prompts(body: dict[str, Any], cap: int) -> list[str]:
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise RefusedRequest("prompt must be a string or a non-empty list of strings (token ids are not accepted)",
                           param="prompt")
    if len(prompts) > cap:
        raise RefusedRequest(f"prompt holds {len(prompts)} prompts, over this server's cap of {cap} per request",
                           param="prompt")
    return [_model_text(prompt, f"prompt {i}", "prompt") for i, prompt in enumerate(prompts)]


def parse_chat_request(body: dict[str, Any], max_tokens_cap: int = MAX_TOKENS_CAP) -> ChatRequest:
    """A chat request's body, checked: RefusedRequest names the first field that is wrong."""
    max_tokens = _max_tokens(body, max_tokens_cap)
    input_text = _conversation_text(body)
    model = _model(body)
    stream, include_usage = _stream(body)
    return ChatRequest(input_text, _task(body, model), max_tokens, _stop(body), model, stream, include_usage)


def parse_completion_request(
    body: dict[str, Any], max_tokens_cap: int = MAX_TOKENS_CAP, max_prompts: int = MAX_PROMPTS
) -> CompletionRequest:
    """A completion request's body, checked: RefusedRequest names the first field that is wrong."""
    model = _model(body)
    task, max_tokens, stop = _task(body, model), _max_tokens(body, max_tokens_cap), _stop(body)
    stream, include_usage = _stream(body)
    return CompletionRequest(_prompts(body, max_prompts), task, max_tokens, stop, model, stream, include_usage)


def _instance(instance: Any, index: int, cap: int) -> tuple[str, bool, int | None]:
    """(input text, with rationale, max tokens) of one Vertex AI instance: a string, or an object."""
    where = f"instances[{index}]"
    if isinstance(instance, str):
        return _model_text(instance, where), False, None
    if not isinstance(instance, dict) or not isinstance(instance.get("input_text"), str):
        raise RefusedRequest(f'{where} must be an input text or an object with a string "input_text"')
    unknown = sorted(set(instance) - set(INSTANCE_FIELDS))
    if unknown:
        raise RefusedRequest(f"{where} has unknown field(s) {', '.join(unknown)}; known: {', '.join(INSTANCE_FIELDS)}")
    rationale = instance.get("rationale", False)
    if not isinstance(rationale, bool):
        raise RefusedRequest(f'{where}: "rationale" must be true or false, got {rationale!r}')
    try:
        max_tokens = _max_tokens(instance, cap)
    except RefusedRequest as error:
        raise RefusedRequest(f"{where}: {error}") from None
    return _model_text(instance["input_text"], where), rationale, max_tokens


def parse_prediction_request(
    body: dict[str, Any], max_tokens_cap: int = MAX_TOKENS_CAP, max_prompts: int = MAX_PROMPTS
) -> PredictionRequest:
    """Vertex AI's `{"instances": [...]}`, every instance checked, so that a bad one costs no generation."""
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise RefusedRequest('the request body must be {"instances": [...]} with at least one instance')
    if len(instances) > max_prompts:
        raise RefusedRequest(f"the request holds {len(instances)} instances, over this server's cap of {max_prompts}")
    return PredictionRequest([_instance(instance, i, max_tokens_cap) for i, instance in enumerate(instances)])


# Answers: the model's work for a checked request, behind StudentService.


def _usage(answers: list[StudentReply]) -> dict[str, int]:
    prompt = sum(a.prompt_tokens for a in answers)
    completion = sum(a.completion_tokens for a in answers)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def answer_chat(service: StudentService, request: ChatRequest) -> dict[str, Any]:
    """The `chat.completion` object answering one checked chat request."""
    answer = service.answer(request.input_text, request.task, request.max_tokens, request.stop)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model or service.model_id,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.text},
            "logprobs": None,
            "finish_reason": answer.finish_reason,
        }],
        "usage": _usage([answer]),
    }


def answer_completion(service: StudentService, request: CompletionRequest) -> dict[str, Any]:
    """The `text_completion` object answering one checked completion request (one choice per prompt)."""
    answers = [service.answer(prompt, request.task, request.max_tokens, request.stop) for prompt in request.prompts]
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": request.model or service.model_id,
        "choices": [
            {"index": i, "text": a.text, "logprobs": None, "finish_reason": a.finish_reason} for i, a in enumerate(answers)
        ],
        "usage": _usage(answers),
    }


def answer_prediction(service: StudentService, request: PredictionRequest) -> dict[str, Any]:
    """Vertex AI's online prediction: `{"predictions": [...]}`, one per instance (the label, or `{"label",
    "rationale"}` for an instance that asks)."""
    return {"predictions": [service.prediction(*instance) for instance in request.instances]}


# The routes as functions of a decoded body (the server parses first, then answers on the model's thread).


def chat_completion(service: StudentService, body: dict[str, Any]) -> dict[str, Any]:
    """The `chat.completion` object answering one chat request."""
    return answer_chat(service, parse_chat_request(body, service.max_tokens_cap))


def completion(service: StudentService, body: dict[str, Any]) -> dict[str, Any]:
    """The `text_completion` object answering one completion request (one choice per prompt)."""
    return answer_completion(service, parse_completion_request(body, service.max_tokens_cap, service.max_prompts))


def vertex_prediction(service: StudentService, body: dict[str, Any]) -> dict[str, Any]:
    """Vertex AI's online prediction of `{"instances": [...]}`; every instance is checked before the first is
    answered, so a bad one costs no generation."""
    return answer_prediction(service, parse_prediction_request(body, service.max_tokens_cap, service.max_prompts))


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


# The HTTP layer: uvicorn's HTTP/1.1 protocol with the bounds that hold before a request reaches the
# application, and the ASGI application.

# In the ASGI scope's state: when the request must have arrived in full (a time.monotonic() value).
_DEADLINE = "kfp_distill_deadline"
# Where a request's line and headers end, as h11 finds it.
_HEAD_END = re.compile(rb"\n\r?\n")


def _json_response(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    # Every connection carries one request: the answer closes it.
    return Response(json.dumps(payload), status, {**(headers or {}), "Connection": "close"},
                    media_type="application/json")


def _event_stream(events: list[dict[str, Any]]) -> Response:
    text = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"
    return Response(text, HTTPStatus.OK, {"Cache-Control": "no-cache", "Connection": "close"},
                    media_type="text/event-stream")


class _StudentApp:
    """The ASGI application: routes, the key, a body's deadline, memory budget and parsing, and answers made on
    the model's own thread, one at a time in the order they were asked for."""

    def __init__(
        self, service: StudentService, *, api_key: str, timeout: float, max_connections: int, predict_route: str,
        health_routes: frozenset[str],
    ):
        self.service = service
        self.api_key = api_key
        self.timeout = timeout
        self.max_connections = max_connections
        self.predict_route = predict_route
        self.health_routes = health_routes
        caps = {"max_tokens_cap": service.max_tokens_cap}
        # How each POST route's body is parsed, then answered.
        self.post_routes: dict[str, tuple[Callable[[dict[str, Any]], Any], Callable[..., dict[str, Any]]]] = {
            "/v1/chat/completions": (functools.partial(parse_chat_request, **caps), answer_chat),
            "/v1/completions": (
                functools.partial(parse_completion_request, **caps, max_prompts=service.max_prompts), answer_completion
            ),
            predict_route: (
                functools.partial(parse_prediction_request, **caps, max_prompts=service.max_prompts), answer_prediction
            ),
        }
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kfp-distill-model")
        self.in_progress = 0  # connections open or with a request at work (see _BoundedProtocol)
        self._large_bodies_bytes = 0  # held by bodies over SMALL_BODY_BYTES, from their reading to their answer

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        request = Request(scope, receive)
        try:
            response = await self._respond(request, request.method, _route(scope["path"]))
        except ClientDisconnect:  # nobody is left to answer
            return
        await response(scope, receive, send)

    async def _respond(self, request: Request, method: str, route: str) -> Response:
        try:
            if not self._authorized(request, route):  # before the body is read: a caller without the key costs nothing
                raise RefusedRequest("a valid API key is required: Authorization: Bearer KEY", HTTPStatus.UNAUTHORIZED)
            if method == "GET" and route == "/v1/models":
                return _json_response(HTTPStatus.OK, self.service.models())
            if method == "GET" and route in self.health_routes:
                return _json_response(HTTPStatus.OK, {"status": "ok"})
            if method != "POST" or route not in self.post_routes:
                raise RefusedRequest(f"no such endpoint: {method} {request.scope['path']}", HTTPStatus.NOT_FOUND)
            parse, answer_request = self.post_routes[route]
            with self._body_share(int(request.headers["content-length"])):  # checked by the protocol
                # The body and its JSON are let go once parsed: a request waiting for the model holds its fields.
                parsed = parse(decode_body(await self._body(request)))
                loop = asyncio.get_running_loop()
                answered = await loop.run_in_executor(self._model_thread, answer_request, self.service, parsed)
        except RefusedRequest as error:
            return self.error_response(error, method, route)
        except ClientDisconnect:
            raise
        except Exception as error:  # the server keeps serving; the client learns what failed
            failure = RefusedRequest(f"{type(error).__name__}: {error}", HTTPStatus.INTERNAL_SERVER_ERROR)
            return self.error_response(failure, method, route)
        if getattr(parsed, "stream", False):  # predictions are never streamed
            return _event_stream(stream_events(answered, parsed.include_usage))
        return _json_response(HTTPStatus.OK, answered)

    def _authorized(self, request: Request, route: str) -> bool:
        if not self.api_key or route in self.health_routes:  # probes carry no key
            return True
        # Compared as bytes in constant time: the header as sent (read as Latin-1), the key as UTF-8.
        sent = request.headers.get("authorization", "").encode("latin-1")
        return hmac.compare_digest(sent, b"Bearer " + self.api_key.encode("utf-8"))

    @contextlib.contextmanager
    def _body_share(self, length: int) -> Iterator[None]:
        """Holds a large body's share of LARGE_BODIES_BYTES while it is read, parsed and answered; a body that
        does not fit is refused before it is read (503: the share comes free as others are answered)."""
        if length <= SMALL_BODY_BYTES:
            yield
            return
        if self._large_bodies_bytes + length > LARGE_BODIES_BYTES:
            raise RefusedRequest("the server is busy reading other large request bodies; retry shortly",
                               HTTPStatus.SERVICE_UNAVAILABLE)
        self._large_bodies_bytes += length  # the event loop's thread alone counts: no lock needed
        try:
            yield
        finally:
            self._large_bodies_bytes -= length

    async def _body(self, request: Request) -> bytearray:
        """The body (as long as its Content-Length says: h11 frames it), if it arrives by the deadline (else 408)."""
        data = bytearray()

        async def read() -> None:
            async for chunk in request.stream():
                data.extend(chunk)

        try:
            await asyncio.wait_for(read(), request.scope["state"][_DEADLINE] - time.monotonic())
        except asyncio.TimeoutError:
            raise self.timed_out() from None
        return data

    def timed_out(self) -> RefusedRequest:
        return RefusedRequest(f"the request did not arrive within {self.timeout:g} seconds", HTTPStatus.REQUEST_TIMEOUT)

    def busy(self) -> RefusedRequest:
        return RefusedRequest(
            f"the server is busy: {self.max_connections} connections are open; retry shortly",
            HTTPStatus.SERVICE_UNAVAILABLE,
        )

    def error_response(self, error: RefusedRequest, method: str, route: str) -> Response:
        """A refusal as the route's callers read it: Vertex AI's for its predict route, OpenAI's elsewhere."""
        headers = {}
        if error.status == HTTPStatus.UNAUTHORIZED:
            headers["WWW-Authenticate"] = "Bearer"
        if error.status == HTTPStatus.SERVICE_UNAVAILABLE:
            headers["Retry-After"] = "1"
        vertex = method == "POST" and route == self.predict_route
        return _json_response(error.status, error.vertex_body() if vertex else error.body(), headers)

    def close(self) -> None:
        self._model_thread.shutdown(wait=False, cancel_futures=True)


def _head_fields(head: bytes) -> tuple[str, str, dict[str, list[str]]]:
    """(method, route, header values by lower-case name) of a request's line and headers, read leniently: h11
    refuses what is malformed."""
    request_line, *lines = head.split(b"\n")
    method, _, rest = request_line.strip().partition(b" ")
    target = rest.partition(b" ")[0].partition(b"?")[0]
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower().decode("latin-1"), []).append(value.strip().decode("latin-1"))
    return method.decode("latin-1"), _route(unquote(target.decode("latin-1"))), headers


def _check_body_framing(headers: dict[str, list[str]]) -> None:
    """Refuses a body this server does not read: one without a single Content-Length of at most MAX_BODY_BYTES."""
    lengths = headers.get("content-length", [])
    if not lengths or "transfer-encoding" in headers:
        raise RefusedRequest("a request body needs a Content-Length header (chunked bodies are not accepted)",
                           HTTPStatus.LENGTH_REQUIRED)
    value = lengths[0]
    if len(set(lengths)) > 1 or not (value.isascii() and value.isdigit()):
        raise RefusedRequest(f"Content-Length must be one non-negative integer, got {', '.join(lengths)!r}")
    # Checked on the digits first: a number of thousands of digits is over the cap, and int() refuses it.
    digits = value.lstrip("0")
    if len(digits) > len(str(MAX_BODY_BYTES)) or int(digits or "0") > MAX_BODY_BYTES:
        raise RefusedRequest(f"request body over {MAX_BODY_BYTES} bytes", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)


class _BoundedProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11) with the bounds that hold before the application sees a request: the
    connection cap, the deadline and size of the request's line and headers, the body's framing; and an answer
    left unread for `timeout` seconds drops the connection. Refusals are answered here at once, as the
    application answers them, and close the connection."""

    student_app: _StudentApp  # set on the subclass StudentServer makes

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        app = self.student_app
        self._head: bytearray | None = bytearray()  # the request's line and headers so far; None once checked
        self._method = self._route = ""
        self._write_stall: asyncio.TimerHandle | None = None
        self._head_deadline = self.loop.call_later(app.timeout, self._head_timed_out)
        # The application reads the body until the same deadline.
        self.app_state = {**self.app_state, _DEADLINE: time.monotonic() + app.timeout}
        # A place among max_connections is held until the connection is closed and its request's work is done
        # (a request whose client left still waits for the model).
        self._working = self._closed = False
        self._counted = app.in_progress < app.max_connections
        if not self._counted:
            self._refuse(app.busy())
            return
        app.in_progress += 1
        application = self.app

        async def counted(scope: dict[str, Any], receive: Callable, send: Callable) -> None:
            try:
                await application(scope, receive, send)
            finally:
                self._working = False
                self._release_if_done()

        self.app = counted

    def data_received(self, data: bytes) -> None:
        if self._head is None:  # the head was checked: the rest is h11's to read
            super().data_received(data)
            return
        searched = max(len(self._head) - 2, 0)  # a trickled head is searched once, not once per byte
        self._head += data
        end = _HEAD_END.search(self._head, searched)
        if (end.start() if end else len(self._head)) > MAX_HEAD_BYTES:
            self._refuse(RefusedRequest(f"the request's line and headers are over {MAX_HEAD_BYTES} bytes",
                                      HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE))
            return
        if end is None:
            return
        head, self._head = bytes(self._head), None
        self._head_deadline.cancel()
        self._method, self._route, headers = _head_fields(head[: end.start()])
        if self._method == "POST" and self._route in self.student_app.post_routes:
            try:
                _check_body_framing(headers)
            except RefusedRequest as error:
                self._refuse(error)
                return
        if "host" not in headers:  # h11 asks HTTP/1.1 for one; a server without virtual hosts has no use for it
            head = head.replace(b"\n", b"\nHost: \r\n", 1)
        super().data_received(head)
        self._working = self.cycle is not None  # h11 read a request: its task is made, not yet run

    def send_400_response(self, msg: str) -> None:  # h11 found the request malformed
        self._refuse(RefusedRequest(msg))

    def _head_timed_out(self) -> None:
        self._method, self._route, _ = _head_fields(bytes(self._head or b""))
        self._refuse(self.student_app.timed_out())

    def _refuse(self, error: RefusedRequest) -> None:
        """Answers with `error` and closes the connection; h11 has no request to answer, so the bytes are ours."""
        self._head = None
        self._head_deadline.cancel()
        response = self.student_app.error_response(error, self._method, self._route)
        status = HTTPStatus(response.status_code)
        if self.access_log:  # as uvicorn logs the requests that reach the application
            client = "%s:%d" % self.client if self.client else "-"
            self.access_logger.info('%s - "%s %s" %d', client, self._method or "-", self._route or "-", status.value)
        head = [f"HTTP/1.1 {status.value} {status.phrase}".encode("ascii")]
        head += [name + b": " + value for name, value in response.raw_headers]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + response.body)
        self.transport.close()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._write_stall = self.loop.call_later(self.student_app.timeout, self.transport.abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_stall is not None:
            self._write_stall.cancel()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_deadline.cancel()
        if self._write_stall is not None:
            self._write_stall.cancel()
        self._closed = True
        self._release_if_done()
        super().connection_lost(exc)

    def _release_if_done(self) -> None:
        if self._counted and self._closed and not self._working:
            self._counted = False
            self.student_app.in_progress -= 1


class StudentServer:
    """What `create_server` makes: uvicorn on a socket bound at creation. `serve_forever()` serves until
    `shutdown()` (from another thread) or SIGINT or SIGTERM (when it runs on the main thread)."""

    def __init__(self, app: _StudentApp, listening: socket.socket):
        self._app = app
        self._socket = listening
        self.server_address = listening.getsockname()
        config = uvicorn.Config(
            app,
            http=type("StudentProtocol", (_BoundedProtocol,), {"student_app": app}),
            ws="none",
            lifespan="off",
            interface="asgi3",
            loop="asyncio",
            log_config=None,  # the uvicorn loggers log where the program sends them (the CLI: stderr)
            proxy_headers=False,
            server_header=False,
            headers=[("Server", "kfp-distill")],
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            timeout_graceful_shutdown=max(1, round(app.timeout)),
        )
        self._server = uvicorn.Server(config)
        self._serving = threading.Event()
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        self._serving.set()
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stops `serve_forever()` (which another thread runs) and waits for it to return."""
        self._server.should_exit = True
        if self._serving.is_set():
            self._stopped.wait()

    def server_close(self) -> None:
        self._socket.close()
        self._app.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[int]:
        """Serves on a background thread while the block runs (a program or notebook that goes on meanwhile),
        then shuts down and closes; yields the port."""
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        try:
            yield self.server_address[1]
        finally:
            self.shutdown()
            self.server_close()
            thread.join(timeout=10)


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
) -> StudentServer:
    """An HTTP server for the service, bound and ready for `serve_forever()`.

    Args:
        service: The student to serve.
        host: The address to bind; beyond loopback without an API key, a warning goes to stderr.
        port: The port; 0: any free port.
        api_key: The key requests must carry as `Authorization: Bearer KEY`; None: the value of the environment
            variable `api_key_env` names; empty: no key.
        api_key_env: The environment variable holding the key when `api_key` is None (an environment variable,
            not an argument, so that the key never shows in `ps`).
        timeout: Seconds a request (line, headers and body) may take to arrive, and an answer may wait unread.
        max_connections: Connections served at once; one more is answered 503 with `Retry-After`.
        predict_route: The path of Vertex AI-style prediction requests (Vertex AI's AIP_PREDICT_ROUTE).
        health_route: A health-check path (Vertex AI's AIP_HEALTH_ROUTE), answered besides `/health`.
    """
    if max_connections < 1:
        raise ValueError(f"max_connections must be at least 1, got {max_connections}")
    api_key = os.environ.get(api_key_env, "") if api_key is None else api_key
    app = _StudentApp(
        service, api_key=api_key, timeout=timeout, max_connections=max_connections,
        predict_route=_route(predict_route), health_routes=frozenset({HEALTH_ROUTE, _route(health_route)}),
    )
    server = StudentServer(app, socket.create_server((host, port)))
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
