"""Teacher throughput: our client against a plain sequential loop, on one llama.cpp server, in one run.

Starts a llama.cpp server on loopback (llama.cpp's own `llama-server` with parallel slots and continuous
batching, built by `make llama-server`; else llama-cpp-python's `python -m llama_cpp.server`, which answers
one request at a time) and asks it the same few-shot chain-of-thought prompts (generate-rationales' own
prompts: system instruction, the few-shot examples, then the question) in four ways:

- prompt cost: each prompt once, one at a time, with only one token generated, with the server's prompt
  cache on (`cache_prompt`: a request re-reads only what follows the longest prefix its slot already holds,
  here the shared system instruction and few-shot examples) and off (every request reads its whole prompt).
  Prompt tokens evaluated and prompt milliseconds per example come from the `timings` of llama-server's
  responses (target: at least 3x fewer with the cache). The cache-on pass runs first on the fresh server,
  so its first request pays the whole prefix as a real run's does.
- sequential loop: the obvious script, the `openai` client asking one request after another;
- our client: generate-rationales' `generate_rationales` with the OpenAI-compatible backend
  (`<base_url>#<model>`), `max_concurrency` requests in flight and a fresh answer cache;
- server maximum: every request sent at once, so that the server's slots never wait for a client.

Before each of the last three, one request per slot puts the shared prefix in every slot (as in a long
run), so that no phase pays or saves prefix reads the others do not. With `--repeats`, they run again and
again in alternating order (forwards, then backwards), so that a machine busy with something else for a while
slows them alike, and each phase's median run counts (of an even count, the faster of the two middle ones).
The target for our client is the lower of 1.5x the sequential loop's examples/s and 90% of the server's
maximum.

Usage (from the repository root; `make llama-server` first for llama.cpp's own server):
    flock /tmp/kfp-distill-heavy.lock .venv/bin/python benchmarks/teacher_throughput.py \\
        [--teacher qwen2.5-coder-1.5b-instruct | --quick] [--examples 24] [--max-tokens 128] [--parallel 4] \\
        [--repeats 1] [--data demo|svamp] [--server-binary .cache/llama-server/bin/llama-server]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from openai import OpenAI

from kfp_distill._implementation.jsonl import DatasetError, read_jsonl, write_jsonl
from kfp_distill._implementation.models import DEFAULT_STUDENT, DEFAULT_TEACHER, resolve_gguf
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.generate_rationales.generation import generate_rationales
from kfp_distill.components.generate_rationales.prompts import Mode, build_messages, load_demonstrations
from kfp_distill.components.generate_rationales.report import GenerationReport
from kfp_distill.interfaces.demo import INSTRUCTION, write_demo_data

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_SERVER_BINARY = REPOSITORY / ".cache" / "llama-server" / "bin" / "llama-server"
DEFAULT_SVAMP = REPOSITORY.parent / "shared" / "data" / "dsbs" / "svamp" / "svamp_train.json"
SERVED_MODEL = "teacher"
# The demo's training rows, so that its few-shot examples are the demo's own (they follow the training rows).
DEMO_TRAIN_SIZE = 100
# A question outside the benchmark's rows: asked once per slot to put the shared prefix in every slot.
WARM_UP_QUESTION = f"{INSTRUCTION}\nQuestion: Eve has 10 cups and buys 5 more. How many cups does Eve have now?"
THROUGHPUT_TARGET = 1.5
SERVER_MAXIMUM_SHARE = 0.9
PREFIX_TARGET = 3.0
LOAD_TIMEOUT_S = 600.0
REQUEST_TIMEOUT_S = 1800.0
LLAMA_SERVER = "llama-server"
LLAMA_CPP_PYTHON_SERVER = "llama_cpp.server"


@dataclass(frozen=True)
class PromptCost:
    """One request's prompt, as llama-server's `timings` report it."""

    prompt_tokens: int  # the whole prompt
    evaluated_tokens: int  # those the server had to read (not found in its cache): timings.prompt_n
    prompt_ms: float  # timings.prompt_ms


@dataclass(frozen=True)
class PromptCostSummary:
    examples: int
    mean_prompt_tokens: float
    mean_evaluated_tokens: float
    mean_prompt_ms: float


@dataclass(frozen=True)
class Throughput:
    name: str
    examples: int
    seconds: float
    completion_tokens: int

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds


def summarize_prompt_costs(costs: list[PromptCost]) -> PromptCostSummary:
    """Per-example means over every request, the first (which may read the whole prefix) included."""
    if not costs:
        raise ValueError("no prompt costs to summarize")
    return PromptCostSummary(
        examples=len(costs),
        mean_prompt_tokens=statistics.fmean(cost.prompt_tokens for cost in costs),
        mean_evaluated_tokens=statistics.fmean(cost.evaluated_tokens for cost in costs),
        mean_prompt_ms=statistics.fmean(cost.prompt_ms for cost in costs),
    )


def throughput_target(sequential_per_s: float, server_maximum_per_s: float) -> float:
    """The examples/s our client must reach: the lower of 1.5x the sequential loop and 90% of the maximum."""
    return min(THROUGHPUT_TARGET * sequential_per_s, SERVER_MAXIMUM_SHARE * server_maximum_per_s)


def phase_order(phases: int, repeat: int) -> list[int]:
    """The phases in order on even repeats and in reverse on odd ones, so no phase always runs first."""
    order = list(range(phases))
    return order[::-1] if repeat % 2 else order


def median_run(runs: list[Throughput]) -> Throughput:
    """The run with the median time (of an even count, the faster of the two middle ones)."""
    return sorted(runs, key=lambda run: run.seconds)[(len(runs) - 1) // 2]


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", default=DEFAULT_TEACHER, help="the GGUF teacher: catalog name or .gguf path")
    parser.add_argument("--quick", action="store_true", help=f"use {DEFAULT_STUDENT} as the teacher (a fast check)")
    parser.add_argument("--examples", type=int, default=24, help="rows asked in each phase")
    parser.add_argument("--max-tokens", type=int, default=128, help="the most tokens per answer")
    parser.add_argument("--parallel", type=int, default=4, help="server slots and our client's max_concurrency")
    parser.add_argument("--slot-context", type=int, default=2048, help="context tokens per server slot")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each throughput phase (median shown)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="the server's CPU threads")
    parser.add_argument("--data", choices=("demo", "svamp"), default="demo", help="the rows: demo problems or SVAMP")
    parser.add_argument("--svamp-file", type=Path, default=DEFAULT_SVAMP, help="SVAMP rows (JSON Lines, read in place)")
    parser.add_argument("--server-binary", type=Path, default=DEFAULT_SERVER_BINARY, help="llama.cpp's llama-server")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.teacher = DEFAULT_STUDENT
    for name in ("examples", "max_tokens", "parallel", "slot_context", "threads", "repeats"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return arguments


def server_command(
    server_binary: Path, gguf: Path, port: int, parallel: int, slot_context: int, threads: int
) -> tuple[str, list[str]]:
    """Which server runs the teacher, and its command line: llama-server if the binary is there."""
    if server_binary.is_file():
        return LLAMA_SERVER, [
            str(server_binary), "--model", str(gguf), "--alias", SERVED_MODEL,
            "--host", "127.0.0.1", "--port", str(port),
            "--parallel", str(parallel), "--cont-batching", "--ctx-size", str(parallel * slot_context),
            "--threads", str(threads), "--threads-batch", str(threads),
            "--cache-ram", "0",  # no host-memory prompt cache: a later phase must not reuse an earlier one's prompts
        ]  # fmt: skip
    return LLAMA_CPP_PYTHON_SERVER, [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", SERVED_MODEL,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(slot_context), "--n_threads", str(threads),
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(process: subprocess.Popen, base_url: str, log_path: Path) -> None:
    """Polls the model list until the server answers (llama-server says 503 while it loads the model)."""
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/models", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not answer within {LOAD_TIMEOUT_S:.0f} s; its log: {log_path}")


def read_rows(arguments: argparse.Namespace, scratch: Path) -> tuple[Path, Path]:
    """Writes the benchmark's unlabeled rows and few-shot examples; returns their paths."""
    demo = write_demo_data(scratch / "demo", train_size=max(arguments.examples, DEMO_TRAIN_SIZE))
    if arguments.data == "svamp":  # the demo's instruction and few-shot examples, SVAMP's questions
        rows = []
        for line, row in read_jsonl(str(arguments.svamp_file)):
            if not isinstance(row.get("input"), str):
                raise DatasetError(str(arguments.svamp_file), "expected the question as a string", line, "input")
            rows.append({"input_text": f"{INSTRUCTION}\nQuestion: {row['input']}"})
    else:
        rows = [row for _, row in read_jsonl(demo["train"])]
    rows_path = scratch / "rows.jsonl"
    write_jsonl(rows_path, rows[: arguments.examples])
    return rows_path, Path(demo["few_shot"])


