"""The main scenario of Vertex AI's distillation guide, measured on real data: unlabeled training rows, labeled
and explained by the default embedded teacher, a student distilled from them, all through the pipeline as
`kfp-distill run` runs it.

For each task the benchmark takes rows of the paper's data (`../shared/data/dsbs`, read in place), writes the
training rows in the guide's instruction format with their labels hidden (`input_text` only), the evaluation
rows with their labels, and runs the distillation pipeline locally with the default teacher and student and
no few-shot file: the teacher makes its own demonstrations, labels and explains every training row, and
answers the evaluation rows. Then it prints, per task, from the run's artifacts: the usable-answer share, the
teacher's label accuracy on the training rows (the benchmark knows their gold labels; the pipeline does not),
the teacher's, untuned and distilled student's accuracy and mean latency per example on the evaluation rows,
and the teacher tokens spent. Targets: at least 95% usable answers, and the distilled student at
least 90% of the teacher's accuracy.

Tasks (both classification with the classes in the instruction, as the guide's examples write them):
- `esnli`: "Classify the relation ... into one of the following classes: [entailment, neutral, contradiction]"
  (training rows from e-SNLI's validation split, evaluation rows from its test split);
- `cqa`: CommonsenseQA, "... one of the following options: [<the row's five choices>]" (multiple choice: each
  row lists its own options).

The teacher's answers are cached under `--work-dir`, so an interrupted run resumes where it stopped.

Usage (from the repository root; about an hour per task on 2 CPU cores):
    .venv/bin/python benchmarks/unlabeled_route.py --tasks esnli cqa --readme benchmarks/README.md
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

from kfp_distill._implementation.answers import answers_match  # noqa: E402
from kfp_distill._implementation.jsonl import load_rows, read_jsonl, write_jsonl  # noqa: E402
from kfp_distill.components.generate_rationales.prompts import (  # noqa: E402
    DEFAULT_RATIONALE_LENGTH,
    RATIONALE_LENGTHS,
)

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS_FILE = REPOSITORY / "benchmarks" / "results" / "unlabeled_route.json"
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
    """A benchmark task: the dsbs dataset it reads, and its rows in the guide's instruction format."""

    dataset: str
    input_text: Callable[[dict], str]
    usable: Callable[[dict], bool] = lambda row: True


TASKS = {"esnli": Task("esnli", _esnli_input), "cqa": Task("cqa", _cqa_input, _cqa_usable)}


@dataclass
class TaskResult:
    """One task's figures, as the README's table shows them."""

    task: str
    rationale_length: str
    train_rows: int
    evaluation_rows: int
    train_steps: int
    usable_share: float
    teacher_train_accuracy: float
    teacher_accuracy: float
    untuned_accuracy: float
    distilled_accuracy: float
    teacher_latency_s: float
    untuned_latency_s: float
    distilled_latency_s: float
    teacher_prompt_tokens: int
    teacher_completion_tokens: int
    restating_rationales: int
    self_made_demonstrations: str
    class_source: str
    wall_time_s: float
    date: str

    @property
    def student_share(self) -> float:
        return self.distilled_accuracy / self.teacher_accuracy if self.teacher_accuracy else 0.0


def sample_rows(task: Task, split: str, count: int, seed: int, data_dir: Path) -> list[dict]:
    """`count` rows of a split, drawn with a seed, as {"input_text", "output_text"} (the gold label)."""
    spec = DATASETS[task.dataset]
    path = data_dir / task.dataset / f"{task.dataset}_{split}.json"
    rows = [row for _, row in read_jsonl(str(path)) if task.usable(row)]
    drawn = random.Random(seed).sample(rows, count)
    return [{"input_text": task.input_text(row), "output_text": spec.gold_label(row)} for row in drawn]


def _task_dir(run_dir: Path, task: str) -> Path:
    path = run_dir / task
    if not path.is_dir():
        raise FileNotFoundError(f"the run {run_dir} has no outputs of {task}: {sorted(p.name for p in run_dir.iterdir())}")
    return path


def _metrics(task_dir: Path) -> dict[str, float]:
    """The step's Metrics artifact, as kfp.local recorded it in the task's executor output."""
    executor_output = json.loads((task_dir / "executor_output.json").read_text())
    for artifact in executor_output["artifacts"]["metrics"]["artifacts"]:
        return dict(artifact["metadata"])
    raise ValueError(f"{task_dir}: no metrics in the executor output")


