"""Quality of teacher output: self-consistency votes, rows contradicting their gold label, task-aware prompts."""

import json
import re
import tempfile
from pathlib import Path

import pytest

from kfp_distill._implementation.answers import token_f1
from kfp_distill._implementation.jsonl import DatasetError, load_rows, write_jsonl
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.generate_rationales.generation import generate_rationales
from kfp_distill.components.generate_rationales.prompts import SYSTEM_INSTRUCTION, load_demonstrations
from kfp_distill.components.generate_rationales.report import GenerationReport
from kfp_distill.components.generate_rationales.task_profile import majority_vote, task_profile
from kfp_distill.interfaces.demo import write_demo_data

# What the seeded stub teacher answers per question: sample i (seed i) says ANSWERS[question][i].
ANSWERS = {
    "What is 2 + 3?": ["6", "5", "5", "7", "5"],  # 3 of 5 vote 5; seed 1 gives it first
    "What is 4 + 4?": ["8", "8", "8", "8", "8"],  # unanimous
    "What is 1 + 6?": ["( 1 + 6 )", "7", "( 6 + 1 )", "( 1 * 6 )", "7.0"],  # 4 of 5 equal 7 by value
}


def seeded_answer(body):
    question = body["messages"][-1]["content"].split("\n")[0]
    seed = body["seed"]
    return f"Sample {seed} reasons about {question}. The answer is {ANSWERS[question][seed]}."


def run(server, tmp_path, rows, **options):
    """Generation against the stub; a few-shot file unless given (so every request asks about a row)."""
    write_jsonl(tmp_path / "data.jsonl", rows)
    if "few_shot_uri" not in options:
        write_jsonl(tmp_path / "shots.jsonl", [{"input_text": "Q", "rationale": "Because so.", "output_text": "A"}])
        options["few_shot_uri"] = str(tmp_path / "shots.jsonl")
    report = GenerationReport.of(generate_rationales(
        str(tmp_path / "data.jsonl"), tmp_path / "out.jsonl", tmp_path / "report.md",
        GenerationConfig(f"{server.base_url}#stub", **options), cache_path=tmp_path / "cache.sqlite",
    ))
    return report, load_rows(tmp_path / "out.jsonl")


def test_self_consistency_keeps_the_majority_answer_and_a_rationale_that_reaches_it(stub, start_stub_server, tmp_path):
    server = start_stub_server(body_responder=seeded_answer)
    rows = [{"input_text": question, "output_text": None} for question in ANSWERS]
    report, outputs = run(server, tmp_path, rows, self_consistency_samples=5)

    assert len(server.requests) == 15
    for question in ANSWERS:
        asked = [body for body in server.requests if body["messages"][-1]["content"] == question]
        assert sorted(body["seed"] for body in asked) == [0, 1, 2, 3, 4]
        assert {body["temperature"] for body in asked} == {0.7}
    by_question = {output["input_text"]: output for output in outputs}
    first = by_question["What is 2 + 3?"]
    assert (first["teacher_label"], first["output_text"]) == ("5", "5")
    assert first["rationale"] == "Sample 1 reasons about What is 2 + 3?."
    assert (first["votes_for_label"], first["votes_cast"]) == (3, 5)
    assert by_question["What is 4 + 4?"]["votes_for_label"] == 5
    # Expressions vote by value: ( 1 * 6 ) is not ( 1 + 6 ), though both normalise to "1 6".
    third = by_question["What is 1 + 6?"]
    assert (third["teacher_label"], third["votes_for_label"]) == ("( 1 + 6 )", 4)
    assert third["rationale"].startswith("Sample 0 ")

    # Tokens and cost count every sample.
    stub_tokens = [body for body in server.requests if body["messages"][-1]["content"] == "What is 2 + 3?"]
    assert first["completion_tokens"] == sum(
        len(stub.as_json_answer(seeded_answer(body)).split()) for body in stub_tokens
    )
    assert report.completion_tokens == sum(output["completion_tokens"] for output in outputs)
    assert report.teacher_answers == 15

    assert (report.unanimous, report.votes, report.vote_ties) == (1, ((3, 5), (5, 5), (4, 5)), 0)
    metrics = report.metrics()
    assert metrics["self_consistency_unanimous"] == 1
    assert metrics["self_consistency_mean_vote_share"] == pytest.approx((3 / 5 + 1 + 4 / 5) / 3)
    markdown = (tmp_path / "report.md").read_text()
    assert "5 samples per row at temperature 0.7" in markdown and "unanimous: 1 of 3 voted rows" in markdown
    assert "5/5: 1, 4/5: 1, 3/5: 1" in markdown


def test_each_sample_is_cached_so_more_samples_ask_only_the_new_seeds(start_stub_server, tmp_path):
    server = start_stub_server(body_responder=seeded_answer)
    rows = [{"input_text": question, "output_text": None} for question in ANSWERS]
    run(server, tmp_path, rows, self_consistency_samples=3)
    assert len(server.requests) == 9
    report, _ = run(server, tmp_path, rows, self_consistency_samples=3)
    assert (len(server.requests), report.cache_hits) == (9, 9)
    report, _ = run(server, tmp_path, rows, self_consistency_samples=5)
    assert sorted(body["seed"] for body in server.requests[9:]) == [3, 3, 3, 4, 4, 4]
    assert (report.requests, report.cache_hits) == (6, 9)


