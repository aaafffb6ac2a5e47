"""Distilling from logged chat traffic: a public support chat written as each vendor logs it, then distilled end
to end from the OpenAI-format log.

Data: the banking77 sample (benchmarks/data/banking77: 160 training and 64 evaluation conversations of an
online bank's support chat, a system prompt, the customer's message and the intent it expresses as the
assistant's logged answer, 8 intents). `write_logs` writes both splits in every log format of
benchmarks/log_formats.py, through its writers only: OpenAI chat rows, Vertex AI Gemini tuning rows and
Amazon Bedrock model-invocation log records (Converse and Anthropic Messages bodies), as
`<logs>/<format>/{train,evaluation}.jsonl`. validate-dataset reads each of them into the same training and
evaluation rows (benchmarks/tests/test_logged_traffic.py checks it without running the pipeline).

Then, unless `--logs-only`, it runs the pipeline as a user would, `kfp-distill run` on the OpenAI-format log
with its evaluation log and everything else at its default (the logged answers are the labels the teacher
explains), with the default teacher and student, and prints evaluate's figures: the distilled student's,
the teacher's and the untuned student's score (the task's main metric) and mean latency per example, the
distilled student's share of the teacher's score, and any interval or gate decision evaluate recorded.
Arguments after `--` go to `kfp-distill run` as they are: the acceptance gate, where the pipeline has one,
is set there. The teacher's answers are cached under `--work-dir`, so an interrupted run resumes.

Usage (from the repository root; the run takes about an hour on 2 CPU cores):
    .venv/bin/python benchmarks/logged_traffic.py --logs-only                  # the log files alone (seconds)
    .venv/bin/python benchmarks/logged_traffic.py [--train-steps 80] [-- <more kfp-distill run arguments>]
    .venv/bin/python benchmarks/logged_traffic.py --summary-only              # the latest run's figures again
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kfp_distill._implementation.jsonl import load_rows, write_jsonl
from kfp_distill._implementation.scripts import load_module
from kfp_distill._implementation.task_metrics import METRIC_TITLES
from kfp_distill.components.evaluate.results import DIFFERENCE

_BENCHMARKS = Path(__file__).resolve().parent
log_formats = load_module("log_formats", _BENCHMARKS / "log_formats.py")
run_artifacts = load_module("run_artifacts", _BENCHMARKS / "run_artifacts.py")
draw_samples = load_module("draw_samples", _BENCHMARKS / "draw_samples.py")

SAMPLE_DIR = draw_samples.SAMPLES_DIR / "banking77"
RUN_FORMAT = "openai_chat"  # the format the end-to-end run distils from
MODEL_TITLES = {"distilled_student": "distilled student", "teacher": "teacher", "untuned_student": "untuned student"}


def conversation_turns(record: dict) -> list[tuple[str, str]]:
    """A sample record's conversation as (role, text) turns: its system prompt, then its messages in order."""
    turns = [("system", record["system"])] if record.get("system") else []
    return turns + [(message["role"], message["content"]) for message in record["messages"]]


def write_logs(logs: Path, sample_dir: Path = SAMPLE_DIR) -> dict[str, dict[str, Path]]:
    """Writes the sample's training and evaluation conversations in every log format of log_formats.WRITERS.

    Returns:
        format -> split ("train", "evaluation") -> the file written.
    """
    written: dict[str, dict[str, Path]] = {}
    for split in draw_samples.SPLITS:
        conversations = [conversation_turns(record) for record in load_rows(str(sample_dir / f"{split}.jsonl"))]
        for name, write in log_formats.WRITERS.items():
            path = logs / name / f"{split}.jsonl"
            write_jsonl(path, [write(turns) for turns in conversations])
            written.setdefault(name, {})[split] = path
    return written


