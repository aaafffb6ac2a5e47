"""Checks made before any money is spent: by `kfp-distill submit` before it sends a job, and by validate-dataset,
the first step, before any teacher request or tuning job.

Each problem has its own message and all are reported at once. A setting that only applies with a project
(Vertex AI) is a note when there is no project, not a refusal: nothing is sent to Google Cloud then.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kfp_distill._implementation.retired_models import retired_student_message, retired_teacher_message
from kfp_distill._implementation.teacher_key import secret_version_problem

# The settings checked, as the pipeline (and validate-dataset) name them.
SETTINGS = (
    "project",
    "teacher_model_reference",
    "student_model_reference",
    "teacher_api_key_secret",
    "tensorboard_resource_id",
    "serving_image",
)
# Vertex AI pulls serving containers from Artifact Registry (LOCATION-docker.pkg.dev) and Container Registry
# (gcr.io and its regional hosts) only.
VERTEX_PULLABLE_IMAGE = re.compile(r"^(?:[a-z0-9-]+-docker\.pkg\.dev|(?:[a-z]+\.)?gcr\.io)/")


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
        settings: Values by the names in `SETTINGS` (missing ones count as empty); `serving_image` is the
            container Vertex AI is to serve the distilled model with.

    Returns:
        The problems and notes, in the order of `SETTINGS`.
    """
    value = {name: str(settings.get(name) or "").strip() for name in SETTINGS}
    found = Preflight()
    for message in (
        retired_teacher_message(value["teacher_model_reference"]),
        retired_student_message(value["student_model_reference"]),
        secret_version_problem(value["teacher_api_key_secret"]),
    ):
        if message:
            found.problems.append(message)
    has_project = bool(value["project"])
    if value["tensorboard_resource_id"] and not has_project:
        found.notes.append(
            "tensorboard_resource_id is set but project is empty: the tuning metrics stay in the run's own "
            "TensorBoard logs and are sent to no Vertex AI TensorBoard"
        )
    image = value["serving_image"]
    if image and not VERTEX_PULLABLE_IMAGE.match(image):
        where = (
            f"Vertex AI cannot pull the serving image '{image}': it takes serving containers only from Artifact "
            "Registry (LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE) or Container Registry (gcr.io/PROJECT/IMAGE); "
            "push the image there and compile with KFP_DISTILL_IMAGE set to its name"
        )
        if has_project:
            found.problems.append(where)
        else:
            found.notes.append(f"without a project nothing is served on Vertex AI; with one: {where}")
    return found


def check_before_spending(settings: Mapping[str, Any]) -> list[str]:
    """Refuses a job with any problem (`preflight`), all named at once.

    Args:
        settings: See `preflight`.

    Returns:
        The notes, for the caller to show.

    Raises:
        PreflightError: Listing every problem.
    """
    found = preflight(settings)
    if found.problems:
        raise PreflightError(found.problems)
    return found.notes
