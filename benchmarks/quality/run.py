"""Does training on rationales beat labels alone? The paper's comparison, run with our components.

For one dataset of the paper (converted by `convert.py`), each run goes the pipeline's way with the
pipeline's code: validate-dataset checks its training file; for the arms with rationales, generate-rationales
replays PaLM-540B's recorded rationales through the `precomputed` teacher; tune-student tunes the student;
the evaluation's answer extraction and task metrics score held-out answers. The arms, same student, steps and batch:

- `standard`: standard fine-tuning on the gold labels;
- `dss`: distilling step-by-step, gold labels plus PaLM's rationales;
- `label_distillation`: PaLM's labels, no rationales;
- `dss_teacher_labels`: distilling step-by-step without gold labels, PaLM's labels and rationales;
- `explain_then_answer`: the paper's single-task ablation, gold labels and PaLM's rationales as one target
  (the rationale, then "So the answer is" and the label), tuned as standard fine-tuning is; its generations get
  `--rationale-tokens` more room, and the evaluation's answer extraction reads the answer after that marker;

each for several seeds and training-data fractions. Every `--eval-interval` steps a run generates the label
task greedily on a validation split (held out from the training split) and on the test split, and records
the accuracies with the steps, the training FLOPs and the training CPU seconds so far (these measurements
excluded). So each run gives one curve, from which `report.py` reads the comparisons at equal steps, at
convergence (the best validation accuracy) and at equal compute. Compute is counted in training FLOPs
(tune-student's count: the model's body at every position processed, the output layer where logits are
computed), which other load on this shared machine cannot distort; CPU seconds are recorded beside them.

Each run's record joins `<out-dir>/runs.jsonl` as it finishes (the file is replaced whole, never half
written); a re-run skips the runs already there, so a long benchmark can be stopped and resumed. A run
stopped midway resumes too: its checkpoints (tune-student's, one per evaluation interval) and its curve so far
wait in `<out-dir>/unfinished/`, so at most one interval's steps are trained again.

Usage (from the repository root):
    .venv/bin/python benchmarks/quality/run.py --dataset svamp --out-dir results/svamp \\
        [--arms standard dss label_distillation dss_teacher_labels explain_then_answer] [--seeds 0 1 2] [--fractions 1.0] \\
        [--steps 300] [--eval-interval 50] [--train-limit N] [--test-limit N]
    .venv/bin/python benchmarks/quality/report.py results/svamp
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import get_args

from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert import DATASETS, DEFAULT_DATA_DIR, converted_rows  # noqa: E402
from report import ARM_NAMES, RUNS_FILE, load_runs  # noqa: E402

from kfp_distill._implementation.answers import label_answer  # noqa: E402
from kfp_distill._implementation.jsonl import load_rows, write_jsonl  # noqa: E402
from kfp_distill._implementation.models import load_tokenizer  # noqa: E402
from kfp_distill._implementation.student import generate_batched  # noqa: E402
from kfp_distill._implementation.task_metrics import score_answers  # noqa: E402
from kfp_distill.components.generate_rationales.config import GenerationConfig  # noqa: E402
from kfp_distill.components.generate_rationales.generation import generate_rationales  # noqa: E402
from kfp_distill.components.tune_student.config import MixedPrecision, TuningConfig  # noqa: E402
from kfp_distill.components.tune_student.tuning import TuningRequest, run_tuning  # noqa: E402
from kfp_distill.components.validate_dataset.validation import validate_dataset  # noqa: E402

ARMS = tuple(ARM_NAMES)
RATIONALE_ARMS = ("dss", "dss_teacher_labels")  # two tasks: the teacher step replays PaLM's rationales
ONE_TARGET_ARM = "explain_then_answer"
# How each dataset is scored: SVAMP by value; CQA answers are free text matched exactly (after SQuAD
# normalisation); the NLI sets are three-way classification.
TASK_TYPES = {"svamp": "math", "cqa": "free_text", "anli1": "classification", "esnli": "classification"}


@dataclass(frozen=True)
class RunKey:
    """What makes one run: its dataset, arm, share of the training rows and seed."""

    dataset: str
    arm: str
    fraction: float
    seed: int


@dataclass(frozen=True)
class CurvePoint:
    """The accuracies after `step` optimizer steps, `train_flops` FLOPs and `train_cpu_s` CPU seconds of training."""

    step: int
    train_flops: float
    train_cpu_s: float
    validation_accuracy: float
    test_accuracy: float


def arm_rows(rows: list[dict], arm: str) -> list[dict]:
    """Training rows of one arm: whose label (gold or PaLM's) and whether the rationale is kept.

    Rows PaLM gave no answer for are left out of the arms that train on its labels.
    """
    teacher_labels = arm in ("label_distillation", "dss_teacher_labels")
    with_rationale = arm in (*RATIONALE_ARMS, ONE_TARGET_ARM)
    chosen = []
    for row in rows:
        label = row["teacher_label"] if teacher_labels else row["output_text"]
        if not label:
            continue
        chosen.append({"input_text": row["input_text"], "output_text": label,
                       **({"rationale": row["rationale"]} if with_rationale else {})})
    return chosen


def explained_target(row: dict) -> dict:
    """A training row of the explain-then-answer arm: the rationale and then the label, as one output, in the
    words PaLM's chain-of-thought completions end with."""
    return {"input_text": row["input_text"], "output_text": f"{row['rationale']} So the answer is {row['output_text']}.".strip()}


def split_rows(rows: list[dict], validation_size: int, fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(training rows, validation rows): the validation rows are the same for every run on the same `rows`;
    the training rows are a seeded `fraction` of the rest.

    The arms on gold labels share all their rows and so their validation rows; the arms on PaLM's labels,
    which lack the rows PaLM gave no answer for, share theirs, scored against PaLM's labels: with no gold
    labels, that is how their user would pick a checkpoint.
    """
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    validation, rest = shuffled[:validation_size], shuffled[validation_size:]
    random.Random(seed).shuffle(rest)
    return rest[: max(1, round(len(rest) * fraction))], validation


class HeldOutAccuracy(TrainerCallback):
    """Every `interval` steps and at the last one, the label-task accuracy on the validation and test rows,
    with the training FLOPs so far (the Trainer's count, up to date at each training log) and the training
    CPU seconds (its own CPU time kept out).

    The curve is rewritten to `curve_file` (atomically) at each point, so a run resumed from a checkpoint keeps
    the points up to that checkpoint and goes on counting CPU seconds from there.
    """

    def __init__(self, interval: int, tokenizer, validation: list[dict], test: list[dict], task_type: str,
                 max_new_tokens: int, curve_file: Path):
        self.interval, self.tokenizer, self.task_type = interval, tokenizer, task_type
        self.validation, self.test, self.max_new_tokens = validation, test, max_new_tokens
        self.curve_file = curve_file
        self.points: list[CurvePoint] = []
        self._cpu_s_before = 0.0
        self._started = 0.0
        self._measuring_s = 0.0

    def _accuracy(self, model, rows: list[dict]) -> float:
        outputs = generate_batched(
            model, self.tokenizer, [r["input_text"] for r in rows], "label", self.max_new_tokens, task_type=self.task_type
        )
        answers = [label_answer(output, self.task_type) for output in outputs]  # as the evaluate component does
        return score_answers(self.task_type, answers, [r["output_text"] for r in rows]).accuracy

    def on_train_begin(self, args, state, control, **kwargs):
        # The steps after the checkpoint resumed from (if any) are trained again, so their points go.
        recorded = [CurvePoint(**row) for row in load_rows(self.curve_file)] if self.curve_file.exists() else []
        self.points = [point for point in recorded if point.step <= state.global_step]
        write_jsonl(self.curve_file, [asdict(point) for point in self.points])
        self._cpu_s_before = self.points[-1].train_cpu_s if self.points else 0.0
        self._started = time.process_time()

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        if "loss" not in (logs or {}) or (state.global_step % self.interval and state.global_step < state.max_steps):
            return
        measuring = time.process_time()
        was_training = model.training
        model.eval()
        validation, test = self._accuracy(model, self.validation), self._accuracy(model, self.test)
        model.train(was_training)
        train_cpu_s = self._cpu_s_before + measuring - self._started - self._measuring_s
        self._measuring_s += time.process_time() - measuring
        point = CurvePoint(state.global_step, state.total_flos, train_cpu_s, validation, test)
        self.points.append(point)
        write_jsonl(self.curve_file, [asdict(point) for point in self.points])
        print(f"  step {state.global_step}: validation {validation:.3f}, test {test:.3f} "
              f"({state.total_flos:.3g} FLOPs, {train_cpu_s:.0f} CPU s)", flush=True)


def tuning_config(args: argparse.Namespace, seed: int) -> TuningConfig:
    return TuningConfig(
        student_model_reference=args.student, train_steps=args.steps, batch_size=args.batch_size,
        learning_rate_multiplier=args.learning_rate_multiplier, alpha=args.alpha, seed=seed,
        evaluation_interval=args.eval_interval, mixed_precision=args.mixed_precision,
    )


def run_settings(args: argparse.Namespace, test_rows: int) -> dict:
    """What the runs of one results folder share, so that their records compare."""
    return {
        "student": args.student, "steps": args.steps, "batch_size": args.batch_size, "alpha": args.alpha,
        "learning_rate": tuning_config(args, 0).learning_rate, "validation_rows": args.validation_size,
        "test_rows": test_rows, "eval_interval": args.eval_interval, "max_new_tokens": args.max_new_tokens,
        "train_limit": args.train_limit, "mixed_precision": args.mixed_precision,
        "rationale_tokens": args.rationale_tokens,
    }


def check_same_settings(path: Path, settings: dict, missing_fields_differ: bool = False) -> None:
    """Stops before any run when a record of `path` (runs.jsonl, or an unfinished run's settings) was made
    with other settings than this command's: resuming would mix them. A field a record lacks (one recorded
    since) counts as the same unless `missing_fields_differ` (a run half done by an older runner, whose
    default may have differed)."""
    for line, record in enumerate(load_rows(path), start=1):
        for field, value in settings.items():
            if field in record and record[field] != value or missing_fields_differ and field not in record:
                raise SystemExit(
                    f"{path}:{line}: field {field} is {record.get(field, '(not recorded)')!r} there but {value!r} "
                    "in this command; run with the same settings to resume, or give another --out-dir"
                )


def run_one(key: RunKey, rows: list[dict], test: list[dict], args: argparse.Namespace, work_dir: Path) -> dict:
    """Validates, tunes and measures one run in `work_dir`, resuming from what a stopped attempt left there;
    returns its record for runs.jsonl."""
    train, validation = split_rows(arm_rows(rows, key.arm), args.validation_size, key.fraction, key.seed)
    task_type = TASK_TYPES[key.dataset]
    work_dir.mkdir(parents=True, exist_ok=True)
    settings_file = work_dir / "settings.jsonl"
    if settings_file.exists():
        check_same_settings(settings_file, run_settings(args, len(test)), missing_fields_differ=True)
    write_jsonl(settings_file, [run_settings(args, len(test))])
    # The validation rows keep the bare label: what the extracted answer is scored against.
    write_jsonl(work_dir / "train.jsonl", [explained_target(row) for row in train] if key.arm == ONE_TARGET_ARM else train)
    validated = validate_dataset(
        str(work_dir / "train.jsonl"), "", args.student, work_dir / "validated.jsonl",
        work_dir / "no-evaluation.jsonl", work_dir / "validation.md", task_type=task_type,
    )
    tuning_rows = work_dir / "validated.jsonl"
    if key.arm in RATIONALE_ARMS:  # the teacher step, PaLM's recorded rationales replayed
        tuning_rows = work_dir / "distilled.jsonl"
        generate_rationales(
            str(work_dir / "validated.jsonl"), tuning_rows, work_dir / "teacher.md",
            GenerationConfig("precomputed", task_type=task_type),
        )
    config = tuning_config(args, key.seed)
    max_new_tokens = args.max_new_tokens + (args.rationale_tokens if key.arm == ONE_TARGET_ARM else 0)
    measure = HeldOutAccuracy(args.eval_interval, load_tokenizer(args.student), validation, test, task_type,
                              max_new_tokens, work_dir / "curve.jsonl")
    request = TuningRequest(
        str(tuning_rows), None, str(work_dir / "model"), str(work_dir / "tensorboard"), config,
        provenance={"dataset_uri": f"dsbs/{key.dataset}"}, checkpoint_dir=str(work_dir / "checkpoints"),
    )
    result = run_tuning(request, extra_callbacks=[measure])
    return {
        **asdict(key),
        "train_rows": validated.train.examples,
        **run_settings(args, len(test)),
        "seconds_per_step": result.metrics["seconds_per_step"],
        "bf16_autocast": result.metrics["bf16_autocast"],
        "curve": [asdict(point) for point in measure.points],
    }


def completed_runs(out_dir: Path) -> set[RunKey]:
    path = out_dir / RUNS_FILE
    if not path.exists():
        return set()
    return {RunKey(r["dataset"], r["arm"], r["fraction"], r["seed"]) for r in load_runs(path)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=list(DATASETS))
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--fractions", nargs="+", type=float, default=[1.0],
                        help="shares of the training rows; below 1 only for the standard and dss arms")
    parser.add_argument("--student", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate-multiplier", type=float, default=0.5)
    parser.add_argument("--alpha", type=float, default=0.5, help="label-loss weight of the two-task arms")
    parser.add_argument("--eval-interval", type=int, default=50)
    parser.add_argument("--validation-size", type=int, default=80)
    parser.add_argument("--train-limit", type=int, help="use the first N training rows (a quick run)")
    parser.add_argument("--test-limit", type=int, help="score the first N test rows (a quick run)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--rationale-tokens", type=int, default=128,
                        help="more generated tokens for the explain_then_answer arm, whose output starts with the rationale")
    parser.add_argument(
        "--mixed-precision", choices=get_args(MixedPrecision), default="no",
        help="bf16 autocast in training; 'no' (float32) by default, so that runs on machines with and without bf16 compare",
    )
    args = parser.parse_args(argv)
    if args.train_limit is not None and args.train_limit <= args.validation_size:
        parser.error(f"--train-limit {args.train_limit} leaves no training rows beside --validation-size {args.validation_size}")

    spec = DATASETS[args.dataset]
    rows = list(converted_rows(args.dataset, spec.train_split, args.data_dir))[: args.train_limit]
    test = [
        {"input_text": r["input_text"], "output_text": r["output_text"]}
        for r in converted_rows(args.dataset, spec.test_split, args.data_dir)
    ][: args.test_limit]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if (args.out_dir / RUNS_FILE).exists():
        check_same_settings(args.out_dir / RUNS_FILE, run_settings(args, len(test)))
    done = completed_runs(args.out_dir)
    keys = [
        RunKey(args.dataset, arm, fraction, seed)
        for fraction in sorted(args.fractions, reverse=True)
        for seed in args.seeds
        for arm in args.arms
        if fraction == 1.0 or arm in ("standard", "dss")
    ]
    for key in keys:
        if key in done:
            print(f"{key}: done already", flush=True)
            continue
        print(f"{key}: tuning", flush=True)
        work_dir = args.out_dir / "unfinished" / f"{key.arm}-{key.fraction}-seed{key.seed}"
        record = run_one(key, rows, test, args, work_dir)
        runs_file = args.out_dir / RUNS_FILE
        # Rewritten whole and atomically: a run stopped while writing cannot leave half a record behind.
        write_jsonl(runs_file, [*(load_runs(runs_file) if runs_file.exists() else []), record])
        shutil.rmtree(work_dir)  # the model and what it was tuned on: the record holds all that is measured
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
