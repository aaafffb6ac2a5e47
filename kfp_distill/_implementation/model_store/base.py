"""What both backends of the model store hand out: a registered model's listing entry and the loaded model."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from kfp_distill._implementation.model_record import read_record


@dataclass
class RegisteredModelInfo:
    """One registered version of a distilled student."""

    uri: str  # what load_model and `kfp-distill predict` take: `models:/NAME/VERSION` or a Vertex AI resource name
    name: str
    version: int
    teacher: str | None
    student: str | None
    created: datetime
    metrics: dict[str, float] = field(default_factory=dict)


def answer(predictor: Any, texts: Sequence[str], with_rationale: bool = False, task_type: str = "") -> list:
    """A student's answers: the label task's answer per text, and with_rationale the rationale task's output too.

    Args:
        predictor: A `StudentPredictor` of the distilled model.
        texts: Input texts, formatted like the training inputs.
        with_rationale: Also generate each answer's rationale (a second generation per input).
        task_type: The task type the student was tuned for (its model record's `task_type`): answers are
            decoded and cut as evaluation decodes and scores them (an extractive-QA answer a span of its
            input's context, a summary whole, any other answer to its line). Empty: unknown.

    Returns:
        One label (str) per input, or with_rationale: one `{"label": ..., "rationale": ...}` dict per input.
    """
    from kfp_distill._implementation.student import label_answers

    labels = [label for _, label in label_answers(predictor, texts, task_type)]
    if not with_rationale:
        return labels
    rationales = [p.text for p in predictor.predict(texts, task="rationale")]
    return [{"label": label, "rationale": rationale} for label, rationale in zip(labels, rationales)]


class DistilledModel:
    """A registered distilled student, loaded and ready to answer.

    Attributes:
        uri: The registry's name for it (`models:/NAME/VERSION` or a Vertex AI resource name).
        predictor: Its `StudentPredictor`: raw generations with their tokenizer (what `kfp-distill serve`
            answers with, token counts included), for when `predict`'s extracted labels are not what is wanted.
        task_type: The task type it was tuned for, from its model record; empty when not recorded.
    """

    def __init__(self, uri: str, predictor: Any, task_type: str = ""):
        self.uri = uri
        self.predictor = predictor
        self.task_type = task_type

    def predict(self, texts: str | Sequence[str], with_rationale: bool = False) -> list:
        """The student's answers, formatted like its training inputs.

        Args:
            texts: One input text or several.
            with_rationale: Also generate each answer's rationale (a second generation per input).

        Returns:
            One label (str) per input, or with_rationale: one `{"label": ..., "rationale": ...}` dict per input.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        return answer(self.predictor, texts, with_rationale, self.task_type)


def load_student(student_dir: str | os.PathLike) -> tuple[Any, str]:
    """A tuned model directory's `StudentPredictor` and the task type its model record names (empty if none);
    its weights are read as data (safetensors, no remote code)."""
    from kfp_distill._implementation.student import StudentPredictor

    return StudentPredictor(str(student_dir)), read_record(student_dir).get("task_type", "")
