"""Client-side limits on requests and tokens per minute, shared by every thread asking one teacher."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

# The usual rule of thumb for English text and BPE tokenizers; only used before the server counts.
CHARACTERS_PER_TOKEN = 4
# Two times within this are the same instant (keeps float rounding from producing endless tiny waits).
_EPSILON_S = 1e-9


def estimate_tokens(messages: list[dict[str, str]], max_new_tokens: int) -> int:
    """An upper-leaning guess of a request's tokens before it is sent: its prompt, plus the longest answer."""
    characters = sum(len(message["content"]) for message in messages)
    return -(-characters // CHARACTERS_PER_TOKEN) + max_new_tokens


@dataclass
class Grant:
    """One request let through: when, and the tokens it counts for in the window."""

    started: float
    tokens: int


class RateLimiter:
    """A sliding one-minute window: a request starts only when fewer than `requests_per_minute` started
    within the last minute, and their tokens plus its own estimate stay within `tokens_per_minute`.

    Each request counts with its estimate until `settle` replaces it with what the server reported. A single
    request larger than `tokens_per_minute` still goes, alone in its window (else it could never go).

    Args:
        requests_per_minute: The most requests started in any window; 0: no limit.
        tokens_per_minute: The most tokens (prompt and completion) in any window; 0: no limit.
        window_s: The window's length (tests shorten it).
        clock: Monotonic seconds; None: `time.monotonic` (tests pass a fake).
        sleep: Waits; None: `time.sleep` (tests pass a fake that advances their clock).
    """

    def __init__(
        self,
        requests_per_minute: int = 0,
        tokens_per_minute: int = 0,
        window_s: float = 60.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        if requests_per_minute < 0 or tokens_per_minute < 0:
            raise ValueError("requests_per_minute and tokens_per_minute must not be negative (0: no limit)")
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.window_s = window_s
        self._clock, self._sleep = clock or time.monotonic, sleep or time.sleep
        self._grants: deque[Grant] = deque()  # in start order
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time requests spent waiting here, all threads together

    @property
    def limits_anything(self) -> bool:
        return bool(self.requests_per_minute or self.tokens_per_minute)

    def acquire(self, estimated_tokens: int) -> Grant:
        """Waits until a request of about `estimated_tokens` may start, and counts it in the window."""
        while True:
            with self._lock:
                now = self._clock()
                while self._grants and self._grants[0].started + self.window_s <= now + _EPSILON_S:
                    self._grants.popleft()
                wait_s = self._wait_s(now, estimated_tokens)
                if wait_s <= 0:
                    grant = Grant(now, estimated_tokens)
                    self._grants.append(grant)
                    return grant
                self.waited_s += wait_s
            self._sleep(wait_s)

    def settle(self, grant: Grant, tokens: int) -> None:
        """Counts a request with the tokens the server reported instead of its estimate."""
        with self._lock:
            grant.tokens = tokens

    def _wait_s(self, now: float, estimated_tokens: int) -> float:
        """How long until the oldest grants that stand in the way have left the window (0: go now)."""
        must_expire = 0  # how many of the oldest grants must leave the window first
        if self.requests_per_minute and len(self._grants) >= self.requests_per_minute:
            must_expire = int(len(self._grants) - self.requests_per_minute) + 1
        if self.tokens_per_minute:
            in_window = sum(grant.tokens for grant in self._grants)
            expired = 0
            while expired < len(self._grants) and in_window + estimated_tokens > self.tokens_per_minute:
                in_window -= self._grants[expired].tokens
                expired += 1
            must_expire = max(must_expire, expired)
        if must_expire == 0:
            return 0.0
        return self._grants[must_expire - 1].started + self.window_s - now
