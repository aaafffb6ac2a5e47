"""Runs our pipelines on this machine with `kfp.local`, including the artifact that `dsl.OneOf` picks.

The distillation pipeline tunes in one of two branches (in-process, or a Vertex AI custom job) and hands the
model that the branch which ran produced to evaluate and upload-model through `dsl.OneOf`. Vertex AI and
Kubeflow resolve that; kfp.local 2.17.3 resolves a `dsl.OneOf` of parameters but stops at one of artifacts
("Expected 1 artifact in ArtifactSelectorSpec. Got: 2"), whichever runner runs the tasks. `init_local_runner`
teaches it the artifact case, the same way it already handles parameters, and the pipeline job's service
account placeholder, which deploy-model is given and kfp.local does not know (an IndexError in every run), as
empty: no service account, as on a machine without Google Cloud. Then it calls `kfp.local.init`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google_cloud_pipeline_components import _placeholders as google_cloud_placeholders
from kfp import local
from kfp.local import io, placeholder_utils
from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils
from kfp.pipeline_spec import pipeline_spec_pb2


def _dag_output_artifacts(
    cls: type[OrchestratorUtils], dag_outputs_spec: pipeline_spec_pb2.DagOutputsSpec, io_store: io.IOStore
) -> dict[str, Any]:
    """`OrchestratorUtils.get_dag_output_artifacts`, picking the one branch that produced a `dsl.OneOf` artifact."""
    outputs = {}
    for output_key, selector_spec in dag_outputs_spec.artifacts.items():
        produced = []
        for selector in selector_spec.artifact_selectors:
            try:
                produced.append(io_store.get_task_output(selector.producer_subtask, selector.output_artifact_key))
            except ValueError:  # the branch holding this producer did not run
                continue
        if len(produced) != 1:
            raise ValueError(
                f"dag output artifact '{output_key}': {len(produced)} of "
                f"{len(selector_spec.artifact_selectors)} producers ran; expected exactly one"
            )
        outputs[output_key] = produced[0]
    return outputs


_KFP_RESOLVE_PLACEHOLDER = placeholder_utils.resolve_individual_placeholder


def _resolve_placeholder(element: str, *args, **kwargs) -> str:
    """kfp.local's placeholder resolution, with the pipeline job's service account resolved to empty."""
    element = element.replace(google_cloud_placeholders.SERVICE_ACCOUNT_PLACEHOLDER, "")
    return _KFP_RESOLVE_PLACEHOLDER(element, *args, **kwargs)


def latest_run(pipeline_root: str | Path) -> Path | None:
    """The newest run folder of the distillation pipeline (`distillation-*`) under a pipeline root; None if none."""
    runs = [path for path in Path(pipeline_root).glob("distillation-*") if path.is_dir()]
    return max(runs, key=lambda path: path.stat().st_mtime) if runs else None


def init_local_runner(
    pipeline_root: str | Path, runner: local.SubprocessRunner | local.DockerRunner | None = None
) -> None:
    """Initializes kfp.local to run our pipelines, `dsl.OneOf` artifacts and the service account included.

    Args:
        pipeline_root: Where each run's task outputs are written (one folder per run, one per task).
        runner: How each task runs; None: as a subprocess of this Python environment (no container, no venv).
            `local.DockerRunner(network_mode="host")` runs each in the image its component names, with the
            host's network; it mounts only `pipeline_root` (at the same path), so the data, models and
            registry a task is given must lie under it.
    """
    OrchestratorUtils.get_dag_output_artifacts = classmethod(_dag_output_artifacts)
    placeholder_utils.resolve_individual_placeholder = _resolve_placeholder
    local.init(runner=runner or local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
