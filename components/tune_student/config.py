"""The settings of one tuning run, checked when they are made."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal, get_args

from kfp_distill._implementation.limits import MAX_INPUT_TOKENS
from kfp_distill._implementation.setting_field import setting

TuningMethod = Literal["full", "lora"]
MixedPrecision = Literal["auto", "bf16", "no"]
# What early stopping watches: the contract's evaluation token accuracy (teacher-forced next tokens of the gold
# answers), or the task's main metric on the answers the student generates (`task_metrics.MAIN_METRIC`).
EarlyStoppingMetric = Literal["token_accuracy", "task_metric"]

# AdamW learning rates for short runs (hundreds of steps) on small students, with a linear decay.
# LoRA trains far fewer weights, from a zero-initialised update, and wants about 10x the full-tuning rate.
RECOMMENDED_LEARNING_RATES: dict[str, float] = {"full": 1e-4, "lora": 1e-3}

# LoRA rank by student size (parameters below the bound -> rank; alpha is twice the rank): small students
# learn a new output format with rank 16; larger ones get more room, up to QLoRA's rank 64 on every linear
# layer of 7B-65B models.
LORA_RANK_BY_SIZE: tuple[tuple[float, int], ...] = ((1e9, 16), (10e9, 32), (float("inf"), 64))


@dataclass
class TuningConfig:
    """How to tune the student on its two tasks (the contract's parameter names where it has one).

    Each field owns its setting's default and help text (`setting_field.setting`); tune-student's signature and
    the pipeline's repeat the settings of scope `pipeline` and `component` (`tests/test_settings_owners.py`).
    """

    student_model_reference: str = setting(
        help="The student to tune (a catalog name, a Hugging Face id, a local path or a URI)."
    )
    train_steps: int = setting(
        300,
        help="""Tuning steps (optimizer steps); examples seen = steps x batch size, each as a label and a rationale
        example.""",
    )
    batch_size: int = setting(8, help="Training rows per tuning step (the contract's batch size).")
    micro_batch_size: int | None = setting(
        None,
        help="""Rows per forward and backward pass, a divisor of batch_size (gradients are accumulated to the batch
        size: the same step in less memory); 0 (None here): the most rows whose activations fit a memory budget
        (1,024 MiB on a CPU; on a GPU half its memory less weights, gradients and optimizer states).""",
        scope="component",
    )
    activation_budget_mb: int | None = setting(
        None,
        help="""The memory one pass's activations may take, in MiB, estimated from the student's shape and the
        longest training example; None: 1,024 on a CPU, on a GPU half its memory less the weights, gradients and
        optimizer states.""",
        scope="internal",
    )
    activation_checkpointing: bool = setting(
        False,
        help="""Keep only each layer's input for the backward pass and recompute the rest (Hugging Face's gradient
        checkpointing): the activations of a pass take about one layer's worth of memory instead of every layer's,
        for about a third more compute.""",
        scope="internal",
    )
    learning_rate_multiplier: float = setting(
        1.0, help="Multiplies the recommended learning rate of the tuning method."
    )
    evaluation_interval: int = setting(20, help="Tuning steps between evaluations (only with evaluation data).")
    enable_early_stopping: bool = setting(
        True, help="Stop when the evaluation metric chosen by `early_stopping_metric` stops improving."
    )
    early_stopping_metric: EarlyStoppingMetric = setting(
        "task_metric",
        help="""What early stopping watches: `token_accuracy`, the evaluation token accuracy under teacher forcing
        (the contract's meaning), or `task_metric`, the task's main metric (accuracy, SQuAD F1, ROUGE-L or chrF)
        on the answers the student generates for the evaluation rows at each evaluation.""",
    )
    early_stopping_patience: int = setting(
        3, help="Evaluations without enough improvement before stopping.", scope="internal"
    )
    early_stopping_threshold: float = setting(
        0.001, help="The least rise of the early-stopping metric that counts as improving.", scope="internal"
    )
    enable_checkpoint_selection: bool = setting(
        True,
        help="""Return the checkpoint whose generated answers to the evaluation rows scored best on the task's main
        metric instead of the last.""",
    )
    max_answered_evaluation_rows: int = setting(
        100,
        help="""Evaluation rows the student answers at each evaluation, to score its answers with the task's
        metrics (all of them when there are fewer; else the same sample each time).""",
        scope="internal",
    )
    tuning_method: TuningMethod = setting(
        "full",
        help="`full` tunes every weight; `lora` tunes low-rank adapters, merged into the weights at the end.",
    )
    alpha: float = setting(0.5, help="Weight of the label loss; the rationale loss gets `1 - alpha`.")
    max_input_tokens: int = setting(
        MAX_INPUT_TOKENS,
        help="""Longer inputs keep their first tokens, then the task marker (counted in the metrics); the
        contract's limit by default, so tune-student trains on what validate-dataset let through.""",
        scope="internal",
    )
    max_rationale_tokens: int = setting(
        128,
        help="""Longer rationales keep their first tokens (counted in the metrics). It bounds what the rationale
        task costs: a step costs about its token count, and the rationale branch adds its marker and up to this
        many target tokens to each row's input and label (SVAMP with PaLM's rationales: 47 tokens on average, 70
        at the 90th percentile, 142 at most, so 128 keeps nearly all of every rationale).""",
        scope="internal",
    )
    lora_rank: int | None = setting(
        None,
        help="Rank of the LoRA updates; None for the default by student size (`LORA_RANK_BY_SIZE`).",
        scope="internal",
    )
    lora_alpha: int | None = setting(
        None,
        help="LoRA scaling numerator (the update is scaled by lora_alpha / lora_rank); None for twice the rank.",
        scope="internal",
    )
    seed: int = setting(
        0, help="Seeds weight initialisation of the adapters and the order of the training rows.", scope="internal"
    )
    group_by_length: bool = setting(
        True,
        help="""Batch rows of similar length together (Hugging Face's length-grouped sampling: random mega-batches
        of 50 batches, each sorted by length), so that little of a batch is padding.""",
        scope="internal",
    )
    trust_remote_code: bool = setting(
        False,
        help="""Let tuning and evaluation run a student repository's own Python code (auto_map); off, such a
        student is refused. Turn it on only for a source you trust.""",
    )
    mixed_precision: MixedPrecision = setting(
        "auto",
        help="""`auto`: bf16 autocast where the hardware speeds it up (a GPU with bf16, a CPU with AVX512-BF16 or
        AMX), the weights' precision elsewhere; `bf16` and `no` decide it everywhere, e.g. so that runs on
        different machines compare.""",
        scope="component",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.student_model_reference, str) or not self.student_model_reference.strip():
            raise ValueError("student_model_reference must name a model, got an empty value")
        for name in (
            "train_steps",
            "batch_size",
            "evaluation_interval",
            "early_stopping_patience",
            "max_answered_evaluation_rows",
            "max_input_tokens",
            "max_rationale_tokens",
            "lora_rank",
            "lora_alpha",
            "activation_budget_mb",
        ):
            value = getattr(self, name)
            if value is None and name in ("lora_rank", "lora_alpha", "activation_budget_mb"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.micro_batch_size is not None and (
            isinstance(self.micro_batch_size, bool)
            or not isinstance(self.micro_batch_size, int)
            or not 1 <= self.micro_batch_size <= self.batch_size
            or batch_split_problem(self.batch_size, 1, self.micro_batch_size)
        ):
            raise ValueError(
                f"micro_batch_size must be a positive divisor of batch_size {self.batch_size}, got {self.micro_batch_size!r}"
            )
        if self.max_input_tokens < 16:
            raise ValueError(
                f"max_input_tokens must be at least 16, got {self.max_input_tokens}"
            )
        if not _is_number(self.learning_rate_multiplier) or self.learning_rate_multiplier <= 0:
            raise ValueError(f"learning_rate_multiplier must be a number above 0, got {self.learning_rate_multiplier!r}")
        if not _is_number(self.alpha) or not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be between 0 and 1 (the weight of the label loss), got {self.alpha!r}")
        if not _is_number(self.early_stopping_threshold) or self.early_stopping_threshold < 0:
            raise ValueError(f"early_stopping_threshold must be 0 or more, got {self.early_stopping_threshold!r}")
        if self.tuning_method not in RECOMMENDED_LEARNING_RATES:
            raise ValueError(
                f"tuning_method must be one of {', '.join(map(repr, RECOMMENDED_LEARNING_RATES))}, "
                f"got {self.tuning_method!r}"
            )
        if self.early_stopping_metric not in get_args(EarlyStoppingMetric):
            raise ValueError(
                f"early_stopping_metric must be one of {', '.join(map(repr, get_args(EarlyStoppingMetric)))}, "
                f"got {self.early_stopping_metric!r}"
            )
        if self.mixed_precision not in get_args(MixedPrecision):
            raise ValueError(
                f"mixed_precision must be one of {', '.join(map(repr, get_args(MixedPrecision)))}, "
                f"got {self.mixed_precision!r}"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    @classmethod
    def from_component_inputs(cls, inputs: dict) -> TuningConfig:
        """The settings among tune-student's inputs (any others left aside), as KFP gives them.

        Args:
            inputs: The component's inputs by name; `micro_batch_size` 0 stands for None (KFP has no None).
        """
        settings = {setting.name: inputs[setting.name] for setting in fields(cls) if setting.name in inputs}
        settings["micro_batch_size"] = settings.get("micro_batch_size") or None
        return cls(**settings)

    def lora_settings(self, num_parameters: int) -> tuple[int, int]:
        """(rank, alpha) of the LoRA updates for a student of `num_parameters`: the configured ones or the defaults by size."""
        rank = self.lora_rank or next(rank for bound, rank in LORA_RANK_BY_SIZE if num_parameters < bound)
        return rank, self.lora_alpha or 2 * rank

    @property
    def learning_rate(self) -> float:
        """The recommended learning rate of the tuning method times the multiplier."""
        return RECOMMENDED_LEARNING_RATES[self.tuning_method] * self.learning_rate_multiplier

    def to_dict(self) -> dict:
        """The settings, with the learning rate they resolve to."""
        return {**asdict(self), "learning_rate": self.learning_rate}


def batch_split_problem(batch_size: int, processes: int = 1, micro_batch_size: int | None = None) -> str:
    """Why every step's `batch_size` rows cannot be shared evenly by `processes` data-parallel processes, each
    taking its share in whole micro-batches of `micro_batch_size` rows; "" when they can.

    The one even-batch rule: `TuningConfig` checks it for one process, `distributed.usable_processes` picks the
    processes that meet it and the trainer checks it under torchrun. A micro-batch larger than a process's share
    is that share; None: the activation budget splits the share, always evenly.
    """
    rows_per_process, uneven = divmod(batch_size, processes)
    if uneven:
        return f"batch_size {batch_size} must be a multiple of the {processes} data-parallel processes"
    rows_per_pass = min(micro_batch_size or rows_per_process, rows_per_process)
    if rows_per_process % rows_per_pass:
        return (
            f"micro_batch_size {rows_per_pass} must divide the {rows_per_process} rows each of the {processes} "
            "data-parallel processes takes per step"
        )
    return ""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
