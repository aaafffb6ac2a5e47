"""Small distilled datasets to tune on (the tiny student and tokenizer fixtures are in the root conftest.py)."""

import pytest

from kfp_distill._implementation.jsonl import write_jsonl
from kfp_distill.components.tune_student.data import TrainingRow


@pytest.fixture(scope="session")
def uneven_rows() -> list[TrainingRow]:
    """Inputs, labels and rationales of different lengths, so that every collator pads."""
    return [
        TrainingRow("Sam has 3 apples.", "3", "He has three."),
        TrainingRow(
            "A farmer has 12 pears and 7 plums. How many fruits does the farmer have?",
            "( 12 + 7 )",
            "Twelve pears and seven plums make 12 + 7 fruits in all.",
        ),
        TrainingRow("What is 9 - 4?", "( 9 - 4 )", "Take four from nine."),
        TrainingRow("Ann reads 5 pages a day for 6 days. How many pages?", "( 5 * 6 )", "Five pages six times: 5 * 6."),
    ]


def word_problem(index: int) -> dict:
    """A short arithmetic word problem with its label and a rationale, as generate-rationales writes them."""
    apples, more = 3 + index % 7, 2 + index % 5
    return {
        "input_text": f"Sam has {apples} apples and buys {more} more. How many apples does Sam have?",
        "output_text": f"( {apples} + {more} )",
        "rationale": f"Sam starts with {apples} apples. Buying {more} more adds them, so {apples} + {more}.",
    }


@pytest.fixture(scope="session")
def distilled_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "distilled.jsonl"
    write_jsonl(path, [word_problem(i) for i in range(8)])
    return str(path)


@pytest.fixture(scope="session")
def evaluation_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "eval.jsonl"
    write_jsonl(path, [{"input_text": row["input_text"], "output_text": row["output_text"]} for row in map(word_problem, range(20, 24))])
    return str(path)


@pytest.fixture(scope="session")
def empty_evaluation_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "no-eval.jsonl"
    path.write_text("")
    return str(path)
