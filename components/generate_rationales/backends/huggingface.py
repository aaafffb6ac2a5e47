"""A local Hugging Face causal LM as the teacher, for machines with a GPU: batched generation in-process.

Requests arrive one per thread from the component's thread pool; a micro-batcher groups those waiting
at once into one left-padded `generate` call, so `max_concurrency` becomes the batch size (up to
`max_batch_size`).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from kfp_distill._implementation.models import load_causal_lm, load_tokenizer, resolve_hf_model, sha256_of
from kfp_distill._implementation.redaction import redact_uri
from kfp_distill._implementation.teacher_reference import TeacherKind, TeacherReference

from .base import Completion, DecodingSettings, TeacherRequestError
from .batching import MicroBatcher

MAX_BATCH_SIZE = 16


@dataclass(frozen=True)
class _Prompt:
    token_ids: tuple[int, ...]
    settings: DecodingSettings


def _batch_group(prompt: _Prompt) -> tuple[int, float]:
    """Prompts that may share a `generate` call: the same length cap and temperature. Seeds may differ, so
    self-consistency's samples (one seed each) of many rows fill one batch."""
    return prompt.settings.max_new_tokens, prompt.settings.temperature


def _batch_seed(prompts: list[_Prompt]) -> int:
    """The seed of a sampled batch, drawn from all its prompts and their seeds: the same batch samples the
    same answers again, and samples of one prompt with different seeds never repeat each other's draws."""
    key = repr([(prompt.token_ids, prompt.settings.seed) for prompt in prompts]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little")


def weights_digest(model_dir: str | Path) -> str:
    """One sha256 over a model directory's safetensors files (names and contents, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        digest.update(f"{path.name}:{sha256_of(path)}\n".encode())
    return digest.hexdigest()


class HuggingFaceBackend:
    """A causal LM with a chat template, run by `transformers` on CUDA when there is one, else on the CPU.

    The tokenizer is loaded at once (to apply the chat template); the weights at the first request, so a
    fully cached re-run never loads them. Greedy answers do not depend on which requests share a batch;
    sampled answers (temperature > 0) do: a batch is seeded from its prompts and their seeds.

    Args:
        teacher: A Hugging Face teacher's reference; its model is anything `models.resolve_hf_model` loads (a
            catalog name, a model directory or a URI of one, a Hub repo id on machines with the Hub).
        max_batch_size: The most prompts in one `generate` call.
        max_wait_s: How long a request waits for others to join its batch.

    Raises:
        ValueError: A tokenizer with no chat template (a base model, not an instruct or chat model).
    """

    supports_concurrency = True
    # No constrained decoding here: a JSON answer (answer_format="json") is parsed as it comes.
    supports_structured_output = False

    def __init__(self, teacher: TeacherReference, max_batch_size: int = MAX_BATCH_SIZE, max_wait_s: float = 0.02):
        import torch
        from transformers import AutoConfig

        self.model_reference = teacher.expect(TeacherKind.HUGGING_FACE).model
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = load_tokenizer(self.model_reference)
        if not self.tokenizer.chat_template:
            raise ValueError(
                f"teacher '{redact_uri(teacher.text)}': the tokenizer has no chat template; use an instruct or chat "
                "model"
            )
        resolved = resolve_hf_model(self.model_reference)
        config = AutoConfig.from_pretrained(resolved, trust_remote_code=False)
        self.context_tokens = getattr(config, "max_position_embeddings", None)
        # A local directory is named by its weights; a Hub model by the commit its files came from.
        commit = getattr(config, "_commit_hash", None)
        if Path(resolved).is_dir():
            self.identity = f"huggingface:safetensors-sha256:{weights_digest(resolved)}"
            self._revision = None
        else:
            self.identity = f"huggingface:{resolved}@{commit}" if commit else f"huggingface:{resolved}"
            self._revision = commit  # load the weights of that very commit
        # Fast tokenizers may fail when used from several threads at once ("Already borrowed").
        self._tokenizer_lock = threading.Lock()
        self._batcher = MicroBatcher(self._generate, max_batch_size, max_wait_s, group_of=_batch_group)

    @property
    def batch_sizes(self) -> list[int]:
        """The size of every batch run so far."""
        return self._batcher.batch_sizes

    @cached_property
    def _model(self):
        import torch

        if self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
        extra = {"revision": self._revision} if self._revision else {}
        return load_causal_lm(self.model_reference, dtype=dtype, **extra).to(self.device).eval()

    def complete(self, messages: list[dict[str, str]], settings: DecodingSettings) -> Completion:
        with self._tokenizer_lock:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            token_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]  # the template has its own
        if self.context_tokens and len(token_ids) + settings.max_new_tokens > self.context_tokens:
            raise TeacherRequestError(
                f"{self.identity}: a prompt of {len(token_ids)} tokens plus max_new_tokens={settings.max_new_tokens} "
                f"exceeds the model's {self.context_tokens}-token context",
                "prompt too long",
            )
        return self._batcher.submit(_Prompt(tuple(token_ids), settings))

    def _generate(self, prompts: list[_Prompt]) -> list[Completion]:
        """One left-padded `generate` over prompts of one batch group (runs in the batcher's thread)."""
        import torch

        model, settings = self._model, prompts[0].settings
        pad_id = self.tokenizer.pad_token_id
        width = max(len(prompt.token_ids) for prompt in prompts)
        input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt.token_ids):] = torch.tensor(prompt.token_ids)
            attention_mask[row, width - len(prompt.token_ids):] = 1
        stop_ids = self._stop_ids(model)
        sampling = settings.temperature > 0
        if sampling:
            torch.manual_seed(_batch_seed(prompts))
        # Pure temperature sampling, as OpenAI-compatible servers do by default (no top-k or top-p cut).
        decoding = (
            dict(do_sample=True, temperature=settings.temperature, top_k=0, top_p=1.0)
            if sampling
            else dict(do_sample=False)
        )
        try:
            with torch.inference_mode():
                output = model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention_mask.to(self.device),
                    max_new_tokens=settings.max_new_tokens,
                    eos_token_id=sorted(stop_ids),
                    pad_token_id=pad_id,
                    **decoding,
                )
        except torch.OutOfMemoryError as error:
            # Smaller batches from now on; the requests are retried.
            self._batcher.max_batch_size = max(1, len(prompts) // 2)
            torch.cuda.empty_cache()
            raise TeacherRequestError(f"{self.identity}: {error}", "out of memory", retryable=True) from error
        completions = []
        for prompt, generated in zip(prompts, output[:, width:].tolist()):
            stop = next((index for index, token in enumerate(generated) if token in stop_ids), None)
            kept = generated if stop is None else generated[:stop]
            with self._tokenizer_lock:
                text = self.tokenizer.decode(kept, skip_special_tokens=True)
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=len(prompt.token_ids),
                    completion_tokens=len(kept) + (stop is not None),  # the stop token is generated too
                    finish_reason="length" if stop is None else "stop",
                )
            )
        return completions

    def _stop_ids(self, model) -> set[int]:
        configured = model.generation_config.eos_token_id
        ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
        return ids | {self.tokenizer.eos_token_id}
