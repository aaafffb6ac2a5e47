"""The serve load benchmark's machinery at a tiny scale: a loopback server on the tiny student with a half-second
timeout, fractions of a second of load, then alone and under hostile requests of every kind.

The benchmark's own run starts `kfp-distill serve` on SmolLM2 for minutes; this runs its clients, phases,
verdicts and report against `create_server` in this process.
"""

import os
from pathlib import Path

import pytest

from kfp_distill._implementation.scripts import load_module
from kfp_distill._implementation.student import StudentPredictor
from kfp_distill.interfaces.serving import StudentService, create_server

load = load_module("serve_load", Path(__file__).parents[1] / "serve_load.py")


@pytest.fixture
def server_port(tiny_student_dir):
    predictor = StudentPredictor(tiny_student_dir, max_new_tokens=load.MAX_TOKENS)
    server = create_server(StudentService(predictor, model_id="tiny", max_tokens=load.MAX_TOKENS), port=0,
                           api_key=load.API_KEY, timeout=0.5)
    with server.running() as port:
        yield port


def test_every_phase_runs_and_every_hostile_kind_gets_its_refusal(server_port, capsys):
    arguments = load.parse_arguments([
        "--seconds", "0.3", "--hostile-seconds", "0.5", "--rounds", "1", "--clients", "1", "2", "--timeout", "0.5",
        "--body-bytes", str(2 << 20), "--hostile-clients", "12", "--max-tokens", "2",
    ])
    text, verdicts = load.run(server_port, os.getpid(), arguments)

    kinds = load.hostile_kinds(server_port, 0.5, 2 << 20)
    assert len(kinds) == 12  # one client of each
    for kind in kinds:
        assert f"| {kind} | " in text and "| 0 |" in text.split(f"| {kind} | ")[1].splitlines()[0], text
    assert verdicts["errors"], text
    assert text.startswith("| Clients | Answered/s |") and "| 1 | " in text and "| 2 | " in text
    assert "Server peak RSS under attack" in text and "p99 latency under attack" in text


def test_percentiles_interpolate_and_the_memory_bound_follows_the_servers_limits():
    assert load.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == pytest.approx(2.5)
    assert load.percentile([5.0], 0.99) == 5.0
    assert load.percentile([float(i) for i in range(101)], 0.99) == pytest.approx(99.0)
    # 32 small bodies and the large bodies' budget, 5 times over (bodies and parsed fields), and one parse.
    assert load.memory_bound_mib(32) == pytest.approx(5 * (32 + 64) + 8 * 16)
