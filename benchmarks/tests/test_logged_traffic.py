"""The logged-traffic benchmark's data route, without a pipeline run: the banking77 sample written in every log
format reads, through validate-dataset, into the same training and evaluation rows."""

from pathlib import Path

import pytest

from kfp_distill._implementation.jsonl import load_rows
from kfp_distill._implementation.scripts import load_module

traffic = load_module("logged_traffic", Path(__file__).parents[1] / "logged_traffic.py")


def test_every_log_format_of_the_sample_gives_validate_dataset_the_same_rows(tmp_path, smollm2_tokenizer):
    from kfp_distill.components.validate_dataset.validation import validate_dataset

    written = traffic.write_logs(tmp_path / "logs")
    assert set(written) == set(traffic.log_formats.WRITERS)  # OpenAI chat, Gemini, Bedrock (Converse, Anthropic)
    rows, formats = {}, {}
    for name, files in written.items():
        folder = tmp_path / "validated" / name
        report = validate_dataset(
            str(files["train"]), str(files["evaluation"]), "smollm2-135m-instruct",
            folder / "train.jsonl", folder / "evaluation.jsonl", folder / "report.md",
        )
        rows[name] = ((folder / "train.jsonl").read_bytes(), (folder / "evaluation.jsonl").read_bytes())
        formats[name] = report.train.data_format
        assert (report.train.rows_read, report.train.examples, report.train.labeled_examples) == (160, 160, 160)
        assert report.evaluation.examples == 64

    assert len(set(rows.values())) == 1, formats
    assert len(set(formats.values())) == 3  # the two Bedrock bodies are one format, read per record
    sample = load_rows(str(traffic.SAMPLE_DIR / "train.jsonl"))
    train = load_rows(str(tmp_path / "validated" / traffic.RUN_FORMAT / "train.jsonl"))
    assert train[0] == {
        "input_text": f"System: {sample[0]['system']}\n\nUser: {sample[0]['messages'][0]['content']}",
        "output_text": sample[0]["messages"][1]["content"],
    }
    assert [row["output_text"] for row in train] == [record["messages"][1]["content"] for record in sample]


def test_logs_only_writes_the_logs_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(traffic, "run_pipeline", lambda *args: pytest.fail("the pipeline ran"))
    assert traffic.main(["--logs-only", "--work-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for name in traffic.log_formats.WRITERS:
        assert len(load_rows(str(tmp_path / "logs" / name / "train.jsonl"))) == 160
        assert len(load_rows(str(tmp_path / "logs" / name / "evaluation.jsonl"))) == 64
        assert f"{name}: {tmp_path / 'logs' / name / 'train.jsonl'}" in printed


def test_summary_only_runs_nothing_and_says_when_there_is_no_run(tmp_path, monkeypatch):
    monkeypatch.setattr(traffic, "run_pipeline", lambda *args: pytest.fail("the pipeline ran"))
    with pytest.raises(SystemExit, match=f"no run under {tmp_path / 'runs'}"):
        traffic.main(["--summary-only", "--work-dir", str(tmp_path)])
    assert not (tmp_path / "logs").exists()


def test_arguments_after_the_separator_go_to_kfp_distill_run():
    arguments = traffic.parse_arguments(["--train-steps", "20", "--", "--enable-checkpoint-selection", "true"])
    assert arguments.train_steps == 20 and not arguments.logs_only
    assert arguments.run_arguments == ["--enable-checkpoint-selection", "true"]
    with pytest.raises(SystemExit) as exit_:
        traffic.parse_arguments(["--help"])
    assert exit_.value.code == 0


def test_the_summary_shows_the_three_models_by_the_task_s_main_metric():
    evaluation = traffic.run_artifacts.Evaluation(
        task_type="classification", metric="accuracy",
        scores={"teacher": 0.8, "untuned_student": 0.1, "distilled_student": 0.6},
        latencies_s={"teacher": 6.0, "untuned_student": 2.0, "distilled_student": 0.5}, examples=64,
        metrics={"teacher_accuracy": 0.8, "untuned_student_accuracy": 0.1, "distilled_student_accuracy": 0.6,
                 "teacher_latency_s": 6.0, "untuned_student_latency_s": 2.0, "distilled_student_latency_s": 0.5,
                 "distilled_student_macro_f1": 0.55, "examples": 64.0},
    )
    text = traffic.summary(evaluation, 600.0)
    assert "| distilled student | 60.0% | not recorded | 0.50 s |" in text
    assert "distilled / teacher: 75% of the teacher's accuracy" in text
    assert "- distilled_student_macro_f1: 0.55" in text and "- teacher_accuracy" not in text


def test_the_summary_shows_each_score_s_interval_the_paired_difference_and_the_gate_s_decision():
    metrics = {"teacher_accuracy": 0.8, "untuned_student_accuracy": 0.1, "distilled_student_accuracy": 0.6,
               "teacher_latency_s": 6.0, "untuned_student_latency_s": 2.0, "distilled_student_latency_s": 0.5,
               "examples": 64.0, "teacher_accuracy_ci_low": 0.7, "teacher_accuracy_ci_high": 0.9,
               "distilled_student_accuracy_ci_low": 0.48, "distilled_student_accuracy_ci_high": 0.72,
               "distilled_student_minus_teacher_accuracy_ci_low": -0.33,
               "distilled_student_minus_teacher_accuracy_ci_high": -0.08, "distilled_student_macro_f1_ci_low": 0.4}
    evaluation = traffic.run_artifacts.Evaluation(
        task_type="classification", metric="accuracy",
        scores={"teacher": 0.8, "untuned_student": 0.1, "distilled_student": 0.6},
        latencies_s={"teacher": 6.0, "untuned_student": 2.0, "distilled_student": 0.5}, examples=64,
        metrics=metrics, gate=("failed", "the distilled student reached 75% of the teacher's accuracy, below 90%"),
    )
    text = traffic.summary(evaluation, 600.0)
    assert "| distilled student | 60.0% | [48.0%, 72.0%] | 0.50 s |" in text
    assert "| untuned student | 10.0% | not recorded | 2.00 s |" in text
    assert "distilled - teacher, paired 95% interval: [-33.0%, -8.0%]" in text
    assert "deploy gate: failed: the distilled student reached 75% of the teacher's accuracy, below 90%" in text
    assert "- distilled_student_macro_f1_ci_low: 0.4" in text and "teacher_accuracy_ci_low" not in text
