"""The student's text format and its predictor, shared by tuning, evaluation, the registry and `predict`.

Distilling step-by-step trains one model on two tasks told apart by a task marker: `[label]` asks for the
answer alone, `[rationale]` for the step-by-step explanation. The marker comes after the input, so both tasks
of a training row share the input's tokens and tuning processes them once. An encoder-decoder student reads
the input in its encoder and the marker at the start of its decoder (`task_marker_ids`). At inference only
the label task is needed; an extractive-QA answer is decoded as a span of its context (`spans.py`).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Literal, Sequence

from kfp_distill._implementation.limits import MAX_INPUT_TOKENS
from kfp_distill._implementation.spans import EXTRACTIVE_QA, SpanLogitsProcessor, span_constraints

# What a student is asked for by its task marker (not the dataset's task type, `tasks.TaskType`).
StudentTask = Literal["label", "rationale"]
STUDENT_TASKS: tuple[StudentTask, ...] = ("label", "rationale")


def student_prompt(input_text: str, task: StudentTask = "label") -> str:
    """The text the student sees before its target, for either task: the input, then the task marker."""
    return f"{input_text}\n[{task}]\n"


def task_marker_ids(tokenizer, task: StudentTask = "label") -> list[int]:
    """The task marker's tokens: what ends a causal student's prompt, and an encoder-decoder's decoder prompt
    after its start token (its encoder reads the input alone, so both tasks of a row share one encoder pass)."""
    return tokenizer(student_prompt("", task), add_special_tokens=False)["input_ids"]


@functools.lru_cache(maxsize=8)
def longest_token_chars(tokenizer) -> int:
    """The most characters one token of the vocabulary stands for (its stored form has at least as many
    characters as the text it decodes to: a byte-level token one per byte, a sentencepiece token one per
    character)."""
    return max(map(len, tokenizer.get_vocab()), default=1)


def student_input_ids(
    tokenizer, input_text: str, task: StudentTask, max_input_tokens: int, encoder_decoder: bool = False
) -> tuple[list[int], bool]:
    """What the student reads, as tuning and prediction both cut it, and whether the input was cut.

    A causal student reads `student_prompt`: a longer input keeps its first `max_input_tokens` tokens, then the
    task marker (where the student learned to start answering). An encoder-decoder's encoder reads the input
    alone, cut to its first `max_input_tokens` tokens.
    """
    # Tokenizing takes time in the text's length: characters past those of `max_input_tokens` of the longest
    # tokens can never be kept, so they are not tokenized (a 16 MiB prompt costs what a long one does).
    keepable = (max_input_tokens + 1) * longest_token_chars(tokenizer)
    input_text = input_text[:keepable]
    if encoder_decoder:
        ids = tokenizer(input_text)["input_ids"]
        return ids[:max_input_tokens], len(ids) > max_input_tokens
    marker = task_marker_ids(tokenizer, task)
    ids = tokenizer(student_prompt(input_text, task))["input_ids"]
    if len(ids) > max_input_tokens + len(marker):
        return ids[:max_input_tokens] + marker, True
    return ids, False


def student_config(model_reference: str, trust_remote_code: bool = False):
    """A student's Hugging Face model config (its architecture and context length), without its weights."""
    from transformers import AutoConfig

    from kfp_distill._implementation.models import remote_code_refusal_explained, resolve_hf_model

    with remote_code_refusal_explained(model_reference):
        return AutoConfig.from_pretrained(resolve_hf_model(model_reference), trust_remote_code=trust_remote_code)


def is_encoder_decoder(model_reference: str, trust_remote_code: bool = False) -> bool:
    """Whether a student is an encoder-decoder (T5, Flan-T5) rather than a causal LM."""
    return bool(getattr(student_config(model_reference, trust_remote_code), "is_encoder_decoder", False))


def load_student_model(model_reference: str, trust_remote_code: bool = False, **kwargs):
    """A causal LM or an encoder-decoder, from safetensors weights only.

    Args:
        trust_remote_code: Allow the model repository's own Python code (off: such a model is refused).
    """
    if not is_encoder_decoder(model_reference, trust_remote_code):
        from kfp_distill._implementation.models import load_causal_lm

        return load_causal_lm(model_reference, trust_remote_code=trust_remote_code, **kwargs)
    from transformers import AutoModelForSeq2SeqLM

    from kfp_distill._implementation.models import remote_code_refusal_explained, resolve_hf_model

    with remote_code_refusal_explained(model_reference):
        return AutoModelForSeq2SeqLM.from_pretrained(
            resolve_hf_model(model_reference), use_safetensors=True, trust_remote_code=trust_remote_code, **kwargs
        )


def _decoder_start(model, tokenizer, task: StudentTask) -> list[int]:
    """An encoder-decoder's decoder prompt for `task`: its start token, then the task marker."""
    start = model.generation_config.decoder_start_token_id or model.config.decoder_start_token_id
    return [start] + task_marker_ids(tokenizer, task)


def _end_ids(model, tokenizer) -> list[int]:
    """The tokens that end a generation: the model's end of sequence, and its tokenizer's."""
    ends = model.generation_config.eos_token_id
    ends = [] if ends is None else [ends] if isinstance(ends, int) else list(ends)
    return ends + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def _greedy(
    model, tokenizer, encoded, prompt_length: int, input_texts: Sequence[str], task: StudentTask, task_type: str,
    max_new_tokens: int,
) -> list[str]:
    """Greedy answers to a batch of prompts (`encoded`, the generation's prompt `prompt_length` tokens long,
    padded on the left), one per input text; an extractive-QA answer to the label task is held to a span of its
    input's context."""
    import torch
    from transformers import LogitsProcessorList

    spans = None
    if task == "label" and task_type == EXTRACTIVE_QA:
        spans = span_constraints(tokenizer, input_texts, _end_ids(model, tokenizer))
    with torch.inference_mode():
        output = model.generate(
            **{name: tensor.to(model.device) for name, tensor in encoded.items()},
            max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
            logits_processor=LogitsProcessorList([SpanLogitsProcessor(spans, prompt_length)] if spans else []),
        )
    generated = output[:, prompt_length:].tolist()
    if spans:  # the text the constraint tracked: a span, however the tokenizer would clean up its decoding
        return [span.answer(ids) for span, ids in zip(spans, generated)]
    return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in generated]


