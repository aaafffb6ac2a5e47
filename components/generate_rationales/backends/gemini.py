"""Gemini on Vertex AI, through Google's `google-genai` SDK (`genai.Client(vertexai=True, ...)`)."""

from __future__ import annotations

import json
import re

from kfp_distill._implementation.retired_models import short_model_name
from kfp_distill._implementation.teacher_reference import TeacherKind, TeacherReference

from .base import Completion, DecodingSettings, TeacherRequestError, checked_completion, parse_retry_after

# The global endpoint serves every current Gemini model; a region pins where requests are processed.
DEFAULT_LOCATION = "global"
TIMEOUT_S = 600.0
# Models whose "thinking" can be switched off. Thinking tokens count against max_output_tokens, so a
# thinking model may spend the whole budget before writing a word; the rationale is the reasoning we want.
THINKING_OPTIONAL_PREFIXES = ("gemini-2.5-flash",)
RETRYABLE_STATUSES = frozenset({408, 429})
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
# The SDK converts a response body with its own code before it validates it: a body of another shape (a list
# where an object belongs, a number for an enum, JSON nested beyond the parser's depth) raises one of these.
_MALFORMED_BODY_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError)


def to_gemini_contents(messages: list[dict[str, str]]) -> tuple[str | None, list[dict]]:
    """Splits chat messages into Gemini's system instruction and `contents` (assistant turns are "model")."""
    system = "\n\n".join(message["content"] for message in messages if message["role"] == "system")
    contents = [
        {"role": "model" if message["role"] == "assistant" else "user", "parts": [{"text": message["content"]}]}
        for message in messages
        if message["role"] != "system"
    ]
    return system or None, contents


def retry_after_s(error) -> float | None:
    """How long Vertex AI asked to wait: the `Retry-After` header, else a `google.rpc.RetryInfo` detail."""
    headers = getattr(getattr(error, "response", None), "headers", None)
    seconds = parse_retry_after(headers.get("retry-after") if headers is not None else None)
    if seconds is not None:
        return seconds
    body = error.details.get("error", error.details) if isinstance(error.details, dict) else None
    for detail in (body.get("details") if isinstance(body, dict) else None) or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            seconds = _SECONDS.match(str(detail.get("retryDelay", "")))
            if seconds:
                return float(seconds.group(1))
    return None