def conversations_of(rows_path: Path, few_shot_path: Path) -> list[list[dict[str, str]]]:
    """The prompts generate_rationales builds for these unlabeled rows (predict mode, every example shown)."""
    demonstrations = load_demonstrations(str(few_shot_path))
    return [
        build_messages(row["input_text"], Mode.PREDICT, None, demonstrations) for _, row in read_jsonl(str(rows_path))
    ]


def raw_request(client: httpx.Client, messages: list[dict[str, str]], max_tokens: int, **extra) -> dict:
    body = {"model": SERVED_MODEL, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0, **extra}
    response = client.post("/chat/completions", json=body)
    response.raise_for_status()
    return response.json()


def prompt_costs(base_url: str, conversations: list[list[dict[str, str]]], cache_prompt: bool) -> list[PromptCost]:
    """Reads each prompt once, one request at a time, generating one token."""
    costs = []
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as client:
        for messages in conversations:
            body = raw_request(client, messages, 1, cache_prompt=cache_prompt)
            timings = body["timings"]
            costs.append(PromptCost(body["usage"]["prompt_tokens"], timings["prompt_n"], timings["prompt_ms"]))
    return costs


def warm_slots(base_url: str, messages: list[dict[str, str]], slots: int) -> None:
    """One request per slot, all at once, so that every slot holds the shared prefix."""
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as client, ThreadPoolExecutor(slots) as pool:
        list(pool.map(lambda _: raw_request(client, messages, 1), range(slots)))


