"""Runs our pipelines on this machine with `kfp.local`, including the artifact that `dsl.OneOf` picks.

The distillation pipeline tunes in one of two branches (in-process, or a Vertex AI custom job) and hands the
model that the branch which ran produced to evaluate and upload-model through `dsl.OneOf`. Vertex AI and
Kubeflow resolve that; kfp.local 2.17.3 resolves a `dsl.OneOf` of parameters but stops at one of artifacts
("Expected 1 artifact in ArtifactSelectorSpec. Got: 2"), whichever runner runs the tasks. `init_local_runner`
teaches it the artifact case, the same way it already handles parameters, and the pipeline job's service
account placeholder, which deploy-model is given and kfp.local does not know (an IndexError in every run), as
empty: no service account, as on a machine without Google Cloud. Then it calls `kfp.local.init`.

kfp.local prints every task's executor input, outputs and output to the terminal. `logged_run` sends all of that
to `run.log` in the run folder and shows one line as each step starts and ends, and the steps' progress bars.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import io as text_io
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator, TextIO

from google_cloud_pipeline_components import _placeholders as google_cloud_placeholders
from kfp import local
from kfp.local import executor_input_utils, io, placeholder_utils, status, subprocess_task_handler, task_dispatcher
from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_distill import PROGRESS_BARS_ENV


def _dag_output_artifacts(
    cls: type[OrchestratorUtils], dag_outputs_spec: pipeline_spec_pb2.DagOutputsSpec, io_store: io.IOStore
) -> dict[str, Any]:
    """`OrchestratorUtils.get_dag_output_artifacts`, picking the one branch that produced a `dsl.OneOf` artifact."""
    outputs = {}
    for output_key, selector_spec in dag_outputs_spec.artifacts.items():
        produced = []
        for selector in selector_spec.artifact_selectors:
            try:
                produced.append(io_store.get_task_output(selector.producer_subtask, selector.output_artifact_key))
            except ValueError:  # the branch holding this producer did not run
                continue
        if len(produced) != 1:
            raise ValueError(
                f"dag output artifact '{output_key}': {len(produced)} of "
                f"{len(selector_spec.artifact_selectors)} producers ran; expected exactly one"
            )
        outputs[output_key] = produced[0]
    return outputs


_KFP_RESOLVE_PLACEHOLDER = placeholder_utils.resolve_individual_placeholder


def _resolve_placeholder(element: str, *args, **kwargs) -> str:
    """kfp.local's placeholder resolution, with the pipeline job's service account resolved to empty."""
    element = element.replace(google_cloud_placeholders.SERVICE_ACCOUNT_PLACEHOLDER, "")
    return _KFP_RESOLVE_PLACEHOLDER(element, *args, **kwargs)


def latest_run(pipeline_root: str | Path) -> Path | None:
    """The newest run folder of the distillation pipeline (`distillation-*`) under a pipeline root; None if none."""
    runs = [path for path in Path(pipeline_root).glob("distillation-*") if path.is_dir()]
    return max(runs, key=lambda path: path.stat().st_mtime) if runs else None


def init_local_runner(
    pipeline_root: str | Path, runner: local.SubprocessRunner | local.DockerRunner | None = None
) -> None:
    """Initializes kfp.local to run our pipelines, `dsl.OneOf` artifacts and the service account included.

    Args:
        pipeline_root: Where each run's task outputs are written (one folder per run, one per task).
        runner: How each task runs; None: as a subprocess of this Python environment (no container, no venv).
            `local.DockerRunner(network_mode="host")` runs each in the image its component names, with the
            host's network; it mounts only `pipeline_root` (at the same path), so the data, models and
            registry a task is given must lie under it.
    """
    OrchestratorUtils.get_dag_output_artifacts = classmethod(_dag_output_artifacts)
    placeholder_utils.resolve_individual_placeholder = _resolve_placeholder
    local.init(runner=runner or local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))


RUN_LOG = "run.log"
# The lines of a failed step's output its error shows: a traceback's end and what led to it.
FAILED_STEP_LINES = 15
_COLOR = re.compile(r"\x1b\[[0-9;]*m")  # kfp.local colors task names and statuses
_LINE_END = re.compile(r"[\r\n]")


class StepFailed(RuntimeError):
    """A step of a logged run exited with an error.

    Attributes:
        step: The failed step (task) name, e.g. `generate-rationales`.
        log_path: The run's whole log.
        last_lines: The step's last lines of output, its error among them.
    """

    def __init__(self, step: str, log_path: Path, last_lines: list[str]):
        self.step, self.log_path, self.last_lines = step, log_path, last_lines
        shown = "".join(f"\n    {line}" for line in last_lines)
        super().__init__(f"step {step} failed; its last lines follow, all of the run's output is in {log_path}{shown}")


class _RunLog(text_io.TextIOBase):
    """The run's log: `run.log` in the run folder once the first step names that folder, what came before kept
    until then; each write also goes to `echo` when there is one (--verbose)."""

    def __init__(self, echo: TextIO | None):
        self._echo = echo
        self._early: list[str] = []
        self._file: IO[str] | None = None
        self._lock = threading.Lock()  # a step's standard output and error are read on two threads

    def open_in(self, folder: Path) -> None:
        with self._lock:
            if self._file is None:
                folder.mkdir(parents=True, exist_ok=True)
                self._file = open(folder / RUN_LOG, "a", encoding="utf-8")
                self._file.write("".join(self._early))
                self._early.clear()

    def write(self, text: str, echo: bool = True) -> int:
        with self._lock:
            plain = _COLOR.sub("", text)
            if self._file is None:
                self._early.append(plain)
            else:
                self._file.write(plain)
                self._file.flush()  # `tail -f run.log` follows a running step
            if echo and self._echo is not None:
                self._echo.write(text)
                self._echo.flush()
        return len(text)

    def close_in(self, folder: Path) -> None:
        """Writes what the log holds to `folder` if no step named a run folder, and closes it."""
        self.open_in(folder)
        with self._lock:
            self._file.close()


class _StepOutputLines:
    """Splits one output stream of a step into log lines. A line redrawn after carriage returns is a progress bar
    (tqdm's way on a stream that is not a terminal): each drawing is shown on `bars`, the log keeps the last."""

    def __init__(self, add_line: Callable[[str, bool], None], bars: TextIO | None):
        self._add_line, self._bars = add_line, bars
        self._pending = ""
        self._bar = ""  # the latest drawing of the bar on the line now being written, if it is one
        self._in_bar = False

    def feed(self, text: str) -> None:
        self._pending += text
        while match := _LINE_END.search(self._pending):
            piece, self._pending = self._pending[: match.start()], self._pending[match.end():]
            if match.group() == "\r":
                self._draw(piece)
                self._in_bar = True
            else:
                self.end_line(piece)
        if self._in_bar:
            self._draw(self._pending)

    def end_line(self, piece: str = "") -> None:
        """Ends the line being written (at a newline, or when the stream ends)."""
        if self._in_bar:
            self._draw(piece)
            if self._bars is not None:
                self._bars.write("\n")
                self._bars.flush()
            self._add_line(self._bar, False)
        elif piece:
            self._add_line(piece, True)
        self._bar, self._in_bar = "", False

    def _draw(self, drawing: str) -> None:
        if drawing and drawing != self._bar:
            self._bar = drawing
            if self._bars is not None:
                self._bars.write("\r" + drawing)
                self._bars.flush()


class LoggedRun:
    """A kfp.local run whose output goes to its log (`logged_run`).

    Attributes:
        pipeline_root: The folder given to `init_local_runner`, under which the run's folder is made.
        run_dir: The run's folder (`pipeline_root/<pipeline>-<time>`), once its first step has started.
    """

    def __init__(self, pipeline_root: Path, terminal: TextIO, bars: TextIO, verbose: bool):
        self.pipeline_root, self.run_dir = pipeline_root, None
        self._terminal, self._bars = terminal, bars
        self.log = _RunLog(terminal if verbose else None)
        # The running step's last lines; kfp.local runs a pipeline's steps one at a time (but a ParallelFor's).
        self._step_lines: collections.deque[str] = collections.deque(maxlen=FAILED_STEP_LINES)
        self.failed_step: str | None = None

    @property
    def log_path(self) -> Path:
        return (self.run_dir or self.pipeline_root) / RUN_LOG

    def _say(self, line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')}  {line}", file=self._terminal, flush=True)
        self.log.write(f"{line}\n", echo=False)

    def run_step(self, run_task: Callable[..., tuple[dict, status.Status]], **task: Any) -> tuple[dict, status.Status]:
        """kfp.local's `run_single_task_implementation`, between a line as the step starts and one as it ends."""
        if self.run_dir is None:
            self.run_dir = Path(task["pipeline_root"]) / task["pipeline_resource_name"]
            self.log.open_in(self.run_dir)
        step = executor_input_utils.get_local_task_resource_name(task["component_name"])
        self._step_lines.clear()
        self._say(f"{step} started")
        started = time.perf_counter()
        outputs, task_status = run_task(**task)
        took = _duration(time.perf_counter() - started)
        if task_status == status.Status.SUCCESS:
            self._say(f"{step} done in {took}")
        else:
            self.failed_step = step
            self._say(f"{step} FAILED after {took}")
        return outputs, task_status

    def run_step_process(self, full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        """kfp.local's `run_local_subprocess`: standard output and error to the log, progress bars to the terminal
        (the step is told, by `PROGRESS_BARS_ENV`, that they are shown)."""
        with subprocess.Popen(
            full_command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env_vars or {}), PROGRESS_BARS_ENV: "1"},
        ) as process:
            errors = threading.Thread(target=self._read_step_output, args=(process.stderr, self._bars))
            errors.start()
            self._read_step_output(process.stdout, None)
            errors.join()
            return process.wait()

    def _read_step_output(self, stream: IO[bytes], bars: TextIO | None) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        lines = _StepOutputLines(self._add_step_line, bars)
        while chunk := os.read(stream.fileno(), 65536):
            lines.feed(decoder.decode(chunk))
        lines.feed(decoder.decode(b"", final=True))
        lines.end_line()

    def _add_step_line(self, line: str, echo: bool) -> None:
        self._step_lines.append(line)
        self.log.write(f"    {line}\n", echo=echo)  # indented as kfp.local indents a step's output

    def failure(self) -> StepFailed:
        return StepFailed(self.failed_step, self.log_path, list(self._step_lines))


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {round(seconds % 60):02d} s"


@contextlib.contextmanager
def logged_run(pipeline_root: str | Path, verbose: bool = False) -> Iterator[LoggedRun]:
    """Runs what kfp.local runs inside it with its output in `run.log` in the run folder.

    The terminal shows a line as each step starts and ends, with the time it took, and the steps' progress bars
    (on standard error); kfp.local's own lines and each step's output go to the log.

    Args:
        pipeline_root: The pipeline root given to `init_local_runner`; the log is written here if no step ran.
        verbose: Also show the log on the terminal as it is written.

    Yields:
        The run: its folder and log, once its first step has started.

    Raises:
        StepFailed: A step failed (instead of kfp.local's RuntimeError, which names the step only); the error
            names the step and the log, and shows the step's last lines of output.
    """
    run = LoggedRun(Path(pipeline_root), sys.stdout, sys.stderr, verbose)
    run_task = task_dispatcher.run_single_task_implementation
    run_process = subprocess_task_handler.run_local_subprocess
    task_dispatcher.run_single_task_implementation = lambda **task: run.run_step(run_task, **task)
    subprocess_task_handler.run_local_subprocess = run.run_step_process
    try:
        with contextlib.redirect_stdout(run.log), contextlib.redirect_stderr(run.log):
            yield run
    except RuntimeError as error:
        if run.failed_step is None:
            raise
        raise run.failure() from error
    finally:
        task_dispatcher.run_single_task_implementation = run_task
        subprocess_task_handler.run_local_subprocess = run_process
        run.log.close_in(run.pipeline_root)
