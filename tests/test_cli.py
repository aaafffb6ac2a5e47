"""The `kfp-distill` command's argument parsing."""

import pytest

from kfp_distill.interfaces import cli


def test_a_boolean_pipeline_flag_takes_true_or_false_and_refuses_a_typo(capsys):
    assert [cli._boolean(text) for text in ("true", "Yes", "1", "false", "NO", "0")] == [True] * 3 + [False] * 3
    with pytest.raises(SystemExit) as stopped:
        cli.main(["run", "--enable-early-stopping", "ture"])
    assert stopped.value.code == 2  # argparse's usage error: nothing ran
    assert "--enable-early-stopping: expected true or false, got 'ture'" in capsys.readouterr().err


def test_run_help_gives_every_pipeline_flag_its_owners_help_and_default(capsys, monkeypatch):
    from kfp_distill.interfaces.parameters import pipeline_help

    monkeypatch.setenv("COLUMNS", "100000")  # no help text wrapped
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    options = capsys.readouterr().out.split("\noptions:\n")[1]
    # Each flag's entry: its line and, when the flag is long, its help on the next.
    lines = {entry.split()[0]: " ".join(entry.split()) for entry in options.split("\n  --")[1:]}
    lines = {f"--{flag}": line for flag, line in lines.items()}
    parameters = cli._pipeline_parameters()
    for name in parameters:
        line = lines[f"--{name.replace('_', '-')}"]
        assert pipeline_help(name) in line, name
    assert "(default: 300)" in lines["--train-steps"]
    assert "(default: true)" in lines["--enable-early-stopping"]
    assert "(required)" in lines["--dataset-uri"]


def test_run_says_where_it_looked_when_the_pipeline_left_no_run_folder(tmp_path, monkeypatch, capsys):
    from kfp_distill.pipelines import local_runner
    from kfp_distill.pipelines.distillation import pipeline

    class PipelineWritingNothing:
        """The pipeline's parameters, but a run that wrote nothing under the output folder."""

        pipeline_func = staticmethod(pipeline.distillation.pipeline_func)

        def __call__(self, **parameters):
            return type("Finished", (), {"output": "models:/x/1"})()

    monkeypatch.setattr(local_runner, "init_local_runner", lambda root: None)
    monkeypatch.setattr(pipeline, "distillation", PipelineWritingNothing())
    assert cli.main(["run", "--dataset-uri", "d.jsonl", "--output-dir", str(tmp_path)]) == 1
    assert f"no run folder (distillation-*) under {tmp_path}" in capsys.readouterr().err


def test_validate_checks_a_dataset_alone_and_prints_its_report(tmp_path, capsys, tiny_student_dir):
    from kfp_distill._implementation.jsonl import write_jsonl

    write_jsonl(tmp_path / "train.jsonl", [{"input_text": f"question {i}", "output_text": "yes"} for i in range(3)])
    write_jsonl(tmp_path / "eval.jsonl", [{"input_text": f"check {i}", "output_text": "no"} for i in range(10)])
    arguments = ["validate", str(tmp_path / "train.jsonl"), "--student-model-reference", tiny_student_dir]
    assert cli.main(arguments + ["--evaluation-data-uri", str(tmp_path / "eval.jsonl")]) == 0
    printed = capsys.readouterr().out
    assert "train.jsonl" in printed and "eval.jsonl" in printed and "Task type" in printed

    (tmp_path / "bad.jsonl").write_text('{"input_text": "a"}\n{"output_text": "b"}\n')
    assert cli.main(["validate", str(tmp_path / "bad.jsonl"), "--student-model-reference", tiny_student_dir]) == 1
    assert "bad.jsonl, line 2, field 'input_text'" in capsys.readouterr().err


