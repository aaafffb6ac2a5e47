"""Data-parallel tuning on every GPU of the machine: one process per GPU, started with torchrun.

The Vertex AI tuning machine has 8 GPUs, and one Python process would use one of them. `tune_on_every_device`
runs `run_tuning` in the calling process when there is one device, and otherwise starts it in
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

from .config import TuningConfig, batch_split_problem
from .tuning import TuningRequest, TuningResult, run_tuning


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
        if not batch_split_problem(config.batch_size, processes, config.micro_batch_size):
            return processes
    return 1


def tune_on_every_device(request: TuningRequest, processes: int | None = None) -> TuningResult:
    """`run_tuning(request)` over `processes` data-parallel processes.

    Args:
        request: What `run_tuning` tunes on and writes to.
        processes: How many processes; None: `wanted_processes()` (one per GPU unless
            `$KFP_DISTILL_TUNING_PROCESSES` says otherwise), or as many of them as share the batch evenly
            (`usable_processes`). With 1, or inside a process torchrun started, `run_tuning` runs here.

    Raises:
        RuntimeError: A tuning process failed (its output, above, says why).
    """
    config = request.config
    if processes is None:
        wanted = wanted_processes()
        processes = usable_processes(wanted, config)
        if processes < wanted:
            print(f"batch_size {config.batch_size} splits evenly over {processes} of the {wanted} processes wanted: "
                  f"tuning in {processes} processes", flush=True)
    if processes <= 1 or "LOCAL_RANK" in os.environ:
        return run_tuning(request)
    with tempfile.TemporaryDirectory(prefix="kfp-distill-data-parallel-") as scratch:
        request_path, result_path = Path(scratch) / "request.json", Path(scratch) / "result.json"
        # Every process must save into and resume from the same folder.
        checkpoint_dir = request.checkpoint_dir or str(Path(scratch) / "checkpoints")
        shared = dataclasses.replace(request, checkpoint_dir=checkpoint_dir)
        request_path.write_text(json.dumps({"request": shared.to_dict(), "result_path": str(result_path)}))
        print(f"tuning in {processes} data-parallel processes", flush=True)
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", __name__, str(request_path),
        ]
        completed = subprocess.run(command, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"data-parallel tuning failed (exit status {completed.returncode}); see the output above")
        return TuningResult(**json.loads(result_path.read_text()))


def _tune_in_this_process(request_path: str) -> None:
    sent = json.loads(Path(request_path).read_text())
    result = run_tuning(TuningRequest.from_dict(sent["request"]))
    if int(os.environ.get("RANK", "0")) == 0:
        Path(sent["result_path"]).write_text(json.dumps(dataclasses.asdict(result)))


if __name__ == "__main__":
    _tune_in_this_process(sys.argv[1])
