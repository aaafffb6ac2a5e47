"""How many rows one forward and backward pass takes: the most whose activations fit a memory budget.

Weights, gradients and AdamW's two moments take four times the float32 weights whatever the batch (2.2 GB for
SmolLM2-135M); what grows with the rows of a pass is what the backward pass keeps of the forward pass, about
10 hidden-size and 4 MLP-size values per token and layer in a Llama-like decoder (the norms' inputs and outputs,
query, key, value, the attention output and residuals; the MLP's gate, up, activation and product), plus the
logits where a target is predicted (the vocabulary's width, kept with their softmax and its gradient). On
extractive QA with SQuAD-length contexts that is about 1.4 MB per token for SmolLM2-135M: 8 rows of 450 tokens
keep 5 GB. Passes of fewer rows (gradients accumulated to the batch) keep less and give the same step, the
losses being token means over the whole step. With activation checkpointing a layer keeps only its input,
and one layer's activations are rebuilt at a time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Sequence

import torch
from transformers import TrainerCallback

from .data import IGNORE_INDEX, packed_length

# A pass's activations on a CPU, where the process shares the machine's memory: what a laptop with 8 GB can
# give on top of the weights, gradients and optimizer states of a small student (one SQuAD-length row a pass
# for SmolLM2-135M; two peaked at 4,145 MiB).
DEFAULT_CPU_ACTIVATION_BUDGET_MB = 1024
# The share of a GPU's memory (less the weights, their gradients and optimizer states) the activations of a
# pass may take; the rest is the allocator's and the evaluation's room.
GPU_BUDGET_SHARE = 0.5
_FLOAT32 = 4
# Kept per token and layer (hidden-size, MLP-size values), and per target (vocabulary-size values).
_HIDDEN_VALUES, _MLP_VALUES, _LOGIT_VALUES = 10, 4, 3


def _shape(model_config) -> tuple[int, int, int, int]:
    """(layers, hidden size, MLP size, vocabulary size) of a decoder-only or encoder-decoder config."""
    hidden = getattr(model_config, "hidden_size", None) or model_config.d_model
    mlp = getattr(model_config, "intermediate_size", None) or getattr(model_config, "d_ff", None) or 4 * hidden
    layers = getattr(model_config, "num_hidden_layers", None)
    if getattr(model_config, "is_encoder_decoder", False):
        layers = model_config.num_layers + (getattr(model_config, "num_decoder_layers", None) or model_config.num_layers)
    return layers, hidden, mlp, model_config.vocab_size


def activation_bytes(model_config, tokens: int, targets: int, activation_checkpointing: bool = False) -> int:
    """Estimated bytes a forward pass keeps for the backward pass, for `tokens` processed and `targets` predicted."""
    layers, hidden, mlp, vocabulary = _shape(model_config)
    per_layer = _HIDDEN_VALUES * hidden + _MLP_VALUES * mlp
    # With checkpointing every layer keeps its input and one layer at a time is rebuilt in full.
    per_token = hidden * layers + per_layer if activation_checkpointing else per_layer * layers
    return _FLOAT32 * (tokens * per_token + targets * _LOGIT_VALUES * vocabulary)


def example_activation_bytes(model_config, example: dict, activation_checkpointing: bool = False) -> int:
    """`activation_bytes` of one training example pair (label and rationale) as a step packs it."""
    targets = sum(
        sum(label != IGNORE_INDEX for label in task_example["labels"]) for task_example in example.values()
    )
    return activation_bytes(model_config, packed_length(example), targets, activation_checkpointing)


def activation_budget_mb(model, budget_mb: int | None) -> float:
    """The budget for a pass's activations: `budget_mb` when set; else on a GPU half its memory once the weights,
    their gradients and optimizer states are set aside (the weights, then three more copies of the trained
    ones), else `DEFAULT_CPU_ACTIVATION_BUDGET_MB`.

    The GPU's total memory, not its free memory, so that data-parallel processes on like GPUs choose alike.
    """
    if budget_mb:
        return float(budget_mb)
    if torch.cuda.is_available():
        total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        trained = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
        return max(total - weights - 3 * trained, 0) * GPU_BUDGET_SHARE / 2**20
    return float(DEFAULT_CPU_ACTIVATION_BUDGET_MB)


def micro_batch_within_budget(
    model_config, examples: Sequence[dict], rows: int, budget_mb: float, activation_checkpointing: bool = False
) -> int:
    """The most rows, a divisor of `rows`, that one pass can take with the activations of as many of the longest
    examples within `budget_mb` (1 when even one does not fit: the budget cannot be met by fewer rows)."""
    largest = max(example_activation_bytes(model_config, example, activation_checkpointing) for example in examples)
    fitting = int(budget_mb * 2**20 // max(largest, 1))
    return max((size for size in range(1, rows + 1) if rows % size == 0 and size <= fitting), default=1)


class GiveFreedMemoryBack(TrainerCallback):
    """After each optimizer step and each evaluation, has glibc give the heap memory freed since back to the
    system (`malloc_trim`).

    glibc keeps freed blocks in its heap, and a step's activations (5 to 22 MiB tensors for 8 rows of 450
    tokens) come from there once it has raised its mapping threshold: without this, a 2-step run's resident set
    stayed 2.2 GB above its weights, gradients and runtime between steps, and rows of other lengths could not
    reuse it. Once a step, not once a tensor: serving every large tensor with its own mapping instead (glibc's
    M_MMAP_THRESHOLD at 1 MiB) made each pass fault in fresh pages, 1.9x a step's CPU time in single-row passes.
    Does nothing off glibc.
    """

    def __init__(self):
        try:
            self._malloc_trim = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
        except (OSError, AttributeError, TypeError):
            self._malloc_trim = None

    def _trim(self) -> None:
        if self._malloc_trim is not None:
            self._malloc_trim(0)

    def on_step_end(self, args, state, control, **kwargs):
        self._trim()

    def on_evaluate(self, args, state, control, **kwargs):
        self._trim()
