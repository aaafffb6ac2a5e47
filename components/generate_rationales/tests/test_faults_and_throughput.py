import collections
import threading
import time
import types

import pytest

from kfp_distill._implementation.jsonl import load_rows, write_jsonl
from kfp_distill._implementation.teacher_reference import parse_teacher_reference
from kfp_distill.components.generate_rationales import rate_limit
from kfp_distill.components.generate_rationales.asking import Teacher
from kfp_distill.components.generate_rationales.backends.base import (
    Completion,
    DecodingSettings,
    TeacherRequestError,
)
from kfp_distill.components.generate_rationales.backends.openai_compatible import OpenAICompatibleBackend
from kfp_distill.components.generate_rationales.cache import AnswerCache
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.generate_rationales.generation import generate_rationales
from kfp_distill.components.generate_rationales.report import GenerationReport

QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]
SHOTS = [{"input_text": "What is 1 + 1?", "rationale": "One and one make two.", "output_text": "2"}]


def run(server, tmp_path, rows, model="stub-model", **options):
    """Generation against the stub, with a few-shot file, so that every request asks about a row."""
    tmp_path.mkdir(exist_ok=True)
    write_jsonl(tmp_path / "data.jsonl", rows)
    write_jsonl(tmp_path / "shots.jsonl", SHOTS)
    report = GenerationReport.of(generate_rationales(
        tmp_path / "data.jsonl", tmp_path / "out.jsonl", tmp_path / "report.md",
        GenerationConfig(f"{server.base_url}#{model}", few_shot_uri=str(tmp_path / "shots.jsonl"), **options),
        cache_path=tmp_path / "cache.sqlite",
    ))
    return report, load_rows(tmp_path / "out.jsonl")


def sums(count):
    return [{"input_text": f"What is {n} + 7?", "output_text": None} for n in range(count)]


@pytest.mark.parametrize(
    "fault, kind, retry_after_s",
    [("429", "http 429", 1.0), ("500", "http 500", None), ("timeout", "timeout", None),
     ("truncated", "connection", None), ("reset", "connection", None)],
)
def test_each_fault_is_a_retryable_error_of_its_kind(start_stub_server, fault, kind, retry_after_s):
    server = start_stub_server(fault_plan={QUESTION[0]["content"]: [fault]}, timeout_sleep_s=1.0)
    backend = OpenAICompatibleBackend(server.teacher("stub-model"), timeout_s=0.5)
    with pytest.raises(TeacherRequestError) as raised:
        backend.complete(QUESTION, DecodingSettings())
    assert (raised.value.kind, raised.value.retryable, raised.value.retry_after_s) == (kind, True, retry_after_s)
    assert backend.complete(QUESTION, DecodingSettings()).text.endswith("The answer is 4.")


def test_a_refused_request_is_not_retryable(stub, start_stub_server):
    def refuse(messages):
        raise stub.StubHTTPError(404)

    backend = OpenAICompatibleBackend(start_stub_server(refuse).teacher("stub-model"))
    with pytest.raises(TeacherRequestError) as raised:
        backend.complete(QUESTION, DecodingSettings())
    assert (raised.value.kind, raised.value.retryable) == ("http 404", False)


def test_faulty_server_every_row_is_answered_exactly_once(stub, start_stub_server, tmp_path, monkeypatch):
    rows = sums(30)
    plan = stub.seeded_fault_plan([row["input_text"] for row in rows], rate=0.2, seed=3)
    assert {fault for faults in plan.values() for fault in faults} == set(stub.FAULT_KINDS)
    # The client gives up on an attempt after 1 s (a margin for a busy machine); the timeout fault sleeps 1.5 s.
    server = start_stub_server(fault_plan=plan, retry_after="1", timeout_sleep_s=1.5)
    writes = collections.Counter()
    put = AnswerCache.put
    monkeypatch.setattr(AnswerCache, "put", lambda self, key, *rest: (writes.update([key]), put(self, key, *rest))[1])

    report, outputs = run(server, tmp_path, rows, request_timeout_s=1.0, max_concurrency=4)

    assert [o["teacher_label"] for o in outputs] == [str(n + 7) for n in range(30)]
    assert report.failed == () and report.answered == 30 and report.answered_fraction == 1.0
    assert len(writes) == 30 and set(writes.values()) == {1}  # each answer written to the cache once
    assert len(server.answered) == 30 and set(server.answered.values()) == {1}  # and answered in full once
    injected = collections.Counter(server.faults_injected)
    assert sum(injected.values()) == 7 == sum(len(faults) for faults in plan.values())
    assert report.request_errors == {
        "http 429": injected["429"], "http 500": injected["500"], "timeout": injected["timeout"],
        "connection": injected["truncated"] + injected["reset"],
    }
    assert report.metrics()["request_errors"] == 7 and report.requests == 30
    assert "Request errors (retried or not): 7" in (tmp_path / "report.md").read_text()


