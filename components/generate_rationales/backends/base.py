"""The protocol every teacher backend follows, and what it exchanges with the rest of the component."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class DecodingSettings:
    """How the teacher decodes; part of the answer-cache key, so any change re-asks."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Completion:
    """One teacher answer. `finish_reason` is "length" when it stopped at max_new_tokens."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None


class TeacherRequestError(RuntimeError):
    """A request the teacher did not answer (after the backend's own retries)."""


class TeacherBackend(Protocol):
    """A teacher that completes chat messages.

    `identity` names the exact model (a GGUF's sha256, an endpoint and model name): it is part of the
    answer-cache key, so answers of one teacher are never served for another.
    """

    identity: str

    def complete(self, messages: list[dict[str, str]], settings: DecodingSettings) -> Completion:
        """Answers one conversation; raises TeacherRequestError when no answer comes back."""
        ...
