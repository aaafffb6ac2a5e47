"""Asking the teacher: through the answer cache, several requests at once, within limits, with retries.

Worker threads only talk to the teacher; the calling thread alone reads and writes the SQLite cache,
writing each answer the moment its request returns. Whatever goes wrong, no answer is lost: a request that
fails in any way (an error the backend did not foresee included) fails alone, and an error in the calling
thread waits for the requests in flight and caches their answers before it is raised.
"""

from __future__ import annotations

import collections
import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from typing import Callable

from .backends.base import (
    STRUCTURED_OUTPUT_REFUSED,
    Completion,
    DecodingSettings,
    TeacherBackend,
    TeacherRequestError,
    checked_completion,
)
from .cache import AnswerCache, CachedAnswer, answer_key
from .rate_limit import RateLimiter, estimate_tokens
from .retry import RetryPolicy, call_with_retries

NOT_ASKED_BUDGET = "not asked: budget reached"
logger = logging.getLogger(__name__)


class TeacherUnavailableError(RuntimeError):
    """So many requests failed that too few rows can be answered; a re-run resumes from the cache."""


@dataclass(frozen=True)
class Answer:
    """A teacher answer, and how long the request that first got it took."""

    completion: Completion
    latency_s: float


@dataclass(frozen=True)
class Unanswered:
    """Why a conversation got no answer: its request failed, or it was not asked.

    Attributes:
        reason: What happened, as the report says it.
        format_refused: The server refused the response schema the request asked for (it failed for its
            format, not for the teacher: the run asks it again in free text).
    """

    reason: str
    format_refused: bool = False


@dataclass
class AskingStats:
    """What asking cost, over every `ask_all` of one `Teacher`."""

    requests: int = 0  # answers asked for now (not those from the cache)
    cache_hits: int = 0
    tokens_spent: int = 0  # prompt and completion tokens of the answers asked for now
    request_errors: collections.Counter = field(default_factory=collections.Counter)  # failed attempts by kind
    budget_reached: bool = False


class RowTally:
    """How the rows of a run stand, over one or more `ask_all` calls: a row is settled once all its
    conversations are, usable when one of them got a usable answer, not asked when all were left out for
    the budget, else failed. Conversations refused for their response schema count for neither: the run
    asks them again in free text, so they put no minimum out of reach.

    Args:
        rows: The row of each conversation the run will ask (a row's self-consistency samples share one).
        usable: Whether an answer can be used (parses, has a rationale); None: every answer.
    """

    def __init__(self, rows: list[int], usable: Callable[[Completion], bool] | None = None):
        self.usable = usable or (lambda completion: True)
        self.open = collections.Counter(rows)
        self.outcomes: dict[int, set[str]] = collections.defaultdict(set)
        self.failed = self.unusable = self.not_asked = 0

    def settle(self, row: int, outcome: "Answer | Unanswered") -> None:
        if isinstance(outcome, Answer):
            self.outcomes[row].add("usable" if self.usable(outcome.completion) else "unusable")
        elif not outcome.format_refused:
            self.outcomes[row].add("not asked" if outcome.reason == NOT_ASKED_BUDGET else "failed")
        self.open[row] -= 1
        if self.open[row]:
            return
        outcomes = self.outcomes[row]
        if "usable" in outcomes or not outcomes:
            return
        if outcomes == {"not asked"}:
            self.not_asked += 1
        else:
            self.failed += 1
            self.unusable += "failed" not in outcomes

    def shortfall(self, min_answered_fraction: float) -> str | None:
        """Why the share of rows with a usable answer is (or will certainly end) below the minimum, if it is.

        Unusable rows only grow and rows left out for the budget only shrink the base, so a share already
        too low can only fall further.
        """
        asked = len(self.open) - self.not_asked
        if not self.failed or not asked or (asked - self.failed) / asked >= min_answered_fraction:
            return None
        return (
            f"{self.failed} of {asked} rows got no usable answer ({self.failed - self.unusable} with failed "
            f"requests, {self.unusable} with unusable answers), so at most {(asked - self.failed) / asked:.1%} "
            f"of the rows can be answered, below min_answered_fraction={min_answered_fraction}"
        )


@dataclass(frozen=True)
class _Reply:
    completion: Completion | None  # None: every attempt failed
    latency_s: float
    errors: list[TeacherRequestError]


