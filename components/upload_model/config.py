"""The settings upload-model owns: where and as what the distilled model is registered (`setting_field.setting`).

The component's signature and the pipeline's repeat them as literals; `tests/test_settings_owners.py` holds the
copies equal to these.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp_distill._implementation.setting_field import setting


@dataclass
class UploadConfig:
    """Where the distilled model is registered, and what goes with it."""

    model_display_name: str = setting("", help="The registered model's name; empty: `distilled-<student>`.")
    registry_uri: str = setting(
        "", help="An MLflow tracking URI; empty: the embedded SQLite registry under `$KFP_DISTILL_HOME`."
    )
    staging_bucket: str = setting(
        "",
        help="A `gs://` folder for the model when it is not in Cloud Storage yet (with a project).",
        scope="component",
    )
    serving_container_image_uri: str = setting(
        "",
        help="""With a project, the container Vertex AI serves the distilled model with, run as its own contract
        says; it must be in Artifact Registry (`LOCATION-docker.pkg.dev/...`) or Container Registry (`gcr.io/...`),
        which the preflight step checks first. Empty: the kfp-distill image (KFP_DISTILL_IMAGE when compiled)
        running `kfp-distill serve`.""",
    )
    tensorboard_resource_id: str = setting(
        "",
        help="""A Vertex AI TensorBoard instance (same region as the job) to receive the tuning metrics,
        `projects/P/locations/L/tensorboards/ID` or a bare ID in `project`: upload-model copies tune-student's
        scalars into an experiment named after the pipeline job (run `tune-student`). Needs `project`; without one
        nothing is sent.""",
    )
