"""Loads the quality benchmark's scripts (not an installed package) and fakes the paper's data layout."""

import json
from pathlib import Path

import pytest

from kfp_distill._implementation.scripts import load_module

SCRIPTS = Path(__file__).resolve().parents[1]


def _load_script(name: str):
    """The script `benchmarks/quality/<name>.py` as a module."""
    return load_module(name, SCRIPTS / f"{name}.py")


def _write_dataset(root: Path, name: str, split: str, examples: list[dict], completions: list[str]) -> None:
    """One split in the dsbs layout; the completions in two shards numbered so a text sort misorders them."""
    (root / name / "llm").mkdir(parents=True, exist_ok=True)
    (root / name / f"{name}_{split}.json").write_text("".join(json.dumps(e) + "\n" for e in examples))
    (root / name / "llm" / f"{split}_CoT_10.json").write_text(json.dumps(completions[1:]))
    (root / name / "llm" / f"{split}_CoT_2.json").write_text(json.dumps(completions[:1]))


@pytest.fixture
def write_dataset():
    return _write_dataset


@pytest.fixture(scope="session")
def convert():
    return _load_script("convert")


@pytest.fixture(scope="session")
def report_script():
    return _load_script("report")
@pytest.fixture
def svamp_like(tmp_path) -> Path:
    """A small SVAMP in the dsbs layout: products of two numbers, PaLM right on all but every fifth row."""
    root = tmp_path / "dsbs"
    for split, count in (("train", 24), ("test", 6)):
        examples, completions = [], []
        for i in range(count):
            a, b = i + 2, i % 5 + 3
            examples.append({"input": f"There are {a} boxes with {b} pens each. How many pens?", "label": f"( {a}.0 * {b}.0 )"})
            stated = f"({a} * {b})" if i % 5 else f"({a} + {b})"
            completions.append(f"{a} boxes of {b} pens is {a} * {b} pens. The answer is {stated}.\n\nQ: more?")
        _write_dataset(root, "svamp", split, examples, completions)
    return root




@pytest.fixture(scope="session")
def run_script():
    return _load_script("run")
