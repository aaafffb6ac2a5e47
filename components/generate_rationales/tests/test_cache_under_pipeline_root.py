"""The answer cache under the pipeline root: its name, copies of a remote cache while the task runs, SIGTERM,
and `dsl.PIPELINE_ROOT_PLACEHOLDER` resolved by kfp.local so that a second run of a pipeline asks nothing."""

import concurrent.futures
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest
import yaml
from fsspec.implementations.memory import MemoryFileSystem

from kfp_distill._implementation.jsonl import write_jsonl
from kfp_distill._implementation.teacher_reference import parse_teacher_reference
from kfp_distill.components.generate_rationales.backends.base import Completion, DecodingSettings
from kfp_distill.components.generate_rationales.cache import (
    AnswerCache,
    answer_key,
    default_cache_uri,
    local_cache_file,
    teacher_cache_file,
)

COMPILED = Path(__file__).resolve().parents[3] / "compiled" / "distillation.yaml"
ANSWER = Completion("One and one. The answer is 2.", prompt_tokens=12, completion_tokens=8, finish_reason="stop")


def key(n: int) -> str:
    return answer_key("teacher-a", [{"role": "user", "content": f"question {n}"}], DecodingSettings())


def answers_in(path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


def remote_answers(uri: str) -> int:
    """The answers a new task finds in the remote cache at `uri`."""
    with local_cache_file(uri) as path:
        return answers_in(path) if path.exists() else 0


def test_the_default_cache_is_named_by_the_teacher_not_the_job(tmp_path):
    uri = default_cache_uri("gs://bucket/root/", "openai-compatible#qwen")
    assert uri.startswith("gs://bucket/root/teacher-cache/openai-compatible-qwen-") and uri.endswith(".sqlite")
    assert uri == default_cache_uri("gs://bucket/root", "openai-compatible#qwen")
    assert uri != default_cache_uri("gs://bucket/root", "openai-compatible#llama")
    teacher = parse_teacher_reference("http://127.0.0.1:8080/v1#qwen")
    with teacher_cache_file(str(tmp_path / "mine.sqlite"), str(tmp_path), "openai-compatible#qwen", teacher) as path:
        assert path == tmp_path / "mine.sqlite"
    with teacher_cache_file("", str(tmp_path), "openai-compatible#qwen", teacher) as path:
        assert str(path) == default_cache_uri(str(tmp_path), "openai-compatible#qwen")
    with teacher_cache_file("", "", "openai-compatible#qwen", teacher) as path:
        assert path is None  # generation's own default: the kfp-distill cache folder


def test_a_remote_default_cache_adds_the_answers_of_the_file_earlier_versions_named_after_the_reference():
    reference, identity = "http://127.0.0.1:8080/v1#qwen", "openai-compatible#qwen"
    earlier = default_cache_uri("memory://named-by-reference", reference)
    with local_cache_file(earlier) as path, AnswerCache(path) as cache:
        cache.put(key(1), "teacher-a", ANSWER, latency_s=0.1)
    teacher = parse_teacher_reference(f"  {reference} ")  # the file was named after the reference's text
    with teacher_cache_file("", "memory://named-by-reference", identity, teacher) as path, AnswerCache(path) as cache:
        assert cache.get(key(1)) is not None
        cache.put(key(2), "teacher-a", ANSWER, latency_s=0.1)
    assert remote_answers(default_cache_uri("memory://named-by-reference", identity)) == 2
    assert remote_answers(earlier) == 1  # read, never written


def test_a_remote_cache_is_copied_back_while_the_task_runs():
    uri = "memory://runs/teacher-cache/periodic.sqlite"
    with local_cache_file(uri, sync_interval_s=0.05) as path, AnswerCache(path) as cache:
        cache.put(key(1), "teacher-a", ANSWER, latency_s=0.1)
        deadline = time.monotonic() + 10
        while not remote_answers(uri) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert remote_answers(uri) == 1  # on the remote before the task ends


def test_the_copy_back_merges_answers_an_older_version_wrote_meanwhile(tmp_path):
    uri = "memory://runs/teacher-cache/shared.sqlite"
    memory = fsspec.filesystem("memory")
    with local_cache_file(uri) as path, AnswerCache(path) as cache:
        cache.put(key(1), "teacher-a", ANSWER, latency_s=0.1)
        # An older kfp-distill rewrites the single cache file at the URI meanwhile: read, never overwritten.
        with AnswerCache(tmp_path / "other.sqlite") as other:
            other.put(key(2), "teacher-a", ANSWER, latency_s=0.2)
        memory.put(str(tmp_path / "other.sqlite"), "/runs/teacher-cache/shared.sqlite")
    with local_cache_file(uri) as path, AnswerCache(path) as merged:
        assert merged.get(key(1)) is not None and merged.get(key(2)) is not None


def test_a_failing_task_still_copies_its_answers_back(tmp_path):
    uri = "memory://runs/teacher-cache/failing.sqlite"
    with pytest.raises(RuntimeError, match="teacher went away"):
        with local_cache_file(uri) as path, AnswerCache(path) as cache:
            cache.put(key(1), "teacher-a", ANSWER, latency_s=0.1)
            raise RuntimeError("teacher went away")
    assert remote_answers(uri) == 1


TERMINATED_TASK = """
import sys, time
from kfp_distill.components.generate_rationales.backends.base import Completion, DecodingSettings
from kfp_distill.components.generate_rationales.cache import AnswerCache, answer_key, local_cache_file

with local_cache_file(sys.argv[1], sync_interval_s=3600) as path, AnswerCache(path) as cache:
    cache.put(answer_key("t", [], DecodingSettings()), "t", Completion("x. The answer is 1.", 1, 1), 0.1)
    print("answered", flush=True)
    time.sleep(60)
"""


def test_sigterm_copies_the_answers_back_before_the_task_exits(tmp_path):
    # `local://` is a local folder reached through fsspec, so it takes the remote path (copy down and back).
    remote = tmp_path / "bucket" / "teacher-cache" / "answers.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-c", TERMINATED_TASK, f"local://{remote}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout.readline() == b"answered\n", process.stderr.read().decode()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr.decode()
    assert remote_answers(f"local://{remote}") == 1  # the hourly copy never ran: this is the copy made on SIGTERM


def test_the_pipeline_gives_both_teacher_steps_the_pipeline_root():
    spec = yaml.safe_load(COMPILED.read_text())
    tasks = {}

    def collect(dag):
        for name, task in dag.get("tasks", {}).items():
            tasks[name] = task

    collect(spec["root"]["dag"])
    for component in spec["components"].values():
        collect(component.get("dag", {}))
    teacher_steps = [task for task in tasks.values() if task["componentRef"]["name"].startswith("comp-generate-rat")]
    assert len(teacher_steps) == 2
    for task in teacher_steps:
        parameters = task["inputs"]["parameters"]
        assert parameters["pipeline_root"]["runtimeValue"]["constant"] == "{{$.pipeline_root}}"
    dropping = [task for task in teacher_steps if "drop_contradicting_rationales" in task["inputs"]["parameters"]]
    assert len(dropping) == 1 and dropping[0]["taskInfo"]["name"] == "generate-rationales"


def test_kfp_local_resolves_the_pipeline_root_and_a_new_run_resumes_from_it(stub_server, tmp_path, monkeypatch):
    from kfp import dsl, local

    from kfp_distill.components.generate_rationales.component import generate_rationales

    @dsl.pipeline(name="teacher-only")
    def teacher_only(dataset_uri: str, teacher_model_reference: str):
        dataset = dsl.importer(artifact_uri=dataset_uri, artifact_class=dsl.Dataset, reimport=False)
        generate_rationales(
            dataset=dataset.output,
            teacher_model_reference=teacher_model_reference,
            pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,
        )

    rows = [{"input_text": f"What is {n} + 2?", "output_text": None} for n in range(3)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    monkeypatch.setenv("KFP_DISTILL_CACHE", str(tmp_path / "not-here"))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    arguments = dict(dataset_uri=str(tmp_path / "data.jsonl"), teacher_model_reference=f"{stub_server.base_url}#stub")
    teacher_only(**arguments)
    (cache,) = (tmp_path / "root" / "teacher-cache").glob("*.sqlite")
    assert cache.name == Path(default_cache_uri(str(tmp_path / "root"), "openai-compatible#stub")).name
    # 3 rows, and 3 samples of each that the teacher made its demonstrations from (no labels).
    assert answers_in(cache) == 12 and len(stub_server.requests) == 12
    assert not (tmp_path / "not-here").exists()

    teacher_only(**arguments)  # a new job: another job id, the same pipeline root
    assert len(stub_server.requests) == 12
    assert len([path for path in (tmp_path / "root").iterdir() if path.name.startswith("teacher-only-")]) == 2
    assert os.listdir(tmp_path / "root" / "teacher-cache") == [cache.name]


class JitteryMemoryFileSystem(MemoryFileSystem):
    """An in-memory bucket of its own whose every call waits a random moment before and after, so two
    tasks' reads, writes and deletions interleave in a different order on every seed."""

    protocol = "jittery"
    store, pseudo_dirs = {}, [""]
    random = random.Random(0)

    def _jitter(self) -> None:
        time.sleep(self.random.uniform(0, 0.004))

    def __getattribute__(self, name):
        attribute = super().__getattribute__(name)
        if name in ("exists", "get", "put", "mv", "rm", "glob", "ls", "info") and callable(attribute):

            def jittered(*args, **kwargs):
                self._jitter()
                try:
                    return attribute(*args, **kwargs)
                finally:
                    self._jitter()

            return jittered
        return attribute


fsspec.register_implementation("jittery", JitteryMemoryFileSystem, clobber=True)


def teacher_step(server, tmp_path, name, rows, uri, use_gold_labels):
    """One teacher step as the component runs it: a local copy of the remote cache around generation."""
    from kfp_distill.components.generate_rationales.config import GenerationConfig
    from kfp_distill.components.generate_rationales.generation import generate_rationales

    write_jsonl(tmp_path / f"{name}.jsonl", rows)
    config = GenerationConfig(f"{server.base_url}#stub", use_gold_labels=use_gold_labels, max_concurrency=2)
    with local_cache_file(uri, sync_interval_s=0.01) as cache_path:
        generate_rationales(
            tmp_path / f"{name}.jsonl", tmp_path / f"{name}-out.jsonl", tmp_path / f"{name}.md", config,
            cache_path=cache_path,
        )


@pytest.mark.parametrize("seed", range(12))
def test_two_teacher_steps_sharing_a_remote_cache_lose_no_answer(stub_server, tmp_path, seed):
    JitteryMemoryFileSystem.random.seed(seed)
    uri = f"jittery://root-{seed}/teacher-cache/shared.sqlite"
    training = [{"input_text": f"What is {n} + 3?", "output_text": str(n + 3)} for n in range(6)]
    evaluation = [{"input_text": f"What is {n} * 2?", "output_text": str(n * 2)} for n in range(6)]
    first_run = None
    for attempt in range(2):  # the second run finds both steps' answers: it asks nothing
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            steps = [
                pool.submit(teacher_step, stub_server, tmp_path, "train", training, uri, True),
                pool.submit(teacher_step, stub_server, tmp_path, "eval", evaluation, uri, False),
            ]
            for step in steps:
                step.result(timeout=120)
        asked = len(stub_server.requests)
        first_run = first_run or asked
        assert asked == first_run, f"seed {seed}: the second run asked {asked - first_run} questions again"
    with local_cache_file(uri) as path, AnswerCache(path) as cache:
        assert len(cache) == first_run


def test_a_failed_last_copy_keeps_the_tasks_own_error_and_removes_the_local_copy(tmp_path, caplog):
    (tmp_path / "not-a-folder").write_text("")  # the remote's parent is a file: every copy up fails
    uri = f"local://{tmp_path}/not-a-folder/answers.sqlite"
    with pytest.raises(RuntimeError, match="teacher went away"):
        with local_cache_file(uri) as path, AnswerCache(path) as cache:
            cache.put(key(1), "teacher-a", ANSWER, latency_s=0.1)
            raise RuntimeError("teacher went away")
    assert not path.parent.exists()
    assert "copying the answer cache" in caplog.text and "failed" in caplog.text
