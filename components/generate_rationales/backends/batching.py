"""Micro-batching: requests that arrive from many threads are answered by one batched call.

The component asks the teacher from a thread pool, one request per thread. An in-process model answers
a batch of prompts in about the time of one, so a single worker thread gathers the requests waiting at
once (up to a batch size), runs them together, and hands each thread its own answer.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from typing import Callable, Generic, Hashable, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")


class MicroBatcher(Generic[Request, Result]):
    """Groups concurrent `submit` calls into batches for `run_batch`.

    A batch holds requests of one group only (e.g. the same decoding settings), in arrival order. The
    worker starts a batch as soon as it is full, or `max_wait_s` after its first request arrived.

    Args:
        run_batch: Answers a batch: one result per request, in order. What it raises is raised to every
            caller of the batch.
        max_batch_size: The most requests in one batch.
        max_wait_s: How long the first request of a batch waits for others to join it.
        group_of: The group a request belongs to; requests of different groups never share a batch.
        idle_exit_s: The worker thread ends after so long without requests (the next request starts
            another), so an unused batcher holds no thread and no reference to what `run_batch` uses.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Request]], list[Result]],
        max_batch_size: int = 8,
        max_wait_s: float = 0.02,
        group_of: Callable[[Request], Hashable] = lambda request: None,
        idle_exit_s: float = 5.0,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.run_batch, self.max_batch_size, self.max_wait_s = run_batch, max_batch_size, max_wait_s
        self.group_of, self.idle_exit_s = group_of, idle_exit_s
        self.batch_sizes: list[int] = []  # one entry per batch run, for reports and tests
        self._pending: collections.deque[tuple[Request, Future, float]] = collections.deque()
        self._condition = threading.Condition()
        self._worker: threading.Thread | None = None

    def submit(self, request: Request) -> Result:
        """Answers one request (blocks until its batch has run)."""
        future: Future = Future()
        with self._condition:
            if self._worker is None:
                # A daemon: a worker waiting for requests must not keep the process alive.
                self._worker = threading.Thread(target=self._work, name="micro-batcher", daemon=True)
                self._worker.start()
            self._pending.append((request, future, time.monotonic()))
            self._condition.notify()
        return future.result()

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                results = self.run_batch([request for request, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} requests")
            except Exception as error:  # every caller of the batch learns why it failed
                for _, future in batch:
                    future.set_exception(error)
                continue
            self.batch_sizes.append(len(batch))
            for (_, future), result in zip(batch, results):
                future.set_result(result)

    def _next_batch(self) -> list[tuple[Request, Future]] | None:
        """Waits for a full batch of the oldest request's group, or for that request's wait to end; None
        when no request came for `idle_exit_s` (the worker then ends)."""
        with self._condition:
            while True:
                if self._pending:
                    first_request, _, arrived = self._pending[0]
                    group = self.group_of(first_request)
                    members = [item for item in self._pending if self.group_of(item[0]) == group]
                    remaining_s = arrived + self.max_wait_s - time.monotonic()
                    if len(members) >= self.max_batch_size or remaining_s <= 0:
                        batch = members[: self.max_batch_size]
                        taken = {id(item) for item in batch}
                        self._pending = collections.deque(item for item in self._pending if id(item) not in taken)
                        return [(request, future) for request, future, _ in batch]
                    self._condition.wait(remaining_s)
                elif not self._condition.wait(self.idle_exit_s) and not self._pending:
                    self._worker = None
                    return None
