"""Answers that parse by construction: JSON held to a schema, classes from where users put them, the probe
that stops a run whose teacher cannot answer, and counts that agree with each other."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfp_distill._implementation.jsonl import load_rows, write_jsonl
from kfp_distill._implementation.scripts import load_module
from kfp_distill.components.generate_rationales.answer_format import (
    answer_schema,
    parse_answer,
    render_answer,
    restates_answer,
    unusable_reason,
)
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.generate_rationales.generation import (
    TeacherAnswersUnusableError,
    TeacherUnavailableError,
    generate_rationales,
)
from kfp_distill.components.generate_rationales.report import GenerationReport
from kfp_distill.components.generate_rationales.task_profile import instruction_classes, task_profile

assert_linear_time = load_module(
    "kfp_distill_tests_linear_time", Path(__file__).resolve().parents[3] / "tests" / "linear_time.py"
).assert_linear_time
SEED_FORMAT = "Classify the following text into one of the following classes: [business, entertainment] Text: {}"
NEWS = ["Oil prices fall", "New film tops the box office", "Shares rise", "Singer announces a tour"] * 3


def run(server, tmp_path, rows, **options):
    write_jsonl(tmp_path / "data.jsonl", rows)
    report = GenerationReport.of(generate_rationales(
        tmp_path / "data.jsonl", tmp_path / "out.jsonl", tmp_path / "report.md",
        GenerationConfig(f"{server.base_url}#stub", **options), cache_path=tmp_path / "cache.sqlite",
    ))
    return report, load_rows(tmp_path / "out.jsonl")


def news_answer(messages):
    text = messages[-1]["content"]
    label = "entertainment" if any(word in text for word in ("film", "Singer")) else "business"
    return f"The text is about {'a show' if label == 'entertainment' else 'money and markets'}. The answer is {label}."


def test_unlabeled_rows_in_the_seed_format_get_schema_held_answers_and_the_instructions_classes(
    start_stub_server, tmp_path
):
    server = start_stub_server(news_answer)
    rows = [{"input_text": SEED_FORMAT.format(text), "output_text": None} for text in NEWS]
    report, outputs = run(server, tmp_path, rows)
    body = server.requests[-1]
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["answer"]["enum"] == ["business", "entertainment"]
    assert schema["properties"]["rationale"]["minLength"] >= 20
    assert "JSON object" in body["messages"][0]["content"]
    assert [row["teacher_label"] for row in outputs] == [
        "entertainment" if "film" in text or "Singer" in text else "business" for text in NEWS
    ]
    assert report.answer_format == "json" and report.class_source == "from the instruction in the inputs"
    assert report.answered == 12 and report.answered_fraction == 1.0 and report.few_shot_count == 4
    markdown = (tmp_path / "report.md").read_text()
    assert "- Classes: from the instruction in the inputs (business, entertainment)" in markdown
    assert "- Probe: 8 of the 8 rows answered first got a usable answer" in markdown


def test_classes_come_from_the_parameter_the_labels_or_each_inputs_own_options():
    inputs = [SEED_FORMAT.format("x")]
    assert task_profile("auto", inputs, [None], ["Sport", "Politics"]).classes == ("Sport", "Politics")
    assert task_profile("auto", inputs, ["business"]).class_source == "from the labeled rows"
    choices = [
        "Answer with one of the following options: [bank, river, shop] Question: where is money kept?",
        "Answer with one of the following options: [cat, dog] Question: which one barks?",
    ]
    profile = task_profile("auto", choices, [None, None])
    assert profile.task_type == "classification" and profile.per_row_classes
    assert profile.classes_for(choices[1]) == ("cat", "dog")
    assert json.loads(answer_schema(profile.classes_for(choices[0])))["properties"]["answer"]["enum"] == [
        "bank", "river", "shop"
    ]
    assert profile.canonical("Dog.", choices[1]) == "dog"
    assert instruction_classes("no list here") == () and instruction_classes("classes: [only]") == ()


def test_a_server_that_takes_only_json_object_is_asked_that_way_from_then_on(start_stub_server, tmp_path):
    server = start_stub_server(news_answer, response_formats=("json_object",), refusal_status=422)
    rows = [{"input_text": SEED_FORMAT.format(text), "output_text": None} for text in NEWS[:4]]
    report, outputs = run(server, tmp_path, rows, max_concurrency=1)
    kinds = [(body.get("response_format") or {}).get("type") for body in server.requests]
    assert kinds[:2] == ["json_schema", "json_object"] and set(kinds[2:]) == {"json_object"}
    assert report.answer_format == "json" and len(outputs) == 4


def test_a_server_without_structured_output_is_asked_in_free_text(start_stub_server, tmp_path):
    server = start_stub_server(news_answer, response_formats=())
    rows = [{"input_text": SEED_FORMAT.format(text), "output_text": None} for text in NEWS[:4]]
    report, outputs = run(server, tmp_path, rows)
    assert report.answer_format == "text" and "refused structured output" in report.answer_format_note
    assert len(outputs) == 4 and "response_format" not in server.requests[-1]
    with pytest.raises(TeacherAnswersUnusableError, match="answer_format='json'"):
        run(server, tmp_path, rows, answer_format="json")


@pytest.mark.parametrize("answer_format", ["auto", "json"])
def test_failed_requests_raise_teacher_unavailable_even_when_the_server_also_refused_structured_output(
    start_stub_server, tmp_path, answer_format
):
    """Rows 1 and 2 fail (http 500, one attempt each) while row 3's request finds out that the server takes no
    JSON schema: the failed requests alone put min_answered_fraction out of reach, and that is what the caller
    hears, not the refusal (which would retry in free text, or blame the format)."""
    rows, shots = stories_and_one_shot(tmp_path, 10)
    server = start_stub_server(
        news_answer, response_formats=(), fault_plan={rows[0]["input_text"]: ["500"], rows[1]["input_text"]: ["500"]}
    )
    with pytest.raises(TeacherUnavailableError, match=r"2 of 10 rows got no usable answer \(2 with failed requests"):
        run(server, tmp_path, rows, few_shot_uri=shots, probe_rows=0, max_attempts=1, max_concurrency=3,
            answer_format=answer_format)
    asked = [body["messages"][-1]["content"] for body in server.requests]
    assert asked.count(rows[0]["input_text"]) == asked.count(rows[1]["input_text"]) == 1  # not again in free text


def test_a_refusal_found_without_a_probe_is_asked_again_in_free_text(start_stub_server, tmp_path):
    """No probe and no demonstrations to ask: the refusal is found among the rows, whose refused requests put
    min_answered_fraction out of reach of nothing; every row is then answered in free text."""
    rows, shots = stories_and_one_shot(tmp_path, 10)
    server = start_stub_server(usable_below(10), response_formats=())
    report, outputs = run(server, tmp_path, rows, few_shot_uri=shots, probe_rows=0, max_concurrency=1)
    assert report.answer_format == "text" and "refused structured output" in report.answer_format_note
    assert len(outputs) == 10 and len(server.requests) == 3 + 10  # one row finds out, then all in free text


def test_the_probe_stops_a_teacher_that_gives_no_rationale_and_says_what_to_do(start_stub_server, tmp_path):
    """The scenario of the issue: a small teacher that says only "The answer is Business."."""
    server = start_stub_server(lambda messages: "The answer is Business.")
    rows = [{"input_text": SEED_FORMAT.format(f"story {n}"), "output_text": None} for n in range(120)]
    with pytest.raises(TeacherAnswersUnusableError) as raised:
        run(server, tmp_path, rows)
    message = str(raised.value)
    assert "usable answer for only 0 of the first 8 rows" in message and "112 rows were not asked" in message
    assert "empty rationale" in message and "few-shot file" in message and "larger teacher" in message
    assert len(server.requests) == 6 * 3 + 8  # the self-made demonstrations' samples, then the probe
    markdown = (tmp_path / "report.md").read_text()
    assert "- Answered (usable): 0" in markdown and "Rows with a usable answer: 0.0%" in markdown


def usable_below(count):
    """A responder whose answer to "... story <n>" is usable for n < count and unusable after."""

    def respond(messages):
        number = int(messages[-1]["content"].rsplit(" ", 1)[1])
        return news_answer(messages) if number < count else "I cannot tell."

    return respond


def stories_and_one_shot(tmp_path, count):
    """`count` unlabeled rows "story <n>" in the seed's format, and a few-shot file of one example."""
    shots = tmp_path / "shots.jsonl"
    write_jsonl(shots, [{"input_text": SEED_FORMAT.format("a"), "rationale": "It is about money.", "output_text": "business"}])
    return [{"input_text": SEED_FORMAT.format(f"story {n}"), "output_text": None} for n in range(count)], str(shots)