def test_requests_overlap_up_to_the_limit_and_rows_keep_their_order(stub, start_stub_server, tmp_path):
    def later_rows_answer_sooner(messages):
        time.sleep(0.3 - 0.02 * int(messages[-1]["content"].split()[2]))
        return stub.default_responder(messages)

    server = start_stub_server(later_rows_answer_sooner)
    report, outputs = run(server, tmp_path, sums(12), max_concurrency=4)
    assert 1 < server.max_in_flight <= 4
    assert [o["input_text"] for o in outputs] == [f"What is {n} + 7?" for n in range(12)]
    assert [o["teacher_label"] for o in outputs] == [str(n + 7) for n in range(12)]


class _SlowBackend:
    """A backend that cannot serve two requests at once, and would notice."""

    identity = "slow"
    supports_concurrency = False

    def __init__(self):
        self.calls, self.busy, self.overlapped = [], threading.Lock(), False

    def complete(self, messages, settings):
        if not self.busy.acquire(blocking=False):
            self.overlapped = True
            return Completion("", 0, 0)
        try:
            time.sleep(0.01)
            self.calls.append(messages[-1]["content"])
            return Completion(f"Because. The answer is {messages[-1]['content']}.", 3, 4)
        finally:
            self.busy.release()


def test_a_backend_without_concurrency_is_asked_one_at_a_time_and_duplicates_once(tmp_path):
    backend = _SlowBackend()
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        teacher = Teacher(backend, cache, DecodingSettings(), max_concurrency=8)
        questions = ["a", "b", "a", "c", "b"]
        answers = teacher.ask_all([[{"role": "user", "content": q}] for q in questions])
    assert teacher.concurrency == 1 and not backend.overlapped
    assert backend.calls == ["a", "b", "c"]
    assert [answer.completion.text[-2] for answer in answers] == questions
    assert (teacher.stats.requests, teacher.stats.cache_hits, teacher.stats.tokens_spent) == (3, 2, 21)


def test_budget_stops_asking_and_keeps_what_was_answered(stub, start_stub_server, tmp_path):
    rows = sums(6)
    measured, _ = run(start_stub_server(), tmp_path / "one", rows[:1])  # every row's request is as long
    tokens_per_request = measured.tokens_spent_now
    server = start_stub_server()
    report, outputs = run(server, tmp_path, rows, max_concurrency=1, max_total_tokens=tokens_per_request + 1)

    # The second request starts with one token of budget left; after it, nothing more is asked.
    assert len(server.requests) == 2 and [o["teacher_label"] for o in outputs] == ["7", "8"]
    assert [(p.line, p.reason) for p in report.not_asked] == [(n, "not asked: budget reached") for n in range(3, 7)]
    assert report.tokens_spent_now == 2 * tokens_per_request and report.answered_fraction == 1.0
    assert report.metrics()["not_asked"] == 4
    markdown = (tmp_path / "report.md").read_text()
    assert "## Not asked" in markdown and f"(cap {tokens_per_request + 1})" in markdown

    # A later run with budget left asks only the rest: answers from the cache cost nothing.
    report, outputs = run(server, tmp_path, rows, max_concurrency=1, max_total_tokens=10 * tokens_per_request)
    assert (report.requests, report.cache_hits, len(outputs), report.not_asked) == (4, 2, 6, ())


