"""`logged_run`: small pipelines run by kfp.local, their output in run.log, their steps and progress bars shown."""

import re

import pytest
from kfp import dsl

from kfp_distill._implementation.settings import IMAGE, PROGRESS_BARS_ENV
from kfp_distill.pipelines.local_runner import RUN_LOG, StepFailed, init_local_runner, logged_run


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def _chatty(lines: int) -> int:
    import os
    import sys

    from tqdm import tqdm

    for number in range(lines):
        print(f"chatty line {number}")
    for _ in tqdm(range(3), desc="counting", file=sys.stderr, mininterval=0):
        pass
    print(f"bars shown: {os.environ.get('KFP_DISTILL_PROGRESS_BARS')}")
    return lines


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def _failing(after: int):
    for number in range(30):
        print(f"working {number}")
    raise ValueError(f"refused after {after} lines")


@dsl.pipeline
def _chatty_twice() -> int:
    first = _chatty(lines=40)
    return _chatty(lines=first.output).output


@dsl.pipeline
def _failing_second():
    _failing(after=_chatty(lines=5).output)


def _step_lines(printed: str) -> list[str]:
    return [re.sub(r"^\d\d:\d\d:\d\d  ", "", line) for line in printed.splitlines()]


def test_the_terminal_shows_the_steps_and_their_progress_bars_and_the_log_everything(tmp_path, capsys):
    init_local_runner(tmp_path)
    with logged_run(tmp_path) as run:
        assert _chatty_twice().output == 40
    printed = capsys.readouterr()
    steps = _step_lines(printed.out)
    assert steps[0::2] == ["chatty started", "chatty-2 started"]
    assert [re.sub(r"[\d.]+ s$", "S", line) for line in steps[1::2]] == ["chatty done in S", "chatty-2 done in S"]
    # Each drawing of the bar, redrawn in place, and a newline when it is done.
    bars = printed.err.split("\n")
    assert len(bars) == 3 and bars[2] == ""
    assert all(bar.startswith("\r") and "counting: 100%" in bar.split("\r")[-1] for bar in bars[:2])

    assert run.run_dir.parent == tmp_path and run.run_dir.name.startswith("chatty-twice-")
    log = (run.run_dir / RUN_LOG).read_text()
    assert run.log_path == run.run_dir / RUN_LOG
    assert log.count("chatty line 39") == 2 and "Executing task 'chatty-2'" in log and "\x1b[" not in log
    assert log.count("counting: 100%") == 2, "the log keeps each bar's last drawing only"
    assert "chatty done in" in log
    assert log.count("bars shown: 1") == 2, f"the steps are told (by {PROGRESS_BARS_ENV}) that their bars are shown"


def test_verbose_also_shows_the_log(tmp_path, capsys):
    init_local_runner(tmp_path)
    with logged_run(tmp_path, verbose=True) as run:
        _chatty_twice()
    printed = capsys.readouterr().out
    assert "    chatty line 39" in printed and "Executing task" in printed and "chatty-2 done in" in printed
    assert printed.count("chatty line 0") == 2
    assert "chatty line 39" in run.log_path.read_text()


def test_a_failed_step_is_named_with_its_last_lines_and_the_log(tmp_path, capsys):
    init_local_runner(tmp_path)
    with pytest.raises(StepFailed) as failed:
        with logged_run(tmp_path) as run:
            _failing_second()
    error = failed.value
    assert error.step == "failing" and error.log_path == run.run_dir / RUN_LOG
    assert error.last_lines[-1] == "ValueError: refused after 5 lines"
    assert len(error.last_lines) == 15
    message = str(error)
    assert message.startswith(f"step failing failed; its last lines follow, all of the run's output is in {error.log_path}")
    assert message.endswith("\n    ValueError: refused after 5 lines")
    assert "working 29" in error.log_path.read_text()
    steps = _step_lines(capsys.readouterr().out)
    assert steps[:3] == ["chatty started", steps[1], "failing started"] and steps[3].startswith("failing FAILED after ")
