"""Answer parsing and scoring, shared by the teacher, the evaluation and the benchmarks."""

import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfp_distill._implementation import answers
from kfp_distill._implementation.answers import (
    answer_value,
    answers_match,
    arithmetic_value,
    cut_runaway,
    extract_answer,
    label_answer,
    normalize_text,
    split_completion,
    token_f1,
)
from kfp_distill._implementation.scripts import load_module

# Loaded by path (tests are imported with --import-mode=importlib); generate-rationales' tests share it.
assert_linear_time = load_module(
    "kfp_distill_tests_linear_time", Path(__file__).with_name("linear_time.py")
).assert_linear_time


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("( 12 * 30 )", "( 12.0 * 30.0 )", True),
        ("12*30", "( 12.0 * 30.0 )", True),
        ("360 pencils", "( 12.0 * 30.0 )", True),  # the last number of a sentence
        ("( 12 + 30 )", "( 12.0 * 30.0 )", False),  # same digits, another operator: normalised text would match
        ("( 30 / 12 )", "( 12.0 / 30.0 )", False),
        ("no idea", "( 12.0 * 30.0 )", False),
        ("The Wooded Area.", "wooded area", True),
        ("wooded areas", "wooded area", False),
        ("neutral", "contradiction", False),
    ],
)
def test_answers_match(prediction, reference, expected):
    assert answers_match(prediction, reference) is expected


@pytest.mark.parametrize("text", ["__import__('os').system('true')", "2 ** 1000", "1 / 0", "x + 1", "9" * 300])
def test_arithmetic_value_refuses_what_is_not_small_arithmetic(text):
    assert arithmetic_value(text) is None


def test_split_completion_cuts_the_runaway_question_and_the_connective():
    rationale, answer = split_completion("84 / 2 = 42. So the answer is (84 / 2).\n\nQ: Next?\nA: The answer is 3.")
    assert (rationale, answer) == ("84 / 2 = 42.", "(84 / 2)")
    assert split_completion("I cannot tell.") == ("I cannot tell.", None)
    assert extract_answer("( 7 * 30 )\nmore text") == "( 7 * 30 )"


def test_label_answer_keeps_a_summary_whole_and_other_answers_to_their_line():
    output = "neutral\nThe premise does not say.\n\nPremise: next"
    assert label_answer(output, "classification") == "neutral"
    assert label_answer(output, "summarization") == "neutral\nThe premise does not say."
    assert label_answer("So the answer is (3 + 4).\nQ: more", "math") == "(3 + 4)"


@pytest.mark.parametrize("text", ["(0-4)**0.5", "(-8)**(1/3)", "(-1) ** 0.5 + 2"])
def test_arithmetic_value_is_not_a_number_outside_the_real_numbers(text):
    # A negative base to a fractional power is complex in Python: "not a number", never a TypeError.
    assert arithmetic_value(text) is None
    assert answers_match(text, "2") is False
    assert answers_match("2", text) is False