class GeminiBackend:
    """A Gemini model on Vertex AI. The SDK's client is thread-safe, so requests may run at once.

    The SDK's own retries stay off: the component's retry loop retries what this backend marks
    retryable, honours the server's wait, and counts every error for the report. Credentials are
    Application Default Credentials (a service account on Vertex AI Pipelines, `gcloud auth
    application-default login` on a laptop), looked up at the first request, so a fully cached re-run
    needs none.

    Args:
        teacher: A Vertex AI teacher's reference; its model is any model name or resource path the SDK accepts.
        project: The Google Cloud project billed for the requests (the pipeline's `project`).
        location: The Vertex AI region (the pipeline's `location`); empty: the global endpoint.
        timeout_s: Seconds one attempt may take before it counts as a (retryable) timeout.
        base_url: Another Vertex AI endpoint (a Private Service Connect address, a test server); None: Google's.
        credentials: `google.auth` credentials; None: Application Default Credentials.

    Raises:
        ValueError: No project.
    """

    supports_concurrency = True
    supports_structured_output = True  # `response_json_schema`, Gemini's structured output

    def __init__(
        self,
        teacher: TeacherReference,
        project: str,
        location: str = "",
        timeout_s: float = TIMEOUT_S,
        base_url: str | None = None,
        credentials=None,
    ):
        from google import genai
        from google.genai import types

        self.model = teacher.expect(TeacherKind.VERTEX_AI).model
        problem = teacher.project_problem(project)
        if problem:
            raise ValueError(problem)
        if timeout_s <= 0:
            raise ValueError(f"the request timeout must be positive, got {timeout_s}")
        self.project, self.location = project.strip(), location.strip() or DEFAULT_LOCATION
        self.identity = f"vertex-ai#{self.model}"  # '#<model>' lets pricing.py price it
        self._where = f"{self.identity} ({self.project}/{self.location})"  # for error messages
        self._thinking_off = short_model_name(self.model).startswith(THINKING_OPTIONAL_PREFIXES)
        self._client = genai.Client(
            vertexai=True,
            project=self.project,
            location=self.location,
            credentials=credentials,
            http_options=types.HttpOptions(base_url=base_url, timeout=int(timeout_s * 1000)),  # milliseconds
        )

    def complete(self, messages: list[dict[str, str]], settings: DecodingSettings) -> Completion:
        from google.genai import types

        system, contents = to_gemini_contents(messages)
        config = types.GenerateContentConfig(
            system_instruction=system,
            temperature=settings.temperature,
            seed=settings.seed,
            max_output_tokens=settings.max_new_tokens,
            candidate_count=1,
            thinking_config=types.ThinkingConfig(thinking_budget=0) if self._thinking_off else None,
        )
        if settings.response_schema is not None:
            config.response_mime_type = "application/json"
            config.response_json_schema = json.loads(settings.response_schema)
        try:
            response = self._client.models.generate_content(model=self.model, contents=contents, config=config)
        except Exception as error:
            mapped = self._request_error(error)
            if mapped is None:
                raise
            raise mapped from error
        if not response.candidates:
            feedback = response.prompt_feedback
            reason = feedback.block_reason if feedback and feedback.block_reason else "no candidates"
            raise TeacherRequestError(f"{self._where}: the prompt got no answer ({reason})", "blocked")
        candidate = response.candidates[0]
        parts = candidate.content.parts if candidate.content and candidate.content.parts else []
        usage = response.usage_metadata
        # The SDK has checked each field's type; the counts' range is checked here, before the answer is cached.
        completion = Completion(
            text="".join(part.text for part in parts if part.text and not part.thought),
            prompt_tokens=(usage.prompt_token_count or 0) if usage else 0,
            # Thinking tokens are billed as output tokens.
            completion_tokens=((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0,
            finish_reason=_finish_reason(candidate.finish_reason),
        )
        return checked_completion(completion, self._where)

    def _request_error(self, error: Exception) -> TeacherRequestError | None:
        """The TeacherRequestError an SDK, HTTP or auth error stands for; None for any other error."""
        import httpx
        import pydantic
        from google.auth import exceptions as auth_errors
        from google.genai import errors as genai_errors

        where = self._where
        if isinstance(error, genai_errors.APIError):
            status = error.code
            return TeacherRequestError(
                f"{where}: {error}",
                f"http {status}",
                retryable=status in RETRYABLE_STATUSES or status >= 500,
                retry_after_s=retry_after_s(error),
            )
        if isinstance(error, httpx.TimeoutException):
            return TeacherRequestError(f"{where}: timed out: {error}", "timeout", retryable=True)
        if isinstance(error, httpx.TransportError):  # refused, reset, or a body cut short
            return TeacherRequestError(f"{where}: {error!r}", "connection", retryable=True)
        if isinstance(error, auth_errors.DefaultCredentialsError):
            return TeacherRequestError(
                f"{where}: no Google Cloud credentials ({error}); on a laptop run "
                "`gcloud auth application-default login`, in a pipeline give the job a service account",
                "credentials",
            )
        if isinstance(error, (auth_errors.RefreshError, auth_errors.TransportError)):
            retryable = bool(getattr(error, "retryable", isinstance(error, auth_errors.TransportError)))
            return TeacherRequestError(f"{where}: credentials: {error}", "credentials", retryable=retryable)
        if isinstance(error, (json.JSONDecodeError, pydantic.ValidationError)):  # a body cut short or garbled
            return TeacherRequestError(f"{where}: bad response: {error}", "bad response", retryable=True)
        if isinstance(error, _MALFORMED_BODY_ERRORS):  # what the SDK raises on a body it cannot convert
            message = f"{where}: bad response: {type(error).__name__}: {error}"
            return TeacherRequestError(message, "bad response", retryable=True)
        return None


def _finish_reason(reason) -> str | None:
    """OpenAI's names for the two usual endings ("length" at max_new_tokens), Gemini's lowercased otherwise."""
    if reason is None:
        return None
    name = getattr(reason, "value", str(reason)).upper()
    return {"MAX_TOKENS": "length", "STOP": "stop"}.get(name, name.lower())
