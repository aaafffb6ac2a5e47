"""A teacher that answers badly: every field of its response is checked before the answer is cached, a request
that goes wrong in any way loses no other answer, and nothing that crashes a run is ever read back from the
cache."""

import json
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfp_distill._implementation.jsonl import load_rows, write_jsonl
from kfp_distill._implementation.scripts import load_module
from kfp_distill.components.generate_rationales.asking import Answer, Teacher, Unanswered
from kfp_distill.components.generate_rationales.backends.base import DecodingSettings, TeacherRequestError
from kfp_distill.components.generate_rationales.backends.openai_compatible import (
    OpenAICompatibleBackend,
    _refuses_the_format,
    read_chat_completion,
)
from kfp_distill.components.generate_rationales.cache import AnswerCache
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.generate_rationales.generation import generate_rationales
from kfp_distill.components.generate_rationales.report import GenerationReport

RESPONSES = load_module("generate_rationales_teacher_responses", Path(__file__).with_name("teacher_responses.py"))
any_json, maybe, or_any, token_counts = RESPONSES.any_json, RESPONSES.maybe, RESPONSES.or_any, RESPONSES.token_counts
assert_cached_and_read_back = RESPONSES.assert_cached_and_read_back
assert_linear_time = load_module(
    "kfp_distill_tests_linear_time", Path(__file__).resolve().parents[3] / "tests" / "linear_time.py"
).assert_linear_time
SHOTS = [{"input_text": "What is 1 + 1?", "rationale": "One and one make two.", "output_text": "2"}]


def sums(count):
    return [{"input_text": f"What is {n} + 7?", "output_text": None} for n in range(count)]


def question(n):
    return [{"role": "user", "content": f"What is {n} + 7?"}]


def run(server, tmp_path, rows, **options):
    """Generation against the stub, with a few-shot file, so that every request asks about a row."""
    write_jsonl(tmp_path / "data.jsonl", rows)
    write_jsonl(tmp_path / "shots.jsonl", SHOTS)
    report = GenerationReport.of(generate_rationales(
        tmp_path / "data.jsonl", tmp_path / "out.jsonl", tmp_path / "report.md",
        GenerationConfig(f"{server.base_url}#stub", few_shot_uri=str(tmp_path / "shots.jsonl"), answer_format="text",
                         **options),
        cache_path=tmp_path / "cache.sqlite",
    ))
    return report, load_rows(tmp_path / "out.jsonl")


def cached_answers(tmp_path) -> int:
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        return len(cache)


def test_a_malformed_usage_fails_its_request_and_odd_but_readable_fields_are_read(start_stub_server, tmp_path):
    def answer_badly(body, payload):
        asked = body["messages"][-1]["content"]
        if "3 + 7" in asked:
            payload["usage"]["prompt_tokens"] = "abc"
        elif "5 + 7" in asked:  # content parts, as some servers send them
            text = payload["choices"][0]["message"]["content"]
            payload["choices"][0]["message"]["content"] = [{"type": "text", "text": text}]
        elif "7 + 7" in asked:  # a server that does not count
            payload["usage"]["prompt_tokens"] = None
        return payload

    server = start_stub_server(edit_reply=answer_badly)
    for attempt in range(2):  # the re-run asks the failed row again, and reads the others back from the cache
        report, outputs = run(server, tmp_path, sums(10))
        assert [problem.line for problem in report.failed] == [4]
        assert "bad response" in report.failed[0].reason and "usage.prompt_tokens" in report.failed[0].reason
        assert [row["teacher_label"] for row in outputs] == [str(n + 7) for n in range(10) if n != 3]
        assert outputs[6]["prompt_tokens"] == 0 and outputs[4]["rationale"] == "We compute 5 + 7 = 12."
        assert cached_answers(tmp_path) == 9
    assert len(server.requests) == 11 and report.request_errors == {"bad response": 1}


def test_a_cached_answer_whose_fields_do_not_read_is_asked_again_not_a_crash(stub_server, tmp_path):
    run(stub_server, tmp_path, sums(3))
    # An earlier version cached whatever the server said (SQLite keeps a string in an INTEGER column).
    with sqlite3.connect(tmp_path / "cache.sqlite") as connection:
        connection.execute("UPDATE answers SET prompt_tokens = 'abc' WHERE completion LIKE '%1 + 7%'")
    report, outputs = run(stub_server, tmp_path, sums(3))
    assert len(outputs) == 3 and (report.requests, report.cache_hits) == (1, 2)
    assert len(stub_server.requests) == 4