def test_a_teacher_with_a_known_price_gets_an_estimated_cost(stub_server, tmp_path):
    report, _ = run(stub_server, tmp_path, sums(3), model="gpt-4o-mini")
    expected = (report.prompt_tokens * 0.15 + report.completion_tokens * 0.60) / 1_000_000
    assert report.metrics()["estimated_cost_usd"] == pytest.approx(expected) and expected > 0
    assert f"Estimated cost: ${expected:.4f}" in (tmp_path / "report.md").read_text()
    report, _ = run(stub_server, tmp_path, sums(3), model="my-local-model")
    assert "estimated_cost_usd" not in report.metrics()
    assert "Estimated cost: n/a" in (tmp_path / "report.md").read_text()


class FakeTime:
    """A clock that only moves when someone sleeps (thread-safe)."""

    def __init__(self):
        self.now, self.lock = 0.0, threading.Lock()

    def monotonic(self):
        with self.lock:
            return self.now

    def sleep(self, seconds):
        with self.lock:
            self.now += seconds


def test_requests_per_minute_are_respected(stub, start_stub_server, tmp_path, monkeypatch):
    clock = FakeTime()
    monkeypatch.setattr(rate_limit, "time", types.SimpleNamespace(monotonic=clock.monotonic, sleep=clock.sleep))
    arrivals = []

    def record_arrival(messages):
        arrivals.append(clock.monotonic())
        return stub.default_responder(messages)

    server = start_stub_server(record_arrival)
    # One request at a time, so each arrives at the time it was let through.
    report, outputs = run(server, tmp_path, sums(5), requests_per_minute=2, max_concurrency=1)
    assert len(outputs) == 5
    assert arrivals == [0.0, 0.0, 60.0, 60.0, 120.0]
    assert report.rate_limit_wait_s == pytest.approx(120.0)


def test_rate_limiter_window_holds_at_most_the_limit_across_threads():
    clock = FakeTime()
    limiter = rate_limit.RateLimiter(requests_per_minute=3, clock=clock.monotonic, sleep=clock.sleep)
    grants = []

    def ask_three_times():
        for _ in range(3):
            grants.append(limiter.acquire(10).started)

    threads = [threading.Thread(target=ask_three_times) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    grants.sort()
    assert len(grants) == 12
    assert all(sum(start <= t < start + 60 for t in grants) <= 3 for start in grants)


def test_tokens_per_minute_count_the_estimate_until_the_server_reports_usage():
    clock = FakeTime()
    limiter = rate_limit.RateLimiter(tokens_per_minute=100, clock=clock.monotonic, sleep=clock.sleep)
    first = limiter.acquire(60)
    limiter.settle(first, 30)  # the server counted 30
    assert limiter.acquire(60).started == 0.0  # 30 + 60 fit
    assert limiter.acquire(60).started == 60.0  # 90 + 60 do not: wait for the window to pass
    assert limiter.acquire(500).started == 120.0  # too big for any window: it goes alone
    assert rate_limit.estimate_tokens([{"role": "user", "content": "x" * 10}], 5) == 3 + 5


def test_a_password_in_the_base_url_reaches_no_report_cache_or_error(stub, start_stub_server, tmp_path):
    secret = "hunter2-in-the-url"
    server = start_stub_server(fault_plan={"What is 1 + 7?": ["500"]}, retry_after="0")
    with_password = types.SimpleNamespace(base_url=server.base_url.replace("http://", f"http://teacher:{secret}@"))

    report, _ = run(with_password, tmp_path, sums(3))

    assert report.answered == 3 and report.request_errors == {"http 500": 1}
    assert report.teacher == "openai-compatible#stub-model"  # the model, not its address (nor the password)
    for written in ("report.md", "out.jsonl", "cache.sqlite"):
        assert secret.encode() not in (tmp_path / written).read_bytes(), written
    closed_port = f"http://teacher:{secret}@127.0.0.1:9/v1#stub-model"  # nothing listens on the discard port
    for ask in (lambda backend: backend.complete(QUESTION, DecodingSettings()), lambda backend: backend.identity):
        with pytest.raises(TeacherRequestError) as raised:
            ask(OpenAICompatibleBackend(parse_teacher_reference(closed_port), timeout_s=1))
        assert secret not in str(raised.value) and "//teacher" not in str(raised.value) and "***@" in str(raised.value)
