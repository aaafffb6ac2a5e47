"""The main scenario of Vertex AI's distillation guide, measured on real data: unlabeled training rows, labeled
and explained by the default embedded teacher, a student distilled from them, all through the pipeline as
`kfp-distill run` runs it.

For each task the benchmark draws rows of its data with a seed, writes the training rows with their labels
hidden (`input_text` only), the evaluation rows with their labels, and runs the distillation pipeline locally
with the default teacher and student, no few-shot file and the task type left to the pipeline to infer: the
teacher makes its own demonstrations, labels and explains every training row, and answers the evaluation
rows. Then it prints, per task, from the run's artifacts: the usable-answer share, the teacher's score on the
training rows (the benchmark knows their gold labels; the pipeline does not), the teacher's, untuned and
distilled student's score and mean latency per example on the evaluation rows, the teacher tokens spent,
tune-student's peak memory, the wall time, and which checkpoint tuning kept
(checkpoint selection on, evaluating every `--evaluation-interval` steps as the pipeline does by default) with the
student's score on its own answers at each evaluation. Scores are the main metric of the task type the run settled on
(accuracy for classification, SQuAD F1 for extractive QA, ROUGE-L for summarization). Targets: at least 95%
usable answers, and the distilled student at least 90% of the teacher's score.

Tasks:
- `esnli`: "Classify the relation ... into one of the following classes: [entailment, neutral, contradiction]"
  (the paper's data, `../shared/data/dsbs`, read in place; training rows from e-SNLI's validation split,
  evaluation rows from its test split);
- `cqa`: CommonsenseQA, "... one of the following options: [<the row's five choices>]" (the paper's data;
  multiple choice: each row lists its own options);
- `qed`: extractive QA, `question: ... context: ...` over 120-250-word Wikipedia paragraphs (the public sample
  in benchmarks/data/qed: 190 training and 50 evaluation rows);
- `scitldr`: summarization, a paper's abstract under a one-line instruction -> its TLDR (the public sample in
  benchmarks/data/scitldr: 200 training and 50 evaluation rows).

The teacher's answers are cached under `--work-dir`, so an interrupted run resumes where it stopped.
`--readme` puts the table between the unlabeled-route markers of benchmarks/README.md (the repository's own
README is the user manual and is never written).

Usage (from the repository root; about an hour per task of 100 rows on 2 CPU cores):
    .venv/bin/python benchmarks/unlabeled_route.py --tasks esnli cqa --readme
    .venv/bin/python benchmarks/unlabeled_route.py --tasks scitldr qed --readme
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent / "quality"))
from convert import DATASETS, DEFAULT_DATA_DIR  # noqa: E402

from kfp_distill._implementation.jsonl import load_rows, read_jsonl, write_jsonl  # noqa: E402
from kfp_distill._implementation.scripts import load_module  # noqa: E402
from kfp_distill._implementation.task_metrics import MAIN_METRIC, METRIC_TITLES, score_answers  # noqa: E402
from kfp_distill.components.generate_rationales.prompts import (  # noqa: E402
    DEFAULT_RATIONALE_LENGTH,
    RATIONALE_LENGTHS,
)
from kfp_distill.components.tune_student.config import TuningConfig  # noqa: E402

_BENCHMARKS = Path(__file__).resolve().parent
run_artifacts = load_module("run_artifacts", _BENCHMARKS / "run_artifacts.py")
SAMPLES_DIR = load_module("draw_samples", _BENCHMARKS / "draw_samples.py").SAMPLES_DIR

REPOSITORY = _BENCHMARKS.parent
RESULTS_FILE = REPOSITORY / "benchmarks" / "results" / "unlabeled_route.json"
BENCHMARKS_README = REPOSITORY / "benchmarks" / "README.md"
MAIN_README = REPOSITORY / "README.md"
README_MARKERS = ("<!-- unlabeled-route -->", "<!-- /unlabeled-route -->")
USABLE_TARGET = 0.95
STUDENT_SHARE_TARGET = 0.90


def _esnli_input(row: dict) -> str:
    return (
        "Classify the relation of the hypothesis to the premise into one of the following classes: "
        f"[entailment, neutral, contradiction]\nPremise: {row['premise']}\nHypothesis: {row['hypothesis']}"
    )


def _cqa_input(row: dict) -> str:
    return (
        f"Answer the question with one of the following options: [{', '.join(row['choices'])}]\n"
        f"Question: {row['question']}"
    )


def _cqa_usable(row: dict) -> bool:
    # The options are listed comma-separated: a choice holding a comma would read as two.
    return not any("," in choice for choice in row["choices"])


@dataclass(frozen=True)
class Task:
    """A benchmark task: a dataset of the paper's data (dsbs) and its rows in the guide's instruction format, or,
    without one, the public sample of the task's name under benchmarks/data (contract rows already)."""

    dataset: str | None = None
    input_text: Callable[[dict], str] | None = None
    usable: Callable[[dict], bool] = lambda row: True


