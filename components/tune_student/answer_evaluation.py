"""Judging checkpoints by their answers: the student answers evaluation rows, scored with the task's metric.

Token accuracy under teacher forcing says little about the answer the student generates (on extractive QA a
student at 81% token accuracy matched 22% of the answers exactly), so at each evaluation the student also
answers the evaluation rows greedily, its answers are cut as evaluate cuts them (`label_answer`) and scored
with the task type's own metrics (`task_metrics.score_answers`: accuracy, SQuAD exact match and F1, ROUGE-L,
chrF). The work is bounded: at most `TuningConfig.max_answered_evaluation_rows` rows (a fixed sample when
there are more), answers at most as long as the longest gold answer plus a margin, inputs cut as tuning cuts them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from kfp_distill._implementation.answers import label_answer
from kfp_distill._implementation.student import generate_batched, task_marker_ids
from kfp_distill._implementation.task_metrics import MAIN_METRIC, METRICS_BY_TASK, score_answers

from .data import EvaluationRow

# New tokens an answer may take beyond the longest gold answer (a longer answer is wrong anyway), and the most
# in any case: a runaway generation costs every evaluation that much.
ANSWER_TOKEN_MARGIN = 16
MAX_ANSWER_TOKENS = 256


@dataclass
class AnswerEvaluation:
    """The evaluation rows the student answers at each evaluation, and how they are scored.

    Attributes:
        task_type: One of `task_metrics.METRICS_BY_TASK`: which metrics score the answers.
        input_texts: The inputs the student answers (cut to what tuning reads of them).
        golds: Their gold answers.
        max_new_tokens: The most tokens generated for one answer.
        tokenizer: The student's tokenizer.
    """

    task_type: str
    input_texts: list[str]
    golds: list[str]
    max_new_tokens: int
    tokenizer: object

    @classmethod
    def of_rows(
        cls,
        rows: Sequence[EvaluationRow],
        task_type: str,
        tokenizer,
        max_rows: int,
        max_input_tokens: int,
        context_tokens: int | None = None,
        seed: int = 0,
    ) -> AnswerEvaluation:
        """The rows to answer: all of them, or a sample of `max_rows` drawn from `seed` (the same every evaluation).

        Args:
            max_input_tokens: Inputs keep their first tokens, as tuning cuts them.
            context_tokens: A causal student's context: the input, task marker and answer must fit it; None for
                an encoder-decoder.
        """
        if len(rows) > max_rows:
            rows = [rows[index] for index in sorted(random.Random(seed).sample(range(len(rows)), max_rows))]
        longest = max(len(tokenizer(row.output_text, add_special_tokens=False)["input_ids"]) for row in rows)
        max_new_tokens = min(longest + ANSWER_TOKEN_MARGIN, MAX_ANSWER_TOKENS)
        if context_tokens is not None:
            room = context_tokens - len(task_marker_ids(tokenizer)) - max_new_tokens - 1  # and a start token
            max_input_tokens = max(1, min(max_input_tokens, room))
        inputs = [_first_tokens(tokenizer, row.input_text, max_input_tokens) for row in rows]
        return cls(task_type, inputs, [row.output_text for row in rows], max_new_tokens, tokenizer)

    @property
    def main_metric(self) -> str:
        """The metric that ranks checkpoints (`task_metrics.MAIN_METRIC`)."""
        return MAIN_METRIC[self.task_type]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The names of the scores `score` gives."""
        return METRICS_BY_TASK[self.task_type]

    def answers(self, model, batch_size: int, share: int = 0, shares: int = 1) -> dict[int, str]:
        """The student's answers to its share of the rows (every `shares`-th row from `share`), by row index.

        The model answers in evaluation mode (no dropout) and is put back in the mode it was in.
        """
        indices = list(range(share, len(self.input_texts), shares))
        if not indices:
            return {}
        was_training = model.training
        model.eval()
        try:
            # Decoded as evaluate, predict and serve decode them: an extractive answer is a span of its context.
            outputs = generate_batched(
                model, self.tokenizer, [self.input_texts[i] for i in indices], "label", self.max_new_tokens, batch_size,
                task_type=self.task_type,
            )
        finally:
            model.train(was_training)
        return {index: label_answer(output, self.task_type) for index, output in zip(indices, outputs)}

    def score(self, answers: dict[int, str]) -> dict[str, float]:
        """The task's metrics of the answers to every row, by metric name."""
        return score_answers(self.task_type, [answers[i] for i in range(len(self.golds))], self.golds).values


def _first_tokens(tokenizer, text: str, max_tokens: int) -> str:
    """`text`, or the text of its first `max_tokens` tokens when it is longer."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])
