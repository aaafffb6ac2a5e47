"""Retries of teacher requests: exponential backoff with full jitter, honouring the server's Retry-After.

Shared by every backend: a backend only says, through `TeacherRequestError`, whether an error is worth
retrying and how long the server asked to wait.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from .backends.base import TeacherRequestError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one request is retried.

    Args:
        max_attempts: Attempts per request, the first included.
        base_delay_s: The backoff ceiling after the first failure; it doubles with each further failure.
        max_delay_s: The highest backoff ceiling.
        max_retry_after_s: The longest `Retry-After` honoured (a server asking for more is waited on this long).
    """

    max_attempts: int = 6
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    max_retry_after_s: float = 300.0

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    def delay_s(self, failures: int, retry_after_s: float | None, rng: random.Random | None = None) -> float:
        """The wait before the next attempt, after `failures` failed attempts.

        The server's `Retry-After` wins when it is a finite number (NaN or infinity would make `time.sleep`
        raise); otherwise "full jitter": uniform between 0 and min(max_delay_s, base_delay_s * 2 ** (failures
        - 1)), so clients that failed together do not come back together.
        """
        if retry_after_s is not None and math.isfinite(retry_after_s):
            return min(max(retry_after_s, 0.0), self.max_retry_after_s)
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (failures - 1))
        return (rng or random).uniform(0.0, ceiling)


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    errors: list[TeacherRequestError],
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Calls `call` until it succeeds, it raises a non-retryable error, or the attempts run out.

    Args:
        call: One attempt; raises TeacherRequestError when the teacher gives no answer.
        policy: Attempts and delays.
        errors: Receives every error met, also those retried (for the report).
        sleep: Waits between attempts (tests pass a fake).
        rng: The jitter's source of randomness.

    Raises:
        TeacherRequestError: The last error, when it is not retryable or no attempt is left.
    """
    failures = 0
    while True:
        try:
            return call()
        except TeacherRequestError as error:
            errors.append(error)
            failures += 1
            if not error.retryable or failures >= policy.max_attempts:
                raise
            sleep(policy.delay_s(failures, error.retry_after_s, rng))