def test_a_tie_goes_to_the_lowest_seed_and_is_counted(start_stub_server, tmp_path):
    server = start_stub_server(body_responder=seeded_answer)
    report, outputs = run(server, tmp_path, [{"input_text": "What is 2 + 3?", "output_text": None}],
                          self_consistency_samples=2)
    assert outputs[0]["teacher_label"] == "6" and report.vote_ties == 1


def test_self_consistency_settings_are_checked(stub_server, tmp_path):
    rows = [{"input_text": "What is 1 + 1?", "output_text": None}]
    with pytest.raises(ValueError, match="self_consistency_temperature must be above 0"):
        run(stub_server, tmp_path, rows, self_consistency_samples=3, self_consistency_temperature=0.0)
    with pytest.raises(ValueError, match="at least 1"):
        run(stub_server, tmp_path, rows, self_consistency_samples=0)
    assert stub_server.requests == []


def contradicting_teacher(messages):
    """Explains 7 as the answer to 3 + 3, and the other sums right."""
    question = messages[-1]["content"]
    return "Three and three. The answer is 7." if "3 + 3" in question else "Added up. The answer is " + str(
        sum(int(n) for n in re.findall(r"\d+", question.split("\n")[0]))) + "."


@pytest.mark.parametrize("drop", [False, True])
def test_rows_contradicting_the_gold_label_are_flagged_or_dropped(start_stub_server, tmp_path, drop):
    server = start_stub_server(contradicting_teacher)
    rows = [
        {"input_text": "What is 1 + 1?", "output_text": "2"},
        {"input_text": "What is 3 + 3?", "output_text": "6"},
        {"input_text": "What is 5 + 5?", "output_text": None},
    ]
    shots = tmp_path / "shots.jsonl"
    write_jsonl(shots, [{"input_text": "What is 1 + 2?", "rationale": "One and two.", "output_text": "3"}])
    report, outputs = run(server, tmp_path, rows, few_shot_uri=str(shots), drop_contradicting_rationales=drop)

    assert report.explanations_contradicting_gold == 1
    assert (report.agreed_with_gold, report.compared_with_gold) == (1, 2)
    markdown = (tmp_path / "report.md").read_text()
    assert "Agreement with gold: 1/2 (50.0%)" in markdown
    if drop:
        assert [output["input_text"] for output in outputs] == ["What is 1 + 1?", "What is 5 + 5?"]
        assert [(problem.line, problem.reason) for problem in report.dropped_contradicting] == [
            (2, "the teacher's answer '7' contradicts the gold label '6'")
        ]
        assert report.metrics()["dropped_contradicting"] == 1
        assert "dropped for contradicting the gold label: 1" in markdown
        assert "## Dropped: the teacher's answer contradicts the gold label" in markdown
        assert "| 2 | the teacher's answer '7' contradicts the gold label '6' | Three and three. |" in markdown
    else:
        assert [(output["input_text"], output["agrees_with_gold"]) for output in outputs] == [
            ("What is 1 + 1?", True), ("What is 3 + 3?", False), ("What is 5 + 5?", None)
        ]
        assert report.metrics()["dropped_contradicting"] == 0
        assert "(kept, agrees_with_gold=false)" in markdown


def classification_rows():
    texts = ["5 stocks to buy now", "The film tops the box office", "Banks raise rates", "A new album drops"]
    labels = ["business", "entertainment", "business", "entertainment"]
    return [
        {"input_text": f"Classify the following text into one of the following classes: [business, entertainment] "
                       f"Text: {text}", "output_text": label}
        for text, label in zip(texts * 2, labels * 2)
    ]


QA_CONTEXT = "The U.S. state of Louisiana is divided into 64 parishes, in the same manner as counties."
LONG_TEXT = ("The city council met on Monday to discuss the new budget. After a long debate about schools, roads "
             "and parks, the members agreed to raise spending on public transport and to cut the cost of parking "
             "in the centre, a plan the mayor had proposed in the spring.")


def inference_cases():
    demo = write_demo_data_rows()
    return {
        "classification": classification_rows(),
        "extractive_qa": [
            {"input_text": f"question: {question} context: {QA_CONTEXT}", "output_text": answer}
            for question, answer in [("How many parishes are there in Louisiana?", "64"),
                                     ("What is Louisiana divided into?", "64 parishes"),
                                     ("Which state is divided into parishes?", "Louisiana"),
                                     ("In what manner is it divided?", "in the same manner as counties")]
        ],
        "summarization": [
            {"input_text": f"Summarize: {LONG_TEXT}",
             "output_text": "The council agreed to spend more on public transport and to cheapen parking."}
        ] * 4,
        "math": demo["evaluation"],
        "free_text": [
            {"input_text": f"Write a friendly greeting for {name}.",
             "output_text": f"Hello {name}, it is wonderful to see you again, and I hope your week has gone well!"}
            for name in ["Ana", "Tom", "Mia", "Ravi"]
        ],
    }


