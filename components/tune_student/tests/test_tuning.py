import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback, TrainerControl

from kfp_distill._implementation.jsonl import DatasetError, write_jsonl
from kfp_distill._implementation.models import ModelReferenceError, load_causal_lm, load_tokenizer
from kfp_distill._implementation.settings import PROGRESS_BARS_ENV
from kfp_distill._implementation.student import StudentPredictor
from kfp_distill.components.evaluate.training_curves import read_scalars
from kfp_distill.components.tune_student.config import TuningConfig
from kfp_distill.components.tune_student.data import (
    SharedPrefixCollator,
    TaskPrefixCollator,
    TrainingRow,
    encode_example,
    prepare_training_examples,
    read_training_rows,
)
from kfp_distill.components.tune_student.trainer import (
    EarlyStopping,
    TaskPrefixTrainer,
    TokenStatistics,
    bf16_supported,
    build_trainer,
)
from kfp_distill.components.tune_student.tuning import TuningRequest, run_tuning

TRAIN_SCALARS = {
    "/train_total_loss",
    "/train_fraction_of_correct_next_step_preds",
    "/train_num_predictions",
    "/train_learning_rate",
    "/train_tokens_per_second",
    "/train_peak_memory_mb",
}
EVAL_SCALARS = {"/eval_total_loss", "/eval_fraction_of_correct_next_step_preds", "/eval_num_predictions"}
# The word problems of conftest.py are math: their answers are scored by accuracy (equal value).
MATH_ANSWER_SCALARS = {"/eval_accuracy"}
PROVENANCE = {"teacher_model_reference": "teacher-x", "dataset_uri": "gs://bucket/train.jsonl"}


def first_query_weight(model) -> torch.Tensor:
    return model.model.layers[0].self_attn.q_proj.weight.detach().clone()


def run(tmp_path, student, train, evaluation, checkpoint_dir=None, task_type="", callbacks=(), **settings):
    config = TuningConfig(student, **{"batch_size": 4, "learning_rate_multiplier": 10.0, **settings})
    result = run_tuning(
        TuningRequest(
            train, evaluation, str(tmp_path / "model"), str(tmp_path / "tensorboard"), config, PROVENANCE, checkpoint_dir,
            task_type,
        ),
        extra_callbacks=callbacks,
    )
    return result, read_scalars(tmp_path / "tensorboard")


def by_hand_task_loss(model, batch) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    log_probabilities = torch.log_softmax(logits.float(), dim=-1)
    losses = []
    for row in range(batch["input_ids"].shape[0]):
        for position in range(1, batch["input_ids"].shape[1]):
            target = int(batch["labels"][row, position])
            if target != -100:
                losses.append(-log_probabilities[row, position - 1, target])
    return torch.stack(losses).mean()


def gradients(model) -> dict[str, torch.Tensor]:
    return {name: parameter.grad.clone() for name, parameter in model.named_parameters()}


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_the_shared_prefix_step_has_the_losses_and_gradients_of_two_separate_sequences(
    tiny_student_dir, smollm2_tokenizer, uneven_rows, tmp_path, attention
):
    model = load_causal_lm(tiny_student_dir, attn_implementation=attention)
    examples = prepare_training_examples(uneven_rows, smollm2_tokenizer, 1024, 128).examples
    config = TuningConfig(tiny_student_dir, alpha=0.3)
    pad = smollm2_tokenizer.pad_token_id
    trainer = build_trainer(model, config, examples, [], pad, str(tmp_path / "c"), str(tmp_path / "t"))

    separate = TaskPrefixCollator(pad)(examples)
    label_alone, rationale_alone = by_hand_task_loss(model, separate["label"]), by_hand_task_loss(model, separate["rationale"])
    (0.3 * label_alone + 0.7 * rationale_alone).backward()
    expected_gradients = gradients(model)
    model.zero_grad()

    packed = SharedPrefixCollator(pad)(examples)["shared_prefix"]
    # The input is in the packed sequence once: shorter than the two sequences side by side.
    assert packed["input_ids"].shape[1] < separate["label"]["input_ids"].shape[1] + separate["rationale"]["input_ids"].shape[1]
    label_loss, rationale_loss, _ = trainer.task_losses(model, packed)
    assert label_loss.item() == pytest.approx(label_alone.item(), rel=1e-5)
    assert rationale_loss.item() == pytest.approx(rationale_alone.item(), rel=1e-5)
    trainer.compute_loss(model, {"shared_prefix": packed}).backward()
    for name, gradient in gradients(model).items():
        torch.testing.assert_close(gradient, expected_gradients[name], rtol=1e-4, atol=1e-6, msg=name)


