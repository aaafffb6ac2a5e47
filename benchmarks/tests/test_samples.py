"""The committed public data samples under benchmarks/data: counts, fields, bounds, spans, no train/evaluation
overlap, a source and license beside each, and the same bytes when redrawn from their sources."""

from pathlib import Path

import pytest

from kfp_distill._implementation.jsonl import load_rows
from kfp_distill._implementation.scripts import load_module
from kfp_distill._implementation.spans import context_passage, is_span

samples = load_module("draw_samples", Path(__file__).parents[1] / "draw_samples.py")


def _rows(name: str) -> dict[str, list[dict]]:
    return {split: load_rows(str(samples.SAMPLES_DIR / name / f"{split}.jsonl")) for split in samples.SPLITS}


def _no_repeats(train: list[str], evaluation: list[str]) -> None:
    assert len(set(train)) == len(train) and len(set(evaluation)) == len(evaluation)
    assert not set(train) & set(evaluation)


def test_qed_rows_are_questions_over_squad_length_contexts_answered_by_a_span():
    rows = _rows("qed")
    assert {split: len(rows[split]) for split in samples.SPLITS} == samples.QED_ROWS
    for row in rows["train"] + rows["evaluation"]:
        assert set(row) == {"input_text", "output_text"}
        assert row["input_text"].startswith("question: ") and " context: " in row["input_text"]
        context = context_passage(row["input_text"])
        assert samples.within(samples.words(context), samples.CONTEXT_WORDS), row
        assert is_span(row["output_text"], context), row
        assert samples.words(row["output_text"]) <= samples.ANSWER_WORDS
    _no_repeats(*(
        [context_passage(row["input_text"]) for row in rows[split]] for split in samples.SPLITS
    ))


def test_scitldr_rows_are_abstracts_under_the_instruction_with_a_shorter_tldr():
    rows = _rows("scitldr")
    assert {split: len(rows[split]) for split in samples.SPLITS} == samples.SCITLDR_ROWS
    prefix = f"{samples.SCITLDR_INSTRUCTION}\nAbstract: "
    for row in rows["train"] + rows["evaluation"]:
        assert set(row) == {"input_text", "output_text"}
        assert row["input_text"].startswith(prefix)
        assert samples.within(samples.words(row["input_text"][len(prefix):]), samples.ABSTRACT_WORDS), row
        assert samples.within(samples.words(row["output_text"]), samples.TLDR_WORDS), row
    _no_repeats(*([row["input_text"] for row in rows[split]] for split in samples.SPLITS))


def test_banking77_records_are_conversations_balanced_over_the_intents():
    rows = _rows("banking77")
    for split, per_intent in samples.BANKING_ROWS_PER_INTENT.items():
        intents = [record["messages"][1]["content"] for record in rows[split]]
        assert {intent: intents.count(intent) for intent in samples.BANKING_INTENTS} == dict.fromkeys(
            samples.BANKING_INTENTS, per_intent
        )
    for record in rows["train"] + rows["evaluation"]:
        assert set(record) == {"id", "system", "messages"}
        assert record["system"] == samples.BANKING_SYSTEM
        assert [message["role"] for message in record["messages"]] == ["user", "assistant"]
        assert record["messages"][0]["content"].strip()
    assert all(record["id"].startswith("train.csv:") for record in rows["train"])
    assert all(record["id"].startswith("test.csv:") for record in rows["evaluation"])
    _no_repeats(*(
        [record["messages"][0]["content"].casefold() for record in rows[split]] for split in samples.SPLITS
    ))


@pytest.mark.parametrize("name", list(samples.SOURCES))
def test_each_sample_names_its_source_commit_and_license(name):
    source = samples.SOURCES[name]
    readme = (samples.SAMPLES_DIR / name / "README.md").read_text()
    assert source.repository in readme and source.commit in readme and source.license in readme
    assert all(path in readme for path in source.files.values())
    assert (samples.SAMPLES_DIR / name / "LICENSE").is_file()


@pytest.mark.parametrize("name", list(samples.SOURCES))
def test_redrawing_from_the_source_gives_the_committed_bytes(name, tmp_path):
    checkout = samples.SOURCES_DIR / samples.SOURCES[name].repository.split("/")[1]
    if not checkout.exists():
        pytest.skip(f"no clone of {samples.SOURCES[name].repository} at {checkout} (see draw_samples.py)")
    samples.draw(name, checkout, tmp_path)
    for path in sorted((tmp_path / name).iterdir()):
        assert path.read_bytes() == (samples.SAMPLES_DIR / name / path.name).read_bytes(), path.name
