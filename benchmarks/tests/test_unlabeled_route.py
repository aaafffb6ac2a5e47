"""The unlabeled-route benchmark's own logic: its rows in the seed's format, its table and the README update.

The pipeline run itself takes an hour with the default teacher; the end-to-end tests run the same route.
"""

from pathlib import Path

import pytest

from kfp_distill._implementation.scripts import load_module
from kfp_distill.components.generate_rationales.task_profile import instruction_classes

_BENCHMARKS = Path(__file__).parents[1]
route = load_module("unlabeled_route", _BENCHMARKS / "unlabeled_route.py")

needs_shared_data = pytest.mark.skipif(
    not route.DEFAULT_DATA_DIR.is_dir(),
    reason=f"the paper's data is not at {route.DEFAULT_DATA_DIR} (a clone without ../shared)",
)


@needs_shared_data
def test_rows_carry_their_classes_in_the_instruction_and_their_gold_label():
    esnli = route.sample_rows(route.TASKS["esnli"], "test", 5, seed=0, data_dir=route.DEFAULT_DATA_DIR)
    assert all(instruction_classes(row["input_text"]) == ("entailment", "neutral", "contradiction") for row in esnli)
    assert {row["output_text"] for row in esnli} <= {"entailment", "neutral", "contradiction"}
    cqa = route.sample_rows(route.TASKS["cqa"], "test", 5, seed=0, data_dir=route.DEFAULT_DATA_DIR)
    for row in cqa:
        options = instruction_classes(row["input_text"])
        assert len(options) == 5 and row["output_text"] in options, row
    assert route.sample_rows(route.TASKS["cqa"], "test", 5, seed=0, data_dir=route.DEFAULT_DATA_DIR) == cqa


def _result(**changes):
    values = dict(
        task="esnli", rationale_length="concise", train_rows=150, evaluation_rows=50, train_steps=100,
        usable_share=0.96, teacher_train_accuracy=0.7, teacher_accuracy=0.8, untuned_accuracy=0.3,
        distilled_accuracy=0.68, teacher_latency_s=6.0, untuned_latency_s=2.0, distilled_latency_s=0.5,
        teacher_prompt_tokens=1000, teacher_completion_tokens=500, restating_rationales=2,
        self_made_demonstrations="4 made by the teacher", class_source="the inputs' instruction",
        wall_time_s=600.0, date="2026-12-02",
    )
    return route.TaskResult(**{**values, **changes})


def test_table_checks_the_targets():
    text = route.table([_result(), _result(task="cqa", usable_share=0.9, distilled_accuracy=0.76)])
    assert "| esnli (50 evaluation rows, 2026-12-02) | concise | 150 | 96.0% | 70.0% | 80.0% |" in text
    assert "esnli, concise rationales: usable answers 96.0% (target 95%: met); distilled student at 85%" in text
    assert "(target 90%: missed)" in text
    assert "cqa, concise rationales: usable answers 90.0% (target 95%: missed); distilled student at 95%" in text


def test_a_task_without_a_class_list_gets_no_classes_clause():
    # Multiple choice: each row lists its own options, so the teacher's report has no "Classes" line.
    text = route.table([_result(task="cqa", class_source="")])
    assert "classes:" not in text and text.rstrip().endswith("made by the teacher.")


def test_readme_table_goes_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- unlabeled-route -->\nold\n<!-- /unlabeled-route -->\nafter\n")
    route.update_readme(readme, "new table")
    assert readme.read_text() == "before\n<!-- unlabeled-route -->\nnew table\n<!-- /unlabeled-route -->\nafter\n"
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        route.update_readme(readme, "new table")
