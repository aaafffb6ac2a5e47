"""The tuning throughput benchmark runs end to end on a tiny student and prints ratios it measured."""

import json
import re
from pathlib import Path

import pytest

from kfp_distill._implementation.scripts import load_module

_SCRIPT = Path(__file__).parents[1] / "train_throughput.py"
_DATA_DIR = Path(__file__).parents[3] / "shared" / "data" / "dsbs"


@pytest.fixture(scope="module")
def train_throughput():
    return load_module("train_throughput", _SCRIPT)


def _tokens_processed(output: str) -> dict[str, int]:
    return {
        name.strip(): int(tokens)
        for name, tokens in re.findall(r"^\s*(label only|two passes|shared prefix \(ours\)): .*, (\d+) tokens processed$", output, re.M)
    }


def test_both_trainers_and_the_step_costs_on_demo_rows(train_throughput, tiny_student_dir, capsys):
    train_throughput.main(
        ["--data", "demo", "--student", tiny_student_dir, "--warmup-steps", "1", "--steps", "1", "--repeats", "1"]
    )
    output = capsys.readouterr().out
    assert "bf16 autocast: False" in output  # float32 unless asked
    assert re.search(r"^plain: [\d.]+ tokens/s", output, re.M)
    assert re.search(r"^ ours: [\d.]+ tokens/s", output, re.M)
    assert re.search(r"^ours / plain: [\d.]+x tokens/s .* [\d.]+x peak memory", output, re.M)
    tokens = _tokens_processed(output)
    # The shared prefix processes each input once: fewer tokens than the two passes, more than the label alone.
    assert tokens["label only"] < tokens["shared prefix (ours)"] < tokens["two passes"]
    # The rationale task adds compute (this tiny model's output layer dominates its FLOPs, so by a lot).
    assert float(re.search(r"([\d.]+)x over all 200 rows", output).group(1)) > 1.0


def test_step_costs_only_leaves_the_plain_script_out(train_throughput, tiny_student_dir, capsys):
    train_throughput.main(
        ["--data", "demo", "--student", tiny_student_dir, "--repeats", "1", "--step-costs-only", "--mixed-precision", "bf16"]
    )
    output = capsys.readouterr().out
    assert "bf16 autocast: True" in output
    assert "plain" not in output and "tokens/s" not in output
    assert re.search(r"^shared prefix \(ours\) / label only: [\d.]+x \(target <= 1.3x\)$", output, re.M)
    assert re.search(r"^student tokens per row: input [\d.]+ on average; rationale [\d.]+ on average, \d+ at the "
                     r"90th percentile, \d+ at most \(cut to 128\)$", output, re.M)


def test_token_lengths_are_counted_in_the_student_s_tokens(train_throughput, smollm2_tokenizer):
    rows = [train_throughput.TrainingRow("a b", "1", " ".join(["word"] * n)) for n in range(1, 11)]
    lengths = train_throughput.token_lengths(rows, smollm2_tokenizer)
    assert lengths == {"input_mean": 2.0, "rationale_mean": 5.5, "rationale_p90": 9, "rationale_max": 10}


@pytest.mark.skipif(not _DATA_DIR.is_dir(), reason=f"the paper's data is not at {_DATA_DIR} (outside this repository)")
@pytest.mark.parametrize("dataset", ["svamp", "cqa", "anli1", "esnli"])
def test_the_papers_training_rows_come_with_rationales(train_throughput, dataset):
    rows = train_throughput.distilled_rows(dataset)
    assert len(rows) > 300
    assert all(row.input_text and row.output_text and row.rationale for row in rows)


def _qed_sample(folder: Path, train: int, evaluation: int) -> Path:
    """A small file pair in the qed sample's format (contract rows, `question: ... context: ...`)."""
    folder.mkdir()
    for name, count in (("train", train), ("evaluation", evaluation)):
        rows = [
            {"input_text": f"question: who painted picture {i} context: Picture {i} hangs in the hall. It was painted "
             f"by Ann {i}. Visitors like it.", "output_text": f"Ann {i}"}
            for i in range(count)
        ]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_qed_rows_quote_the_sentence_that_holds_the_answer(train_throughput, tmp_path):
    folder = _qed_sample(tmp_path / "qed", 2, 1)
    rows = train_throughput.distilled_rows("qed", data_dir=folder)
    assert [row.output_text for row in rows] == ["Ann 0", "Ann 1"]
    assert rows[1].input_text.startswith("question: who painted picture 1 context: Picture 1 hangs")
    assert rows[1].rationale == 'The context says: "It was painted by Ann 1." So the answer is Ann 1.'


def test_the_committed_qed_sample_gives_every_training_row_a_rationale_quoting_its_context(train_throughput):
    rows = train_throughput.distilled_rows("qed")
    assert len(rows) == 190
    for row in rows:
        prefix, suffix = 'The context says: "', f'" So the answer is {row.output_text}.'
        assert row.rationale.startswith(prefix) and row.rationale.endswith(suffix), row
        quoted = row.rationale[len(prefix): -len(suffix)]
        # The quote is the context's sentence holding the answer, not the answer alone for want of one.
        assert row.output_text in quoted and quoted != row.output_text, row
        assert quoted in row.input_text


def test_memory_comparison_runs_today_s_settings_and_the_bounded_ones_with_the_same_losses(
    train_throughput, tiny_student_dir, tmp_path, capsys
):
    folder = _qed_sample(tmp_path / "qed", 16, 4)
    train_throughput.main([
        "--data", "qed", "--data-dir", str(folder), "--student", tiny_student_dir, "--memory", "--warmup-steps", "0",
        "--steps", "2", "--answered-rows", "2",
    ])
    output = capsys.readouterr().out
    assert re.search(r"^  today: peak memory [\d,]+ MiB, [\d.]+ tokens/s .*'activation_checkpointing': False", output, re.M)
    assert re.search(r"^bounded: peak memory [\d,]+ MiB", output, re.M)
    losses = re.search(r"losses differ by at most ([\d.e+-]+) relative", output)
    assert losses and float(losses.group(1)) < 1e-4
