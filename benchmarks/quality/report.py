"""The results table and plot of `run.py`'s runs: each arm at equal steps, at convergence, at equal compute.

- equal steps: test accuracy after the last step (every run of a benchmark has the same steps and batch);
- at convergence: test accuracy where the validation accuracy was highest (the earliest such point);
- equal compute: test accuracy at the last measurement within the training FLOPs the `standard` run of the
  same data share and seed used for all its steps (two-task steps cost more, so the two-task arms get fewer),
  give or take `COMPUTE_TOLERANCE`: another arm's rows differ in length, so its same steps cost slightly more.

Mean and standard deviation over seeds; a run whose validation accuracy was highest at its last measurement
had not converged, and the table counts those. Below the table, the paper's claims as differences in test
accuracy paired by seed: distilling step-by-step against standard fine-tuning on the same data and on twice
the data, without gold labels against label-only distillation, and against the rationale and label taught as
one target. Writes `results.md` and `results.png` next to `runs.jsonl`.

With `--readme`, the table also replaces the one between `<!-- quality:<name> -->` and
`<!-- /quality:<name> -->` in that Markdown file (`<name>`: the out-dir's name), so the README shows what the
last report computed.

A variant that only changes alpha (the label-loss weight of the two-task arms) leaves the single-task arms'
training as it was: `--baseline-dir` takes their runs from the benchmark it varies instead of training them
again, where the settings match.

Usage (from the repository root):
    .venv/bin/python benchmarks/quality/report.py results/svamp [--readme README.md] [--baseline-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from kfp_distill._implementation.jsonl import DatasetError, read_jsonl

RUNS_FILE = "runs.jsonl"
ARM_NAMES = {
    "standard": "standard fine-tuning (gold labels)",
    "dss": "distilling step-by-step (gold labels + PaLM rationales)",
    "label_distillation": "label-only distillation (PaLM labels)",
    "dss_teacher_labels": "distilling step-by-step (PaLM labels + rationales)",
    "explain_then_answer": "explain then answer, one task (gold labels + PaLM rationales)",
}


RUN_FIELDS = (
    "dataset", "arm", "fraction", "seed", "train_rows", "student", "steps", "batch_size", "alpha", "learning_rate",
    "test_rows", "curve",
)
POINT_FIELDS = ("step", "train_flops", "train_cpu_s", "validation_accuracy", "test_accuracy")


def load_runs(path: Path) -> list[dict]:
    """The run records of a runs.jsonl, each checked for the fields the table reads.

    Raises:
        DatasetError: A line that is not a JSON object, or a record or curve point without a field it needs
            (naming the file, line and field).
    """
    runs = []
    for line, run in read_jsonl(str(path)):
        for field in RUN_FIELDS:
            if field not in run:
                raise DatasetError(str(path), "missing", line, field)
        if run["arm"] not in ARM_NAMES:
            raise DatasetError(str(path), f"unknown arm {run['arm']!r}; expected one of {', '.join(ARM_NAMES)}", line, "arm")
        if not isinstance(run["curve"], list) or not run["curve"]:
            raise DatasetError(str(path), "expected a non-empty list of measurements", line, "curve")
        for number, point in enumerate(run["curve"], start=1):
            if not isinstance(point, dict):
                raise DatasetError(str(path), f"measurement {number} is not a JSON object", line, "curve")
            missing = [field for field in POINT_FIELDS if field not in point]
            if missing:
                raise DatasetError(str(path), f"measurement {number} has no {missing[0]}", line, "curve")
        runs.append(run)
    return runs


# What a single-task run's training and measurements depend on, besides its arm, data share and seed (alpha is
# not used). Older records lack some of these; as in run.py, a field one side lacks counts as the same.
SHARED_SETTINGS = (
    "dataset", "student", "steps", "batch_size", "learning_rate", "validation_rows", "test_rows", "eval_interval",
    "max_new_tokens", "train_limit", "mixed_precision", "rationale_tokens",
)


def at_equal_steps(run: dict) -> tuple[float, float]:
    last = run["curve"][-1]
    return last["test_accuracy"], last["step"]


def at_convergence(run: dict) -> tuple[float, float]:
    best = max(run["curve"], key=lambda point: (point["validation_accuracy"], -point["step"]))
    return best["test_accuracy"], best["step"]


# Label-only distillation's 300 steps on PaLM's labels cost 0.5% more than standard's on e-SNLI; without a
# tolerance it would be read 50 steps early. Far below one evaluation interval's FLOPs in these runs.
COMPUTE_TOLERANCE = 0.02


def at_compute(run: dict, budget_flops: float) -> tuple[float, float] | None:
    within = [point for point in run["curve"] if point["train_flops"] <= budget_flops * (1 + COMPUTE_TOLERANCE)]
    return (within[-1]["test_accuracy"], within[-1]["step"]) if within else None


def still_rising(run: dict) -> bool:
    """Whether the validation accuracy was highest at the last measurement (so not yet converged)."""
    return at_convergence(run)[1] == run["curve"][-1]["step"]


# The paper's claims, (arm, data share) against (baseline arm, data share): better at equal data (each share of
# the sweep), at half the data at least level with the baseline on all of it, and better as two tasks than with
# the rationale and label as one target (its single-task ablation).
CLAIMS = (
    (("dss", 1.0), ("standard", 1.0)),
    (("dss", 0.5), ("standard", 0.5)),
    (("dss", 0.5), ("standard", 1.0)),
    (("dss", 0.25), ("standard", 0.25)),
    (("dss_teacher_labels", 1.0), ("label_distillation", 1.0)),
    (("dss", 1.0), ("explain_then_answer", 1.0)),
)


def single_task_baselines(runs: list[dict], candidates: list[dict], source: Path) -> list[dict]:
    """The runs among `candidates` (another benchmark's) that `runs` lacks and needs: of the single-task arms
    its arms are compared with (in the claims, and standard fine-tuning for the compute budget), of its seeds,
    trained with the same settings.

    Raises:
        ValueError: `candidates` has no such run (so the variant would be compared with nothing).
    """
    settings = {field: runs[0][field] for field in SHARED_SETTINGS if field in runs[0]}
    present = {(run["arm"], run["fraction"]) for run in runs}
    needed = {baseline for claimed, baseline in CLAIMS if claimed in present} | {("standard", f) for _, f in present}
    seeds = {run["seed"] for run in runs}
    chosen = [
        run for run in candidates
        if (run["arm"], run["fraction"]) in needed - present
        and run["seed"] in seeds
        and all(run.get(field, value) == value for field, value in settings.items())
    ]
    if not chosen:
        described = ", ".join(f"{field} {value}" for field, value in settings.items())
        raise ValueError(f"{source}: no single-task run this benchmark needs with its seeds and settings ({described})")
    return chosen


def _mean_spread(values: list[float], signed: bool = False) -> str:
    """The mean in percent (points), ± the standard deviation when there are several values."""
    if not values:
        return "n/a"
    mean = f"{100 * statistics.fmean(values):{'+' if signed else ''}.1f}"
    return f"{mean} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else mean


def compute_budget(runs: list[dict], fraction: float, seed: int) -> float | None:
    """The training FLOPs of the `standard` run of this data share and seed (the mean over its seeds when that
    seed's is missing); None without any standard run of this share."""
    standard = [run for run in runs if (run["arm"], run["fraction"]) == ("standard", fraction)]
    same_seed = [run for run in standard if run["seed"] == seed]
    chosen = same_seed or standard
    return statistics.fmean(run["curve"][-1]["train_flops"] for run in chosen) if chosen else None


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (fraction, arm): the three comparisons' mean test accuracy, spread and steps."""
    groups: dict[tuple[float, str], list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["fraction"], run["arm"])].append(run)
    rows = []
    for (fraction, arm), members in sorted(groups.items(), key=lambda item: (-item[0][0], list(ARM_NAMES).index(item[0][1]))):
        budgets = [compute_budget(runs, fraction, run["seed"]) for run in members]
        equal_steps = [at_equal_steps(run) for run in members]
        converged = [at_convergence(run) for run in members]
        compute = [c for c in (at_compute(run, b) for run, b in zip(members, budgets) if b) if c]
        rows.append({
            "fraction": fraction,
            "arm": arm,
            "seeds": len(members),
            "train_rows": members[0]["train_rows"],
            "equal_steps": _mean_spread([a for a, _ in equal_steps]),
            "steps": members[0]["steps"],
            "convergence": _mean_spread([a for a, _ in converged]),
            "convergence_step": statistics.fmean(s for _, s in converged),
            "still_rising": sum(still_rising(run) for run in members),
            "equal_compute": _mean_spread([a for a, _ in compute]),
            "compute_step": statistics.fmean(s for _, s in compute) if compute else None,
            "tflops_per_step": statistics.fmean(run["curve"][-1]["train_flops"] / run["curve"][-1]["step"] for run in members) / 1e12,
            "cpu_seconds_per_step": statistics.fmean(run["curve"][-1]["train_cpu_s"] / run["curve"][-1]["step"] for run in members),
        })
    return rows


def paired_differences(runs: list[dict]) -> list[dict]:
    """For each claim whose arms both ran: test accuracy of the arm minus its baseline's, seed by seed, at equal
    steps, at convergence, and at equal compute (both within the FLOPs of the baseline share's standard run
    of that seed, as in the table)."""
    by_key = {(run["arm"], run["fraction"], run["seed"]): run for run in runs}
    differences = []
    for (arm, fraction), (baseline_arm, baseline_fraction) in CLAIMS:
        pairs = [
            (run, by_key[(baseline_arm, baseline_fraction, run["seed"])])
            for run in runs
            if (run["arm"], run["fraction"]) == (arm, fraction) and (baseline_arm, baseline_fraction, run["seed"]) in by_key
        ]
        if not pairs:
            continue
        within_compute = []
        for run, baseline in pairs:
            budget = compute_budget(runs, baseline_fraction, run["seed"])
            found, found_baseline = at_compute(run, budget), at_compute(baseline, budget)
            if found and found_baseline:
                within_compute.append(found[0] - found_baseline[0])
        differences.append({
            "arm": arm, "fraction": fraction, "baseline_arm": baseline_arm, "baseline_fraction": baseline_fraction,
            "seeds": len(pairs),
            "equal_steps": _mean_spread([at_equal_steps(run)[0] - at_equal_steps(baseline)[0] for run, baseline in pairs], signed=True),
            "convergence": _mean_spread([at_convergence(run)[0] - at_convergence(baseline)[0] for run, baseline in pairs], signed=True),
            "equal_compute": _mean_spread(within_compute, signed=True),
        })
    return differences


def to_markdown(rows: list[dict], runs: list[dict]) -> str:
    first = runs[0]
    lines = [
        f"Dataset `{first['dataset']}`, student `{first['student']}`, {first['steps']} steps of batch "
        f"{first['batch_size']}, alpha {first['alpha']}, learning rate {first['learning_rate']:g}; test accuracy "
        f"(%) on {first['test_rows']} test rows, mean ± standard deviation over seeds.",
        "",
        "| data | arm | seeds | train rows | equal steps | at convergence (mean step) | still rising | equal compute (mean step) | TFLOPs/step | CPU s/step |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        compute_step = "" if row["compute_step"] is None else f" ({row['compute_step']:.0f})"
        lines.append(
            f"| {row['fraction']:.0%} | {ARM_NAMES[row['arm']]} | {row['seeds']} | {row['train_rows']} | "
            f"{row['equal_steps']} ({row['steps']}) | {row['convergence']} ({row['convergence_step']:.0f}) | "
            f"{row['still_rising']}/{row['seeds']} | {row['equal_compute']}{compute_step} | "
            f"{row['tflops_per_step']:.2f} | {row['cpu_seconds_per_step']:.2f} |"
        )
    differences = paired_differences(runs)
    if differences:
        lines += [
            "",
            "The paper's claims: test accuracy of an arm minus its baseline's (points), paired by seed.",
            "",
            "| arm | against | seeds | equal steps | at convergence | equal compute |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for difference in differences:
            lines.append(
                f"| {ARM_NAMES[difference['arm']]}, {difference['fraction']:.0%} of the data | "
                f"{ARM_NAMES[difference['baseline_arm']]}, {difference['baseline_fraction']:.0%} | {difference['seeds']} | "
                f"{difference['equal_steps']} | {difference['convergence']} | {difference['equal_compute']} |"
            )
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], path: Path) -> None:
    """Test accuracy against steps for every arm on all the data (mean over seeds), and against training
    FLOPs, side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4))
    FigureCanvasAgg(figure)
    by_steps, by_flops = figure.subplots(1, 2)
    by_arm: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        if run["fraction"] == 1.0:
            by_arm[run["arm"]].append(run)
    for arm, members in by_arm.items():
        length = min(len(run["curve"]) for run in members)
        steps = [members[0]["curve"][i]["step"] for i in range(length)]
        accuracy = [100 * statistics.fmean(run["curve"][i]["test_accuracy"] for run in members) for i in range(length)]
        flops = [statistics.fmean(run["curve"][i]["train_flops"] for run in members) / 1e15 for i in range(length)]
        by_steps.plot(steps, accuracy, marker="o", label=ARM_NAMES[arm])
        by_flops.plot(flops, accuracy, marker="o", label=ARM_NAMES[arm])
    by_steps.set(xlabel="training steps", ylabel="test accuracy (%)", title="at equal steps")
    by_flops.set(xlabel="training PFLOPs", ylabel="test accuracy (%)", title="at equal compute")
    by_steps.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def replace_marked_table(markdown_file: Path, name: str, table: str) -> None:
    """Puts `table` between the file's `<!-- quality:<name> -->` markers (which must be there)."""
    start, end = f"<!-- quality:{name} -->\n", f"<!-- /quality:{name} -->"
    text = markdown_file.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise ValueError(f"{markdown_file}: no '{start.strip()}' ... '{end}' markers to put the {name} table between")
    before, rest = text.split(start, 1)
    markdown_file.write_text(before + start + table + end + rest.split(end, 1)[1], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, help="the folder run.py wrote runs.jsonl to")
    parser.add_argument("--readme", type=Path, help="a Markdown file whose marked table to replace")
    parser.add_argument("--baseline-dir", type=Path, help="a benchmark whose single-task runs to compare with")
    args = parser.parse_args(argv)
    runs = load_runs(args.out_dir / RUNS_FILE)
    if not runs:
        parser.error(f"{args.out_dir / RUNS_FILE} holds no runs yet")
    if args.baseline_dir:
        runs += single_task_baselines(runs, load_runs(args.baseline_dir / RUNS_FILE), args.baseline_dir)
    markdown = to_markdown(summarize(runs), runs)
    if args.baseline_dir:
        markdown += f"\nSingle-task runs from `{args.baseline_dir}` (alpha does not change them).\n"
    (args.out_dir / "results.md").write_text(markdown, encoding="utf-8")
    plot(runs, args.out_dir / "results.png")
    if args.readme:
        replace_marked_table(args.readme, args.out_dir.name, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
