"""The unlabeled-route benchmark's own logic: its rows in the seed's format, labels hidden from the pipeline, the
teacher's training score, its table and the README update.

The pipeline run itself takes an hour with the default teacher; the end-to-end tests run the same route.
"""

from pathlib import Path

import pytest

from kfp_distill._implementation.jsonl import load_rows
from kfp_distill._implementation.scripts import load_module
from kfp_distill._implementation.tasks import infer_task_type
from kfp_distill.components.generate_rationales.task_profile import instruction_classes
from kfp_distill.components.tune_student.config import TuningConfig

_BENCHMARKS = Path(__file__).parents[1]
route = load_module("unlabeled_route", _BENCHMARKS / "unlabeled_route.py")

needs_shared_data = pytest.mark.skipif(
    not route.DEFAULT_DATA_DIR.is_dir(),
    reason=f"the paper's data is not at {route.DEFAULT_DATA_DIR} (a clone without ../shared)",
)


@needs_shared_data
def test_rows_carry_their_classes_in_the_instruction_and_their_gold_label():
    esnli = route.sample_rows("esnli", False, 5, seed=0, data_dir=route.DEFAULT_DATA_DIR)
    assert all(instruction_classes(row["input_text"]) == ("entailment", "neutral", "contradiction") for row in esnli)
    assert {row["output_text"] for row in esnli} <= {"entailment", "neutral", "contradiction"}
    cqa = route.sample_rows("cqa", False, 5, seed=0, data_dir=route.DEFAULT_DATA_DIR)
    for row in cqa:
        options = instruction_classes(row["input_text"])
        assert len(options) == 5 and row["output_text"] in options, row
    assert route.sample_rows("cqa", False, 5, seed=0, data_dir=route.DEFAULT_DATA_DIR) == cqa


@pytest.mark.parametrize("task, task_type", [("qed", "extractive_qa"), ("scitldr", "summarization")])
def test_sample_tasks_draw_their_public_sample_and_the_pipeline_infers_their_task_type(task, task_type):
    train = route.sample_rows(task, True, 150, seed=0, data_dir=route.DEFAULT_DATA_DIR)
    evaluation = route.sample_rows(task, False, 50, seed=0, data_dir=route.DEFAULT_DATA_DIR)
    assert len(train) == 150 and len({row["input_text"] for row in train}) == 150
    assert not {row["input_text"] for row in train} & {row["input_text"] for row in evaluation}
    assert route.sample_rows(task, True, 150, seed=0, data_dir=route.DEFAULT_DATA_DIR) == train
    # As the pipeline sees them: training inputs with no labels, labeled evaluation rows.
    inputs = [row["input_text"] for row in train + evaluation]
    labels = [None] * len(train) + [row["output_text"] for row in evaluation]
    assert infer_task_type(inputs, labels).name == task_type
    with pytest.raises(ValueError, match=r"evaluation.jsonl holds 50 rows; 51 were asked for"):
        route.sample_rows(task, False, 51, seed=0, data_dir=route.DEFAULT_DATA_DIR)


def test_training_rows_reach_the_pipeline_without_their_labels(tmp_path, monkeypatch):
    """run_task writes the training file the pipeline reads: inputs only; the evaluation file keeps its labels."""
    written = {}

    class Stop(Exception):
        pass

    def pipeline(**parameters):
        written.update(train=load_rows(parameters["dataset_uri"]), evaluation=load_rows(parameters["evaluation_data_uri"]),
                       evaluation_interval=parameters["evaluation_interval"])
        raise Stop

    import kfp_distill.pipelines.distillation.pipeline as pipeline_module
    import kfp_distill.pipelines.local_runner as local_runner

    monkeypatch.setattr(pipeline_module, "distillation", pipeline)
    monkeypatch.setattr(local_runner, "init_local_runner", lambda root: None)
    arguments = route.parse_arguments(["--tasks", "qed", "--train-rows", "20", "--evaluation-rows", "10",
                                       "--work-dir", str(tmp_path)])
    with pytest.raises(Stop):
        route.run_task("qed", arguments)
    assert len(written["train"]) == 20 and all(set(row) == {"input_text"} for row in written["train"])
    assert len(written["evaluation"]) == 10 and all(row["output_text"] for row in written["evaluation"])
    # Evaluated every 20 steps, as the pipeline is by default: checkpoint selection has checkpoints to choose from.
    assert written["evaluation_interval"] == TuningConfig("student").evaluation_interval < arguments.train_steps


