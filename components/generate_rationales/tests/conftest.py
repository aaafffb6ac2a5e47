import contextlib
from pathlib import Path

import pytest

from kfp_distill._implementation.scripts import load_module

# Tests run with --import-mode=importlib, so the helper module is loaded by path, under a unique name.
_STUB_SERVER = load_module("generate_rationales_openai_stub_server", Path(__file__).with_name("openai_stub_server.py"))


@pytest.fixture
def stub():
    """The stub server module (StubHTTPError, default_responder, ...)."""
    return _STUB_SERVER


@pytest.fixture
def start_stub_server(stub, monkeypatch):
    """Starts loopback OpenAI-compatible servers (optionally with a responder, a fault plan, ...); stops them
    after the test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # loopback requests bypass any proxy
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with contextlib.ExitStack() as servers:
        yield lambda responder=stub.default_responder, **options: servers.enter_context(
            stub.OpenAIStubServer(responder, **options)
        )


@pytest.fixture
def stub_server(start_stub_server):
    """A running stub server with the default answers."""
    return start_stub_server()
