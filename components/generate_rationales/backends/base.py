"""The protocol every teacher backend follows, and what it exchanges with the rest of the component."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class DecodingSettings:
    """How the teacher decodes; part of the answer-cache key, so any change re-asks.

    `response_schema` (JSON text) holds a structured answer to a JSON schema; None: free text.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    response_schema: str | None = None


@dataclass(frozen=True)
class Completion:
    """One teacher answer. `finish_reason` is "length" when it stopped at max_new_tokens."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None


class TeacherRequestError(RuntimeError):
    """A request the teacher did not answer.

    Args:
        message: What went wrong, naming the teacher.
        kind: A short label to count errors by (`http 429`, `timeout`, `connection`, ...).
        retryable: Whether the same request may succeed later (rate limits, server errors, dropped
            connections); False for requests the teacher refuses as they are (400, 404, too long a prompt).
        retry_after_s: How long the server asked the client to wait (its `Retry-After` header), if it did.
    """

    def __init__(self, message: str, kind: str = "error", retryable: bool = False, retry_after_s: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class TeacherBackend(Protocol):
    """A teacher that completes chat messages.

    `identity` names the exact model (a GGUF's sha256, an endpoint and model name): it is part of the
    answer-cache key, so answers of one teacher are never served for another.
    """

    identity: str
    # Whether requests may run at once (an HTTP endpoint); False for one in-process model object.
    supports_concurrency: bool
    # Whether the backend can hold an answer to `DecodingSettings.response_schema`.
    supports_structured_output: bool

    def complete(self, messages: list[dict[str, str]], settings: DecodingSettings) -> Completion:
        """Answers one conversation; raises TeacherRequestError when no answer comes back."""
        ...
