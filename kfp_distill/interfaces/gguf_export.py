"""Exports a tuned student (a Hugging Face Llama model directory) to one GGUF file for llama.cpp serving.

Written on the `gguf` package's `GGUFWriter` (the writer llama.cpp's own converter uses) rather than by vendoring
llama.cpp's `convert_hf_to_gguf.py`, which now spans a hundred modules and needs a newer `gguf-py` than the
PyPI release. It covers what kfp-distill's students are, Llama-architecture models with a byte-level BPE
tokenizer (SmolLM2 and its kin), and refuses anything else with a message saying why.

The tensors follow llama.cpp's conversion: names mapped by `gguf.TensorNameMap`, the query and key projections
permuted from Hugging Face's rotate-half layout to llama.cpp's interleaved rotary layout, norms kept in f32.

The tokenizer metadata is the delicate part: llama.cpp splits text before BPE with a pre-tokenizer it knows
by name (`tokenizer.ggml.pre`), and a wrong name silently changes the tokens a prompt becomes. llama.cpp's
converter recognises the name from a hash of the tokens of a check text, keyed by upstream model. The student's
tokenizer may differ from its upstream one (a tokenizer converted from GGUF by transformers splits digits
differently from SmolLM2's original), so here the name is found by trial: each candidate is written into a
vocabulary-only GGUF, llama.cpp tokenizes a check text with it, and the first that gives exactly the student
tokenizer's tokens is kept. No match is an error, never a guess.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

OutputType = Literal["f32", "f16", "q8_0"]
OUTPUT_TYPES: tuple[str, ...] = ("f32", "f16", "q8_0")
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)

# llama.cpp pre-tokenizer names tried in order: the byte-level BPE families small students come from first.
PRE_TOKENIZER_CANDIDATES = (
    "gpt-2", "smollm", "llama-bpe", "qwen2", "qwen35", "deepseek-llm", "deepseek-coder", "starcoder", "falcon",
    "olmo", "stablelm2", "gpt-4o", "tekken", "refact", "command-r", "dbrx", "mpt", "phi-2", "default",
)
# Whitespace runs, digit runs, contractions in both cases, punctuation runs, accents, CJK and emoji: the
# places where pre-tokenizers disagree.
TOKENIZER_CHECK_TEXT = (
    "\n \n\n \t\t \t\n   \n    x\n"
    "Write the arithmetic expression that answers the question.\nQuestion: Ana has 12 boxes with 30 pencils.\n"
    "[label]\n( 12 * 30 ) 7 77 777 7777 77777 1234567 3.14 3..3 -42 1,000,000\n"
    "I've, you're, he'll, she'd, we'VE, THEY'LL 'quoted' ''''\"\"\"``` ...!!!??? ----==== __init__ x+=1;\n"
    "Ça coûte 5 € — naïve café, Straße; нещо на български; 我想在apple工作1314151天～ 🚀🦙 😶\u200d🌫️ end"
)


class GGUFExportError(ValueError):
    """A model that cannot be exported, with the reason."""


def _llama_class():
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ImportError(
            "exporting to GGUF checks the tokenizer with llama.cpp: pip install 'kfp-distill[llamacpp]'"
        ) from None
    return Llama


def _read_config(model_dir: Path):
    from transformers import AutoConfig

    if not (model_dir / "config.json").is_file():
        raise GGUFExportError(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    config = AutoConfig.from_pretrained(model_dir)
    architectures = list(getattr(config, "architectures", None) or [])
    if not set(architectures) & set(SUPPORTED_ARCHITECTURES):
        raise GGUFExportError(
            f"{model_dir}: architecture {architectures or 'unknown'} is not supported; "
            f"the GGUF export handles {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise GGUFExportError(f"{model_dir}: rope_type '{rope['rope_type']}' is not supported (only 'default')")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise GGUFExportError(f"{model_dir}: attention or MLP biases are not supported")
    return config


def _vocabulary(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    """Token strings and llama.cpp token types for every id below vocab_size (unused ids padded)."""
    import gguf

    by_id = {token_id: token for token, token_id in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for token_id in range(vocab_size):
        if token_id not in by_id:
            tokens.append(f"[PAD{token_id}]")
            types.append(gguf.TokenType.UNUSED)
        elif token_id in added:
            tokens.append(by_id[token_id])
            types.append(gguf.TokenType.CONTROL if added[token_id].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[token_id])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _adds_special_tokens(tokenizer) -> dict[str, bool]:
    """Whether the student's tokenizer adds BOS / EOS around a text: llama.cpp must do the same."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    return {
        "bos": tokenizer.bos_token_id is not None and full[:1] == [tokenizer.bos_token_id] and plain[:1] != full[:1],
        "eos": tokenizer.eos_token_id is not None and full[-1:] == [tokenizer.eos_token_id] and plain[-1:] != full[-1:],
    }


def _add_metadata(writer, model_dir: Path, config, tokenizer, pre_tokenizer: str, file_type) -> None:
    """Hyperparameters and tokenizer: everything but the tensors."""
    import gguf

    head_count = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // head_count
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_name(model_dir.resolve().name)
    writer.add_file_type(file_type)
    writer.add_vocab_size(config.vocab_size)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(head_count)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or head_count)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)

    tokens, token_types = _vocabulary(tokenizer, config.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer)
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    # Merges, BOS/EOS/UNK/PAD ids and the chat template, read from tokenizer.json and tokenizer_config.json.
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=config.vocab_size)
    special.add_special_token.update(_adds_special_tokens(tokenizer))
    special.add_to_gguf(writer, quiet=True)


