"""The deploy-model component: deploys the registered student to a Vertex AI endpoint named after it."""

from typing import NamedTuple

from kfp import dsl

from kfp_distill._implementation.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy_registered_model(
    model_resource_name: str,
    project: str = "",
    deploy_model: bool = True,
    machine_type: str = "n1-standard-2",
    min_replica_count: int = 1,
    max_replica_count: int = 1,
    traffic_percentage: int = 100,
    encryption_spec_key_name: str = "",
    service_account: str = "",
    gate_decision: str = "off",
    gate_reason: str = "",
) -> NamedTuple("Outputs", [("endpoint_resource_name", str)]):
    """Deploys the model upload-model registered in Vertex AI to the endpoint of its display name (reused if it
    exists), in the model's project and region, when the deploy gate lets it. Without a project nothing is
    deployed: it says how to serve.

    Args:
        model_resource_name: upload-model's output.
        project: The Google Cloud project; empty: nothing is deployed.
        deploy_model: With a project, deploy the registered model to the Vertex AI endpoint of its display name
            (created, with encryption_spec_key_name, when there is none; found and reused when there is), served by
            the kfp-distill image (or serving_container_image_uri) as the pipeline job's service account. Without a
            project, or false, nothing is deployed: serve the model with `kfp-distill serve`.
        machine_type: The endpoint's machine type (a small CPU machine by default).
        min_replica_count: Replicas the endpoint always runs.
        max_replica_count: Replicas the endpoint scales up to under load.
        traffic_percentage: The share (0-100) of the endpoint's traffic the new deployment gets; models already
            deployed there share the rest.
        encryption_spec_key_name: A Cloud KMS key for a newly created endpoint (CMEK).
        service_account: The service account the serving container runs as; empty: Vertex AI's default.
        gate_decision: The deploy gate's decision (evaluate's output): only `passed` and `off` (no gate) are
            deployed; `failed` and `not judged` are left registered, not deployed.
        gate_reason: Why the gate decided so, printed when nothing is deployed.

    Returns:
        endpoint_resource_name: `projects/P/locations/L/endpoints/ID`; empty when nothing was deployed.
    """
    from collections import namedtuple

    from kfp_distill._implementation.deploy_gate import deploys

    outputs = namedtuple("Outputs", ["endpoint_resource_name"])
    if not deploys(gate_decision):
        print(f"not deployed: the deploy gate decided {gate_decision!r} ({gate_reason}); {model_resource_name} is "
              "registered")
        return outputs("")
    if not project:
        # Imported here: the task runs this function's source alone, without the module's names.
        from kfp_distill._implementation.settings import IMAGE

        print(f"no project: nothing deployed. Serve the model with `kfp-distill serve {model_resource_name}` "
              f"(OpenAI-compatible and Vertex AI prediction routes), here or in the image {IMAGE}")
        return outputs("")
    if not deploy_model:
        print("deploy_model is false: the model is registered, not deployed")
        return outputs("")
    from kfp_distill.components.deploy_model.deployment import deploy_to_endpoint

    return outputs(
        deploy_to_endpoint(
            model_resource_name,
            machine_type=machine_type,
            min_replica_count=min_replica_count,
            max_replica_count=max_replica_count,
            traffic_percentage=traffic_percentage,
            encryption_spec_key_name=encryption_spec_key_name,
            service_account=service_account,
        )
    )


# The step keeps its folder's name ("deploy-model": the pipeline task, the compiled component, the docs), while the
# function is named apart from the `deploy_model` setting it takes, which the pipeline passes on under that name.
deploy_registered_model.component_spec.name = "deploy-model"
