"""How much training the data gets: the passes over the training examples that `train_steps` x `batch_size`
makes, and warnings when the setting is far from the contract's recommended settings or repeats a small set
many times with the last checkpoint kept."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RecommendedSettings:
    """One row of the contract's table of recommended settings."""

    examples: str
    min_steps: int
    max_steps: int

    def __str__(self) -> str:
        return f"{self.examples} examples, {self.min_steps}-{self.max_steps} steps"


# The contract's "Recommended settings", by task type; the other task types have none.
RECOMMENDED_SETTINGS = {
    "classification": RecommendedSettings("100+", 200, 1000),
    "summarization": RecommendedSettings("100-500+", 1000, 1500),
    "extractive_qa": RecommendedSettings("100+", 200, 800),
}
# Steps below the recommended range's lower end divided by this, or above its upper end times this, are far
# outside it.
FAR_OUTSIDE_FACTOR = 2
# More passes than this over the training examples, with the last checkpoint kept, are warned of. Measured on
# extractive QA (70 rows, batch 8): at 9 passes the evaluation loss had risen from its low at 2.3 passes, and
# the kept checkpoint answered worse (F1 34.7% against 43.8%).
MAX_PASSES_WITHOUT_SELECTION = 4


@dataclass(frozen=True)
class TrainingAmount:
    """How much training `examples` training examples get from `train_steps` steps of `batch_size`."""

    examples: int
    train_steps: int
    batch_size: int
    statement: str
    warnings: list[str] = field(default_factory=list)

    @property
    def examples_seen(self) -> int:
        return self.train_steps * self.batch_size

    @property
    def passes(self) -> float:
        """Passes (epochs) over the training examples."""
        return self.examples_seen / self.examples


def _passes(passes: float) -> str:
    return f"{passes:,.1f}" if passes >= 1 else f"{passes:.2g}"


def training_amount(
    examples: int,
    task_type: str,
    train_steps: int,
    batch_size: int,
    enable_checkpoint_selection: bool,
    *,
    evaluation_data: bool = True,
) -> TrainingAmount:
    """States the passes over the training examples the tuning settings make, and warns of settings likely to
    train badly.

    Args:
        examples: The training examples (at least 1).
        task_type: The task type (`tasks.TASK_TYPES`); classification, summarization and extractive QA have
            recommended settings.
        train_steps: The tuning steps.
        batch_size: The examples per tuning step.
        enable_checkpoint_selection: Whether tuning keeps its best evaluated checkpoint instead of the last.
        evaluation_data: Whether there is an evaluation set, without which no checkpoint is selected.

    Returns:
        The statement ("300 steps x batch size 8 = 2,400 examples seen: 2.4 passes over the 1,000 training
        examples (recommended for classification: ...)") and the warnings.

    Raises:
        ValueError: `train_steps` or `batch_size` is not a positive whole number.
    """
    for name, value in (("train_steps", train_steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    amount = TrainingAmount(examples, train_steps, batch_size, statement="")
    passes = amount.passes
    statement = (
        f"{train_steps:,} steps x batch size {batch_size} = {amount.examples_seen:,} examples seen: "
        f"{_passes(passes)} passes over the {examples:,} training examples"
    )
    if passes < 1:
        statement += f" ({examples - amount.examples_seen:,} are never seen)"
    recommended = RECOMMENDED_SETTINGS.get(task_type)
    if recommended:
        statement += f" (recommended for {task_type}: {recommended})"

    warnings = []
    if recommended and train_steps < recommended.min_steps / FAR_OUTSIDE_FACTOR:
        far = "below"
    elif recommended and train_steps > recommended.max_steps * FAR_OUTSIDE_FACTOR:
        far = "above"
    else:
        far = ""
    if far:
        warnings.append(
            f"train_steps {train_steps} is far {far} the {recommended.min_steps}-{recommended.max_steps} steps "
            f"recommended for {task_type} (with {recommended.examples} examples)"
        )
    selected = enable_checkpoint_selection and evaluation_data
    if passes > MAX_PASSES_WITHOUT_SELECTION and not selected:
        why = (
            "checkpoint selection has no evaluation set to choose by, so" if enable_checkpoint_selection
            else "without checkpoint selection"
        )
        fewer_steps = math.ceil(MAX_PASSES_WITHOUT_SELECTION * examples / batch_size)
        warning = (
            f"{train_steps:,} steps x batch size {batch_size} go over the {examples:,} training examples "
            f"{_passes(passes)} times, and {why} the last checkpoint is kept, likely past the best one: set "
            f"enable_checkpoint_selection with an evaluation set, or give more examples or fewer steps "
            f"({MAX_PASSES_WITHOUT_SELECTION} passes: {fewer_steps:,} steps)"
        )
        warnings.append(warning + (f"; recommended for {task_type}: {recommended}" if recommended else ""))
    return TrainingAmount(examples, train_steps, batch_size, statement, warnings)
