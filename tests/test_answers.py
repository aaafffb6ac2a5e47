"""Answer parsing and scoring, shared by the teacher, the evaluation and the benchmarks."""

import pytest

from kfp_distill._implementation.answers import (
    answers_match,
    arithmetic_value,
    extract_answer,
    label_answer,
    split_completion,
)


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
