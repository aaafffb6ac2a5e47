"""The quality benchmark's report: each comparison read off the runs' curves."""

import json

import pytest


def test_report_reads_each_comparison_off_the_curves(report_script):
    def run(arm, curve, seed=0):
        return {"arm": arm, "fraction": 1.0, "seed": seed, "train_rows": 8, "steps": 30, "seconds_per_step": 1.0, "curve": [
            {"step": s, "train_flops": f, "train_cpu_s": f / 1e12, "validation_accuracy": v, "test_accuracy": a}
            for s, f, v, a in curve
        ]}

    standard = run("standard", [(10, 10e12, 0.2, 0.1), (20, 20e12, 0.5, 0.4), (30, 30e12, 0.4, 0.45)])
    dss = run("dss", [(10, 15e12, 0.3, 0.3), (20, 30e12, 0.6, 0.5), (30, 45e12, 0.6, 0.7)])
    rows = {row["arm"]: row for row in report_script.summarize([standard, dss])}
    assert rows["standard"]["equal_steps"] == "45.0"  # one seed: no spread to show
    assert (rows["standard"]["convergence"], rows["standard"]["convergence_step"]) == ("40.0", 20)
    # Best validation reached first at step 20; the standard arm's 30 TFLOPs buy dss 20 steps.
    assert (rows["dss"]["convergence"], rows["dss"]["convergence_step"]) == ("50.0", 20)
    assert (rows["dss"]["equal_compute"], rows["dss"]["compute_step"]) == ("50.0", 20)
    assert rows["dss"]["equal_steps"] == "70.0"
    assert rows["dss"]["tflops_per_step"] == 1.5 and rows["standard"]["tflops_per_step"] == 1.0

    # Each run's budget is its own seed's standard run: a standard seed that used more FLOPs than another
    # is still measured at its last step, and so is dss within that seed's budget.
    standard_costlier = run("standard", [(10, 11e12, 0.2, 0.2), (20, 22e12, 0.5, 0.3), (30, 33e12, 0.4, 0.35)], seed=1)
    dss_again = run("dss", [(10, 15e12, 0.3, 0.3), (20, 30e12, 0.6, 0.6), (30, 45e12, 0.6, 0.7)], seed=1)
    rows = {row["arm"]: row for row in report_script.summarize([standard, dss, standard_costlier, dss_again])}
    assert (rows["standard"]["equal_compute"], rows["standard"]["compute_step"]) == ("40.0 ± 7.1", 30)
    assert (rows["dss"]["equal_compute"], rows["dss"]["compute_step"]) == ("55.0 ± 7.1", 20)


def test_equal_compute_allows_slightly_costlier_rows(report_script):
    """Another arm's same steps may cost a little more (other row lengths): read at its last step, not earlier."""
    curve = [{"step": 10, "train_flops": 10e12, "test_accuracy": 0.3}, {"step": 20, "train_flops": 20.2e12, "test_accuracy": 0.4}]
    assert report_script.at_compute({"curve": curve}, 20e12) == (0.4, 20)
    assert report_script.at_compute({"curve": curve}, 19e12) == (0.3, 10)  # 6% over: outside the budget


def test_claims_are_paired_by_seed(report_script):
    def run(arm, fraction, seed, curve):
        return {"arm": arm, "fraction": fraction, "seed": seed, "curve": [
            {"step": s, "train_flops": f, "validation_accuracy": v, "test_accuracy": a} for s, f, v, a in curve
        ]}

    runs = [
        run("standard", 1.0, 0, [(10, 10e12, 0.2, 0.30), (20, 20e12, 0.3, 0.40)]),
        run("standard", 1.0, 1, [(10, 10e12, 0.4, 0.50), (20, 20e12, 0.3, 0.45)]),
        run("dss", 1.0, 0, [(10, 15e12, 0.3, 0.35), (20, 30e12, 0.2, 0.50)]),
        run("dss", 1.0, 1, [(10, 15e12, 0.3, 0.40), (20, 30e12, 0.5, 0.65)]),
        run("dss", 0.5, 1, [(10, 15e12, 0.3, 0.40), (20, 30e12, 0.2, 0.60)]),  # seed 0 missing: one pair
        run("standard", 0.5, 1, [(10, 10e12, 0.3, 0.30), (20, 20e12, 0.4, 0.35)]),
    ]
    (same_data, half_against_half, half_data) = report_script.paired_differences(runs)
    # Half the data on both sides: +25 at step 20, +5 at convergence (dss at 10, 40%; standard at 20, 35%),
    # +5 at equal compute (dss's step 10 is within the 20 TFLOPs of standard's half-data run: 40% against 35%).
    assert (half_against_half["fraction"], half_against_half["baseline_fraction"]) == (0.5, 0.5)
    assert (half_against_half["equal_steps"], half_against_half["convergence"]) == ("+25.0", "+5.0")
    assert half_against_half["equal_compute"] == "+5.0"
    # Seed 0: +10 at step 20; -5 at convergence (dss's best validation at step 10, 35%, standard's at 20, 40%);
    # -5 at equal compute (dss's step 10 is within standard's 20 TFLOPs, 35% against standard's last, 40%).
    # Seed 1: +20; +15 (dss at 20, 65%, standard at 10, 50%); -5 (40% against 45%).
    assert (same_data["arm"], same_data["fraction"], same_data["seeds"]) == ("dss", 1.0, 2)
    assert same_data["equal_steps"] == "+15.0 ± 7.1"
    assert same_data["convergence"] == "+5.0 ± 14.1"
    assert same_data["equal_compute"] == "-5.0 ± 0.0"
    assert (half_data["fraction"], half_data["seeds"], half_data["equal_steps"]) == (0.5, 1, "+15.0")
    assert half_data["equal_compute"] == "-5.0"  # within standard's 20 TFLOPs on all the data: 40% against 45%
    assert report_script.still_rising(runs[3]) and not report_script.still_rising(runs[2])


