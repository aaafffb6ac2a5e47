import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from kfp_distill._implementation.jsonl import DatasetError, load_rows, write_jsonl
from kfp_distill._implementation.teacher_reference import parse_teacher_reference
from kfp_distill.components.generate_rationales.backends import PrecomputedBackend, backend_for
from kfp_distill.components.generate_rationales.backends.openai_compatible import OpenAICompatibleBackend
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.generate_rationales.generation import (
    NoUsableAnswersError,
    TeacherUnavailableError,
    generate_rationales,
)
from kfp_distill.components.generate_rationales.prompts import Demonstration, Mode, build_messages
from kfp_distill.components.generate_rationales.report import GenerationReport, to_markdown

SHOTS = [
    {"input_text": "What is 1 + 1?", "rationale": "One and one make two.", "output_text": "2"},
    {"input_text": "What is 3 * 3?", "rationale": "Three threes are nine.", "output_text": "9"},
]
OUTPUT_FIELDS = {
    "input_text", "output_text", "gold_label", "teacher_label", "rationale", "agrees_with_gold",
    "prompt_tokens", "completion_tokens", "latency_s",
}


def write(path, rows):
    write_jsonl(path, rows)
    return str(path)


def run(server, tmp_path, rows, model="stub-model", **options):
    """Runs generation on `rows` against the stub; returns (report, output rows)."""
    cache_path = options.pop("cache_path", tmp_path / "cache.sqlite")
    report = GenerationReport.of(generate_rationales(
        dataset_path=write(tmp_path / "data.jsonl", rows),
        output_path=tmp_path / "out.jsonl",
        report_path=tmp_path / "report.md",
        config=GenerationConfig(f"{server.base_url}#{model}", **options),
        cache_path=cache_path,
    ))
    return report, load_rows(tmp_path / "out.jsonl")


def body_asking(server, question):
    """The one request body whose last message asks `question` (requests run at once, so in any order)."""
    [body] = [body for body in server.requests if body["messages"][-1]["content"].startswith(question)]
    return body


