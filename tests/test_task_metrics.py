"""Each metric family against values worked out by hand (the working is in the comments)."""

import numpy as np
import pytest

from kfp_distill._implementation.answers import token_f1
from kfp_distill._implementation.task_metrics import (
    METRICS_BY_TASK,
    OTHER_CLASS,
    chrf,
    confusion_matrix,
    corpus_chrf,
    macro_f1,
    rouge_l,
    score_answers,
    squad_exact_match,
)


def test_classification_accuracy_macro_f1_and_confusion_matrix():
    golds = ["positive", "positive", "negative", "negative", "neutral"]
    predictions = ["Positive", "negative", "negative.", "negative", "maybe"]
    # Normalised predictions: positive, negative, negative, negative, (other): 3 of 5 right, accuracy 0.6.
    # Per gold class (an answer outside the classes is a miss of its row's class, not a class of its own):
    #   negative: TP 2, FP 1 (row 2), FN 0 -> P 2/3, R 1,   F1 0.8
    #   neutral:  TP 0, FP 0,         FN 1 -> F1 0
    #   positive: TP 1, FP 0,         FN 1 -> P 1,   R 1/2, F1 2/3
    # Macro-F1 = (0.8 + 0 + 2/3) / 3 = 0.48889
    scores = score_answers("classification", predictions, golds)
    assert scores.values["accuracy"] == pytest.approx(0.6)
    assert scores.values["macro_f1"] == pytest.approx((0.8 + 0 + 2 / 3) / 3)
    assert scores.correct == [True, False, True, True, False]
    assert scores.accuracy == pytest.approx(0.6)
    # Rows gold, columns predicted, classes sorted, then (other) because "maybe" names no class.
    categories, matrix = confusion_matrix(predictions, golds)
    assert categories == ["negative", "neutral", "positive", "(other)"]
    assert matrix == [
        [2, 0, 0, 0],
        [0, 0, 0, 1],
        [1, 0, 1, 0],
        [0, 0, 0, 0],
    ]


def test_confusion_matrix_keeps_the_gold_spelling_and_adds_other_only_when_needed():
    categories, matrix = confusion_matrix(["business", None], ["Business", "Sports"])
    # A missing answer falls in (other).
    assert categories == ["Business", "Sports", "(other)"]
    assert matrix == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert confusion_matrix(["sports", "art"], ["sports", "art"]) == (["art", "sports"], [[1, 0], [0, 1]])


@pytest.mark.parametrize(
    ("prediction", "gold", "exact", "f1"),
    [
        # Official normalisation: lower case, punctuation and articles dropped -> equal.
        ("The Eiffel Tower.", "eiffel tower", 1.0, 1.0),
        # "64 parishes" vs "64": 1 common token, P 1/2, R 1 -> F1 2/3.
        ("the 64 parishes", "64", 0.0, 2 / 3),
        # "paris france" vs "paris": P 1/2, R 1 -> F1 2/3.
        ("Paris, France", "Paris", 0.0, 2 / 3),
        # "in 1998 and 1999" vs "1999": 1 of 4 predicted tokens, R 1 -> P 1/4, F1 2*(1/4)/(5/4) = 0.4.
        ("in 1998 and 1999", "1999", 0.0, 0.4),
        ("London", "Paris", 0.0, 0.0),
        ("", "Paris", 0.0, 0.0),
    ],
)
def test_squad_exact_match_and_f1(prediction, gold, exact, f1):
    assert squad_exact_match(prediction, gold) == exact
    assert token_f1(prediction, gold) == pytest.approx(f1)


def test_extractive_qa_scores_average_over_examples():
    scores = score_answers("extractive_qa", ["The Eiffel Tower.", "the 64 parishes", None], ["eiffel tower", "64", "x"])
    # EM (1 + 0 + 0) / 3; F1 (1 + 2/3 + 0) / 3 = 5/9; a missing answer scores 0.
    assert scores.values == pytest.approx({"exact_match": 1 / 3, "f1": 5 / 9})
    assert scores.example_scores == pytest.approx([1.0, 2 / 3, 0.0])
    assert scores.correct == [True, False, False]


def test_rouge_l_f_measure():
    predictions = ["the cat on the mat", "cats running", "dog"]
    golds = ["the cat sat on the mat", "cat runs", "a cat"]
    scores = rouge_l(predictions, golds)
    # 1. LCS "the cat on the mat" = 5 tokens; P 5/5, R 5/6 -> F = 2 * (5/6) / (11/6) = 10/11.
    # 2. Porter stems: cats -> cat, running -> run, runs -> run: identical -> 1.
    # 3. No common token -> 0.
    assert scores == pytest.approx([10 / 11, 1.0, 0.0])
    summary = score_answers("summarization", predictions, golds)
    assert summary.values["rouge_l"] == pytest.approx((10 / 11 + 1.0) / 3)


