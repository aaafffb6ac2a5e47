"""Draws the benchmarks' small public data samples under benchmarks/data, deterministically, from their sources.

Each source is a public GitHub repository read at a pinned commit (`git show COMMIT:PATH`), so the same
checkout always gives the same bytes:

- `qed` (extractive QA): google-research-datasets/QED, `qed-dev.jsonlines` (Natural Questions questions with
  the Wikipedia paragraph that answers them; CC BY-SA 3.0). Rows with one short answer (QED's where its
  explanation is one sentence, Natural Questions' first annotator's where it takes several; none where QED
  found no answer), at most 12 words and a span of the paragraph, the paragraph 120-250 words (SQuAD's length),
  one row per paragraph; 50 evaluation and 190 training rows, `{"input_text": "question: ... context: ...",
  "output_text": <the answer span>}`. The text is Natural Questions' tokenized text joined back
  (`Röntgen , of Germany` -> `Röntgen, of Germany`), question and answer alike.
- `scitldr` (summarization): allenai/scitldr, SciTLDR-A (Apache-2.0): the abstract (its sentences joined)
  under a one-line instruction, and the authors' TLDR (each paper's first target); training rows from
  `train.jsonl`, evaluation rows from `test.jsonl`; abstracts of 100-250 words, TLDRs of 10-40.
- `banking77` (logged chat traffic): PolyAI-LDN/task-specific-datasets, `banking_data/{train,test}.csv`
  (CC BY 4.0): customers' messages to an online bank and the intent each expresses, 8 intents, 20 training
  rows each from train.csv and 8 evaluation rows each from test.csv, as neutral conversation records
  `{"id": "<file>:<line>", "system": <a support assistant's instructions>, "messages": [user message,
  assistant reply: the intent]}` that `logged_traffic.py` writes in each vendor's log format.

The draws are seeded; within a sample no text repeats, and evaluation rows share no input with training rows.

Sources: github:google-research-datasets/QED, github:allenai/scitldr and github:PolyAI-LDN/task-specific-datasets,
read from clones (or bare mirrors) of them, by default under .cache/sources:
    git clone https://github.com/google-research-datasets/QED .cache/sources/QED
    git clone https://github.com/allenai/scitldr .cache/sources/scitldr
    git clone https://github.com/PolyAI-LDN/task-specific-datasets .cache/sources/task-specific-datasets

Usage (from the repository root; a few seconds):
    .venv/bin/python benchmarks/draw_samples.py [--qed DIR] [--scitldr DIR] [--banking77 DIR] [--out benchmarks/data]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kfp_distill._implementation.jsonl import write_jsonl
from kfp_distill._implementation.spans import context_passage, is_span

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPOSITORY / "benchmarks" / "data"
SOURCES_DIR = REPOSITORY / ".cache" / "sources"
SEED = 0
SPLITS = ("train", "evaluation")

CONTEXT_WORDS = (120, 250)  # SQuAD's paragraph lengths
ANSWER_WORDS = 12
QED_ROWS = {"train": 190, "evaluation": 50}

ABSTRACT_WORDS = (100, 250)
TLDR_WORDS = (10, 40)
SCITLDR_ROWS = {"train": 200, "evaluation": 50}
SCITLDR_INSTRUCTION = "Summarize the paper in one sentence (a TL;DR) from its abstract."

BANKING_INTENTS = (
    "card_arrival", "lost_or_stolen_card", "change_pin", "exchange_rate", "top_up_failed", "cash_withdrawal_charge",
    "transfer_not_received_by_recipient", "terminate_account",
)
BANKING_ROWS_PER_INTENT = {"train": 20, "evaluation": 8}
BANKING_SYSTEM = (
    "You are the support assistant of an online bank. Read the customer's message and reply with the one intent it "
    f"expresses, written exactly as one of: {', '.join(BANKING_INTENTS)}."
)


@dataclass(frozen=True)
class Source:
    """A sample's source: a public GitHub repository at a pinned commit, and the files read from it."""

    repository: str
    commit: str
    files: dict[str, str]  # split -> path in the repository
    license: str
    license_file: str | None  # the repository's license text, copied beside the sample; None: it has none

    def show(self, checkout: Path, path: str) -> str:
        """A file as the pinned commit holds it, from a clone (or bare mirror) of the repository."""
        try:
            return subprocess.run(
                ["git", "-C", str(checkout), "show", f"{self.commit}:{path}"], check=True, capture_output=True,
                encoding="utf-8",  # whatever the locale: the sources are UTF-8
            ).stdout
        except (subprocess.CalledProcessError, FileNotFoundError) as error:
            detail = getattr(error, "stderr", "") or str(error)
            raise SystemExit(
                f"{checkout}: cannot read {path} at {self.commit} of {self.repository} "
                f"(git clone https://github.com/{self.repository}): {detail.strip()}"
            ) from error


