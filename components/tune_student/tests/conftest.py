"""Small distilled datasets to tune on (the tiny student and tokenizer fixtures are in the root conftest.py)."""

import pytest

from kfp_distill._implementation.jsonl import write_jsonl


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
