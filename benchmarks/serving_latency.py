"""Serving latency: the teacher against the distilled student, side by side on one CPU and one evaluation set.

Answers every evaluation row, one request at a time, with:

- the teacher as the pipeline runs it: Qwen2.5-Coder-1.5B-Instruct (catalog GGUF, Q4_K_M) in llama.cpp, with
  generate-rationales' few-shot chain-of-thought chat prompt (system instruction, the demo's 4 worked
  examples, the question) and its default decoding (greedy, at most 256 new tokens);
- the distilled student in llama.cpp, from its GGUF export (`kfp-distill export-gguf`), prompted with
  `student_prompt(input_text, "label")`;
- the distilled student in transformers (`StudentPredictor`, what `kfp-distill serve` and evaluate run).

Every answer is scored against the row's gold label with `answers_match` (by value for arithmetic). Model
loading and one warm-up request per model (on a few-shot row, not an evaluation row) are left out of the
timings. Prints a table of accuracy, mean / median per-example latency and examples per second, and the
student's speed-up over the teacher by mean and by median latency (target: at least 10x per example; the
median is the steadier figure on a machine that other work shares).

The evaluation set is the demo's 30 evaluation rows (`kfp_distill/interfaces/demo.py`), the task the demo's student was
distilled on. Usage (from the repository root; a benchmark, so under the heavy lock on a shared machine):

    flock /tmp/kfp-distill-heavy.lock .venv/bin/python benchmarks/serving_latency.py \\
        --student local_outputs/distillation-<run>/tune-student/model [--gguf-types f16 q8_0] [--limit 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from kfp_distill._implementation.answers import answers_match, extract_answer, split_completion
from kfp_distill._implementation.jsonl import load_rows
from kfp_distill._implementation.models import DEFAULT_TEACHER
from kfp_distill._implementation.student import StudentPredictor, student_prompt
from kfp_distill._implementation.teacher_reference import parse_teacher_reference
from kfp_distill.components.generate_rationales.backends.base import DecodingSettings
from kfp_distill.components.generate_rationales.backends.llama_cpp import LlamaCppBackend
from kfp_distill.components.generate_rationales.prompts import Mode, build_messages, load_demonstrations
from kfp_distill.interfaces.demo import write_demo_data
from kfp_distill.interfaces.gguf_export import export_gguf

STUDENT_MAX_NEW_TOKENS = 64  # evaluate's default for the student


@dataclass
class Row:
    input_text: str
    gold: str


@dataclass
class Measurement:
    """One model's answers to the evaluation set: accuracy and per-example latencies."""

    model: str
    load_and_warm_up_s: float
    latencies_s: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct)

    @property
    def mean_latency_s(self) -> float:
        return statistics.fmean(self.latencies_s)

    @property
    def median_latency_s(self) -> float:
        return statistics.median(self.latencies_s)

    @property
    def examples_per_s(self) -> float:
        return len(self.latencies_s) / sum(self.latencies_s)


def measure(model: str, load: Callable[[], Callable[[str], str]], rows: list[Row], warm_up_input: str) -> Measurement:
    """Loads a model and warms it up once (timed apart), then answers each row alone and scores the answer."""
    started = time.perf_counter()
    answer = load()
    answer(warm_up_input)
    result = Measurement(model, load_and_warm_up_s=time.perf_counter() - started)
    for row in rows:
        started = time.perf_counter()
        label = answer(row.input_text)
        result.latencies_s.append(time.perf_counter() - started)
        result.correct.append(label is not None and answers_match(label, row.gold))
    print(f"  {model}: {result.accuracy:.1%} correct, {result.mean_latency_s:.3f} s per example", file=sys.stderr)
    return result


