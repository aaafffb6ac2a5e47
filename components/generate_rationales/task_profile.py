"""The teacher's view of a task: its type (given or inferred), when two answers count as the same, and votes.

The type (`kfp_distill._implementation.tasks`) picks the teacher's system instruction (prompts.py) and the
comparison used both for agreement with gold labels and for self-consistency votes: equal values when both
answers are numbers or arithmetic expressions; else equal after SQuAD normalisation (`answers_match`); for
summaries and free text also a word-overlap F1 of at least `OVERLAP_F1`, since two good summaries rarely
match word for word.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from kfp_distill._implementation.answers import answers_match, arithmetic_value, normalize_text, token_f1
from kfp_distill._implementation.tasks import resolve_task_type

from .prompts import DEFAULT_RATIONALE_LENGTH, system_instruction

OVERLAP_F1 = 0.5
_LOOSE_TYPES = ("summarization", "free_text")


# A list of classes or options written into an instruction, as the contract's examples do:
# "... into one of the following classes: [business, entertainment] Text: ...".
_INSTRUCTION_CLASSES = re.compile(
    r"\b(?:class(?:es)?|labels?|categor(?:y|ies)|options?|choices?|answers?)\b[^\[\]\n]{0,40}?\[([^\[\]\n]+)\]", re.I
)
MAX_INSTRUCTION_CLASSES = 50


def instruction_classes(input_text: str) -> tuple[str, ...]:
    """The classes an input's instruction lists in brackets (`classes: [business, entertainment]`), or ()."""
    found = _INSTRUCTION_CLASSES.search(input_text)
    if not found:
        return ()
    names = [name.strip().strip("'\"").strip() for name in found.group(1).split(",")]
    names = list(dict.fromkeys(name for name in names if name))
    return tuple(names) if 2 <= len(names) <= MAX_INSTRUCTION_CLASSES else ()


@dataclass(frozen=True)
class TaskProfile:
    """A dataset's task type, why it was chosen, and (classification only) the classes its answers take.

    `classes` are the dataset's classes; with `per_row_classes` each input lists its own options
    (multiple choice), which `classes_for` returns instead.
    """

    task_type: str
    reason: str
    classes: tuple[str, ...] = ()
    class_source: str = ""
    per_row_classes: bool = False

    def classes_for(self, input_text: str) -> tuple[str, ...]:
        """The classes an answer to this input may take; () when they are not known."""
        if self.task_type != "classification":
            return ()
        return (instruction_classes(input_text) or self.classes) if self.per_row_classes else self.classes

    def system_instruction(self, answer_format: str, rationale_length: str = DEFAULT_RATIONALE_LENGTH) -> str:
        classes = () if self.per_row_classes else self.classes
        return system_instruction(self.task_type, classes, answer_format, rationale_length)

    def agrees(self, prediction: str, reference: str) -> bool:
        """Whether two answers of this task count as the same answer."""
        # By value first: normalisation drops operators, so "( 3 + 4 )" and "( 3 * 4 )" would read alike.
        values = arithmetic_value(prediction), arithmetic_value(reference)
        if None not in values:
            return math.isclose(*values, rel_tol=1e-6, abs_tol=1e-6)
        if answers_match(prediction, reference):
            return True
        return self.task_type in _LOOSE_TYPES and token_f1(prediction, reference) >= OVERLAP_F1

    def canonical(self, label: str, input_text: str = "") -> str:
        """A class written with other case or punctuation is written the way the task writes it."""
        normalized = normalize_text(label)
        return next((name for name in self.classes_for(input_text) if normalize_text(name) == normalized), label)


def task_profile(
    task_type: str, input_texts: Sequence[str], labels: Sequence[str | None], class_names: Sequence[str] = ()
) -> TaskProfile:
    """The task profile of a dataset.

    The classes of a classification task come from `class_names` when given, else from the labels when
    some rows have one, else from the instructions in the inputs: one list shared by every input, or each
    input's own options when the lists differ.

    Args:
        task_type: `auto` (inferred from the rows), or a task type (`TASK_TYPES`).
        input_texts: Every row's input_text.
        labels: Every row's gold label, None where it has none.
        class_names: The classes, as the user names them; empty: found as above.

    Raises:
        ValueError: An unknown task type.
    """
    chosen = resolve_task_type(task_type, input_texts, labels)
    if chosen.name != "classification":
        return TaskProfile(chosen.name, chosen.reason)
    given = tuple(dict.fromkeys(name.strip() for name in class_names if name.strip()))
    if given:
        return TaskProfile(chosen.name, chosen.reason, given, "given as class_names")
    classes: dict[str, str] = {}  # normalized -> as first written, in order of first appearance
    for label in labels:
        if label and label.strip():
            classes.setdefault(normalize_text(label), label.strip())
    if classes:
        return TaskProfile(chosen.name, chosen.reason, tuple(classes.values()), "from the labeled rows")
    listed = [instruction_classes(text) for text in input_texts]
    if any(listed) and len(set(listed)) == 1:
        return TaskProfile(chosen.name, chosen.reason, listed[0], "from the instruction in the inputs")
    if any(listed):
        return TaskProfile(
            chosen.name, chosen.reason, (), "each input's own list of options", per_row_classes=True
        )
    return TaskProfile(chosen.name, chosen.reason, (), "not known (no class_names, labels or listed classes)")


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
