import re
import sqlite3

import pytest

from kfp_distill._implementation.jsonl import load_rows, write_jsonl
from kfp_distill.components.generate_rationales.answer_format import MIN_RATIONALE_CHARS
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.generate_rationales.generation import (
    SELF_MADE_CANDIDATES,
    SELF_MADE_DRAWS,
    SELF_MADE_SAMPLES,
    TeacherAnswersUnusableError,
    generate_rationales,
)
from kfp_distill.components.generate_rationales.report import GenerationReport

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'kfp-distill[llamacpp]')")

SHOTS = [
    {"input_text": "What is 1 + 1?", "rationale": "One and one make two.", "output_text": "2"},
    {"input_text": "What is 3 + 3?", "rationale": "Three and three make six.", "output_text": "6"},
]
MAX_NEW_TOKENS = 24
NEWS_CLASSES = ("business", "entertainment", "politics", "sport")
NEWS_FORMAT = (
    "Classify the following text into one of the following classes: [business, entertainment, politics, sport] "
    "Text: {}"
)
HEADLINES = [
    "Stock markets close higher as oil prices ease",
    "Striker scores twice as the home side wins the cup final",
    "Parliament votes on the new budget bill tonight",
    "Film festival opens with a comedy about two chefs",
    "Car maker reports record quarterly profit",
    "Tennis champion withdraws from the open with an injury",
    "Prime minister calls an early general election",
    "Singer's new album tops the charts in its first week",
    "Central bank holds interest rates steady",
    "Opposition leader resigns after losing the vote",
]


def test_smollm2_teacher_answers_through_llama_cpp_and_is_cached(tmp_path):
    write_jsonl(tmp_path / "shots.jsonl", SHOTS)
    rows = [{"input_text": "What is 2 + 2?", "output_text": "4"}, {"input_text": "What is 5 + 1?", "output_text": "6"}]
    write_jsonl(tmp_path / "data.jsonl", rows)
    arguments = dict(
        dataset_path=tmp_path / "data.jsonl",
        output_path=tmp_path / "out.jsonl",
        report_path=tmp_path / "report.md",
        config=GenerationConfig(
            "smollm2-135m-instruct", few_shot_uri=str(tmp_path / "shots.jsonl"), max_new_tokens=MAX_NEW_TOKENS
        ),
        cache_path=tmp_path / "cache.sqlite",
    )
    first = GenerationReport.of(generate_rationales(**arguments))
    first_output = (tmp_path / "out.jsonl").read_text()
    assert first.teacher.startswith("llama.cpp:gguf-sha256:b179c952")
    assert (first.requests, first.cache_hits) == (2, 0)
    assert first.answered + len(first.unparseable) == 2
    with sqlite3.connect(tmp_path / "cache.sqlite") as connection:
        answers = connection.execute("SELECT completion, prompt_tokens, completion_tokens FROM answers").fetchall()
    assert len(answers) == 2
    for completion, prompt_tokens, completion_tokens in answers:
        assert completion.strip()
        assert prompt_tokens > 50  # system, two demonstrations, the question
        assert 1 <= completion_tokens <= MAX_NEW_TOKENS

    second = GenerationReport.of(generate_rationales(**arguments))
    assert (second.requests, second.cache_hits) == (0, 2)
    assert (tmp_path / "out.jsonl").read_text() == first_output


@pytest.mark.slow
def test_smollm2_labels_unlabeled_rows_in_the_seeds_format_with_demonstrations_it_made(tmp_path):
    """The seed's main scenario with the 135M model as teacher: unlabeled rows whose instruction lists the
    classes, no few-shot file, JSON answers held to the schema. Its usable share is printed, not held to a
    target: it may even be stopped by the probe (its rationales can run on past max_new_tokens). Asserted is
    what must hold either way: answers that came back whole parse, and the report's counts agree."""
    write_jsonl(tmp_path / "data.jsonl", [{"input_text": NEWS_FORMAT.format(text)} for text in HEADLINES])
    stopped = None
    try:
        generate_rationales(
            tmp_path / "data.jsonl", tmp_path / "out.jsonl", tmp_path / "report.md",
            GenerationConfig("smollm2-135m-instruct", max_new_tokens=128, min_answered_fraction=0.0),
            cache_path=tmp_path / "cache.sqlite",
        )
    except TeacherAnswersUnusableError as error:
        stopped = str(error)
    markdown = (tmp_path / "report.md").read_text()
    counts = re.search(
        r"- Answered \(usable\): (\d+); unparseable: (\d+)(?: \((\d+) cut off at max_new_tokens\))?; "
        r"failed: (\d+); not asked: (\d+)",
        markdown,
    )
    answered, unparseable, cut_off, failed, not_asked = (int(count or 0) for count in counts.groups())
    made, candidates = map(int, re.search(
        r"- Few-shot examples: (\d+) made by the teacher \(no labels, no few-shot file\): it answered (\d+) rows", markdown
    ).groups())
    probe_usable = int(re.search(r"- Probe: (\d+) of the 8 rows answered first got a usable answer", markdown)[1])
    print(
        f"\nSmolLM2-135M as teacher, unlabeled route: {answered} of {len(HEADLINES) - not_asked} rows asked got a "
        f"usable answer ({cut_off} cut off at max_new_tokens), {made} self-made demonstrations, probe "
        f"{probe_usable}/8" + (f"; stopped by the probe: {stopped}" if stopped else "")
    )
    assert "- Answer format: json" in markdown
    assert f"- Classes: from the instruction in the inputs ({', '.join(NEWS_CLASSES)})" in markdown
    # JSON held to the schema: an answer that did not parse can only have been cut off.
    assert cut_off == unparseable and failed == 0
    assert answered + unparseable + not_asked == len(HEADLINES)
    assert not_asked == (len(HEADLINES) - 8 if stopped else 0)
    assert SELF_MADE_CANDIDATES <= candidates <= SELF_MADE_DRAWS * SELF_MADE_CANDIDATES
    asked_now = candidates * SELF_MADE_SAMPLES + len(HEADLINES) - not_asked
    assert f"({asked_now} asked now, 0 from the cache)" in markdown
    assert f"- Rows with a usable answer: {answered / (len(HEADLINES) - not_asked):.1%} of those asked" in markdown
    outputs = load_rows(tmp_path / "out.jsonl")
    assert len(outputs) == answered
    for row in outputs:
        assert row["teacher_label"] in NEWS_CLASSES and row["output_text"] == row["teacher_label"]
        assert len(row["rationale"]) >= MIN_RATIONALE_CHARS and row["gold_label"] is None
