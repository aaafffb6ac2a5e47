"""What speeds the step up keeps the step the same (gradient accumulation, length grouping); LoRA defaults; no remote code."""

import os
import platform

import pytest
import torch

from kfp_distill._implementation.models import load_causal_lm
from kfp_distill.components.tune_student.config import TuningConfig
from kfp_distill.components.tune_student.data import (
    SeededLengthGroupedSampler,
    packed_length,
    prepare_training_examples,
)
from kfp_distill.components.tune_student import trainer as trainer_module
from kfp_distill.components.tune_student.memory import GiveFreedMemoryBack, activation_bytes, example_activation_bytes
from kfp_distill.components.tune_student.trainer import bf16_supported, build_trainer


def one_step(model_dir, tokenizer, rows, tmp_path, **settings):
    torch.manual_seed(0)
    model = load_causal_lm(model_dir)
    examples = prepare_training_examples(rows, tokenizer, 1024, 128).examples
    # float32: under bf16 autocast (on hardware that has it) micro-batches of other shapes round otherwise.
    config = TuningConfig(
        model_dir, train_steps=1, batch_size=4, learning_rate_multiplier=10.0, alpha=0.3, mixed_precision="no", **settings
    )
    trainer = build_trainer(model, config, examples, [], tokenizer.pad_token_id, str(tmp_path / "c"), str(tmp_path / "t"))
    trainer.train()
    loss = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    return loss, {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


def test_accumulating_micro_batches_makes_the_same_step_as_the_whole_batch(
    tiny_student_dir, smollm2_tokenizer, uneven_rows, tmp_path
):
    whole_loss, whole_weights = one_step(tiny_student_dir, smollm2_tokenizer, uneven_rows, tmp_path / "whole")
    accumulated_loss, accumulated_weights = one_step(
        tiny_student_dir, smollm2_tokenizer, uneven_rows, tmp_path / "accumulated", micro_batch_size=1
    )
    # The loss is the token mean over the whole batch either way, not a mean of micro-batch means.
    assert accumulated_loss == pytest.approx(whole_loss, rel=1e-5)
    for name, weight in whole_weights.items():
        torch.testing.assert_close(accumulated_weights[name], weight, rtol=1e-4, atol=1e-5, msg=name)


def test_activation_checkpointing_makes_the_same_step(tiny_student_dir, smollm2_tokenizer, uneven_rows, tmp_path):
    whole_loss, whole_weights = one_step(tiny_student_dir, smollm2_tokenizer, uneven_rows, tmp_path / "whole")
    loss, weights = one_step(
        tiny_student_dir, smollm2_tokenizer, uneven_rows, tmp_path / "checkpointed", activation_checkpointing=True
    )
    assert loss == pytest.approx(whole_loss, rel=1e-6)
    for name, weight in whole_weights.items():
        torch.testing.assert_close(weights[name], weight, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("longest_examples_fitting, rows_a_pass", [(4, 4), (3, 2), (2, 2), (1, 1), (0, 1)])
def test_without_a_micro_batch_size_a_pass_takes_the_most_rows_whose_activations_fit_the_budget(
    tiny_student_dir, smollm2_tokenizer, uneven_rows, tmp_path, longest_examples_fitting, rows_a_pass
):
    model = load_causal_lm(tiny_student_dir)
    examples = prepare_training_examples(uneven_rows, smollm2_tokenizer, 1024, 128).examples
    longest_mb = max(example_activation_bytes(model.config, example) for example in examples) / 2**20
    assert longest_mb > 1  # the logits at the targets of 49,152 tokens: a budget in whole MiB tells 2 rows from 3
    config = TuningConfig(tiny_student_dir, batch_size=4, activation_budget_mb=int(longest_examples_fitting * longest_mb) + 1)
    trainer = build_trainer(model, config, examples, [], smollm2_tokenizer.pad_token_id, str(tmp_path / "c"), str(tmp_path / "t"))
    assert trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps == 4
    assert trainer.args.per_device_train_batch_size == rows_a_pass


def test_activations_are_estimated_from_the_student_s_shape():
    from transformers import LlamaConfig

    # SmolLM2-135M: 30 layers, hidden size 576, MLP size 1536, 49,152 tokens.
    smollm2 = LlamaConfig(num_hidden_layers=30, hidden_size=576, intermediate_size=1536, vocab_size=49152)
    # 8 rows of 450 tokens (SQuAD-length contexts and a rationale), 100 targets each: about 5.4 GB kept.
    assert activation_bytes(smollm2, 8 * 450, 8 * 100) / 2**30 == pytest.approx(5.1, abs=0.2)
    # Checkpointed: each layer's input and one layer in full; the logits at the targets stay.
    assert activation_bytes(smollm2, 8 * 450, 8 * 100, activation_checkpointing=True) < activation_bytes(smollm2, 8 * 450, 8 * 100) / 5


def test_micro_batch_size_must_divide_the_batch_size():
    TuningConfig("m", batch_size=8, micro_batch_size=2)
    with pytest.raises(ValueError, match="micro_batch_size must be a positive divisor of batch_size 8"):
        TuningConfig("m", batch_size=8, micro_batch_size=3)


def test_length_grouped_order_depends_on_seed_and_epoch_only(smollm2_tokenizer, uneven_rows):
    lengths = [packed_length(example) for example in prepare_training_examples(uneven_rows * 25, smollm2_tokenizer, 1024, 128).examples]
    sampler = SeededLengthGroupedSampler(4, lengths, seed=3)
    first_epoch = list(sampler)
    sampler.set_epoch(1)
    second_epoch = list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first_epoch == list(SeededLengthGroupedSampler(4, lengths, seed=3))
    assert second_epoch != first_epoch and sorted(second_epoch) == list(range(len(lengths)))
    # Batches hold rows of similar length: less padding than random batches.
    shuffled = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(3)).tolist()
    assert padding(first_epoch, lengths) < padding(shuffled, lengths) / 3


def padding(order: list[int], lengths: list[int], batch_size: int = 4) -> int:
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    return sum(max(lengths[i] for i in batch) * len(batch) - sum(lengths[i] for i in batch) for batch in batches)


@pytest.mark.parametrize(
    "parameters, settings, expected",
    [(135e6, {}, (16, 32)), (1.5e9, {}, (32, 64)), (70e9, {}, (64, 128)), (70e9, {"lora_rank": 8}, (8, 16)), (135e6, {"lora_alpha": 4}, (16, 4))],
)
def test_lora_rank_and_alpha_default_by_student_size(parameters, settings, expected):
    assert TuningConfig("m", tuning_method="lora", **settings).lora_settings(int(parameters)) == expected


def test_a_student_that_needs_remote_code_is_refused_without_running_it(tmp_path):
    from kfp_distill._implementation.student import load_student_model

    ran = tmp_path / "remote-code-ran"
    (tmp_path / "configuration_custom.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    (tmp_path / "config.json").write_text(
        '{"model_type": "custom-student", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}'
    )
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_student_model(str(tmp_path))
    assert not ran.exists()


def test_training_flops_count_the_body_at_every_position_and_the_output_layer_at_targets(
    tiny_student_dir, smollm2_tokenizer, uneven_rows, tmp_path
):
    model = load_causal_lm(tiny_student_dir)
    examples = prepare_training_examples(uneven_rows, smollm2_tokenizer, 1024, 128).examples
    pad = smollm2_tokenizer.pad_token_id
    trainer = build_trainer(model, TuningConfig(tiny_student_dir), examples, [], pad, str(tmp_path / "c"), str(tmp_path / "t"))
    packed = trainer.data_collator(examples)["shared_prefix"]
    output_layer = model.lm_head.weight.numel()
    body = sum(p.numel() for p in model.parameters()) - model.model.embed_tokens.weight.numel()
    if model.lm_head.weight is not model.model.embed_tokens.weight:
        body -= output_layer
    targets = int(((packed["label_targets"] != -100) | (packed["rationale_targets"] != -100)).sum())
    expected = 6 * (packed["input_ids"].numel() * body + targets * output_layer)
    assert trainer.floating_point_ops({"shared_prefix": packed}) == expected
    # Label-only batches: the output layer at each label token after the first.
    label_only = trainer.data_collator([{"label": example["label"]} for example in examples])
    label_targets = int((label_only["label"]["labels"][:, 1:] != -100).sum())
    assert trainer.floating_point_ops(label_only) == 6 * (
        label_only["label"]["input_ids"].numel() * body + label_targets * output_layer
    )


@pytest.mark.parametrize(
    "mixed_precision, hardware_has_bf16, expected",
    [("no", True, False), ("bf16", False, True), ("auto", True, True), ("auto", False, False)],
)
@pytest.mark.skipif(
    torch.cuda.is_available() and not torch.cuda.is_bf16_supported(), reason="this GPU has no bf16 to ask for"
)
def test_mixed_precision_is_the_hardware_s_choice_unless_decided(
    mixed_precision, hardware_has_bf16, expected, tiny_student_dir, smollm2_tokenizer, uneven_rows, tmp_path, monkeypatch
):
    monkeypatch.setattr(trainer_module, "bf16_supported", lambda: hardware_has_bf16)
    examples = prepare_training_examples(uneven_rows, smollm2_tokenizer, 1024, 128).examples
    config = TuningConfig(tiny_student_dir, mixed_precision=mixed_precision)
    trainer = build_trainer(
        load_causal_lm(tiny_student_dir), config, examples, [], smollm2_tokenizer.pad_token_id,
        str(tmp_path / "c"), str(tmp_path / "t"),
    )
    assert trainer.args.bf16 is expected


@pytest.mark.parametrize("flags, expected", [("fpu avx512f avx512_bf16 sse", True), ("fpu amx_bf16", True), ("fpu avx512f avx2", False)])
def test_a_cpu_counts_as_bf16_capable_by_its_instructions(flags, expected, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert bf16_supported(cpuinfo) is expected
    assert bf16_supported(tmp_path / "missing") is False


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm") or platform.libc_ver()[0] != "glibc", reason="glibc on Linux")
def test_the_heap_memory_freed_in_a_step_goes_back_to_the_system_at_its_end():
    # 256 MiB in blocks glibc serves from its heap (under its 128 KiB mapping threshold); one block in 64 stays,
    # so the freed ones lie between live ones, where only malloc_trim gives their pages back.
    blocks = [bytearray(b"x" * (64 * 1024)) for _ in range(4096)]
    kept = blocks[::64]
    del blocks
    freed = _resident_mib()
    GiveFreedMemoryBack().on_step_end(None, None, None)
    assert _resident_mib() < freed - 128, f"{freed:.0f} MiB resident before the trim, {_resident_mib():.0f} after"
    assert len(kept) == 64
