"""The Markdown report, metrics and output rows of representative runs, held to snapshots under `snapshots/`.

Timings (latency, wall time) and the temporary folder are masked; everything else is compared as written.
After a deliberate change to what a run reports, regenerate with `UPDATE_REPORT_SNAPSHOTS=1` and read the diff.
"""

import json
import os
import re
from pathlib import Path

import pytest

from kfp_distill._implementation.jsonl import load_rows, write_jsonl
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.generate_rationales.generation import TeacherAnswersUnusableError, generate_rationales
from kfp_distill.components.generate_rationales.report import GenerationReport

SNAPSHOTS = Path(__file__).with_name("snapshots")
UPDATE = os.environ.get("UPDATE_REPORT_SNAPSHOTS") == "1"


def arithmetic_teacher(messages):
    """Sums right, but explains 3 + 3 as 7, restates its answer to 8 + 8, and never concludes on NO_ANSWER."""
    question = messages[-1]["content"]
    if "3 + 3" in question:
        return "Three and three. The answer is 7."
    if "8 + 8" in question:
        return "The answer is 16 because it is 16."
    if "NO_ANSWER" in question:
        return "I keep thinking about this and never conclude"
    left, right = (int(number) for number in re.findall(r"\d+", question.split("\n")[0])[:2])
    return f"We add {left} and {right} to get {left + right}. The answer is {left + right}."


# Per question, what sample i (seed i) answers.
VOTES = {
    "What is 2 + 3?": ["6", "5", "5"],
    "What is 4 + 4?": ["8", "8", "8"],
    "What is 1 + 6?": ["7", "6", "6"],
}


def voting_teacher(body):
    question = body["messages"][-1]["content"].split("\n")[0]
    return f"Sample {body['seed']} works out {question}. The answer is {VOTES[question][body['seed']]}."


SPANS = {
    "How many parishes": "64 parishes",
    "What is the capital": "beijing city",
    "Who won": "It is not stated",
}


def span_teacher(messages):
    question = messages[-1]["content"]
    return "The passage says so. The answer is " + next(
        answer for asked, answer in SPANS.items() if asked in question
    ) + "."


def labeled_and_unlabeled(tmp_path):
    """Labeled rows the teacher explains (and draws its demonstrations from), unlabeled rows it answers; one
    request fails, one answer never concludes, one explanation contradicts its label, one only restates."""
    rows = [
        {"input_text": "What is 2 + 3?", "output_text": "5"},
        {"input_text": "What is 3 + 3?", "output_text": "6"},
        {"input_text": "What is 4 + 5?", "output_text": "9"},
        {"input_text": "What is 8 + 8?", "output_text": "16"},
        {"input_text": "What is 1 + 1?", "output_text": "2"},
        {"input_text": "What is 9 + 9?", "output_text": None},
        {"input_text": "What is 7 + 2? NO_ANSWER", "output_text": None},
        {"input_text": "What is 6 + 1?", "output_text": None},
    ]
    options = {"task_type": "math", "answer_format": "text", "max_attempts": 1, "min_answered_fraction": 0.0}
    server = {"responder": arithmetic_teacher, "fault_plan": {"What is 9 + 9?": ["500"]}}
    return rows, options, server


def self_consistency_dropping_contradictions(tmp_path):
    rows = [
        {"input_text": "What is 2 + 3?", "output_text": None},
        {"input_text": "What is 4 + 4?", "output_text": "8"},
        {"input_text": "What is 1 + 6?", "output_text": "7"},
    ]
    shots = tmp_path / "shots.jsonl"
    write_jsonl(shots, [{"input_text": "What is 1 + 2?", "rationale": "One and two make three.", "output_text": "3"}])
    options = {
        "few_shot_uri": str(shots), "self_consistency_samples": 3, "drop_contradicting_rationales": True,
        "use_gold_labels": False, "min_answered_fraction": 0.0, "max_concurrency": 1,
    }
    return rows, options, {"body_responder": voting_teacher}


def extractive_answers_not_spans(tmp_path):
    rows = [
        {"input_text": "question: How many parishes are there? context: Louisiana has 64 parishes.", "output_text": None},
        {"input_text": "question: What is the capital? context: Beijing is the capital of China.", "output_text": None},
        {"input_text": "question: What is the capital city? context: Beijing is the capital of China.",
         "output_text": "Beijing"},
        {"input_text": "question: Who won the game? context: Ann met Bo at noon.", "output_text": "Ann"},
    ]
    shots = tmp_path / "shots.jsonl"
    write_jsonl(shots, [{"input_text": "question: Who? context: Ann came.", "rationale": "Ann is named.", "output_text": "Ann"}])
    options = {"few_shot_uri": str(shots), "use_gold_labels": False, "probe_rows": 0}
    return rows, options, {"responder": span_teacher}


