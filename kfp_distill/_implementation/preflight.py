"""Checks made before any money is spent: by `kfp-distill submit` before it sends a job, and by the preflight step,
the pipeline's first, before the data is read or any teacher request or tuning job is made.

Each problem has its own message and all are reported at once. A setting that only applies with a project
(Vertex AI) is a note when there is no project, not a refusal: nothing is sent to Google Cloud then (a Vertex AI
teacher, which cannot run at all without one, is refused).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kfp_distill._implementation.deploy_gate import min_share_problem
from kfp_distill._implementation.retired_models import retired_student_message, retired_teacher_message
from kfp_distill._implementation.teacher_key import secret_version_problem
from kfp_distill._implementation.teacher_reference import parse_teacher_reference

# The settings checked, as the pipeline (and the preflight step) name them.
SETTINGS = (
    "project",
    "teacher_model_reference",
    "student_model_reference",
    "teacher_api_key_secret",
    "accelerator_type",
    "tensorboard_resource_id",
    "serving_container_image_uri",
    "kfp_distill_image_uri",
    "deploy_model",
    "deploy_machine_type",
    "deploy_min_replica_count",
    "deploy_max_replica_count",
    "deploy_traffic_percentage",
    "deploy_min_share_of_teacher",
)
# Vertex AI pulls serving containers from Artifact Registry (LOCATION-docker.pkg.dev) and Container Registry
# (gcr.io and its regional hosts) only.
VERTEX_PULLABLE_IMAGE = re.compile(r"^(?:[a-z0-9-]+-docker\.pkg\.dev|(?:[a-z]+\.)?gcr\.io)/")
# Compute Engine machine types: family, then class and size (n1-standard-2, g2-standard-8, a2-highgpu-1g).
MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)+$")


@dataclass
class Preflight:
    """What the checks found.

    Attributes:
        problems: Reasons to refuse the job, one message each.
        notes: Settings that will have no effect as given (they only apply with a project).
    """

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class PreflightError(ValueError):
    """A job refused before anything was spent; `problems` lists every reason."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"{len(problems)} problems found before anything was spent:\n- " + "\n- ".join(problems)
            if len(problems) > 1
            else f"refused before anything was spent: {problems[0]}"
        )


def preflight(settings: Mapping[str, Any]) -> Preflight:
    """Checks a job's settings.

    Args:
        settings: Values by the names in `SETTINGS` (a missing one counts as empty, `deploy_model` as false,
            `accelerator_type` as `GPU`).
            The serving image is `serving_container_image_uri`, else `kfp_distill_image_uri` (our image, the
            serving container by default).

    Returns:
        The problems and notes, in the order of `SETTINGS`.
    """
    text = {name: str(settings.get(name) or "").strip() for name in SETTINGS}
    found = Preflight()
    for message in (
        teacher_problem(text["teacher_model_reference"], text["project"]),
        retired_student_message(text["student_model_reference"]),
        secret_version_problem(text["teacher_api_key_secret"]),
    ):
        if message:
            found.problems.append(message)
    problem = accelerator_type_problem(str(settings.get("accelerator_type", "GPU")))
    if problem:
        found.problems.append(problem)
    # Without a project nothing goes to Vertex AI: what would be refused there is only worth a note.
    has_project = bool(text["project"])

    def refuse_with_project(problem: str, without: str) -> None:
        if has_project:
            found.problems.append(problem)
        else:
            found.notes.append(f"without a project {without}; with one: {problem}")

    if text["tensorboard_resource_id"] and not has_project:
        found.notes.append(
            "tensorboard_resource_id is set but project is empty: the tuning metrics stay in the run's own "
            "TensorBoard logs and are sent to no Vertex AI TensorBoard"
        )
    image = text["serving_container_image_uri"] or text["kfp_distill_image_uri"]
    problem = serving_image_problem(image, ours=not text["serving_container_image_uri"]) if image else None
    if problem:
        refuse_with_project(problem, "nothing is served on Vertex AI")
    if settings.get("deploy_model"):
        for problem in _endpoint_problems(settings):
            refuse_with_project(problem, "nothing is deployed")
    # Refused with or without a project: evaluate, after tuning, would fail on it.
    problem = min_share_problem(float(settings.get("deploy_min_share_of_teacher") or 0.0))
    if problem:
        found.problems.append(problem)
    return found


def teacher_problem(teacher_model_reference: str, project: str) -> str | None:
    """Why the teacher cannot be asked, or None: a reference that names no teacher, a retired PaLM model, or a
    Vertex AI model without a project (it cannot run at all without one). An empty reference is left unchecked:
    one a request leaves out, or another step gives at run time, is reported as such."""
    if not teacher_model_reference:
        return None
    try:
        teacher = parse_teacher_reference(teacher_model_reference)
    except ValueError as error:
        return str(error)
    return retired_teacher_message(teacher) or teacher.project_problem(project)


def accelerator_type_problem(accelerator_type: str) -> str | None:
    """Why the tuning step cannot use `accelerator_type`, or None for `GPU`, the one supported today.

    `TPU`, which the contract names, is not supported yet. Anything else is refused too, `gpu` included: with a
    project the pipeline tunes on its GPU machine whatever value this lets through, so only the contract's exact
    spelling passes.
    """
    if accelerator_type == "GPU":
        return None
    if accelerator_type == "TPU":
        return (
            "accelerator_type 'TPU' is not supported yet: the student is tuned on GPUs (on Vertex AI, one machine "
            "with 8 x NVIDIA A100 80GB); set accelerator_type to 'GPU'"
        )
    return f"accelerator_type must be 'GPU' or 'TPU' ('TPU' is not supported yet), got {accelerator_type!r}"


def serving_image_problem(image: str, ours: bool) -> str | None:
    """Why Vertex AI cannot pull a serving image, or None when it can.

    Args:
        image: The image's name.
        ours: Whether it is the kfp-distill image (named by KFP_DISTILL_IMAGE at compile time).
    """
    if VERTEX_PULLABLE_IMAGE.match(image):
        return None
    fix = (
        "push the kfp-distill image there and compile with KFP_DISTILL_IMAGE set to its name"
        if ours
        else "push it there, or leave serving_container_image_uri empty to serve with the kfp-distill image"
    )
    return (
        f"Vertex AI cannot pull the serving image '{image}': it pulls serving containers only from Artifact "
        f"Registry (LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE) or Container Registry (gcr.io/PROJECT/IMAGE); "
        f"{fix}"
    )


def _endpoint_problems(settings: Mapping[str, Any]) -> list[str]:
    """What is wrong with the deploy settings (the endpoint's machine, replicas and traffic)."""
    problems = []
    machine_type = str(settings.get("deploy_machine_type") or "")
    if not MACHINE_TYPE.match(machine_type):
        problems.append(
            f"deploy_machine_type '{machine_type}' is not a machine type; name one Vertex AI serves on, "
            "e.g. n1-standard-2 (the default) or g2-standard-8"
        )
    minimum, maximum = settings.get("deploy_min_replica_count", 1), settings.get("deploy_max_replica_count", 1)
    traffic = settings.get("deploy_traffic_percentage", 100)
    if minimum < 1:
        problems.append(f"deploy_min_replica_count is {minimum}; an endpoint runs at least 1 replica")
    if maximum < minimum:
        problems.append(f"deploy_max_replica_count is {maximum}, below deploy_min_replica_count ({minimum})")
    if not 0 <= traffic <= 100:
        problems.append(f"deploy_traffic_percentage is {traffic}; a share of the endpoint's traffic is 0 to 100")
    return problems
