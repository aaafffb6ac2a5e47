"""The paper's datasets, with PaLM-540B's recorded rationales, as kfp-distill JSON Lines.

Reads `../shared/data/dsbs/<name>/` in place (see its README; the files are never copied into this
repository) and writes, per split, rows with:

- `input_text`: the question as the paper's prompts show it (CQA with its lettered answer choices, the NLI
  sets as "Premise: ...\\nHypothesis: ...");
- `output_text`: the gold label (SVAMP: an arithmetic expression, scored by value; CQA: the answer text;
  ANLI-R1 and e-SNLI: entailment, neutral or contradiction);
- `rationale` and `teacher_label`: PaLM's completion cut before the invented next question, split into
  its reasoning and its stated answer (null when the completion states none).

Usage (from the repository root):
    .venv/bin/python benchmarks/quality/convert.py --out-dir /tmp/dsbs-jsonl [--datasets svamp cqa]
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from kfp_distill._implementation.answers import split_completion
from kfp_distill._implementation.jsonl import DatasetError, read_jsonl, write_jsonl

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dsbs"
NLI_LABELS = ("entailment", "neutral", "contradiction")
_CHOICE_LETTERS = "abcde"
_LETTERED_ANSWER = re.compile(r"^\(?([a-e])\)\s*(.*)$", re.I)
_CHOICE_MENTION = re.compile(r"\([a-e]\)", re.I)


@dataclass(frozen=True)
class DatasetSpec:
    """One of the paper's datasets: its training and test splits here, and how a row reads."""

    train_split: str
    test_split: str
    input_text: Callable[[dict], str]
    gold_label: Callable[[dict], str]
    teacher_label: Callable[[str, dict], str]


def _cqa_input(row: dict) -> str:
    choices = "\n".join(f"({letter}) {choice}" for letter, choice in zip(_CHOICE_LETTERS, row["choices"]))
    return f"{row['question']}\nAnswer Choices:\n{choices}"


def _cqa_teacher_label(answer: str, row: dict) -> str | None:
    """"(d) math problem" -> "math problem"; a letter alone is looked up among the row's choices; None for
    a hedge naming several choices ("either (a) aquarium or (e) pond"): PaLM gave no one answer."""
    if len(_CHOICE_MENTION.findall(answer)) > 1:
        return None
    match = _LETTERED_ANSWER.match(answer.strip())
    if not match:
        return answer
    letter, text = match.group(1).lower(), match.group(2).strip()
    return text or row["choices"][_CHOICE_LETTERS.index(letter)]


class _BadValue(ValueError):
    """A row's field holds a value its dataset does not define."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _nli_label(row: dict) -> str:
    if row["label"] not in range(len(NLI_LABELS)):
        raise _BadValue("label", f"{row['label']!r} is not one of the labels 0-{len(NLI_LABELS) - 1}")
    return NLI_LABELS[row["label"]]


def _nli_input(row: dict) -> str:
    return f"Premise: {row['premise']}\nHypothesis: {row['hypothesis']}"


def _first_word(answer: str, row: dict) -> str:
    words = answer.strip().split()
    return words[0].strip(".,()").lower() if words else answer


def _svamp_expression(answer: str, row: dict) -> str:
    return answer.strip()


DATASETS: dict[str, DatasetSpec] = {
    "svamp": DatasetSpec("train", "test", lambda row: row["input"], lambda row: row["label"], _svamp_expression),
    "cqa": DatasetSpec("train", "test", _cqa_input, lambda row: row["answer"], _cqa_teacher_label),
    "anli1": DatasetSpec("valid", "test", _nli_input, _nli_label, _first_word),
    "esnli": DatasetSpec("valid", "test", _nli_input, _nli_label, _first_word),
}


def _completions(data_dir: Path, name: str, split: str) -> list[str]:
    """The recorded completions of one split, shards joined in the order of their number."""
    shards = sorted((data_dir / name / "llm").glob(f"{split}_CoT_*.json"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    if not shards:
        raise FileNotFoundError(f"no recorded teacher completions {data_dir / name / 'llm'}/{split}_CoT_*.json")
    completions: list[str] = []
    for shard in shards:
        try:
            recorded = json.loads(shard.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{shard}: not valid JSON: {error.msg} at line {error.lineno}") from None
        if not isinstance(recorded, list) or not all(isinstance(text, str) for text in recorded):
            raise ValueError(f"{shard}: expected a JSON list of completion strings")
        completions.extend(recorded)
    return completions


def converted_rows(name: str, split: str, data_dir: Path = DEFAULT_DATA_DIR) -> Iterator[dict]:
    """Rows of one split in kfp-distill's format, in the file's order.

    Raises:
        KeyError: An unknown dataset name.
        DatasetError: An example file that is missing or unreadable, or a row without a field it needs
            (naming the file, line and field).
        FileNotFoundError: The completions are not there.
        ValueError: The completions are not a list of strings, or do not line up with the examples.
    """
    spec = DATASETS[name]
    examples_path = data_dir / name / f"{name}_{split}.json"
    examples = list(read_jsonl(str(examples_path)))
    completions = _completions(data_dir, name, split)
    if len(completions) != len(examples):
        raise ValueError(f"{examples_path}: {len(examples)} examples but {len(completions)} recorded completions")
    for (line, row), completion in zip(examples, completions):
        rationale, answer = split_completion(completion)
        try:
            yield {
                "input_text": spec.input_text(row),
                "output_text": spec.gold_label(row),
                "rationale": rationale,
                "teacher_label": None if answer is None else spec.teacher_label(answer, row),
            }
        except KeyError as error:
            raise DatasetError(str(examples_path), "missing", line, error.args[0]) from None
        except _BadValue as error:
            raise DatasetError(str(examples_path), str(error), line, error.field) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, required=True, help="where <name>_<split>.jsonl files go")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the dsbs data folder")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        spec = DATASETS[name]
        for split in (spec.train_split, spec.test_split):
            rows = list(converted_rows(name, split, args.data_dir))
            write_jsonl(args.out_dir / f"{name}_{split}.jsonl", rows)
            stated = sum(row["teacher_label"] is not None for row in rows)
            print(f"{name} {split}: {len(rows)} rows, {stated} with a stated teacher answer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