def _write_vocabulary_only(path: Path, model_dir: Path, config, tokenizer, pre_tokenizer: str) -> None:
    import gguf

    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    _add_metadata(writer, model_dir, config, tokenizer, pre_tokenizer, gguf.LlamaFileType.ALL_F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()


def find_pre_tokenizer(model_dir: Path, config, tokenizer) -> str:
    """The first llama.cpp pre-tokenizer that tokenizes the check text exactly as the student's tokenizer does.

    Raises:
        GGUFExportError: No candidate agrees.
    """
    Llama = _llama_class()
    expected = tokenizer(TOKENIZER_CHECK_TEXT, add_special_tokens=False)["input_ids"]
    with tempfile.TemporaryDirectory(prefix="kfp-distill-vocab-") as scratch:
        for candidate in PRE_TOKENIZER_CANDIDATES:
            path = Path(scratch) / f"{candidate}.gguf"
            _write_vocabulary_only(path, model_dir, config, tokenizer, candidate)
            vocabulary = Llama(model_path=str(path), vocab_only=True, verbose=False)
            found = vocabulary.tokenize(TOKENIZER_CHECK_TEXT.encode("utf-8"), add_bos=False, special=False)
            del vocabulary
            if found == expected:
                return candidate
    raise GGUFExportError(
        f"{model_dir}: none of llama.cpp's pre-tokenizers ({', '.join(PRE_TOKENIZER_CANDIDATES)}) tokenizes "
        "like the student's tokenizer; the model cannot be served by llama.cpp with the same prompts"
    )


def _rotary_interleaved(weights, head_count: int):
    """Hugging Face's rotate-half row order of a query/key projection, as llama.cpp's interleaved pairs."""
    rows = weights.shape[0]
    return weights.reshape(head_count, 2, rows // head_count // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _add_tensors(writer, model_dir: Path, config, output_type: OutputType) -> None:
    import gguf
    from safetensors import safe_open

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    head_count = config.num_attention_heads
    kv_head_count = getattr(config, "num_key_value_heads", None) or head_count
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise GGUFExportError(f"{model_dir}: no .safetensors weights")
    for file in files:
        with safe_open(file, framework="pt") as weights:
            for hf_name in weights.keys():
                if hf_name.endswith("rotary_emb.inv_freq"):
                    continue
                if hf_name == "lm_head.weight" and config.tie_word_embeddings:
                    continue  # llama.cpp reuses token_embd when output.weight is absent
                name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise GGUFExportError(f"{file}: tensor '{hf_name}' has no llama.cpp counterpart")
                data = weights.get_tensor(hf_name).float().numpy()
                if hf_name.endswith("q_proj.weight"):
                    data = _rotary_interleaved(data, head_count)
                elif hf_name.endswith("k_proj.weight"):
                    data = _rotary_interleaved(data, kv_head_count)
                _add_tensor(writer, name, data, output_type)


def _add_tensor(writer, name: str, data, output_type: OutputType) -> None:
    import gguf
    import numpy as np

    # Norms and other vectors stay f32, as llama.cpp's converter keeps them.
    if data.ndim < 2 or output_type == "f32":
        writer.add_tensor(name, data.astype(np.float32))
    elif output_type == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
        quantized = gguf.quants.quantize(data.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
        writer.add_tensor(name, quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    else:  # f16, and q8_0 rows that do not split into 32-value blocks
        writer.add_tensor(name, data.astype(np.float16))


def export_gguf(model_dir: str | os.PathLike, output_path: str | os.PathLike, output_type: OutputType = "f16") -> Path:
    """Writes a tuned student as one GGUF file (weights, hyperparameters, tokenizer) for llama.cpp.

    Args:
        model_dir: A Hugging Face model directory (tune-student's output: safetensors, config, tokenizer).
        output_path: The `.gguf` file to write (replaced whole, never left half-written).
        output_type: `f16` (default), `f32` (exact), or `q8_0` (8-bit, about half f16's size).

    Returns:
        The written file's path.

    Raises:
        GGUFExportError: Not a supported model, or no llama.cpp pre-tokenizer matches its tokenizer.
    """
    import gguf

    from kfp_distill._implementation.models import load_tokenizer

    if output_type not in OUTPUT_TYPES:
        raise GGUFExportError(f"output type '{output_type}' is not one of {', '.join(OUTPUT_TYPES)}")
    model_dir, output_path = Path(model_dir), Path(output_path)
    config = _read_config(model_dir)
    tokenizer = load_tokenizer(str(model_dir))
    if type(tokenizer).__name__ not in ("TokenizersBackend", "PreTrainedTokenizerFast", "GPT2TokenizerFast"):
        raise GGUFExportError(f"{model_dir}: tokenizer {type(tokenizer).__name__} is not a byte-level BPE tokenizer")
    pre_tokenizer = find_pre_tokenizer(model_dir, config, tokenizer)
    file_type = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[output_type]

    output_path.parent.mkdir(parents=True, exist_ok=True)
    staging = output_path.with_name(f".{output_path.name}.partial")
    writer = gguf.GGUFWriter(staging, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        _add_metadata(writer, model_dir, config, tokenizer, pre_tokenizer, file_type)
        _add_tensors(writer, model_dir, config, output_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(staging, output_path)
    finally:
        staging.unlink(missing_ok=True)
    return output_path


def describe(path: str | os.PathLike) -> dict[str, str]:
    """A few facts about an exported file, read back from it (architecture, pre-tokenizer, size)."""
    import gguf

    reader = gguf.GGUFReader(path)

    def text(key: str) -> str:
        field = reader.get_field(key)
        return field.contents() if field is not None else ""

    return {
        "architecture": text("general.architecture"),
        "pre_tokenizer": text("tokenizer.ggml.pre"),
        "tensors": str(len(reader.tensors)),
        "size_mb": f"{Path(path).stat().st_size / 1e6:.1f}",
    }
