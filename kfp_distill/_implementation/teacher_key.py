"""A hosted teacher's API key, reached at run time from the platform's secret store, never from a parameter value.

Pipeline parameters are written into the compiled YAML and the job's record, so the key travels another way
on each platform; every way ends in the environment variable the OpenAI-compatible teacher reads:

  * Vertex AI: `teacher_api_key_secret` names a Secret Manager secret version, read here with Google's client
    and the job's service account (Application Default Credentials);
  * Kubeflow: a Kubernetes secret mounted as `KFP_DISTILL_TEACHER_API_KEY` (kfp-kubernetes, in the pipeline);
  * locally: the environment, as it is.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

TEACHER_API_KEY_ENV = "KFP_DISTILL_TEACHER_API_KEY"
# Another Secret Manager endpoint (`host[:port]`, or `http://host:port` for a stand-in), e.g. a Private Service
# Connect address; unset: Google's, regional for a regional secret.
SECRET_MANAGER_ENDPOINT_ENV = "KFP_DISTILL_SECRET_MANAGER_ENDPOINT"
SECRET_ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"
TIMEOUT_S = 60.0

# projects/PROJECT[/locations/LOCATION]/secrets/SECRET/versions/VERSION: a project id (a domain-scoped one too) or
# number, Secret Manager's secret id alphabet, and a version number or `latest`.
_PROJECT = r"(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+"
SECRET_VERSION_NAME = re.compile(
    rf"^projects/(?:{_PROJECT})(?:/locations/(?P<location>[a-z0-9-]+))?"
    r"/secrets/[A-Za-z0-9_-]{1,255}/versions/(?:latest|[1-9][0-9]*)$"
)
SECRET_VERSION_FORM = (
    "projects/PROJECT/secrets/SECRET/versions/VERSION (VERSION a number or 'latest'; a regional secret has "
    "/locations/LOCATION after the project), e.g. projects/acme-ml/secrets/teacher-key/versions/latest"
)


class TeacherKeyError(RuntimeError):
    """The teacher's key could not be read from Secret Manager; the message names the secret, never its value."""


def secret_version_problem(name: str) -> str | None:
    """What is wrong with a `teacher_api_key_secret` value, or None when it names a secret version (or is empty).

    The value itself is not repeated: a key pasted here by mistake must not reach a log as well.
    """
    if not name or SECRET_VERSION_NAME.match(name):
        return None
    return f"teacher_api_key_secret is not a Secret Manager secret version name; write {SECRET_VERSION_FORM}"


def secret_manager_endpoint(name: str) -> str | None:
    """The endpoint that serves a secret: the override, a regional secret's region, else None (Google's global)."""
    override = os.environ.get(SECRET_MANAGER_ENDPOINT_ENV, "").strip()
    if override:
        return override
    matched = SECRET_VERSION_NAME.match(name)
    location = matched["location"] if matched else None
    return f"secretmanager.{location}.rep.googleapis.com" if location else None


def read_secret_version(name: str, credentials=None) -> str:
    """Reads a secret version's payload with Google's Secret Manager client (REST transport).

    Args:
        name: `projects/P/secrets/S/versions/V` (or the regional form).
        credentials: `google.auth` credentials; None: Application Default Credentials (on Vertex AI Pipelines,
            the job's service account).

    Returns:
        The payload as text, without the line end `gcloud secrets versions add --data-file=-` keeps.

    Raises:
        ValueError: A malformed name.
        TeacherKeyError: The secret is missing, not readable by these credentials, or arrived damaged.
    """
    from google.api_core import exceptions
    from google.api_core.client_options import ClientOptions
    from google.cloud import secretmanager

    problem = secret_version_problem(name)
    if problem or not name:
        raise ValueError(problem or "teacher_api_key_secret is empty")
    endpoint = secret_manager_endpoint(name)
    client = secretmanager.SecretManagerServiceClient(
        credentials=credentials,
        transport="rest",
        client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None,
    )
    try:
        response = client.access_secret_version(name=name, timeout=TIMEOUT_S)
    except (exceptions.NotFound, exceptions.Forbidden, exceptions.Unauthorized) as error:
        raise TeacherKeyError(
            f"cannot read the teacher's API key from Secret Manager secret version {name}: {error.message}. "
            f"The secret version must exist and the job's service account needs {SECRET_ACCESSOR_ROLE} on it"
        ) from None  # the client's own exception carries the response, which is not repeated
    except exceptions.GoogleAPIError as error:
        raise TeacherKeyError(f"cannot read Secret Manager secret version {name}: {error}") from None
    payload = response.payload
    if "data_crc32c" in payload and _crc32c(payload.data) != payload.data_crc32c:
        raise TeacherKeyError(f"Secret Manager secret version {name} arrived damaged (its CRC32C does not match)")
    return payload.data.decode("utf-8").strip()


def _crc32c(data: bytes) -> int:
    import google_crc32c

    return int(google_crc32c.Checksum(data).hexdigest(), 16)


@contextlib.contextmanager
def teacher_api_key_from_secret(name: str) -> Iterator[None]:
    """Puts the key a secret version holds where the teacher reads it, for the duration of the block.

    Args:
        name: A secret version (see `read_secret_version`); empty: the environment is left as it is.
    """
    if not name:
        yield
        return
    previous = os.environ.get(TEACHER_API_KEY_ENV)
    os.environ[TEACHER_API_KEY_ENV] = read_secret_version(name)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(TEACHER_API_KEY_ENV, None)
        else:
            os.environ[TEACHER_API_KEY_ENV] = previous