def test_unusable_answers_after_the_probe_stop_the_run_once_the_minimum_is_out_of_reach(start_stub_server, tmp_path):
    server = start_stub_server(usable_below(10))
    rows, shots = stories_and_one_shot(tmp_path, 40)
    with pytest.raises(TeacherUnavailableError, match="with unusable answers.*min_answered_fraction=0.9"):
        run(server, tmp_path, rows, few_shot_uri=shots, max_concurrency=1)
    assert len(server.requests) == 10 + 5  # 90% of 40 may lose 4: the fifth unusable answer stops it


def test_restating_and_cut_off_answers_are_counted_apart():
    assert restates_answer("The answer is business because it is business.", "business")
    assert not restates_answer("Oil prices and markets are money matters.", "business")
    assert unusable_reason('{"rationale": "It is ab', "length", "json").endswith("(cut off at max_new_tokens)")
    assert parse_answer('Sure: {"rationale": "Markets fell.", "answer": " business "} done', "json") == (
        "Markets fell.", "business"
    )
    assert parse_answer('{"rationale": 3, "answer": "x"}', "json")[1] is None


def test_once_a_server_refused_structured_output_no_more_requests_are_spent_finding_out(start_stub_server, tmp_path):
    server = start_stub_server(news_answer, response_formats=())
    rows = [{"input_text": SEED_FORMAT.format(text), "output_text": None} for text in NEWS[:4]]
    report, outputs = run(server, tmp_path, rows, max_concurrency=1)
    formats = [(body.get("response_format") or {}).get("type") for body in server.requests]
    # One request finds out (json_schema, json_object, then without): the rest is asked in free text.
    assert formats == ["json_schema", "json_object", None] + [None] * (4 * 3 + 4)
    assert report.answer_format == "text" and len(outputs) == 4


