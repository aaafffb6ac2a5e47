"""The two-task trainer of distilling step-by-step, and the Hugging Face wiring around it.

`TaskPrefixTrainer` is a Hugging Face `Trainer` whose only special part is the loss: each batch holds
the same rows as label examples and as rationale examples, packed by `SharedPrefixCollator` so that the
input both tasks share is processed once, and the loss is `alpha * label_loss + (1 - alpha) * rationale_loss`,
each the mean next-token cross-entropy over its task's target tokens. It also counts the target tokens it
predicted and how many it got right, so the contract's token accuracy is measured on the very forward
passes that train the model. Evaluation runs the label task only (evaluation rows carry gold labels, not
rationales).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from transformers import (
    EarlyStoppingCallback,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from kfp_distill.components.tune_student.config import TuningConfig
from kfp_distill.components.tune_student.data import IGNORE_INDEX, SharedPrefixCollator

# The attention implementations that take a custom 4D mask (the shared-prefix packing needs one).
CUSTOM_MASK_ATTENTION = ("sdpa", "eager")

TOKEN_ACCURACY = "fraction_of_correct_next_step_preds"
NUM_PREDICTIONS = "num_predictions"

# Trainer log keys -> the contract's TensorBoard scalar names.
TENSORBOARD_SCALARS = {
    "loss": "/train_total_loss",
    TOKEN_ACCURACY: "/train_fraction_of_correct_next_step_preds",
    NUM_PREDICTIONS: "/train_num_predictions",
    "eval_loss": "/eval_total_loss",
    f"eval_{TOKEN_ACCURACY}": "/eval_fraction_of_correct_next_step_preds",
    f"eval_{NUM_PREDICTIONS}": "/eval_num_predictions",
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


def additive_attention_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where a query may attend to a key, the dtype's lowest value elsewhere (what both sdpa and eager attention add)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


class TaskPrefixTrainer(Trainer):
    """A `Trainer` that trains on the label and rationale tasks together.

    Args:
        alpha: Weight of the label loss; the rationale loss gets 1 - alpha.
        *args, **kwargs: As for `transformers.Trainer`.
    """

    def __init__(self, *args, alpha: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.alpha = alpha
        self.trained_tokens = 0
        self._reset_step_statistics()

    def _reset_step_statistics(self) -> None:
        self._step_correct = torch.zeros((), dtype=torch.long)
        self._step_predicted = torch.zeros((), dtype=torch.long)

    def task_losses(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, object]:
        """(label loss, rationale loss, model outputs) of a `SharedPrefixCollator` batch, in one forward pass."""
        outputs = model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            attention_mask=additive_attention_mask(batch["attention_mask"], model.dtype),
        )
        losses = []
        for task in ("label", "rationale"):
            loss_sum, correct, predicted = target_statistics(outputs.logits, batch[f"{task}_targets"])
            losses.append(loss_sum / predicted.clamp(min=1))
            if model.training:
                self._step_correct = self._step_correct.to(correct.device) + correct.detach()
                self._step_predicted = self._step_predicted.to(predicted.device) + predicted
        if model.training:
            self.trained_tokens += int(batch["token_mask"].sum())
        return losses[0], losses[1], outputs

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """alpha * label loss + (1 - alpha) * rationale loss."""
        label_loss, rationale_loss, outputs = self.task_losses(model, inputs["shared_prefix"])
        loss = self.alpha * label_loss + (1 - self.alpha) * rationale_loss
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds the token accuracy and predicted tokens of the steps since the last log to the training logs."""
        if "loss" in logs:
            predicted = int(self._step_predicted)
            logs[TOKEN_ACCURACY] = int(self._step_correct) / max(predicted, 1)
            logs[NUM_PREDICTIONS] = predicted
            self._reset_step_statistics()
        super().log(logs, start_time)

    def floating_point_ops(self, inputs) -> int:
        # 6 FLOPs per parameter per token (shared input counted once) for a forward and backward pass.
        tokens = sum(batch["input_ids"].numel() for batch in inputs.values())
        return 6 * tokens * self.model.num_parameters(exclude_embeddings=True)

    @torch.no_grad()
    def evaluation_statistics(self, dataloader) -> TokenStatistics:
        """Label-task loss and token accuracy over the whole evaluation set, weighted by target tokens."""
        was_training = self.model.training
        self.model.eval()
        totals = TokenStatistics()
        for inputs in dataloader:
            batch = self._prepare_inputs(inputs)["label"]
            outputs = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            loss_sum, correct, predicted = next_token_statistics(outputs.logits, batch["labels"])
            totals.loss_sum += float(loss_sum)
            totals.correct += int(correct)
            totals.predicted += int(predicted)
        self.model.train(was_training)
        return totals

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Evaluates the label task and reports loss, token accuracy and predicted tokens to the callbacks."""
        statistics = self.evaluation_statistics(self.get_eval_dataloader(eval_dataset))
        metrics = {
            f"{metric_key_prefix}_loss": statistics.mean_loss,
            f"{metric_key_prefix}_{TOKEN_ACCURACY}": statistics.accuracy,
            f"{metric_key_prefix}_{NUM_PREDICTIONS}": statistics.predicted,
        }
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


class ContractTensorBoardCallback(TrainerCallback):
    """Writes the contract's six TensorBoard scalars, and nothing else, at each logged step."""

    def __init__(self, log_dir: str):
        self.writer = SummaryWriter(log_dir=log_dir, flush_secs=10)

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key, name in TENSORBOARD_SCALARS.items():
            if logs and key in logs:
                self.writer.add_scalar(name, logs[key], global_step=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
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
            print(
                f"evaluation at step {step}: loss {logs['eval_loss']:.4f}, "
                f"token accuracy {logs[f'eval_{TOKEN_ACCURACY}']:.3f} over {logs[f'eval_{NUM_PREDICTIONS}']} tokens",
                flush=True,
            )


def build_trainer(
    model,
    config: TuningConfig,
    train_examples: list[dict],
    evaluation_examples: list[dict],
    pad_token_id: int,
    checkpoint_dir: str,
    tensorboard_dir: str,
) -> TaskPrefixTrainer:
    """A `TaskPrefixTrainer` set up as the config asks.

    With evaluation examples, the model is evaluated every `evaluation_interval` steps and at the last step,
    early stopping watches the evaluation token accuracy, and checkpoint selection loads the best checkpoint
    at the end. Without them there is no evaluation, no early stopping and the last step's model is the result.
    Either way a full checkpoint (weights, optimizer, scheduler, RNG states, data position) is written to
    `checkpoint_dir` every `evaluation_interval` steps (after the evaluation, when there is one) and at
    the last step, for `trainer.train(resume_from_checkpoint=...)` to go on from.

    Raises:
        ValueError: The model's attention implementation cannot take the shared-prefix attention mask.
    """
    attention = model.config._attn_implementation
    if attention not in CUSTOM_MASK_ATTENTION:
        raise ValueError(
            f"the student uses {attention!r} attention; tuning needs one that takes a custom attention mask: "
            f"{', '.join(CUSTOM_MASK_ATTENTION)}"
        )
    evaluating = bool(evaluation_examples)
    selecting = evaluating and config.enable_checkpoint_selection
    use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    arguments = TrainingArguments(
        output_dir=checkpoint_dir,
        max_steps=config.train_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=config.train_steps // 20,
        weight_decay=0.0,
        seed=config.seed,
        data_seed=config.seed,
        bf16=use_bf16,
        logging_strategy="steps",
        logging_steps=1,  # the contract's training scalars are per step
        eval_strategy="steps" if evaluating else "no",
        eval_steps=config.evaluation_interval if evaluating else None,
        metric_for_best_model=TOKEN_ACCURACY if evaluating else None,
        greater_is_better=True,
        save_strategy="steps",
        save_steps=config.evaluation_interval,
        save_total_limit=2 if selecting else 1,  # the latest checkpoint, and the best one when selecting
        load_best_model_at_end=selecting,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    callbacks: list[TrainerCallback] = [ContractTensorBoardCallback(tensorboard_dir), ProgressCallback(config.train_steps)]
    if evaluating and config.enable_early_stopping:
        callbacks.append(
            EarlyStoppingCallback(
                early_stopping_patience=config.early_stopping_patience,
                early_stopping_threshold=config.early_stopping_threshold,
            )
        )
    trainer = TaskPrefixTrainer(
        model=model,
        args=arguments,
        data_collator=SharedPrefixCollator(pad_token_id),
        train_dataset=train_examples,
        eval_dataset=evaluation_examples or None,
        callbacks=callbacks,
        alpha=config.alpha,
    )
    trainer.remove_callback(PrinterCallback)  # it prints every raw log dict; ProgressCallback prints a summary
    return trainer
