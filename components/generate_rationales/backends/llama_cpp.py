"""The embedded llama.cpp teacher (llama-cpp-python), for GGUF models on the local CPU or GPU."""

from __future__ import annotations

import json
import math
import os
from functools import cached_property
from pathlib import Path

from kfp_distill._implementation.models import CATALOG, resolve_gguf, sha256_of
from kfp_distill._implementation.teacher_reference import TeacherKind, TeacherReference

from .base import Completion, DecodingSettings, TeacherRequestError

CONTEXT_TOKENS = 4096
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus(cgroup_cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may use: its CPU set (taskset, a container's cpuset), capped by a cgroup v2 CPU
    quota (`docker run --cpus`, a Kubernetes CPU limit), rounded up."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no CPU sets on macOS
        cpus = os.cpu_count() or 1
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


class LlamaCppBackend:
    """A GGUF model run in-process. One `Llama` object serves the whole run, so llama.cpp reuses the
    KV cache of the few-shot prefix that consecutive prompts share.

    Args:
        teacher: A catalog GGUF model's reference, or a GGUF file's.
    """

    supports_concurrency = False  # one model object answers one prompt at a time
    supports_structured_output = True  # a grammar made from the JSON schema

    def __init__(self, teacher: TeacherReference):
        model = teacher.expect(TeacherKind.CATALOG_GGUF, TeacherKind.GGUF_FILE).model
        self.model_path = resolve_gguf(model)
        if teacher.kind is TeacherKind.CATALOG_GGUF:
            digest = CATALOG[model].sha256  # verified when the file was assembled
        else:
            digest = sha256_of(self.model_path)
        self.identity = f"llama.cpp:gguf-sha256:{digest}"

    @cached_property
    def _llama(self):
        # Loaded on the first request only: a fully cached re-run never loads the weights.
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ImportError(
                "the llama.cpp teacher needs llama-cpp-python: pip install 'kfp-distill[llamacpp]'"
            ) from None
        return Llama(model_path=str(self.model_path), n_ctx=CONTEXT_TOKENS, n_threads=usable_cpus(), verbose=False)

    def complete(self, messages: list[dict[str, str]], settings: DecodingSettings) -> Completion:
        response_format = None
        if settings.response_schema is not None:
            response_format = {"type": "json_object", "schema": json.loads(settings.response_schema)}
        try:
            response = self._llama.create_chat_completion(
                messages=messages,
                max_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                seed=settings.seed,
                response_format=response_format,
            )
        except ValueError as error:  # e.g. the prompt does not fit the context window
            raise TeacherRequestError(f"llama.cpp: {error}") from error
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason"),
        )
