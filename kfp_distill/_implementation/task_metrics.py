"""Task-aware metrics: each task type scored the way its community scores it, every value between 0 and 1.

| task type | metrics | per-example score (ranks the worst examples) |
|---|---|---|
| classification | accuracy, macro-F1 over the gold classes (scikit-learn) | 1 for the right class, else 0 |
| extractive_qa | SQuAD exact match and F1 (the official v1.1 script's normalisation and token F1) | F1 |
| summarization | ROUGE-L F-measure (rouge-score, Porter stemmer), the mean over examples | ROUGE-L F |
| math | accuracy: equal value by the safe arithmetic evaluator (`answers_match`) | 1 when equal, else 0 |
| free_text | exact match after SQuAD normalisation, corpus chrF (sacrebleu, divided by 100) | sentence chrF |

A missing answer (the teacher skipped a row) counts as an empty answer: wrong, and scored 0. Evaluate scores
the teacher and both students with them; tune-student scores the student's answers at each evaluation and
picks checkpoints by the task's main metric (`MAIN_METRIC`). Each metric, accuracy included, also comes as a
`bootstrap.Statistic`: the metric on any resample of the rows, for evaluate's confidence intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import fmean

import numpy as np

from kfp_distill._implementation.answers import answers_match, normalize_text, token_f1
from kfp_distill._implementation.bootstrap import Statistic, mean_statistic

METRICS_BY_TASK = {
    "classification": ("accuracy", "macro_f1"),
    "extractive_qa": ("exact_match", "f1"),
    "summarization": ("rouge_l",),
    "math": ("accuracy",),
    "free_text": ("exact_match", "chrf"),
}
# The metric that ranks checkpoints of one task: the smoother one where a task has two (F1 moves before exact
# match does; chrF before exact match), else its only one.
MAIN_METRIC = {
    "classification": "accuracy",
    "extractive_qa": "f1",
    "summarization": "rouge_l",
    "math": "accuracy",
    "free_text": "chrf",
}
METRIC_TITLES = {
    "accuracy": "Accuracy",
    "macro_f1": "Macro-F1",
    "exact_match": "Exact match",
    "f1": "F1 (SQuAD)",
    "rouge_l": "ROUGE-L F",
    "chrf": "chrF",
}
# The per-example score each task ranks examples by, as named in the report.
EXAMPLE_SCORE_TITLES = {
    "classification": "Correct",
    "extractive_qa": "F1 (SQuAD)",
    "summarization": "ROUGE-L F",
    "math": "Correct",
    "free_text": "chrF",
}
# The confusion matrix's column for predictions that name none of the gold classes.
OTHER_CLASS = "(other)"


@dataclass
class TaskScores:
    """One model's answers scored for a task: the task's metrics, and per example a score and a verdict.

    `statistics` holds, for `accuracy` and each of the task's metrics, the metric on a resample of the rows
    (the indices drawn); on all the rows in order it gives the metric's value.
    """

    values: dict[str, float]
    example_scores: list[float]
    correct: list[bool]
    statistics: dict[str, Statistic] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        """The share of examples answered correctly (right class, equal value, or exact match)."""
        return fmean(self.correct)


def squad_exact_match(prediction: str, gold: str) -> float:
    """SQuAD exact match: 1.0 when the answers are equal after the official normalisation, else 0.0."""
    return float(normalize_text(prediction) == normalize_text(gold))


def rouge_l(predictions: list[str], golds: list[str]) -> list[float]:
    """ROUGE-L F-measure of each prediction against its gold (longest common subsequence of stemmed tokens)."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(gold, prediction)["rougeL"].fmeasure for prediction, gold in zip(predictions, golds)]


def corpus_chrf(predictions: list[str], golds: list[str]) -> Statistic:
    """Corpus chrF (character 6-grams, beta 2, sacrebleu's defaults) of any resample of the rows, from 0 to 1.

    The n-gram counts of each row are taken once and summed over the rows drawn, as sacrebleu's own paired
    bootstrap (`sacrebleu.significance`) does with the same two methods.
    """
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    counts = np.asarray(metric._extract_corpus_statistics(predictions, [golds]))
    return lambda drawn: metric._compute_score_from_stats(counts[drawn].sum(axis=0).tolist()).score / 100


def chrf(predictions: list[str], golds: list[str]) -> tuple[float, list[float]]:
    """chrF (character 6-grams, beta 2, sacrebleu's defaults) of the corpus and of each sentence, from 0 to 1."""
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    corpus = corpus_chrf(predictions, golds)(np.arange(len(golds)))
    sentences = [metric.sentence_score(p, [g]).score / 100 for p, g in zip(predictions, golds)]
    return corpus, sentences


def class_names(golds: list[str]) -> dict[str, str]:
    """The gold classes: normalised name -> the spelling first seen in the gold labels, sorted by name."""
    names: dict[str, str] = {}
    for gold in golds:
        names.setdefault(normalize_text(gold), gold.strip())
    return dict(sorted(names.items()))


