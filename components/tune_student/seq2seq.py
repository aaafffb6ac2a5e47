"""Encoder-decoder students (T5, Flan-T5): one encoder pass feeds the decoders of both tasks.

For an encoder-decoder the input goes to the encoder alone, without a task marker, and the task marker
starts the decoder: the decoder reads `[decoder start][marker]` and is trained to go on with the target and
the end-of-sequence token (loss on those only), exactly what `StudentPredictor` asks it at inference
(`task_marker_ids`). Both tasks of a row thus share the encoder's input, and a training step encodes it
once and runs the label decoder and the rationale decoder on the same encoder output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from kfp_distill._implementation.student import StudentTask, student_input_ids, task_marker_ids

from .data import IGNORE_INDEX


def encode_seq2seq_example(
    tokenizer,
    input_text: str,
    task: StudentTask,
    target: str,
    max_input_tokens: int,
    max_target_tokens: int | None = None,
) -> tuple[dict[str, list[int]], bool, bool]:
    """Tokenizes one task example for an encoder-decoder.

    Returns:
        ({"input_ids" (encoder), "decoder_ids" (marker, target, eos), "labels" (IGNORE_INDEX on the marker)},
        whether the input was cut, whether the target was cut).
    """
    input_ids, input_truncated = student_input_ids(tokenizer, input_text, task, max_input_tokens, encoder_decoder=True)
    marker = task_marker_ids(tokenizer, task)
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    target_truncated = max_target_tokens is not None and len(target_ids) > max_target_tokens
    target_ids = target_ids[:max_target_tokens] + [tokenizer.eos_token_id]
    return (
        {"input_ids": input_ids, "decoder_ids": marker + target_ids, "labels": [IGNORE_INDEX] * len(marker) + target_ids},
        input_truncated,
        target_truncated,
    )


@dataclass
class SharedEncoderCollator:
    """Pads a batch of encoder-decoder examples: the encoder input once per row, one decoder batch per task.

    Returns:
        {"shared_encoder": {"input_ids", "attention_mask", and per task present "<task>_decoder_input_ids"
        (the decoder start token, then the example's decoder tokens but the last), "<task>_decoder_attention_mask",
        "<task>_targets" (what each decoder position predicts, IGNORE_INDEX on the marker and padding)}}.
    """

    pad_token_id: int
    decoder_start_token_id: int

    def __call__(self, features: Sequence[dict[str, dict[str, list[int]]]]) -> dict[str, dict[str, torch.Tensor]]:
        first_task = next(iter(features[0]))
        batch = {}
        batch["input_ids"], batch["attention_mask"] = self._pad([f[first_task]["input_ids"] for f in features], self.pad_token_id)
        for task in features[0]:
            examples = [feature[task] for feature in features]
            decoder_inputs = [[self.decoder_start_token_id] + example["decoder_ids"][:-1] for example in examples]
            batch[f"{task}_decoder_input_ids"], batch[f"{task}_decoder_attention_mask"] = self._pad(
                decoder_inputs, self.pad_token_id
            )
            batch[f"{task}_targets"], _ = self._pad([example["labels"] for example in examples], IGNORE_INDEX)
        return {"shared_encoder": batch}

    @staticmethod
    def _pad(sequences: list[list[int]], fill: int) -> tuple[torch.Tensor, torch.Tensor]:
        length = max(len(sequence) for sequence in sequences)
        values = torch.tensor([sequence + [fill] * (length - len(sequence)) for sequence in sequences])
        mask = torch.tensor([[1] * len(sequence) + [0] * (length - len(sequence)) for sequence in sequences])
        return values, mask


def decoder_logits(
    model, batch: dict[str, torch.Tensor], tasks: Sequence[StudentTask]
) -> dict[StudentTask, torch.Tensor]:
    """Each task's decoder logits, the input encoded once for all of them."""
    encoder_outputs = model.get_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return {
        task: model(
            encoder_outputs=encoder_outputs,
            attention_mask=batch["attention_mask"],
            decoder_input_ids=batch[f"{task}_decoder_input_ids"],
            decoder_attention_mask=batch[f"{task}_decoder_attention_mask"],
        ).logits
        for task in tasks
    }
