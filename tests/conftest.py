"""Fixtures for the serving, GGUF export and pipeline tests."""

from pathlib import Path

import pytest

from kfp_distill._implementation.scripts import load_module

STUB_SERVER = Path(__file__).resolve().parents[1] / "components/generate_rationales/tests/openai_stub_server.py"
# Tests run with --import-mode=importlib, so the server module is loaded by path, under the name
# generate-rationales' tests give it (one module, whichever tests load it first).
_STUB_MODULE = "generate_rationales_openai_stub_server"


@pytest.fixture
def stub_teacher(monkeypatch):
    """generate-rationales' loopback OpenAI-compatible test server, running (`base_url`, recorded `requests`);
    it answers `a + b` sums."""
    stub_server = load_module(_STUB_MODULE, STUB_SERVER)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the pipeline's task subprocesses inherit these
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with stub_server.OpenAIStubServer() as server:
        yield server


SECRET_MANAGER_STAND_IN = Path(__file__).resolve().parent / "secret_manager_stand_in.py"


@pytest.fixture
def secret_manager(tmp_path, monkeypatch):
    """The loopback Secret Manager stand-in, running, reached by Google's client through Application Default
    Credentials whose tokens it hands out; set in the environment, so the pipeline's task subprocesses reach it
    too. Tests add secret versions to its `versions`."""
    from kfp_distill._implementation.teacher_key import SECRET_MANAGER_ENDPOINT_ENV

    stand_in = load_module("secret_manager_stand_in", SECRET_MANAGER_STAND_IN)
    adc_dir = tmp_path / "adc"
    adc_dir.mkdir()
    with stand_in.SecretManagerStandIn({}) as server:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(server.write_adc_file(adc_dir)))
        monkeypatch.setenv(SECRET_MANAGER_ENDPOINT_ENV, server.endpoint)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        yield server
