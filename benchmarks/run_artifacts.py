"""A local pipeline run's figures, read back from what kfp.local leaves under the run's folder: one folder per
task, each with its `executor_output.json` (the task's output parameters and its artifacts' metadata, the
Metrics artifact's values among them). The benchmarks that run the whole pipeline read their results here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kfp_distill._implementation.task_metrics import MAIN_METRIC, METRIC_TITLES

MODELS = ("teacher", "untuned_student", "distilled_student")


def metric_name(metric: str) -> str:
    """A metric as a sentence names it: its report title, a one-word title in lower case ("accuracy")."""
    title = METRIC_TITLES[metric]
    return title.lower() if title.isalpha() else title


def task_dir(run_dir: Path, task: str) -> Path:
    """The folder of one task's outputs in a run."""
    path = run_dir / task
    if not path.is_dir():
        raise FileNotFoundError(f"the run {run_dir} has no outputs of {task}: {sorted(p.name for p in run_dir.iterdir())}")
    return path


def _executor_output(task_path: Path) -> dict:
    return json.loads((task_path / "executor_output.json").read_text())


def step_metrics(task_path: Path) -> dict[str, float]:
    """The task's Metrics artifact, as kfp.local recorded it in the task's executor output."""
    for artifact in _executor_output(task_path)["artifacts"]["metrics"]["artifacts"]:
        return dict(artifact["metadata"])
    raise ValueError(f"{task_path}: no metrics in the executor output")


def decided_task_type(run_dir: Path) -> str:
    """The task type validate-dataset settled on (given, or inferred from the data), which evaluate scored by."""
    return _executor_output(task_dir(run_dir, "validate-dataset"))["parameterValues"]["task_type"]


@dataclass(frozen=True)
class Evaluation:
    """evaluate's figures of one run: the task's main metric for each model, their mean latencies per example,
    and every metric evaluate recorded (intervals and the like, where it records them)."""

    task_type: str
    metric: str
    scores: dict[str, float]  # model -> the main metric
    latencies_s: dict[str, float]  # model -> mean latency per example
    examples: int
    metrics: dict[str, float]
    gate: tuple[str, str] | None = None  # the deploy gate's (decision, reason), where evaluate output one

    def interval(self, name: str) -> tuple[float, float] | None:
        """The 95% interval evaluate recorded beside the score `name` (`<name>_ci_low`, `<name>_ci_high`)."""
        low, high = self.metrics.get(f"{name}_ci_low"), self.metrics.get(f"{name}_ci_high")
        return None if low is None or high is None else (low, high)

    @property
    def student_share(self) -> float:
        """The distilled student's main metric as a share of the teacher's (0 where the teacher scored 0)."""
        teacher = self.scores["teacher"]
        return self.scores["distilled_student"] / teacher if teacher else 0.0


def read_evaluation(run_dir: Path) -> Evaluation:
    """evaluate's figures of a run, scored by the main metric of the task type the run settled on."""
    task_type = decided_task_type(run_dir)
    metric = MAIN_METRIC[task_type]
    evaluate = task_dir(run_dir, "evaluate")
    metrics = step_metrics(evaluate)
    outputs = _executor_output(evaluate).get("parameterValues", {})
    return Evaluation(
        task_type=task_type,
        metric=metric,
        scores={model: metrics[f"{model}_{metric}"] for model in MODELS},
        # The teacher's latency is left out of the metrics when it answered none.
        latencies_s={model: metrics.get(f"{model}_latency_s", float("nan")) for model in MODELS},
        examples=int(metrics["examples"]),
        metrics=metrics,
        gate=(outputs["gate_decision"], outputs["gate_reason"]) if "gate_decision" in outputs else None,
    )


def answer_curve(run_dir: Path, metric: str) -> list[tuple[int, float]]:
    """tune-student's score of the student's own answers to the evaluation rows at each evaluation, as (step,
    `metric`) pairs, from the TensorBoard logs it wrote (`/eval_<metric>`); empty without evaluation data."""
    from kfp_distill.components.evaluate.training_curves import read_scalars

    return read_scalars(task_dir(run_dir, "tune-student") / "tensorboard_logs").get(f"/eval_{metric}", [])
