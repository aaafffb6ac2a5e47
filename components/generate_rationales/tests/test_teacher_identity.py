"""What identifies a teacher's answers: the model an OpenAI-compatible server says it serves, not the server's
address, for the cache key and the default cache file alike; caches written the old way stay readable."""

import json

from kfp_distill._implementation.jsonl import load_rows, write_jsonl
from kfp_distill._implementation.teacher_reference import parse_teacher_reference
from kfp_distill.components.generate_rationales.asking import Answer, Teacher
from kfp_distill.components.generate_rationales.backends.base import Completion, DecodingSettings
from kfp_distill.components.generate_rationales.backends.openai_compatible import OpenAICompatibleBackend
from kfp_distill.components.generate_rationales.cache import (
    AnswerCache,
    answer_key,
    default_cache_uri,
    teacher_cache_file,
)
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.generate_rationales.generation import generate_rationales
from kfp_distill.components.generate_rationales.report import GenerationReport

SHOTS = [{"input_text": "What is 1 + 1?", "rationale": "One and one make two.", "output_text": "2"}]
ROWS = [{"input_text": f"What is {n} + 7?", "output_text": None} for n in range(3)]
QWEN = {"id": "qwen", "object": "model", "owned_by": "llamacpp", "meta": {"n_params": 1543714304, "size": 986046272}}


def run(server, tmp_path, cache_path, model="stub"):
    """Generation against `server`, with a few-shot file, so that every request asks about a row."""
    write_jsonl(tmp_path / "data.jsonl", ROWS)
    write_jsonl(tmp_path / "shots.jsonl", SHOTS)
    config = GenerationConfig(f"{server.base_url}#{model}", few_shot_uri=str(tmp_path / "shots.jsonl"))
    report = GenerationReport.of(generate_rationales(
        tmp_path / "data.jsonl", tmp_path / "out.jsonl", tmp_path / "report.md", config, cache_path=cache_path
    ))
    return report, load_rows(tmp_path / "out.jsonl")


def test_the_same_model_behind_another_address_is_not_asked_again(start_stub_server, tmp_path):
    first, moved = start_stub_server(models=[QWEN]), start_stub_server(models=[QWEN])
    run(first, tmp_path, tmp_path / "cache.sqlite", model="qwen")
    report, outputs = run(moved, tmp_path, tmp_path / "cache.sqlite", model="qwen")
    assert len(first.requests) == 3 and moved.requests == [] and len(outputs) == 3
    assert report.teacher.startswith("openai-compatible:") and report.teacher.endswith("#qwen")
    assert "127.0.0.1" not in report.teacher


def test_another_model_behind_the_same_address_and_name_is_asked_anew(start_stub_server, tmp_path):
    server = start_stub_server(models=[QWEN])
    run(server, tmp_path, tmp_path / "cache.sqlite", model="qwen")
    server.models = [dict(QWEN, meta=dict(QWEN["meta"], size=1_646_972_096))]  # another quantization, same name
    report, _ = run(server, tmp_path, tmp_path / "cache.sqlite", model="qwen")
    assert report.requests == 3 and report.cache_hits == 0


def test_a_server_that_serves_one_model_under_any_name_is_known_by_that_model(start_stub_server):
    # llama.cpp's server answers whatever model is asked for with the one it loaded.
    server = start_stub_server(models=[dict(QWEN, id="/models/qwen2.5-1.5b-instruct-q4_k_m.gguf")])
    identity = OpenAICompatibleBackend(server.teacher("anything")).identity
    assert identity.endswith("#/models/qwen2.5-1.5b-instruct-q4_k_m.gguf")
    listed = start_stub_server(models=[{"id": "gpt-4o-mini"}, {"id": "gpt-4o"}])
    assert OpenAICompatibleBackend(listed.teacher("gpt-4o")).identity == "openai-compatible#gpt-4o"
    unlisted = start_stub_server()  # no model list (404): the name asked for
    assert OpenAICompatibleBackend(unlisted.teacher()).identity == "openai-compatible#stub"
    assert listed.model_lists == 1 and unlisted.model_lists == 0


def test_answers_cached_the_old_way_are_found_and_kept_under_the_model(start_stub_server, tmp_path):
    server = start_stub_server()
    question = [{"role": "user", "content": "What is 2 + 2?"}]
    earlier = Completion("Two and two. The answer is 4.", 9, 7, "stop")
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        # Earlier versions keyed an OpenAI-compatible teacher's answers by its address and model name.
        old_identity = f"openai-compatible:{server.base_url}#stub"
        cache.put(answer_key(old_identity, question, DecodingSettings()), old_identity, earlier, 1.5)
        backend = OpenAICompatibleBackend(server.teacher())
        (answer,) = Teacher(backend, cache, DecodingSettings()).ask_all([question])
        assert isinstance(answer, Answer) and answer.completion == earlier and server.requests == []
        assert cache.get(answer_key(backend.identity, question, DecodingSettings())).completion == earlier
    moved = start_stub_server()  # found under the model from now on, wherever it is served
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        (answer,) = Teacher(OpenAICompatibleBackend(moved.teacher()), cache, DecodingSettings()).ask_all(
            [question]
        )
    assert answer.completion == earlier and moved.requests == []


def test_the_default_cache_is_named_after_the_model_and_reads_the_file_named_after_the_address(
    start_stub_server, tmp_path
):
    root = str(tmp_path / "root")
    first = start_stub_server(models=[QWEN])
    reference = f"{first.base_url}#qwen"
    teacher = parse_teacher_reference(reference)
    backend = OpenAICompatibleBackend(teacher)
    # The cache file an earlier version kept under the pipeline root: named after the reference, its answers
    # keyed by the address (a run's answers, re-keyed as earlier versions keyed them).
    run(first, tmp_path, tmp_path / "fresh.sqlite", model="qwen")
    old_file, old_identity = default_cache_uri(root, reference), f"openai-compatible:{first.base_url}#qwen"
    with AnswerCache(tmp_path / "fresh.sqlite") as fresh, AnswerCache(old_file) as old:
        for body in first.requests:
            schema = json.dumps(body["response_format"]["json_schema"]["schema"], ensure_ascii=False)
            settings = DecodingSettings(body["max_tokens"], body["temperature"], body["seed"], schema)
            cached = fresh.get(answer_key(backend.identity, body["messages"], settings))
            old.put(answer_key(old_identity, body["messages"], settings), old_identity, cached.completion, 0.1)

    with teacher_cache_file("", root, backend.identity, teacher) as cache_path:
        assert str(cache_path) == default_cache_uri(root, backend.identity) != old_file
        report, outputs = run(first, tmp_path, cache_path, model="qwen")
    assert report.requests == 0 and report.cache_hits == 3 and len(outputs) == 3
    assert len(first.requests) == 3

    moved = start_stub_server(models=[QWEN])  # the file named after the model holds them from now on
    moved_teacher = moved.teacher("qwen")
    moved_identity = OpenAICompatibleBackend(moved_teacher).identity
    with teacher_cache_file("", root, moved_identity, moved_teacher) as cache_path:
        report, _ = run(moved, tmp_path, cache_path, model="qwen")
    assert moved.requests == [] and report.cache_hits == 3
