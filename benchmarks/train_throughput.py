"""Tuning throughput: tune-student's trainer vs. a plain Hugging Face `Trainer` script, and the rationale's cost.

Both tune the same student (float32 weights, full tuning, AdamW, learning rate 1e-4) on the same distilled
rows (the training rows of one of the paper's datasets with PaLM-540B's recorded rationales, read in place
from ../shared/data/dsbs, or the demo's word problems), 8 rows a step, side by side in one run, each in its
own process so that its peak memory is its own:

- plain: what a user would write: every row gives two separate sequences, `input [label] -> label` and
  `input [rationale] -> rationale`, shuffled together; a stock `Trainer` with `DataCollatorForSeq2Seq`
  (padding to the longest sequence of each random batch) and the model's own loss, 16 sequences a step
  (the two sequences of 8 rows);
- ours: `build_trainer` of tune-student: each row packed once with its input shared by both tasks
  (`SharedPrefixCollator`), batches grouped by length, logits only where a target is predicted, the same
  tokenized examples.

Both train in float32 unless `--mixed-precision` says otherwise (`auto`: bf16 autocast where the hardware has it).

Tokens/s counts real (non-padding) tokens of the label and rationale sequences trained, the same count for
both (ours processes fewer: the input once; that is the point), over the measured steps after warm-up.
Peak memory is the process's peak resident set size by the end of the last measured step (CPU), or torch's
peak allocated memory (GPU). Then, on one fixed batch of 8 rows and in turns (so that other load on the
machine slows them alike), it times a label-only step (the label sequences alone, logits only at targets),
the straightforward two-task step (label and rationale sequences as two padded passes) and ours, in CPU
seconds of this process (less distorted by other load than wall time), and prints each two-task step's cost
relative to the label-only step (target: at most 1.3x), beside the ratio of their training FLOPs, the
arithmetic any implementation with the same losses does, which the time ratio follows: how dear the rationale
task is depends on the data, on how long its rationales are against its inputs. Throughput is shown per
wall-clock and per CPU second.

`--data qed` trains on extractive QA with SQuAD-length contexts: the sample in benchmarks/data/qed (Natural
Questions questions over 120-250-word Wikipedia paragraphs), each row's rationale quoting the paragraph's
sentence that holds the answer ("The context says: \"...\" So the answer is X.").

`--memory` measures tune-student's memory instead: `run_tuning` end to end, as the component runs it (model
loading, training, an evaluation on the data's evaluation rows with generated answers, the model written),
with the settings tune-student had before its memory was bounded (the whole batch in one pass, glibc's
allocator as it comes) and with the bounded defaults, each in its own process since a process's peak resident
set cannot be reset. It prints each one's
peak memory (the component's `peak_memory_mb`: the process's peak resident set on a CPU), tokens/s over its
training steps (evaluations and checkpoints left out) and its training and evaluation losses, and their ratios.

Usage (from the repository root; on 2 CPU cores about 10 minutes, with --step-costs-only about 3):
    flock /tmp/kfp-distill-heavy.lock .venv/bin/python benchmarks/train_throughput.py \\
        [--data svamp|cqa|anli1|esnli|demo|qed] [--student smollm2-135m-instruct] [--warmup-steps 2] [--steps 8] \\
        [--repeats 3] [--step-costs-only] [--mixed-precision no|auto|bf16]
    flock /tmp/kfp-distill-heavy.lock .venv/bin/python benchmarks/train_throughput.py --data qed --memory \\
        [--steps 4] [--answered-rows 8]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import get_args

import torch
from transformers import TrainerCallback

from kfp_distill._implementation.jsonl import load_rows
from kfp_distill._implementation.models import load_causal_lm, load_tokenizer
from kfp_distill._implementation.scripts import load_module
from kfp_distill._implementation.spans import context_passage
from kfp_distill.components.tune_student.config import MixedPrecision, TuningConfig
from kfp_distill.components.tune_student.data import (
    IGNORE_INDEX,
    SharedPrefixCollator,
    TaskPrefixCollator,
    TrainingRow,
    prepare_training_examples,
)
from kfp_distill.components.tune_student.trainer import (
    build_trainer,
    next_token_statistics,
    peak_memory_mb,
    uses_bf16,
)

BATCH_ROWS = 8
LEARNING_RATE = 1e-4  # tune-student's recommended full-tuning rate, for both
QED_DIR = Path(__file__).resolve().parent / "data" / "qed"
# tune-student's settings before its memory was bounded: the whole batch in one pass, every activation kept
# (and glibc's allocator left as it is, see `run_tune_student`).
TODAY_SETTINGS = {"micro_batch_size": BATCH_ROWS, "activation_checkpointing": False}


def _quality_convert():
    """benchmarks/quality/convert.py, which reads the paper's data in place."""
    return load_module("convert", Path(__file__).resolve().parent / "quality" / "convert.py")  # as run.py names it