def budget_reached(tmp_path):
    rows = [{"input_text": f"What is {n} + {n}?", "output_text": None} for n in range(1, 7)]
    shots = tmp_path / "shots.jsonl"
    write_jsonl(shots, [{"input_text": "What is 1 + 2?", "rationale": "One and two make three.", "output_text": "3"}])
    options = {"few_shot_uri": str(shots), "max_total_tokens": 250, "max_concurrency": 1, "probe_rows": 0}
    return rows, options, {"responder": arithmetic_teacher}


def probe_stops_the_run(tmp_path):
    """Only the first two of the eight probe rows get a usable answer: the run stops, the rest not asked."""
    rows = [{"input_text": f"What is {n} + 1?" + (" NO_ANSWER" if n > 2 else ""), "output_text": None}
            for n in range(1, 13)]
    shots = tmp_path / "shots.jsonl"
    write_jsonl(shots, [{"input_text": "What is 1 + 2?", "rationale": "One and two make three.", "output_text": "3"}])
    return rows, {"few_shot_uri": str(shots), "answer_format": "text"}, {"responder": arithmetic_teacher}


def refused_structured_output_self_made_examples(tmp_path):
    """No labels, no few-shot file, a server without structured output: the teacher makes its own
    demonstrations and, refused a JSON schema, answers in free text."""
    rows = [{"input_text": f"What is {n} + 2?", "output_text": None} for n in range(1, 9)]
    return rows, {"max_concurrency": 1}, {"responder": arithmetic_teacher, "response_formats": ()}


RUNS = {
    "refused_structured_output_self_made_examples": refused_structured_output_self_made_examples,
    "labeled_and_unlabeled": labeled_and_unlabeled,
    "self_consistency_dropping_contradictions": self_consistency_dropping_contradictions,
    "extractive_answers_not_spans": extractive_answers_not_spans,
    "budget_reached": budget_reached,
    "probe_stops_the_run": probe_stops_the_run,
}


def masked(text: str, tmp_path: Path) -> str:
    """The text with what differs between runs of the same answers (timings, the temporary folder, the stub
    server's port) masked."""
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text.replace(str(tmp_path), "<tmp>"))
    text = re.sub(r"latency per answer: [0-9.]+ s", "latency per answer: <s> s", text)
    return re.sub(r"wall time of this run: [0-9.]+ s", "wall time of this run: <s> s", text)


def check_snapshot(name: str, actual: str) -> None:
    path = SNAPSHOTS / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}: run with UPDATE_REPORT_SNAPSHOTS=1 to write it"
    assert actual == path.read_text(encoding="utf-8"), f"{path} differs (UPDATE_REPORT_SNAPSHOTS=1 rewrites it)"


@pytest.mark.parametrize("name", RUNS)
def test_a_runs_report_metrics_and_outputs_match_their_snapshot(start_stub_server, tmp_path, name):
    rows, options, server_options = RUNS[name](tmp_path)
    server = start_stub_server(**server_options)
    write_jsonl(tmp_path / "data.jsonl", rows)
    arguments = (
        tmp_path / "data.jsonl", tmp_path / "out.jsonl", tmp_path / "report.md",
        GenerationConfig(f"{server.base_url}#stub", **options),
    )
    if name == "probe_stops_the_run":
        with pytest.raises(TeacherAnswersUnusableError, match="usable answer for only 2 of the first 8 rows"):
            generate_rationales(*arguments, cache_path=tmp_path / "cache.sqlite")
        written = {}
    else:
        report = GenerationReport.of(generate_rationales(*arguments, cache_path=tmp_path / "cache.sqlite"))
        written = {"metrics": {key: value for key, value in report.metrics().items() if key != "mean_latency_s"}}
    check_snapshot(f"{name}.md", masked((tmp_path / "report.md").read_text(encoding="utf-8"), tmp_path))
    written["outputs"] = [
        {key: value for key, value in row.items() if key != "latency_s"} for row in load_rows(tmp_path / "out.jsonl")
    ]
    check_snapshot(f"{name}.json", json.dumps(written, indent=1) + "\n")
