"""What evaluate found: each model's scores and latencies, every example compared, and the Markdown report.

Its own module so that `html_report.py` reads the results without importing evaluation.py, which renders
both reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from statistics import fmean

from kfp_distill._implementation.bootstrap import RESAMPLES, Interval, paired_difference_interval, statistic_interval
from kfp_distill._implementation.deploy_gate import GateDecision
from kfp_distill._implementation.task_metrics import METRIC_TITLES, METRICS_BY_TASK, TaskScores, confusion_matrix
from kfp_distill._implementation.tasks import TaskType

WORST_EXAMPLES_SHOWN = 10
MODEL_TITLES = {"teacher": "Teacher", "untuned_student": "Untuned student", "distilled_student": "Distilled student"}
# The metric prefix of the distilled student's score less the teacher's, and its row's title in the reports.
DIFFERENCE = "distilled_student_minus_teacher"
DIFFERENCE_TITLE = "Distilled student − teacher"
_CELL_CHARS = 160


@dataclass
class ExampleComparison:
    """What each model answered for one evaluation example, and how it scored.

    Scores are the task's per-example score, from 0 to 1; teacher_answer is None when the teacher did not answer.
    """

    input_text: str
    gold: str
    teacher_answer: str | None
    untuned_answer: str
    distilled_answer: str
    teacher_correct: bool
    untuned_correct: bool
    distilled_correct: bool
    teacher_score: float
    untuned_score: float
    distilled_score: float


@dataclass
class ModelResult:
    """One model's scores on the task, and its latency on each example it answered."""

    scores: TaskScores
    latencies_s: list[float]

    @property
    def mean_latency_s(self) -> float | None:
        return fmean(self.latencies_s) if self.latencies_s else None

    @property
    def examples_per_s(self) -> float | None:
        """Examples answered per second, one request at a time."""
        total = sum(self.latencies_s)
        return len(self.latencies_s) / total if total > 0 else None


