import sqlite3

import fsspec

from kfp_distill.components.generate_rationales.backends.base import Completion, DecodingSettings
from kfp_distill.components.generate_rationales.cache import AnswerCache, answer_key, local_cache_file

MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "What is 1 + 1?"}]
ANSWER = Completion("One and one. The answer is 2.", prompt_tokens=12, completion_tokens=8, finish_reason="stop")


def test_key_covers_teacher_messages_and_settings():
    key = answer_key("teacher-a", MESSAGES, DecodingSettings())
    assert key == answer_key("teacher-a", [dict(m) for m in MESSAGES], DecodingSettings())
    assert key != answer_key("teacher-b", MESSAGES, DecodingSettings())
    assert key != answer_key("teacher-a", MESSAGES[1:], DecodingSettings())
    assert key != answer_key("teacher-a", MESSAGES, DecodingSettings(max_new_tokens=10))
    assert key != answer_key("teacher-a", MESSAGES, DecodingSettings(temperature=0.7))
    assert key != answer_key("teacher-a", MESSAGES, DecodingSettings(seed=1))


def test_answers_are_committed_as_they_arrive(tmp_path):
    path = tmp_path / "nested" / "cache.sqlite"
    cache = AnswerCache(path)
    key = answer_key("teacher-a", MESSAGES, DecodingSettings())
    assert cache.get(key) is None
    cache.put(key, "teacher-a", ANSWER, latency_s=1.5)
    # Another connection sees the answer while the first is still open: it is committed, not buffered.
    with sqlite3.connect(path) as reader:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert reader.execute("SELECT teacher, completion, latency_s FROM answers").fetchall() == [
            ("teacher-a", ANSWER.text, 1.5)
        ]
    cache.close()
    with AnswerCache(path) as reopened:
        assert len(reopened) == 1
        cached = reopened.get(key)
    assert (cached.completion, cached.latency_s) == (ANSWER, 1.5)


def test_remote_cache_is_copied_down_and_back():
    uri = "memory://caches/teacher_answers.sqlite"
    key = answer_key("teacher-a", MESSAGES, DecodingSettings())
    with local_cache_file(uri) as path, AnswerCache(path) as cache:
        cache.put(key, "teacher-a", ANSWER, latency_s=0.5)
    # One shard per copy up; the cache file named by the URI is left to older versions.
    assert len(fsspec.filesystem("memory").glob("/caches/teacher_answers.sqlite.shards/*.sqlite")) == 1
    with local_cache_file(uri) as path, AnswerCache(path) as cache:
        assert cache.get(key).completion == ANSWER


def test_local_cache_uri_is_used_in_place(tmp_path):
    with local_cache_file(f"file://{tmp_path}/cache.sqlite") as path:
        assert path == tmp_path / "cache.sqlite"
