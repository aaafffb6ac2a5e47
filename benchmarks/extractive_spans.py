"""Extractive answers as spans of their context, measured on real data: the teacher's and the student's.

`teacher`: a teacher's extractive answer that is not a span of its context, mapped to the nearest span or
left out? Reads generate-rationales' output rows (each `input_text` with the teacher's `teacher_label`, as written
without span mapping) and the gold answers, and prints, per file and in all: how many answers are not spans of
their context; for those, the SQuAD exact match and F1 against gold of the answer as the teacher gave it and
of the nearest span (`spans.nearest_span`) at each mapping threshold; and, over every answered row, what each
policy keeps as training targets (rows and their EM/F1) and the teacher's EM/F1 counting a row left out as
unanswered (score 0), as evaluate counts it.

Gold answers come from the output rows' `gold_label` (an evaluation set run with `use_gold_labels=False`), else
from `--gold` files: JSON Lines with `input_text` and `output_text`, as the extractive-QA sample in
`benchmarks/data/qed` holds them.

`student`: a tuned student's answers to labeled extractive-QA rows, decoded freely and as spans of their
context, side by side in one run: SQuAD EM/F1, how many free answers are spans, and mean latency per answer.

Usage (from the repository root):
    .venv/bin/python benchmarks/extractive_spans.py teacher --outputs RUN/generate-rationales/*/output.jsonl \
        --gold benchmarks/data/qed/train.jsonl
    .venv/bin/python benchmarks/extractive_spans.py student --model RUN/tune-student/model \
        --evaluation evaluation.jsonl
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from statistics import fmean
from typing import Iterable

from kfp_distill._implementation.answers import label_answer, token_f1
from kfp_distill._implementation.jsonl import load_rows
from kfp_distill._implementation.spans import EXTRACTIVE_QA, context_passage, is_span, nearest_span
from kfp_distill._implementation.task_metrics import squad_exact_match

THRESHOLDS = (0.0, 0.25, 0.5, 0.75)


@dataclass(frozen=True)
class Answer:
    input_text: str
    teacher: str
    gold: str


def _gold_answers(paths: Iterable[str]) -> dict[str, str]:
    return {row["input_text"]: row["output_text"] for path in paths for row in load_rows(path)}


def read_answers(output_path: str, gold: dict[str, str]) -> list[Answer]:
    """The teacher's answered rows of one generate-rationales output, with their gold answers."""
    answers = []
    for row in load_rows(output_path):
        expected = row.get("gold_label") or gold.get(row["input_text"])
        if expected is None:
            raise SystemExit(f"{output_path}: no gold answer for {row['input_text'][:80]!r}")
        answers.append(Answer(row["input_text"], row["teacher_label"], expected))
    return answers


def _scores(pairs: list[tuple[str | None, str]]) -> str:
    """EM / F1 (percent) of (answer, gold) pairs; a None answer scores 0."""
    if not pairs:
        return "n/a"
    exact = fmean(0.0 if a is None else squad_exact_match(a, g) for a, g in pairs)
    f1 = fmean(0.0 if a is None else token_f1(a, g) for a, g in pairs)
    return f"EM {exact:.1%} F1 {f1:.1%}"


