"""Fixtures of the validate-dataset tests: the student's real tokenizer, and the output paths of one run."""

from pathlib import Path

import pytest

from kfp_distill.components.validate_dataset.validation import validate_dataset

STUDENT = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def tokenizer(smollm2_tokenizer):
    # The first load converts the GGUF (about a minute); validate_dataset's own loads then hit the cache.
    return smollm2_tokenizer


class Outputs:
    """The three output paths of one run, under one folder that must stay empty when validation fails."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.train, self.evaluation, self.report = folder / "train.jsonl", folder / "eval.jsonl", folder / "report.md"

    def run(self, dataset_uri: str, evaluation_data_uri: str = "", **limits):
        return validate_dataset(
            dataset_uri, evaluation_data_uri, STUDENT, self.train, self.evaluation, self.report, **limits
        )

    def left_behind(self) -> list[Path]:
        return sorted(self.folder.rglob("*")) if self.folder.exists() else []


@pytest.fixture
def outputs(tmp_path) -> Outputs:
    return Outputs(tmp_path / "out")
