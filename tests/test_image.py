"""The component image's recipe: `make image` tags what the components name, and the Dockerfile pins what
pyproject.toml pins. (Building the image needs a Docker daemon; these checks do not.)"""

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from kfp_distill import __version__

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _make_image_commands(environment: dict[str, str]) -> str:
    return subprocess.run(
        ["make", "--dry-run", "image"], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_image_tags_the_image_the_components_name():
    overrides = ("KFP_DISTILL_IMAGE", "IMAGE", "DOCKER_BUILD_ARGS")
    environment = {key: value for key, value in os.environ.items() if key not in overrides}
    commands = _make_image_commands(environment)
    assert re.search(rf"^docker build +--tag ghcr\.io/kfp-distill/kfp-distill:{re.escape(__version__)} \.$", commands, re.M)

    custom = "us-docker.pkg.dev/test-project/images/kfp-distill:dev"
    commands = _make_image_commands({**environment, "KFP_DISTILL_IMAGE": custom})
    assert f"--tag {custom} ." in commands


def test_dockerfile_pins_its_base_and_matches_pyproject():
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, flags=re.M)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+|python@sha256:[0-9a-f]{64}", base), base

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (llama_pin,) = pyproject["project"]["optional-dependencies"]["llamacpp"]
    assert f"ARG LLAMA_CPP_PYTHON={llama_pin}" in DOCKERFILE
    makefile_torch = re.search(r"^TORCH \?= (\S+)$", (ROOT / "Makefile").read_text(), flags=re.M)[1]
    assert f"ARG TORCH={makefile_torch}" in DOCKERFILE, "the image and `make install` use one torch version"


def test_the_image_compiles_llama_cpp_as_the_makefile_does():
    """Both avoid -march=native: a native build crashed in ggml's AMX kernels on an AMX machine."""
    (image_flags,) = re.findall(r'^ARG LLAMA_CMAKE_ARGS="([^"]*)"$', DOCKERFILE, flags=re.M)
    (make_flags,) = re.findall(r"^LLAMA_CMAKE_ARGS \?= (.*)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert image_flags == make_flags and "-DGGML_NATIVE=OFF" in make_flags


def test_pyproject_lists_every_package_the_wheel_must_carry():
    # The image installs a wheel: a package folder missing from the explicit list is missing there (an editable
    # install hides it).
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join((package, *init.parent.relative_to(ROOT / folder).parts))
        for package, folder in setuptools["package-dir"].items()
        for init in (ROOT / folder).rglob("__init__.py")
        if not {"tests", "__pycache__"} & set(init.relative_to(ROOT / folder).parts)
    }
    assert sorted(on_disk - set(setuptools["packages"])) == []
