"""Tests of the validate-dataset rules, with the real SmolLM2 tokenizer."""

import functools
import http.server
import json
import logging
import re
import threading

import fsspec
import pytest

from kfp_distill._implementation.jsonl import DatasetError, load_rows


def jsonl(*rows) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def labeled(count: int, prefix: str = "question") -> bytes:
    return jsonl(*({"input_text": f"{prefix} {i}", "output_text": f"answer {i}"} for i in range(count)))


GOOD_ROW = {"input_text": "q", "output_text": "a"}

# (case id, training file content or None for "no such file", evaluation file content or None for no
# evaluation set, expected message; {train} and {evaluation} stand for the files' paths).
MALFORMED = [
    ("broken-json", jsonl(GOOD_ROW) + b'{"input_text": "a"\n', None,
     "{train}, line 2: not valid JSON: Expecting ',' delimiter at column 19"),
    ("json-array-line", jsonl(GOOD_ROW, ["input_text", "a"]), None,
     "{train}, line 2: expected a JSON object, got list"),
    ("non-utf8-bytes", jsonl(GOOD_ROW) + b'{"input_text": "caf\xe9"}\n', None,
     "{train}, line 2: not valid UTF-8 (byte 20 of the line)"),
    ("file-not-found", None, None, "{train}: file not found"),
    ("empty-file", b"", None, "{train}: has no examples; a dataset needs at least one line with input_text"),
    ("blank-lines-only", b"\n  \n\n", None,
     "{train}: has no examples; a dataset needs at least one line with input_text"),
    ("input-text-number", jsonl(GOOD_ROW, {"input_text": 5}), None,
     "{train}, line 2, field 'input_text': must be a string, got number"),
    ("input-text-null", jsonl({"input_text": None, "output_text": "a"}), None,
     "{train}, line 1, field 'input_text': must be a string, got null"),
    ("output-text-list", jsonl({"input_text": "q", "output_text": ["a"]}), None,
     "{train}, line 1, field 'output_text': must be a string or null, got array"),
    ("missing-input-text", jsonl(GOOD_ROW, GOOD_ROW, {"output_text": "a"}), None,
     "{train}, line 3, field 'input_text': missing; every example needs input_text (the prompt)"),
    ("empty-input-text", jsonl({"input_text": ""}), None,
     "{train}, line 1, field 'input_text': must not be empty"),
    ("whitespace-input-text", jsonl({"input_text": " \t\n "}), None,
     "{train}, line 1, field 'input_text': must not be blank (only whitespace)"),
    ("empty-output-text", jsonl({"input_text": "q", "output_text": ""}), None,
     "{train}, line 1, field 'output_text': must not be empty; use null or leave it out"),
    ("unknown-field-typo", jsonl({"input": "q", "output_text": "a"}), None,
     "{train}, line 1, field 'input': unknown field; allowed fields are input_text, output_text, rationale "
     "(did you mean 'input_text'?)"),
    ("unknown-field", jsonl({"input_text": "q", "label": "a"}), None,
     "{train}, line 1, field 'label': unknown field; allowed fields are input_text, output_text, rationale"),
    ("rationale-number", jsonl({"input_text": "q", "output_text": "a", "rationale": 1}), None,
     "{train}, line 1, field 'rationale': must be a string or null, got number"),
    ("rationale-without-output", jsonl({"input_text": "q", "rationale": "because"}), None,
     "{train}, line 1, field 'rationale': given without output_text; a precomputed rationale explains a given answer"),
    ("too-many-rows", labeled(10_001), None,
     "{train}, line 10001: more than 10,000 examples (the limit); this is example 10,001"),
    ("errors-on-later-lines-counted", jsonl(GOOD_ROW, {"input_text": 1}, {"input_text": ""}, {"x": 1}), None,
     "{train}, line 2, field 'input_text': must be a string, got number (2 more lines have errors)"),
    ("unparsable-later-line-stops-count", jsonl({"input_text": ""}) + b"[\n" + jsonl({"input_text": ""}), None,
     "{train}, line 1, field 'input_text': must not be empty (at least 1 more line has errors)"),
    ("evaluation-not-found", labeled(3), None, "{evaluation}: file not found"),
    ("evaluation-too-small", labeled(3), labeled(9),
     "{evaluation}: has 9 examples; an evaluation set needs 10 to 250"),
    ("evaluation-empty", labeled(3), b"",
     "{evaluation}: has 0 examples; an evaluation set needs 10 to 250"),
    ("evaluation-too-large", labeled(3), labeled(251),
     "{evaluation}, line 251: more than 250 examples (the limit); this is example 251"),
    ("evaluation-row-without-output", labeled(3), labeled(11) + jsonl({"input_text": "q"}),
     "{evaluation}, line 12, field 'output_text': missing; every evaluation example needs output_text (it is scored)"),
    ("evaluation-row-null-output", labeled(3), jsonl({"input_text": "q", "output_text": None}) + labeled(11),
     "{evaluation}, line 1, field 'output_text': null; every evaluation example needs output_text (it is scored)"),
    ("evaluation-unknown-field", labeled(3), labeled(10) + jsonl({"input_text": "q", "outputtext": "a"}),
     "{evaluation}, line 11, field 'outputtext': unknown field; allowed fields are input_text, output_text, "
     "rationale (did you mean 'output_text'?)"),
]


