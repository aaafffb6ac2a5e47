"""Demo data the project makes itself: arithmetic word problems labeled by their expression.

The task suits a laptop: a 135M-parameter student cannot compute two-digit arithmetic in its head, but it can
learn in minutes to write the expression that answers the question (scored by value, as SVAMP is), while a
1.5B teacher solves the problems and explains them. The generator is seeded, so the files are reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kfp_distill._implementation.jsonl import write_jsonl

INSTRUCTION = "Write the arithmetic expression that answers the question."
NAMES = ["Tom", "Ana", "Luis", "Mia", "Ravi", "Sara", "Ken", "Lena", "Omar", "Zoe", "Ivan", "Nora"]
THINGS = ["apples", "stickers", "marbles", "books", "pencils", "cards", "shells", "coins", "cookies", "stamps"]


@dataclass
class Problem:
    question: str
    expression: str
    rationale: str

    @property
    def input_text(self) -> str:
        return f"{INSTRUCTION}\nQuestion: {self.question}"


def _add(rng: random.Random, name: str, thing: str) -> Problem:
    a, b = rng.randint(11, 89), rng.randint(11, 89)
    return Problem(
        f"{name} has {a} {thing}. {name} gets {b} more {thing}. How many {thing} does {name} have now?",
        f"( {a} + {b} )",
        f"{name} starts with {a} {thing} and gets {b} more, so we add them: {a} + {b}.",
    )


def _subtract(rng: random.Random, name: str, thing: str) -> Problem:
    a = rng.randint(40, 99)
    b = rng.randint(11, a - 5)
    return Problem(
        f"{name} had {a} {thing} and gave away {b} of them. How many {thing} does {name} have left?",
        f"( {a} - {b} )",
        f"{name} had {a} {thing} and gave away {b}, so we subtract: {a} - {b}.",
    )


def _multiply(rng: random.Random, name: str, thing: str) -> Problem:
    a, b = rng.randint(3, 19), rng.randint(11, 49)
    return Problem(
        f"{name} has {a} boxes with {b} {thing} in each box. How many {thing} does {name} have in all?",
        f"( {a} * {b} )",
        f"There are {a} boxes and each holds {b} {thing}, so we multiply: {a} * {b}.",
    )


def _divide(rng: random.Random, name: str, thing: str) -> Problem:
    groups, each = rng.randint(3, 12), rng.randint(4, 25)
    total = groups * each
    return Problem(
        f"{name} shares {total} {thing} equally among {groups} friends. How many {thing} does each friend get?",
        f"( {total} / {groups} )",
        f"{total} {thing} are split equally into {groups} shares, so we divide: {total} / {groups}.",
    )


def _add_then_subtract(rng: random.Random, name: str, thing: str) -> Problem:
    a, b = rng.randint(20, 70), rng.randint(11, 40)
    c = rng.randint(5, a + b - 5)
    return Problem(
        f"{name} has {a} {thing}, buys {b} more, and then loses {c}. How many {thing} does {name} have now?",
        f"( ( {a} + {b} ) - {c} )",
        f"{name} first has {a} + {b} {thing} after buying more, then loses {c}, so: ( {a} + {b} ) - {c}.",
    )


GENERATORS: list[Callable[[random.Random, str, str], Problem]] = [
    _add, _subtract, _multiply, _divide, _add_then_subtract,
]


def make_problems(count: int, seed: int) -> list[Problem]:
    """`count` problems cycling through the templates, with seeded names, things and numbers."""
    rng = random.Random(seed)
    return [GENERATORS[i % len(GENERATORS)](rng, rng.choice(NAMES), rng.choice(THINGS)) for i in range(count)]


def write_demo_data(directory: str | Path, train_size: int = 100, evaluation_size: int = 30, seed: int = 7) -> dict:
    """Writes the demo files and returns their paths.

    - `train.jsonl`: unlabeled (`input_text` only): the teacher labels and explains it.
    - `evaluation.jsonl`: labeled, scored by value.
    - `few_shot.jsonl`: four worked examples (input, rationale, answer) for the teacher's prompt.
    """
    directory = Path(directory)
    problems = make_problems(train_size + evaluation_size + len(GENERATORS), seed)
    train = problems[:train_size]
    evaluation = problems[train_size: train_size + evaluation_size]
    few_shot = problems[train_size + evaluation_size:][:4]
    paths = {name: directory / f"{name}.jsonl" for name in ("train", "evaluation", "few_shot")}
    write_jsonl(paths["train"], ({"input_text": p.input_text} for p in train))
    write_jsonl(paths["evaluation"], ({"input_text": p.input_text, "output_text": p.expression} for p in evaluation))
    write_jsonl(
        paths["few_shot"],
        ({"input_text": p.input_text, "rationale": p.rationale, "output_text": p.expression} for p in few_shot),
    )
    return {name: str(path) for name, path in paths.items()}
