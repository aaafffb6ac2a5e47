import json

import pytest

from kfp_distill._implementation.student import student_prompt
from kfp_distill.interfaces.gguf_export import GGUFExportError, describe, export_gguf

PROMPT = student_prompt(
    "Write the arithmetic expression that answers the question.\nQuestion: Ana has 12 boxes with 30 pencils in "
    "each box. How many pencils does Ana have in all?"
)
NEW_TOKENS = 12


def _transformers_greedy(model_dir: str) -> tuple[list[int], list[int]]:
    import torch

    from kfp_distill._implementation.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    model = load_causal_lm(model_dir, dtype=torch.float32).eval()
    encoded = tokenizer(PROMPT, return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**encoded, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)
    prompt_length = encoded["input_ids"].shape[1]
    return encoded["input_ids"][0].tolist(), output[0, prompt_length:].tolist()


def _llama_cpp_greedy(gguf_path) -> tuple[list[int], list[int]]:
    from llama_cpp import Llama

    llama = Llama(model_path=str(gguf_path), n_ctx=256, n_threads=2, seed=0, verbose=False)
    prompt_tokens = llama.tokenize(PROMPT.encode("utf-8"), add_bos=True, special=False)
    generated = []
    # top_k=1 is greedy; the loop stops at NEW_TOKENS only, as transformers does with min_new_tokens.
    for token in llama.generate(prompt_tokens, top_k=1, temp=0.0, repeat_penalty=1.0):
        generated.append(token)
        if len(generated) == NEW_TOKENS:
            break
    return prompt_tokens, generated


def _tensor_bytes(path) -> int:
    import gguf

    return sum(int(tensor.n_bytes) for tensor in gguf.GGUFReader(path).tensors)


@pytest.fixture(scope="module")
def f32_export(varied_student_dir, tmp_path_factory):
    return export_gguf(varied_student_dir, tmp_path_factory.mktemp("gguf") / "student.gguf", output_type="f32")


def test_f32_export_generates_the_same_greedy_tokens_as_transformers(varied_student_dir, f32_export):
    path = f32_export
    facts = describe(path)
    assert facts["architecture"] == "llama"
    # The SmolLM2 tokenizer as transformers converts it from GGUF splits text the GPT-2 way.
    assert facts["pre_tokenizer"] == "gpt-2"
    expected_prompt, expected_tokens = _transformers_greedy(varied_student_dir)
    prompt_tokens, tokens = _llama_cpp_greedy(path)
    assert prompt_tokens == expected_prompt  # same tokenizer, same special-token handling
    assert tokens == expected_tokens


@pytest.mark.parametrize("output_type", ["f16", "q8_0"])
def test_smaller_types_load_in_llama_cpp(varied_student_dir, f32_export, tmp_path, output_type):
    smaller = export_gguf(varied_student_dir, tmp_path / f"{output_type}.gguf", output_type=output_type)

    assert _tensor_bytes(smaller) < 0.6 * _tensor_bytes(f32_export)
    prompt_tokens, tokens = _llama_cpp_greedy(smaller)
    assert len(tokens) == NEW_TOKENS


def test_unsupported_models_are_refused_with_the_reason(varied_student_dir, tmp_path):
    import shutil

    model_dir = tmp_path / "gpt2-like"
    shutil.copytree(varied_student_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (model_dir / "config.json").write_text(json.dumps(config))

    with pytest.raises(GGUFExportError, match="GPT2LMHeadModel.*not supported"):
        export_gguf(model_dir, tmp_path / "out.gguf")
    with pytest.raises(GGUFExportError, match="no config.json"):
        export_gguf(tmp_path, tmp_path / "out.gguf")
    with pytest.raises(GGUFExportError, match="output type"):
        export_gguf(varied_student_dir, tmp_path / "out.gguf", output_type="q4_0")
    assert not (tmp_path / "out.gguf").exists()


def test_the_cli_exports_and_says_what_it_wrote(varied_student_dir, tmp_path, capsys):
    from kfp_distill.interfaces.cli import main

    assert main(["export-gguf", varied_student_dir, str(tmp_path / "out.gguf"), "--type", "q8_0"]) == 0
    assert "q8_0, llama, pre-tokenizer gpt-2" in capsys.readouterr().out
    assert main(["export-gguf", str(tmp_path), str(tmp_path / "bad.gguf")]) == 2
    assert "no config.json" in capsys.readouterr().err