def report(name: str, answers: list[Answer]) -> list[str]:
    lines = [f"## {name}: {len(answers)} answered rows"]
    not_spans = [a for a in answers if not is_span(a.teacher, context_passage(a.input_text))]
    lines.append(f"- not spans of their context: {len(not_spans)} ({len(not_spans) / len(answers):.1%})")
    if not not_spans:
        return lines
    nearest = [nearest_span(a.teacher, context_passage(a.input_text)) for a in not_spans]
    lines.append(f"- those answers as given: {_scores([(a.teacher, a.gold) for a in not_spans])}")
    for threshold in THRESHOLDS:
        mapped = [(n.text if n and n.f1 >= threshold else None, a.gold) for n, a in zip(nearest, not_spans)]
        kept = [(span, gold) for span, gold in mapped if span is not None]
        lines.append(
            f"- mapped where the nearest span shares F1 >= {threshold:.2f} with the answer: {len(kept)} mapped, "
            f"their {_scores(kept)}; all {len(not_spans)} (left out = 0): {_scores(mapped)}"
        )
    spans = [(a.teacher, a.gold) for a in answers if a not in not_spans]
    lines.append("- training targets kept, per policy (EM/F1 of the kept targets against gold):")
    lines.append(f"  - as given (no policy): {len(answers)} rows, {_scores([(a.teacher, a.gold) for a in answers])}")
    lines.append(f"  - leave out: {len(spans)} rows, {_scores(spans)}")
    for threshold in THRESHOLDS:
        mapped = [(n.text, a.gold) for n, a in zip(nearest, not_spans) if n and n.f1 >= threshold]
        lines.append(f"  - map at F1 >= {threshold:.2f}: {len(spans) + len(mapped)} rows, {_scores(spans + mapped)}")
    lines.append("- the teacher scored over every answered row, a row left out scoring 0:")
    lines.append(f"  - as given: {_scores([(a.teacher, a.gold) for a in answers])}")
    lines.append(f"  - leave out: {_scores(spans + [(None, a.gold) for a in not_spans])}")
    for threshold in THRESHOLDS:
        mapped = [(n.text if n and n.f1 >= threshold else None, a.gold) for n, a in zip(nearest, not_spans)]
        lines.append(f"  - map at F1 >= {threshold:.2f}: {_scores(spans + mapped)}")
    lines.append("- examples (teacher said -> nearest span (its F1 with the answer) | gold):")
    for answer, near in list(zip(not_spans, nearest))[:12]:
        shown = "none" if near is None else f"{near.text!r} ({near.f1:.2f})"
        lines.append(f"  - {answer.teacher!r} -> {shown} | {answer.gold!r}")
    return lines


def teacher(args: argparse.Namespace) -> int:
    gold = _gold_answers(args.gold)
    everything = []
    for path in args.outputs:
        answers = read_answers(path, gold)
        everything += answers
        print("\n".join(report(path, answers)) + "\n")
    if len(args.outputs) > 1:
        print("\n".join(report("all files", everything)))
    return 0


def student(args: argparse.Namespace) -> int:
    from kfp_distill._implementation.student import StudentPredictor

    rows = load_rows(args.evaluation)
    inputs, golds = [row["input_text"] for row in rows], [row["output_text"] for row in rows]
    predictor = StudentPredictor(args.model, max_new_tokens=args.max_new_tokens)
    print(f"{args.model}: {len(rows)} rows, max_new_tokens {args.max_new_tokens}")
    for name, task_type in (("free", ""), ("spans", EXTRACTIVE_QA)):
        predictions = predictor.predict(inputs, task_type=task_type)
        answers = [label_answer(p.text, EXTRACTIVE_QA) for p in predictions]
        spans = sum(is_span(answer, context_passage(text)) for answer, text in zip(answers, inputs))
        print(
            f"- {name}: {_scores(list(zip(answers, golds)))}; answers that are spans: {spans}/{len(rows)}; "
            f"mean latency {fmean(p.latency_s for p in predictions):.3f} s"
        )
        for answer, gold in list(zip(answers, golds))[: args.examples]:
            print(f"  - {answer!r} | gold {gold!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    teacher_parser = commands.add_parser("teacher", help="non-span teacher answers: mapped or left out")
    teacher_parser.add_argument("--outputs", nargs="+", required=True, help="generate-rationales output files")
    teacher_parser.add_argument("--gold", nargs="*", default=[], help="gold answers for rows without a gold_label")
    teacher_parser.set_defaults(handler=teacher)
    student_parser = commands.add_parser("student", help="a student's answers decoded freely and as spans")
    student_parser.add_argument("--model", required=True, help="a tuned model directory")
    student_parser.add_argument("--evaluation", required=True, help="labeled rows (input_text, output_text)")
    student_parser.add_argument("--max-new-tokens", type=int, default=64)
    student_parser.add_argument("--examples", type=int, default=8, help="answers to print per decoding")
    student_parser.set_defaults(handler=student)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
