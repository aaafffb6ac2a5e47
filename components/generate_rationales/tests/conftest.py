import contextlib
import importlib.util
import sys
from pathlib import Path

import pytest

# Tests run with --import-mode=importlib, so the helper module is loaded by path, under a unique name.
_NAME = "generate_rationales_openai_stub_server"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, Path(__file__).with_name("openai_stub_server.py"))
    sys.modules[_NAME] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules[_NAME])


@pytest.fixture
def stub():
    """The stub server module (StubHTTPError, default_responder, ...)."""
    return sys.modules[_NAME]


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