def _sentence_holding(answer: str, context: str) -> str:
    """The sentence of `context` around the answer's first occurrence (more than one where the answer runs past
    a full stop, as in "U.S. Electoral College"); the answer itself where the context does not hold it."""
    start = context.find(answer)
    if start < 0:
        return answer
    ends = [match.start() + 1 for match in re.finditer(r"[.!?](?=\s)", context)]  # just after a sentence's stop
    begin = max((end for end in ends if end <= start), default=0)
    finish = min((end for end in ends if end >= start + len(answer)), default=len(context))
    return context[begin:finish].strip()


def qed_rows(path: Path, with_rationales: bool = True) -> list[TrainingRow]:
    """Extractive-QA rows of the qed sample (contract rows: `question: ... context: ...` -> the answer span),
    each with a rationale quoting the context's sentence that holds the answer (the sample has no rationales)."""
    rows = []
    for row in load_rows(str(path)):
        answer = row["output_text"]
        sentence = _sentence_holding(answer, context_passage(row["input_text"]))
        rationale = f'The context says: "{sentence}" So the answer is {answer}.'
        rows.append(TrainingRow(row["input_text"], answer, rationale if with_rationales else None))
    return rows


def distilled_rows(data: str, count: int | None = None, data_dir: Path | None = None) -> list[TrainingRow]:
    """The training rows of one of the paper's datasets that have PaLM's rationales (SVAMP: 800), the qed
    sample's 190 training rows, or `count` demo word problems (default 200)."""
    if data == "qed":
        rows = qed_rows((data_dir or QED_DIR) / "train.jsonl")
        return rows[:count] if count else rows
    if data == "demo":
        from kfp_distill.interfaces.demo import make_problems

        return [TrainingRow(p.input_text, p.expression, p.rationale) for p in make_problems(count or 200, seed=7)]
    convert = _quality_convert()
    rows = [
        TrainingRow(row["input_text"], row["output_text"], row["rationale"])
        for row in convert.converted_rows(data, convert.DATASETS[data].train_split, data_dir or convert.DEFAULT_DATA_DIR)
        if row["rationale"]
    ]
    return rows[:count] if count else rows


class StepClock(TrainerCallback):
    """Notes when each optimizer step ends, and the peak memory at the last measured one."""

    def __init__(self, last_step: int):
        self.ends: list[tuple[float, float]] = []  # (wall clock, this process's CPU time)
        self.last_step = last_step
        self.peak_memory_mb = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.ends.append((time.perf_counter(), time.process_time()))

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append((time.perf_counter(), time.process_time()))
        if state.global_step == self.last_step:
            self.peak_memory_mb = peak_memory_mb()


class CountingCollator:
    """Wraps a collator and notes, per batch, the real tokens of the label and rationale sequences in it."""

    def __init__(self, collate):
        self.collate = collate
        self.tokens: list[int] = []

    def __call__(self, features):
        self.tokens.append(sum(len(example["input_ids"]) for feature in features for example in _sequences(feature)))
        return self.collate(features)


def _sequences(feature: dict) -> list[dict]:
    """The sequences a dataset item holds: a pair {"label", "rationale"} (ours) or one sequence (plain)."""
    return [feature] if "input_ids" in feature else list(feature.values())


def measure(trainer, collator: CountingCollator, warmup_steps: int, steps: int) -> dict:
    clock = StepClock(warmup_steps + steps)
    trainer.add_callback(clock)
    trainer.data_collator = collator
    trainer.train()
    measured = slice(warmup_steps, warmup_steps + steps)
    durations = [end[0] - start[0] for start, end in zip(clock.ends, clock.ends[1:])][measured]
    cpu_times = [end[1] - start[1] for start, end in zip(clock.ends, clock.ends[1:])][measured]
    tokens = collator.tokens[measured]
    return {
        "tokens_per_s": sum(tokens) / sum(durations),
        "tokens_per_cpu_s": sum(tokens) / sum(cpu_times),
        "seconds_per_step": statistics.mean(durations),
        "tokens_per_step": statistics.mean(tokens),
        "peak_memory_mb": clock.peak_memory_mb,
    }