def cached_answers(path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


def test_request_bodies_carry_model_messages_few_shots_and_decoding(stub_server, tmp_path):
    shots = write(tmp_path / "shots.jsonl", SHOTS)
    rows = [{"input_text": "What is 2 + 3?", "output_text": None}, {"input_text": "What is 7 - 4?", "output_text": None}]
    report, outputs = run(stub_server, tmp_path, rows, few_shot_uri=shots, max_new_tokens=64, answer_format="text")
    demonstrations = [Demonstration(**shot) for shot in SHOTS]
    assert len(stub_server.requests) == 2
    for row in rows:
        body = body_asking(stub_server, row["input_text"])
        assert body["model"] == "stub-model"
        assert body["temperature"] == 0.0
        assert body["max_tokens"] == 64 and "response_format" not in body
        assert body["messages"] == build_messages(row["input_text"], Mode.PREDICT, demonstrations=demonstrations)
    assert [o["teacher_label"] for o in outputs] == ["5", "3"]
    assert [o["output_text"] for o in outputs] == ["5", "3"]
    assert outputs[0]["rationale"] == "We compute 2 + 3 = 5."
    assert set(outputs[0]) == OUTPUT_FIELDS
    assert outputs[0]["gold_label"] is None and outputs[0]["agrees_with_gold"] is None
    assert outputs[0]["completion_tokens"] == 11 and outputs[0]["prompt_tokens"] > 0
    assert report.few_shot_count == 2 and "shots.jsonl" in report.few_shot_source
    assert report.answered == 2 and report.requests == 2


def test_api_key_comes_from_the_environment(stub_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "openai-key")
    monkeypatch.setenv("KFP_DISTILL_TEACHER_API_KEY", "teacher-key")
    shots = write(tmp_path / "shots.jsonl", SHOTS)
    run(stub_server, tmp_path, [{"input_text": "What is 1 + 2?", "output_text": None}], few_shot_uri=shots)
    monkeypatch.delenv("KFP_DISTILL_TEACHER_API_KEY")
    run(stub_server, tmp_path, [{"input_text": "What is 1 + 3?", "output_text": None}], few_shot_uri=shots)
    # OpenAI's key is for api.openai.com alone: the loopback teacher never sees it.
    assert stub_server.authorizations == ["Bearer teacher-key", "Bearer none"]


def test_labeled_rows_are_explained_and_unlabeled_rows_predicted(stub_server, tmp_path):
    rows = [
        {"input_text": "What is 2 + 3?", "output_text": "5"},
        {"input_text": "What is 6 * 2?", "output_text": None},
    ]
    report, outputs = run(stub_server, tmp_path, rows, answer_format="text")
    # The labeled row is explained zero-shot as the one demonstration; as its own only demonstration it is
    # left out of its own prompt, which is then that same zero-shot prompt: answered from the cache.
    explained, predicted = (body["messages"] for body in stub_server.requests)
    assert len(explained) == 2 and explained[-1]["content"].startswith("What is 2 + 3?\n\nThe correct answer is: 5\n")
    assert predicted[1:] == [
        {"role": "user", "content": "What is 2 + 3?"},  # the demonstration, in predict format
        {"role": "assistant", "content": "The question asks for 5, step by step it follows. The answer is 5."},
        {"role": "user", "content": "What is 6 * 2?"},
    ]
    assert (report.requests, report.cache_hits) == (2, 1)
    assert [(o["output_text"], o["gold_label"], o["agrees_with_gold"]) for o in outputs] == [
        ("5", "5", True),
        ("12", None, None),
    ]
    assert report.explained == 1 and report.predicted == 1


def test_drawn_demonstrations_leave_each_row_out_of_its_own_prompt(stub_server, tmp_path):
    rows = [{"input_text": f"What is {n} + {n}?", "output_text": str(2 * n)} for n in range(1, 6)]
    rows.append({"input_text": "What is 9 + 9?", "output_text": None})
    report, outputs = run(stub_server, tmp_path, rows)
    assert report.few_shot_count == 4
    demonstration_questions = set()
    for body in stub_server.requests[:4]:
        assert len(body["messages"]) == 2  # explained zero-shot
        demonstration_questions.add(body["messages"][1]["content"].split("\n")[0])
    for body in stub_server.requests[4:]:
        messages = body["messages"]
        question = messages[-1]["content"].split("\n")[0]
        shown = {m["content"].split("\n")[0] for m in messages[1:-1:2]}
        assert question not in shown
        assert shown == demonstration_questions - {question}
    assert len(stub_server.requests) == 4 + len(rows)
    assert len(outputs) == len(rows) and all(o["agrees_with_gold"] in (True, None) for o in outputs)


def test_without_labels_or_few_shot_file_the_teacher_makes_its_own_demonstrations(stub, start_stub_server, tmp_path):
    def disagree_on_nine(body):
        question = body["messages"][-1]["content"]
        if "9 +" in question:  # its samples disagree, so it demonstrates nothing
            return f"Sample {body['seed']} guesses. The answer is {body['seed']}."
        return stub.default_responder(body["messages"])

    server = start_stub_server(body_responder=disagree_on_nine)
    rows = [{"input_text": f"What is {n} + 2?", "output_text": None} for n in (1, 9, 3)]
    report, outputs = run(server, tmp_path, rows)
    made = [body for body in server.requests if body["temperature"] == 0.7]
    assert len(made) == 3 * 3 and {body["seed"] for body in made} == {0, 1, 2}
    assert all(len(body["messages"]) == 2 for body in made)  # asked zero-shot
    assert report.few_shot_count == 2 and "made by the teacher" in report.few_shot_source
    assert [(p.line, p.reason.split(":")[0]) for p in report.demonstration_problems] == [(2, "the samples disagree")]
    asked = {body["messages"][-1]["content"]: body["messages"] for body in server.requests if body["temperature"] == 0}
    shown = lambda question: [m["content"] for m in asked[question][1:-1:2]]  # noqa: E731
    assert shown("What is 9 + 2?") == ["What is 1 + 2?", "What is 3 + 2?"]
    assert shown("What is 1 + 2?") == ["What is 3 + 2?"]  # a row never demonstrates itself
    assert json.loads(asked["What is 9 + 2?"][2]["content"]) == {"rationale": "We compute 1 + 2 = 3.", "answer": "3"}
    assert [o["teacher_label"] for o in outputs] == ["3", "0", "5"]


def test_zero_shot_when_no_self_made_demonstration_agrees(start_stub_server, tmp_path):
    server = start_stub_server(body_responder=lambda body: f"Sample {body['seed']} guesses. The answer is {body['seed']}.")
    report, _ = run(server, tmp_path, [{"input_text": "What is 2 + 2?", "output_text": None}])
    assert [len(body["messages"]) for body in server.requests] == [2, 2, 2, 2]
    assert report.few_shot_count == 0 and "asked zero-shot" in to_markdown(report)


def test_unparseable_answers_are_counted_reported_and_left_out(stub_server, tmp_path):
    rows = [
        {"input_text": "What is 2 + 2?", "output_text": None},
        {"input_text": "NO_ANSWER here", "output_text": None},
        {"input_text": "What is 5 + 1?", "output_text": None},
    ]
    shots = write(tmp_path / "shots.jsonl", SHOTS)
    report, outputs = run(stub_server, tmp_path, rows, few_shot_uri=shots, answer_format="text", min_answered_fraction=0.5)
    assert [o["input_text"] for o in outputs] == ["What is 2 + 2?", "What is 5 + 1?"]
    assert [(p.line, p.reason) for p in report.unparseable] == [(2, "no 'The answer is ...' line")]
    assert report.unparseable[0].snippet.startswith("I keep thinking")
    markdown = (tmp_path / "report.md").read_text()
    assert "## Unparseable answers" in markdown and "| 2 | no 'The answer is ...' line | I keep thinking" in markdown
    assert report.metrics()["unparseable"] == 1 and report.metrics()["answered"] == 2


def test_empty_rationale_is_unparseable(start_stub_server, tmp_path):
    server = start_stub_server(lambda messages: "The answer is 4.")
    rows = [{"input_text": "a", "output_text": None}, {"input_text": "What?", "output_text": None}]
    with pytest.raises(NoUsableAnswersError, match="2 unparseable"):
        run(server, tmp_path, rows)
    assert load_rows(tmp_path / "out.jsonl") == []
    assert "empty rationale" in (tmp_path / "report.md").read_text()


def test_evaluation_set_keeps_gold_labels_and_hides_them_from_the_teacher(stub_server, tmp_path):
    rows = [
        {"input_text": "What is 2 + 3?", "output_text": "5"},
        {"input_text": "What is 4 * 5?", "output_text": "21"},
        {"input_text": "What is 4 * 6?", "output_text": "( 4 * 6 )"},
    ]
    shots = write(tmp_path / "shots.jsonl", SHOTS)
    report, outputs = run(stub_server, tmp_path, rows, use_gold_labels=False, few_shot_uri=shots)
    assert all("correct answer" not in json.dumps(body["messages"]) for body in stub_server.requests)
    for row in rows:
        assert row["output_text"] not in json.dumps(body_asking(stub_server, row["input_text"])["messages"])
    assert [(o["output_text"], o["teacher_label"], o["agrees_with_gold"]) for o in outputs] == [
        ("5", "5", True),
        ("21", "20", False),
        ("( 4 * 6 )", "24", True),
    ]
    assert report.agreement_with_gold == pytest.approx(2 / 3)
    assert report.metrics()["agreement_with_gold"] == pytest.approx(2 / 3)
    assert report.explained == 0 and report.predicted == 3


def test_explanation_contradicting_the_gold_label_is_kept_and_flagged(start_stub_server, tmp_path):
    server = start_stub_server(lambda messages: "Adding gives nine. The answer is 9.")
    shots = write(tmp_path / "shots.jsonl", SHOTS)
    report, outputs = run(
        server, tmp_path, [{"input_text": "What is 2 + 3?", "output_text": "5"}], few_shot_uri=shots, answer_format="text"
    )
    assert outputs == [
        {
            "input_text": "What is 2 + 3?", "output_text": "5", "gold_label": "5", "teacher_label": "9",
            "rationale": "Adding gives nine.", "agrees_with_gold": False, "prompt_tokens": outputs[0]["prompt_tokens"],
            "completion_tokens": 7, "latency_s": outputs[0]["latency_s"],
        }
    ]
    assert report.explanations_contradicting_gold == 1
    assert "contradicts the gold label: 1" in to_markdown(report)


def test_second_run_is_answered_from_the_cache(stub_server, tmp_path):
    rows = [{"input_text": f"What is {n} + 1?", "output_text": None} for n in range(4)]
    shots = write(tmp_path / "shots.jsonl", SHOTS)
    first_report, first = run(stub_server, tmp_path, rows, few_shot_uri=shots)
    assert len(stub_server.requests) == 4 and cached_answers(tmp_path / "cache.sqlite") == 4
    second_report, second = run(stub_server, tmp_path, rows, few_shot_uri=shots)
    assert len(stub_server.requests) == 4
    assert second == first
    assert (second_report.requests, second_report.cache_hits) == (0, 4)
    assert second_report.mean_latency_s == pytest.approx(first_report.mean_latency_s)
    # Other decoding settings or another model are other questions.
    run(stub_server, tmp_path, rows, few_shot_uri=shots, max_new_tokens=100)
    run(stub_server, tmp_path, rows, few_shot_uri=shots, model="other-model")
    run(stub_server, tmp_path, rows, few_shot_uri=shots, answer_format="text")
    assert len(stub_server.requests) == 16


def test_failed_requests_are_counted_and_left_out(stub, start_stub_server, tmp_path):
    def refuse_some(messages):
        if "FAIL" in messages[-1]["content"]:
            raise stub.StubHTTPError(400)
        return stub.default_responder(messages)

    server = start_stub_server(refuse_some)
    rows = [{"input_text": "What is 1 + 1?", "output_text": None}, {"input_text": "FAIL 2 + 2", "output_text": None}]
    shots = write(tmp_path / "shots.jsonl", SHOTS)
    report, outputs = run(server, tmp_path, rows, min_answered_fraction=0.5, few_shot_uri=shots)
    assert [o["input_text"] for o in outputs] == ["What is 1 + 1?"]
    # A 400 is the teacher refusing this request as it is: not retried.
    assert [p.line for p in report.failed] == [2] and "request failed (1 attempts)" in report.failed[0].reason
    assert report.request_errors == {"http 400": 1} and report.metrics()["request_errors"] == 1
    assert report.answered_fraction == 0.5
    assert "## Failed requests" in to_markdown(report)
    # A failure is not cached: the next run asks again.
    run(server, tmp_path, rows, min_answered_fraction=0.5, few_shot_uri=shots)
    assert len(server.requests) == 3


def test_the_run_stops_once_too_few_rows_can_be_answered(stub, start_stub_server, tmp_path):
    def fail_after_three(messages):
        if int(messages[-1]["content"].split()[2]) >= 3:
            raise stub.StubHTTPError(404)
        return stub.default_responder(messages)

    server = start_stub_server(fail_after_three)
    rows = [{"input_text": f"What is {n} + 1?", "output_text": None} for n in range(20)]
    # 80% of 20 rows may lose 4: the fifth failure makes the share unreachable, and nothing more is asked.
    shots = write(tmp_path / "shots.jsonl", SHOTS)
    with pytest.raises(
        TeacherUnavailableError, match="5 of 20 rows got no usable answer .5 with failed requests.*min_answered_fraction=0.8"
    ):
        run(server, tmp_path, rows, min_answered_fraction=0.8, max_concurrency=1, few_shot_uri=shots)
    assert len(server.requests) == 3 + 5
    assert cached_answers(tmp_path / "cache.sqlite") == 3  # kept for the next run
    assert not (tmp_path / "out.jsonl").exists()


def test_bad_dataset_rows_are_named(stub_server, tmp_path):
    rows = [{"input_text": "ok", "output_text": None}, {"input_text": 3, "output_text": None}]
    with pytest.raises(DatasetError) as error:
        run(stub_server, tmp_path, rows)
    assert (error.value.line, error.value.field) == (2, "input_text")
    assert stub_server.requests == []


def test_template_errors_come_before_any_request(stub_server, tmp_path):
    rows = [{"input_text": "What is 1 + 1?", "output_text": None}]
    with pytest.raises(ValueError, match=r"\{question\}"):
        run(stub_server, tmp_path, rows, prompt_template="Q: {question}")
    with pytest.raises(ValueError, match="without their label"):
        run(stub_server, tmp_path, rows, prompt_template="{input_text} {output_text}")
    assert stub_server.requests == []
    run(stub_server, tmp_path, rows, prompt_template="Solve: {input_text}")
    assert stub_server.requests[0]["messages"][-1]["content"] == "Solve: What is 1 + 1?"


def test_precomputed_rationales_need_no_teacher(tmp_path):
    rows = [
        {"input_text": "What is 2 + 3?", "output_text": "5", "rationale": "Two and three make five."},
        {"input_text": "What is 2 + 4?", "output_text": "6", "rationale": "Two and four make seven. The answer is 7."},
        {"input_text": "What is 2 + 5?", "output_text": None, "rationale": "Seven. The answer is 7."},
    ]
    report = GenerationReport.of(generate_rationales(
        write(tmp_path / "data.jsonl", rows), tmp_path / "out.jsonl", tmp_path / "report.md",
        GenerationConfig("precomputed"), cache_path=tmp_path / "cache.sqlite",
    ))
    outputs = load_rows(tmp_path / "out.jsonl")
    assert [(o["output_text"], o["teacher_label"], o["rationale"], o["agrees_with_gold"]) for o in outputs] == [
        ("5", "5", "Two and three make five.", True),
        ("6", "7", "Two and four make seven.", False),
        ("7", "7", "Seven.", None),
    ]
    assert report.requests == 0 and not (tmp_path / "cache.sqlite").exists()
    rows[1].pop("rationale")
    with pytest.raises(DatasetError) as error:
        generate_rationales(
            write(tmp_path / "data.jsonl", rows), tmp_path / "out.jsonl", tmp_path / "report.md",
            GenerationConfig("precomputed"),
        )
    assert (error.value.line, error.value.field) == (2, "rationale")


def test_backend_for_builds_the_backend_of_the_references_kind():
    assert isinstance(backend_for(parse_teacher_reference("precomputed")), PrecomputedBackend)
    endpoint = backend_for(parse_teacher_reference("http://127.0.0.1:8080/v1#qwen"))
    assert isinstance(endpoint, OpenAICompatibleBackend)
    assert (endpoint.base_url, endpoint.model) == ("http://127.0.0.1:8080/v1", "qwen")
    assert endpoint.legacy_identity == "openai-compatible:http://127.0.0.1:8080/v1#qwen"  # the identity: the server says
    with pytest.raises(ValueError, match="GGUF file not found: /no/such/model.gguf"):
        backend_for(parse_teacher_reference("/no/such/model.gguf"))


KILLED_RUN = """
import sys
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.generate_rationales.generation import generate_rationales
generate_rationales(
    sys.argv[1], sys.argv[2], sys.argv[3],
    GenerationConfig(sys.argv[4], few_shot_uri=sys.argv[5], max_concurrency=int(sys.argv[7])),
    cache_path=sys.argv[6],
)
"""


@pytest.mark.parametrize("max_concurrency", [1, 4])
def test_killed_run_resumes_asking_only_what_was_not_answered(stub, start_stub_server, tmp_path, max_concurrency):
    total, answered_before_kill = 8, 3
    release = threading.Event()

    def responder(messages):
        # Questions from the fourth on wait until the client is killed, so exactly three answers can arrive
        # whatever the concurrency.
        if int(messages[-1]["content"].split()[2]) >= answered_before_kill:
            release.wait(timeout=120)
        return stub.default_responder(messages)

    stub_server = start_stub_server(responder)
    rows = [{"input_text": f"What is {n} + 10?", "output_text": None} for n in range(total)]
    arguments = [
        write(tmp_path / "data.jsonl", rows), str(tmp_path / "out.jsonl"), str(tmp_path / "report.md"),
        f"{stub_server.base_url}#stub-model", write(tmp_path / "shots.jsonl", SHOTS), str(tmp_path / "cache.sqlite"),
    ]
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, *arguments, str(max_concurrency)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "NO_PROXY": "127.0.0.1"},
    )
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(sqlite3.OperationalError):  # the cache is not made yet
                if cached_answers(tmp_path / "cache.sqlite") == answered_before_kill:
                    break
            time.sleep(0.05)
        process.kill()
        _, stderr = process.communicate(timeout=60)
    finally:
        release.set()
    assert process.returncode == -signal.SIGKILL, stderr.decode()
    assert not (tmp_path / "out.jsonl").exists()
    cached = cached_answers(tmp_path / "cache.sqlite")
    assert cached == answered_before_kill  # every answer that arrived was committed, none that did not

    asked_before = len(stub_server.requests)
    report = GenerationReport.of(generate_rationales(
        *arguments[:3], GenerationConfig(arguments[3], few_shot_uri=arguments[4]), cache_path=arguments[5]
    ))
    assert len(stub_server.requests) - asked_before == total - cached
    assert (report.requests, report.cache_hits, report.answered) == (total - cached, cached, total)
    assert cached_answers(tmp_path / "cache.sqlite") == total
    assert [o["teacher_label"] for o in load_rows(tmp_path / "out.jsonl")] == [str(n + 10) for n in range(total)]