def run_of(unit: str, before: str = "", after: str = ""):
    """Texts of about n characters: `unit` repeated between `before` and `after`."""
    return lambda n: before + (unit * (n // len(unit) + 1))[:n] + after


def test_a_run_of_blank_lines_is_read_in_linear_time():
    # A student that printed blank lines until max_tokens: 1,200 of them took 14 s, holding the GIL.
    for task_type in ("math", "summarization"):
        assert_linear_time(lambda text: label_answer(text, task_type), run_of("\n", "x", "y"))
    assert_linear_time(cut_runaway, run_of(" \n\t", "x", "y"))
    # max_tokens 2048 allows about 8,000 newlines.
    assert label_answer("x" + "\n" * 8000 + "y", "") == "x"
    assert cut_runaway("x" + "\n" * 8000 + "Q: next") == "x"


def test_a_run_of_dots_or_operators_is_read_in_linear_time():
    # 20,000 dots took 2.6 s: every start inside the run scanned to its end.
    for unit in (".", "+", "( ", "*/-"):
        assert_linear_time(answer_value, run_of(unit, "x"))
    assert answer_value("." * 20_000) is None
    assert answer_value("so " + "." * 20_000 + " 42 apples") == 42.0


# Property-based tests: the parsers above read what teachers and students write, so any text at all.
# Pieces that steer the parsers into their branches (markers, blank lines, boxes, arithmetic), and any
# character besides; sizes stay small here, and the linear-time checks below take the long runs.
PIECES = [
    "\n", "\n\n", " ", "\t", "\r", "\u2028", ".", ",", "+", "-", "*", "/", "**", "(", ")", "×", "÷", "1", "42",
    "3.5", "1,000", "0", "Q:", "q :", "Question:", "Premise:", "Input :", "Problem:", "The answer is", "answer:",
    "Final answer:", "####", "So", "therefore,", "\\boxed{", "$\\boxed{", "}", "}$", "$", "the", "a", "an", "x",
    "é", "*_`", '"', "'",
]
texts = st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=40).map("".join)
TASK_TYPES = ("classification", "extractive_qa", "summarization", "math", "free_text", "")
PROPERTIES = settings(max_examples=300, deadline=None)

# The patterns of earlier versions (super-linear on long runs, the same answers on short texts).
_OLD_NEXT_EXAMPLE = re.compile(r"\n\s*\n\s*(?:Q|Question|Premise|Input|Problem)\s*:", re.I)
_OLD_ARITHMETIC_SPAN = re.compile(r"[-+*/().\d\s]*\d[-+*/().\d\s]*")
_OLD_BOXED = re.compile(r"\$\\boxed\{(.*)\}\$|\\boxed\{(.*)\}")


@PROPERTIES
@given(texts)
def test_the_linear_patterns_read_short_texts_as_the_old_ones_did(text):
    old = _OLD_NEXT_EXAMPLE.search(text)
    assert cut_runaway(text) == (text[: old.start()] if old else text)
    assert answers._ARITHMETIC_SPAN.findall(text) == _OLD_ARITHMETIC_SPAN.findall(text)
    line = text.replace("\n", " ")
    assert answers._unbox(line) == _OLD_BOXED.sub(lambda m: m.group(1) or m.group(2), line)


@PROPERTIES
@given(texts, texts)
def test_the_parsers_take_any_text(prediction, reference):
    rationale, answer = split_completion(prediction)
    assert isinstance(rationale, str) and (answer is None or (isinstance(answer, str) and answer))
    assert isinstance(extract_answer(prediction), str)
    assert prediction.startswith(cut_runaway(prediction))
    for task_type in TASK_TYPES:
        assert isinstance(label_answer(prediction, task_type), str)
    for value in (arithmetic_value(prediction), answer_value(prediction)):
        assert value is None or (type(value) is float and math.isfinite(value))
    assert answers_match(prediction, prediction) is True
    assert isinstance(answers_match(prediction, reference), bool)
    f1 = token_f1(prediction, reference)
    assert 0.0 <= f1 <= 1.0 and f1 == token_f1(reference, prediction)
    assert token_f1(prediction, prediction) == 1.0
    normalized = normalize_text(prediction)
    assert normalize_text(normalized) == normalized


def _every_parser(text: str) -> None:
    split_completion(text)
    extract_answer(text)
    for task_type in ("math", "summarization"):
        label_answer(text, task_type)
    answers_match(text, "( 12 * 30 )")
    answers_match("( 12 * 30 )", text)
    answers_match(text, "wooded area")
    token_f1(text, text)


# Long runs of what the patterns repeat over, as a student printing until max_tokens writes them.
RUNS = {
    "newlines": run_of("\n", "x", "y"),
    "blank lines with spaces": run_of("\n \n\t", "x"),
    "questions without a blank line": run_of("Q:\nQ :"),
    "dots": run_of("."),
    "operators": run_of("+-*/( )"),
    "spaces after a marker": run_of(" ", "the answer", "x"),
    "connectives": run_of("therefore, ", after="x"),
    "boxes": run_of("\\boxed{", "Answer: "),
    "dollar boxes": run_of("$\\boxed{1}", "Answer: ", "}"),
    "thousands": run_of("1,"),
    "articles": run_of("a the an "),
}


@pytest.mark.parametrize("run", RUNS.values(), ids=RUNS.keys())
def test_every_parser_reads_a_long_run_in_linear_time(run):
    assert_linear_time(_every_parser, run)
