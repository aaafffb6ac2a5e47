"""The conversion of the paper's data: parsing recorded completions, and the real files when present."""

from pathlib import Path

import pytest

from kfp_distill._implementation.answers import answers_match
from kfp_distill._implementation.jsonl import DatasetError

SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "dsbs"
needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"the paper's data is not at {SHARED_DATA} (a clone without ../shared)"
)


def test_cqa_completion_is_cut_before_the_invented_question_and_its_letter_mapped(tmp_path, convert, write_dataset):
    example = {"question": "Where do beavers get supplies?", "choices": ["a", "wooded area", "c", "d", "e"],
               "answer": "wooded area"}
    completions = [
        "The answer must be a place with wood. So the answer is (b) wooded area.\n\nQ: What is big?\nA: x",
        "Only the second choice fits. So the answer is (b).",
        "Beavers live by water. So the answer is either (b) wooded area or (a) a.",
    ]
    write_dataset(tmp_path, "cqa", "train", [example, example, example], completions)
    rows = list(convert.converted_rows("cqa", "train", tmp_path))
    assert rows[0] == {
        "input_text": "Where do beavers get supplies?\nAnswer Choices:\n(a) a\n(b) wooded area\n(c) c\n(d) d\n(e) e",
        "output_text": "wooded area",
        "rationale": "The answer must be a place with wood.",
        "teacher_label": "wooded area",
    }
    assert rows[1]["teacher_label"] == "wooded area"  # the letter alone, looked up among the choices
    assert rows[2]["teacher_label"] is None  # a hedge between two choices is no answer


def test_nli_and_svamp_labels(tmp_path, convert, write_dataset):
    write_dataset(
        tmp_path, "esnli", "valid",
        [{"premise": "P.", "hypothesis": "H.", "label": 1}] * 2,
        ["Not necessarily so.\nAnswer: neutral\n\nPremise: next", "It says so. So the answer is entailment."],
    )
    rows = list(convert.converted_rows("esnli", "valid", tmp_path))
    assert [(r["input_text"], r["output_text"], r["rationale"], r["teacher_label"]) for r in rows] == [
        ("Premise: P.\nHypothesis: H.", "neutral", "Not necessarily so.", "neutral"),
        ("Premise: P.\nHypothesis: H.", "neutral", "It says so.", "entailment"),
    ]
    write_dataset(tmp_path, "svamp", "test", [{"input": "Q?", "label": "( 84.0 / 2.0 )"}] * 2,
                   ["84 / 2 = 42. The answer is (84 / 2).\n\nQ: more", "I am not sure."])
    rows = list(convert.converted_rows("svamp", "test", tmp_path))
    assert answers_match(rows[0]["teacher_label"], rows[0]["output_text"])
    assert rows[1]["teacher_label"] is None and rows[1]["rationale"] == "I am not sure."


def test_misaligned_completions_are_an_error_naming_the_file(tmp_path, convert, write_dataset):
    write_dataset(tmp_path, "svamp", "train", [{"input": "Q?", "label": "1"}], ["a", "b"])
    with pytest.raises(ValueError, match=r"svamp_train.json: 1 examples but 2 recorded completions"):
        list(convert.converted_rows("svamp", "train", tmp_path))


@needs_shared_data
@pytest.mark.parametrize(
    ("name", "split", "rows", "agreement"),
    # The data README's rough agreement of PaLM with the gold labels on the test splits.
    [("svamp", "test", 200, 0.775), ("cqa", "test", 1221, 0.77), ("esnli", "test", 9824, 0.73),
     ("anli1", "test", 1000, 0.66)],
)
def test_real_data_parses_to_the_teachers_known_agreement(name, split, rows, agreement, convert):
    converted = list(convert.converted_rows(name, split))
    assert len(converted) == rows
    agreed = sum(bool(r["teacher_label"]) and answers_match(r["teacher_label"], r["output_text"]) for r in converted)
    assert agreed / rows == pytest.approx(agreement, abs=0.015)
    assert all(r["rationale"] and "\n\nQ:" not in r["rationale"] for r in converted)


def test_a_row_without_a_needed_field_is_an_error_naming_file_line_and_field(tmp_path, convert, write_dataset):
    write_dataset(tmp_path, "svamp", "train", [{"input": "Q?", "label": "1"}, {"input": "Q2?"}], ["a", "b"])
    with pytest.raises(DatasetError, match=r"svamp_train.json, line 2, field 'label': missing"):
        list(convert.converted_rows("svamp", "train", tmp_path))
    write_dataset(tmp_path, "esnli", "test", [{"premise": "P.", "hypothesis": "H.", "label": 7}], ["a"])
    with pytest.raises(DatasetError, match=r"esnli_test.json, line 1, field 'label': 7 is not one of the labels 0-2"):
        list(convert.converted_rows("esnli", "test", tmp_path))
    (tmp_path / "esnli" / "llm" / "test_CoT_2.json").write_text("[not json")
    with pytest.raises(ValueError, match=r"test_CoT_2.json: not valid JSON"):
        list(convert.converted_rows("esnli", "test", tmp_path))