def run_task(name: str, arguments: argparse.Namespace) -> TaskResult:
    """Runs the pipeline on one task's unlabeled rows and reads its figures back from the artifacts."""
    from kfp_distill.pipelines.distillation.pipeline import distillation
    from kfp_distill.pipelines.local_runner import init_local_runner

    task = TASKS[name]
    spec = DATASETS[task.dataset]
    work = arguments.work_dir / f"{name}-{arguments.rationale_length}"
    train = sample_rows(task, spec.train_split, arguments.train_rows, arguments.seed, arguments.data_dir)
    evaluation = sample_rows(task, spec.test_split, arguments.evaluation_rows, arguments.seed, arguments.data_dir)
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
        evaluation_interval=arguments.train_steps,
        model_display_name=f"unlabeled-route-{name}-{arguments.rationale_length}",
    )
    wall_time_s = time.perf_counter() - started
    run_dir = max((path for path in runs.iterdir() if path.is_dir()), key=lambda path: path.stat().st_mtime)

    teacher_dir = _task_dir(run_dir, "generate-rationales")
    teacher = _metrics(teacher_dir)
    labeled = load_rows(str(teacher_dir / "distilled_dataset"))
    correct = sum(answers_match(row["teacher_label"], gold[row["input_text"]]) for row in labeled)
    report = (teacher_dir / "report").read_text()
    evaluated = _metrics(_task_dir(run_dir, "evaluate"))
    return TaskResult(
        task=name,
        rationale_length=arguments.rationale_length,
        train_rows=len(train),
        evaluation_rows=int(evaluated["examples"]),
        train_steps=arguments.train_steps,
        usable_share=teacher["answered"] / teacher["rows"],
        teacher_train_accuracy=correct / len(train),
        teacher_accuracy=evaluated["teacher_accuracy"],
        untuned_accuracy=evaluated["untuned_student_accuracy"],
        distilled_accuracy=evaluated["distilled_student_accuracy"],
        teacher_latency_s=evaluated["teacher_latency_s"],
        untuned_latency_s=evaluated["untuned_student_latency_s"],
        distilled_latency_s=evaluated["distilled_student_latency_s"],
        teacher_prompt_tokens=int(teacher["prompt_tokens"]),
        teacher_completion_tokens=int(teacher["completion_tokens"]),
        restating_rationales=int(teacher["restating_rationales"]),
        self_made_demonstrations=_report_line(report, "- Few-shot examples:"),
        class_source=_report_line(report, "- Classes:"),
        wall_time_s=wall_time_s,
        date=time.strftime("%Y-%m-%d"),
    )


def _report_line(report: str, prefix: str) -> str:
    return next((line[len(prefix):].strip() for line in report.splitlines() if line.startswith(prefix)), "")


def table(results: list[TaskResult]) -> str:
    """The results as a Markdown table, with the targets checked."""
    lines = [
        "| task | rationales | train rows (labels hidden) | usable answers | teacher label accuracy (train) | teacher | "
        "untuned student | distilled student | distilled / teacher | latency per example: teacher / untuned / "
        "distilled | teacher tokens (prompt + completion) | wall time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.task} ({result.evaluation_rows} evaluation rows, {result.date}) | {result.rationale_length} "
            f"| {result.train_rows} "
            f"| {result.usable_share:.1%} | {result.teacher_train_accuracy:.1%} | {result.teacher_accuracy:.1%} "
            f"| {result.untuned_accuracy:.1%} | {result.distilled_accuracy:.1%} | {result.student_share:.0%} "
            f"| {result.teacher_latency_s:.2f} s / {result.untuned_latency_s:.2f} s / "
            f"{result.distilled_latency_s:.2f} s | {result.teacher_prompt_tokens:,} + "
            f"{result.teacher_completion_tokens:,} | {result.wall_time_s / 60:.0f} min |"
        )
    lines.append("")
    for result in results:
        usable = "met" if result.usable_share >= USABLE_TARGET else "missed"
        share = "met" if result.student_share >= STUDENT_SHARE_TARGET else "missed"
        lines.append(
            f"- {result.task}, {result.rationale_length} rationales: usable answers {result.usable_share:.1%} (target {USABLE_TARGET:.0%}: {usable}); "
            f"distilled student at {result.student_share:.0%} of the teacher's accuracy (target "
            f"{STUDENT_SHARE_TARGET:.0%}: {share}); {result.restating_rationales} rationales only restate their "
            f"answer; few-shot: {result.self_made_demonstrations}"
            # Multiple choice has no class list: each row lists its own options.
            + (f"; classes: {result.class_source}." if result.class_source else ".")
        )
    return "\n".join(lines)


def update_readme(readme: Path, text: str) -> None:
    """Puts `text` between the README's unlabeled-route markers (which must be there)."""
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rationale-length", default=DEFAULT_RATIONALE_LENGTH, choices=RATIONALE_LENGTHS)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--work-dir", type=Path, default=REPOSITORY / ".cache" / "unlabeled-route")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="the JSON file the figures go to")
    parser.add_argument("--readme", type=Path, help="also put the table between the README's markers")
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
