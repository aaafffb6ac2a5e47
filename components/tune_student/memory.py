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

from .data import IGNORE_INDEX, packed_length

# A pass's activations on a CPU, where the process shares the machine's memory: what a laptop with 8 GB can
# give on top of the weights, gradients and optimizer states of a small student.
DEFAULT_CPU_ACTIVATION_BUDGET_MB = 1024
# The share of a GPU's memory (less the weights, their gradients and optimizer states) the activations of a
# pass may take; the rest is the allocator's and the evaluation's room.
GPU_BUDGET_SHARE = 0.5
_FLOAT32 = 4
# glibc's mallopt parameter, and the size from which it serves an allocation with its own mapping.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 20
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


def give_freed_tensors_back() -> bool:
    """Has glibc serve every allocation of 1 MiB or more (a tensor of 256k float32 values) with its own mapping,
    given back to the system when freed.

    By default glibc raises that threshold up to 32 MiB as large blocks are freed, and a step's activations
    (8 rows of 450 tokens make 5 to 22 MiB tensors) then come from its heap, which keeps them once freed and
    cannot reuse them for tensors of other sizes: on extractive QA the resident set of a 2-step run stayed
    2.2 GB above its weights, gradients and runtime between steps. The price is fresh pages for every such
    tensor (measured on one batch: 1.1x the step's CPU time in one pass, more with many passes). Returns whether
    the setting took (False off glibc, where nothing is changed).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError, TypeError):
        return False
