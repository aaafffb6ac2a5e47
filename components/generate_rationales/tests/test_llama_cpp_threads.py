"""The embedded teacher uses as many llama.cpp threads as CPUs the process may use, not the machine's count:
a container limited to fewer CPUs (a CPU set or a CFS quota) would otherwise run more spinning threads than
it has CPUs, and each step waits for a thread that is not scheduled."""

import os

import pytest

from kfp_distill._implementation.teacher_reference import parse_teacher_reference
from kfp_distill.components.generate_rationales.backends.llama_cpp import LlamaCppBackend, usable_cpus


@pytest.fixture
def one_cpu():
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    yield
    os.sched_setaffinity(0, allowed)


def test_usable_cpus_follow_the_cpu_set_and_the_cgroup_quota(tmp_path, one_cpu):
    cpu_max = tmp_path / "cpu.max"
    assert usable_cpus(cpu_max) == 1  # no cgroup file: the CPU set alone
    os.sched_setaffinity(0, range(os.cpu_count()))
    cpu_max.write_text("max 100000\n")
    assert usable_cpus(cpu_max) == len(os.sched_getaffinity(0))
    cpu_max.write_text("150000 100000\n")  # docker run --cpus 1.5
    assert usable_cpus(cpu_max) == min(2, len(os.sched_getaffinity(0)))
    cpu_max.write_text("50000 100000\n")
    assert usable_cpus(cpu_max) == 1


@pytest.mark.skipif(os.cpu_count() < 2, reason="needs a machine with more than one CPU to pin the test to one")
def test_llama_cpp_runs_one_thread_per_cpu_the_process_may_use(one_cpu):
    pytest.importorskip("llama_cpp", reason="the embedded teacher needs llama-cpp-python (the llamacpp extra)")
    backend = LlamaCppBackend(parse_teacher_reference("smollm2-135m-instruct"))
    assert backend._llama.n_threads == 1
