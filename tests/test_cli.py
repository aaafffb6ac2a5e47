"""The `kfp-distill` command's argument parsing."""

import pytest

from kfp_distill import cli


def test_a_boolean_pipeline_flag_takes_true_or_false_and_refuses_a_typo(capsys):
    assert [cli._boolean(text) for text in ("true", "Yes", "1", "false", "NO", "0")] == [True] * 3 + [False] * 3
    with pytest.raises(SystemExit) as stopped:
        cli.main(["run", "--enable-early-stopping", "ture"])
    assert stopped.value.code == 2  # argparse's usage error: nothing ran
    assert "--enable-early-stopping: expected true or false, got 'ture'" in capsys.readouterr().err
