"""Encoder-decoder students: one encoder pass for both tasks, then train, save, reload and predict."""

import json
from pathlib import Path

import pytest
import torch

from kfp_distill._implementation.jsonl import write_jsonl
from kfp_distill._implementation.models import load_tokenizer
from kfp_distill._implementation.student import (
    StudentPredictor,
    task_marker_ids,
    generate_batched,
    load_student_model,
)
from kfp_distill.components.tune_student.config import TuningConfig
from kfp_distill.components.tune_student.data import IGNORE_INDEX, prepare_training_examples
from kfp_distill.components.tune_student.seq2seq import SharedEncoderCollator, encode_seq2seq_example
from kfp_distill.components.tune_student.trainer import build_trainer, target_statistics
from kfp_distill.components.tune_student.tuning import TuningRequest, run_tuning


def test_the_encoder_runs_once_for_both_tasks_with_the_losses_of_two_separate_passes(
    tiny_t5_dir, smollm2_tokenizer, uneven_rows, tmp_path, monkeypatch
):
    model = load_student_model(tiny_t5_dir)
    examples = prepare_training_examples(uneven_rows, smollm2_tokenizer, 1024, 128, encode_seq2seq_example).examples
    pad = smollm2_tokenizer.pad_token_id
    trainer = build_trainer(model, TuningConfig(tiny_t5_dir, alpha=0.3), examples, [], pad, str(tmp_path / "c"), str(tmp_path / "t"))
    batch = SharedEncoderCollator(pad, model.config.decoder_start_token_id)(examples)["shared_encoder"]

    expected = []
    for task in ("label", "rationale"):  # the plain way: a full forward pass (encoder included) per task
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_input_ids=batch[f"{task}_decoder_input_ids"],
            decoder_attention_mask=batch[f"{task}_decoder_attention_mask"],
        ).logits
        loss_sum, _, predicted = target_statistics(logits, batch[f"{task}_targets"])
        expected.append((loss_sum / predicted).item())

    encoder_calls = []
    encoder = model.get_encoder()
    monkeypatch.setattr(encoder, "forward", lambda *a, _forward=encoder.forward, **k: encoder_calls.append(1) or _forward(*a, **k))
    (label_loss, rationale_loss), _ = trainer.encoder_decoder_task_losses(model, batch)
    assert len(encoder_calls) == 1
    assert (label_loss.item(), rationale_loss.item()) == (pytest.approx(expected[0], rel=1e-5), pytest.approx(expected[1], rel=1e-5))
    # The task marker starts the decoder and is not a target.
    marker = task_marker_ids(smollm2_tokenizer, "rationale")
    assert batch["rationale_decoder_input_ids"][0, 1 : 1 + len(marker)].tolist() == marker
    assert batch["rationale_targets"][0, : len(marker)].eq(IGNORE_INDEX).all()


def test_a_t5_student_trains_saves_reloads_and_predicts(tiny_t5_dir, distilled_path, evaluation_path, tmp_path):
    config = TuningConfig(tiny_t5_dir, train_steps=4, batch_size=4, micro_batch_size=2, evaluation_interval=2, learning_rate_multiplier=10.0)
    provenance = {"teacher_model_reference": "teacher-x", "dataset_uri": "train.jsonl"}
    result = run_tuning(
        TuningRequest(distilled_path, evaluation_path, str(tmp_path / "model"), str(tmp_path / "tb"), config, provenance)
    )
    assert result.metrics["steps_run"] == 4 and result.metrics["last_eval_token_accuracy"] is not None
    names = {path.name for path in Path(result.model_dir).iterdir()}
    assert "model.safetensors" in names and not any(name.endswith(".bin") for name in names)
    facts = json.loads((Path(result.model_dir) / "kfp_distill.json").read_text())
    assert facts["architecture"] == "encoder-decoder"
    assert facts["prompt_format"]["label"] == {"encoder": "{input_text}", "decoder": "\n[label]\n"}
    reloaded = load_student_model(result.model_dir)
    assert reloaded.config.is_encoder_decoder
    predictions = StudentPredictor(result.model_dir, max_new_tokens=6).predict(["Sam has 4 apples and buys 2 more."], task="rationale")
    assert len(predictions) == 1 and isinstance(predictions[0].text, str)


def test_a_t5_student_tunes_on_labels_alone(tiny_t5_dir, uneven_rows, empty_evaluation_path, tmp_path):
    train = tmp_path / "labels.jsonl"
    write_jsonl(train, [{"input_text": row.input_text, "output_text": row.output_text} for row in uneven_rows])
    config = TuningConfig(tiny_t5_dir, train_steps=3, batch_size=2, learning_rate_multiplier=10.0)
    result = run_tuning(TuningRequest(str(train), empty_evaluation_path, str(tmp_path / "model"), str(tmp_path / "tb"), config))
    assert result.metrics["steps_run"] == 3 and result.metrics["final_train_loss"] > 0
    facts = json.loads((Path(result.model_dir) / "kfp_distill.json").read_text())
    assert facts["trained_tasks"] == ["label"]


def test_batched_generation_answers_as_one_at_a_time(tiny_t5_dir, uneven_rows):
    inputs = [row.input_text for row in uneven_rows]
    alone = [p.text for p in StudentPredictor(tiny_t5_dir, max_new_tokens=5).predict(inputs)]
    model = load_student_model(tiny_t5_dir).eval()
    assert generate_batched(model, load_tokenizer(tiny_t5_dir), inputs, "label", 5, batch_size=2) == alone
