"""The two-task trainer of distilling step-by-step, and the Hugging Face wiring around it.

`TaskPrefixTrainer` is a Hugging Face `Trainer` whose only special part is the loss: each batch holds
the same rows as label examples and as rationale examples, packed by `SharedPrefixCollator` (causal students)
or `SharedEncoderCollator` (encoder-decoders) so that the input both tasks share is processed once, and the
loss is `alpha * label_loss + (1 - alpha) * rationale_loss`, each the mean next-token cross-entropy over its
task's target tokens in the optimizer step (micro-batches of gradient accumulation included). It also counts the target tokens it
predicted and how many it got right, so the contract's token accuracy is measured on the very forward
passes that train the model. Evaluation runs the label task only (evaluation rows carry gold labels, not
rationales): the contract's loss and token accuracy under teacher forcing, and the task's metrics on the answers
the student generates (`answer_evaluation.py`), which pick the checkpoint and, if asked, stop the run. A
label-only training set (no rationales) is standard fine-tuning: the loss is the label loss.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import ExportableState

from kfp_distill._implementation.settings import PROGRESS_BARS_ENV
from kfp_distill._implementation.student import STUDENT_TASKS
from kfp_distill._implementation.task_metrics import METRICS_BY_TASK

from .answer_evaluation import AnswerEvaluation
from .config import TuningConfig, batch_split_problem
from .data import (
    IGNORE_INDEX,
    SeededLengthGroupedSampler,
    SharedPrefixCollator,
    packed_length,
)
from .memory import GiveFreedMemoryBack, activation_budget_mb, micro_batch_within_budget
from .seq2seq import SharedEncoderCollator, decoder_logits

# The attention implementations that take a custom 4D mask (the shared-prefix packing needs one).
CUSTOM_MASK_ATTENTION = ("sdpa", "eager")

TOKEN_ACCURACY = "fraction_of_correct_next_step_preds"
NUM_PREDICTIONS = "num_predictions"

TOKENS_PER_SECOND = "tokens_per_second"
PEAK_MEMORY_MB = "peak_memory_mb"

# Trainer log keys -> the contract's TensorBoard scalar names.
TENSORBOARD_SCALARS = {
    "loss": "/train_total_loss",
    TOKEN_ACCURACY: "/train_fraction_of_correct_next_step_preds",
    NUM_PREDICTIONS: "/train_num_predictions",
    "eval_loss": "/eval_total_loss",
    f"eval_{TOKEN_ACCURACY}": "/eval_fraction_of_correct_next_step_preds",
    f"eval_{NUM_PREDICTIONS}": "/eval_num_predictions",
}
# The task metrics of the generated answers, next to the contract's evaluation scalars (those of the task type).
ANSWER_SCALARS = {
    f"eval_{metric}": f"/eval_{metric}" for metric in dict.fromkeys(m for ms in METRICS_BY_TASK.values() for m in ms)
}
# Our own scalars next to the contract's, about the run rather than the model.
RUN_SCALARS = {
    "learning_rate": "/train_learning_rate",
    TOKENS_PER_SECOND: "/train_tokens_per_second",
    PEAK_MEMORY_MB: "/train_peak_memory_mb",
}


@dataclass
class TokenStatistics:
    """Summed next-token cross-entropy, correct predictions and predicted target tokens."""

    loss_sum: float = 0.0
    correct: int = 0
    predicted: int = 0

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.predicted, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.predicted, 1)


def target_statistics(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(summed cross-entropy, correct predictions, predicted tokens) where `targets[i]` is what `logits[i]` predicts.

    Only the positions with a target are scored: most positions are prompt or padding.
    """
    is_target = targets != IGNORE_INDEX
    predicting = logits[is_target].float()
    expected = targets[is_target]
    loss_sum = F.cross_entropy(predicting, expected, reduction="sum")
    correct = (predicting.argmax(dim=-1) == expected).sum()
    return loss_sum, correct, is_target.sum()


