"""Teacher backends, chosen from `teacher_model_reference`.

  * `precomputed`: the dataset's rows already carry rationales;
  * `gemini-<...>` (`gemini-2.5-flash`, `gemini-2.0-flash-001`) or `vertex:<model>`: a model on Vertex AI,
    through the `google-genai` SDK, in the pipeline's `project` and `location` (retired PaLM names such as
    `text-unicorn@001` are refused with the current Gemini models to use instead);
  * `http(s)://<base_url>#<model>`: an OpenAI-compatible endpoint;
  * `hf:<model>`: a Hugging Face model run in-process by `transformers` (a GPU when there is one), batched;
  * anything else: a GGUF model run by llama.cpp (catalog name, `.gguf` path or URI).
"""

from __future__ import annotations

from .base import Completion, DecodingSettings, TeacherBackend, TeacherRequestError
from .gemini import is_vertex_reference
from .precomputed import PrecomputedBackend

PRECOMPUTED = "precomputed"
HUGGING_FACE_PREFIX = "hf:"

__all__ = [
    "Completion",
    "DecodingSettings",
    "PrecomputedBackend",
    "TeacherBackend",
    "TeacherRequestError",
    "backend_for",
]


def backend_for(
    teacher_model_reference: str, request_timeout_s: float = 600.0, project: str = "", location: str = ""
) -> TeacherBackend | PrecomputedBackend:
    """Builds the backend a teacher reference names (imports each backend's client only when used).

    Args:
        teacher_model_reference: See the module docstring.
        request_timeout_s: Seconds one HTTP attempt may take (endpoints and Vertex AI only).
        project: The Google Cloud project (Vertex AI teachers only, where it is required).
        location: The Vertex AI region (Vertex AI teachers only); empty: the global endpoint.

    Raises:
        ValueError: A reference that names no usable teacher (an empty one, a Vertex AI model with no
            project, a retired PaLM model, an endpoint without `#<model>`, ...), before any request.
    """
    reference = teacher_model_reference.strip()
    if not reference:
        raise ValueError("teacher_model_reference is empty: name a GGUF model, an endpoint, or 'precomputed'")
    if reference == PRECOMPUTED:
        return PrecomputedBackend()
    if reference.startswith(HUGGING_FACE_PREFIX):
        from .huggingface import HuggingFaceBackend

        return HuggingFaceBackend(reference)
    if is_vertex_reference(reference) and not reference.endswith(".gguf"):
        from .gemini import GeminiBackend

        return GeminiBackend(reference, project, location, request_timeout_s)
    if reference.startswith(("http://", "https://")) and not reference.endswith(".gguf"):
        from .openai_compatible import OpenAICompatibleBackend

        return OpenAICompatibleBackend(reference, request_timeout_s)  # explains '<base_url>#<model>' when '#' is missing
    from .llama_cpp import LlamaCppBackend

    return LlamaCppBackend(reference)
