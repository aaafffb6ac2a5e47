"""What the component image holds, run inside it by tests/test_container_route.py (`python -c`).

Argument: a JSON list of the modules the source tree's package has. Prints one JSON object:
  files            installed path (below site-packages) -> sha256, for every file of the kfp_distill package
  import_errors    module -> error, for every listed module that does not import
  library_errors   shared library of llama_cpp -> error, for every one that does not load
  catalog_models   catalog model -> "ok" or the error, for every catalog model whose wheels are installed
"""

import ctypes
import hashlib
import importlib
import importlib.metadata
import json
import sys
import traceback
from pathlib import Path


def _error(exception: BaseException) -> str:
    return "".join(traceback.format_exception_only(exception)).strip()


def _installed_files() -> dict[str, str]:
    import kfp_distill

    site = Path(kfp_distill.__file__).parent.parent
    return {
        str(path.relative_to(site)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((site / "kfp_distill").rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def _import_errors(modules: list[str]) -> dict[str, str]:
    errors = {}
    for module in modules:
        try:
            importlib.import_module(module)
        except BaseException as exception:  # a module that exits or aborts on import is broken too
            errors[module] = _error(exception)
    return errors


def _library_errors() -> dict[str, str]:
    import llama_cpp

    errors = {}
    libraries = sorted((Path(llama_cpp.__file__).parent / "lib").glob("*.so*"))
    if not libraries:
        errors["llama_cpp/lib"] = "no shared library"
    for library in libraries:
        try:
            ctypes.CDLL(str(library))
        except OSError as exception:
            errors[library.name] = _error(exception)
    return errors


def _catalog_models() -> dict[str, str]:
    """Every catalog model whose wheels are installed: joined, checked against its sha256, loaded by llama.cpp."""
    from llama_cpp import Llama

    from kfp_distill._implementation.models import CATALOG, resolve_gguf

    results = {}
    for name, model in CATALOG.items():
        try:
            importlib.metadata.distribution(model.distributions[0])
        except importlib.metadata.PackageNotFoundError:
            continue
        try:
            llm = Llama(model_path=str(resolve_gguf(name)), n_ctx=64, verbose=False)
            results[name] = "ok" if llm.tokenize(b"2 + 3") else "tokenized to nothing"
        except Exception as exception:
            results[name] = _error(exception)
    return results


if __name__ == "__main__":
    print(json.dumps({
        "files": _installed_files(),
        "import_errors": _import_errors(json.loads(sys.argv[1])),
        "library_errors": _library_errors(),
        "catalog_models": _catalog_models(),
    }))
