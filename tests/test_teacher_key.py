"""The teacher's API key at run time: Secret Manager through Google's real client against a loopback stand-in,
the environment, and generate-rationales handing either to a loopback teacher that demands the key."""

import os

import pytest

from kfp_distill._implementation.teacher_key import (
    SECRET_MANAGER_ENDPOINT_ENV,
    TEACHER_API_KEY_ENV,
    TeacherKeyError,
    read_secret_version,
    secret_manager_endpoint,
    secret_version_problem,
    teacher_api_key_from_secret,
)

KEY = "sk-teacher-key-0123456789"
SECRET = "projects/my-project/secrets/teacher-api-key"


@pytest.mark.parametrize(
    "name",
    [
        "",
        f"{SECRET}/versions/latest",
        f"{SECRET}/versions/3",
        "projects/123456789012/secrets/k/versions/1",
        "projects/example.com:my-project/secrets/teacher_key-2/versions/latest",
        "projects/my-project/locations/us-east1/secrets/teacher-api-key/versions/latest",
    ],
)
def test_secret_version_names_in_secret_managers_forms_pass(name):
    assert secret_version_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        SECRET,  # no version
        "my-project/secrets/teacher-api-key/versions/latest",
        f"{SECRET}/versions/0",
        f"{SECRET}/versions/latest/",
        "projects/my-project/secrets/teacher api key/versions/1",
        "sk-proj-a-key-pasted-here-by-mistake",
    ],
)
def test_a_malformed_secret_version_name_is_refused_without_repeating_it(name):
    problem = secret_version_problem(name)
    assert problem.startswith("teacher_api_key_secret is not a Secret Manager secret version name")
    assert "projects/PROJECT/secrets/SECRET/versions/VERSION" in problem
    assert name not in problem


def test_a_regional_secret_is_read_from_its_regional_endpoint(monkeypatch):
    monkeypatch.delenv(SECRET_MANAGER_ENDPOINT_ENV, raising=False)
    assert secret_manager_endpoint(f"{SECRET}/versions/1") is None  # the client's global default
    regional = "projects/my-project/locations/europe-west4/secrets/k/versions/1"
    assert secret_manager_endpoint(regional) == "secretmanager.europe-west4.rep.googleapis.com"
    monkeypatch.setenv(SECRET_MANAGER_ENDPOINT_ENV, "10.0.0.5:443")
    assert secret_manager_endpoint(regional) == "10.0.0.5:443"


def test_the_key_is_read_with_googles_client_and_the_jobs_credentials(secret_manager):
    secret_manager.versions.update({f"{SECRET}/versions/1": b"old-key", f"{SECRET}/versions/2": f"{KEY}\n".encode()})

    assert read_secret_version(f"{SECRET}/versions/latest") == KEY  # the newest, its line end dropped
    assert read_secret_version(f"{SECRET}/versions/1") == "old-key"
    paths = [path.split("?")[0] for _, path, _ in secret_manager.requests]
    assert paths == [f"/v1/{SECRET}/versions/latest:access", f"/v1/{SECRET}/versions/1:access"]
    # Both reads carried a token the service account of GOOGLE_APPLICATION_CREDENTIALS signed.
    assert all(secret_manager.authenticated(authorization) for _, _, authorization in secret_manager.requests)
    assert not secret_manager.authenticated("Bearer someone-else")


def test_a_missing_or_forbidden_secret_names_the_secret_and_the_role_it_needs(secret_manager):
    secret_manager.versions[f"{SECRET}/versions/1"] = KEY.encode()
    secret_manager.denied.add(f"{SECRET}/versions/1")
    for name, reason in ((f"{SECRET}/versions/1", "denied"), ("projects/my-project/secrets/gone/versions/1", "not found")):
        with pytest.raises(TeacherKeyError) as raised:
            read_secret_version(name)
        message = str(raised.value)
        assert name in message and reason in message and "roles/secretmanager.secretAccessor" in message
        assert KEY not in message


def test_a_payload_that_does_not_match_its_checksum_is_refused(secret_manager):
    secret_manager.versions[f"{SECRET}/versions/1"] = KEY.encode()
    secret_manager.damaged = True
    with pytest.raises(TeacherKeyError, match="CRC32C"):
        read_secret_version(f"{SECRET}/versions/1")


def test_the_key_is_in_the_teachers_environment_only_inside_the_block(secret_manager, monkeypatch):
    secret_manager.versions[f"{SECRET}/versions/1"] = KEY.encode()
    monkeypatch.setenv(TEACHER_API_KEY_ENV, "from-a-kubernetes-secret")
    with teacher_api_key_from_secret(f"{SECRET}/versions/1"):
        assert os.environ[TEACHER_API_KEY_ENV] == KEY  # the named secret wins
    assert os.environ[TEACHER_API_KEY_ENV] == "from-a-kubernetes-secret"
    with teacher_api_key_from_secret(""):
        assert os.environ[TEACHER_API_KEY_ENV] == "from-a-kubernetes-secret"
