"""What the rationale task costs: one training step, label only vs. both tasks, on the same batch.

Times three training steps (forward, backward and the Trainer's own optimizer step) of the same student on
the same batch of demo arithmetic word problems, side by side in one run:

- label only: the label examples alone (what tuning without rationales would cost);
- two passes: label and rationale examples as two padded sequences, each processing the input (the
  straightforward two-task step);
- shared prefix: tune-student's step, one packed sequence per row that processes the input once.

The steps are timed in turns (one of each, again and again) so that a machine busy with something else
slows them all alike. Prints seconds per step and each two-task step's cost relative to the label-only step
(target: at most 1.3x).

Usage (from the repository root):
    .venv/bin/python benchmarks/train_step_cost.py [--student smollm2-135m-instruct] [--batch-size 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from kfp_distill._implementation.models import load_causal_lm, load_tokenizer
from kfp_distill.components.tune_student.config import TuningConfig
from kfp_distill.components.tune_student.data import (
    SharedPrefixCollator,
    TaskPrefixCollator,
    TrainingRow,
    prepare_training_examples,
)
from kfp_distill.components.tune_student.trainer import build_trainer, next_token_statistics
from kfp_distill.demo import make_problems


def task_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over one padded task batch's targets."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss_sum, _, predicted = next_token_statistics(logits, batch["labels"])
    return loss_sum / predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--student", default="smollm2-135m-instruct", help="the student model reference")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps of each kind (after one warm-up step)")
    parser.add_argument("--alpha", type=float, default=0.5)
    arguments = parser.parse_args()

    torch.manual_seed(0)
    tokenizer = load_tokenizer(arguments.student)
    problems = make_problems(arguments.batch_size, seed=7)
    rows = [TrainingRow(problem.input_text, problem.expression, problem.rationale) for problem in problems]
    config = TuningConfig(arguments.student, batch_size=arguments.batch_size, alpha=arguments.alpha)
    examples = prepare_training_examples(rows, tokenizer, config.max_input_tokens, config.max_rationale_tokens).examples
    separate = TaskPrefixCollator(tokenizer.pad_token_id)(examples)
    packed = SharedPrefixCollator(tokenizer.pad_token_id)(examples)["shared_prefix"]

    model = load_causal_lm(arguments.student, dtype=torch.float32)
    model.train()
    with tempfile.TemporaryDirectory() as scratch:
        trainer = build_trainer(model, config, examples, [], tokenizer.pad_token_id, scratch, scratch)
        optimizer = trainer.create_optimizer()

    alpha = arguments.alpha
    losses = {
        "label only": lambda: task_loss(model, separate["label"]),
        "two passes": lambda: alpha * task_loss(model, separate["label"])
        + (1 - alpha) * task_loss(model, separate["rationale"]),
        "shared prefix": lambda: trainer.compute_loss(model, {"shared_prefix": packed}),
    }

    def step(loss_of) -> float:
        started = time.perf_counter()
        loss_of().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    tokens = {
        "label only": int(separate["label"]["attention_mask"].sum()),
        "two passes": int(separate["label"]["attention_mask"].sum() + separate["rationale"]["attention_mask"].sum()),
        "shared prefix": int(packed["token_mask"].sum()),
    }
    shapes = {
        "label only": tuple(separate["label"]["input_ids"].shape),
        "two passes": (tuple(separate["label"]["input_ids"].shape), tuple(separate["rationale"]["input_ids"].shape)),
        "shared prefix": tuple(packed["input_ids"].shape),
    }
    print(
        f"student {arguments.student}, batch {arguments.batch_size} demo word problems, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        flush=True,
    )
    for loss_of in losses.values():  # warm-up: allocator, optimizer state
        step(loss_of)
    timings: dict[str, list[float]] = {name: [] for name in losses}
    for _ in range(arguments.repeats):
        for name, loss_of in losses.items():
            timings[name].append(step(loss_of))

    seconds = {name: statistics.median(values) for name, values in timings.items()}
    for name in losses:
        print(
            f"{name:>13}: {seconds[name]:.3f} s/step (median of {arguments.repeats}: "
            f"{', '.join(f'{value:.3f}' for value in timings[name])}), {tokens[name]} tokens, batch shape {shapes[name]}"
        )
    for name in ("two passes", "shared prefix"):
        print(f"{name} / label only: {seconds[name] / seconds['label only']:.2f}x (target <= 1.3x)")
    print(f"shared prefix / two passes: {seconds['shared prefix'] / seconds['two passes']:.2f}x")


if __name__ == "__main__":
    main()