def test_evaluation_makes_logits_only_where_it_scores_and_keeps_the_loss_and_token_accuracy(
    tiny_student_dir, smollm2_tokenizer, uneven_rows, tmp_path
):
    model = load_causal_lm(tiny_student_dir)
    rows = [TrainingRow(row.input_text, row.output_text) for row in uneven_rows]
    examples = prepare_training_examples(rows, smollm2_tokenizer, 1024, 128).examples
    pad = smollm2_tokenizer.pad_token_id
    config = TuningConfig(tiny_student_dir, batch_size=4, enable_early_stopping=False)
    trainer = build_trainer(model, config, examples, examples, pad, str(tmp_path / "c"), str(tmp_path / "t"))
    batch = TaskPrefixCollator(pad)(examples)["label"]
    shapes = []
    hook = model.lm_head.register_forward_hook(lambda module, inputs, output: shapes.append(tuple(output.shape)))
    statistics = trainer.evaluation_statistics(trainer.get_eval_dataloader())
    hook.remove()
    targets = int((batch["labels"][:, 1:] != -100).sum())
    assert shapes == [(targets, len(smollm2_tokenizer))]  # one row of logits per scored token, none for the prompts
    assert statistics.predicted == targets
    with torch.no_grad():
        assert statistics.mean_loss == pytest.approx(by_hand_task_loss(model, batch).item(), rel=1e-5)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    scored = batch["labels"][:, 1:] != -100
    assert statistics.correct == int((logits.argmax(-1)[scored] == batch["labels"][:, 1:][scored]).sum())


def test_hugging_face_s_progress_bars_are_drawn_only_where_the_local_runner_shows_them(
    tiny_student_dir, distilled_path, evaluation_path, tmp_path, capsys, monkeypatch
):
    settings = {"train_steps": 2, "evaluation_interval": 2, "enable_early_stopping": False}
    monkeypatch.setenv(PROGRESS_BARS_ENV, "1")
    run(tmp_path / "shown", tiny_student_dir, distilled_path, evaluation_path, **settings)
    printed = capsys.readouterr()
    assert re.search(r"\r *100%\|[^\r\n]*\| 2/2 \[", printed.err), printed.err
    assert "step 2/2: loss" in printed.out, "the summary lines are written as without bars"

    monkeypatch.delenv(PROGRESS_BARS_ENV)
    run(tmp_path / "logged", tiny_student_dir, distilled_path, evaluation_path, **settings)
    printed = capsys.readouterr()
    assert "| 2/2 [" not in printed.err and "step 2/2: loss" in printed.out


