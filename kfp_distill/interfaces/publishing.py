"""Publishes the compiled pipeline to a KFP registry (Artifact Registry), where pipelineJobs' `templateUri` finds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_TEMPLATE = Path("compiled") / "distillation.yaml"


def publish(
    host: str,
    tags: list[str],
    template_path: str | Path = DEFAULT_TEMPLATE,
    auth: Any = None,
) -> list[str]:
    """Uploads a compiled pipeline with `kfp.registry.RegistryClient` and returns its template URIs.

    Args:
        host: The registry, e.g. `https://us-central1-kfp.pkg.dev/PROJECT/REPO` (a KFP-type Artifact
            Registry repository).
        tags: Tags given to the uploaded version, e.g. `["v0.1.0", "latest"]`.
        template_path: The compiled pipeline YAML.
        auth: A `requests` auth object or Google credentials; None lets the client find Google's
            application default credentials for Artifact Registry.

    Returns:
        One template URI per tag, `HOST/PACKAGE/TAG`, to use as a pipelineJobs `templateUri`.

    Raises:
        ValueError: When no tag is given or a tag looks like a version digest.
        FileNotFoundError: When the compiled pipeline is not there (run `kfp-distill compile`).
        requests.HTTPError: When the registry refuses the upload.
    """
    from kfp.registry import RegistryClient

    if not tags:
        raise ValueError("give at least one tag, e.g. v0.1.0")
    for tag in tags:
        if tag.startswith("sha256:"):
            raise ValueError(f"tag {tag!r}: the registry names versions sha256:...; tags must not start so")
    template_path = Path(template_path)
    if not template_path.is_file():
        raise FileNotFoundError(f"{template_path}: no compiled pipeline here; run `kfp-distill compile`")
    host = host.rstrip("/")
    client = RegistryClient(host=host, auth=auth)
    package_name, _version = client.upload_pipeline(file_name=str(template_path), tags=list(tags))
    return [f"{host}/{package_name}/{tag}" for tag in tags]
