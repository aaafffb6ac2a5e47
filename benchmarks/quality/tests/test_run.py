"""The quality benchmark end to end on a tiny SVAMP-like set with a tiny student: it runs, resumes, reports."""

import pytest

from kfp_distill._implementation.jsonl import load_rows, write_jsonl


def test_arms_choose_labels_and_rationales(run_script):
    rows = [
        {"input_text": "q1", "output_text": "gold1", "rationale": "because1", "teacher_label": "palm1"},
        {"input_text": "q2", "output_text": "gold2", "rationale": "because2", "teacher_label": None},
    ]
    assert run_script.arm_rows(rows, "standard") == [
        {"input_text": "q1", "output_text": "gold1"}, {"input_text": "q2", "output_text": "gold2"}
    ]
    assert run_script.arm_rows(rows, "dss")[1] == {"input_text": "q2", "output_text": "gold2", "rationale": "because2"}
    # PaLM gave no answer to q2: the arms on its labels leave that row out.
    assert run_script.arm_rows(rows, "label_distillation") == [{"input_text": "q1", "output_text": "palm1"}]
    assert run_script.arm_rows(rows, "dss_teacher_labels") == [
        {"input_text": "q1", "output_text": "palm1", "rationale": "because1"}
    ]
    explained = run_script.arm_rows(rows, "explain_then_answer")
    assert explained[0] == {"input_text": "q1", "output_text": "gold1", "rationale": "because1"}  # validation: the label
    assert run_script.explained_target(explained[0]) == {"input_text": "q1", "output_text": "because1 So the answer is gold1."}


def test_validation_rows_stay_put_and_fractions_nest_by_seed(run_script):
    rows = [{"input_text": str(i)} for i in range(100)]
    train_all, validation = run_script.split_rows(rows, 10, 1.0, seed=0)
    train_half, validation_again = run_script.split_rows(rows, 10, 0.5, seed=1)
    assert validation == validation_again and len(train_all) == 90 and len(train_half) == 45
    assert not {r["input_text"] for r in validation} & {r["input_text"] for r in train_all}


def test_runs_resume_and_report(run_script, report_script, svamp_like, tmp_path, tiny_student_dir):
    out = tmp_path / "svamp"
    arguments = [
        "--dataset", "svamp", "--data-dir", str(svamp_like), "--out-dir", str(out), "--student", tiny_student_dir,
        "--seeds", "0", "1", "--fractions", "1.0", "0.5", "--steps", "4", "--eval-interval", "2",
        "--batch-size", "2", "--validation-size", "4", "--max-new-tokens", "4", "--rationale-tokens", "6",
    ]
    assert run_script.main(arguments + ["--arms", "standard", "dss"]) == 0
    runs = load_rows(out / "runs.jsonl")
    assert sorted((r["arm"], r["fraction"], r["seed"]) for r in runs) == sorted(
        (arm, fraction, seed) for arm in ("standard", "dss") for fraction in (1.0, 0.5) for seed in (0, 1)
    )
    for run in runs:
        assert [point["step"] for point in run["curve"]] == [2, 4]
        assert all(0 <= point["test_accuracy"] <= 1 and point["train_cpu_s"] > 0 and point["train_flops"] > 0 for point in run["curve"])
        assert run["train_rows"] == (20 if run["fraction"] == 1.0 else 10) and run["test_rows"] == 6

    flops = {(r["arm"], r["fraction"], r["seed"]): r["curve"][-1]["train_flops"] for r in runs}
    assert all(flops[("dss", f, s)] > flops[("standard", f, s)] for _, f, s in flops)  # the rationale task costs

    # Other settings in the same folder would mix incomparable runs: refused before any run.
    with pytest.raises(SystemExit, match=r"runs.jsonl:1: field steps is 4 there but 6 in this command"):
        run_script.main([*arguments, "--steps", "6", "--arms", "standard"])  # the last --steps counts

    # Resuming runs only what is missing: the one-task arms, on all the data only.
    assert run_script.main(arguments + ["--arms", "standard", "dss", "label_distillation", "explain_then_answer"]) == 0
    runs = load_rows(out / "runs.jsonl")
    added = [(r["arm"], r["fraction"]) for r in runs[8:]]
    assert added == [("label_distillation", 1.0), ("explain_then_answer", 1.0)] * 2
    explained = {r["seed"]: r for r in runs if r["arm"] == "explain_then_answer"}
    # One target holding the rationale costs more per step than the label alone.
    assert explained[0]["curve"][-1]["train_flops"] > flops[("standard", 1.0, 0)]
    # PaLM's label is wrong on every fifth row (rows 0, 5, ... of the shuffled training rows stay in).
    assert runs[8]["train_rows"] == 20

    readme = tmp_path / "README.md"
    readme.write_text("# Results\n<!-- quality:svamp -->\nold table\n<!-- /quality:svamp -->\nafter\n")
    assert report_script.main([str(out), "--readme", str(readme)]) == 0
    table = (out / "results.md").read_text()
    assert readme.read_text() == f"# Results\n<!-- quality:svamp -->\n{table}<!-- /quality:svamp -->\nafter\n"
    assert "| 100% | distilling step-by-step (gold labels + PaLM rationales) | 2 | 20 |" in table
    assert "| 50% | standard fine-tuning (gold labels) | 2 | 10 |" in table
    assert ("| distilling step-by-step (gold labels + PaLM rationales), 100% of the data | "
            "explain then answer, one task (gold labels + PaLM rationales), 100% | 2 |") in table
    assert (out / "results.png").read_bytes().startswith(b"\x89PNG")


