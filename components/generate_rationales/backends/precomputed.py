"""The "precomputed" teacher: the dataset already carries the rationales, so nothing is asked."""

from __future__ import annotations

from kfp_distill._implementation.answers import split_completion
from kfp_distill._implementation.jsonl import DatasetError

from ..answer_format import TEXT, render_answer
from .base import Completion


class PrecomputedBackend:
    """Turns each row's own `rationale` (and `output_text`) into the completion a teacher would give."""

    identity = "precomputed"

    def completion_for(self, row: dict, line: int, dataset_uri: str) -> Completion:
        """The row's rationale, ending with "The answer is <output_text>." unless it states an answer.

        Raises:
            DatasetError: The row has no rationale, or neither a label nor an answer in its rationale.
        """
        rationale = row.get("rationale")
        if not isinstance(rationale, str) or not rationale.strip():
            raise DatasetError(
                dataset_uri, "teacher 'precomputed' needs a non-empty rationale on every row", line, "rationale"
            )
        text = rationale.strip()
        if split_completion(text)[1] is None:
            label = row.get("output_text")
            if not label:
                raise DatasetError(
                    dataset_uri,
                    "teacher 'precomputed' needs output_text when the rationale states no answer",
                    line,
                    "output_text",
                )
            text = render_answer(text, label, TEXT)
        return Completion(text=text, prompt_tokens=0, completion_tokens=0, finish_reason="precomputed")
