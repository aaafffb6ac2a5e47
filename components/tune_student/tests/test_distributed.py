"""Data-parallel tuning: two processes (torchrun, gloo on the CPU) train exactly as one process does."""

import re
from pathlib import Path

import pytest

from kfp_distill._implementation.jsonl import load_rows, write_jsonl
from kfp_distill.components.evaluate.training_curves import read_scalars
from kfp_distill.components.tune_student.config import TuningConfig, batch_split_problem
from kfp_distill.components.tune_student.distributed import (
    PROCESSES_VARIABLE,
    device_count,
    tune_on_every_device,
    usable_processes,
    wanted_processes,
)
from kfp_distill.components.tune_student.tuning import TuningRequest


def test_the_batch_is_shared_by_as_many_gpus_as_split_it_evenly(tiny_student_dir):
    assert usable_processes(8, TuningConfig(tiny_student_dir, batch_size=64)) == 8
    assert usable_processes(8, TuningConfig(tiny_student_dir, batch_size=12)) == 6
    assert usable_processes(8, TuningConfig(tiny_student_dir, batch_size=7)) == 7
    assert usable_processes(8, TuningConfig(tiny_student_dir, batch_size=5)) == 5
    # On 8 processes each one's 3 rows would not make whole micro-batches of 2; 6 processes take 4 each.
    assert usable_processes(8, TuningConfig(tiny_student_dir, batch_size=24, micro_batch_size=2)) == 6
    assert usable_processes(1, TuningConfig(tiny_student_dir, batch_size=24)) == 1


def test_one_rule_says_whether_a_batch_splits_over_processes_in_whole_micro_batches():
    assert batch_split_problem(8) == "" and batch_split_problem(8, 1, 2) == "" and batch_split_problem(24, 6, 2) == ""
    assert batch_split_problem(8, 3) == "batch_size 8 must be a multiple of the 3 data-parallel processes"
    assert batch_split_problem(24, 8, 2) == (
        "micro_batch_size 2 must divide the 3 rows each of the 8 data-parallel processes takes per step"
    )
    assert batch_split_problem(8, 1, 3) != ""
    # A micro-batch larger than a process's share is that share.
    assert batch_split_problem(8, 8, 8) == ""


def test_the_processes_variable_asks_for_processes_instead_of_one_per_gpu(monkeypatch):
    monkeypatch.delenv(PROCESSES_VARIABLE, raising=False)
    assert wanted_processes() == device_count()
    monkeypatch.setenv(PROCESSES_VARIABLE, "3")
    assert wanted_processes() == 3
    for wrong in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv(PROCESSES_VARIABLE, wrong)
        with pytest.raises(ValueError, match=f"{PROCESSES_VARIABLE}='{re.escape(wrong)}': expected a whole number"):
            wanted_processes()


def test_two_processes_take_the_steps_of_one(tiny_student_dir, distilled_path, evaluation_path, tmp_path):
    # 8 rows, 4 per step: two epochs, so the second epoch's order is checked too; evaluation at steps 2 and 4,
    # on 5 rows, which two processes cannot share evenly (each row must still count once).
    five_rows = tmp_path / "evaluation.jsonl"
    rows = load_rows(evaluation_path)
    write_jsonl(five_rows, rows + rows[:1])
    config = TuningConfig(
        tiny_student_dir, train_steps=4, batch_size=4, evaluation_interval=2, learning_rate_multiplier=10.0,
        enable_early_stopping=False, mixed_precision="no",  # bf16 would round the two runs' shapes otherwise
    )
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"processes-{processes}"
        request = TuningRequest(distilled_path, str(five_rows), str(out / "model"), str(out / "tensorboard"), config)
        result = tune_on_every_device(request, processes=processes)
        runs[processes] = (result, read_scalars(out / "tensorboard"))

    (one, one_logged), (two, two_logged) = runs[1], runs[2]
    assert two.metrics["steps_run"] == 4 and Path(two.model_dir, "model.safetensors").exists()
    assert set(two_logged) == set(one_logged)
    # Every logged value but the two that measure the machine rather than the training.
    for tag in sorted(set(one_logged) - {"/train_tokens_per_second", "/train_peak_memory_mb"}):
        steps_one, values_one = zip(*one_logged[tag])
        steps_two, values_two = zip(*two_logged[tag])
        assert steps_two == steps_one, tag
        assert values_two == pytest.approx(values_one, rel=1e-4), tag
    assert two.metrics["final_train_loss"] == pytest.approx(one.metrics["final_train_loss"], rel=1e-4)
