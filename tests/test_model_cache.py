"""A model conversion or assembly that fails leaves nothing half-written in the model cache, and its own
error is the one raised."""

import shutil

import pytest

from kfp_distill._implementation import models


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KFP_DISTILL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_failed_gguf_assembly_leaves_no_partial_file(empty_cache, monkeypatch):
    def copy_then_fail(source, target, length=0):
        target.write(b"half a model")
        raise OSError("No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", copy_then_fail)
    with pytest.raises(OSError, match="No space left on device"):
        models.resolve_gguf("smollm2-135m-instruct")
    assert [path.name for path in (empty_cache / "gguf").iterdir() if not path.name.endswith(".lock")] == []


def test_a_failed_conversion_leaves_no_partial_folder(empty_cache, monkeypatch, tmp_path, tiny_student_dir):
    from transformers import PreTrainedModel

    from kfp_distill.interfaces.gguf_export import export_gguf

    gguf = export_gguf(tiny_student_dir, tmp_path / "tiny.gguf", output_type="f32")  # converted as catalog GGUFs are

    def save_then_fail(self, directory, **options):
        (directory / "model.safetensors").write_bytes(b"half the weights")
        raise OSError("No space left on device")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", save_then_fail)
    with pytest.raises(OSError, match="No space left on device"):
        models._converted_from_gguf(gguf)
    assert [path.name for path in (empty_cache / "hf").iterdir() if not path.name.endswith(".lock")] == []