def sequential_loop(base_url: str, conversations: list[list[dict[str, str]]], max_tokens: int) -> Throughput:
    """The obvious script: one request after another."""
    client = OpenAI(base_url=base_url, api_key="none", timeout=REQUEST_TIMEOUT_S)
    completion_tokens = 0
    started = time.perf_counter()
    for messages in conversations:
        response = client.chat.completions.create(
            model=SERVED_MODEL, messages=messages, max_tokens=max_tokens, temperature=0.0
        )
        completion_tokens += response.usage.completion_tokens
    return Throughput("sequential loop", len(conversations), time.perf_counter() - started, completion_tokens)


def our_client(
    base_url: str, rows_path: Path, few_shot_path: Path, max_tokens: int, concurrency: int, scratch: Path
) -> Throughput:
    """generate_rationales over the rows, with a fresh answer cache."""
    output = scratch / "ours"
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    outcome = generate_rationales(
        rows_path,
        output / "rationales.jsonl",
        output / "report.md",
        GenerationConfig(
            f"{base_url}#{SERVED_MODEL}",
            few_shot_uri=str(few_shot_path),
            max_new_tokens=max_tokens,
            temperature=0.0,
            max_concurrency=concurrency,
            request_timeout_s=REQUEST_TIMEOUT_S,
            answer_format="text",  # the prompts the other phases send, so all three ask the same
        ),
        cache_path=output / "teacher_answers.sqlite",
    )
    seconds = time.perf_counter() - started
    report = GenerationReport.of(outcome)
    if report.requests != report.rows:
        raise RuntimeError(f"our client asked {report.requests} of {report.rows} rows; see {output / 'report.md'}")
    return Throughput(f"our client ({concurrency} in flight)", report.rows, seconds, report.completion_tokens)


def server_maximum(base_url: str, conversations: list[list[dict[str, str]]], max_tokens: int) -> Throughput:
    """Every request at once: the server's slots are never idle for want of a request."""
    with (
        httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=httpx.Limits(max_connections=None)) as client,
        ThreadPoolExecutor(len(conversations)) as pool,
    ):
        started = time.perf_counter()
        bodies = list(pool.map(lambda messages: raw_request(client, messages, max_tokens), conversations))
        seconds = time.perf_counter() - started
    completion_tokens = sum(body["usage"]["completion_tokens"] for body in bodies)
    return Throughput("server maximum (all at once)", len(conversations), seconds, completion_tokens)


def print_prompt_costs(cached: list[PromptCost], uncached: list[PromptCost]) -> None:
    on, off = summarize_prompt_costs(cached), summarize_prompt_costs(uncached)
    print(f"\nprompt cost per example ({on.examples} prompts of {on.mean_prompt_tokens:.0f} tokens on average):")
    for label, summary in (("cache_prompt on ", on), ("cache_prompt off", off)):
        print(
            f"  {label}: {summary.mean_evaluated_tokens:7.1f} prompt tokens evaluated, "
            f"{summary.mean_prompt_ms:8.1f} ms prompt time"
        )
    steady = summarize_prompt_costs(cached[1:]) if len(cached) > 1 else on
    print(
        f"  first cached request read {cached[0].evaluated_tokens} tokens ({cached[0].prompt_ms:.0f} ms), "
        f"the others {steady.mean_evaluated_tokens:.1f} tokens ({steady.mean_prompt_ms:.1f} ms) on average"
    )
    token_ratio = off.mean_evaluated_tokens / on.mean_evaluated_tokens
    time_ratio = off.mean_prompt_ms / on.mean_prompt_ms
    verdict = "met" if min(token_ratio, time_ratio) >= PREFIX_TARGET else "NOT met"
    print(
        f"  shared prefix makes the prompt cost {token_ratio:.1f}x smaller in tokens, {time_ratio:.1f}x in time "
        f"(target >= {PREFIX_TARGET:.0f}x: {verdict})"
    )


