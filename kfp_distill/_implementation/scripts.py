"""Loading a module by its file path: benchmark scripts and test helpers live outside the package (and pytest
imports tests with --import-mode=importlib), yet scripts and tests share them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_module(name: str, path: Path) -> ModuleType:
    """The module at `path`, registered in `sys.modules` as `name` (dataclasses look their module up there);
    loaded once per process, so every caller shares its classes."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]  # a failed load must not leave a half-run module behind
            raise
    return sys.modules[name]