def test_a_run_with_evaluation_trains_saves_a_self_contained_model_and_logs_six_scalars_and_the_task_metric(
    tiny_student_dir, distilled_path, evaluation_path, tmp_path, capsys
):
    result, logged = run(
        tmp_path, tiny_student_dir, distilled_path, evaluation_path, train_steps=8, evaluation_interval=3,
        enable_early_stopping=False, enable_checkpoint_selection=False,
    )
    assert set(logged) == TRAIN_SCALARS | EVAL_SCALARS | MATH_ANSWER_SCALARS
    assert [step for step, _ in logged["/eval_accuracy"]] == [3, 6, 8]
    assert all(0 <= value <= 1 for _, value in logged["/eval_accuracy"])
    assert [step for step, _ in logged["/train_total_loss"]] == list(range(1, 9))
    assert [step for step, _ in logged["/eval_total_loss"]] == [3, 6, 8]  # every interval and the last step
    losses = [value for _, value in logged["/train_total_loss"]]
    assert losses[-1] < losses[0]
    assert all(0 <= value <= 1 for _, value in logged["/train_fraction_of_correct_next_step_preds"])
    assert all(value > 0 for _, value in logged["/train_num_predictions"])
    output = capsys.readouterr().out
    assert "step 8/8" in output and re.search(r"evaluation at step 8: .*; answers: accuracy [\d.]+$", output, re.M)

    metrics = result.metrics
    assert metrics["steps_run"] == 8 and metrics["selected_step"] == 8 and metrics["stopped_early"] is False
    assert metrics["final_train_loss"] == pytest.approx(losses[-1], rel=1e-5)
    assert metrics["last_eval_token_accuracy"] == pytest.approx(logged["/eval_fraction_of_correct_next_step_preds"][-1][1], rel=1e-5)
    assert metrics["tokens_per_s"] > 0 and metrics["peak_memory_mb"] > 0
    assert metrics["bf16_autocast"] is bf16_supported()  # mixed_precision "auto"
    assert metrics["final_learning_rate"] == pytest.approx(logged["/train_learning_rate"][-1][1], rel=1e-5)
    assert metrics["answered_evaluation_examples"] == 4
    assert metrics["last_eval_accuracy"] == pytest.approx(logged["/eval_accuracy"][-1][1])
    assert metrics["best_eval_accuracy"] == pytest.approx(max(value for _, value in logged["/eval_accuracy"]))
    assert all(value > 0 for _, value in logged["/train_tokens_per_second"])

    model_dir = Path(result.model_dir)
    names = {path.name for path in model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "kfp_distill.json", "training_curves.png"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in names)  # weights as safetensors only
    assert (model_dir / "training_curves.png").read_bytes().startswith(b"\x89PNG")
    assert not any(name.startswith("checkpoint") or name.startswith("adapter") for name in names)
    predictions = StudentPredictor(str(model_dir), max_new_tokens=8).predict(["Sam has 4 apples and buys 2 more."])
    assert len(predictions) == 1 and isinstance(predictions[0].text, str)
    # A tokenizer class transformers 4.x has (the default Vertex AI serving container runs 4.48), and the
    # reloaded tokenizer tokenizes as the original does.
    assert json.loads((model_dir / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    text = "Sam has 4 apples and buys 2 more.\n[label]\n"
    assert load_tokenizer(str(model_dir))(text)["input_ids"] == load_tokenizer(tiny_student_dir)(text)["input_ids"]

    facts = json.loads((model_dir / "kfp_distill.json").read_text())
    assert facts["teacher_model_reference"] == "teacher-x" and facts["dataset_uri"] == "gs://bucket/train.jsonl"
    assert facts["student_model_reference"] == tiny_student_dir
    assert facts["tuning"]["train_steps"] == 8 and facts["tuning"]["learning_rate"] == pytest.approx(1e-3)
    assert facts["metrics"]["steps_run"] == 8 and facts["metrics"]["train_examples"] == 8
    assert facts["prompt_format"]["label"] == "{input_text}\n[label]\n"
    assert facts["task_type"] == "math"  # inferred from the evaluation rows, as evaluate infers it
    card = (model_dir / "README.md").read_text()
    for fact in ("teacher-x", "gs://bucket/train.jsonl", tiny_student_dir, "steps: 8 of 8", "last_eval_token_accuracy"):
        assert fact in card


def test_without_evaluation_only_training_scalars_and_the_last_step(tiny_student_dir, distilled_path, empty_evaluation_path, tmp_path):
    result, logged = run(tmp_path, tiny_student_dir, distilled_path, empty_evaluation_path, train_steps=3, enable_checkpoint_selection=True)
    assert set(logged) == TRAIN_SCALARS
    assert result.metrics["selected_step"] == 3 and result.metrics["best_eval_token_accuracy"] is None


def test_lora_run_saves_merged_weights_that_load_without_peft(tiny_student_dir, distilled_path, empty_evaluation_path, tmp_path):
    result, _ = run(tmp_path, tiny_student_dir, distilled_path, empty_evaluation_path, train_steps=3, tuning_method="lora", lora_rank=4)
    names = {path.name for path in Path(result.model_dir).iterdir()}
    assert "model.safetensors" in names and "adapter_config.json" not in names
    tuned = load_causal_lm(result.model_dir)
    untuned = load_causal_lm(tiny_student_dir)
    assert tuned.state_dict().keys() == untuned.state_dict().keys()
    assert not torch.equal(first_query_weight(tuned), first_query_weight(untuned))


# Evaluation token accuracy by step peaks at step 4; the accuracy of the generated answers peaks later, at step 6.
TOKEN_ACCURACY_CURVE = {2: 0.30, 4: 0.50, 6: 0.45, 8: 0.40, 10: 0.35, 12: 0.30}
ANSWER_ACCURACY_CURVE = {2: 0.25, 4: 0.50, 6: 0.75, 8: 0.50, 10: 0.25, 12: 0.0}


@pytest.mark.parametrize(
    "early_stopping, early_stopping_metric, checkpoint_selection, steps_run, selected_step",
    [
        (True, "token_accuracy", True, 8, 6),  # stops two evaluations after token accuracy's best, keeps the best answers
        (True, "token_accuracy", False, 8, 8),
        (True, "task_metric", True, 10, 6),  # stops two evaluations after the answers' best
        (False, "task_metric", True, 12, 6),
    ],
)
def test_early_stopping_and_checkpoint_selection_follow_their_evaluation_curves(
    tiny_student_dir, distilled_path, evaluation_path, tmp_path, monkeypatch,
    early_stopping, early_stopping_metric, checkpoint_selection, steps_run, selected_step,
):
    weights_at_evaluation = {}

    def scripted_token_statistics(trainer, dataloader):
        step = trainer.state.global_step
        weights_at_evaluation[step] = first_query_weight(trainer.model)
        accuracy = TOKEN_ACCURACY_CURVE[step]
        return TokenStatistics(loss_sum=100 * (1 - accuracy), correct=round(100 * accuracy), predicted=100)

    monkeypatch.setattr(TaskPrefixTrainer, "evaluation_statistics", scripted_token_statistics)
    monkeypatch.setattr(
        TaskPrefixTrainer, "answer_scores", lambda trainer: {"accuracy": ANSWER_ACCURACY_CURVE[trainer.state.global_step]}
    )
    result, logged = run(
        tmp_path, tiny_student_dir, distilled_path, evaluation_path, train_steps=12, evaluation_interval=2,
        early_stopping_patience=2, enable_early_stopping=early_stopping, early_stopping_metric=early_stopping_metric,
        enable_checkpoint_selection=checkpoint_selection,
    )
    assert result.metrics["steps_run"] == steps_run
    assert result.metrics["stopped_early"] is (steps_run < 12)
    assert result.metrics["selected_step"] == selected_step
    assert result.metrics["best_eval_token_accuracy"] == pytest.approx(0.5)
    assert result.metrics["best_eval_accuracy"] == pytest.approx(0.75)
    assert result.metrics["selected_eval_accuracy"] == pytest.approx(ANSWER_ACCURACY_CURVE[selected_step])
    for tag, curve in (("/eval_fraction_of_correct_next_step_preds", TOKEN_ACCURACY_CURVE), ("/eval_accuracy", ANSWER_ACCURACY_CURVE)):
        assert logged[tag] == [(step, pytest.approx(value)) for step, value in curve.items() if step <= steps_run]
    saved = first_query_weight(load_causal_lm(result.model_dir))
    assert torch.equal(saved, weights_at_evaluation[selected_step])
    assert not torch.equal(saved, weights_at_evaluation[2])


SKY = "question: What colour is the sky? context: The sky was blue until the storm turned it red."


class RelabelTrainingRows(TrainerCallback):
    """From `step` on, the training rows teach another answer than the evaluation row's gold one."""

    def __init__(self, step: int, tokenizer, answer: str):
        self.step, self.tokenizer, self.answer = step, tokenizer, answer

    def on_step_end(self, args, state, control, train_dataloader=None, **kwargs):
        if state.global_step == self.step:
            for example in train_dataloader.dataset:
                example["label"] = encode_example(self.tokenizer, SKY, "label", self.answer, 1024)[0]


def test_a_run_whose_answers_peak_early_stops_and_keeps_the_early_checkpoint(tiny_student_dir, smollm2_tokenizer, tmp_path):
    """Real training, generation and scoring: the student learns the gold answer, then (its training rows relabeled
    after step 10) another one, so its answers score ROUGE-L 1 at step 10 and 0 after, by construction. Scored as
    summaries, which the student writes freely: an extractive answer is held to a span of the context, so an
    untrained student already answers "blue" there, and one trained away from it may too."""
    write_jsonl(tmp_path / "train.jsonl", [{"input_text": SKY, "output_text": "blue"}] * 4)
    write_jsonl(tmp_path / "evaluation.jsonl", [{"input_text": SKY, "output_text": "blue"}])
    result, logged = run(
        tmp_path, tiny_student_dir, str(tmp_path / "train.jsonl"), str(tmp_path / "evaluation.jsonl"),
        task_type="summarization", callbacks=[RelabelTrainingRows(10, smollm2_tokenizer, "red")],
        train_steps=30, evaluation_interval=5, learning_rate_multiplier=300.0, early_stopping_patience=2,
        early_stopping_metric="task_metric", enable_checkpoint_selection=True,
    )
    assert logged["/eval_rouge_l"] == [(5, 0.0), (10, 1.0), (15, 0.0), (20, 0.0)]
    assert result.metrics["steps_run"] == 20 and result.metrics["stopped_early"] is True
    assert result.metrics["selected_step"] == 10 and result.metrics["selected_eval_rouge_l"] == 1.0
    (answer,) = StudentPredictor(result.model_dir, max_new_tokens=4).predict([SKY])
    assert answer.text == "blue"


def test_early_stopping_s_count_survives_a_checkpoint():
    stopping = EarlyStopping("eval_f1", patience=3, threshold=0.01)
    for value in (0.5, 0.505, 0.4):  # 0.505 is not enough of a gain
        stopping.on_evaluate(None, None, TrainerControl(), metrics={"eval_f1": value})
    restored = EarlyStopping(**stopping.state()["args"])  # as the Trainer restores it from a checkpoint
    assert (restored.best, restored.evaluations_without_gain) == (0.505, 2)
    control = TrainerControl()
    restored.on_evaluate(None, None, control, metrics={"eval_f1": 0.51})
    assert control.should_training_stop


class Killed(Exception):
    """Stands for the task being killed."""


def test_a_run_killed_after_a_checkpoint_resumes_and_ends_like_an_uninterrupted_run(
    tiny_student_dir, distilled_path, empty_evaluation_path, tmp_path, monkeypatch
):
    settings = {"train_steps": 7, "evaluation_interval": 3}  # checkpoints at steps 3, 6 and 7; step 3 is mid-epoch
    uninterrupted, uninterrupted_logged = run(
        tmp_path / "uninterrupted", tiny_student_dir, distilled_path, empty_evaluation_path, **settings
    )

    checkpoint_dir = tmp_path / "checkpoints"
    save_checkpoint = TaskPrefixTrainer._save_checkpoint

    def save_then_die(trainer, *args, **kwargs):
        save_checkpoint(trainer, *args, **kwargs)
        if trainer.state.global_step == 3:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(TaskPrefixTrainer, "_save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            run(tmp_path / "restarted", tiny_student_dir, distilled_path, empty_evaluation_path, str(checkpoint_dir), **settings)
    assert (checkpoint_dir / "checkpoint-3").is_dir()
    # A later checkpoint cut short by the kill: weights written, trainer state not yet.
    (checkpoint_dir / "checkpoint-5").mkdir()
    (checkpoint_dir / "checkpoint-5" / "model.safetensors").write_bytes(b"")

    resumed, logged = run(tmp_path / "restarted", tiny_student_dir, distilled_path, empty_evaluation_path, str(checkpoint_dir), **settings)
    assert resumed.metrics["resumed_from_step"] == 3 and resumed.metrics["steps_run"] == 7
    assert [step for step, _ in logged["/train_total_loss"]][-4:] == [4, 5, 6, 7]
    # Same data position and RNG: each resumed step trains on the batch the uninterrupted run trained on then.
    for name in ("/train_total_loss", "/train_num_predictions"):
        assert [value for _, value in logged[name]][-4:] == pytest.approx(
            [value for _, value in uninterrupted_logged[name]][-4:], rel=1e-5
        ), name
    assert resumed.metrics["final_train_loss"] == pytest.approx(uninterrupted.metrics["final_train_loss"], rel=1e-5)
    resumed_model, uninterrupted_model = load_causal_lm(resumed.model_dir), load_causal_lm(uninterrupted.model_dir)
    for (name, resumed_weight), (_, uninterrupted_weight) in zip(
        resumed_model.state_dict().items(), uninterrupted_model.state_dict().items()
    ):
        torch.testing.assert_close(resumed_weight, uninterrupted_weight, rtol=1e-4, atol=1e-6, msg=name)
    assert not checkpoint_dir.exists()  # removed once the model is written


def test_label_only_rows_train_on_the_label_loss_alone(tiny_student_dir, smollm2_tokenizer, uneven_rows, tmp_path):
    """Standard fine-tuning, the baseline distilling step-by-step is compared with: no rationale branch at all."""
    model = load_causal_lm(tiny_student_dir)
    rows = [TrainingRow(row.input_text, row.output_text) for row in uneven_rows]
    examples = prepare_training_examples(rows, smollm2_tokenizer, 1024, 128).examples
    assert all(set(example) == {"label"} for example in examples)
    pad = smollm2_tokenizer.pad_token_id
    trainer = build_trainer(model, TuningConfig(tiny_student_dir, alpha=0.3), examples, [], pad, str(tmp_path / "c"), str(tmp_path / "t"))
    batch = SharedPrefixCollator(pad)(examples)
    assert set(batch) == {"label"}
    expected = by_hand_task_loss(model, batch["label"])
    assert trainer.compute_loss(model, batch).item() == pytest.approx(expected.item(), rel=1e-5)
    counts = trainer._get_num_items_in_batch([batch], torch.device("cpu"))
    assert counts.tolist() == [int((batch["label"]["labels"] != -100).sum())]


class StepRecorder(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_a_label_only_file_tunes_with_alpha_one_and_says_so(tiny_student_dir, uneven_rows, empty_evaluation_path, tmp_path):
    train = tmp_path / "labels.jsonl"
    write_jsonl(train, [{"input_text": row.input_text, "output_text": row.output_text} for row in uneven_rows])
    recorder = StepRecorder()
    config = TuningConfig(tiny_student_dir, batch_size=2, train_steps=3, alpha=0.3)
    result = run_tuning(
        TuningRequest(str(train), empty_evaluation_path, str(tmp_path / "model"), str(tmp_path / "tb"), config, PROVENANCE),
        extra_callbacks=[recorder],
    )
    assert recorder.steps == [1, 2, 3] and result.metrics["truncated_rationales"] == 0
    facts = json.loads((Path(result.model_dir) / "kfp_distill.json").read_text())
    assert facts["trained_tasks"] == ["label"] and facts["tuning"]["alpha"] == 1.0
    assert set(facts["prompt_format"]) == {"label"}
    card = (Path(result.model_dir) / "README.md").read_text()
    assert "standard fine-tuning" in card and "[rationale]" not in card


def test_a_row_without_a_rationale_among_rows_with_one_is_named(tmp_path):
    train = tmp_path / "mixed.jsonl"
    write_jsonl(train, [
        {"input_text": "q1", "output_text": "1", "rationale": "r1"},
        {"input_text": "q2", "output_text": "2"},
    ])
    with pytest.raises(DatasetError, match=r"mixed.jsonl.*line 2.*rationale"):
        read_training_rows(str(train))


@pytest.fixture
def remote_code_student_dir(tmp_path, tiny_student_dir):
    """The tiny student as a repository that brings its own model class (auto_map), as some Hub models do."""
    model_dir = tmp_path / "remote-code-student"
    shutil.copytree(tiny_student_dir, model_dir)
    (model_dir / "configuration_tiny.py").write_text(
        "from transformers import LlamaConfig\n\n\nclass TinyRemoteConfig(LlamaConfig):\n    model_type = 'tiny_remote'\n"
    )
    (model_dir / "modeling_tiny.py").write_text(
        "from transformers import LlamaForCausalLM\n\nfrom .configuration_tiny import TinyRemoteConfig\n\n\n"
        "class TinyRemoteForCausalLM(LlamaForCausalLM):\n    config_class = TinyRemoteConfig\n"
    )
    config = json.loads((model_dir / "config.json").read_text())
    config.update(model_type="tiny_remote", auto_map={
        "AutoConfig": "configuration_tiny.TinyRemoteConfig",
        "AutoModelForCausalLM": "modeling_tiny.TinyRemoteForCausalLM",
    })
    (model_dir / "config.json").write_text(json.dumps(config))
    return str(model_dir)


def test_a_student_with_its_own_code_is_refused_unless_trusted(
    remote_code_student_dir, distilled_path, empty_evaluation_path, tmp_path
):
    with pytest.raises(ModelReferenceError, match="trust_remote_code=True"):
        run(tmp_path / "refused", remote_code_student_dir, distilled_path, empty_evaluation_path, train_steps=1)
    result, _ = run(
        tmp_path / "trusted", remote_code_student_dir, distilled_path, empty_evaluation_path, train_steps=2,
        trust_remote_code=True,
    )
    assert result.metrics["steps_run"] == 2
    predictor = StudentPredictor(result.model_dir, max_new_tokens=4, trust_remote_code=True)
    assert type(predictor.model).__name__ == "TinyRemoteForCausalLM"


def test_inputs_longer_than_the_student_s_context_are_cut_to_fit_it_and_counted(tiny_student_dir, tmp_path):
    """The tiny student has 512 positions; a 700-word input (the contract allows 7,168 tokens) must fit them."""
    rows = [{"input_text": "word " * 700 + f"question {i}", "output_text": str(i), "rationale": f"because {i}"} for i in range(4)]
    write_jsonl(tmp_path / "long.jsonl", rows)
    result, logged = run(tmp_path, tiny_student_dir, str(tmp_path / "long.jsonl"), None, train_steps=2, enable_early_stopping=False)
    assert result.metrics["truncated_inputs"] == 4  # one input per row
    assert result.metrics["steps_run"] == 2 and all(value > 0 for _, value in logged["/train_total_loss"])