def test_a_run_stopped_midway_resumes_from_its_checkpoint(run_script, svamp_like, tmp_path, tiny_student_dir,
                                                           monkeypatch, capsys):
    def arguments(out):
        return [
            "--dataset", "svamp", "--data-dir", str(svamp_like), "--out-dir", str(out), "--student",
            tiny_student_dir, "--arms", "dss", "--seeds", "0", "--steps", "6", "--eval-interval", "2",
            "--batch-size", "2", "--validation-size", "4", "--max-new-tokens", "4",
        ]

    assert run_script.main(arguments(tmp_path / "whole")) == 0
    (whole,) = load_rows(tmp_path / "whole" / "runs.jsonl")

    class Preempted(Exception):
        pass

    class StoppedAfterStep3(run_script.HeldOutAccuracy):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise Preempted  # step 2's checkpoint is written, step 3's work is lost

    stopped = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        patch.setattr(run_script, "HeldOutAccuracy", StoppedAfterStep3)
        try:
            run_script.main(arguments(stopped))
        except Preempted:
            pass
        else:
            raise AssertionError("the run was not stopped")
    assert not (stopped / "runs.jsonl").exists()
    assert [row["step"] for row in load_rows(stopped / "unfinished" / "dss-1.0-seed0" / "curve.jsonl")] == [2]
    capsys.readouterr()

    # A run half done by a runner that did not record a setting may have used another default: refused.
    settings_file = stopped / "unfinished" / "dss-1.0-seed0" / "settings.jsonl"
    (settings,) = load_rows(settings_file)
    write_jsonl(settings_file, [{name: value for name, value in settings.items() if name != "mixed_precision"}])
    with pytest.raises(SystemExit, match=r"settings.jsonl:1: field mixed_precision is '\(not recorded\)' there but 'no'"):
        run_script.main(arguments(stopped))
    write_jsonl(settings_file, [settings])

    assert run_script.main(arguments(stopped)) == 0
    assert "resuming from" in capsys.readouterr().out
    (resumed,) = load_rows(stopped / "runs.jsonl")
    assert resumed["mixed_precision"] == "no" and resumed["bf16_autocast"] is False  # float32 on every machine
    assert not (stopped / "unfinished" / "dss-1.0-seed0").exists()
    # The same curve as the run that was never stopped, CPU seconds aside (they keep adding up).
    assert [point["step"] for point in resumed["curve"]] == [2, 4, 6]
    for kept, again in zip(whole["curve"], resumed["curve"]):
        assert again["train_flops"] == kept["train_flops"]
        assert (again["validation_accuracy"], again["test_accuracy"]) == (kept["validation_accuracy"], kept["test_accuracy"])
    cpu_seconds = [point["train_cpu_s"] for point in resumed["curve"]]
    assert cpu_seconds == sorted(cpu_seconds) and cpu_seconds[0] > 0
