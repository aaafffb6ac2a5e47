"""Teacher backends, chosen from `teacher_model_reference`.

  * `precomputed`: the dataset's rows already carry rationales;
  * `http(s)://<base_url>#<model>`: an OpenAI-compatible endpoint;
  * anything else: a GGUF model run by llama.cpp (catalog name, `.gguf` path or URI).
"""

from __future__ import annotations

from .base import Completion, DecodingSettings, TeacherBackend, TeacherRequestError
from .precomputed import PrecomputedBackend

PRECOMPUTED = "precomputed"

__all__ = [
    "Completion",
    "DecodingSettings",
    "PrecomputedBackend",
    "TeacherBackend",
    "TeacherRequestError",
    "backend_for",
]


def backend_for(teacher_model_reference: str, request_timeout_s: float = 600.0) -> TeacherBackend | PrecomputedBackend:
    """Builds the backend a teacher reference names (imports each backend's client only when used).

    Args:
        teacher_model_reference: See the module docstring.
        request_timeout_s: Seconds one HTTP attempt may take (endpoints only).
    """
    reference = teacher_model_reference.strip()
    if not reference:
        raise ValueError("teacher_model_reference is empty: name a GGUF model, an endpoint, or 'precomputed'")
    if reference == PRECOMPUTED:
        return PrecomputedBackend()
    if reference.startswith(("http://", "https://")) and not reference.endswith(".gguf"):
        from .openai_compatible import OpenAICompatibleBackend

        return OpenAICompatibleBackend(reference, request_timeout_s)  # explains '<base_url>#<model>' when '#' is missing
    from .llama_cpp import LlamaCppBackend

    return LlamaCppBackend(reference)
