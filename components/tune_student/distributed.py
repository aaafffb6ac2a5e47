"""Data-parallel tuning on every GPU of the machine: one process per GPU, started with torchrun.

The Vertex AI tuning machine has 8 GPUs, and one Python process would use one of them. `tune_on_every_device`
runs `tune_student` in the calling process when there is one device, and otherwise starts it in
`torch.distributed.run` processes, one per device: each trains on its share of every step's `batch_size` rows,
gradients are averaged (the Trainer's DistributedDataParallel), losses are token means over the whole step as
with one process, and the first process writes the model directory, the TensorBoard logs and the metrics.
`KFP_DISTILL_TUNING_PROCESSES` asks for a number of processes instead of one per GPU: on a CPU they run with
gloo, which is how the container tests start the 8-GPU path on machines without GPUs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from kfp_distill.components.tune_student.config import TuningConfig
from kfp_distill.components.tune_student.tuning import TuningResult, tune_student


def device_count() -> int:
    """The GPUs this process can use (1 without any: the CPU)."""
    import torch

    return max(torch.cuda.device_count(), 1)


# Processes to tune in instead of one per GPU (read by `wanted_processes`).
PROCESSES_VARIABLE = "KFP_DISTILL_TUNING_PROCESSES"


def wanted_processes() -> int:
    """The processes to tune in: `$KFP_DISTILL_TUNING_PROCESSES` when set, else one per GPU.

    Raises:
        ValueError: The variable is set to anything but a whole number of 1 or more.
    """
    wanted = os.environ.get(PROCESSES_VARIABLE, "")
    if not wanted:
        return device_count()
    if not wanted.isdigit() or int(wanted) < 1:
        raise ValueError(f"{PROCESSES_VARIABLE}={wanted!r}: expected a whole number of processes, 1 or more")
    return int(wanted)


def usable_processes(devices: int, config: TuningConfig) -> int:
    """The most of `devices` processes that can share every step's `batch_size` rows evenly, in whole
    micro-batches (e.g. batch 12 on 8 GPUs: 6)."""
    for processes in range(devices, 1, -1):
        rows_per_process, uneven = divmod(config.batch_size, processes)
        if not uneven and rows_per_process % min(config.micro_batch_size or rows_per_process, rows_per_process) == 0:
            return processes
    return 1


def tune_on_every_device(
    train_path: str,
    evaluation_path: str | None,
    model_dir: str,
    tensorboard_dir: str,
    config: TuningConfig,
    provenance: dict,
    checkpoint_dir: str | None = None,
    processes: int | None = None,
) -> TuningResult:
    """`tune_student` (its arguments but `extra_callbacks`, and its result) over `processes` data-parallel processes.

    Args:
        processes: How many processes; None: `wanted_processes()` (one per GPU unless
            `$KFP_DISTILL_TUNING_PROCESSES` says otherwise), or as many of them as share the batch evenly
            (`usable_processes`). With 1, or inside a process torchrun started, `tune_student` runs here.

    Raises:
        RuntimeError: A tuning process failed (its output, above, says why).
    """
    if processes is None:
        wanted = wanted_processes()
        processes = usable_processes(wanted, config)
        if processes < wanted:
            print(f"batch_size {config.batch_size} splits evenly over {processes} of the {wanted} processes wanted: "
                  f"tuning in {processes} processes", flush=True)
    if processes <= 1 or "LOCAL_RANK" in os.environ:
        return tune_student(train_path, evaluation_path, model_dir, tensorboard_dir, config, provenance, checkpoint_dir)
    with tempfile.TemporaryDirectory(prefix="kfp-distill-data-parallel-") as scratch:
        request, result = Path(scratch) / "request.json", Path(scratch) / "result.json"
        request.write_text(json.dumps({
            "train_path": train_path,
            "evaluation_path": evaluation_path,
            "model_dir": model_dir,
            "tensorboard_dir": tensorboard_dir,
            "config": dataclasses.asdict(config),
            "provenance": provenance,
            # Every process must save into and resume from the same folder.
            "checkpoint_dir": checkpoint_dir or str(Path(scratch) / "checkpoints"),
            "result_path": str(result),
        }))
        print(f"tuning in {processes} data-parallel processes", flush=True)
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", __name__, str(request),
        ]
        completed = subprocess.run(command, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"data-parallel tuning failed (exit status {completed.returncode}); see the output above")
        return TuningResult(**json.loads(result.read_text()))


def _tune_in_this_process(request_path: str) -> None:
    request = json.loads(Path(request_path).read_text())
    result = tune_student(
        request["train_path"], request["evaluation_path"], request["model_dir"], request["tensorboard_dir"],
        TuningConfig(**request["config"]), request["provenance"], request["checkpoint_dir"],
    )
    if int(os.environ.get("RANK", "0")) == 0:
        Path(request["result_path"]).write_text(json.dumps(dataclasses.asdict(result)))


if __name__ == "__main__":
    _tune_in_this_process(sys.argv[1])