SOURCES = {
    "qed": Source(
        "google-research-datasets/QED", "2492920337122918bbfc7d12c1268b9af796c6cf",
        {"train": "qed-dev.jsonlines", "evaluation": "qed-dev.jsonlines"}, "CC BY-SA 3.0", None,
    ),
    "scitldr": Source(
        "allenai/scitldr", "5ccad9c00a60ad75c9e04abf7f27d0f53f983b20",
        {"train": "SciTLDR-Data/SciTLDR-A/train.jsonl", "evaluation": "SciTLDR-Data/SciTLDR-A/test.jsonl"},
        "Apache-2.0", "LICENSE",
    ),
    "banking77": Source(
        "PolyAI-LDN/task-specific-datasets", "57ec275d8078af65b7731c2a98be812d844a6d6b",
        {"train": "banking_data/train.csv", "evaluation": "banking_data/test.csv"}, "CC BY 4.0", "LICENSE",
    ),
}

# Natural Questions' tokens joined back: quotes, brackets, punctuation and clitics to their words, hyphens
# closed up, a double hyphen as a dash; and the invisible marks some paragraphs carry left out.
_DETOKENIZE = [
    (re.compile(r"``\s*"), '"'),
    (re.compile(r"\s*''"), '"'),
    (re.compile(r"\(\s+"), "("),
    (re.compile(r"\s+\)"), ")"),
    (re.compile(r"\s+([,.;:!?%])"), r"\1"),
    (re.compile(r"\s+('s|'m|'ll|'d|'re|'ve|n't)\b"), r"\1"),
    (re.compile(r"\s+--\s+"), " – "),
    (re.compile(r"(\w)\s+-\s+(\w)"), r"\1-\2"),
    (re.compile("[\ufeff\u200e\u200f\u202a-\u202e]"), ""),
    (re.compile(r"\s+"), " "),
]


def detokenize(text: str) -> str:
    """Natural Questions' space-separated tokens as running text (`R\u00f6ntgen , of Germany` -> `R\u00f6ntgen, of
    Germany`)."""
    for pattern, replacement in _DETOKENIZE:
        text = pattern.sub(replacement, text)
    return text.strip()


def words(text: str) -> int:
    return len(text.split())


