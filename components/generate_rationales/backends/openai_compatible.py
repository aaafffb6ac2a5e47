"""A teacher behind any OpenAI-compatible HTTP endpoint: llama.cpp's server, vLLM, OpenAI, ..."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
from dataclasses import replace
from typing import Callable, TypeVar
from urllib.parse import urlsplit

from kfp_distill._implementation.redaction import redact_uri
from kfp_distill._implementation.teacher_key import TEACHER_API_KEY_ENV
from kfp_distill._implementation.teacher_reference import TeacherKind, TeacherReference

from ..retry import RetryPolicy, call_with_retries
from .base import (
    STRUCTURED_OUTPUT_REFUSED,
    Completion,
    DecodingSettings,
    TeacherRequestError,
    checked_completion,
    parse_retry_after,
)

T = TypeVar("T")

# The key comes from the environment only: a pipeline parameter would be stored in the run's metadata.
OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_HOST = "api.openai.com"
TIMEOUT_S = 600.0
# Statuses worth asking again: request timeout, rate limit, and the server's own errors.
RETRYABLE_STATUSES = frozenset({408, 429})
# How a request asks for an answer that follows a JSON schema, tried in this order until the server takes
# one: OpenAI's `json_schema` (OpenAI, vLLM, llama.cpp's llama-server), then `json_object` with a `schema`
# (llama-cpp-python's server, llama-server). A server that refuses both answers free text only.
STRUCTURED_DIALECTS = ("json_schema", "json_object")
# A server answers a `response_format` it does not take with 400 or 422 (FastAPI's validation), naming it.
REFUSED_FORMAT_STATUSES = frozenset({400, 422})
_NAMES_THE_FORMAT = re.compile(r"response_format|json_schema|json_object|schema", re.I)
# llama-cpp-python's server (0.3.36) answers the same validation error with a 500; a 500 is a refusal only
# when its message is that validation error of the response_format field (any other 500 is retried): the
# words "validation error", then the field's name. Two searches, each over the message once (a pattern
# "validation error.*response_format" scans to the end from every "validation error": quadratic).
_VALIDATION_ERROR = re.compile(r"validation error", re.I)
# A server without a model list (`GET /models`) answers it with one of these; it is known by the name asked for.
NO_MODEL_LIST_STATUSES = frozenset({404, 405, 501})
MODEL_LIST_RETRIES = RetryPolicy(max_attempts=3)
# What a model list may say about the weights behind a name: llama.cpp's server describes them (`meta`:
# parameters, size, vocabulary, training context), vLLM names what a served name stands for (`root`, `parent`).
WEIGHT_DESCRIPTIONS = ("meta", "root", "parent")
MAX_MODEL_ID_CHARS = 256
_RESPONSE_FORMAT_FIELD = re.compile(r"\bresponse_format\b", re.I)


def api_key_for(base_url: str) -> str:
    """The key sent to the teacher at `base_url`, and to no other host (the client sends it to `base_url` only).

    KFP_DISTILL_TEACHER_API_KEY is meant for the configured teacher, wherever it is. OPENAI_API_KEY is meant
    for OpenAI: it goes to `https://api.openai.com` alone, never to another server that happens to be configured.
    """
    if os.environ.get(TEACHER_API_KEY_ENV):
        return os.environ[TEACHER_API_KEY_ENV]
    url = urlsplit(base_url)
    if url.scheme == "https" and url.hostname == OPENAI_HOST and os.environ.get(OPENAI_API_KEY_ENV):
        return os.environ[OPENAI_API_KEY_ENV]
    return "none"  # local servers (llama.cpp, vLLM) accept any key


class OpenAICompatibleBackend:
    """Chat completions through the `openai` client (thread-safe, so requests may run at once).

    The client's own retries are off: the component's retry loop retries what this backend marks
    retryable, honours `Retry-After`, and counts every error for the report.

    Args:
        teacher: An OpenAI-compatible server's reference (its base URL and model).
        timeout_s: Seconds one attempt may take before it counts as a (retryable) timeout.
    """

    supports_concurrency = True
    supports_structured_output = True  # unless the server refuses it: see `structured_output_refused`

    def __init__(self, teacher: TeacherReference, timeout_s: float = TIMEOUT_S):
        from openai import OpenAI

        if timeout_s <= 0:
            raise ValueError(f"the request timeout must be positive, got {timeout_s}")
        teacher.expect(TeacherKind.OPENAI_COMPATIBLE)
        self.base_url, self.model = teacher.base_url, teacher.model
        # What reports, the cache, logs and errors show: a password in the URL stays in the client alone.
        self._shown_url = redact_uri(self.base_url)
        # The identity earlier versions cached answers under: the address and the name asked for.
        self.legacy_identity = f"openai-compatible:{self._shown_url.rstrip('/')}#{self.model}"
        self._client = OpenAI(
            base_url=self.base_url, api_key=api_key_for(self.base_url), max_retries=0, timeout=timeout_s
        )
        self._dialects = list(STRUCTURED_DIALECTS)  # those the server may still take, the one it took first
        self._dialect_lock = threading.Lock()
        # Why the server answers only free text, once it refused every dialect and took a plain request.
        self.structured_output_refused: str | None = None

    @functools.cached_property
    def identity(self) -> str:
        """What the answers of this teacher are cached under: the model the server says it serves, not where.

        Asked once, from the server's model list (`GET <base_url>/models`): see `identity_in_model_list`. A
        server without one (404, 405, 501) is known by the name asked for, `openai-compatible#<model>`.

        Raises:
            TeacherRequestError: The server could not be asked (after retries).
        """
        try:
            listing = call_with_retries(
                lambda: self._send(self._client.models.with_raw_response.list).content, MODEL_LIST_RETRIES, []
            )
        except TeacherRequestError as error:
            if error.kind not in {f"http {status}" for status in NO_MODEL_LIST_STATUSES}:
                raise TeacherRequestError(
                    f"{self._shown_url}: its model list (GET /models), which names the model its answers are "
                    f"cached under, could not be read: {error}", error.kind,
                ) from error
            listing = b""
        return identity_in_model_list(listing, self.model)

    def complete(self, messages: list[dict[str, str]], settings: DecodingSettings) -> Completion:
        if settings.response_schema is None:
            return self._create(messages, settings, None)
        if self.structured_output_refused:  # found out once; asking again would be paid for nothing
            raise self._refusal()
        schema = json.loads(settings.response_schema)
        with self._dialect_lock:
            dialects = list(self._dialects)
        refusals = []
        for dialect in dialects:
            try:
                completion = self._create(messages, settings, _response_format(dialect, schema))
            except TeacherRequestError as error:
                if not _refuses_the_format(error):
                    raise
                refusals.append((dialect, str(error)))
                continue
            self._forget([name for name, _ in refusals])  # the same request went through in another dialect
            return completion
        # Every dialect refused. A 400 may be the prompt's own fault (too long): only if the same request
        # without a response_format goes through is it the server that has no structured output.
        self._create(messages, replace(settings, response_schema=None), None)
        self._forget(dialects)
        self.structured_output_refused = "; ".join(f"{name}: {error}" for name, error in refusals) or "refused before"
        raise self._refusal()

    def _refusal(self) -> TeacherRequestError:
        return TeacherRequestError(
            f"{self._shown_url}: the server does not take a response_format with a JSON schema "
            f"({self.structured_output_refused})",
            STRUCTURED_OUTPUT_REFUSED,
        )

    def _forget(self, dialects: list[str]) -> None:
        with self._dialect_lock:
            self._dialects = [name for name in self._dialects if name not in dialects]

    def _create(self, messages: list[dict[str, str]], settings: DecodingSettings, response_format) -> Completion:
        extra = {"response_format": response_format} if response_format is not None else {}
        # The raw body, read by `read_chat_completion`: the client's own models take any JSON as it comes.
        response = self._send(
            lambda: self._client.chat.completions.with_raw_response.create(
                model=self.model,
                messages=messages,
                temperature=settings.temperature,
                max_tokens=settings.max_new_tokens,
                seed=settings.seed,
                **extra,
            )
        )
        return read_chat_completion(response.content, self._shown_url)

    def _send(self, request: Callable[[], T]) -> T:
        """`request()` through the client, its errors as TeacherRequestError."""
        import openai

        try:
            return request()
        except openai.APITimeoutError as error:
            raise TeacherRequestError(f"{self._shown_url}: {error}", "timeout", retryable=True) from error
        except openai.APIConnectionError as error:  # refused, reset, or a body cut short
            raise TeacherRequestError(f"{self._shown_url}: {error}", "connection", retryable=True) from error
        except openai.APIStatusError as error:
            status = error.status_code
            raise TeacherRequestError(
                f"{self._shown_url}: {error}",
                f"http {status}",
                retryable=status in RETRYABLE_STATUSES or status >= 500,
                retry_after_s=parse_retry_after(error.response.headers.get("retry-after")),
            ) from error
        except openai.OpenAIError as error:  # any other error of the client
            raise TeacherRequestError(f"{self._shown_url}: {error}", "bad response", retryable=True) from error


def identity_in_model_list(body: bytes, model: str) -> str:
    """The identity of the model asked for as `model`, from a server's model list (a `GET /models` body).

    The model is the list's entry whose id is `model`, else its only entry (llama.cpp's server answers any name
    with the model it loaded): `openai-compatible#<id>`. Where the entry describes the weights (llama.cpp's
    `meta`, vLLM's `root` when it is not the id), a digest of that description comes first,
    `openai-compatible:<digest>#<id>`, so that another model under the same name is another teacher. Without
    such an entry (or a list: any body that is not one), `openai-compatible#<model>`.
    """
    try:
        listing = json.loads(body) if body else None
    except (ValueError, RecursionError):
        listing = None
    entries = listing.get("data") if isinstance(listing, dict) else None
    entries = [
        entry for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict) and isinstance(entry.get("id"), str)
        and 0 < len(entry["id"]) <= MAX_MODEL_ID_CHARS and entry["id"].isprintable()
    ]
    chosen = next((entry for entry in entries if entry["id"] == model), entries[0] if len(entries) == 1 else None)
    if chosen is None:
        return f"openai-compatible#{model}"
    description = {key: chosen[key] for key in WEIGHT_DESCRIPTIONS if chosen.get(key) not in (None, chosen["id"])}
    if not description:
        return f"openai-compatible#{chosen['id']}"
    try:
        digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]
    except RecursionError:  # a description nested too deep to write out
        return f"openai-compatible#{chosen['id']}"
    return f"openai-compatible:{digest}#{chosen['id']}"


def read_chat_completion(body: bytes, where: str) -> Completion:
    """The answer in the JSON body of a chat completion, every field checked before it may be cached.

    The text is the first choice's `content`: a string, null (no text), or a list of parts whose `text` parts
    are joined; the token counts are `usage`'s, 0 where the server gives none (or null).

    Args:
        body: The response body.
        where: The teacher, for error messages.

    Raises:
        TeacherRequestError: A body that is not JSON ("bad response", retried: it may have been garbled on its
            way), or a response without the fields of a chat completion ("bad response", not retried).
    """
    try:
        response = json.loads(body)
    except (ValueError, RecursionError) as error:  # not JSON, or nested beyond the parser's depth
        raise TeacherRequestError(f"{where}: bad response: not JSON ({error})", "bad response", retryable=True) from None

    def malformed(problem: str) -> TeacherRequestError:
        return TeacherRequestError(f"{where}: bad response: {problem}", "bad response")

    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list):
        raise malformed("no list of choices")
    if not choices:
        raise TeacherRequestError(f"{where}: the response holds no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise malformed("choices[0].message is not an object")
    content = message.get("content")
    if isinstance(content, list):
        if not all(isinstance(part, dict) for part in content):
            raise malformed("choices[0].message.content holds a part that is not an object")
        texts = [part.get("text") for part in content if part.get("type") == "text"]
        if not all(isinstance(text, str) for text in texts):
            raise malformed("choices[0].message.content holds a text part without a string text")
        content = "".join(texts)
    elif content is not None and not isinstance(content, str):
        raise malformed(f"choices[0].message.content is a {type(content).__name__}, not a string")
    usage = response.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise malformed(f"usage is a {type(usage).__name__}, not an object")
    counts = {}
    for name in ("prompt_tokens", "completion_tokens"):
        count = (usage or {}).get(name)
        if count is not None and type(count) is not int:  # its range is checked with the other fields below
            shown = repr(count)[:40] if isinstance(count, (str, float, bool)) else f"a {type(count).__name__}"
            raise malformed(f"usage.{name} is {shown}, not a number of tokens")
        counts[name] = count or 0
    return checked_completion(Completion(content or "", finish_reason=choice.get("finish_reason"), **counts), where)


def _refuses_the_format(error: TeacherRequestError) -> bool:
    """Whether a failed request is the server refusing its response_format (not to be retried as it is)."""
    if error.kind in {f"http {status}" for status in REFUSED_FORMAT_STATUSES}:
        return bool(_NAMES_THE_FORMAT.search(str(error)))
    if error.kind != "http 500":
        return False
    message = str(error)
    validation = _VALIDATION_ERROR.search(message)
    return validation is not None and _RESPONSE_FORMAT_FIELD.search(message, validation.end()) is not None


def _response_format(dialect: str, schema: dict) -> dict:
    if dialect == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "rationale_and_answer", "schema": schema, "strict": True}}
    return {"type": "json_object", "schema": schema}
