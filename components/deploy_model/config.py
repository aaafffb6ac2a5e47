"""The settings deploy-model owns: whether and how the registered model is served (`setting_field.setting`).

The component's signature and the pipeline's repeat them as literals (the pipeline with a `deploy_` prefix);
`tests/test_settings_owners.py` holds the copies equal to these.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp_distill._implementation.setting_field import setting


@dataclass
class DeploymentConfig:
    """Whether the registered model is deployed to a Vertex AI endpoint, and on what."""

    deploy_model: bool = setting(
        True,
        help="""With a project, deploy the registered model to the Vertex AI endpoint of its display name
        (created, with encryption_spec_key_name, when there is none; found and reused when there is), served by
        the kfp-distill image (or serving_container_image_uri) as the pipeline job's service account. Without a
        project, or false, nothing is deployed: serve the model with `kfp-distill serve`.""",
    )
    # The cheap default: one small CPU machine. Distilled students are small, and cheap serving is the point.
    machine_type: str = setting("n1-standard-2", help="The endpoint's machine type (a small CPU machine by default).")
    min_replica_count: int = setting(1, help="Replicas the endpoint always runs.")
    max_replica_count: int = setting(1, help="Replicas the endpoint scales up to under load.")
    traffic_percentage: int = setting(
        100,
        help="""The share (0-100) of the endpoint's traffic the new deployment gets; models already deployed there
        share the rest.""",
    )