TASKS = {
    "esnli": Task("esnli", _esnli_input),
    "cqa": Task("cqa", _cqa_input, _cqa_usable),
    "qed": Task(),
    "scitldr": Task(),
}


@dataclass
class TaskResult:
    """One task's figures, as the README's table shows them; scores are `metric`, the main metric of the task
    type the run settled on."""

    task: str
    rationale_length: str
    train_rows: int
    evaluation_rows: int
    train_steps: int
    usable_share: float
    task_type: str
    metric: str
    teacher_train_score: float
    teacher_score: float
    untuned_score: float
    distilled_score: float
    teacher_latency_s: float
    untuned_latency_s: float
    distilled_latency_s: float
    teacher_prompt_tokens: int
    teacher_completion_tokens: int
    restating_rationales: int
    self_made_demonstrations: str
    class_source: str
    peak_memory_mb: float | None
    wall_time_s: float
    date: str
    # Checkpoint choice (recorded since 2026-12-07): the student's main metric on its generated answers at
    # each evaluation, as [step, score] pairs, and the step whose checkpoint was kept.
    evaluation_interval: int | None = None
    answer_curve: list[list[float]] | None = None
    selected_step: int | None = None

    @property
    def student_share(self) -> float:
        return self.distilled_score / self.teacher_score if self.teacher_score else 0.0


def sample_rows(name: str, training: bool, count: int, seed: int, data_dir: Path) -> list[dict]:
    """`count` rows of a task's training or evaluation split, drawn with a seed, as {"input_text", "output_text"}
    (the gold label)."""
    task = TASKS[name]
    if task.dataset is None:
        path = SAMPLES_DIR / name / f"{'train' if training else 'evaluation'}.jsonl"
        rows = load_rows(str(path))
        if count > len(rows):
            raise ValueError(f"{path} holds {len(rows)} rows; {count} were asked for")
        return random.Random(seed).sample(rows, count)
    spec = DATASETS[task.dataset]
    split = spec.train_split if training else spec.test_split
    path = data_dir / task.dataset / f"{task.dataset}_{split}.json"
    rows = [row for _, row in read_jsonl(str(path)) if task.usable(row)]
    drawn = random.Random(seed).sample(rows, count)
    return [{"input_text": task.input_text(row), "output_text": spec.gold_label(row)} for row in drawn]