def next_token_statistics(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`target_statistics` of a sequence's logits for its own next tokens (`labels` as Hugging Face models take them)."""
    return target_statistics(logits[:, :-1], labels[:, 1:])


def present_tasks(batch: dict[str, torch.Tensor]) -> list[str]:
    """The tasks a packed batch has targets for, in `STUDENT_TASKS` order."""
    return [task for task in STUDENT_TASKS if f"{task}_targets" in batch]


def additive_attention_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where a query may attend to a key, the dtype's lowest value elsewhere (what both sdpa and eager attention add)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


class TaskPrefixTrainer(Trainer):
    """A `Trainer` that trains on the label and rationale tasks together.

    Args:
        alpha: Weight of the label loss; the rationale loss gets 1 - alpha.
        group_by_length: Batch rows of similar packed length together (less padding) instead of at random.
        answer_evaluation: The evaluation rows the student answers at each evaluation, scored with the task's
            metrics; None: no answers are generated.
        *args, **kwargs: As for `transformers.Trainer`.
    """

    # compute_loss divides by the target tokens of the whole optimizer step, micro-batches included.
    loss_is_scaled_for_ga = True

    def __init__(
        self, *args, alpha: float, group_by_length: bool = False, answer_evaluation: AnswerEvaluation | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.alpha = alpha
        self.group_by_length = group_by_length
        self.answer_evaluation = answer_evaluation
        self.trained_tokens = 0
        self._last_log: tuple[float, int] | None = None  # (time, trained tokens) at the last training log
        self._reset_step_statistics()

    def _reset_step_statistics(self) -> None:
        self._step_correct = torch.zeros((), dtype=torch.long)
        self._step_predicted = torch.zeros((), dtype=torch.long)

    def task_losses(
        self, model, batch: dict[str, torch.Tensor], num_targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, object]:
        """(label loss, rationale loss, model outputs) of a `SharedPrefixCollator` batch, in one forward pass.

        Logits are computed only where a target is predicted (`logits_to_keep`): prompt and padding positions
        make no logits, which spares most of the output layer (49,152 x 576 for SmolLM2) and its softmax.

        Args:
            num_targets: Target tokens per task (label, rationale) of the whole optimizer step when it is
                accumulated over several micro-batches; each loss is then this micro-batch's share of the
                step's token mean. None: the means of this batch alone.
        """
        keep = (batch["label_targets"] != IGNORE_INDEX) | (batch["rationale_targets"] != IGNORE_INDEX)
        outputs = model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            attention_mask=additive_attention_mask(batch["attention_mask"], next(model.parameters()).dtype),
            logits_to_keep=keep,
        )
        losses = self._mean_target_losses(
            model, [(outputs.logits, batch[f"{task}_targets"][keep]) for task in STUDENT_TASKS], num_targets
        )
        if model.training:
            self.trained_tokens += int(batch["token_mask"].sum())
        return losses[0], losses[1], outputs

    def _mean_target_losses(
        self, model, logits_and_targets: list[tuple[torch.Tensor, torch.Tensor]], num_targets: torch.Tensor | None
    ) -> list[torch.Tensor]:
        """Each task's mean next-token loss (over its own targets, or the whole step's `num_targets`); while
        training, the correct and predicted target counts go into the step's token accuracy."""
        losses = []
        for index, (logits, targets) in enumerate(logits_and_targets):
            loss_sum, correct, predicted = target_statistics(logits, targets)
            denominator = predicted if num_targets is None else num_targets[index]
            losses.append(loss_sum / denominator.clamp(min=1))
            if model.training:
                self._step_correct = self._step_correct.to(correct.device) + correct.detach()
                self._step_predicted = self._step_predicted.to(predicted.device) + predicted
        return losses

    @staticmethod
    def label_logits(model, batch: dict[str, torch.Tensor]) -> tuple[object, torch.Tensor]:
        """(model outputs, targets) of padded label sequences, with logits only where a target is predicted
        (`logits_to_keep`), one row of logits per target: the prompt makes none."""
        predicts_target = torch.zeros_like(batch["labels"], dtype=torch.bool)
        predicts_target[:, :-1] = batch["labels"][:, 1:] != IGNORE_INDEX
        outputs = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=predicts_target
        )
        return outputs, batch["labels"][:, 1:][predicts_target[:, :-1]]

    def label_task_loss(
        self, model, batch: dict[str, torch.Tensor], num_targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, object]:
        """(label loss, model outputs) of padded label sequences (label-only tuning), logits only at targets."""
        outputs, targets = self.label_logits(model, batch)
        (loss,) = self._mean_target_losses(model, [(outputs.logits, targets)], num_targets)
        if model.training:
            self.trained_tokens += int(batch["attention_mask"].sum())
        return loss, outputs

    def encoder_decoder_task_losses(
        self, model, batch: dict[str, torch.Tensor], num_targets: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], dict]:
        """(each task's loss, logits by task) of a `SharedEncoderCollator` batch: one encoder pass.

        The losses are of the tasks the batch holds, in `STUDENT_TASKS` order (the label task alone in label-only
        tuning).
        """
        tasks = present_tasks(batch)
        logits = decoder_logits(model, batch, tasks)
        losses = self._mean_target_losses(
            model, [(logits[task], batch[f"{task}_targets"]) for task in tasks], num_targets
        )
        if model.training:
            self.trained_tokens += int(
                batch["attention_mask"].sum() + sum(batch[f"{task}_decoder_attention_mask"].sum() for task in tasks)
            )
        return losses, logits

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """alpha * label loss + (1 - alpha) * rationale loss, token means over the whole optimizer step.

        Without rationales (label-only tuning) the loss is the label loss.
        """
        if "shared_encoder" in inputs:
            losses, outputs = self.encoder_decoder_task_losses(model, inputs["shared_encoder"], num_items_in_batch)
        elif "shared_prefix" in inputs:
            label_loss, rationale_loss, outputs = self.task_losses(model, inputs["shared_prefix"], num_items_in_batch)
            losses = [label_loss, rationale_loss]
        else:
            label_loss, outputs = self.label_task_loss(model, inputs["label"], num_items_in_batch)
            losses = [label_loss]
        loss = losses[0] if len(losses) == 1 else self.alpha * losses[0] + (1 - self.alpha) * losses[1]
        if num_items_in_batch is not None and self.accelerator.num_processes > 1:
            loss = loss * self.accelerator.num_processes  # data-parallel averages gradients over the processes
        return (loss, outputs) if return_outputs else loss

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        """Target tokens per task over the micro-batches of one optimizer step (and over all processes).

        With them each micro-batch's loss is its share of the step's loss, so accumulating gradients over
        micro-batches gives the gradient of the whole batch in one go.
        """
        if not batch_samples:
            return None
        if "label" in batch_samples[0]:  # label-only tuning: each label token after the first is a target
            counts = torch.stack([sum((batch["label"]["labels"][:, 1:] != IGNORE_INDEX).sum() for batch in batch_samples)])
        else:
            layout = "shared_prefix" if "shared_prefix" in batch_samples[0] else "shared_encoder"
            counts = torch.stack([
                sum((batch[layout][f"{task}_targets"] != IGNORE_INDEX).sum() for batch in batch_samples)
                for task in present_tasks(batch_samples[0][layout])
            ])
        counts = counts.to(device)
        if self.accelerator.num_processes > 1:
            counts = self.accelerator.gather(counts).view(-1, len(counts)).sum(dim=0)
        return counts

    def _get_train_sampler(self, train_dataset=None):
        """Rows grouped by packed length (less padding), in an order that depends on the seed and epoch only."""
        if not self.group_by_length:
            return super()._get_train_sampler(train_dataset)
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return SeededLengthGroupedSampler(
            # The whole optimizer step's rows over all processes: the same order whatever the process count.
            self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size,
            lengths=[packed_length(example) for example in dataset],
            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds token accuracy, predicted tokens, tokens/s and peak memory since the last log to the training logs."""
        if "loss" in logs:
            correct, predicted = (int(count) for count in self.summed_over_processes(self._step_correct, self._step_predicted))
            logs[TOKEN_ACCURACY] = correct / max(predicted, 1)
            logs[NUM_PREDICTIONS] = predicted
            self._reset_step_statistics()
            now = time.perf_counter()
            trained_tokens = self.trained_tokens_all_processes()
            if self._last_log is not None:
                logged_at, tokens_then = self._last_log
                logs[TOKENS_PER_SECOND] = (trained_tokens - tokens_then) / max(now - logged_at, 1e-9)
            logs[PEAK_MEMORY_MB] = peak_memory_mb()
            self._last_log = (now, trained_tokens)
        super().log(logs, start_time)

    def summed_over_processes(self, *counts: torch.Tensor | int) -> list[torch.Tensor]:
        """Each count summed over the data-parallel processes (as it is with one process)."""
        stacked = torch.stack([torch.as_tensor(count, dtype=torch.long).cpu() for count in counts])
        if self.accelerator.num_processes > 1:
            stacked = self.accelerator.reduce(stacked.to(self.accelerator.device), reduction="sum").cpu()
        return list(stacked)

    def trained_tokens_all_processes(self) -> int:
        """Tokens trained so far by all data-parallel processes together."""
        return int(self.summed_over_processes(self.trained_tokens)[0])

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self._last_log is None:  # the first step's tokens/s counts from its start
            self._last_log = (time.perf_counter(), self.trained_tokens_all_processes())
        return super().training_step(model, inputs, num_items_in_batch)

    def floating_point_ops(self, inputs) -> int:
        """Training FLOPs of a batch (the Trainer sums them into `state.total_flos`, a compute measure that
        other load on the machine does not distort).

        6 FLOPs per parameter per token for a forward and backward pass: every position processed (padding
        too, it is computed; the shared input once) goes through the model's body, and the output layer runs
        only where logits are computed: target positions (all decoder positions of an encoder-decoder).
        """
        positions = targets = 0
        for batch in inputs.values():
            decoder_inputs = [tensor for name, tensor in batch.items() if name.endswith("decoder_input_ids")]
            positions += batch["input_ids"].numel() + sum(tensor.numel() for tensor in decoder_inputs)
            if decoder_inputs:
                targets += sum(tensor.numel() for tensor in decoder_inputs)
            elif "labels" in batch:  # padded label sequences: each label token after the first is a target
                targets += int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            else:  # shared prefix: logits where either task has a target
                targets += int(((batch["label_targets"] != IGNORE_INDEX) | (batch["rationale_targets"] != IGNORE_INDEX)).sum())
        model = self.accelerator.unwrap_model(self.model)
        output_layer = model.get_output_embeddings().weight
        tied = output_layer is model.get_input_embeddings().weight  # then not among the non-embedding parameters
        body = model.num_parameters(exclude_embeddings=True) - (0 if tied else output_layer.numel())
        return 6 * (positions * body + targets * output_layer.numel())

    @torch.no_grad()
    def evaluation_statistics(self, dataloader) -> TokenStatistics:
        """Label-task loss and token accuracy over the whole evaluation set, weighted by target tokens."""
        was_training = self.model.training
        self.model.eval()
        totals = TokenStatistics()
        for inputs in dataloader:
            inputs = self._prepare_inputs(inputs)
            if "shared_encoder" in inputs:
                batch = inputs["shared_encoder"]
                logits = decoder_logits(self.model, batch, ["label"])["label"]
                loss_sum, correct, predicted = target_statistics(logits, batch["label_targets"])
            else:
                outputs, targets = self.label_logits(self.model, inputs["label"])
                loss_sum, correct, predicted = target_statistics(outputs.logits, targets)
            totals.loss_sum += float(loss_sum)
            totals.correct += int(correct)
            totals.predicted += int(predicted)
        self.model.train(was_training)
        if self.accelerator.num_processes > 1:  # each process evaluated its share of the rows
            loss_sum = self.accelerator.reduce(torch.tensor([totals.loss_sum], device=self.accelerator.device), "sum")
            totals.loss_sum = float(loss_sum)
            totals.correct, totals.predicted = (int(c) for c in self.summed_over_processes(totals.correct, totals.predicted))
        return totals

    def answer_scores(self) -> dict[str, float]:
        """The task's metrics of the student's answers to the answered evaluation rows.

        With several data-parallel processes each answers its share of the rows, and every process scores all
        the answers (so that each one decides alike whether to stop).
        """
        evaluation = self.answer_evaluation
        processes, index = self.accelerator.num_processes, self.accelerator.process_index
        # A generated row keeps only its key-value cache (18 MB for SmolLM2 at 400 tokens): a step's rows per
        # process answer together even where the training passes take fewer.
        rows = self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
        answers = evaluation.answers(self.model, rows, index, processes)
        if processes > 1:
            from accelerate.utils import gather_object

            answers = dict(gather_object(list(answers.items())))
        return evaluation.score(answers)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Evaluates the label task and reports loss, token accuracy and predicted tokens, and the task's metrics of
        the generated answers, to the callbacks."""
        # Each row counted once: with several processes accelerate would pad the shards to even batches with
        # repeated rows. Uneven shards are safe here: the forward passes use the model without its
        # DistributedDataParallel wrapper, so no process waits for another.
        even_batches, self.accelerator.even_batches = self.accelerator.even_batches, False
        try:
            dataloader = self.get_eval_dataloader(eval_dataset)
        finally:
            self.accelerator.even_batches = even_batches
        statistics = self.evaluation_statistics(dataloader)
        metrics = {
            f"{metric_key_prefix}_loss": statistics.mean_loss,
            f"{metric_key_prefix}_{TOKEN_ACCURACY}": statistics.accuracy,
            f"{metric_key_prefix}_{NUM_PREDICTIONS}": statistics.predicted,
        }
        if self.answer_evaluation is not None:
            metrics.update({f"{metric_key_prefix}_{name}": value for name, value in self.answer_scores().items()})
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


class ContractTensorBoardCallback(TrainerCallback):
    """Writes the contract's six TensorBoard scalars at each logged step, the task's metrics of the generated answers
    at each evaluation, and learning rate, tokens/s and peak memory."""

    def __init__(self, log_dir: str):
        self.log_dir = log_dir
        self.writer: SummaryWriter | None = None  # opened by the first process only, at its first log

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        self.writer = self.writer or SummaryWriter(log_dir=self.log_dir, flush_secs=10)
        for key, name in {**TENSORBOARD_SCALARS, **ANSWER_SCALARS, **RUN_SCALARS}.items():
            if logs and key in logs:
                self.writer.add_scalar(name, logs[key], global_step=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.writer is not None:
            self.writer.close()


class ProgressCallback(TrainerCallback):
    """Prints steps done, loss, token accuracy and speed about twenty times a run, and every evaluation."""

    def __init__(self, train_steps: int):
        self.print_every = max(1, train_steps // 20)
        self.started = time.perf_counter()
        self.first_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.first_step = state.global_step  # above 0 when resuming from a checkpoint

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        logs = logs or {}
        step = state.global_step
        if "loss" in logs and (step % self.print_every == 0 or step == 1 or step == state.max_steps):
            elapsed = time.perf_counter() - self.started
            print(
                f"step {step}/{state.max_steps}: loss {logs['loss']:.4f}, "
                f"token accuracy {logs[TOKEN_ACCURACY]:.3f}, {elapsed / max(step - self.first_step, 1):.2f} s/step",
                flush=True,
            )
        if f"eval_{TOKEN_ACCURACY}" in logs:
            answers = "".join(f", {key[len('eval_'):]} {logs[key]:.3f}" for key in ANSWER_SCALARS if key in logs)
            print(
                f"evaluation at step {step}: loss {logs['eval_loss']:.4f}, "
                f"token accuracy {logs[f'eval_{TOKEN_ACCURACY}']:.3f} over {logs[f'eval_{NUM_PREDICTIONS}']} tokens"
                + (f"; answers: {answers[2:]}" if answers else ""),
                flush=True,
            )


class EarlyStopping(TrainerCallback, ExportableState):
    """Stops training when an evaluation metric has not risen by more than `threshold` above its best for
    `patience` evaluations in a row (Hugging Face's `EarlyStoppingCallback`, on a metric of its own rather than
    the one that picks the checkpoint). Its count is kept in checkpoints, so a resumed run stops where the
    uninterrupted one would.

    Args:
        metric: The evaluation log key to watch (higher is better), e.g. `eval_f1`.
    """

    def __init__(
        self, metric: str, patience: int, threshold: float, best: float | None = None, evaluations_without_gain: int = 0
    ):
        self.metric, self.patience, self.threshold = metric, patience, threshold
        self.best, self.evaluations_without_gain = best, evaluations_without_gain

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = metrics[self.metric]
        if self.best is None or value > self.best + self.threshold:
            self.evaluations_without_gain = 0
        else:
            self.evaluations_without_gain += 1
        self.best = value if self.best is None else max(self.best, value)
        if self.evaluations_without_gain >= self.patience:
            control.should_training_stop = True

    def state(self) -> dict:
        return {
            "args": {
                "metric": self.metric, "patience": self.patience, "threshold": self.threshold, "best": self.best,
                "evaluations_without_gain": self.evaluations_without_gain,
            },
            "attributes": {},
        }


def peak_memory_mb() -> float:
    """torch's peak allocated GPU memory, else this process's peak resident set size, in MiB."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource  # POSIX only, like the peak it reads

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bf16_supported(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether bf16 mixed precision speeds training here: a GPU with bf16, or a CPU with AVX512-BF16 or AMX
    (without those instructions bf16 is emulated, and slower than float32)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def uses_bf16(mixed_precision: str) -> bool:
    """Whether training runs under bf16 autocast for a `TuningConfig.mixed_precision` setting.

    Raises:
        ValueError: "bf16" is asked for on a GPU without bf16.
    """
    if mixed_precision == "auto":
        return bf16_supported()
    if mixed_precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ValueError("mixed_precision is 'bf16' but this GPU has no bf16: use 'auto' or 'no'")
    return mixed_precision == "bf16"


def build_trainer(
    model,
    config: TuningConfig,
    train_examples: list[dict],
    evaluation_examples: list[dict],
    pad_token_id: int,
    checkpoint_dir: str,
    tensorboard_dir: str,
    answer_evaluation: AnswerEvaluation | None = None,
) -> TaskPrefixTrainer:
    """A `TaskPrefixTrainer` set up as the config asks.

    With evaluation examples, the model is evaluated every `evaluation_interval` steps and at the last step;
    with `answer_evaluation` too, its answers are scored with the task's metrics. Early stopping watches the
    evaluation token accuracy or the task's main metric (`config.early_stopping_metric`), and checkpoint
    selection loads the checkpoint whose answers scored best on the task's main metric (without
    `answer_evaluation`: the best evaluation token accuracy) at the end. Without evaluation examples there is no
    evaluation, no early stopping and the last step's model is the result.
    Either way a full checkpoint (weights, optimizer, scheduler, RNG states, data position) is written to
    `checkpoint_dir` every `evaluation_interval` steps (after the evaluation, when there is one) and at
    the last step, for `trainer.train(resume_from_checkpoint=...)` to go on from.

    Raises:
        ValueError: The model's attention implementation cannot take the shared-prefix attention mask, the
            batch does not split evenly over the data-parallel processes (and their micro-batches), or bf16 is
            asked for on a GPU without it.
    """
    encoder_decoder = model.config.is_encoder_decoder
    attention = model.config._attn_implementation
    if not encoder_decoder and attention not in CUSTOM_MASK_ATTENTION:
        raise ValueError(
            f"the student uses {attention!r} attention; tuning needs one that takes a custom attention mask: "
            f"{', '.join(CUSTOM_MASK_ATTENTION)}"
        )
    evaluating = bool(evaluation_examples)
    selecting = evaluating and config.enable_checkpoint_selection
    answering = evaluating and answer_evaluation is not None
    if evaluating and config.enable_early_stopping and config.early_stopping_metric == "task_metric" and not answering:
        raise ValueError("early_stopping_metric 'task_metric' needs the evaluation rows' answers scored (answer_evaluation)")
    # The checkpoint is chosen by the answers where they are scored.
    best_model_metric = answer_evaluation.main_metric if answering else TOKEN_ACCURACY
    use_bf16 = uses_bf16(config.mixed_precision)
    # Under torchrun each of the WORLD_SIZE processes takes its share of every step's batch_size rows.
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    problem = batch_split_problem(config.batch_size, processes, config.micro_batch_size)
    if problem:
        raise ValueError(problem)
    rows_per_process = config.batch_size // processes
    if config.micro_batch_size:
        micro_batch_size = min(config.micro_batch_size, rows_per_process)
    else:
        budget_mb = activation_budget_mb(model, config.activation_budget_mb)
        micro_batch_size = micro_batch_within_budget(
            model.config, train_examples, rows_per_process, budget_mb, config.activation_checkpointing
        )
        print(f"{micro_batch_size} rows a pass: the most whose activations fit {budget_mb:,.0f} MiB", flush=True)
    arguments = TrainingArguments(
        output_dir=checkpoint_dir,
        max_steps=config.train_steps,
        per_device_train_batch_size=micro_batch_size,
        gradient_accumulation_steps=rows_per_process // micro_batch_size,
        per_device_eval_batch_size=micro_batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=config.train_steps // 20,
        weight_decay=0.0,
        seed=config.seed,
        data_seed=config.seed,
        bf16=use_bf16,
        activation_checkpointing=config.activation_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},  # the recommended kind; it takes keyword arguments
        # Hugging Face's switch for CPU autocast, and for gloo data parallelism on CPUs (tests, CPU clusters).
        use_cpu=not torch.cuda.is_available() and (use_bf16 or processes > 1),
        logging_strategy="steps",
        logging_steps=1,  # the contract's training scalars are per step
        eval_strategy="steps" if evaluating else "no",
        eval_steps=config.evaluation_interval if evaluating else None,
        metric_for_best_model=best_model_metric if evaluating else None,
        greater_is_better=True,
        save_strategy="steps",
        save_steps=config.evaluation_interval,
        save_total_limit=2 if selecting else 1,  # the latest checkpoint, and the best one when selecting
        load_best_model_at_end=selecting,
        restore_callback_states_from_checkpoint=True,  # early stopping's count goes on where it was
        report_to="none",
        disable_tqdm=not os.environ.get(PROGRESS_BARS_ENV),
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    callbacks: list[TrainerCallback] = [ContractTensorBoardCallback(tensorboard_dir), ProgressCallback(config.train_steps)]
    if not torch.cuda.is_available():  # the process's own memory holds the activations only on a CPU
        callbacks.append(GiveFreedMemoryBack())
    if evaluating and config.enable_early_stopping:
        watched = best_model_metric if config.early_stopping_metric == "task_metric" else TOKEN_ACCURACY
        callbacks.append(
            EarlyStopping(f"eval_{watched}", config.early_stopping_patience, config.early_stopping_threshold)
        )
    trainer = TaskPrefixTrainer(
        model=model,
        args=arguments,
        data_collator=SharedEncoderCollator(pad_token_id, model.config.decoder_start_token_id)
        if encoder_decoder
        else SharedPrefixCollator(pad_token_id),
        train_dataset=train_examples,
        eval_dataset=evaluation_examples or None,
        callbacks=callbacks,
        alpha=config.alpha,
        group_by_length=config.group_by_length,
        answer_evaluation=answer_evaluation if answering else None,
    )
    trainer.remove_callback(PrinterCallback)  # (without bars) it prints every raw log dict; ProgressCallback a summary
    return trainer