def _predicted_classes(predictions: list[str], classes: dict[str, str]) -> list[str]:
    normalised = [normalize_text(p) for p in predictions]
    return [p if p in classes else OTHER_CLASS for p in normalised]


def macro_f1(expected: list[str], predicted: list[str], classes: list[str]) -> Statistic:
    """Macro-F1 over the gold classes of any resample of the rows (scikit-learn's `f1_score(labels=classes,
    average="macro", zero_division=0)`, counted with numpy so that a thousand resamples take milliseconds).

    A class no row of the resample holds or predicts scores 0, as scikit-learn scores it; a prediction outside
    the classes is a miss of its row's class.
    """
    index = {name: i for i, name in enumerate(classes)}
    gold = np.asarray([index[name] for name in expected], dtype=int)
    # Outside the classes: one index past them, never a true positive and dropped from the predicted counts.
    guess = np.asarray([index.get(name, len(classes)) for name in predicted], dtype=int)

    def statistic(drawn: np.ndarray) -> float:
        gold_drawn, guess_drawn = gold[drawn], guess[drawn]
        true_positives = np.bincount(gold_drawn[gold_drawn == guess_drawn], minlength=len(classes))
        totals = np.bincount(gold_drawn, minlength=len(classes)) + np.bincount(
            guess_drawn, minlength=len(classes) + 1
        )[: len(classes)]
        f1 = np.divide(2 * true_positives, totals, out=np.zeros(len(classes)), where=totals > 0)
        return float(f1.mean())

    return statistic


def confusion_matrix(predictions: list[str | None], golds: list[str]) -> tuple[list[str], list[list[int]]]:
    """The confusion matrix of a classifier: rows are gold classes, columns predicted ones.

    Predictions naming no gold class (or missing) fall in a last `(other)` column, added only when needed.

    Returns:
        The category names (the gold classes as spelled in the labels) and the square matrix of counts.
    """
    from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

    classes = class_names(golds)
    predicted = _predicted_classes([p or "" for p in predictions], classes)
    labels = list(classes) + ([OTHER_CLASS] if OTHER_CLASS in predicted else [])
    matrix = sklearn_confusion_matrix([normalize_text(g) for g in golds], predicted, labels=labels)
    return [classes.get(label, OTHER_CLASS) for label in labels], matrix.tolist()


def score_answers(task_type: str, predictions: list[str | None], golds: list[str]) -> TaskScores:
    """Scores one model's answers against the gold labels with the task's metrics.

    Args:
        task_type: One of `METRICS_BY_TASK`.
        predictions: The model's answers, aligned with golds; None where the model gave none.
        golds: The gold labels.

    Returns:
        The task's metrics (`METRICS_BY_TASK[task_type]`), per-example scores and verdicts.
    """
    answers = [p or "" for p in predictions]
    every_row = np.arange(len(golds))
    if task_type == "classification":
        classes = class_names(golds)
        expected = [normalize_text(g) for g in golds]
        predicted = _predicted_classes(answers, classes)
        correct = [p == e for p, e in zip(predicted, expected)]
        # Over the gold classes only: an answer outside them is a miss of its row's class, not a new class.
        statistics = {"accuracy": mean_statistic(correct), "macro_f1": macro_f1(expected, predicted, list(classes))}
        example_scores = [float(c) for c in correct]
    elif task_type == "extractive_qa":
        exact = [squad_exact_match(p, g) for p, g in zip(answers, golds)]
        example_scores = [token_f1(p, g) for p, g in zip(answers, golds)]
        correct = [e == 1.0 for e in exact]
        statistics = {"exact_match": mean_statistic(exact), "f1": mean_statistic(example_scores)}
    elif task_type == "summarization":
        example_scores = rouge_l(answers, golds)
        correct = [answers_match(p, g) for p, g in zip(answers, golds)]
        statistics = {"rouge_l": mean_statistic(example_scores)}
    elif task_type == "math":
        correct = [answers_match(p, g) for p, g in zip(answers, golds)]
        example_scores = [float(c) for c in correct]
        statistics = {"accuracy": mean_statistic(correct)}
    elif task_type == "free_text":
        exact = [squad_exact_match(p, g) for p, g in zip(answers, golds)]
        _, example_scores = chrf(answers, golds)
        correct = [e == 1.0 for e in exact]
        statistics = {"exact_match": mean_statistic(exact), "chrf": corpus_chrf(answers, golds)}
    else:
        raise ValueError(f"unknown task type {task_type!r}; expected one of {', '.join(METRICS_BY_TASK)}")
    statistics.setdefault("accuracy", mean_statistic(correct))
    values = {name: statistics[name](every_row) for name in METRICS_BY_TASK[task_type]}
    return TaskScores(values, example_scores, correct, statistics)