def run_pipeline(files: dict[str, Path], arguments: argparse.Namespace) -> Path:
    """`kfp-distill run` on the logs of one format, as a user runs it; returns the run's folder."""
    from kfp_distill.interfaces.cli import main as kfp_distill
    from kfp_distill.pipelines.local_runner import latest_run

    output_dir = arguments.work_dir / "runs"
    status = kfp_distill([
        "run", "--output-dir", str(output_dir),
        "--dataset-uri", str(files["train"]), "--evaluation-data-uri", str(files["evaluation"]),
        "--train-steps", str(arguments.train_steps),
        "--teacher-cache-uri", str(arguments.work_dir / "teacher.sqlite"),
        "--model-display-name", "logged-traffic-banking77",
        *arguments.run_arguments,
    ])
    run_dir = latest_run(output_dir)
    if status != 0 or run_dir is None:
        raise SystemExit(f"kfp-distill run failed (exit status {status}); its outputs are under {output_dir}")
    return run_dir


def summary(evaluation, wall_time_s: float | None = None) -> str:
    """evaluate's figures of the run as a Markdown table, each score with its 95% interval, the gate's decision,
    and the other figures it recorded beside the scores."""
    title = METRIC_TITLES[evaluation.metric]
    lines = [
        f"task type {evaluation.task_type}, {evaluation.examples} evaluation rows"
        + (f", wall time {wall_time_s / 60:.0f} min" if wall_time_s is not None else ""),
        "",
        f"| model | {title} | 95% interval | mean latency per example |",
        "|---|---:|---:|---:|",
    ]
    for model, name in MODEL_TITLES.items():
        score = f"{model}_{evaluation.metric}"
        lines.append(f"| {name} | {evaluation.scores[model]:.1%} | {_interval(evaluation.interval(score))} "
                     f"| {evaluation.latencies_s[model]:.2f} s |")
    share = f"{evaluation.student_share:.0%} of the teacher's {run_artifacts.metric_name(evaluation.metric)}"
    difference = evaluation.interval(f"{DIFFERENCE}_{evaluation.metric}")
    lines += ["", f"distilled / teacher: {share}"]
    if difference is not None:
        lines.append(f"distilled - teacher, paired 95% interval: [{difference[0]:+.1%}, {difference[1]:+.1%}]")
    if evaluation.gate is not None:
        lines.append(f"deploy gate: {evaluation.gate[0]}: {evaluation.gate[1]}")
    # The rest as evaluate recorded them: the task's other metrics, throughput and their intervals.
    shown = {f"{model}_{suffix}" for model in MODEL_TITLES for suffix in (evaluation.metric, "latency_s")}
    scores = {f"{model}_{evaluation.metric}" for model in MODEL_TITLES} | {f"{DIFFERENCE}_{evaluation.metric}"}
    shown |= {f"{name}_{end}" for name in scores for end in ("ci_low", "ci_high")}
    lines += ["", "all of evaluate's other metrics:"]
    lines += [f"- {name}: {value:g}" for name, value in sorted(evaluation.metrics.items()) if name not in shown]
    return "\n".join(lines)


def _interval(interval: tuple[float, float] | None) -> str:
    return "not recorded" if interval is None else f"[{interval[0]:.1%}, {interval[1]:.1%}]"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=draw_samples.REPOSITORY / ".cache" / "logged-traffic",
                        help="where the logs, the teacher's cache and the run go (default: %(default)s)")
    parser.add_argument("--train-steps", type=int, default=80)
    parser.add_argument("--logs-only", action="store_true", help="write the log files and stop")
    parser.add_argument("--summary-only", action="store_true",
                        help="print the figures of the latest run under --work-dir again, and run nothing")
    parser.add_argument("run_arguments", nargs="*", metavar="-- RUN_ARGUMENTS",
                        help="more `kfp-distill run` arguments, after --")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.summary_only:
        from kfp_distill.pipelines.local_runner import latest_run

        run_dir = latest_run(arguments.work_dir / "runs")
        if run_dir is None:
            raise SystemExit(f"no run under {arguments.work_dir / 'runs'}")
        print(f"{run_dir}\n{summary(run_artifacts.read_evaluation(run_dir))}")
        return 0
    written = write_logs(arguments.work_dir / "logs")
    for name, files in written.items():
        print(f"{name}: {files['train']}, {files['evaluation']}")
    if arguments.logs_only:
        return 0
    started = time.perf_counter()
    run_dir = run_pipeline(written[RUN_FORMAT], arguments)
    print(summary(run_artifacts.read_evaluation(run_dir), time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