def test_a_broken_record_is_an_error_naming_file_line_and_field(report_script, tmp_path):
    from kfp_distill._implementation.jsonl import DatasetError

    point = {"step": 10, "train_flops": 1e12, "train_cpu_s": 1.0, "validation_accuracy": 0.5, "test_accuracy": 0.5}
    good = {"dataset": "svamp", "arm": "standard", "fraction": 1.0, "seed": 0, "train_rows": 8, "student": "s", "steps": 10,
            "batch_size": 8, "alpha": 0.5, "learning_rate": 5e-5, "test_rows": 200, "curve": [point]}
    runs = tmp_path / "runs.jsonl"
    runs.write_text(json.dumps(good) + "\n" + json.dumps({**good, "seed": 1, "curve": [point, {"step": 20}]}) + "\n")
    with pytest.raises(DatasetError, match=r"runs.jsonl, line 2, field 'curve': measurement 2 has no train_flops"):
        report_script.load_runs(runs)
    runs.write_text(json.dumps({key: value for key, value in good.items() if key != "arm"}) + "\n")
    with pytest.raises(DatasetError, match=r"runs.jsonl, line 1, field 'arm': missing"):
        report_script.load_runs(runs)
    runs.write_text(json.dumps({**good, "arm": "distillation"}) + "\n")
    with pytest.raises(DatasetError, match=r"runs.jsonl, line 1, field 'arm': unknown arm 'distillation'"):
        report_script.load_runs(runs)
    runs.write_text(json.dumps(good) + "\n")
    assert report_script.load_runs(runs) == [good]


def test_an_alpha_variant_takes_the_single_task_runs_of_its_baseline(report_script, tmp_path):
    def run(arm, seed, alpha=0.5, steps=10):
        point = {"step": steps, "train_flops": 1e12, "train_cpu_s": 1.0, "validation_accuracy": 0.5, "test_accuracy": 0.5}
        return {"dataset": "esnli", "arm": arm, "fraction": 1.0, "seed": seed, "train_rows": 8, "student": "s",
                "steps": steps, "batch_size": 8, "alpha": alpha, "learning_rate": 5e-5, "test_rows": 200,
                "train_limit": 880, "curve": [point]}

    variant = [run("dss", 0, alpha=0.8)]
    older = {key: value for key, value in run("standard", 0).items() if key != "train_limit"}
    baseline = [older, run("dss", 0), run("label_distillation", 0), run("standard", 1), run("standard", 0, steps=20)]
    # Only standard fine-tuning (dss's baseline) of seed 0 (the variant's); a field an older record lacks does
    # not count against it; the 20-step run trained otherwise.
    assert report_script.single_task_baselines(variant, baseline, tmp_path) == [older]
    with pytest.raises(ValueError, match=r"no single-task run .* \(dataset esnli, student s, steps 20,"):
        report_script.single_task_baselines([run("dss", 1, steps=20)], baseline, tmp_path)
    on_teacher_labels = [run("dss_teacher_labels", 0, alpha=0.8)]
    assert report_script.single_task_baselines(on_teacher_labels, baseline, tmp_path) == [older, baseline[2]]

    for name, runs in (("esnli-alpha", variant), ("esnli", baseline)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- quality:esnli-alpha -->\nold\n<!-- /quality:esnli-alpha -->\nafter\n")
    report_script.main([str(tmp_path / "esnli-alpha"), "--baseline-dir", str(tmp_path / "esnli"), "--readme", str(readme)])
    table = readme.read_text()
    assert "alpha 0.8" in table and "| 100% | standard fine-tuning (gold labels) | 1 |" in table
    assert "| distilling step-by-step (gold labels + PaLM rationales), 100% of the data | standard" in table
    assert table.startswith("before\n") and table.endswith("<!-- /quality:esnli-alpha -->\nafter\n")