def test_rationale_length_picks_the_instruction_and_is_checked_before_any_request(start_stub_server, tmp_path):
    server = start_stub_server(news_answer)
    rows = [{"input_text": SEED_FORMAT.format(text), "output_text": None} for text in NEWS[:4]]
    with pytest.raises(ValueError, match="rationale_length must be one of concise, detailed"):
        run(server, tmp_path, rows, rationale_length="long")
    assert not server.requests
    run(server, tmp_path, rows, probe_rows=0, rationale_length="concise")
    concise = server.requests[-1]["messages"][0]["content"]
    asked = len(server.requests)
    report, _ = run(server, tmp_path, rows, probe_rows=0)  # the default: detailed
    detailed = server.requests[-1]["messages"][0]["content"]
    assert "in one or two sentences" in concise and "briefly" in concise
    assert "as detailed as the task needs" in detailed and "briefly" not in detailed
    # Another instruction is another prompt: none of the concise answers is reused from the cache.
    assert len(server.requests) - asked >= len(rows) and report.cache_hits == 0
    assert "- Rationales asked for: detailed" in (tmp_path / "report.md").read_text()


def test_when_the_probe_stops_the_run_the_rows_after_it_count_as_not_asked(start_stub_server, tmp_path):
    """A teacher usable on 3 of the 8 probe rows: the report's counts add up to the rows, and the usable
    share is of the rows asked."""
    server = start_stub_server(usable_below(3))
    rows, shots = stories_and_one_shot(tmp_path, 20)
    with pytest.raises(TeacherAnswersUnusableError, match="usable answer for only 3 of the first 8 rows"):
        run(server, tmp_path, rows, few_shot_uri=shots)
    markdown = (tmp_path / "report.md").read_text()
    assert "- Answered (usable): 3; unparseable: 5; failed: 0; not asked: 12" in markdown
    assert "- Rows with a usable answer: 37.5% of those asked" in markdown
    assert "| 9 | not asked: the probe stopped the run |" in markdown  # line 9: the first row after the probe


