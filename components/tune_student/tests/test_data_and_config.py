import functools

import pytest
import torch

from kfp_distill._implementation.jsonl import DatasetError, write_jsonl
from kfp_distill._implementation.student import student_prompt, task_marker_ids
from kfp_distill.components.tune_student.config import RECOMMENDED_LEARNING_RATES, TuningConfig
from kfp_distill.components.tune_student.data import (
    IGNORE_INDEX,
    EvaluationRow,
    TaskPrefixCollator,
    TrainingRow,
    encode_example,
    prepare_evaluation_examples,
    prepare_training_examples,
    read_evaluation_rows,
    read_training_rows,
)


def test_learning_rate_is_the_method_rate_times_the_multiplier():
    assert TuningConfig("m").learning_rate == RECOMMENDED_LEARNING_RATES["full"]
    assert TuningConfig("m", tuning_method="lora", learning_rate_multiplier=0.5).learning_rate == pytest.approx(
        RECOMMENDED_LEARNING_RATES["lora"] / 2
    )
    assert TuningConfig("m").to_dict()["learning_rate"] == RECOMMENDED_LEARNING_RATES["full"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"student_model_reference": " "}, "student_model_reference"),
        ({"train_steps": 0}, "train_steps must be a positive integer"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"evaluation_interval": True}, "evaluation_interval must be a positive integer"),
        ({"learning_rate_multiplier": 0}, "learning_rate_multiplier must be a number above 0"),
        ({"alpha": 1.5}, "alpha must be between 0 and 1"),
        ({"tuning_method": "qlora"}, "tuning_method must be one of 'full', 'lora'"),
        ({"max_rationale_tokens": -1}, "max_rationale_tokens must be a positive integer"),
        ({"max_input_tokens": 15}, "max_input_tokens must be at least 16"),
        ({"early_stopping_threshold": -0.1}, "early_stopping_threshold must be 0 or more"),
        ({"mixed_precision": "fp16"}, "mixed_precision must be one of 'auto', 'bf16', 'no'"),
        ({"early_stopping_metric": "f1"}, "early_stopping_metric must be one of 'token_accuracy', 'task_metric'"),
        ({"max_answered_evaluation_rows": 0}, "max_answered_evaluation_rows must be a positive integer"),
    ],
)
def test_invalid_settings_are_refused_by_name(overrides, message):
    settings = {"student_model_reference": "m", **overrides}
    with pytest.raises(ValueError, match=message):
        TuningConfig(**settings)


def test_label_example_is_prompt_then_target_then_eos_with_the_prompt_masked(smollm2_tokenizer):
    tokenizer = smollm2_tokenizer
    example, input_cut, target_cut = encode_example(tokenizer, "What is 2 + 3?", "label", "( 2 + 3 )", 1024)
    prompt_ids = tokenizer(student_prompt("What is 2 + 3?", "label"))["input_ids"]
    target_ids = tokenizer("( 2 + 3 )", add_special_tokens=False)["input_ids"]
    assert example["input_ids"] == prompt_ids + target_ids + [tokenizer.eos_token_id]
    assert example["labels"] == [IGNORE_INDEX] * len(prompt_ids) + target_ids + [tokenizer.eos_token_id]
    assert (input_cut, target_cut) == (False, False)


def test_an_input_of_exactly_max_input_tokens_is_kept_whole(smollm2_tokenizer):
    tokenizer = smollm2_tokenizer
    marker = task_marker_ids(tokenizer, "label")
    prompt_ids = tokenizer(student_prompt("word " * 30, "label"))["input_ids"]
    input_tokens = len(prompt_ids) - len(marker)
    example, input_cut, _ = encode_example(tokenizer, "word " * 30, "label", "5", input_tokens)
    assert not input_cut and example["input_ids"][: len(prompt_ids)] == prompt_ids
    _, input_cut, _ = encode_example(tokenizer, "word " * 30, "label", "5", input_tokens - 1)
    assert input_cut


def test_an_example_longer_than_the_student_s_context_is_cut_to_fit_it(smollm2_tokenizer):
    tokenizer = smollm2_tokenizer
    example, input_cut, _ = encode_example(tokenizer, "word " * 100, "label", "one two three", 1024, max_sequence_tokens=40)
    assert input_cut and len(example["input_ids"]) == 40
    assert tokenizer.decode(example["input_ids"]).endswith("word\n[label]\none two three" + tokenizer.eos_token)
    with pytest.raises(ValueError, match=r"a label target of \d+ tokens leaves no room for an input in the student's 40-token context"):
        encode_example(tokenizer, "short", "label", "word " * 40, 1024, max_sequence_tokens=40)


@pytest.mark.parametrize("long_field", ["output_text", "rationale"])
def test_a_target_too_long_for_the_student_s_context_is_named_by_file_line_and_field(
    smollm2_tokenizer, tmp_path, long_field
):
    path = tmp_path / "distilled.jsonl"
    fine = {"input_text": "What is 2 + 3?", "output_text": "5", "rationale": "Two and three make five."}
    write_jsonl(path, [fine, {**fine, long_field: "word " * 40}])
    encode = functools.partial(encode_example, max_sequence_tokens=40)
    with pytest.raises(DatasetError, match=rf"{path}, line 2, field '{long_field}': a \w+ target of \d+ tokens"):
        prepare_training_examples(read_training_rows(str(path)), smollm2_tokenizer, 1024, 1024, encode)
    if long_field == "output_text":
        with pytest.raises(DatasetError, match=rf"{path}, line 2, field 'output_text'"):
            prepare_evaluation_examples(read_evaluation_rows(str(path)), smollm2_tokenizer, 1024, encode)


