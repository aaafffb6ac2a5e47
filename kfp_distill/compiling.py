"""Compiles the pipelines into `compiled/`, the YAML users upload or run."""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

from kfp_distill.pipelines.distillation.pipeline import distillation

PIPELINES = {"distillation.yaml": distillation}


def compile_all(directory: str | Path = "compiled") -> list[Path]:
    """Writes every pipeline's YAML into `directory` and returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, pipeline in PIPELINES.items():
        path = directory / file_name
        compiler.Compiler().compile(pipeline, str(path))
        written.append(path)
    return written