def test_self_made_demonstrations_take_each_class_up_to_its_share(stub, start_stub_server, tmp_path):
    """A teacher that favours one class agrees with itself on it most: its examples must not all be of it."""
    instruction = "Classify into one of the following classes: [entailment, neutral, contradiction] Text: {}"

    def mostly_neutral(body):
        text = body["messages"][-1]["content"]
        label = "entailment" if "sure" in text else "contradiction" if "never" in text else "neutral"
        return f"The premise and the hypothesis are compared closely here. The answer is {label}."

    server = start_stub_server(body_responder=mostly_neutral)
    rows = [{"input_text": instruction.format(f"pair {n}"), "output_text": None} for n in range(16)]
    rows += [{"input_text": instruction.format("a sure pair"), "output_text": None},
             {"input_text": instruction.format("a pair never seen"), "output_text": None}]
    report, _ = run(server, tmp_path, rows, probe_rows=0)

    shown = {  # every example shown in any row's prompt: the demonstrations
        (body["messages"][i]["content"], json.loads(body["messages"][i + 1]["content"])["answer"])
        for body in server.requests if body["temperature"] == 0 for i in range(1, len(body["messages"]) - 1, 2)
    }
    assert sorted(answer for _, answer in shown) == ["contradiction", "entailment", "neutral"]
    drawn = {body["messages"][-1]["content"] for body in server.requests if body["temperature"] == 0.7}
    assert {instruction.format("a sure pair"), instruction.format("a pair never seen")} <= drawn
    assert report.few_shot_count == 3 and report.self_made_candidates == len(drawn) > 6  # more than one draw
    assert f"answered {len(drawn)} rows 3 times each" in report.few_shot_source