def generate_batched(
    model,
    tokenizer,
    input_texts: Sequence[str],
    task: StudentTask = "label",
    max_new_tokens: int = 64,
    batch_size: int = 32,
    task_type: str = "",
) -> list[str]:
    """Greedy generations for many inputs, `batch_size` at a time: to measure accuracy, not per-request latency.

    Inputs are batched by length (less padding) and causal prompts padded on the left, so every row's
    generation goes on right after its own prompt; the answers come back in the order of `input_texts`.

    Args:
        task_type: The task type (`tasks.TASK_TYPES`): an extractive-QA answer to the label task is a span of
            its input's context. Empty: unknown, nothing constrained.
    """
    import torch

    order = sorted(range(len(input_texts)), key=lambda index: len(input_texts[index]))
    answers: list[str] = [""] * len(input_texts)
    for first in range(0, len(order), batch_size):
        indices = order[first : first + batch_size]
        texts = [input_texts[i] for i in indices]
        if model.config.is_encoder_decoder:
            encoded = tokenizer(texts, padding=True, return_tensors="pt")
            encoded["decoder_input_ids"] = torch.tensor([_decoder_start(model, tokenizer, task)] * len(indices))
            prompt_length = encoded["decoder_input_ids"].shape[1]
        else:
            encoded = tokenizer(
                [student_prompt(text, task) for text in texts], padding=True, padding_side="left", return_tensors="pt"
            )
            prompt_length = encoded["input_ids"].shape[1]
        batch = _greedy(model, tokenizer, encoded, prompt_length, texts, task, task_type, max_new_tokens)
        for index, answer in zip(indices, batch):
            answers[index] = answer
    return answers


@dataclass
class Prediction:
    text: str
    latency_s: float


class StudentPredictor:
    """Greedy generation from a student model (a tuned model directory or any model reference).

    An input is cut as tuning cut it (its first `max_input_tokens` tokens), and further where the prompt and
    `max_new_tokens` would not fit the model's context: a prompt of any length costs a bounded amount of work.
    """

    def __init__(
        self,
        model_reference: str,
        max_new_tokens: int = 64,
        trust_remote_code: bool = False,
        max_input_tokens: int = MAX_INPUT_TOKENS,
    ):
        import torch

        from kfp_distill._implementation.models import load_tokenizer

        self.tokenizer = load_tokenizer(model_reference, trust_remote_code)
        self.model = load_student_model(model_reference, trust_remote_code, dtype=torch.float32).eval()
        self.max_new_tokens = max_new_tokens
        self.max_input_tokens = max_input_tokens

    def input_ids(self, input_text: str, task: StudentTask = "label") -> list[int]:
        """The tokens the student reads for one input (the encoder's, for an encoder-decoder)."""
        encoder_decoder = bool(self.model.config.is_encoder_decoder)
        limit = self.max_input_tokens
        context = getattr(self.model.config, "max_position_embeddings", None)
        if context and not encoder_decoder:  # the prompt, its marker and the answer share a causal context
            limit = min(limit, context - len(task_marker_ids(self.tokenizer, task)) - self.max_new_tokens)
            if limit < 1:
                raise ValueError(
                    f"max_new_tokens={self.max_new_tokens} leaves no room for an input in the student's "
                    f"{context}-token context"
                )
        return student_input_ids(self.tokenizer, input_text, task, limit, encoder_decoder)[0]

    def predict(self, input_texts: Sequence[str], task: StudentTask = "label", task_type: str = "") -> list[Prediction]:
        """One prediction per input, generated one at a time so each latency is a real per-request latency.

        Args:
            task_type: The task type the student answers (`tasks.TASK_TYPES`): an extractive-QA answer to the
                label task is a span of its input's context. Empty: unknown, nothing constrained.
        """
        import torch

        predictions = []
        for input_text in input_texts:
            started = time.perf_counter()
            ids = torch.tensor([self.input_ids(input_text, task)])
            encoded = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            if self.model.config.is_encoder_decoder:  # the input to the encoder, the task marker to the decoder
                encoded["decoder_input_ids"] = torch.tensor([_decoder_start(self.model, self.tokenizer, task)])
                prompt_length = encoded["decoder_input_ids"].shape[1]
            else:
                prompt_length = ids.shape[1]
            (text,) = _greedy(
                self.model, self.tokenizer, encoded, prompt_length, [input_text], task, task_type,
                self.max_new_tokens,
            )
            predictions.append(Prediction(text, time.perf_counter() - started))
        return predictions


def label_answers(
    predictor: StudentPredictor, input_texts: Sequence[str], task_type: str = ""
) -> list[tuple[Prediction, str]]:
    """The label task's generation for each input and the answer read from it, as evaluation scores it, `predict`
    gives it and `serve` sends it: decoded for the task type (an extractive-QA answer a span of its context) and
    cut by `answers.label_answer` (a summary whole, any other answer to its line)."""
    from kfp_distill._implementation.answers import label_answer

    predictions = predictor.predict(input_texts, task="label", task_type=task_type)
    return [(prediction, label_answer(prediction.text, task_type)) for prediction in predictions]
