"""Task types: given by parameter, or inferred from the evaluation inputs and labels."""

import pytest

from kfp_distill._implementation.jsonl import load_rows
from kfp_distill._implementation.tasks import TASK_TYPES, TaskType, infer_task_type, resolve_task_type
from kfp_distill.interfaces.demo import write_demo_data

CLASSIFY = "Classify the following text into one of the following classes: [business, entertainment] Text: "


@pytest.mark.parametrize(
    ("inputs", "labels", "expected"),
    [
        # The contract's extractive QA layout, even with a number answer.
        (
            ["question: How many parishes are there in Louisiana? context: The state is divided into 64 parishes."] * 5,
            ["64"] * 5,
            "extractive_qa",
        ),
        # question: without context:, but every answer is a span of its input.
        (
            [f"question: Who wrote it? The book was written by Ann {i}." for i in range(5)],
            [f"Ann {i}" for i in range(5)],
            "extractive_qa",
        ),
        (["Tom has 3 bags of 4 apples. How many apples?"] * 4, ["( 3 * 4 )", "12", "7.5", "-2"], "math"),
        # The contract's classification instruction, with labels all different.
        (
            [CLASSIFY + "5 stocks to buy now", CLASSIFY + "the film opens"],
            ["business", "entertainment"],
            "classification",
        ),
        # No instruction: 6 short labels with 2 values.
        (
            [f"Premise: p{i} Hypothesis: h{i}" for i in range(6)],
            ["entailment", "neutral", "entailment", "neutral", "Entailment", "neutral"],
            "classification",
        ),
        (["Summarize: " + "word " * 50] * 3, ["a short summary"] * 3, "summarization"),
        # No instruction: labels of sentences much shorter than their inputs.
        (
            ["A long article about the weather in town. " * 10] * 4,
            [f"The weather in town was mild and dry all week long, {i}." for i in range(4)],
            "summarization",
        ),
        (["Translate to French: cat", "Translate to French: dog"], ["chat", "chien"], "free_text"),
        (["Tell me a story about a dog"] * 3, [None, "", None], "free_text"),
    ],
)
def test_infer_task_type(inputs, labels, expected):
    task = infer_task_type(inputs, labels)
    assert task.name == expected
    assert task.reason


def test_inference_without_labels_reads_the_input_layout():
    assert infer_task_type(["question: a? context: b."] * 3).name == "extractive_qa"
    assert infer_task_type([CLASSIFY + "x"] * 3).name == "classification"
    assert infer_task_type([]).name == "free_text"


def test_the_demo_evaluation_set_is_math(tmp_path):
    files = write_demo_data(tmp_path, train_size=4, evaluation_size=10)
    rows = load_rows(files["evaluation"])
    task = infer_task_type([row["input_text"] for row in rows], [row["output_text"] for row in rows])
    assert task.name == "math"
    assert "arithmetic" in task.reason


def test_a_given_task_type_wins_and_an_unknown_one_is_refused():
    given = resolve_task_type("summarization", ["Classify: x"] * 3, ["a"] * 3)
    assert given == TaskType("summarization", "given as the task_type parameter", given=True)
    assert resolve_task_type(" Math ", [], []).name == "math"
    assert resolve_task_type("auto", ["Classify: x"] * 3).name == "classification"
    assert resolve_task_type("", ["Classify: x"] * 3).name == "classification"
    with pytest.raises(ValueError, match="task_type must be 'auto' or one of"):
        resolve_task_type("translation", ["x"])
    assert len(TASK_TYPES) == 5


def test_a_task_type_settled_by_an_earlier_step_keeps_whether_it_was_given_or_inferred():
    inferred = infer_task_type(["Classify: a", "Classify: b", "Classify: c"])
    given = resolve_task_type("summarization", [])
    for task in (inferred, given):
        assert TaskType.from_how_chosen(task.name, task.how_chosen) == task
    assert not inferred.given and inferred.how_chosen.startswith("inferred: ")