@dataclass
class EvaluationResult:
    """The three models' scores and latencies on the task, with every example compared."""

    task: TaskType
    teacher: ModelResult
    untuned_student: ModelResult
    distilled_student: ModelResult
    teacher_unanswered: int
    student_model_reference: str
    comparisons: list[ExampleComparison] = field(default_factory=list)
    gate: GateDecision | None = None

    @property
    def examples(self) -> int:
        return len(self.comparisons)

    def score_names(self) -> tuple[str, ...]:
        """The scores every model gets: `accuracy`, then the task's metrics (accuracy once where it is one)."""
        return tuple(dict.fromkeys(("accuracy", *METRICS_BY_TASK[self.task.name])))

    def score(self, prefix: str, name: str) -> float:
        """One of `score_names` for the model of metric prefix `prefix`, or for `distilled_student_minus_teacher`."""
        if prefix == DIFFERENCE:
            return self.score("distilled_student", name) - self.score("teacher", name)
        scores = self.models()[prefix].scores
        return scores.values[name] if name in scores.values else scores.accuracy

    def score_text(self, prefix: str, name: str) -> str:
        """A score with its interval as the reports show it: `60.0% [40.0, 80.0]`, a difference in points."""
        value, interval = self.score(prefix, name), self.intervals[f"{prefix}_{name}"]
        if prefix == DIFFERENCE:
            return f"{value * 100:+.1f} pts [{interval.low * 100:+.1f}, {interval.high * 100:+.1f}]"
        return f"{value:.1%} [{interval.low * 100:.1f}, {interval.high * 100:.1f}]"

    @cached_property
    def intervals(self) -> dict[str, Interval]:
        """The 95% bootstrap interval of every score, by metric name: `<model>_<score>` for each model's, and
        `distilled_student_minus_teacher_<score>` for the difference, resampled in pairs (`bootstrap.py`)."""
        rows = len(self.teacher.scores.correct)
        intervals = {
            f"{prefix}_{name}": statistic_interval(model.scores.statistics[name], rows)
            for prefix, model in self.models().items()
            for name in self.score_names()
        }
        for name in self.score_names():
            intervals[f"{DIFFERENCE}_{name}"] = paired_difference_interval(
                self.distilled_student.scores.statistics[name], self.teacher.scores.statistics[name], rows
            )
        return intervals

    def interval_note(self) -> str:
        """How the reports' intervals were made, in a sentence."""
        return (
            f"In brackets: 95% intervals, from {RESAMPLES:,} bootstrap resamples of the {self.examples} evaluation "
            f"rows; those of the last row are paired, both models scored on the same resampled rows."
        )

    @property
    def speedup(self) -> float | None:
        """How many times faster the distilled student answers than the teacher did."""
        teacher, distilled = self.teacher.mean_latency_s, self.distilled_student.mean_latency_s
        if teacher is None or not distilled:
            return None
        return teacher / distilled

    def speed_comparison(self) -> str | None:
        """The distilled student's speed against the teacher's, in words; None when the teacher was not timed."""
        if self.speedup is None:
            return None
        if self.speedup >= 1:
            return f"The distilled student answers {self.speedup:.1f}x faster than the teacher did."
        return f"The distilled student answers {1 / self.speedup:.1f}x slower than the teacher did."

    def models(self) -> dict[str, ModelResult]:
        """The three models by metric prefix: teacher, untuned_student, distilled_student."""
        return {
            "teacher": self.teacher,
            "untuned_student": self.untuned_student,
            "distilled_student": self.distilled_student,
        }

    def confusion_matrix(self) -> tuple[list[str], list[list[int]]] | None:
        """The distilled student's confusion matrix (categories, rows of counts) on a classification task."""
        if self.task.name != "classification":
            return None
        return confusion_matrix([c.distilled_answer for c in self.comparisons], [c.gold for c in self.comparisons])

    def metrics(self) -> dict[str, float]:
        """The scalar metrics, by name.

        Per model: `<model>_accuracy`, the task's metrics, `<model>_latency_s` (mean) and
        `<model>_examples_per_s`; `distilled_student_minus_teacher_<score>` for accuracy and each task metric;
        beside every score its 95% interval, `<name>_ci_low` and `<name>_ci_high`; then `examples` and
        `speedup`. The teacher's latency, throughput and the speedup are left out when the teacher answered none.
        """
        values: dict[str, float | None] = {}
        for prefix, model in self.models().items():
            values[f"{prefix}_accuracy"] = model.scores.accuracy
            values.update({f"{prefix}_{name}": value for name, value in model.scores.values.items()})
            values[f"{prefix}_latency_s"] = model.mean_latency_s
            values[f"{prefix}_examples_per_s"] = model.examples_per_s
        values.update({f"{DIFFERENCE}_{name}": self.score(DIFFERENCE, name) for name in self.score_names()})
        for name, interval in self.intervals.items():
            values[f"{name}_ci_low"], values[f"{name}_ci_high"] = interval.low, interval.high
        values["examples"] = float(self.examples)
        values["speedup"] = self.speedup
        return {name: float(value) for name, value in values.items() if value is not None}

    def worst_examples(self, limit: int = WORST_EXAMPLES_SHOWN) -> list[ExampleComparison]:
        """Examples where the distilled student scored below full marks, lowest score first.

        Among equal scores, those the other models did best on come first.
        """
        missed = [c for c in self.comparisons if c.distilled_score < 1.0]
        return sorted(missed, key=lambda c: (c.distilled_score, -(c.teacher_score + c.untuned_score)))[:limit]

    def to_markdown(self) -> str:
        """The report: the task type, a results table, then the worst examples side by side."""
        metric_names = METRICS_BY_TASK[self.task.name]
        titles = " | ".join(METRIC_TITLES[name] for name in metric_names)
        lines = [
            "# Evaluation: teacher vs untuned student vs distilled student",
            "",
            f"{self.examples} evaluation examples. Task type: **{self.task.name}** ({self.task.how_chosen}).",
            "",
            f"| Model | {titles} | Mean latency (s) | Examples/s |",
            "|---|" + "---|" * (len(metric_names) + 2),
        ]
        for prefix, model in self.models().items():
            title = MODEL_TITLES[prefix]
            if prefix == "untuned_student":
                title += f" (`{_cell(self.student_model_reference)}`)"
            cells = [self.score_text(prefix, name) for name in metric_names]
            cells += [_number(model.mean_latency_s, ".3f"), _number(model.examples_per_s, ".2f")]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        cells = [self.score_text(DIFFERENCE, name) for name in metric_names]
        lines += [f"| {DIFFERENCE_TITLE} | " + " | ".join(cells) + " | | |", "", self.interval_note(), ""]
        if self.gate is not None:
            lines += [f"**Deploy gate: {self.gate.decision}**: {self.gate.reason}.", ""]
        speed = self.speed_comparison()
        if speed:
            lines += [speed, ""]
        if self.teacher_unanswered:
            lines += [
                f"The teacher's predictions miss {self.teacher_unanswered} of the {self.examples} evaluation "
                "examples; they count as wrong for the teacher.",
                "",
            ]
        worst = self.worst_examples()
        lines.append("## Worst examples")
        lines.append("")
        if not worst:
            lines.append("The distilled student answered every example correctly.")
            return "\n".join(lines) + "\n"
        lines += [
            f"{len(worst)} of the examples the distilled student did worst on "
            "(✓ marks a correct answer, a dash a missing one).",
            "",
            "| Input | Gold | Teacher | Distilled | Untuned |",
            "|---|---|---|---|---|",
        ]
        for c in worst:
            teacher = "—" if c.teacher_answer is None else _marked(c.teacher_answer, c.teacher_correct)
            lines.append(
                f"| {_cell(c.input_text)} | {_cell(c.gold)} | {teacher} | "
                f"{_marked(c.distilled_answer, c.distilled_correct)} | {_marked(c.untuned_answer, c.untuned_correct)} |"
            )
        return "\n".join(lines) + "\n"


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _cell(text: str) -> str:
    """Text made safe for one Markdown table cell, shortened."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"


def _marked(answer: str, correct: bool) -> str:
    shown = _cell(answer) if answer else "*(empty)*"
    return f"{shown} ✓" if correct else shown
