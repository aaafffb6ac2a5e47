import sqlite3

import pytest

from kfp_distill._implementation.jsonl import write_jsonl
from kfp_distill.components.generate_rationales.generation import generate_rationales

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'kfp-distill[llamacpp]')")

SHOTS = [
    {"input_text": "What is 1 + 1?", "rationale": "One and one make two.", "output_text": "2"},
    {"input_text": "What is 3 + 3?", "rationale": "Three and three make six.", "output_text": "6"},
]
MAX_NEW_TOKENS = 24


def test_smollm2_teacher_answers_through_llama_cpp_and_is_cached(tmp_path):
    write_jsonl(tmp_path / "shots.jsonl", SHOTS)
    rows = [{"input_text": "What is 2 + 2?", "output_text": "4"}, {"input_text": "What is 5 + 1?", "output_text": "6"}]
    write_jsonl(tmp_path / "data.jsonl", rows)
    arguments = dict(
        dataset_path=tmp_path / "data.jsonl",
        output_path=tmp_path / "out.jsonl",
        report_path=tmp_path / "report.md",
        teacher_model_reference="smollm2-135m-instruct",
        few_shot_uri=str(tmp_path / "shots.jsonl"),
        max_new_tokens=MAX_NEW_TOKENS,
        cache_path=tmp_path / "cache.sqlite",
    )
    first = generate_rationales(**arguments)
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

    second = generate_rationales(**arguments)
    assert (second.requests, second.cache_hits) == (0, 2)
    assert (tmp_path / "out.jsonl").read_text() == first_output
