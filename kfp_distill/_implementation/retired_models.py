"""Model names Google has retired on Vertex AI: one list, read by the teacher reference, the teacher and the
preflight checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kfp_distill._implementation.models import DEFAULT_STUDENT

if TYPE_CHECKING:  # the teacher reference reads this module's list to tell a retired model
    from kfp_distill._implementation.teacher_reference import TeacherReference

# PaLM 2 text, chat and code models, retired by Google (text-unicorn@001 was the managed distillation's
# teacher, text-bison@002 its student).
RETIRED_PREFIXES = ("text-unicorn", "text-bison", "chat-bison", "code-bison", "codechat-bison", "code-gecko")
CURRENT_GEMINI_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite")


class RetiredModelError(ValueError):
    """A model reference that names a model Google has retired."""


def short_model_name(model: str) -> str:
    """A Vertex AI model's own name: `publishers/google/models/Text-Bison@002` -> `text-bison@002`."""
    return model.strip().rsplit("/", 1)[-1].lower()


def is_retired(model: str) -> bool:
    """Whether a model name or a path ending in one is a retired PaLM model (`text-bison@002`, a resource path)."""
    return short_model_name(model).startswith(RETIRED_PREFIXES)


def retired_teacher_message(teacher: TeacherReference) -> str | None:
    """What to say about a retired teacher (with the Gemini models to use instead); None for any other."""
    if not teacher.is_retired:
        return None
    return (
        f"teacher_model_reference '{teacher.text}' is a PaLM model that Google has retired on Vertex AI "
        f"(text-unicorn@001 was the managed distillation's teacher); use a current Gemini model instead, "
        f"e.g. {', '.join(CURRENT_GEMINI_MODELS)}"
    )


def retired_student_message(reference: str) -> str | None:
    """What to say about a retired student (with the open students to use instead); None for any other."""
    if not is_retired(reference):
        return None
    return (
        f"student_model_reference '{reference}' is a PaLM model that Google has retired on Vertex AI "
        f"(text-bison@002 was the managed distillation's student) and whose weights cannot be tuned here; "
        f"use an open model instead: '{DEFAULT_STUDENT}' (the default), a Hugging Face id such as "
        f"'HuggingFaceTB/SmolLM2-360M-Instruct', or a model folder's path or URI"
    )