def run_task(name: str, arguments: argparse.Namespace) -> TaskResult:
    """Runs the pipeline on one task's unlabeled rows and reads its figures back from the artifacts."""
    from kfp_distill.pipelines.distillation.pipeline import distillation
    from kfp_distill.pipelines.local_runner import init_local_runner, latest_run

    work = arguments.work_dir / f"{name}-{arguments.rationale_length}"
    train = sample_rows(name, True, arguments.train_rows, arguments.seed, arguments.data_dir)
    evaluation = sample_rows(name, False, arguments.evaluation_rows, arguments.seed, arguments.data_dir)
    write_jsonl(work / "train.jsonl", ({"input_text": row["input_text"]} for row in train))  # labels hidden
    write_jsonl(work / "evaluation.jsonl", evaluation)
    gold = {row["input_text"]: row["output_text"] for row in train}

    runs = work / "runs"
    init_local_runner(runs)
    started = time.perf_counter()
    distillation(
        dataset_uri=str(work / "train.jsonl"),
        evaluation_data_uri=str(work / "evaluation.jsonl"),
        teacher_cache_uri=str(work / "teacher.sqlite"),
        teacher_rationale_length=arguments.rationale_length,
        train_steps=arguments.train_steps,
        evaluation_interval=arguments.evaluation_interval,
        model_display_name=f"unlabeled-route-{name}-{arguments.rationale_length}",
    )
    wall_time_s = time.perf_counter() - started
    run_dir = latest_run(runs)

    teacher_dir = run_artifacts.task_dir(run_dir, "generate-rationales")
    teacher = run_artifacts.step_metrics(teacher_dir)
    evaluated = run_artifacts.read_evaluation(run_dir)
    report = (teacher_dir / "report").read_text()
    tuning = run_artifacts.step_metrics(run_artifacts.task_dir(run_dir, "tune-student"))
    return TaskResult(
        task=name,
        rationale_length=arguments.rationale_length,
        train_rows=len(train),
        evaluation_rows=evaluated.examples,
        train_steps=arguments.train_steps,
        usable_share=teacher["answered"] / teacher["rows"],
        task_type=evaluated.task_type,
        metric=evaluated.metric,
        teacher_train_score=teacher_train_score(
            evaluated.task_type, load_rows(str(teacher_dir / "distilled_dataset")), gold
        ),
        teacher_score=evaluated.scores["teacher"],
        untuned_score=evaluated.scores["untuned_student"],
        distilled_score=evaluated.scores["distilled_student"],
        teacher_latency_s=evaluated.latencies_s["teacher"],
        untuned_latency_s=evaluated.latencies_s["untuned_student"],
        distilled_latency_s=evaluated.latencies_s["distilled_student"],
        teacher_prompt_tokens=int(teacher["prompt_tokens"]),
        teacher_completion_tokens=int(teacher["completion_tokens"]),
        restating_rationales=int(teacher["restating_rationales"]),
        self_made_demonstrations=_report_line(report, "- Few-shot examples:"),
        class_source=_report_line(report, "- Classes:"),
        peak_memory_mb=tuning["peak_memory_mb"],
        wall_time_s=wall_time_s,
        date=time.strftime("%Y-%m-%d"),
        evaluation_interval=arguments.evaluation_interval,
        answer_curve=[list(point) for point in run_artifacts.answer_curve(run_dir, evaluated.metric)],
        selected_step=int(tuning["selected_step"]),
    )


def teacher_train_score(task_type: str, labeled: list[dict], gold: dict[str, str]) -> float:
    """The teacher's labels of the training rows scored against their hidden gold labels by the task's main
    metric, a row the teacher left without a usable answer scoring 0."""
    answers = {row["input_text"]: row["teacher_label"] for row in labeled}
    scores = score_answers(task_type, [answers.get(text) for text in gold], list(gold.values()))
    return scores.values[MAIN_METRIC[task_type]]


def _report_line(report: str, prefix: str) -> str:
    return next((line[len(prefix):].strip() for line in report.splitlines() if line.startswith(prefix)), "")


