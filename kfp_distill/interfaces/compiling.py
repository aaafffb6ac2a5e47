"""Compiles the pipelines and components into `compiled/`, the YAML users upload, run or reuse."""

from __future__ import annotations

from pathlib import Path

from kfp import compiler
from kfp.compiler import pipeline_spec_builder
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_distill.components.deploy_model.component import deploy_registered_model
from kfp_distill.components.evaluate.component import evaluate
from kfp_distill.components.generate_rationales.component import generate_rationales
from kfp_distill.components.preflight.component import preflight
from kfp_distill.components.tune_student.component import tune_student
from kfp_distill.components.upload_model.component import upload_model
from kfp_distill.components.validate_dataset.component import validate_dataset
from kfp_distill.pipelines.distillation.pipeline import distillation

# Vertex AI's SDK reads a template as one YAML document, so the pipeline users submit there has no platform
# section; Kubeflow's adds the Kubernetes one (the teacher's key from a Kubernetes secret).
PIPELINES = {"distillation.yaml": distillation}
KUBEFLOW_PIPELINES = {"distillation-kubeflow.yaml": distillation}

# Named after their folders in components/, so compiled/components/<name>.yaml sits beside its source's name.
COMPONENTS = {
    "preflight.yaml": preflight,
    "validate_dataset.yaml": validate_dataset,
    "generate_rationales.yaml": generate_rationales,
    "tune_student.yaml": tune_student,
    "evaluate.yaml": evaluate,
    "upload_model.yaml": upload_model,
    "deploy_model.yaml": deploy_registered_model,
}

COMPONENTS_SUBDIRECTORY = "components"


def compile_all(directory: str | Path = "compiled") -> list[Path]:
    """Writes every pipeline's and every component's YAML under `directory`.

    Pipelines go to `directory/<pipeline>.yaml` (without platform sections) and `directory/<pipeline>-kubeflow.yaml`
    (with them), components to `directory/components/<component>.yaml`.

    Args:
        directory: Where the YAML files are written; created when missing.

    Returns:
        The paths written, pipelines first.
    """
    directory = Path(directory)
    components_directory = directory / COMPONENTS_SUBDIRECTORY
    components_directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, pipeline in PIPELINES.items():
        path = directory / file_name
        pipeline_spec_builder.write_pipeline_spec_to_file(
            pipeline_spec=pipeline.pipeline_spec,
            pipeline_description=pipeline.description,
            platform_spec=pipeline_spec_pb2.PlatformSpec(),
            package_path=str(path),
        )
        written.append(path)
    for file_name, pipeline in KUBEFLOW_PIPELINES.items():
        path = directory / file_name
        compiler.Compiler().compile(pipeline, str(path))
        written.append(path)
    for file_name, component in COMPONENTS.items():
        path = components_directory / file_name
        compiler.Compiler().compile(component, str(path))
        written.append(path)
    return written
