import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kfp_distill._implementation.teacher_reference import parse_teacher_reference
from kfp_distill.components.generate_rationales.asking import Answer, Teacher
from kfp_distill.components.generate_rationales.backends.base import (
    DecodingSettings,
    TeacherRequestError,
    parse_retry_after,
)
from kfp_distill.components.generate_rationales.backends.openai_compatible import OpenAICompatibleBackend
from kfp_distill.components.generate_rationales.cache import AnswerCache
from kfp_distill.components.generate_rationales.pricing import estimated_cost_usd, price_per_million_tokens
from kfp_distill.components.generate_rationales.retry import RetryPolicy, call_with_retries


def failing_then(outcomes):
    """A call that raises the errors in `outcomes` in turn, and returns the first non-error."""
    remaining = list(outcomes)

    def call():
        outcome = remaining.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return call


def test_backoff_is_full_jitter_under_a_doubling_ceiling():
    policy, rng = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0), random.Random(0)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)]:
        delays = [policy.delay_s(failures, None, rng) for _ in range(200)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        assert max(delays) > 0.8 * ceiling and min(delays) < 0.2 * ceiling


def test_retry_after_is_honoured_up_to_a_cap():
    policy = RetryPolicy(max_retry_after_s=30.0)
    assert policy.delay_s(1, 7.0) == 7.0
    assert policy.delay_s(1, 0.0) == 0.0
    assert policy.delay_s(1, 3600.0) == 30.0


def test_retryable_errors_are_retried_with_their_waits():
    sleeps, errors = [], []
    call = failing_then([
        TeacherRequestError("rate limited", "http 429", retryable=True, retry_after_s=2.0),
        TeacherRequestError("server error", "http 500", retryable=True),
        "answer",
    ])
    policy = RetryPolicy(base_delay_s=1.0)
    assert call_with_retries(call, policy, errors, sleep=sleeps.append) == "answer"
    assert [error.kind for error in errors] == ["http 429", "http 500"]
    assert sleeps[0] == 2.0 and 0.0 <= sleeps[1] <= 2.0


def test_attempts_are_bounded_and_refusals_not_retried():
    errors = []
    call = failing_then([TeacherRequestError("down", "connection", retryable=True)] * 3)
    with pytest.raises(TeacherRequestError, match="down"):
        call_with_retries(call, RetryPolicy(max_attempts=3), errors, sleep=lambda s: None)
    assert len(errors) == 3
    errors = []
    call = failing_then([TeacherRequestError("no such model", "http 404"), "never reached"])
    with pytest.raises(TeacherRequestError, match="no such model"):
        call_with_retries(call, RetryPolicy(), errors, sleep=lambda s: None)
    assert len(errors) == 1
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_known_models_are_priced_by_their_longest_name():
    assert price_per_million_tokens("gpt-4o") == (2.50, 10.00)
    assert price_per_million_tokens("gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert price_per_million_tokens("google/gemini-2.5-flash-lite") == (0.10, 0.40)
    assert price_per_million_tokens("qwen2.5-7b-instruct") is None
    openai_teacher = parse_teacher_reference("https://api.openai.com/v1#gpt-4o-mini")
    assert estimated_cost_usd(openai_teacher, 2_000_000, 1_000_000) == pytest.approx(0.30 + 0.60)
    vertex_teacher = parse_teacher_reference("vertex:publishers/google/models/gemini-2.5-flash")
    assert estimated_cost_usd(vertex_teacher, 1_000_000, 0) == pytest.approx(0.30)
    # A model run here is not billed by the token, whatever its name.
    for local in ("hf:gpt-4o-mini", "smollm2-135m-instruct", "/models/gpt-4o.gguf"):
        assert estimated_cost_usd(parse_teacher_reference(local), 1000, 1000) is None, local


@given(st.floats(allow_nan=True, allow_infinity=True) | st.none(), st.integers(1, 100))
def test_any_retry_after_makes_a_wait_time_sleep_takes(retry_after_s, failures):
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0, max_retry_after_s=30.0)
    delay = policy.delay_s(failures, retry_after_s, random.Random(0))
    assert 0.0 <= delay <= 30.0
    if retry_after_s is None or not math.isfinite(retry_after_s):  # no wait the server meant: the backoff's
        assert delay <= 8.0


@pytest.mark.parametrize("header", ["nan", "inf", "-inf", "-5", "1e999", "soon"])
def test_a_retry_after_that_is_no_number_of_seconds_is_left_to_the_backoff(header):
    assert parse_retry_after(header) is None


def test_a_429_with_retry_after_nan_is_retried_not_a_crash(start_stub_server, tmp_path):
    server = start_stub_server(fault_plan={"What is 2 + 2?": ["429"]}, retry_after="nan")
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        teacher = Teacher(
            OpenAICompatibleBackend(server.teacher()), cache, DecodingSettings(),
            retry_policy=RetryPolicy(base_delay_s=0.01),
        )
        (answer,) = teacher.ask_all([[{"role": "user", "content": "What is 2 + 2?"}]])
    assert isinstance(answer, Answer) and answer.completion.text.endswith("The answer is 4.")
    assert dict(teacher.stats.request_errors) == {"http 429": 1}