def test_chrf_sentence_and_corpus():
    # sacrebleu's chrF: character n-grams of order 1..6 (spaces removed), precision and recall averaged over
    # the orders both sides have n-grams of, then F-beta with beta 2: 5PR / (4P + R).
    # "abc" vs "abd": order 1 P=R=2/3, order 2 P=R=1/2, order 3 P=R=0 -> P=R=7/18 -> F 7/18.
    # "ab" vs "abcd": order 1 P 1, R 2/4; order 2 P 1, R 1/3; order 3 has no hypothesis n-gram
    #   -> P 1, R 5/12 -> F = 5 * 5/12 / (4 + 5/12) = 25/53.
    # Corpus: the n-gram counts summed first: order 1 hyp 5, ref 7, match 4; order 2 hyp 3, ref 5, match 2;
    #   order 3 hyp 1, ref 3, match 0 -> P (4/5 + 2/3 + 0)/3 = 22/45, R (4/7 + 2/5 + 0)/3 = 34/105.
    corpus, sentences = chrf(["abc", "ab"], ["abd", "abcd"])
    assert sentences == pytest.approx([7 / 18, 25 / 53])
    p, r = 22 / 45, 34 / 105
    assert corpus == pytest.approx(5 * p * r / (4 * p + r))
    assert chrf(["same words"], ["same words"]) == (pytest.approx(1.0), pytest.approx([1.0]))


def test_free_text_exact_match_and_chrf():
    scores = score_answers("free_text", ["abc", "The ab."], ["abd", "ab"])
    # Exact match after normalisation: "abc" != "abd"; "the ab." -> "ab" == "ab".
    assert scores.values["exact_match"] == pytest.approx(0.5)
    assert scores.correct == [False, True]
    assert scores.example_scores == pytest.approx([7 / 18, chrf(["The ab."], ["ab"])[1][0]])


def test_math_scores_by_value_with_the_safe_evaluator():
    # ( 84.0 / 2.0 ) = 42 and "= 42 apples" ends in 42: right; 6 * 7 = 42 != 41; __import__ is never run.
    predictions = ["( 84.0 / 2.0 )", "42 apples", "6 * 7", "__import__('os')"]
    scores = score_answers("math", predictions, ["42", "42", "41", "1"])
    assert scores.values == {"accuracy": 0.5}
    assert scores.correct == [True, True, False, False]


def test_every_task_type_has_its_metrics_and_an_unknown_one_is_refused():
    for task_type, names in METRICS_BY_TASK.items():
        assert set(score_answers(task_type, ["a b"], ["a b"]).values) == set(names)
    with pytest.raises(ValueError, match="unknown task type"):
        score_answers("translation", ["a"], ["a"])


def test_macro_f1_of_a_resample_is_scikit_learns_on_the_rows_drawn():
    from sklearn.metrics import f1_score

    from kfp_distill._implementation.bootstrap import resample_indices

    classes = ["a", "b", "c", "d"]
    rng = np.random.default_rng(1)
    expected = [classes[i] for i in rng.integers(0, 4, 40)]
    predicted = [(classes + [OTHER_CLASS])[i] for i in rng.integers(0, 5, 40)]
    statistic = macro_f1(expected, predicted, classes)
    for drawn in resample_indices(40, resamples=50):
        gold, guess = [expected[i] for i in drawn], [predicted[i] for i in drawn]
        direct = f1_score(gold, guess, labels=classes, average="macro", zero_division=0)
        assert statistic(drawn) == pytest.approx(direct)


def test_corpus_chrf_of_a_resample_is_sacrebleus_corpus_score_of_the_rows_drawn():
    from sacrebleu.metrics import CHRF

    predictions, golds = ["abc", "ab", "a cat sat", "dogs"], ["abd", "abcd", "the cat sat", "a dog"]
    statistic = corpus_chrf(predictions, golds)
    for drawn in ([0, 1, 2, 3], [2, 2, 0, 1], [3, 3, 3, 3]):
        direct = CHRF().corpus_score([predictions[i] for i in drawn], [[golds[i] for i in drawn]]).score / 100
        assert statistic(np.asarray(drawn)) == pytest.approx(direct)


@pytest.mark.parametrize(
    "task_type, predictions, golds",
    [
        ("classification", ["pos", "neg", "maybe", "pos"], ["pos", "pos", "neg", "neg"]),
        ("extractive_qa", ["the cat", "a dog", "x"], ["cat", "dog barked", "y"]),
        ("free_text", ["abc", "The ab."], ["abd", "ab"]),
        ("math", ["2", "3"], ["2", "4"]),
    ],
)
def test_each_metrics_statistic_on_every_row_is_its_value(task_type, predictions, golds):
    scores = score_answers(task_type, predictions, golds)
    every_row = np.arange(len(golds))
    assert set(scores.statistics) == {"accuracy", *scores.values}
    for name, value in scores.values.items():
        assert scores.statistics[name](every_row) == pytest.approx(value), name
    assert scores.statistics["accuracy"](every_row) == pytest.approx(scores.accuracy)