def test_detailed_rationales_are_the_default_of_the_config_the_component_and_the_pipeline():
    # Measured on e-SNLI with the default teacher (benchmarks/README.md, unlabeled route): detailed rationales
    # labeled 71% of the training rows right against 37%, and the distilled student reached 54% against 32%.
    import inspect

    from kfp_distill.components.generate_rationales.component import generate_rationales as component
    from kfp_distill.pipelines.distillation.pipeline import distillation

    assert GenerationConfig("precomputed").rationale_length == "detailed"
    assert inspect.signature(component.python_func).parameters["rationale_length"].default == "detailed"
    pipeline_parameters = inspect.signature(distillation.pipeline_func).parameters
    assert pipeline_parameters["teacher_rationale_length"].default == "detailed"


DEEP = '{"rationale": ' + "[" * 5000 + "]" * 5000 + ', "answer": "business"}'


def test_a_json_answer_nested_too_deep_is_unusable_with_its_reason():
    assert parse_answer(DEEP, "json") == (DEEP, None)
    assert unusable_reason(DEEP, "stop", "json") == "no JSON answer with a rationale and an answer (nested too deep)"


def test_a_cached_answer_nested_too_deep_never_crashes_a_run_or_its_rerun(start_stub_server, tmp_path):
    def deep_for_shares(messages):
        return DEEP if "Shares" in messages[-1]["content"] else news_answer(messages)

    server = start_stub_server(deep_for_shares)
    rows = [{"input_text": SEED_FORMAT.format(text), "output_text": None} for text in NEWS[:4]]
    for attempt in range(2):  # the second run reads the deep answer back from the cache
        report, outputs = run(server, tmp_path, rows, min_answered_fraction=0.5, probe_rows=0)
        assert len(outputs) == 3
        assert [problem.reason for problem in report.unparseable] == [
            "no JSON answer with a rationale and an answer (nested too deep)"
        ]
    assert report.requests == 0


# Property-based tests: a teacher's answer is any text, and the cache hands it back on every later run.
JSON_PIECES = [
    "{", "}", "[", "]", ":", ",", '"', '"rationale"', '"answer"', '"business"', '"a reason long enough to count"',
    "null", "true", "1e999", "-0", "\\u0000", "\\ud800", "\\", " ", "\n", "The answer is", "x",
]
answer_texts = st.lists(st.sampled_from(JSON_PIECES) | st.text(max_size=3), max_size=40).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["rationale", "answer", "x"]), children, max_size=3),
    max_leaves=20,
)
PROPERTIES = settings(max_examples=300, deadline=None)


def assert_reads(text: str, finish_reason) -> None:
    for answer_format in ("json", "text"):
        rationale, answer = parse_answer(text, answer_format)
        assert isinstance(rationale, str) and (answer is None or (isinstance(answer, str) and answer))
        reason = unusable_reason(text, finish_reason, answer_format)
        assert reason is None or isinstance(reason, str)
        assert (reason is None) == (answer is not None and rationale != "")


@PROPERTIES
@given(answer_texts, st.sampled_from([None, "stop", "length", "x"]))
def test_any_answer_text_is_read_never_an_error(text, finish_reason):
    assert_reads(text, finish_reason)


@PROPERTIES
@given(st.text(max_size=5), json_values, st.text(max_size=5))
def test_any_json_in_an_answer_is_read_never_an_error(before, value, after):
    assert_reads(before + json.dumps(value) + after, "stop")


@PROPERTIES
@given(st.text(max_size=40), st.text(min_size=1, max_size=20))
def test_a_rendered_answer_reads_back(rationale, answer):
    assert parse_answer(render_answer(rationale, answer, "json"), "json") == (
        rationale.strip(), " ".join(answer.split()) or None
    )


@pytest.mark.parametrize("unit", ["[", "{", '{"a":', '"', "\\", "{}"], ids=repr)
def test_an_answer_of_a_long_run_is_read_in_linear_time(unit):
    for answer_format in ("json", "text"):
        assert_linear_time(
            lambda text: unusable_reason(text, "stop", answer_format), lambda n: "{" + (unit * n)[:n]
        )


@pytest.mark.parametrize(
    "unit", ["class ", "classes: [", "options [a, ", "context:", "question :", "summarize ", "\n"], ids=repr
)
def test_an_input_of_a_long_run_is_profiled_in_linear_time(unit):
    assert_linear_time(instruction_classes, lambda n: (unit * n)[:n])
    assert_linear_time(lambda text: task_profile("auto", [text], [None]), lambda n: (unit * n)[:n])
