"""The quality benchmark's report: each comparison read off the runs' curves."""


def test_report_reads_each_comparison_off_the_curves(report_script):
    def run(arm, curve):
        return {"arm": arm, "fraction": 1.0, "train_rows": 8, "steps": 30, "seconds_per_step": 1.0, "curve": [
            {"step": s, "train_cpu_s": t, "validation_accuracy": v, "test_accuracy": a} for s, t, v, a in curve
        ]}

    standard = run("standard", [(10, 10.0, 0.2, 0.1), (20, 20.0, 0.5, 0.4), (30, 30.0, 0.4, 0.45)])
    dss = run("dss", [(10, 15.0, 0.3, 0.3), (20, 30.0, 0.6, 0.5), (30, 45.0, 0.6, 0.7)])
    rows = {row["arm"]: row for row in report_script.summarize([standard, dss])}
    assert rows["standard"]["equal_steps"] == "45.0 ± 0.0"
    assert (rows["standard"]["convergence"], rows["standard"]["convergence_step"]) == ("40.0 ± 0.0", 20)
    # Best validation reached first at step 20; the standard arm's 30 s budget buys dss 20 steps.
    assert (rows["dss"]["convergence"], rows["dss"]["convergence_step"]) == ("50.0 ± 0.0", 20)
    assert (rows["dss"]["equal_compute"], rows["dss"]["compute_step"]) == ("50.0 ± 0.0", 20)
    assert rows["dss"]["equal_steps"] == "70.0 ± 0.0"
