"""A teacher behind any OpenAI-compatible HTTP endpoint: llama.cpp's server, vLLM, OpenAI, ..."""

from __future__ import annotations

import os

from .base import Completion, DecodingSettings, TeacherRequestError

# The key comes from the environment only: a pipeline parameter would be stored in the run's metadata.
API_KEY_VARIABLES = ("KFP_DISTILL_TEACHER_API_KEY", "OPENAI_API_KEY")
MAX_RETRIES = 5
TIMEOUT_S = 600.0


def parse_reference(reference: str) -> tuple[str, str]:
    """Splits `<base_url>#<model>` (`http://127.0.0.1:8080/v1#qwen`) into (base_url, model)."""
    base_url, separator, model = reference.rpartition("#")
    if not separator or not base_url.startswith(("http://", "https://")) or not model.strip():
        raise ValueError(
            f"teacher_model_reference '{reference}': an OpenAI-compatible endpoint is written "
            "'<base_url>#<model>', e.g. 'http://127.0.0.1:8080/v1#qwen'"
        )
    return base_url, model.strip()


def api_key_from_environment() -> str:
    for variable in API_KEY_VARIABLES:
        if os.environ.get(variable):
            return os.environ[variable]
    return "none"  # local servers (llama.cpp, vLLM) accept any key


class OpenAICompatibleBackend:
    """Chat completions through the `openai` client, which retries with backoff and times out.

    Args:
        reference: `<base_url>#<model>`.
    """

    def __init__(self, reference: str):
        from openai import OpenAI

        self.base_url, self.model = parse_reference(reference)
        self.identity = f"openai-compatible:{self.base_url.rstrip('/')}#{self.model}"
        self._client = OpenAI(
            base_url=self.base_url, api_key=api_key_from_environment(), max_retries=MAX_RETRIES, timeout=TIMEOUT_S
        )

    def complete(self, messages: list[dict[str, str]], settings: DecodingSettings) -> Completion:
        import openai

        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=settings.temperature,
                max_tokens=settings.max_new_tokens,
                seed=settings.seed,
            )
        except openai.OpenAIError as error:
            raise TeacherRequestError(f"{self.base_url}: {error}") from error
        if not response.choices:
            raise TeacherRequestError(f"{self.base_url}: the response holds no choices")
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason,
        )
