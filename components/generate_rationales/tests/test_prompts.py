import json

import pytest

from kfp_distill._implementation.jsonl import DatasetError
from kfp_distill.components.generate_rationales.prompts import (
    SYSTEM_INSTRUCTION,
    Demonstration,
    Mode,
    PromptTemplateError,
    build_messages,
    load_demonstrations,
    template_placeholders,
    validate_template,
)

SHOT = Demonstration("What is 2 + 2?", "Two plus two makes four.", "4")


def test_predict_prompt_never_shows_a_label():
    messages = build_messages("What is 3 + 4?", Mode.PREDICT, demonstrations=[SHOT])
    assert messages[0] == {"role": "system", "content": SYSTEM_INSTRUCTION}
    assert "The answer is <answer>." in SYSTEM_INSTRUCTION
    assert messages[1] == {"role": "user", "content": "What is 2 + 2?"}
    assert messages[2] == {"role": "assistant", "content": "Two plus two makes four. The answer is 4."}
    assert messages[3] == {"role": "user", "content": "What is 3 + 4?"}
    assert "correct answer" not in json.dumps(messages)


def test_explain_prompt_shows_the_gold_label_in_every_user_turn():
    messages = build_messages("What is 3 + 4?", Mode.EXPLAIN, output_text="7", demonstrations=[SHOT])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"].startswith("What is 2 + 2?\n\nThe correct answer is: 4\n")
    assert messages[2]["content"] == "Two plus two makes four. The answer is 4."
    assert messages[3]["content"].startswith("What is 3 + 4?\n\nThe correct answer is: 7\n")
    assert messages[3]["content"].endswith("'The answer is 7.'")


def test_explain_mode_needs_the_label():
    with pytest.raises(ValueError, match="output_text"):
        build_messages("What is 3 + 4?", Mode.EXPLAIN)


def test_custom_template_fills_both_placeholders():
    template = "Q: {input_text}\nKnown answer: {output_text}\nWhy?"
    messages = build_messages("x?", Mode.EXPLAIN, output_text="y", template=template)
    assert messages[-1]["content"] == "Q: x?\nKnown answer: y\nWhy?"
    predict = build_messages("x {braces} kept?", Mode.PREDICT, template="Q: {input_text} {{literal}}")
    assert predict[-1]["content"] == "Q: x {braces} kept? {literal}"


@pytest.mark.parametrize(
    "template, message",
    [
        ("Q: {question}", r"unknown placeholder\(s\) \{question\}"),
        ("Q: {input_text} {}", r"unknown placeholder\(s\) \{\}"),
        ("Q: {input_text.upper}", "unknown placeholder"),
        ("Q: {input_text", "cannot be parsed"),
        ("No placeholder at all", r"must contain \{input_text\}"),
    ],
)
def test_bad_templates_are_named(template, message):
    with pytest.raises(PromptTemplateError, match=message):
        template_placeholders(template)


def test_output_text_placeholder_is_refused_when_some_prompt_predicts():
    validate_template("{input_text} / {output_text}", [Mode.EXPLAIN])
    with pytest.raises(PromptTemplateError, match="without their label"):
        validate_template("{input_text} / {output_text}", [Mode.EXPLAIN, Mode.PREDICT])


def test_few_shot_file_is_read(tmp_path):
    path = tmp_path / "shots.jsonl"
    path.write_text(json.dumps({"input_text": "q", "rationale": " r ", "output_text": "a"}) + "\n\n")
    assert load_demonstrations(str(path)) == [Demonstration("q", "r", "a")]


@pytest.mark.parametrize(
    "second_line, line, field",
    [
        ({"input_text": "q", "output_text": "a"}, 2, "rationale"),
        ({"input_text": "q", "rationale": "r", "output_text": 3}, 2, "output_text"),
        ({"input_text": "  ", "rationale": "r", "output_text": "a"}, 2, "input_text"),
        ("not an object", 2, None),
    ],
)
def test_few_shot_file_errors_name_file_line_and_field(tmp_path, second_line, line, field):
    path = tmp_path / "shots.jsonl"
    good = {"input_text": "q", "rationale": "r", "output_text": "a"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(second_line) + "\n")
    with pytest.raises(DatasetError) as error:
        load_demonstrations(str(path))
    assert (error.value.uri, error.value.line, error.value.field) == (str(path), line, field)
    assert str(path) in str(error.value)


def test_empty_or_missing_few_shot_file_is_an_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DatasetError, match="no examples"):
        load_demonstrations(str(empty))
    with pytest.raises(DatasetError, match="not found"):
        load_demonstrations(str(tmp_path / "missing.jsonl"))


def test_the_config_takes_its_settings_from_the_component_inputs_with_the_classes_split():
    from kfp_distill.components.generate_rationales.config import GenerationConfig

    inputs = {
        "teacher_model_reference": "precomputed",
        "pipeline_root": "gs://bucket/root",  # where the cache goes, not how to ask
        "teacher_api_key_secret": "",
        "dataset": object(),  # an input artifact
        "class_names": "positive,negative,",
        "probe_rows": 0,
        "cache_uri": "gs://bucket/cache.sqlite",
    }
    config = GenerationConfig.from_component_inputs(inputs)
    assert config == GenerationConfig(
        "precomputed", class_names=("positive", "negative"), probe_rows=0, cache_uri="gs://bucket/cache.sqlite"
    )
    assert GenerationConfig.from_component_inputs({**inputs, "class_names": ""}).class_names == ()
