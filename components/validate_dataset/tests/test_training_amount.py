"""How much training the data gets: passes over it, and warnings against the recommended settings."""

import pytest

from kfp_distill.components.validate_dataset.training_amount import training_amount


def test_the_statement_gives_the_examples_seen_and_the_passes_with_the_recommended_settings():
    amount = training_amount(1_000, "classification", 300, 8, enable_checkpoint_selection=False)
    assert amount.examples_seen == 2_400 and amount.passes == pytest.approx(2.4)
    assert amount.statement == (
        "300 steps x batch size 8 = 2,400 examples seen: 2.4 passes over the 1,000 training examples "
        "(recommended for classification: 100+ examples, 200-1000 steps)"
    )
    assert amount.warnings == []


def test_a_small_set_repeated_many_times_without_checkpoint_selection_is_warned_of():
    # 80 steps of 8 over 70 extractive-QA rows: 9 passes, the last checkpoint kept.
    amount = training_amount(70, "extractive_qa", 80, 8, enable_checkpoint_selection=False)
    assert amount.passes == pytest.approx(640 / 70)
    assert amount.warnings == [
        "train_steps 80 is far below the 200-800 steps recommended for extractive_qa (with 100+ examples)",
        "80 steps x batch size 8 go over the 70 training examples 9.1 times, and without checkpoint selection the "
        "last checkpoint is kept, likely past the best one: set enable_checkpoint_selection with an evaluation set, "
        "or give more examples or fewer steps (4 passes: 35 steps); recommended for extractive_qa: 100+ examples, "
        "200-800 steps",
    ]


def test_checkpoint_selection_on_an_evaluation_set_answers_the_repetition():
    assert training_amount(100, "classification", 300, 8, enable_checkpoint_selection=True).warnings == []
    [warning] = training_amount(100, "classification", 300, 8, True, evaluation_data=False).warnings
    assert "24.0 times, and checkpoint selection has no evaluation set to choose by" in warning


def test_far_outside_the_recommended_steps_is_warned_of_and_near_them_is_not():
    [below] = training_amount(5_000, "summarization", 300, 8, enable_checkpoint_selection=True).warnings
    assert below == "train_steps 300 is far below the 1000-1500 steps recommended for summarization (with 100-500+ examples)"
    [above] = training_amount(5_000, "classification", 2_001, 8, enable_checkpoint_selection=True).warnings
    assert above == "train_steps 2001 is far above the 200-1000 steps recommended for classification (with 100+ examples)"
    for steps in (100, 2_000):  # half the lower end, twice the upper end: outside, not far outside
        assert training_amount(5_000, "classification", steps, 8, enable_checkpoint_selection=True).warnings == []


def test_a_task_without_recommended_settings_gets_the_passes_and_the_repetition_warning_only():
    amount = training_amount(50, "math", 10_000, 8, enable_checkpoint_selection=False)
    assert amount.statement == "10,000 steps x batch size 8 = 80,000 examples seen: 1,600.0 passes over the 50 training examples"
    [warning] = amount.warnings
    assert warning.endswith("or give more examples or fewer steps (4 passes: 25 steps)")


def test_less_than_one_pass_says_how_many_examples_are_never_seen():
    amount = training_amount(10_000, "classification", 300, 8, enable_checkpoint_selection=False)
    assert amount.statement.startswith(
        "300 steps x batch size 8 = 2,400 examples seen: 0.24 passes over the 10,000 training examples "
        "(7,600 are never seen)"
    )
    assert amount.warnings == []


@pytest.mark.parametrize("steps, batch", [(0, 8), (300, 0), (-1, 8)])
def test_steps_and_batch_size_must_be_positive(steps, batch):
    with pytest.raises(ValueError, match="must be a positive whole number"):
        training_amount(100, "classification", steps, batch, enable_checkpoint_selection=False)