@pytest.mark.parametrize("train_content, evaluation_content, expected", [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_malformed_dataset_stops_with_located_error_and_writes_nothing(
    tmp_path, outputs, train_content, evaluation_content, expected
):
    train, evaluation = tmp_path / "train-in.jsonl", tmp_path / "eval-in.jsonl"
    if train_content is not None:
        train.write_bytes(train_content)
    if evaluation_content is not None:
        evaluation.write_bytes(evaluation_content)
    uses_evaluation = "{evaluation}" in expected or evaluation_content is not None
    message = expected.format(train=train, evaluation=evaluation)

    with pytest.raises(DatasetError, match="^" + re.escape(message) + "$"):
        outputs.run(str(train), str(evaluation) if uses_evaluation else "")

    assert outputs.left_behind() == []


def test_labeled_dataset_without_evaluation(tmp_path, outputs, tokenizer, caplog):
    dataset = tmp_path / "train.jsonl"
    dataset.write_bytes(jsonl(
        {"input_text": "2+2?", "output_text": "4"},
        {"input_text": "3+3?", "output_text": "6", "rationale": "3 and 3 make 6"},
    ))

    with caplog.at_level(logging.WARNING):
        report = outputs.run(str(dataset))

    assert report.kind == "labeled"
    assert (report.train.examples, report.train.labeled_examples, report.train.rationale_examples) == (2, 2, 1)
    assert report.evaluation is None
    assert report.warnings == [
        "only 2 labeled training examples; hundreds are recommended for a labeled dataset"
    ]
    assert report.warnings[0] in caplog.text
    assert load_rows(outputs.train) == [
        {"input_text": "2+2?", "output_text": "4"},
        {"input_text": "3+3?", "output_text": "6", "rationale": "3 and 3 make 6"},
    ]
    assert outputs.evaluation.read_text() == ""
    markdown = outputs.report.read_text()
    assert markdown == report.to_markdown()
    assert "- Kind: **labeled**" in markdown and "- Evaluation data: none" in markdown


def test_unlabeled_dataset(tmp_path, outputs, tokenizer):
    dataset = tmp_path / "train.jsonl"
    dataset.write_bytes(jsonl({"input_text": "a"}, {"input_text": "b", "output_text": None}))

    report = outputs.run(str(dataset))

    assert report.kind == "unlabeled"
    assert report.train.unlabeled_examples == 2
    assert report.warnings == [
        "2 of 2 training examples are unlabeled; more than 1,000 examples are recommended when the teacher labels"
    ]
    assert load_rows(outputs.train) == [
        {"input_text": "a", "output_text": None}, {"input_text": "b", "output_text": None}
    ]


def test_mixed_dataset(tmp_path, outputs, tokenizer):
    dataset = tmp_path / "train.jsonl"
    dataset.write_bytes(labeled(150) + jsonl({"input_text": "unlabeled one"}))

    report = outputs.run(str(dataset))

    assert report.kind == "mixed"
    assert (report.train.labeled_examples, report.train.unlabeled_examples) == (150, 1)
    assert report.warnings == [
        "1 of 151 training examples are unlabeled; more than 1,000 examples are recommended when the teacher labels"
    ]


def test_large_labeled_dataset_with_clean_evaluation_has_no_warnings(tmp_path, outputs, tokenizer):
    dataset, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    dataset.write_bytes(labeled(100))
    evaluation.write_bytes(labeled(10, prefix="held-out"))

    report = outputs.run(str(dataset), str(evaluation))

    assert report.warnings == []
    assert report.evaluation.examples == 10
    assert load_rows(outputs.evaluation) == [json.loads(line) for line in evaluation.read_text().splitlines()]
    assert "None." in outputs.report.read_text()


def test_duplicates_and_evaluation_leakage_are_warned(tmp_path, outputs, tokenizer):
    dataset, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    dataset.write_bytes(labeled(120) + jsonl({"input_text": "question 3", "output_text": "other"}))
    evaluation.write_bytes(
        labeled(9, prefix="held-out") + jsonl({"input_text": "question 7", "output_text": "answer 7"})
    )

    report = outputs.run(str(dataset), str(evaluation))

    assert report.warnings == [
        f"{dataset}: 1 examples repeat an earlier example's input_text exactly (lines 121)",
        f"{evaluation}: 1 evaluation examples have an input_text that is also in the training data, "
        "which inflates evaluation scores (lines 10)",
    ]


def test_the_report_states_the_passes_the_tuning_settings_make_and_warns_of_repetition(tmp_path, outputs, tokenizer):
    dataset, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    dataset.write_bytes(jsonl(*(
        {"input_text": f"question: who is {i}? context: {i} is a person.", "output_text": f"{i}"} for i in range(70)
    )))
    evaluation.write_bytes(labeled(10, prefix="question: held out? context: a passage"))

    report = outputs.run(
        str(dataset), str(evaluation), train_steps=80, batch_size=8, enable_checkpoint_selection=False
    )

    assert report.task_type.name == "extractive_qa"
    statement = (
        "80 steps x batch size 8 = 640 examples seen: 9.1 passes over the 70 training examples "
        "(recommended for extractive_qa: 100+ examples, 200-800 steps)"
    )
    assert report.training.statement == statement
    markdown = outputs.report.read_text()
    assert f"- Training: {statement}\n" in markdown
    # After the data's own warnings (fewer than 100 labeled examples).
    assert report.warnings[1:] == report.training.warnings and len(report.warnings) == 3
    for warning in report.training.warnings:
        assert f"- {warning}\n" in markdown
    assert report.metrics()["training_passes"] == pytest.approx(640 / 70)
    assert report.metrics()["warnings"] == 3.0

    selecting = outputs.run(str(dataset), str(evaluation), train_steps=300, batch_size=8, enable_checkpoint_selection=True)
    assert selecting.training.warnings == []
    # Without the tuning settings (a caller that does not tune), there is nothing to state.
    unstated = outputs.run(str(dataset), str(evaluation))
    assert unstated.training is None and "Training:" not in outputs.report.read_text()
    assert "training_passes" not in unstated.metrics()


def test_truncation_is_counted_per_field_and_texts_are_decoded_prefixes(tmp_path, outputs, tokenizer):
    long_input = "The quick brown fox jumps over the lazy dog"
    long_output = "one two three four five six"
    dataset = tmp_path / "train.jsonl"
    dataset.write_bytes(jsonl(
        {"input_text": long_input, "output_text": long_output},
        {"input_text": "short", "output_text": "ok"},
        {"input_text": long_input},
    ))
    input_ids = tokenizer(long_input, add_special_tokens=False)["input_ids"]
    output_ids = tokenizer(long_output, add_special_tokens=False)["input_ids"]

    report = outputs.run(str(dataset), max_input_tokens=4, max_output_tokens=2)

    assert (report.train.input_text_truncation.rows, report.train.input_text_truncation.tokens) == (
        2, 2 * (len(input_ids) - 4)
    )
    assert (report.train.output_text_truncation.rows, report.train.output_text_truncation.tokens) == (
        1, len(output_ids) - 2
    )
    assert report.train.max_input_tokens_seen == len(input_ids)
    rows = load_rows(outputs.train)
    assert rows[0] == {"input_text": tokenizer.decode(input_ids[:4]), "output_text": tokenizer.decode(output_ids[:2])}
    assert rows[0]["input_text"] == "The quick brown fox"
    assert rows[1] == {"input_text": "short", "output_text": "ok"}
    assert f"2 training input_text values were truncated to 4 tokens ({2 * (len(input_ids) - 4)} tokens dropped)" in (
        report.warnings
    )
    metrics = report.metrics()
    assert metrics["train_input_text_truncated_rows"] == 2.0
    assert metrics["train_output_text_truncated_tokens"] == float(len(output_ids) - 2)
    assert metrics["evaluation_examples"] == 0.0


def test_truncation_inside_a_multibyte_character_drops_the_half_character(tmp_path, outputs, tokenizer):
    text = "日本語"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    # Find a cut that splits a character, so the raw decode ends in U+FFFD.
    cut = next(n for n in range(1, len(ids)) if tokenizer.decode(ids[:n]).endswith("\ufffd"))
    dataset = tmp_path / "train.jsonl"
    dataset.write_bytes(jsonl({"input_text": text}))

    outputs.run(str(dataset), max_input_tokens=cut)

    kept = load_rows(outputs.train)[0]["input_text"]
    assert kept == tokenizer.decode(ids[:cut]).rstrip("\ufffd") and text.startswith(kept)


def test_default_token_limits(tmp_path, outputs, tokenizer):
    long_input = "word " * 7_500
    dataset = tmp_path / "train.jsonl"
    dataset.write_bytes(jsonl({"input_text": long_input, "output_text": "x " * 1_100}))
    input_tokens = len(tokenizer(long_input, add_special_tokens=False)["input_ids"])

    report = outputs.run(str(dataset))

    assert report.train.input_text_truncation.tokens == input_tokens - 7_168
    assert report.train.output_text_truncation.rows == 1
    row = load_rows(outputs.train)[0]
    assert len(tokenizer(row["input_text"], add_special_tokens=False)["input_ids"]) == 7_168
    assert len(tokenizer(row["output_text"], add_special_tokens=False)["input_ids"]) == 1_024


def test_metrics_and_markdown_cover_both_files(tmp_path, outputs, tokenizer):
    dataset, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    dataset.write_bytes(labeled(3) + jsonl({"input_text": "unlabeled"}))
    evaluation.write_bytes(labeled(12, prefix="held-out"))

    report = outputs.run(str(dataset), str(evaluation))

    metrics = report.metrics()
    assert metrics["train_examples"] == 4.0
    assert metrics["train_labeled_examples"] == 3.0
    assert metrics["train_unlabeled_examples"] == 1.0
    assert metrics["evaluation_examples"] == 12.0
    assert metrics["warnings"] == float(len(report.warnings)) == 2.0
    assert all(isinstance(value, float) for value in metrics.values())
    markdown = report.to_markdown()
    assert "| examples | 4 | 12 |" in markdown
    assert "- Kind: **mixed**" in markdown


def test_failed_write_removes_the_outputs_already_written(tmp_path, outputs, tokenizer):
    dataset = tmp_path / "train.jsonl"
    dataset.write_bytes(labeled(3))
    outputs.report.mkdir(parents=True)  # the report cannot be written over a directory

    with pytest.raises(IsADirectoryError):
        outputs.run(str(dataset))

    assert outputs.left_behind() == [outputs.report]


def test_reads_an_fsspec_memory_uri(outputs, tokenizer):
    memory = fsspec.filesystem("memory")
    memory.pipe("/validate-dataset-test/train.jsonl", labeled(2))
    try:
        report = outputs.run("memory://validate-dataset-test/train.jsonl")
    finally:
        memory.rm("/validate-dataset-test", recursive=True)

    assert report.train.examples == 2
    assert load_rows(outputs.train)[1] == {"input_text": "question 1", "output_text": "answer 1"}


@pytest.fixture
def http_root(tmp_path):
    """Serves a folder over http:// on the loopback interface; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_reads_http_uris(http_root, outputs, tokenizer):
    folder, base_url = http_root
    (folder / "train.jsonl").write_bytes(labeled(5))
    (folder / "eval.jsonl").write_bytes(labeled(10, prefix="held-out"))

    report = outputs.run(f"{base_url}/train.jsonl", f"{base_url}/eval.jsonl")

    assert (report.train.examples, report.evaluation.examples) == (5, 10)


def test_missing_http_file_is_reported(http_root, outputs):
    _, base_url = http_root

    with pytest.raises(DatasetError, match=f"^{re.escape(base_url)}/absent.jsonl: file not found$"):
        outputs.run(f"{base_url}/absent.jsonl")
    assert outputs.left_behind() == []


def test_task_type_is_decided_once_from_both_datasets(tmp_path, outputs, tokenizer):
    # Unlabeled training questions say nothing; the evaluation labels (expressions) decide: math.
    dataset, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    dataset.write_bytes(jsonl(*({"input_text": f"How many apples are {i} and {i + 1}?"} for i in range(5))))
    evaluation.write_bytes(
        jsonl(*({"input_text": f"What is {i} times 3?", "output_text": f"( {i}.0 * 3.0 )"} for i in range(10)))
    )

    report = outputs.run(str(dataset), str(evaluation))

    assert report.task_type.name == "math"
    assert "- Task type: **math** (inferred: every label is a number or an arithmetic expression" in outputs.report.read_text()
    assert outputs.run(str(dataset), str(evaluation), task_type="classification").task_type.name == "classification"
    assert "- Task type: **classification** (given as the task_type parameter)" in outputs.report.read_text()


def test_unknown_task_type_stops_before_anything_is_written(tmp_path, outputs):
    dataset = tmp_path / "train.jsonl"
    dataset.write_bytes(labeled(3))
    with pytest.raises(ValueError, match=r"task_type must be 'auto' or one of classification, .*; got 'maths'"):
        outputs.run(str(dataset), task_type="maths")
    assert outputs.left_behind() == []