def run_plain(
    student: str, examples: list[dict], tokenizer, warmup_steps: int, steps: int, seed: int, mixed_precision: str
) -> dict:
    """The stock `Trainer` on the label and rationale sequences as separate, shuffled examples."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    tokenizer.padding_side = "right"
    use_bf16 = uses_bf16(mixed_precision)
    sequences = [
        {**example[task], "attention_mask": [1] * len(example[task]["input_ids"])}
        for example in examples
        for task in ("label", "rationale")
    ]
    model = load_causal_lm(student, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as scratch:
        arguments = TrainingArguments(
            output_dir=scratch,
            max_steps=warmup_steps + steps + 1,  # the extra step absorbs the end of training
            per_device_train_batch_size=2 * BATCH_ROWS,
            learning_rate=LEARNING_RATE,
            lr_scheduler_type="linear",
            seed=seed,
            bf16=use_bf16,
            use_cpu=not torch.cuda.is_available() and use_bf16,  # Hugging Face's switch for CPU autocast
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
        )
        collator = CountingCollator(DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX))
        trainer = Trainer(model=model, args=arguments, train_dataset=sequences, data_collator=collator)
        return measure(trainer, collator, warmup_steps, steps)


def run_ours(
    student: str, examples: list[dict], tokenizer, warmup_steps: int, steps: int, seed: int, repeats: int, alpha: float,
    mixed_precision: str,
) -> dict:
    """tune-student's trainer (unless `steps` is 0), then the step costs on one batch."""
    train_steps = warmup_steps + steps + 1  # the extra step absorbs the end of training (its checkpoint)
    config = TuningConfig(
        student, train_steps=train_steps, evaluation_interval=train_steps, batch_size=BATCH_ROWS, seed=seed, alpha=alpha,
        mixed_precision=mixed_precision,
    )
    model = load_causal_lm(student, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = build_trainer(model, config, examples, [], tokenizer.pad_token_id, scratch, scratch)
        if steps:
            result = measure(trainer, CountingCollator(trainer.data_collator), warmup_steps, steps)
        else:
            result = {}
            trainer.create_optimizer()
        result["step_costs"] = step_costs(trainer, examples, tokenizer.pad_token_id, repeats, alpha, seed)
        result["flops_ratio"] = flops_ratio(trainer, examples)
    return result


def two_pass_loss(model, separate: dict, alpha: float) -> torch.Tensor:
    """The straightforward two-task loss: each task's padded sequences in their own pass, full logits."""
    losses = []
    for task in ("label", "rationale"):
        batch = separate[task]
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss_sum, _, predicted = next_token_statistics(logits, batch["labels"])
        losses.append(loss_sum / predicted)
    return alpha * losses[0] + (1 - alpha) * losses[1]


def step_costs(trainer, examples: list[dict], pad_token_id: int, repeats: int, alpha: float, seed: int) -> dict:
    """Seconds per step (median of `repeats`, after one warm-up each) of the three kinds of step on one batch."""
    batch_examples = random.Random(seed).sample(examples, BATCH_ROWS)
    separate = TaskPrefixCollator(pad_token_id)(batch_examples)
    packed = SharedPrefixCollator(pad_token_id)(batch_examples)
    model, optimizer = trainer.model, trainer.optimizer
    model.train()
    kinds = {
        "label only": lambda: trainer.label_task_loss(model, separate["label"])[0],
        "two passes": lambda: two_pass_loss(model, separate, alpha),
        "shared prefix (ours)": lambda: trainer.compute_loss(model, packed),
    }

    def step(loss_of) -> float:
        started = time.process_time()  # CPU time: other load on a shared machine distorts it less than wall time
        with trainer.accelerator.autocast():  # bf16 where the trainer's arguments say so, as in its training steps
            loss = loss_of()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.process_time() - started

    for loss_of in kinds.values():
        step(loss_of)
    timings: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(repeats):
        for name, loss_of in kinds.items():
            timings[name].append(step(loss_of))
    processed = {
        "label only": int(separate["label"]["attention_mask"].sum()),
        "two passes": int(separate["label"]["attention_mask"].sum() + separate["rationale"]["attention_mask"].sum()),
        "shared prefix (ours)": int(packed["shared_prefix"]["token_mask"].sum()),
    }
    flops = {  # the two-pass step computes logits everywhere; its FLOPs are not tune-student's to count
        "label only": trainer.floating_point_ops({"label": separate["label"]}),
        "two passes": None,
        "shared prefix (ours)": trainer.floating_point_ops(packed),
    }
    return {name: {"seconds": timings[name], "tokens": processed[name], "flops": flops[name]} for name in kinds}


def flops_ratio(trainer, examples: list[dict]) -> float:
    """Two-task / label-only training FLOPs over all the examples, each unpadded: what the rationale task
    adds to the arithmetic of any implementation that keeps the losses (what the step-cost ratio follows)."""
    collate = trainer.data_collator
    two_task = sum(trainer.floating_point_ops(collate([example])) for example in examples)
    label_only = sum(trainer.floating_point_ops(collate([{"label": example["label"]}])) for example in examples)
    return two_task / label_only


def token_lengths(rows: list[TrainingRow], tokenizer) -> dict[str, float]:
    """How long the data's inputs and (uncut) rationales are in the student's tokens: what sets how much the
    rationale task adds to a step."""
    inputs = [len(tokenizer(row.input_text, add_special_tokens=False)["input_ids"]) for row in rows]
    rationales = sorted(len(tokenizer(row.rationale, add_special_tokens=False)["input_ids"]) for row in rows)
    return {
        "input_mean": statistics.fmean(inputs),
        "rationale_mean": statistics.fmean(rationales),
        "rationale_p90": rationales[int(0.9 * (len(rationales) - 1))],
        "rationale_max": rationales[-1],
    }


class LoggedLosses(TrainerCallback):
    """The training loss of every step, as logged."""

    def __init__(self):
        self.values: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.values.append(logs["loss"])


class StepTimes(TrainerCallback):
    """Wall-clock and CPU seconds of the optimizer steps, each from its start to its end (evaluations and
    checkpoints, which come after a step's end, are left out), and the rows of a forward and backward pass."""

    def __init__(self):
        self.wall_s = self.cpu_s = 0.0
        self._started = (0.0, 0.0)
        self.rows_a_pass = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.rows_a_pass = args.per_device_train_batch_size

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = (time.perf_counter(), time.process_time())

    def on_step_end(self, args, state, control, **kwargs):
        self.wall_s += time.perf_counter() - self._started[0]
        self.cpu_s += time.process_time() - self._started[1]


def run_tune_student(arguments, today: bool) -> dict:
    """`run_tuning` end to end on the data's training and evaluation rows, with today's settings or the
    bounded defaults: peak memory, tokens/s over its training steps and its losses."""
    from kfp_distill._implementation.jsonl import write_jsonl
    from kfp_distill.components.tune_student.memory import GiveFreedMemoryBack
    from kfp_distill.components.tune_student.tuning import TuningRequest, run_tuning

    settings = TODAY_SETTINGS if today else {}
    if today:  # glibc left as it is: freed activations stay in the process
        GiveFreedMemoryBack._trim = lambda self: None

    data_dir = arguments.data_dir or QED_DIR
    train = distilled_rows(arguments.data, data_dir=arguments.data_dir)
    evaluation = qed_rows(data_dir / "evaluation.jsonl", with_rationales=False)
    steps = arguments.warmup_steps + arguments.steps
    config = TuningConfig(
        arguments.student, train_steps=steps, evaluation_interval=steps, batch_size=BATCH_ROWS, seed=arguments.seed,
        alpha=arguments.alpha, mixed_precision=arguments.mixed_precision, enable_early_stopping=False,
        max_answered_evaluation_rows=arguments.answered_rows, max_rationale_tokens=arguments.max_rationale_tokens,
        **settings,
    )
    times, losses = StepTimes(), LoggedLosses()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_jsonl(folder / "train.jsonl", [
            {"input_text": r.input_text, "output_text": r.output_text, "rationale": r.rationale} for r in train
        ])
        write_jsonl(folder / "evaluation.jsonl", [{"input_text": r.input_text, "output_text": r.output_text} for r in evaluation])
        request = TuningRequest(
            str(folder / "train.jsonl"), str(folder / "evaluation.jsonl"), str(folder / "model"), str(folder / "tb"),
            config, task_type="extractive_qa",
        )
        result = run_tuning(request, extra_callbacks=[times, losses])
        history = json.loads((folder / "model" / "kfp_distill.json").read_text())["metrics"]
    metrics = result.metrics
    tokens = metrics["tokens_per_s"] * metrics["wall_time_s"]  # trained tokens of the whole run
    return {
        "peak_memory_mb": metrics["peak_memory_mb"],
        "tokens_per_s": tokens / times.wall_s,
        "tokens_per_cpu_s": tokens / times.cpu_s,
        "seconds_per_step": times.wall_s / steps,
        "losses": losses.values,
        "last_eval_loss": history["last_eval_loss"],
        "last_eval_f1": history["last_eval_f1"],
        "settings": {
            **{name: getattr(config, name) for name in TODAY_SETTINGS},
            "allocator gives freed tensors back": not today,
            "rows a pass": times.rows_a_pass,
        },
    }


def worker(arguments) -> None:
    torch.manual_seed(arguments.seed)
    if arguments.worker in ("today", "bounded"):
        result = run_tune_student(arguments, today=arguments.worker == "today")
        print("RESULT " + json.dumps(result), flush=True)
        return
    tokenizer = load_tokenizer(arguments.student)
    rows = distilled_rows(arguments.data, data_dir=arguments.data_dir)
    max_input_tokens = TuningConfig("m").max_input_tokens  # tune-student's default, as for the rationales
    examples = prepare_training_examples(rows, tokenizer, max_input_tokens, arguments.max_rationale_tokens).examples
    if arguments.worker == "plain":
        result = run_plain(
            arguments.student, examples, tokenizer, arguments.warmup_steps, arguments.steps, arguments.seed,
            arguments.mixed_precision,
        )
    else:
        result = run_ours(
            arguments.student, examples, tokenizer, arguments.warmup_steps,
            0 if arguments.step_costs_only else arguments.steps, arguments.seed, arguments.repeats, arguments.alpha,
            arguments.mixed_precision,
        )
    result["rows"] = len(rows)
    result["token_lengths"] = token_lengths(rows, tokenizer)
    print("RESULT " + json.dumps(result), flush=True)


def _run_worker(argv: list[str], name: str) -> dict:
    """One worker in its own process (its peak memory its own), its RESULT line read back."""
    completed = subprocess.run(
        [sys.executable, __file__, *argv, "--worker", name], capture_output=True, text=True, check=False
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode or not lines:
        sys.exit(f"the {name} run failed:\n{completed.stderr[-4000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def compare_memory(argv: list[str], arguments) -> None:
    """tune-student with today's settings, then with the bounded defaults, side by side."""
    steps = arguments.warmup_steps + arguments.steps
    print(
        f"student {arguments.student}, {arguments.data} rows, batch {BATCH_ROWS} rows, {steps} steps and an evaluation "
        f"({arguments.answered_rows} answered rows), {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"bf16 autocast: {uses_bf16(arguments.mixed_precision)}",
        flush=True,
    )
    results = {}
    for name in ("today", "bounded"):
        results[name] = result = _run_worker(argv, name)
        print(
            f"{name:>7}: peak memory {result['peak_memory_mb']:,.0f} MiB, {result['tokens_per_s']:.1f} tokens/s "
            f"({result['tokens_per_cpu_s']:.1f} per CPU second), {result['seconds_per_step']:.2f} s/step; settings "
            f"{result['settings']}; training losses {' '.join(f'{loss:.6f}' for loss in result['losses'])}; "
            f"evaluation loss {result['last_eval_loss']:.6f}, F1 {result['last_eval_f1']:.3f}",
            flush=True,
        )
    today, bounded = results["today"], results["bounded"]
    differences = [
        abs(a - b) / max(abs(a), 1e-12)
        for a, b in zip(today["losses"] + [today["last_eval_loss"]], bounded["losses"] + [bounded["last_eval_loss"]])
    ]
    print(
        f"bounded / today: {bounded['peak_memory_mb'] / today['peak_memory_mb']:.2f}x peak memory "
        f"({bounded['peak_memory_mb']:,.0f} MiB, target <= 4,096 MiB), "
        f"{bounded['tokens_per_s'] / today['tokens_per_s']:.2f}x tokens/s "
        f"({bounded['tokens_per_cpu_s'] / today['tokens_per_cpu_s']:.2f}x per CPU second; target >= {1 / 1.4:.2f}x), "
        f"losses differ by at most {max(differences):.1e} relative"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=[*_quality_convert().DATASETS, "demo", "qed"], default="svamp")
    parser.add_argument(
        "--data-dir", type=Path, help="the paper's data (default: ../shared/data/dsbs), or qed's (default: benchmarks/data/qed)"
    )
    parser.add_argument("--student", default="smollm2-135m-instruct", help="the student model reference")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="measured steps of 8 rows, after the warm-up")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps of each kind for the step-cost ratio")
    parser.add_argument("--max-rationale-tokens", type=int, default=TuningConfig("m").max_rationale_tokens)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixed-precision", choices=get_args(MixedPrecision), default="no", help="for both trainers")
    parser.add_argument(
        "--step-costs-only", action="store_true", help="leave out the throughput comparison with the plain script"
    )
    parser.add_argument(
        "--memory", action="store_true",
        help="tune-student end to end with today's settings against the bounded defaults (needs --data qed)",
    )
    parser.add_argument("--answered-rows", type=int, default=8, help="with --memory: evaluation rows answered")
    parser.add_argument("--worker", choices=("plain", "ours", "today", "bounded"), help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    arguments = parser.parse_args(argv)
    if arguments.steps < 1 or arguments.warmup_steps < 0 or arguments.repeats < 1:
        parser.error("--steps and --repeats must be at least 1, --warmup-steps at least 0")
    if arguments.memory and arguments.data != "qed":
        parser.error("--memory needs --data qed (it evaluates on the sample's evaluation rows)")
    if arguments.worker:
        worker(arguments)
        return
    if arguments.memory:
        compare_memory(argv, arguments)
        return

    print(
        f"student {arguments.student}, {arguments.data} rows, batch {BATCH_ROWS} rows, rationales cut to "
        f"{arguments.max_rationale_tokens} tokens, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"bf16 autocast: {uses_bf16(arguments.mixed_precision)}"
        + ("" if arguments.step_costs_only else f"; {arguments.warmup_steps} warm-up + {arguments.steps} measured steps"),
        flush=True,
    )
    results = {}
    for name in ("ours",) if arguments.step_costs_only else ("plain", "ours"):
        results[name] = result = _run_worker(argv, name)
        if "tokens_per_s" in result:
            print(
                f"{name:>5}: {result['tokens_per_s']:.1f} tokens/s ({result['tokens_per_cpu_s']:.1f} per CPU second), "
                f"{result['seconds_per_step']:.2f} s/step, "
                f"{result['tokens_per_step']:.0f} tokens/step, peak memory {result['peak_memory_mb']:.0f} MiB",
                flush=True,
            )
    ours = results["ours"]
    if "plain" in results:
        plain = results["plain"]
        print(
            f"ours / plain: {ours['tokens_per_s'] / plain['tokens_per_s']:.2f}x tokens/s (target >= 1.5x; "
            f"{ours['tokens_per_cpu_s'] / plain['tokens_per_cpu_s']:.2f}x per CPU second), "
            f"{ours['peak_memory_mb'] / plain['peak_memory_mb']:.2f}x peak memory (target <= 1.0x)"
        )
    costs = ours["step_costs"]
    seconds = {name: statistics.median(cost["seconds"]) for name, cost in costs.items()}
    for name, cost in costs.items():
        print(
            f"{name:>20}: {seconds[name]:.3f} CPU s/step (median of {', '.join(f'{s:.3f}' for s in cost['seconds'])}), "
            f"{cost['tokens']} tokens processed"
        )
    for name in ("two passes", "shared prefix (ours)"):
        print(f"{name} / label only: {seconds[name] / seconds['label only']:.2f}x (target <= 1.3x)")
    print(
        f"training FLOPs, shared prefix / label only: {costs['shared prefix (ours)']['flops'] / costs['label only']['flops']:.2f}x "
        f"on this batch, {ours['flops_ratio']:.2f}x over all {ours['rows']} rows (the same for any implementation with these losses)"
    )
    lengths = ours["token_lengths"]
    print(
        f"student tokens per row: input {lengths['input_mean']:.1f} on average; rationale {lengths['rationale_mean']:.1f} "
        f"on average, {lengths['rationale_p90']} at the 90th percentile, {lengths['rationale_max']} at most "
        f"(cut to {arguments.max_rationale_tokens})"
    )


if __name__ == "__main__":
    main()
