"""The teacher's view of a task: its type (given or inferred), when two answers count as the same, and votes.

The type (`kfp_distill._implementation.tasks`) picks the teacher's system instruction (prompts.py) and the
comparison used both for agreement with gold labels and for self-consistency votes: equal values when both
answers are numbers or arithmetic expressions; else equal after SQuAD normalisation (`answers_match`); for
summaries and free text also a word-overlap F1 of at least `OVERLAP_F1`, since two good summaries rarely
match word for word.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from kfp_distill._implementation.answers import answers_match, arithmetic_value, normalize_text, token_f1
from kfp_distill._implementation.tasks import resolve_task_type

from .prompts import system_instruction

OVERLAP_F1 = 0.5
_LOOSE_TYPES = ("summarization", "free_text")


@dataclass(frozen=True)
class TaskProfile:
    """A dataset's task type, why it was chosen, and the classes its labels name (classification only)."""

    task_type: str
    reason: str
    classes: tuple[str, ...] = ()

    @property
    def system_instruction(self) -> str:
        return system_instruction(self.task_type, self.classes)

    def agrees(self, prediction: str, reference: str) -> bool:
        """Whether two answers of this task count as the same answer."""
        # By value first: normalisation drops operators, so "( 3 + 4 )" and "( 3 * 4 )" would read alike.
        values = arithmetic_value(prediction), arithmetic_value(reference)
        if None not in values:
            return math.isclose(*values, rel_tol=1e-6, abs_tol=1e-6)
        if answers_match(prediction, reference):
            return True
        return self.task_type in _LOOSE_TYPES and token_f1(prediction, reference) >= OVERLAP_F1

    def canonical(self, label: str) -> str:
        """A class written with other case or punctuation is written the way the labels write it."""
        normalized = normalize_text(label)
        return next((name for name in self.classes if normalize_text(name) == normalized), label)


def task_profile(task_type: str, input_texts: Sequence[str], labels: Sequence[str | None]) -> TaskProfile:
    """The task profile of a dataset.

    Args:
        task_type: `auto` (inferred from the rows), or a task type (`TASK_TYPES`).
        input_texts: Every row's input_text.
        labels: Every row's gold label, None where it has none.

    Raises:
        ValueError: An unknown task type.
    """
    chosen = resolve_task_type(task_type, input_texts, labels)
    classes: dict[str, str] = {}  # normalized -> as first written, in order of first appearance
    if chosen.name == "classification":
        for label in labels:
            if label and label.strip():
                classes.setdefault(normalize_text(label), label.strip())
    return TaskProfile(chosen.name, chosen.reason, tuple(classes.values()))


@dataclass(frozen=True)
class Vote:
    """A self-consistency vote: the sample that speaks for the majority, and how the votes fell."""

    winner: int  # index of the first sample whose answer is the majority answer
    votes: int  # samples that gave the majority answer
    runner_up: int  # samples that gave the next most frequent answer (0: unanimous)
    samples: int  # samples that gave an answer


def majority_vote(answers: Sequence[str], agrees: Callable[[str, str], bool]) -> Vote:
    """The majority answer among samples; a tie goes to the answer given first (the lowest seed).

    Each answer joins the first group whose first answer it `agrees` with.
    """
    if not answers:
        raise ValueError("a vote needs at least one answer")
    groups: list[list[int]] = []
    for index, answer in enumerate(answers):
        group = next((group for group in groups if agrees(answer, answers[group[0]])), None)
        if group is None:
            groups.append([index])
        else:
            group.append(index)
    ranked = sorted(groups, key=len, reverse=True)  # stable: among equal groups, the earliest first
    return Vote(
        winner=ranked[0][0],
        votes=len(ranked[0]),
        runner_up=len(ranked[1]) if len(ranked) > 1 else 0,
        samples=len(answers),
    )