def test_validate_states_the_passes_the_tuning_settings_make_with_the_pipelines_defaults(tmp_path, capsys, tiny_student_dir):
    from kfp_distill._implementation.jsonl import write_jsonl

    write_jsonl(tmp_path / "train.jsonl", [{"input_text": f"question {i}", "output_text": "yes"} for i in range(30)])
    arguments = ["validate", str(tmp_path / "train.jsonl"), "--student-model-reference", tiny_student_dir]
    assert cli.main(arguments) == 0
    printed = capsys.readouterr().out
    # The pipeline's defaults: 300 steps of 8, checkpoint selection on but nothing to select by.
    assert "- Training: 300 steps x batch size 8 = 2,400 examples seen: 80.0 passes over the 30 training examples" in printed
    assert "go over the 30 training examples 80.0 times, and checkpoint selection has no evaluation set" in printed
    assert cli.main(arguments + ["--enable-checkpoint-selection", "false"]) == 0
    assert "go over the 30 training examples 80.0 times, and without checkpoint selection" in capsys.readouterr().out

    settings = ["--train-steps", "10", "--batch-size", "6", "--enable-checkpoint-selection", "true"]
    assert cli.main(arguments + settings) == 0
    printed = capsys.readouterr().out
    assert "- Training: 10 steps x batch size 6 = 60 examples seen: 2.0 passes over the 30 training examples" in printed
    assert "checkpoint selection has no evaluation set to choose by" not in printed  # 2 passes: nothing to warn of


def test_validate_reads_logged_conversations_and_can_leave_their_answers_to_the_teacher(tmp_path, capsys, tiny_student_dir):
    from kfp_distill._implementation.jsonl import write_jsonl

    write_jsonl(tmp_path / "log.jsonl", [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"question {i}"},
                      {"role": "assistant", "content": "yes"}]}
        for i in range(3)
    ])
    arguments = ["validate", str(tmp_path / "log.jsonl"), "--student-model-reference", tiny_student_dir]
    assert cli.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "- Format: training **openai_chat**" in printed and "- Kind: **labeled**" in printed

    assert cli.main(arguments + ["--use-logged-answers", "false"]) == 0
    printed = capsys.readouterr().out
    assert "- Logged answers: not used" in printed and "- Kind: **unlabeled**" in printed


def test_models_alone_lists_the_models_as_models_list_does(tmp_path, capsys):
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    assert cli.main(["models", "list", "--registry-uri", registry]) == 0
    listed = capsys.readouterr().out
    assert cli.main(["models", "--registry-uri", registry]) == 0
    assert capsys.readouterr().out == listed == "No distilled models registered yet.\n"


def test_run_names_the_failed_step_with_its_error_and_points_at_the_log(tmp_path, stub_teacher, capsys):
    from kfp_distill.interfaces.demo import write_demo_data

    files = write_demo_data(tmp_path / "data", train_size=12, evaluation_size=10)
    arguments = ["run", "--output-dir", str(tmp_path / "runs"), "--dataset-uri", files["train"],
                 "--project", "my-project", "--accelerator-type", "TPU",
                 "--serving-container-image-uri", "us-central1-docker.pkg.dev/my-project/kfp/kfp-distill:0.1.0",
                 "--teacher-model-reference", f"{stub_teacher.base_url}#stub-teacher"]
    assert cli.main(arguments) == 1
    printed = capsys.readouterr()
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert printed.out.splitlines()[0].endswith("  preflight started")
    assert printed.out.splitlines()[1].split("  ")[1].startswith("preflight FAILED after ")
    assert len(printed.out.splitlines()) == 2, "kfp.local's lines went to the log"
    assert printed.err.startswith(
        f"kfp-distill run: step preflight failed; its last lines follow, all of the run's output is in {run_dir / 'run.log'}"
    )
    assert "PreflightError: refused before anything was spent: accelerator_type 'TPU' is not supported yet" in printed.err
    assert "Executing task 'preflight'" in (run_dir / "run.log").read_text()

    arguments[arguments.index("--output-dir") + 1] = str(tmp_path / "verbose")
    assert cli.main(arguments + ["--verbose"]) == 1
    printed = capsys.readouterr()
    assert "Executing task \x1b[96m'preflight'" in printed.out and "preflight FAILED after " in printed.out  # colored
    assert "    Traceback (most recent call last):" in printed.out, "the step's own output, as the log has it"
    assert printed.err.startswith("kfp-distill run: step preflight failed")