def print_throughputs(results: list[Throughput]) -> None:
    sequential, ours, maximum = results
    print("\nthroughput (median run of each):")
    for result in results:
        print(
            f"  {result.name:>28}: {result.examples_per_s:.3f} examples/s ({result.examples} in "
            f"{result.seconds:.1f} s, {result.completion_tokens} completion tokens, "
            f"{result.completion_tokens / result.seconds:.1f} tokens/s)"
        )
    target = throughput_target(sequential.examples_per_s, maximum.examples_per_s)
    verdict = "met" if ours.examples_per_s >= target else "NOT met"
    print(
        f"  ours / sequential loop: {ours.examples_per_s / sequential.examples_per_s:.2f}x; "
        f"ours / server maximum: {ours.examples_per_s / maximum.examples_per_s:.2f}; "
        f"server maximum / sequential loop: {maximum.examples_per_s / sequential.examples_per_s:.2f}x"
    )
    print(
        f"  target: >= {target:.3f} examples/s (the lower of {THROUGHPUT_TARGET}x the sequential loop and "
        f"{SERVER_MAXIMUM_SHARE:.0%} of the server maximum): {verdict}"
    )


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    gguf = resolve_gguf(arguments.teacher)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    kind, command = server_command(
        arguments.server_binary, gguf, port, arguments.parallel, arguments.slot_context, arguments.threads
    )
    with tempfile.TemporaryDirectory(prefix="teacher-throughput-") as scratch_name:
        scratch = Path(scratch_name)
        rows_path, few_shot_path = read_rows(arguments, scratch)
        conversations = conversations_of(rows_path, few_shot_path)
        warm_up = build_messages(WARM_UP_QUESTION, Mode.PREDICT, None, load_demonstrations(str(few_shot_path)))
        log_path = scratch / "server.log"
        print(f"server: {kind} ({' '.join(command)})", flush=True)
        if kind == LLAMA_CPP_PYTHON_SERVER:
            print(
                f"  (no llama-server at {arguments.server_binary}: `make llama-server` builds it; "
                "llama_cpp.server answers one request at a time)",
                flush=True,
            )
        print(
            f"teacher {arguments.teacher} ({gguf.name}), {len(conversations)} {arguments.data} rows, "
            f"max_tokens {arguments.max_tokens}, {arguments.parallel} slots / in flight, "
            f"{arguments.threads} threads, {os.cpu_count()} CPUs",
            flush=True,
        )
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            started = time.perf_counter()
            wait_until_ready(process, base_url, log_path)
            print(f"server ready in {time.perf_counter() - started:.1f} s", flush=True)
            if kind == LLAMA_SERVER:
                cached = prompt_costs(base_url, conversations, cache_prompt=True)  # first: a cold server
                uncached = prompt_costs(base_url, conversations, cache_prompt=False)
                print_prompt_costs(cached, uncached)
            else:
                print("\nprompt cost: skipped (it needs llama-server's per-request timings)")
            phases = [
                lambda: sequential_loop(base_url, conversations, arguments.max_tokens),
                lambda: our_client(
                    base_url, rows_path, few_shot_path, arguments.max_tokens, arguments.parallel, scratch
                ),
                lambda: server_maximum(base_url, conversations, arguments.max_tokens),
            ]
            runs: list[list[Throughput]] = [[] for _ in phases]
            print(f"\nthroughput runs (phase order {'alternating' if arguments.repeats > 1 else 'as listed'}):")
            for repeat in range(arguments.repeats):
                for index in phase_order(len(phases), repeat):
                    warm_slots(base_url, warm_up, arguments.parallel)
                    runs[index].append(phases[index]())
                    print(f"  {runs[index][-1].name}: {runs[index][-1].seconds:.1f} s", flush=True)
            print_throughputs([median_run(phase_runs) for phase_runs in runs])
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
