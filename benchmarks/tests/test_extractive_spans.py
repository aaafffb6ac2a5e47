"""The extractive-spans benchmark's own logic: which teacher answers are not spans, and each policy's scores."""

from pathlib import Path

from kfp_distill._implementation.jsonl import write_jsonl
from kfp_distill._implementation.scripts import load_module

spans = load_module("extractive_spans", Path(__file__).parents[1] / "extractive_spans.py")


def test_the_teacher_report_scores_mapping_against_leaving_out(tmp_path, capsys):
    output, gold = tmp_path / "output.jsonl", tmp_path / "gold.jsonl"
    write_jsonl(output, [
        {"input_text": "question: What is the capital? context: Beijing is the capital of China.",
         "teacher_label": "beijing city", "gold_label": "Beijing"},
        {"input_text": "question: How many? context: Louisiana has 64 parishes.", "teacher_label": "64",
         "gold_label": None},
        {"input_text": "question: Who? context: Ann met Bo.", "teacher_label": "not stated", "gold_label": "Ann"},
    ])
    write_jsonl(gold, [{"input_text": "question: How many? context: Louisiana has 64 parishes.", "output_text": "64 parishes"}])

    assert spans.main(["teacher", "--outputs", str(output), "--gold", str(gold)]) == 0

    printed = capsys.readouterr().out
    assert "- not spans of their context: 2 (66.7%)" in printed
    assert "- those answers as given: EM 0.0% F1 33.3%" in printed  # "beijing city" scores 2/3, "not stated" 0
    assert "  - leave out: 1 rows, EM 0.0% F1 66.7%" in printed  # "64" against "64 parishes"
    assert "  - map at F1 >= 0.50: 2 rows, EM 50.0% F1 83.3%" in printed  # "Beijing"; "not stated" has no span
    assert "  - 'beijing city' -> 'Beijing' (0.67) | 'Beijing'" in printed