def test_long_rationales_and_inputs_are_cut_and_counted(smollm2_tokenizer):
    tokenizer = smollm2_tokenizer
    rows = [
        TrainingRow("short question", "4", "one two three four five six seven eight nine ten"),
        TrainingRow("word " * 50, "5", "fine"),
    ]
    prepared = prepare_training_examples(rows, tokenizer, max_input_tokens=20, max_rationale_tokens=3)
    assert (prepared.truncated_inputs, prepared.truncated_rationales) == (1, 1)
    rationale = prepared.examples[0]["rationale"]
    targets = [token for token in rationale["labels"] if token != IGNORE_INDEX]
    assert len(targets) == 3 + 1  # three rationale tokens and the end of sequence
    assert rationale["input_ids"][: len(rationale["input_ids"]) - 4] == tokenizer(student_prompt("short question", "rationale"))["input_ids"]
    long_label = prepared.examples[1]["label"]
    prompt = [token for token, label in zip(long_label["input_ids"], long_label["labels"]) if label == IGNORE_INDEX]
    marker = task_marker_ids(tokenizer, "label")
    assert len(prompt) == 20 + len(marker)  # twenty tokens of the input, then the whole task marker
    assert tokenizer.decode(prompt).startswith("word word") and tokenizer.decode(prompt).endswith("word\n[label]\n")


def test_collator_pads_each_task_on_the_right(smollm2_tokenizer):
    tokenizer = smollm2_tokenizer
    rows = [TrainingRow("a", "1", "r"), TrainingRow("a much longer question than the first", "22", "a longer rationale")]
    examples = prepare_training_examples(rows, tokenizer, 1024, 128).examples
    batch = TaskPrefixCollator(tokenizer.pad_token_id)(examples)
    assert set(batch) == {"label", "rationale"}
    for task in ("label", "rationale"):
        short, long = (len(example[task]["input_ids"]) for example in examples)
        assert batch[task]["input_ids"].shape == (2, long)
        assert batch[task]["attention_mask"][0].tolist() == [1] * short + [0] * (long - short)
        assert batch[task]["labels"][0, short:].eq(IGNORE_INDEX).all()
        assert batch[task]["input_ids"][0, short:].eq(tokenizer.pad_token_id).all()
    evaluation = prepare_evaluation_examples([EvaluationRow("q", "7")], tokenizer, 1024).examples
    assert set(TaskPrefixCollator(tokenizer.pad_token_id)(evaluation)) == {"label"}
    assert batch["label"]["labels"].dtype == torch.long


def test_training_rows_without_a_rationale_are_located(tmp_path):
    path = tmp_path / "distilled.jsonl"
    write_jsonl(path, [{"input_text": "q", "output_text": "a", "rationale": "r"}, {"input_text": "q", "output_text": "a"}])
    with pytest.raises(DatasetError) as error:
        read_training_rows(str(path))
    assert (error.value.line, error.value.field) == (2, "rationale")


def test_an_empty_training_file_is_an_error(tmp_path):
    path = tmp_path / "distilled.jsonl"
    path.write_text("")
    with pytest.raises(DatasetError, match="no training rows"):
        read_training_rows(str(path))


def test_evaluation_rows_need_gold_labels_and_an_empty_file_means_none(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert read_evaluation_rows(str(empty)) == []
    assert read_evaluation_rows(None) == []
    unlabeled = tmp_path / "eval.jsonl"
    write_jsonl(unlabeled, [{"input_text": "q", "output_text": None}])
    with pytest.raises(DatasetError) as error:
        read_evaluation_rows(str(unlabeled))
    assert (error.value.line, error.value.field) == (1, "output_text")


def test_component_takes_the_contract_parameter_names():
    from kfp_distill.components.tune_student.component import tune_student

    spec = tune_student.component_spec
    assert {
        "train_steps",
        "learning_rate_multiplier",
        "evaluation_interval",
        "enable_early_stopping",
        "enable_checkpoint_selection",
        "student_model_reference",
        "teacher_model_reference",
        "dataset_uri",
    } <= set(spec.inputs)
    assert set(spec.outputs) == {"model", "tensorboard_logs", "metrics"}


def test_the_config_takes_its_settings_from_the_component_inputs_and_leaves_the_rest():
    inputs = {
        "student_model_reference": "student",
        "teacher_model_reference": "teacher",  # provenance, not a tuning setting
        "dataset_uri": "gs://bucket/train.jsonl",
        "task_type": "",
        "model": object(),  # an output artifact
        "train_steps": 7,
        "micro_batch_size": 0,
        "mixed_precision": "no",
    }
    config = TuningConfig.from_component_inputs(inputs)
    assert config == TuningConfig("student", train_steps=7, micro_batch_size=None, mixed_precision="no")
    assert TuningConfig.from_component_inputs({**inputs, "micro_batch_size": 4}).micro_batch_size == 4
    with pytest.raises(ValueError, match="micro_batch_size must be a positive divisor of batch_size 8, got 3"):
        TuningConfig.from_component_inputs({**inputs, "micro_batch_size": 3})
