"""The protocol every teacher backend follows, and what it exchanges with the rest of the component."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Protocol

# The bounds of what a teacher's answer may hold before it is cached: more than any model writes for one
# prompt (a million characters is about 250,000 tokens of English; no context window holds 100 million
# tokens), and within what SQLite stores and sums.
MAX_COMPLETION_CHARS = 1_000_000
MAX_TOKEN_COUNT = 100_000_000
MAX_FINISH_REASON_CHARS = 64
# A lone UTF-16 surrogate (JSON's "\ud800") is no character: SQLite cannot store it as UTF-8 text.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


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


def parse_retry_after(value: str | None) -> float | None:
    """The seconds a `Retry-After` header asks to wait, or None: no header, the HTTP-date form (left to the
    backoff), or no finite, non-negative number ("nan", "inf", "-5")."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0.0 <= seconds < math.inf else None


# The kind of error a backend raises for a request with a response schema once the server has refused every way
# of asking for one: the request is not the teacher failing, and the run asks it again in free text.
STRUCTURED_OUTPUT_REFUSED = "structured output refused"


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


def checked_completion(completion: Completion, where: str) -> Completion:
    """`completion` with every field checked for type and range, as the answer cache may store it.

    The text is a string of at most `MAX_COMPLETION_CHARS` (a lone surrogate becomes U+FFFD), each token
    count an int from 0 to `MAX_TOKEN_COUNT`, the finish reason a string (cut to `MAX_FINISH_REASON_CHARS`)
    or None. Whether the text holds an answer is not checked here: an unusable answer is cached as it is, and
    the report says why it is unusable.

    Raises:
        TeacherRequestError: A field of another type or out of range ("bad response", not retried: the same
            server would answer the same way).
    """
    problems = []
    if not isinstance(completion.text, str):
        problems.append(f"the text is a {type(completion.text).__name__}, not a string")
    elif len(completion.text) > MAX_COMPLETION_CHARS:
        problems.append(f"the text is {len(completion.text)} characters long (at most {MAX_COMPLETION_CHARS})")
    for name in ("prompt_tokens", "completion_tokens"):
        count = getattr(completion, name)
        if type(count) is not int:
            problems.append(f"{name} is a {type(count).__name__}, not a whole number")
        elif not 0 <= count <= MAX_TOKEN_COUNT:
            problems.append(f"{name} is out of range (0 to {MAX_TOKEN_COUNT})")
    finish_reason = completion.finish_reason
    if finish_reason is not None and not isinstance(finish_reason, str):
        problems.append(f"finish_reason is a {type(finish_reason).__name__}, not a string")
    if problems:
        raise TeacherRequestError(f"{where}: bad response: {'; '.join(problems)}", "bad response")
    return replace(
        completion,
        text=_LONE_SURROGATE.sub("\ufffd", completion.text),
        finish_reason=None if finish_reason is None else finish_reason[:MAX_FINISH_REASON_CHARS],
    )


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