def table(results: list[TaskResult]) -> str:
    """The results as a Markdown table, with the targets checked."""
    lines = [
        "| task | rationales | train rows (labels hidden) | usable answers | teacher score (train labels) | teacher | "
        "untuned student | distilled student | distilled / teacher | latency per example: teacher / untuned / "
        "distilled | teacher tokens (prompt + completion) | tuning peak memory | wall time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        memory = f"{result.peak_memory_mb:,.0f} MiB" if result.peak_memory_mb is not None else "not recorded"
        lines.append(
            f"| {result.task} ({METRIC_TITLES[result.metric]}, {result.evaluation_rows} evaluation rows, "
            f"{result.date}) | {result.rationale_length} | {result.train_rows} "
            f"| {result.usable_share:.1%} | {result.teacher_train_score:.1%} | {result.teacher_score:.1%} "
            f"| {result.untuned_score:.1%} | {result.distilled_score:.1%} | {result.student_share:.0%} "
            f"| {result.teacher_latency_s:.2f} s / {result.untuned_latency_s:.2f} s / "
            f"{result.distilled_latency_s:.2f} s | {result.teacher_prompt_tokens:,} + "
            f"{result.teacher_completion_tokens:,} | {memory} | {result.wall_time_s / 60:.0f} min |"
        )
    lines.append("")
    for result in results:
        usable = "met" if result.usable_share >= USABLE_TARGET else "missed"
        share = "met" if result.student_share >= STUDENT_SHARE_TARGET else "missed"
        lines.append(
            f"- {result.task}, {result.rationale_length} rationales: usable answers {result.usable_share:.1%} (target {USABLE_TARGET:.0%}: {usable}); "
            f"distilled student at {result.student_share:.0%} of the teacher's {run_artifacts.metric_name(result.metric)} (target "
            f"{STUDENT_SHARE_TARGET:.0%}: {share}); {result.restating_rationales} rationales only restate their "
            f"answer; few-shot: {result.self_made_demonstrations}"
            # Multiple choice has no class list: each row lists its own options.
            + (f"; classes: {result.class_source}" if result.class_source else "")
            + (f"; {_checkpoint_choice(result)}." if result.answer_curve else ".")
        )
    return "\n".join(lines)


def _checkpoint_choice(result: TaskResult) -> str:
    curve = ", ".join(f"{step:.0f}: {score:.1%}" for step, score in result.answer_curve)
    return (
        f"checkpoint: step {result.selected_step} of {result.train_steps} kept (the student's "
        f"{run_artifacts.metric_name(result.metric)} on its own answers every {result.evaluation_interval} steps: "
        f"{curve})"
    )


def update_readme(readme: Path, text: str) -> None:
    """Puts `text` between the README's unlabeled-route markers (which must be there); refuses the repository's
    own README, the user manual, which takes no measurements."""
    if readme.resolve() == MAIN_README.resolve():
        raise ValueError(f"{readme} is the user manual; the benchmark's table goes to {BENCHMARKS_README}")
    content = readme.read_text()
    start, end = README_MARKERS
    if start not in content or end not in content:
        raise ValueError(f"{readme} has no {start} ... {end} markers")
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--train-rows", type=int, default=100)
    parser.add_argument("--evaluation-rows", type=int, default=50)
    parser.add_argument("--train-steps", type=int, default=80)
    parser.add_argument("--evaluation-interval", type=int, default=TuningConfig.evaluation_interval,
                        help="steps between evaluations, checkpoint selection's choices (default: the pipeline's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rationale-length", default=DEFAULT_RATIONALE_LENGTH, choices=RATIONALE_LENGTHS)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--work-dir", type=Path, default=REPOSITORY / ".cache" / "unlabeled-route")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="the JSON file the figures go to")
    parser.add_argument(
        "--readme", type=Path, nargs="?", const=BENCHMARKS_README,
        help=f"also put the table between the unlabeled-route markers of this README (default: {BENCHMARKS_README})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    recorded = json.loads(arguments.results.read_text()) if arguments.results.exists() else {}
    for name in arguments.tasks:
        result = run_task(name, arguments)
        recorded[f"{name}-{arguments.rationale_length}"] = asdict(result)
        arguments.results.parent.mkdir(parents=True, exist_ok=True)
        arguments.results.write_text(json.dumps(recorded, indent=2) + "\n")
    text = table([TaskResult(**recorded[key]) for key in sorted(recorded)])
    print(text)
    if arguments.readme:
        update_readme(arguments.readme, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