def within(count: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= count <= bounds[1]


def _qed_answer(example: dict) -> str | None:
    """The example's one short answer as written in the paragraph: QED's where its explanation is one sentence,
    Natural Questions' first annotator's where it takes several; None where QED found no answer in the
    paragraph or the answer is in several pieces."""
    annotation = example["annotation"]
    if annotation.get("explanation_type") == "single_sentence":
        spans = [answer["paragraph_reference"] for answer in annotation["answer"]]
    elif annotation.get("explanation_type") == "multi_sentence" and example["original_nq_answers"]:
        spans = example["original_nq_answers"][0]
    else:
        return None
    return spans[0]["string"] if len(spans) == 1 else None


def _qed_row(example: dict) -> dict | None:
    answer = _qed_answer(example)
    if answer is None:
        return None
    context = detokenize(example["paragraph_text"])
    answer = detokenize(answer)
    input_text = f"question: {detokenize(example['question_text'])} context: {context}"
    if not within(words(context), CONTEXT_WORDS) or words(answer) > ANSWER_WORDS:
        return None
    if not is_span(answer, context_passage(input_text)):  # as the pipeline finds the context
        return None
    return {"input_text": input_text, "output_text": answer}


def draw_qed(read: Callable[[str], str]) -> dict[str, list[dict]]:
    """50 evaluation and 190 training rows of QED's dev file, one per paragraph, evaluation rows first."""
    rows, paragraphs = [], set()
    for line in read("evaluation").splitlines():
        example = json.loads(line)
        row = _qed_row(example)
        if row is not None and example["paragraph_text"] not in paragraphs:
            paragraphs.add(example["paragraph_text"])
            rows.append(row)
    random.Random(SEED).shuffle(rows)
    evaluation = rows[: QED_ROWS["evaluation"]]
    train = rows[QED_ROWS["evaluation"]: QED_ROWS["evaluation"] + QED_ROWS["train"]]
    return {"train": train, "evaluation": evaluation}


def _scitldr_rows(text: str, exclude: set[str]) -> list[dict]:
    """Each paper's abstract under the instruction and its first TLDR, where both are within their bounds and the
    input is not in `exclude` or already taken."""
    rows, seen = [], set(exclude)
    for line in text.splitlines():
        paper = json.loads(line)
        abstract = " ".join(sentence.strip() for sentence in paper["source"])
        tldr = paper["target"][0].strip() if paper["target"] else ""
        input_text = f"{SCITLDR_INSTRUCTION}\nAbstract: {abstract}"
        if within(words(abstract), ABSTRACT_WORDS) and within(words(tldr), TLDR_WORDS) and input_text not in seen:
            seen.add(input_text)
            rows.append({"input_text": input_text, "output_text": tldr})
    return rows


def draw_scitldr(read: Callable[[str], str]) -> dict[str, list[dict]]:
    """200 training rows of SciTLDR-A's train split and 50 evaluation rows of its test split."""
    train = random.Random(SEED).sample(_scitldr_rows(read("train"), set()), SCITLDR_ROWS["train"])
    taken = {row["input_text"] for row in train}
    evaluation = random.Random(SEED).sample(_scitldr_rows(read("evaluation"), taken), SCITLDR_ROWS["evaluation"])
    return {"train": train, "evaluation": evaluation}


def _banking_records(text: str, name: str, per_intent: int, exclude: set[str]) -> list[dict]:
    """`per_intent` messages of each of BANKING_INTENTS, drawn with the seed, in the file's order."""
    by_intent: dict[str, list[dict]] = {intent: [] for intent in BANKING_INTENTS}
    seen = set(exclude)
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        message, intent = " ".join(row["text"].split()), row["category"]
        if intent in by_intent and message.casefold() not in seen:
            seen.add(message.casefold())
            by_intent[intent].append({
                "id": f"{name}:{reader.line_num}",
                "system": BANKING_SYSTEM,
                "messages": [{"role": "user", "content": message}, {"role": "assistant", "content": intent}],
            })
    drawn = [record for intent in BANKING_INTENTS for record in random.Random(SEED).sample(by_intent[intent], per_intent)]
    return sorted(drawn, key=lambda record: int(record["id"].rsplit(":", 1)[1]))


def draw_banking77(read: Callable[[str], str]) -> dict[str, list[dict]]:
    """20 training conversations per intent from train.csv, 8 evaluation ones per intent from test.csv."""
    files = SOURCES["banking77"].files
    train = _banking_records(read("train"), Path(files["train"]).name, BANKING_ROWS_PER_INTENT["train"], set())
    taken = {record["messages"][0]["content"].casefold() for record in train}
    evaluation = _banking_records(
        read("evaluation"), Path(files["evaluation"]).name, BANKING_ROWS_PER_INTENT["evaluation"], taken
    )
    return {"train": train, "evaluation": evaluation}


DRAWS = {"qed": draw_qed, "scitldr": draw_scitldr, "banking77": draw_banking77}


def draw(name: str, checkout: Path, out: Path) -> dict[str, int]:
    """Draws one sample from its source checkout into `out/<name>/{train,evaluation}.jsonl`, with the source's
    license text beside it where it has one; returns the rows written per split."""
    source = SOURCES[name]
    sample = DRAWS[name](lambda split: source.show(checkout, source.files[split]))
    folder = out / name
    for split in SPLITS:
        write_jsonl(folder / f"{split}.jsonl", sample[split])
    if source.license_file:
        (folder / "LICENSE").write_text(source.show(checkout, source.license_file), encoding="utf-8")
    return {split: len(sample[split]) for split in SPLITS}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, source in SOURCES.items():
        parser.add_argument(
            f"--{name}", type=Path, default=SOURCES_DIR / source.repository.split("/")[1],
            help=f"a clone of https://github.com/{source.repository} (default: %(default)s)",
        )
    parser.add_argument("--samples", nargs="+", choices=list(SOURCES), default=list(SOURCES))
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    for name in arguments.samples:
        counts = draw(name, getattr(arguments, name), arguments.out)
        print(f"{name}: {counts['train']} training and {counts['evaluation']} evaluation rows in {arguments.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
