"""Tunes a student on labels and rationales, and writes a self-contained model directory.

The model directory holds safetensors weights, the tokenizer, a model card (README.md) and the model record
(`kfp_distill/_implementation/model_record.py`), the same facts machine-readable for the model registry.
LoRA adapters are merged into the weights before saving, so the directory loads like any causal LM (or, for
an encoder-decoder student such as T5, any seq2seq LM).

Checkpoints (weights, optimizer, scheduler, RNG states, data position) are written to a checkpoint folder
every evaluation interval; a run that finds checkpoints there (a task retried after a preemption) resumes
from the latest one and ends at the same step. The folder is removed once the model directory is written.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import torch
from transformers import TrainerCallback, TrainerState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from kfp_distill._implementation.model_record import write_record
from kfp_distill._implementation.models import CATALOG, load_tokenizer
from kfp_distill._implementation.redaction import redact_uri
from kfp_distill._implementation.student import (
    STUDENT_TASKS,
    StudentTask,
    load_student_model,
    student_config,
    student_prompt,
)
from kfp_distill._implementation.task_metrics import MAIN_METRIC
from kfp_distill._implementation.tasks import resolve_task_type
from kfp_distill._version import __version__

from .answer_evaluation import AnswerEvaluation
from .config import TuningConfig
from .data import (
    encode_example,
    prepare_evaluation_examples,
    prepare_training_examples,
    read_evaluation_rows,
    read_training_rows,
)
from .seq2seq import encode_seq2seq_example
from .trainer import ANSWER_SCALARS, NUM_PREDICTIONS, TOKEN_ACCURACY, build_trainer, peak_memory_mb

TRAINING_CURVES_FILE = "training_curves.png"


@dataclass
class TuningRequest:
    """What to tune on, with which settings, and where the results go.

    Attributes:
        train_path: generate-rationales' output (JSON Lines with input_text, output_text, rationale). Without
            a rationale in any row, the student is tuned on the labels alone (standard fine-tuning; alpha 1).
        evaluation_path: The labeled evaluation set; None or an empty file for none.
        model_dir: Where the tuned model directory is written.
        tensorboard_dir: Where the TensorBoard event files are written (the contract's six scalars and the
            run's learning rate, tokens/s and peak memory).
        config: The tuning settings.
        task_type: The task type (`tasks.TASK_TYPES`): which metrics score the student's answers to the
            evaluation rows, and how the registered model cuts its answers (recorded in the model record);
            empty or `auto`: inferred from the evaluation rows.
        provenance: Facts about the run that tuning does not use, for the model card and the model record
            (e.g. teacher_model_reference, dataset_uri).
        checkpoint_dir: Where checkpoints are written and, if it holds some, resumed from; it must outlive a
            crashed run (e.g. next to the model artifact) for a restarted run to resume. A temporary folder if
            None (no resume). Removed after the model directory is written.
    """

    train_path: str
    evaluation_path: str | None
    model_dir: str
    tensorboard_dir: str
    config: TuningConfig
    provenance: dict = field(default_factory=dict)
    checkpoint_dir: str | None = None
    task_type: str = ""

    def to_dict(self) -> dict:
        """The request as JSON-ready data, which `from_dict` reads back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TuningRequest:
        """The request `to_dict` wrote."""
        return cls(**{**data, "config": TuningConfig(**data["config"])})


@dataclass
class TuningResult:
    """Where the tuned model is and how the run went.

    Attributes:
        model_dir: The self-contained model directory.
        metrics: final_train_loss, final_train_token_accuracy, final_train_num_predictions,
            best_eval_token_accuracy, last_eval_token_accuracy and last_eval_loss (None without an evaluation
            set); with one, the task's metrics of the generated answers at the last evaluation (`last_eval_f1`...),
            the best and the selected checkpoint's main metric (`best_eval_f1`, `selected_eval_f1`) and
            answered_evaluation_examples; steps_run, stopped_early, selected_step,
            train_examples, evaluation_examples, truncated_inputs, truncated_rationales, resumed_from_step
            (0 for a fresh run), wall_time_s and seconds_per_step (of this run), tokens_per_s (non-padding tokens,
            the shared input counted once, trained per second of this run's training loop), peak_memory_mb
            (peak GPU memory allocated by torch, else the process's peak resident set size), bf16_autocast
            (whether training ran under bf16 autocast) and final_learning_rate.
    """

    model_dir: str
    metrics: dict[str, float | int | bool | None]


def run_tuning(request: TuningRequest, extra_callbacks: Sequence[TrainerCallback] = ()) -> TuningResult:
    """Tunes `request.config.student_model_reference` on the label and rationale tasks.

    Args:
        request: The data, settings and output folders.
        extra_callbacks: More Hugging Face `TrainerCallback`s for the run (e.g. to measure the model as it trains).

    Returns:
        The model directory and the run's metrics.

    Raises:
        DatasetError: A row of either dataset lacks a field the tuning needs, or there are no training rows.
    """
    config, model_dir, checkpoint_dir = request.config, request.model_dir, request.checkpoint_dir
    train_rows = read_training_rows(request.train_path)
    if train_rows[0].rationale is None:
        config = dataclasses.replace(config, alpha=1.0)  # the label loss is all there is; the model card says so
    evaluation_rows = read_evaluation_rows(request.evaluation_path)
    tokenizer = load_tokenizer(config.student_model_reference, config.trust_remote_code)
    student = student_config(config.student_model_reference, config.trust_remote_code)
    encoder_decoder = bool(getattr(student, "is_encoder_decoder", False))
    # A causal student's positions run through input and target: each example must fit its context.
    context = getattr(student, "max_position_embeddings", None)
    encode = (
        encode_seq2seq_example if encoder_decoder else functools.partial(encode_example, max_sequence_tokens=context)
    )
    training = prepare_training_examples(
        train_rows, tokenizer, config.max_input_tokens, config.max_rationale_tokens, encode
    )
    evaluation = prepare_evaluation_examples(evaluation_rows, tokenizer, config.max_input_tokens, encode)
    task_type, answer_evaluation = "", None
    if request.task_type or evaluation_rows:
        inputs, golds = [row.input_text for row in evaluation_rows], [row.output_text for row in evaluation_rows]
        task_type = resolve_task_type(request.task_type, inputs, golds).name
    if evaluation_rows:
        answer_evaluation = AnswerEvaluation.of_rows(
            evaluation_rows, task_type, tokenizer, config.max_answered_evaluation_rows, config.max_input_tokens,
            None if encoder_decoder else context, config.seed,
        )
    print(
        f"tuning {redact_uri(config.student_model_reference)} ({config.tuning_method}, "
        f"learning rate {config.learning_rate:g}) "
        f"for {config.train_steps} steps of {config.batch_size} rows on {len(train_rows)} training rows, "
        f"{len(evaluation_rows)} evaluation rows",
        flush=True,
    )

    model = load_student_model(config.student_model_reference, config.trust_remote_code, dtype=torch.float32)
    # Generation must stop where the student learned to stop: at the end-of-sequence token of every target.
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if config.tuning_method == "lora":
        from peft import LoraConfig, get_peft_model

        rank, alpha = config.lora_settings(model.num_parameters())
        config = dataclasses.replace(config, lora_rank=rank, lora_alpha=alpha)  # the model card shows what ran
        model = get_peft_model(
            model,
            LoraConfig(
                task_type="SEQ_2_SEQ_LM" if encoder_decoder else "CAUSAL_LM",
                r=rank,
                lora_alpha=alpha,
                target_modules="all-linear",
            ),
        )

    temporary_checkpoints = checkpoint_dir is None
    checkpoint_dir = checkpoint_dir or tempfile.mkdtemp(prefix="kfp-distill-checkpoints-")
    resume_from, resumed_from_step = latest_complete_checkpoint(checkpoint_dir)
    if resume_from:
        print(f"resuming from {resume_from} (step {resumed_from_step})", flush=True)
    trainer = build_trainer(
        model, config, training.examples, evaluation.examples, tokenizer.pad_token_id, checkpoint_dir,
        request.tensorboard_dir, answer_evaluation,
    )
    for callback in extra_callbacks:
        trainer.add_callback(callback)
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=resume_from)
    except BaseException:
        if temporary_checkpoints:  # nothing could resume from them
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        raise
    wall_time_s = time.perf_counter() - started
    steps_this_run = trainer.state.global_step - resumed_from_step
    tuned = trainer.model.merge_and_unload() if config.tuning_method == "lora" else trainer.model

    state = trainer.state
    train_logs = [entry for entry in state.log_history if "loss" in entry]
    evaluation_logs = [entry for entry in state.log_history if f"eval_{TOKEN_ACCURACY}" in entry]
    selecting = bool(evaluation_rows) and config.enable_checkpoint_selection
    selected_step = state.best_global_step if selecting and state.best_global_step else state.global_step
    metrics: dict[str, float | int | bool | None] = {
        "final_train_loss": train_logs[-1]["loss"],
        "final_train_token_accuracy": train_logs[-1][TOKEN_ACCURACY],
        "final_train_num_predictions": train_logs[-1][NUM_PREDICTIONS],
        "best_eval_token_accuracy": max((e[f"eval_{TOKEN_ACCURACY}"] for e in evaluation_logs), default=None),
        "last_eval_token_accuracy": evaluation_logs[-1][f"eval_{TOKEN_ACCURACY}"] if evaluation_logs else None,
        "last_eval_loss": evaluation_logs[-1]["eval_loss"] if evaluation_logs else None,
        **(_answer_metrics(evaluation_logs, MAIN_METRIC[task_type], selected_step) if answer_evaluation else {}),
        "answered_evaluation_examples": len(answer_evaluation.golds) if answer_evaluation else 0,
        "steps_run": state.global_step,
        "stopped_early": state.global_step < config.train_steps,
        "selected_step": selected_step,
        "train_examples": len(train_rows),
        "evaluation_examples": len(evaluation_rows),
        "truncated_inputs": training.truncated_inputs + evaluation.truncated_inputs,
        "truncated_rationales": training.truncated_rationales,
        "resumed_from_step": resumed_from_step,
        "wall_time_s": wall_time_s,
        "seconds_per_step": wall_time_s / max(steps_this_run, 1),
        "tokens_per_s": trainer.trained_tokens_all_processes() / wall_time_s,
        "peak_memory_mb": peak_memory_mb(),
        "bf16_autocast": trainer.args.bf16,
        "final_learning_rate": train_logs[-1]["learning_rate"],
    }
    if not trainer.is_world_process_zero():  # data-parallel: the first process writes the results
        return TuningResult(model_dir=str(model_dir), metrics=metrics)
    print(
        f"tuned {metrics['steps_run']} steps in {wall_time_s:.1f} s; selected step {metrics['selected_step']}"
        + (" (stopped early)" if metrics["stopped_early"] else ""),
        flush=True,
    )

    tuned.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    name_tokenizer_class_for_older_transformers(model_dir)
    tasks = STUDENT_TASKS if train_rows[0].rationale is not None else ("label",)
    provenance = {**request.provenance, **({"task_type": task_type} if task_type else {})}
    facts = _model_facts(config, provenance, metrics, encoder_decoder, tasks)
    write_record(model_dir, facts)
    write_training_curves(state.log_history, Path(model_dir) / TRAINING_CURVES_FILE)
    (Path(model_dir) / "README.md").write_text(_model_card(facts), encoding="utf-8")
    # Only now is nothing lost without the checkpoints (they hold optimizer states, several times the model).
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return TuningResult(model_dir=str(model_dir), metrics=metrics)