def test_extractive_answers_that_are_not_spans_are_counted_and_left_out_or_mapped(start_stub_server, tmp_path):
    teacher_says = {  # per question: what the teacher answers
        "How many parishes": "64 parishes",  # a span
        "What is the capital": "beijing city",  # not a span; "Beijing" is the nearest
        "Who won": "It is not stated",  # no span near it
    }
    server = start_stub_server(lambda messages: "The passage says so. The answer is " + next(
        answer for question, answer in teacher_says.items() if question in messages[-1]["content"]
    ) + ".")
    rows = [
        {"input_text": "question: How many parishes are there? context: Louisiana has 64 parishes.", "output_text": None},
        # Without a gold label the answer would be the row's target: the row is left out.
        {"input_text": "question: What is the capital? context: Beijing is the capital of China.", "output_text": None},
        {"input_text": "question: Who won? context: Ann met Bo at noon.", "output_text": None},
        # With one (an evaluation row, say) the answer is scored: mapped to the nearest span, or kept as given
        # when no word of it is in the context.
        {"input_text": "question: What is the capital city? context: Beijing is the capital of China.",
         "output_text": "Beijing"},
        {"input_text": "question: Who won the game? context: Ann met Bo at noon.", "output_text": "Ann"},
    ]
    shots = write(tmp_path / "shots.jsonl", [
        {"input_text": "question: Who? context: Ann came.", "rationale": "Ann is named.", "output_text": "Ann"},
    ])

    report, outputs = run(server, tmp_path, rows, few_shot_uri=shots, answer_format="text", use_gold_labels=False)

    assert report.task_type == "extractive_qa"
    assert [(o["input_text"][:26], o["teacher_label"], o["agrees_with_gold"]) for o in outputs] == [
        ("question: How many parishe", "64 parishes", None),
        ("question: What is the capi", "Beijing", True),
        ("question: Who won the game", "It is not stated", False),
    ]
    assert [(p.line, p.reason, p.snippet) for p in report.not_spans] == [
        (2, "left out: not a span of its context", "beijing city"),
        (3, "left out: not a span of its context", "It is not stated"),
        (4, "mapped to the nearest span of its context: 'Beijing'", "beijing city"),
        (5, "kept as given: no word of it is in its context", "It is not stated"),
    ]
    # Left out for what they say, not for failing to answer: min_answered_fraction (0.9) is met.
    assert report.metrics()["answers_not_spans"] == 4 and report.metrics()["answered"] == 5
    markdown = (tmp_path / "report.md").read_text()
    assert "- Extractive answers that are not spans of their context: 4 (2 left out of the output, 1 mapped" in markdown
    assert "## Extractive answers that are not spans of their context" in markdown
    assert "| 2 | left out: not a span of its context | beijing city |" in markdown