def test_an_unexpected_error_in_a_request_loses_no_answer_in_flight(stub, start_stub_server, tmp_path):
    def slowly(messages):
        time.sleep(0.3)
        return stub.default_responder(messages)

    class BuggyBackend(OpenAICompatibleBackend):
        def complete(self, messages, settings):
            if "1 + 7" in messages[-1]["content"]:
                raise ZeroDivisionError("a bug in a client library")
            return super().complete(messages, settings)

    server = start_stub_server(slowly)
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        teacher = Teacher(BuggyBackend(server.teacher()), cache, DecodingSettings(), max_concurrency=4)
        answers = teacher.ask_all([question(n) for n in range(4)])
        assert len(cache) == 3
    assert [type(answer) for answer in answers] == [Answer, Unanswered, Answer, Answer]
    assert "ZeroDivisionError: a bug in a client library" in answers[1].reason
    assert dict(teacher.stats.request_errors) == {"unexpected error": 1}


def test_an_error_while_caching_keeps_the_answers_still_in_flight(stub, start_stub_server, tmp_path, monkeypatch):
    def first_at_once(messages):
        if "0 + 7" not in messages[-1]["content"]:
            time.sleep(0.3)
        return stub.default_responder(messages)

    put = AnswerCache.put
    failures = []

    def put_fails_once(self, *arguments):
        if not failures:
            failures.append(arguments[0])
            raise sqlite3.OperationalError("disk I/O error")
        put(self, *arguments)

    monkeypatch.setattr(AnswerCache, "put", put_fails_once)
    server = start_stub_server(first_at_once)
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        teacher = Teacher(OpenAICompatibleBackend(server.teacher()), cache, DecodingSettings(), 4)
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            teacher.ask_all([question(n) for n in range(4)])
        assert len(cache) == 3  # the three in flight when the first answer could not be written
    assert len(server.requests) == 4


# Property-based tests of the response reader: whatever body a server sends, the answer is either checked and
# cached, readable ever after, or the request fails with a TeacherRequestError; nothing else.
text_parts = or_any(
    st.fixed_dictionaries({"type": or_any(st.sampled_from(["text", "image_url"])), "text": or_any(st.text())})
)
messages = or_any(
    st.fixed_dictionaries({"role": st.just("assistant"), "content": or_any(st.text() | st.lists(text_parts, max_size=3))})
)
finish_reasons = or_any(st.sampled_from(["stop", "length"]))
choices = or_any(
    st.lists(or_any(st.fixed_dictionaries({"message": messages}, optional={"finish_reason": finish_reasons})), max_size=2)
)
usages = or_any(maybe(prompt_tokens=token_counts, completion_tokens=token_counts))
chat_completions = st.fixed_dictionaries({"choices": choices}, optional={"usage": usages, "model": any_json})
bodies = or_any(chat_completions).map(lambda body: json.dumps(body).encode()) | st.binary(max_size=40)


def test_any_body_reads_as_a_checked_answer_or_a_teacher_request_error(tmp_path):
    @settings(max_examples=400, deadline=None)
    @given(bodies)
    def read(body):
        try:
            completion = read_chat_completion(body, "teacher")
        except TeacherRequestError as error:
            assert error.kind in ("bad response", "error")
            return
        assert_cached_and_read_back(completion, tmp_path)

    read()


def test_any_body_from_a_server_reads_as_a_checked_answer_or_a_teacher_request_error(start_stub_server, tmp_path):
    reply = {}
    server = start_stub_server(edit_reply=lambda body, payload: reply["body"])
    backend = OpenAICompatibleBackend(server.teacher())

    @settings(max_examples=100, deadline=None)
    @given(bodies)
    def read(body):
        reply["body"] = body
        try:
            completion = backend.complete(question(1), DecodingSettings())
        except TeacherRequestError:
            return
        assert_cached_and_read_back(completion, tmp_path)

    read()


@pytest.mark.parametrize("status", ["http 400", "http 500"])
def test_a_servers_long_error_message_is_read_in_linear_time(status):
    assert_linear_time(
        lambda message: _refuses_the_format(TeacherRequestError(message, status)), lambda n: ("validation error " * n)[:n]
    )


def test_a_500_refuses_the_format_when_it_is_the_validation_error_of_the_response_format():
    def refuses(message):
        return _refuses_the_format(TeacherRequestError(message, "http 500"))

    assert refuses("1 validation error for Request\nbody -> response_format\n  extra fields not permitted")
    assert not refuses("validation errorresponse_format") and not refuses("response_format: validation error")