def write_demo_data_rows():
    """The demo's seeded training rows (unlabeled) and evaluation rows (labeled by expressions)."""
    folder = Path(tempfile.mkdtemp(prefix="demo-"))
    files = write_demo_data(folder, train_size=8, evaluation_size=10)
    return {name: load_rows(files[name]) for name in ("train", "evaluation")}


@pytest.mark.parametrize("expected", ["classification", "extractive_qa", "summarization", "math", "free_text"])
def test_auto_task_type_is_inferred_from_the_rows(expected):
    rows = inference_cases()[expected]
    profile = task_profile("auto", [row["input_text"] for row in rows], [row["output_text"] for row in rows])
    assert profile.task_type == expected, profile.reason
    assert profile.reason


def test_the_task_type_picks_the_instruction_and_the_demo_keeps_its_prompt():
    rows = classification_rows()
    profile = task_profile("auto", [row["input_text"] for row in rows], [row["output_text"] for row in rows])
    assert profile.classes == ("business", "entertainment")
    assert profile.system_instruction("text").endswith("The classes are: business, entertainment.")
    assert profile.system_instruction("json").endswith("The classes are: business, entertainment.")
    assert profile.class_source == "from the labeled rows"
    assert profile.canonical("Business") == "business" and profile.canonical("sports") == "sports"
    for task_type in ("extractive_qa", "summarization"):
        assert task_profile(task_type, ["x"], [None]).system_instruction("text") != SYSTEM_INSTRUCTION
    # The demo's training rows have no labels and its evaluation rows are math: both keep the original prompt.
    demo = write_demo_data_rows()
    for rows in demo.values():
        profile = task_profile("auto", [row["input_text"] for row in rows], [row.get("output_text") for row in rows])
        assert profile.system_instruction("text") == SYSTEM_INSTRUCTION, profile
    given = task_profile("summarization", ["x"], [None])
    assert given.task_type == "summarization" and "task_type" in given.reason
    with pytest.raises(ValueError, match="task_type"):
        task_profile("translation", ["x"], [None])


@pytest.mark.parametrize(
    "task_type, prediction, reference, agrees",
    [
        ("math", "( 3 + 4 )", "( 3 * 4 )", False),
        ("math", "24", "( 4 * 6 )", True),
        ("math", "= 42 apples", "42", True),
        ("classification", "Business.", "business", True),
        ("classification", "business news", "business", False),
        ("extractive_qa", "the 64 parishes", "64 parishes", True),
        ("summarization", "The council spends more on transport", "The council agreed to spend more on transport", True),
        ("summarization", "Parks were debated", "The council agreed to spend more on transport", False),
        ("free_text", "Hello Ana, good to see you", "Hello Ana, it is good to see you again", True),
    ],
)
def test_answers_are_compared_the_way_the_task_needs(task_type, prediction, reference, agrees):
    assert task_profile(task_type, ["x"], [None]).agrees(prediction, reference) is agrees


def test_majority_vote_and_token_f1():
    same = lambda a, b: a == b  # noqa: E731
    vote = majority_vote(["a", "b", "b", "c"], same)
    assert (vote.winner, vote.votes, vote.runner_up, vote.samples) == (1, 2, 1, 4)
    assert majority_vote(["a", "b"], same).winner == 0
    assert token_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)
    with pytest.raises(ValueError):
        majority_vote([], same)


def test_classification_run_names_the_classes_and_writes_labels_as_the_data_does(start_stub_server, tmp_path):
    server = start_stub_server(lambda messages: "Stocks are money matters. The answer is Business.")
    rows = classification_rows()[:4] + [{"input_text": "Classify the following text into one of the following "
                                                       "classes: [business, entertainment] Text: Oil prices fall",
                                         "output_text": None}]
    report, outputs = run(server, tmp_path, rows, use_gold_labels=False)
    assert server.requests[0]["messages"][0]["content"].endswith("The classes are: business, entertainment.")
    assert outputs[-1]["teacher_label"] == outputs[-1]["output_text"] == "business"
    assert report.task_type == "classification"
    assert "- Task type: classification (" in (tmp_path / "report.md").read_text()


def test_few_shot_examples_whose_answer_cannot_be_read_back_are_refused_before_any_request(stub_server, tmp_path):
    shots = tmp_path / "shots.jsonl"
    good = {"input_text": "Summarize: a long text", "rationale": "It is about a text.", "output_text": "A text."}
    bad = {**good, "output_text": "First line of the summary.\nSecond line."}
    shots.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DatasetError) as error:
        load_demonstrations(str(shots))
    assert (error.value.line, error.value.field) == (2, "output_text")
    assert "keep output_text on one line" in str(error.value)
    with pytest.raises(DatasetError):
        run(stub_server, tmp_path, [{"input_text": "Summarize: x", "output_text": None}], few_shot_uri=str(shots))
    assert stub_server.requests == []
