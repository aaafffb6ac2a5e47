"""The teacher throughput benchmark's own logic: arguments, server choice, arithmetic, and equal prompts.

No model runs here: the phases talk to generate-rationales' loopback stub server.
"""

from pathlib import Path

import pytest

from kfp_distill._implementation.jsonl import DatasetError
from kfp_distill._implementation.scripts import load_module

_BENCHMARKS = Path(__file__).parents[1]


throughput = load_module("teacher_throughput", _BENCHMARKS / "teacher_throughput.py")
# The stub server of generate-rationales' tests, under the name its conftest gives it.
stub = load_module(
    "generate_rationales_openai_stub_server",
    _BENCHMARKS.parent / "components" / "generate_rationales" / "tests" / "openai_stub_server.py",
)


def test_arguments_default_to_the_catalog_teacher_and_quick_picks_smollm2():
    arguments = throughput.parse_arguments([])
    assert (arguments.teacher, arguments.examples, arguments.max_tokens, arguments.parallel) == (
        "qwen2.5-coder-1.5b-instruct", 24, 128, 4
    )
    assert arguments.server_binary == throughput.DEFAULT_SERVER_BINARY
    assert throughput.parse_arguments(["--quick"]).teacher == "smollm2-135m-instruct"
    with pytest.raises(SystemExit):
        throughput.parse_arguments(["--parallel", "0"])


def test_llama_server_when_built_else_llama_cpp_python_server(tmp_path):
    binary = tmp_path / "llama-server"
    binary.write_text("")
    kind, command = throughput.server_command(binary, Path("m.gguf"), 8123, 4, 2048, 2)
    assert kind == "llama-server"
    assert command[0] == str(binary)
    assert command[command.index("--parallel") + 1] == "4"
    assert command[command.index("--ctx-size") + 1] == "8192"  # every slot gets its own 2048 tokens
    assert "--cont-batching" in command
    kind, command = throughput.server_command(tmp_path / "missing", Path("m.gguf"), 8123, 4, 2048, 2)
    assert kind == "llama_cpp.server"
    assert command[1:3] == ["-m", "llama_cpp.server"]


def test_prompt_cost_means_include_the_request_that_read_the_prefix():
    # Timings as llama-server reports them: the first cached request reads the whole prompt.
    cost = throughput.PromptCost
    cached = [cost(300, 300, 600.0), cost(310, 40, 90.0), cost(305, 35, 75.0)]
    uncached = [cost(300, 300, 600.0), cost(310, 310, 640.0), cost(305, 305, 620.0)]
    on, off = throughput.summarize_prompt_costs(cached), throughput.summarize_prompt_costs(uncached)
    assert on.mean_evaluated_tokens == pytest.approx(125.0)
    assert on.mean_prompt_ms == pytest.approx(255.0)
    assert off.mean_evaluated_tokens / on.mean_evaluated_tokens == pytest.approx(915 / 375)
    with pytest.raises(ValueError):
        throughput.summarize_prompt_costs([])


def test_throughput_target_is_the_lower_of_the_two():
    assert throughput.throughput_target(sequential_per_s=0.2, server_maximum_per_s=1.0) == pytest.approx(0.3)
    assert throughput.throughput_target(sequential_per_s=0.2, server_maximum_per_s=0.25) == pytest.approx(0.225)


def test_phases_alternate_their_order_and_the_median_run_counts():
    assert [throughput.phase_order(3, repeat) for repeat in range(3)] == [[0, 1, 2], [2, 1, 0], [0, 1, 2]]
    runs = [throughput.Throughput("ours", 24, seconds, 1000) for seconds in (70.0, 60.0, 90.0)]
    assert throughput.median_run(runs).seconds == 70.0
    assert throughput.median_run(runs[:2]).seconds == 60.0
    assert throughput.median_run(runs[:1]).examples_per_s == pytest.approx(24 / 70)


def test_every_phase_asks_the_same_prompts_with_the_same_max_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    arguments = throughput.parse_arguments(["--examples", "5", "--max-tokens", "64", "--parallel", "3"])
    rows_path, few_shot_path = throughput.read_rows(arguments, tmp_path)
    conversations = throughput.conversations_of(rows_path, few_shot_path)
    assert len(conversations) == 5
    shared_prefix = conversations[0][:-1]
    assert len(shared_prefix) == 1 + 2 * 4  # system instruction and four few-shot examples
    assert all(messages[:-1] == shared_prefix for messages in conversations)

    with stub.OpenAIStubServer() as server:
        results = [
            throughput.sequential_loop(server.base_url, conversations, 64),
            throughput.our_client(server.base_url, rows_path, few_shot_path, 64, 3, tmp_path),
            throughput.server_maximum(server.base_url, conversations, 64),
        ]
    asked = [server.requests[i * 5 : (i + 1) * 5] for i in range(3)]
    for requests in asked:
        assert sorted(str(body["messages"]) for body in requests) == sorted(str(c) for c in conversations)
        assert {body["max_tokens"] for body in requests} == {64}
    assert [result.examples for result in results] == [5, 5, 5]
    assert all(result.seconds > 0 and result.completion_tokens > 0 for result in results)


def test_svamp_rows_are_read_with_errors_naming_file_line_and_field(tmp_path):
    svamp = tmp_path / "svamp_train.json"
    svamp.write_text('{"input": "How many pens?"}\n{"question": "no input"}\n')
    arguments = throughput.parse_arguments(["--data", "svamp", "--svamp-file", str(svamp), "--examples", "1"])
    with pytest.raises(DatasetError, match=r"svamp_train.json, line 2, field 'input': expected the question as a string"):
        throughput.read_rows(arguments, tmp_path / "scratch")
    svamp.write_text('{"input": "How many pens?"}\n')
    rows_path, _ = throughput.read_rows(arguments, tmp_path / "scratch")
    assert rows_path.read_text().count("How many pens?") == 1
