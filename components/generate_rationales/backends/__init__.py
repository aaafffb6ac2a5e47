"""Teacher backends, one per kind of teacher reference (`kfp_distill._implementation.teacher_reference` reads
references and documents their grammar)."""

from __future__ import annotations

from kfp_distill._implementation.retired_models import RetiredModelError, retired_teacher_message
from kfp_distill._implementation.teacher_reference import TeacherKind, TeacherReference

from .base import Completion, DecodingSettings, TeacherBackend, TeacherRequestError
from .precomputed import PrecomputedBackend

__all__ = [
    "Completion",
    "DecodingSettings",
    "PrecomputedBackend",
    "TeacherBackend",
    "TeacherRequestError",
    "backend_for",
]


def backend_for(
    teacher: TeacherReference, request_timeout_s: float = 600.0, project: str = "", location: str = ""
) -> TeacherBackend | PrecomputedBackend:
    """Builds the backend of a teacher reference's kind (imports each backend's client only when used).

    Args:
        teacher: The teacher reference, read by `parse_teacher_reference`.
        request_timeout_s: Seconds one HTTP attempt may take (endpoints and Vertex AI only).
        project: The Google Cloud project (Vertex AI teachers only, where it is required).
        location: The Vertex AI region (Vertex AI teachers only); empty: the global endpoint.

    Raises:
        RetiredModelError: A retired PaLM model, with the Gemini models to use instead.
        ValueError: A Vertex AI teacher without a project, a GGUF file that is not there, ..., before any
            request.
    """
    kind = teacher.kind
    if kind is TeacherKind.PRECOMPUTED:
        return PrecomputedBackend()
    if kind is TeacherKind.RETIRED_PALM:
        raise RetiredModelError(retired_teacher_message(teacher))
    if kind is TeacherKind.HUGGING_FACE:
        from .huggingface import HuggingFaceBackend

        return HuggingFaceBackend(teacher)
    if kind is TeacherKind.VERTEX_AI:
        from .gemini import GeminiBackend

        return GeminiBackend(teacher, project, location, request_timeout_s)
    if kind is TeacherKind.OPENAI_COMPATIBLE:
        from .openai_compatible import OpenAICompatibleBackend

        return OpenAICompatibleBackend(teacher, request_timeout_s)
    from .llama_cpp import LlamaCppBackend

    return LlamaCppBackend(teacher)