def _answer_metrics(evaluation_logs: list[dict], main_metric: str, selected_step: int) -> dict[str, float | None]:
    """The task's metrics of the answers at the last evaluation, and the main one at its best and at the selected step."""
    last = evaluation_logs[-1] if evaluation_logs else {}
    main = [(entry["step"], entry[f"eval_{main_metric}"]) for entry in evaluation_logs]
    return {
        **{f"last_{key}": value for key, value in last.items() if key in ANSWER_SCALARS},
        f"best_eval_{main_metric}": max((value for _, value in main), default=None),
        f"selected_eval_{main_metric}": next((value for step, value in main if step == selected_step), None),
    }


def name_tokenizer_class_for_older_transformers(model_dir: str | Path) -> None:
    """Names the saved tokenizer's class as transformers 4.x knows it, so serving containers that ship
    transformers 4 (the default Vertex AI one has 4.48) load the model directory.

    transformers 5 saves a fast tokenizer as `TokenizersBackend`, a class transformers 4 does not have; its
    `PreTrainedTokenizerFast` reads the same tokenizer.json, and transformers 5 loads either name.
    """
    path = Path(model_dir) / "tokenizer_config.json"
    settings = json.loads(path.read_text(encoding="utf-8"))
    if settings.get("tokenizer_class") == "TokenizersBackend":
        settings["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_training_curves(log_history: list[dict], path: str | Path) -> None:
    """A PNG of the training and evaluation loss and token accuracy by step, and the task's metrics of the
    generated answers at each evaluation, from the Trainer's log history."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [
        ("loss", [("loss", "training", "-"), ("eval_loss", "evaluation", "o-")]),
        ("token accuracy", [(TOKEN_ACCURACY, "training", "-"), (f"eval_{TOKEN_ACCURACY}", "evaluation", "o-")]),
    ]
    answered = [key for key in ANSWER_SCALARS if any(key in entry for entry in log_history)]
    if answered:
        panels.append(("generated answers", [(key, key.removeprefix("eval_"), "o-") for key in answered]))
    figure = Figure(figsize=(5 * len(panels), 4), dpi=100)
    FigureCanvasAgg(figure)
    for axes, (title, curves) in zip(figure.subplots(1, len(panels)), panels):
        for key, label, style in curves:
            points = [(entry["step"], entry[key]) for entry in log_history if key in entry]
            if points:
                axes.plot(*zip(*points), style, label=label, markersize=4)
        axes.set_title(title)
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path)


def latest_complete_checkpoint(checkpoint_dir: str) -> tuple[str | None, int]:
    """(path, step) of the latest checkpoint in `checkpoint_dir` that was written to the end; (None, 0) if none.

    The Trainer writes a checkpoint's trainer state last, so a checkpoint whose trainer state does not load
    was cut short (the task was killed while saving it) and the one before it is used.
    """
    folder = Path(checkpoint_dir)
    candidates = folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if folder.is_dir() else []
    steps = sorted((int(path.name.rsplit("-", 1)[1]), path) for path in candidates if path.name.rsplit("-", 1)[1].isdigit())
    for _, path in reversed(steps):
        try:
            return str(path), TrainerState.load_from_json(str(path / "trainer_state.json")).global_step
        except (OSError, ValueError):  # missing, or a half-written JSON file
            continue
    return None, 0


def _model_facts(
    config: TuningConfig, provenance: dict, metrics: dict, encoder_decoder: bool, tasks: Sequence[StudentTask]
) -> dict:
    if encoder_decoder:  # the input to the encoder; the decoder starts with the task marker
        prompt_format = {task: {"encoder": "{input_text}", "decoder": student_prompt("", task)} for task in tasks}
    else:
        prompt_format = {task: student_prompt("{input_text}", task) for task in tasks}
    # The facts go to the model record, the model card and from there the registry: no credentials in URIs.
    student = redact_uri(config.student_model_reference)
    return {
        "kfp_distill_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **{name: redact_uri(value) if isinstance(value, str) else value for name, value in provenance.items()},
        "student_model_reference": student,
        "architecture": "encoder-decoder" if encoder_decoder else "causal",
        "prompt_format": prompt_format,
        "trained_tasks": list(tasks),
        "tuning": {**config.to_dict(), "student_model_reference": student},
        "metrics": metrics,
    }


def _model_card(facts: dict) -> str:
    metrics = facts["metrics"]
    tuning = facts["tuning"]
    provenance_lines = "".join(
        f"- {name}: `{value}`\n"
        for name, value in facts.items()
        if name
        not in {
            "kfp_distill_version", "created_at", "student_model_reference", "architecture", "prompt_format",
            "trained_tasks", "tuning", "metrics",
        }
    )
    metric_rows = "".join(f"| {name} | {_shown(value)} |\n" for name, value in metrics.items())
    method = (
        "with distilling step-by-step: the student learned the teacher's labels and rationales together "
        f"(label loss weight {tuning['alpha']})"
        if "rationale" in facts["trained_tasks"]
        else "on labels alone (standard fine-tuning: the training set had no rationales)"
    )
    return (
        "---\n"
        "library_name: transformers\n"
        f"base_model: {json.dumps(_hub_id(facts['student_model_reference']))}\n"
        "tags: [distillation, distilling-step-by-step, kfp-distill]\n"
        "---\n\n"
        f"# Distilled {facts['student_model_reference']}\n\n"
        f"Tuned by kfp-distill {facts['kfp_distill_version']} on {facts['created_at']} {method}.\n\n"
        "## Provenance\n\n"
        f"- student_model_reference: `{facts['student_model_reference']}`\n"
        f"{provenance_lines}\n"
        "## Tuning\n\n"
        f"- method: {tuning['tuning_method']}, learning rate {tuning['learning_rate']:g}, batch size {tuning['batch_size']}\n"
        f"- steps: {metrics['steps_run']} of {tuning['train_steps']} "
        f"({'stopped early' if metrics['stopped_early'] else 'all run'}), selected step {metrics['selected_step']}\n"
        f"- training examples: {metrics['train_examples']}, evaluation examples: {metrics['evaluation_examples']}\n\n"
        "## Metrics\n\n"
        "| metric | value |\n|---|---|\n"
        f"{metric_rows}\n"
        f"![Loss and token accuracy by step]({TRAINING_CURVES_FILE})\n\n"
        "## Use\n\n"
        f"{_usage(facts)}\n"
    )


def _usage(facts: dict) -> str:
    prompts = facts["prompt_format"]
    encoder_decoder = facts["architecture"] == "encoder-decoder"
    if encoder_decoder:
        usage = (
            "Give the encoder the input text and start the decoder (after its start token) with "
            f"{json.dumps(prompts['label']['decoder'])}, the same layout as the training examples; it goes on with "
            "the label."
        )
    else:
        usage = (
            f"Prompt the model with {json.dumps(prompts['label'])} (the input text, then the task marker), "
            "the same layout as the training examples; it answers with the label."
        )
    if "rationale" in prompts:
        rationale_prompt = prompts["rationale"]["decoder"] if encoder_decoder else prompts["rationale"]
        usage += f" {json.dumps(rationale_prompt)} asks for the step-by-step explanation instead."
    return usage


def _hub_id(model_reference: str) -> str:
    """The Hugging Face id a catalog name stands for; other references as given."""
    return CATALOG[model_reference].upstream_id if model_reference in CATALOG else model_reference


def _shown(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
