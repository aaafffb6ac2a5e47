"""Deploying a registered model to a Vertex AI endpoint named after it, as Vertex AI's distillation does.

Every call goes through the Vertex AI SDK with the SDK's own settings (application-default credentials and the
model's regional endpoint, unless `aiplatform.init(...)` set others before: the tests' loopback server).
"""

from __future__ import annotations

from kfp_distill._implementation.vertex_filters import display_name_filter

from .config import DeploymentConfig


def deploy_to_endpoint(
    model_resource_name: str,
    machine_type: str = DeploymentConfig.machine_type,
    min_replica_count: int = DeploymentConfig.min_replica_count,
    max_replica_count: int = DeploymentConfig.max_replica_count,
    traffic_percentage: int = DeploymentConfig.traffic_percentage,
    encryption_spec_key_name: str = "",
    service_account: str = "",
) -> str:
    """Deploys a Vertex AI model to the endpoint of its display name, in its project and region.

    The newest endpoint of that name is reused; without one, one is created (with the CMEK key, if given).

    Args:
        model_resource_name: `projects/P/locations/L/models/ID[@VERSION]`, as upload-model returns it.
        machine_type: The serving machine type.
        min_replica_count: Replicas always running.
        max_replica_count: Replicas under load at most.
        traffic_percentage: The share of the endpoint's traffic the new deployment gets (0-100); the models
            already deployed there share the rest in their current proportions.
        encryption_spec_key_name: A Cloud KMS key for a newly created endpoint (CMEK).
        service_account: The service account the serving container runs as; empty: Vertex AI's default.

    Returns:
        The endpoint's resource name, `projects/P/locations/L/endpoints/ID`.
    """
    from google.cloud import aiplatform

    model = aiplatform.Model(model_resource_name)
    project, location = model.project, model.location
    found = aiplatform.Endpoint.list(
        filter=display_name_filter(model.display_name),
        order_by="create_time desc",
        project=project,
        location=location,
    )
    endpoint = found[0] if found else aiplatform.Endpoint.create(
        display_name=model.display_name,
        encryption_spec_key_name=encryption_spec_key_name or None,
        project=project,
        location=location,
    )
    model.deploy(
        endpoint=endpoint,
        deployed_model_display_name=model.display_name,
        machine_type=machine_type,
        min_replica_count=min_replica_count,
        max_replica_count=max_replica_count,
        traffic_percentage=traffic_percentage,
        service_account=service_account or None,
        encryption_spec_key_name=encryption_spec_key_name or None,
    )
    return endpoint.resource_name
