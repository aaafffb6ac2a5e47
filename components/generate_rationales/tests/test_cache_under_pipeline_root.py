"""The answer cache under the pipeline root: its name, copies of a remote cache while the task runs, SIGTERM,
and `dsl.PIPELINE_ROOT_PLACEHOLDER` resolved by kfp.local so that a second run of a pipeline asks nothing."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest
import yaml

from kfp_distill._implementation.jsonl import write_jsonl
from kfp_distill.components.generate_rationales.backends.base import Completion, DecodingSettings
from kfp_distill.components.generate_rationales.cache import (
    AnswerCache,
    answer_key,
    default_cache_uri,
    local_cache_file,
    resolve_cache_uri,
)

COMPILED = Path(__file__).resolve().parents[3] / "compiled" / "distillation.yaml"
ANSWER = Completion("One and one. The answer is 2.", prompt_tokens=12, completion_tokens=8, finish_reason="stop")


def key(n: int) -> str:
    return answer_key("teacher-a", [{"role": "user", "content": f"question {n}"}], DecodingSettings())


def answers_in(path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


def test_the_default_cache_is_named_by_the_teacher_not_the_job():
    uri = default_cache_uri("gs://bucket/root/", "http://127.0.0.1:8080/v1#qwen")
    assert uri.startswith("gs://bucket/root/teacher-cache/http-127.0.0.1-8080-v1-qwen-") and uri.endswith(".sqlite")
    assert uri == default_cache_uri("gs://bucket/root", "http://127.0.0.1:8080/v1#qwen")
    assert uri != default_cache_uri("gs://bucket/root", "http://127.0.0.1:8080/v1#llama")
    assert resolve_cache_uri("/mine.sqlite", "gs://bucket/root", "qwen") == "/mine.sqlite"
    assert resolve_cache_uri("", "gs://bucket/root", "qwen") == default_cache_uri("gs://bucket/root", "qwen")
    assert resolve_cache_uri("", "", "qwen") == ""
    with local_cache_file("") as path:
        assert path is None  # generation's own default: the kfp-distill cache folder


def test_a_remote_cache_is_copied_back_while_the_task_runs():
    uri = "memory://runs/teacher-cache/periodic.sqlite"
    memory = fsspec.filesystem("memory")
    with local_cache_file(uri, sync_interval_s=0.05) as path, AnswerCache(path) as cache:
        cache.put(key(1), "teacher-a", ANSWER, latency_s=0.1)
        deadline = time.monotonic() + 10
        while not memory.exists("/runs/teacher-cache/periodic.sqlite") and time.monotonic() < deadline:
            time.sleep(0.02)
        copied = Path(path).with_name("seen.sqlite")
        memory.get("/runs/teacher-cache/periodic.sqlite", str(copied))
        assert answers_in(copied) == 1  # on the remote before the task ends


def test_the_copy_back_merges_answers_another_task_wrote_meanwhile(tmp_path):
    uri = "memory://runs/teacher-cache/shared.sqlite"
    memory = fsspec.filesystem("memory")
    with local_cache_file(uri) as path, AnswerCache(path) as cache:
        cache.put(key(1), "teacher-a", ANSWER, latency_s=0.1)
        # Another task (the evaluation step runs beside the training step) copies its answer up meanwhile.
        with AnswerCache(tmp_path / "other.sqlite") as other:
            other.put(key(2), "teacher-a", ANSWER, latency_s=0.2)
        memory.put(str(tmp_path / "other.sqlite"), "/runs/teacher-cache/shared.sqlite")
    memory.get("/runs/teacher-cache/shared.sqlite", str(tmp_path / "merged.sqlite"))
    with AnswerCache(tmp_path / "merged.sqlite") as merged:
        assert merged.get(key(1)) is not None and merged.get(key(2)) is not None


def test_a_failing_task_still_copies_its_answers_back(tmp_path):
    uri = "memory://runs/teacher-cache/failing.sqlite"
    with pytest.raises(RuntimeError, match="teacher went away"):
        with local_cache_file(uri) as path, AnswerCache(path) as cache:
            cache.put(key(1), "teacher-a", ANSWER, latency_s=0.1)
            raise RuntimeError("teacher went away")
    fsspec.filesystem("memory").get("/runs/teacher-cache/failing.sqlite", str(tmp_path / "copy.sqlite"))
    assert answers_in(tmp_path / "copy.sqlite") == 1


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
    assert answers_in(remote) == 1  # the hourly copy never ran: this is the copy made on SIGTERM


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
    assert cache.name == Path(default_cache_uri(str(tmp_path / "root"), arguments["teacher_model_reference"])).name
    # 3 rows, and 3 samples of each that the teacher made its demonstrations from (no labels).
    assert answers_in(cache) == 12 and len(stub_server.requests) == 12
    assert not (tmp_path / "not-here").exists()

    teacher_only(**arguments)  # a new job: another job id, the same pipeline root
    assert len(stub_server.requests) == 12
    assert len([path for path in (tmp_path / "root").iterdir() if path.name.startswith("teacher-only-")]) == 2
    assert os.listdir(tmp_path / "root" / "teacher-cache") == [cache.name]
