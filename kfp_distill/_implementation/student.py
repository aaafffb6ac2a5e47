"""The student's text format and its predictor, shared by tuning, evaluation, the registry and `predict`.

Distilling step-by-step trains one model on two tasks told apart by a task marker: `[label]` asks for the
answer alone, `[rationale]` for the step-by-step explanation. The marker comes after the input, so both tasks
of a training row share the input's tokens and tuning processes them once. At inference only the label task
is needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Sequence

Task = Literal["label", "rationale"]


def student_prompt(input_text: str, task: Task = "label") -> str:
    """The text the student sees before its target, for either task: the input, then the task marker."""
    return f"{input_text}\n[{task}]\n"


@dataclass
class Prediction:
    text: str
    latency_s: float


class StudentPredictor:
    """Greedy generation from a student model (a tuned model directory or any model reference)."""

    def __init__(self, model_reference: str, max_new_tokens: int = 64):
        import torch

        from kfp_distill._implementation.models import load_causal_lm, load_tokenizer

        self.tokenizer = load_tokenizer(model_reference)
        self.model = load_causal_lm(model_reference, dtype=torch.float32).eval()
        self.max_new_tokens = max_new_tokens

    def predict(self, input_texts: Sequence[str], task: Task = "label") -> list[Prediction]:
        """One prediction per input, generated one at a time so each latency is a real per-request latency."""
        import torch

        predictions = []
        for input_text in input_texts:
            started = time.perf_counter()
            encoded = self.tokenizer(student_prompt(input_text, task), return_tensors="pt")
            with torch.inference_mode():
                output = self.model.generate(
                    **encoded,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            text = self.tokenizer.decode(output[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
            predictions.append(Prediction(text.strip(), time.perf_counter() - started))
        return predictions
