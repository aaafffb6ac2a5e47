"""The quality benchmark's report: each comparison read off the runs' curves."""


def test_report_reads_each_comparison_off_the_curves(report_script):
    def run(arm, curve):
        return {"arm": arm, "fraction": 1.0, "train_rows": 8, "steps": 30, "seconds_per_step": 1.0, "curve": [
            {"step": s, "train_flops": f, "train_cpu_s": f / 1e12, "validation_accuracy": v, "test_accuracy": a}
            for s, f, v, a in curve
        ]}

    standard = run("standard", [(10, 10e12, 0.2, 0.1), (20, 20e12, 0.5, 0.4), (30, 30e12, 0.4, 0.45)])
    dss = run("dss", [(10, 15e12, 0.3, 0.3), (20, 30e12, 0.6, 0.5), (30, 45e12, 0.6, 0.7)])
    rows = {row["arm"]: row for row in report_script.summarize([standard, dss])}
    assert rows["standard"]["equal_steps"] == "45.0 ± 0.0"
    assert (rows["standard"]["convergence"], rows["standard"]["convergence_step"]) == ("40.0 ± 0.0", 20)
    # Best validation reached first at step 20; the standard arm's 30 TFLOPs buy dss 20 steps.
    assert (rows["dss"]["convergence"], rows["dss"]["convergence_step"]) == ("50.0 ± 0.0", 20)
    assert (rows["dss"]["equal_compute"], rows["dss"]["compute_step"]) == ("50.0 ± 0.0", 20)
    assert rows["dss"]["equal_steps"] == "70.0 ± 0.0"
    assert rows["dss"]["tflops_per_step"] == 1.5 and rows["standard"]["tflops_per_step"] == 1.0