def teacher_answerer(teacher: str, few_shot_uri: str) -> Callable[[], Callable[[str], str | None]]:
    """The pipeline's teacher: generate-rationales' llama.cpp backend, prompt and decoding."""

    def load():
        backend = LlamaCppBackend(parse_teacher_reference(teacher))
        demonstrations = load_demonstrations(few_shot_uri)
        settings = DecodingSettings()

        def answer(input_text: str) -> str | None:
            messages = build_messages(input_text, Mode.PREDICT, demonstrations=demonstrations)
            return split_completion(backend.complete(messages, settings).text)[1]

        return answer

    return load


def transformers_student(student: str) -> Callable[[], Callable[[str], str]]:
    def load():
        predictor = StudentPredictor(student, max_new_tokens=STUDENT_MAX_NEW_TOKENS)
        return lambda input_text: extract_answer(predictor.predict([input_text])[0].text)

    return load


def llama_cpp_student(gguf_path: Path) -> Callable[[], Callable[[str], str]]:
    def load():
        from llama_cpp import Llama

        llama = Llama(model_path=str(gguf_path), n_ctx=2048, n_threads=os.cpu_count(), verbose=False)

        def answer(input_text: str) -> str:
            response = llama.create_completion(
                student_prompt(input_text, "label"), max_tokens=STUDENT_MAX_NEW_TOKENS, temperature=0.0
            )
            return extract_answer(response["choices"][0]["text"].strip())

        return answer

    return load


def to_markdown(results: list[Measurement], teacher: Measurement, rows: int) -> str:
    lines = [
        f"{rows} evaluation rows, one request at a time, {os.cpu_count()} CPU cores.",
        "",
        "| Model | Accuracy | Mean latency per example | Median | Examples/s | Speed-up vs teacher (mean / median) "
        "| Load + warm-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        lines.append(
            f"| {result.model} | {result.accuracy:.1%} | {result.mean_latency_s:.3f} s | "
            f"{result.median_latency_s:.3f} s | {result.examples_per_s:.2f} | "
            f"{teacher.mean_latency_s / result.mean_latency_s:.1f}x / "
            f"{teacher.median_latency_s / result.median_latency_s:.1f}x | {result.load_and_warm_up_s:.1f} s |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", required=True, help="the distilled student: tune-student's model directory")
    parser.add_argument("--teacher", default=DEFAULT_TEACHER, help="a catalog name or .gguf path (llama.cpp)")
    parser.add_argument("--gguf-types", nargs="+", default=["f16", "q8_0"], choices=["f32", "f16", "q8_0"])
    parser.add_argument("--limit", type=int, default=30, help="evaluation rows to answer (the demo has 30)")
    parser.add_argument("--output", default="", help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="serving-latency-") as scratch:
        files = write_demo_data(Path(scratch) / "demo-data")
        rows = [Row(r["input_text"], r["output_text"]) for r in load_rows(files["evaluation"])][: args.limit]
        warm_up_input = load_rows(files["few_shot"])[0]["input_text"]

        candidates: list[tuple[str, Callable]] = []
        for output_type in args.gguf_types:
            started = time.perf_counter()
            path = export_gguf(args.student, Path(scratch) / f"student-{output_type}.gguf", output_type)
            print(f"exported {path.name} ({path.stat().st_size / 1e6:.0f} MB) in "
                  f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
            candidates.append((f"Distilled student, llama.cpp (GGUF {output_type})", llama_cpp_student(path)))
        candidates.append(("Distilled student, transformers (float32)", transformers_student(args.student)))

        print(f"answering {len(rows)} evaluation rows with each model...", file=sys.stderr)
        teacher = measure(f"Teacher: {args.teacher}, llama.cpp, 4-shot CoT", teacher_answerer(args.teacher, files["few_shot"]),
                          rows, warm_up_input)
        results = [teacher] + [measure(name, load, rows, warm_up_input) for name, load in candidates]

    print(to_markdown(results, teacher, len(rows)))
    if args.output:
        Path(args.output).write_text(json.dumps(
            [{**asdict(r), "accuracy": r.accuracy, "mean_latency_s": r.mean_latency_s,
              "examples_per_s": r.examples_per_s} for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