class Teacher:
    """Answers conversations, from the cache where it can, else from the backend.

    Args:
        backend: The teacher.
        cache: The answer cache (used from the calling thread only).
        settings: Decoding settings (part of the cache key).
        max_concurrency: Requests in flight at once; 1 for backends that cannot run them at once.
        retry_policy: Attempts and backoff per request.
        rate_limiter: Client-side requests and tokens per minute; None: no limit.
        max_total_tokens: Stop asking once this run's requests have used so many tokens; 0: no cap.
        progress: A tqdm-like bar, advanced once per conversation.
    """

    def __init__(
        self,
        backend: TeacherBackend,
        cache: AnswerCache,
        settings: DecodingSettings,
        max_concurrency: int = 8,
        retry_policy: RetryPolicy = RetryPolicy(),
        rate_limiter: RateLimiter | None = None,
        max_total_tokens: int = 0,
        progress=None,
    ):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_total_tokens < 0:
            raise ValueError(f"max_total_tokens must not be negative (0: no cap), got {max_total_tokens}")
        self.backend, self.cache, self.settings = backend, cache, settings
        self.concurrency = max_concurrency if getattr(backend, "supports_concurrency", False) else 1
        self.retry_policy, self.rate_limiter = retry_policy, rate_limiter
        self.max_total_tokens = max_total_tokens
        self.progress = progress
        self.stats = AskingStats()

    def ask_all(
        self,
        conversations: list[list[dict[str, str]]],
        min_answered_fraction: float = 0.0,
        settings: list[DecodingSettings] | None = None,
        rows: list[int] | None = None,
        tally: RowTally | None = None,
    ) -> list[Answer | Unanswered]:
        """Answers every conversation; results in the order of `conversations`.

        Conversations asked twice share one request. Once the token cap is reached, the conversations
        the cache cannot answer are `Unanswered(NOT_ASKED_BUDGET)`.

        Args:
            conversations: Chat messages, one list per question.
            min_answered_fraction: The least share of the tally's rows that must get a usable answer (rows
                not asked because of the budget are left out of the count).
            settings: Decoding settings per conversation (self-consistency samples differ in their seed);
                None: the teacher's own settings for all.
            rows: The row each conversation asks about (a row's self-consistency samples share one); None:
                a row per conversation.
            tally: The run's rows, when it asks them over several calls; None: these conversations' rows,
                every answer usable.

        Raises:
            TeacherUnavailableError: The share can no longer be reached (raised as soon as that is certain,
                after the requests in flight have returned and been cached).
        """
        results: list[Answer | Unanswered | None] = [None] * len(conversations)
        settings = settings or [self.settings] * len(conversations)
        keys = [
            answer_key(self.backend.identity, messages, chosen) for messages, chosen in zip(conversations, settings)
        ]
        pending = collections.deque(range(len(conversations)))
        in_flight: dict[Future, tuple[str, int]] = {}  # request -> (cache key, estimated tokens)
        waiting: dict[str, list[int]] = {}  # cache key in flight -> the conversations that wait for it
        rows = rows or list(range(len(conversations)))
        tally = tally or RowTally(rows)
        shortfall = tally.shortfall(min_answered_fraction)  # earlier calls of the run may have settled it
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="teacher") as pool:
            try:
                while pending or in_flight:
                    while pending and shortfall is None:
                        index, key = pending[0], keys[pending[0]]
                        if key in waiting:  # the same question is in flight: share its answer
                            waiting[key].append(index)
                            pending.popleft()
                            continue
                        cached = self._cached(key, conversations[index], settings[index])
                        if cached is not None:
                            self.stats.cache_hits += 1
                            self._resolve([index], Answer(cached.completion, cached.latency_s), results, rows, tally)
                        elif self.stats.budget_reached:
                            self._resolve([index], Unanswered(NOT_ASKED_BUDGET), results, rows, tally)
                        elif len(in_flight) >= self.concurrency:
                            break
                        elif self._budget_taken(in_flight):
                            if in_flight:
                                break  # what those requests really use decides whether another fits
                            self.stats.budget_reached = True
                            continue
                        else:
                            estimate = estimate_tokens(conversations[index], settings[index].max_new_tokens)
                            request = pool.submit(self._request, conversations[index], settings[index], estimate)
                            in_flight[request] = (key, estimate)
                            waiting[key] = [index]
                        pending.popleft()
                    if not in_flight:
                        break
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        key, _ = in_flight.pop(future)
                        self._settle(key, future.result(), waiting.pop(key), results, rows, tally)
                    if shortfall is None:
                        shortfall = tally.shortfall(min_answered_fraction)
            except BaseException:  # a failed cache write, Ctrl-C, SIGTERM: keep what is still on its way
                self._keep_in_flight(in_flight, waiting, results, rows, tally)
                raise
        shortfall = shortfall or tally.shortfall(min_answered_fraction)
        if shortfall:
            raise TeacherUnavailableError(
                f"{shortfall}; the {len(self.cache)} answers so far are kept in {self.cache.path}: run again to resume"
            )
        return results

    def _cached(self, key: str, messages: list[dict[str, str]], settings: DecodingSettings) -> CachedAnswer | None:
        """The cached answer to a question: under its key, else under the key an earlier version gave it (a
        backend's `legacy_identity`), then kept under its key too, where later runs find it."""
        cached = self.cache.get(key)
        legacy = getattr(self.backend, "legacy_identity", None)
        if cached is None and legacy:
            cached = self.cache.get(answer_key(legacy, messages, settings))
            if cached is not None:
                self.cache.put(key, self.backend.identity, cached.completion, cached.latency_s)
        return cached

    def _budget_taken(self, in_flight: dict[Future, tuple[str, int]]) -> bool:
        if not self.max_total_tokens:
            return False
        reserved = sum(estimate for _, estimate in in_flight.values())
        return self.stats.tokens_spent + reserved >= self.max_total_tokens

    def _request(self, messages: list[dict[str, str]], settings: DecodingSettings, estimated_tokens: int) -> _Reply:
        """One question, retried as the policy allows (runs in a worker thread); never raises an Exception."""
        errors: list[TeacherRequestError] = []

        def attempt() -> tuple[Completion, float]:
            grant = self.rate_limiter.acquire(estimated_tokens) if self.rate_limiter else None
            started = time.perf_counter()
            # Checked here, before it is cached: whatever the backend read, it is stored and read back as it is.
            completion = checked_completion(self.backend.complete(messages, settings), self.backend.identity)
            latency = time.perf_counter() - started
            if grant is not None:
                self.rate_limiter.settle(grant, completion.prompt_tokens + completion.completion_tokens)
            return completion, latency

        try:
            completion, latency = call_with_retries(attempt, self.retry_policy, errors)
        except TeacherRequestError:
            return _Reply(None, 0.0, errors)
        except Exception as error:  # a bug in a backend or its client library: this request fails, not the run
            logger.exception("a request to %s failed unexpectedly", self.backend.identity)
            message = f"{self.backend.identity}: unexpected error: {type(error).__name__}: {error}"
            errors.append(TeacherRequestError(message, "unexpected error"))
            return _Reply(None, 0.0, errors)
        return _Reply(completion, latency, errors)

    def _keep_in_flight(
        self, in_flight: dict[Future, tuple[str, int]], waiting: dict[str, list[int]], results: list,
        rows: list[int], tally: RowTally,
    ) -> None:
        """Waits for the requests in flight and caches their answers, each on its own (one that cannot be
        written keeps no other out)."""
        for future in as_completed(list(in_flight)):
            key, _ = in_flight.pop(future)
            try:
                self._settle(key, future.result(), waiting.pop(key), results, rows, tally)
            except Exception:
                logger.exception("an answer in flight could not be kept")

    def _settle(
        self, key: str, reply: _Reply, indices: list[int], results: list, rows: list[int], tally: RowTally
    ) -> None:
        """Caches and hands out one request's answer."""
        self.stats.request_errors.update(error.kind for error in reply.errors)
        if reply.completion is None:
            attempts, last = len(reply.errors), reply.errors[-1]
            failure = Unanswered(
                f"request failed ({attempts} attempts): {last}", format_refused=last.kind == STRUCTURED_OUTPUT_REFUSED
            )
            self._resolve(indices, failure, results, rows, tally)
            return
        self.cache.put(key, self.backend.identity, reply.completion, reply.latency_s)
        self.stats.requests += 1
        self.stats.cache_hits += len(indices) - 1
        self.stats.tokens_spent += reply.completion.prompt_tokens + reply.completion.completion_tokens
        self._resolve(indices, Answer(reply.completion, reply.latency_s), results, rows, tally)

    def _resolve(
        self, indices: list[int], outcome: Answer | Unanswered, results: list, rows: list[int], tally: RowTally
    ) -> None:
        for index in indices:
            results[index] = outcome
            tally.settle(rows[index], outcome)
        if self.progress is not None:
            self.progress.update(len(indices))