@pytest.mark.parametrize("task_type, labels, expected", [
    # A row the teacher gave no usable answer for scores 0.
    ("classification", {"a": "neutral", "b": "entailment"}, 2 / 3),
    ("extractive_qa", {"a": "64 parishes in all", "b": "Ann"}, (2 / 3 + 1.0 + 0.0) / 3),  # SQuAD F1
])
def test_the_teachers_training_labels_are_scored_by_the_task_s_main_metric(task_type, labels, expected):
    gold = {"a": "neutral" if task_type == "classification" else "64 parishes",
            "b": "entailment" if task_type == "classification" else "Ann",
            "c": "neutral" if task_type == "classification" else "Bo"}
    labeled = [{"input_text": text, "teacher_label": label} for text, label in labels.items()]
    assert route.teacher_train_score(task_type, labeled, gold) == pytest.approx(expected)


def _result(**changes):
    values = dict(
        task="esnli", rationale_length="concise", train_rows=150, evaluation_rows=50, train_steps=100,
        usable_share=0.96, task_type="classification", metric="accuracy", teacher_train_score=0.7,
        teacher_score=0.8, untuned_score=0.3, distilled_score=0.68, teacher_latency_s=6.0, untuned_latency_s=2.0,
        distilled_latency_s=0.5, teacher_prompt_tokens=1000, teacher_completion_tokens=500, restating_rationales=2,
        self_made_demonstrations="4 made by the teacher", class_source="the inputs' instruction",
        peak_memory_mb=3500.0, wall_time_s=600.0, date="2026-12-02",
    )
    return route.TaskResult(**{**values, **changes})


def test_table_checks_the_targets():
    text = route.table([
        _result(), _result(task="cqa", usable_share=0.9, distilled_score=0.76),
        _result(task="qed", task_type="extractive_qa", metric="f1", class_source="", peak_memory_mb=None),
    ])
    assert "| esnli (Accuracy, 50 evaluation rows, 2026-12-02) | concise | 150 | 96.0% | 70.0% | 80.0% |" in text
    assert "| 0.5 + 500 | 3,500 MiB | 10 min |" not in text and "| 1,000 + 500 | 3,500 MiB | 10 min |" in text
    assert "esnli, concise rationales: usable answers 96.0% (target 95%: met); distilled student at 85% of the " \
           "teacher's accuracy (target 90%: missed)" in text
    assert "cqa, concise rationales: usable answers 90.0% (target 95%: missed); distilled student at 95%" in text
    assert "| qed (F1 (SQuAD), 50 evaluation rows, 2026-12-02) |" in text and "| not recorded |" in text
    assert "distilled student at 85% of the teacher's F1 (SQuAD)" in text


def test_the_table_shows_which_checkpoint_was_kept_and_the_answer_scores_it_was_chosen_from():
    curve = [[20, 0.4], [40, 0.55], [60, 0.5]]
    text = route.table([_result(evaluation_interval=20, answer_curve=curve, selected_step=40, train_steps=60)])
    assert text.rstrip().endswith(
        "classes: the inputs' instruction; checkpoint: step 40 of 60 kept (the student's accuracy on its own "
        "answers every 20 steps: 20: 40.0%, 40: 55.0%, 60: 50.0%)."
    )


def test_the_recorded_results_still_make_the_table():
    recorded = route.json.loads(route.RESULTS_FILE.read_text())
    assert "| esnli (Accuracy, 50 evaluation rows, 2026-12-03) | detailed |" in route.table(
        [route.TaskResult(**recorded[key]) for key in sorted(recorded)]
    )


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


def test_the_table_goes_to_the_benchmarks_readme_and_never_the_user_manual():
    assert route.parse_arguments(["--readme"]).readme == route.BENCHMARKS_README
    assert route.parse_arguments([]).readme is None
    manual = route.MAIN_README.read_bytes()
    with pytest.raises(ValueError, match="user manual"):
        route.update_readme(route.MAIN_README, "new table")
    assert route.MAIN_README.read_bytes() == manual
    assert all(marker in route.BENCHMARKS_README.read_text() for marker in route.README_MARKERS)
