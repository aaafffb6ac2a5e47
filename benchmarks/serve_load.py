"""Serve under load: `kfp-distill serve` answering many clients at once, and hostile ones beside a good one.

Starts `kfp-distill serve` on loopback as users and the serving container start it (the CLI, with an API key)
on a distilled copy of the catalog student: `smollm2-135m-instruct` saved as tune-student saves a tuned model
(weights, tokenizer, a model record). Every client opens a connection per request, as the server answers one
request per connection. Each phase runs for a fixed time and at most `--max-requests` requests, then stops.

- Load: 1, 8 and 32 clients, each sending a chat request (a demo question, `max_tokens` 32) as soon as its
  last one was answered. Printed per phase: answered requests per second, p50 and p99 latency of the answered
  ones, the share of 503s (each honoured by waiting its Retry-After), errors (anything but a 200, or a 503
  with Retry-After) and the server process's peak RSS during the phase.
- Hostile: one well-behaved client sending the load phases' request, alone for a window of `--hostile-seconds`,
  then as long again beside 32 clients sending hostile requests round-robin over the kinds of
  `hostile_kinds` (bodies over the size cap, 16 MiB of tiny JSON values, 16 MiB of text in a field of the
  wrong type, nesting 100,000 deep, malformed JSON, UTF-8 or request lines, no or a bad Content-Length, a
  wrong key, bodies and heads trickled a byte at a time, silent connections, answers left unread); `--rounds`
  times, so that other work on the machine slows both kinds of window alike.

Verdicts, measured side by side in the same run: errors under attack (target: none; a hostile request counts
as answered right when it gets its kind's refusal, or a 503 with Retry-After); the server's peak RSS in the
hostile phase against its peak under 32 well-behaved clients (target: at most the memory the server's limits
allow for request bodies and their parsing, `memory_bound_mib`); and the well-behaved client's p99 latency
under attack against its p99 in the windows alone (target: within 3x).

The clients run at a lower priority than the server (nice +10): clients on other machines would not take the
server's CPU. Usage (from the repository root; a benchmark, so under the heavy lock on a shared machine):

    flock /tmp/kfp-distill-heavy.lock nice -n -5 taskset -c 1 .venv/bin/python benchmarks/serve_load.py \\
        [--seconds 60] [--hostile-seconds 30] [--rounds 3] [--model MODEL_DIR] [--max-requests 100000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kfp_distill.interfaces.demo import make_problems
from kfp_distill.interfaces.serving import (
    API_KEY_ENV,
    DEFAULT_MAX_CONNECTIONS,
    LARGE_BODIES_BYTES,
    MAX_BODY_BYTES,
    SMALL_BODY_BYTES,
)

STUDENT = "smollm2-135m-instruct"
API_KEY = "serve-load-key"
MAX_TOKENS = 32
LOAD_CLIENTS = (1, 8, 32)
HOSTILE_CLIENTS = 32
CLIENT_NICENESS = 10
P99_TARGET = 3.0
MiB = 1 << 20


@dataclass
class Outcome:
    """One request: its kind, the status answered (None: no whole answer), how long it took, and whether the
    status is the one its kind must get (a 503 with Retry-After always is)."""

    kind: str
    status: int | None
    seconds: float
    expected: bool


@dataclass
class Phase:
    name: str
    seconds: float
    outcomes: list[Outcome]
    peak_rss_mib: float

    def of(self, kind: str) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.kind == kind]

    def answered_latencies(self, kind: str = "well-behaved") -> list[float]:
        return [outcome.seconds for outcome in self.of(kind) if outcome.status == 200]

    def answered_per_s(self, kind: str = "well-behaved") -> float:
        return len(self.answered_latencies(kind)) / self.seconds

    def share_503(self, kind: str = "well-behaved") -> float:
        outcomes = self.of(kind)
        return sum(outcome.status == 503 for outcome in outcomes) / max(len(outcomes), 1)

    def errors(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.expected]


def percentile(latencies: list[float], share: float) -> float:
    """The latency below which `share` of them fall (linear between the two nearest); NaN without any."""
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    position = share * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def exchange(
    port: int, request: bytes, kind: str, expected: set[int | None], *, trickle: bytes = b"", receive_buffer: int = 0,
    unread_s: float = 0.0, wait_s: float = 120.0,
) -> Outcome:
    """Sends a raw request (then `trickle`, a byte each half second, until the server answers) and reads the
    answer (with `receive_buffer`, after reading nothing for `unread_s` or until the server closes the
    connection); a status in `expected`, or a 503 with Retry-After, is what this kind must get."""
    started = time.monotonic()
    status, retry_after = None, None
    with socket.socket() as connection:
        if receive_buffer:  # a client that reads nothing holds the answer in a small buffer, then in the server's
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        connection.settimeout(wait_s)
        try:
            connection.connect(("127.0.0.1", port))
            try:
                connection.sendall(request)
                for byte in trickle:
                    if select.select([connection], [], [], 0.5)[0]:  # answered: the server stopped waiting
                        break
                    connection.sendall(bytes([byte]))
            except OSError:  # refused before the whole body was sent: the answer may still be there to read
                pass
            if receive_buffer:  # reads nothing until the server gives up on it (or the kernel holds it all)
                wait_until_closed(connection, started + unread_s)
            response = http.client.HTTPResponse(connection)
            response.begin()
            response.read()
            status, retry_after = response.status, response.getheader("Retry-After")
        except (OSError, http.client.HTTPException):
            pass
    seconds = time.monotonic() - started
    return Outcome(kind, status, seconds, status in expected or (status == 503 and retry_after is not None))


def wait_until_closed(connection: socket.socket, deadline: float) -> None:
    """Waits, reading nothing, until the server closes the connection (or the deadline passes)."""
    import struct

    while time.monotonic() < deadline:
        # TCP_INFO's first byte is the connection's state; 1 is ESTABLISHED.
        if struct.unpack("B", connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0] != 1:
            return
        time.sleep(0.25)


def _head(method: str, route: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {route} HTTP/1.1", "Host: 127.0.0.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post(route: str, body: bytes, key: str = API_KEY, **headers: str) -> bytes:
    """A POST whose Content-Length is the body's, unless `headers` say otherwise."""
    fields = {"Authorization": f"Bearer {key}", "Content-Length": str(len(body)), **headers}
    return _head("POST", route, {name.replace("_", "-"): value for name, value in fields.items()}) + body


def chat_body(question: str, max_tokens: int = MAX_TOKENS) -> bytes:
    message = {"role": "user", "content": question}
    return json.dumps({"model": "student", "messages": [message], "max_tokens": max_tokens}).encode()


def well_behaved(port: int, max_tokens: int, wait_s: float) -> Callable[[], Outcome]:
    """The load phases' client: chat requests about the demo's questions, in turn."""
    questions = [problem.input_text for problem in make_problems(64, seed=11)]
    counter = iter(range(10**9))

    def send() -> Outcome:
        question = questions[next(counter) % len(questions)]
        return exchange(port, post("/v1/chat/completions", chat_body(question, max_tokens)), "well-behaved", {200},
                        wait_s=wait_s)

    return send


def hostile_kinds(port: int, timeout: float, body_bytes: int = MAX_BODY_BYTES) -> dict[str, Callable[[], Outcome]]:
    """Each hostile kind of request, sending what it is named for and expecting the server's refusal.

    `timeout` is the server's; `body_bytes` the size of the largest bodies (the server's cap by default).
    """
    wait_s = timeout + 30
    route = "/v1/completions"
    many_values = b'{"prompt": [' + b"{}," * ((body_bytes - 20) // 3) + b"{}]}"
    text_of_wrong_type = b'{"prompt": 7, "padding": "' + b"x" * (body_bytes - 40) + b'"}'
    deep = b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    # Refused with its value in the message: an answer larger than the socket buffers of both ends.
    echoed = json.dumps({"prompt": "x", "kfp_distill_task": "x" * (body_bytes // 2)}).encode()
    malformed = [
        post(route, b'{"prompt": "unterminated'),
        post(route, b'{"prompt": "\xff\xfe not UTF-8"}'),
        b"GET\x00/ HTTP/9.9\r\n\r\n",
    ]
    rotation = iter(range(10**9))
    size = f"{body_bytes / MiB:g} MiB"

    def kind(name: str, request: bytes | Callable[[], bytes], expected: set[int | None], **options) -> Callable[[], Outcome]:
        def send() -> Outcome:
            sent = request() if callable(request) else request
            return exchange(port, sent, name, expected, wait_s=wait_s, **options)

        return send

    return {
        "over the size cap": kind("over the size cap",
                                  post(route, b"x" * (64 << 10), Content_Length=str(MAX_BODY_BYTES + 1)), {413}),
        f"{size} of tiny values": kind(f"{size} of tiny values", post(route, many_values), {400}),
        f"{size} in a wrong field": kind(f"{size} in a wrong field", post(route, text_of_wrong_type), {400}),
        "nested 100,000 deep": kind("nested 100,000 deep", post(route, deep), {400}),
        "malformed": kind("malformed", lambda: malformed[next(rotation) % len(malformed)], {400}),
        "no Content-Length": kind("no Content-Length",
                                  _head("POST", route, {"Transfer-Encoding": "chunked"}) + b"0\r\n\r\n", {411}),
        "bad Content-Length": kind("bad Content-Length", post(route, b"{}", Content_Length="2, 2"), {400}),
        "wrong key": kind("wrong key", post(route, chat_body("1 + 1?"), key="wrong"), {401}),
        "trickled body": kind("trickled body", post(route, b'{"prompt": "', Content_Length="100"), {408},
                              trickle=b" " * 1000),
        "trickled head": kind("trickled head", b"POST /v1/completions HTTP/1.1\r\n", {408}, trickle=b"X" * 1000),
        "silent": kind("silent", b"", {408}),
        # Dropped once the server's writes stall for its timeout (or whole, where the socket buffers hold it).
        "answer left unread": kind("answer left unread", post(route, echoed), {None, 400}, receive_buffer=4096,
                                   unread_s=timeout + 1),
    }


def run_clients(clients: list[Callable[[], Outcome]], seconds: float, max_requests: int) -> list[Outcome]:
    """Each client sends its requests one after another until `seconds` pass or `max_requests` are sent in all;
    a 503 is honoured by waiting a second (its Retry-After) before the next."""
    stop_at = time.monotonic() + seconds
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def loop(send: Callable[[], Outcome]) -> None:
        while time.monotonic() < stop_at:
            with lock:
                if len(outcomes) >= max_requests:
                    return
            outcome = send()
            with lock:
                outcomes.append(outcome)
            if outcome.status == 503:
                time.sleep(max(0.0, min(1.0, stop_at - time.monotonic())))

    threads = [threading.Thread(target=loop, args=(send,), daemon=True) for send in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def reset_peak_rss(pid: int) -> None:
    """Makes the process's peak RSS start again from its current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def run_phase(name: str, clients: list[Callable[[], Outcome]], seconds: float, max_requests: int, pid: int) -> Phase:
    reset_peak_rss(pid)
    started = time.monotonic()
    outcomes = run_clients(clients, seconds, max_requests)
    phase = Phase(name, time.monotonic() - started, outcomes, peak_rss_mib(pid))
    print(f"  {name}: {len(outcomes)} requests, {len(phase.errors())} errors", file=sys.stderr, flush=True)
    return phase


def memory_bound_mib(max_connections: int = DEFAULT_MAX_CONNECTIONS) -> float:
    """The most memory the server's limits let request bodies take (kfp_distill/interfaces/serving.py's docstring): the
    bodies themselves (small ones on every connection, large ones within their shared budget), 4 times that
    in parsed fields, and one body of the largest size being parsed (8 times its size)."""
    bodies = max_connections * SMALL_BODY_BYTES + LARGE_BODIES_BYTES
    return (5 * bodies + 8 * MAX_BODY_BYTES) / MiB


def report(load: list[Phase], alone: Phase, hostile: Phase, bound_mib: float) -> tuple[str, dict[str, bool]]:
    """The results as Markdown, and each target's verdict: `alone` is the well-behaved client in the windows
    without attack, `hostile` every client in the windows with it."""
    lines = [
        "| Clients | Answered/s | p50 latency | p99 latency | 503s | Errors | Server peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for phase in load:
        latencies = phase.answered_latencies()
        lines.append(
            f"| {phase.name} | {phase.answered_per_s():.2f} | {percentile(latencies, 0.5):.2f} s | "
            f"{percentile(latencies, 0.99):.2f} s | {phase.share_503():.1%} | {len(phase.errors())} | "
            f"{phase.peak_rss_mib:.0f} MiB |"
        )
    lines += ["", "| Hostile kind | Requests | Statuses | Errors |", "|---|---|---|---|"]
    for kind in sorted({outcome.kind for outcome in hostile.outcomes}):
        outcomes = hostile.of(kind)
        statuses = Counter("none" if o.status is None else str(o.status) for o in outcomes)
        shown = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
        lines.append(f"| {kind} | {len(outcomes)} | {shown} | {sum(not o.expected for o in outcomes)} |")

    crowded = load[-1]
    p50_alone, p99_alone = (percentile(alone.answered_latencies(), share) for share in (0.5, 0.99))
    p50_attacked, p99_attacked = (percentile(hostile.answered_latencies(), share) for share in (0.5, 0.99))
    growth = hostile.peak_rss_mib - crowded.peak_rss_mib
    verdicts = {
        "errors": not hostile.errors(),
        "memory": growth <= bound_mib,
        "latency": p99_attacked <= P99_TARGET * p99_alone,
    }
    met = {True: "met", False: "missed"}
    lines += [
        "",
        f"- Errors under attack (anything but the kind's refusal or a 503 with Retry-After): "
        f"{len(hostile.errors())} of {len(hostile.outcomes)} requests (target 0: {met[verdicts['errors']]}).",
        f"- Server peak RSS under attack: {hostile.peak_rss_mib:.0f} MiB, {growth:+.0f} MiB against "
        f"{crowded.peak_rss_mib:.0f} MiB under {crowded.name} well-behaved clients; the server's limits allow "
        f"{bound_mib:.0f} MiB for request bodies ({growth / bound_mib:.2f} of it; target at most 1: "
        f"{met[verdicts['memory']]}).",
        f"- Well-behaved client's p99 latency under attack: {p99_attacked:.2f} s against {p99_alone:.2f} s alone "
        f"in the windows between: {p99_attacked / p99_alone:.2f}x (target at most {P99_TARGET:g}x: "
        f"{met[verdicts['latency']]}); p50 {p50_attacked:.2f} s against {p50_alone:.2f} s; "
        f"{len(hostile.answered_latencies())} and {len(alone.answered_latencies())} answers, "
        f"{hostile.share_503():.1%} 503s under attack.",
    ]
    return "\n".join(lines), verdicts


def distilled_copy(directory: Path) -> Path:
    """The catalog student saved as tune-student saves a tuned model: weights, tokenizer and a model record."""
    from kfp_distill._implementation.model_record import write_record
    from kfp_distill._implementation.models import load_causal_lm, load_tokenizer
    from kfp_distill._implementation.student import STUDENT_TASKS, student_prompt

    model, tokenizer = load_causal_lm(STUDENT), load_tokenizer(STUDENT)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    write_record(directory, {
        "student_model_reference": STUDENT,
        "architecture": "causal",
        "prompt_format": {task: student_prompt("{input_text}", task) for task in STUDENT_TASKS},
        "trained_tasks": list(STUDENT_TASKS),
    })
    return directory


def start_server(model_dir: str, timeout: float, log: Path) -> tuple[subprocess.Popen, int]:
    """`kfp-distill serve` on a free loopback port with an API key; returns the process and its port."""
    server = subprocess.Popen(
        [sys.executable, "-m", "kfp_distill.interfaces.cli", "serve", model_dir, "--port", "0", "--timeout", str(timeout)],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env={**os.environ, API_KEY_ENV: API_KEY},
    )
    banner = server.stdout.readline()  # "Serving NAME at http://127.0.0.1:PORT/v1 ..."
    if " at http://" not in banner:
        server.kill()
        raise RuntimeError(f"kfp-distill serve did not start: {log.read_text()[-2000:]}")
    return server, int(banner.split(" at http://")[1].split("/")[0].rsplit(":", 1)[1])


def run(port: int, pid: int, arguments: argparse.Namespace) -> tuple[str, dict[str, bool]]:
    """The load phases, then the hostile one, against a server on `port` whose process is `pid`."""
    wait_s = 600.0  # a request may wait behind every other one for the model
    warm = well_behaved(port, arguments.max_tokens, wait_s)
    for _ in range(2):  # the first answers pay for loading what generation needs
        warm()
    load = [
        run_phase(f"{clients}", [well_behaved(port, arguments.max_tokens, wait_s) for _ in range(clients)],
                  arguments.seconds, arguments.max_requests, pid)
        for clients in arguments.clients
    ]
    kinds = list(hostile_kinds(port, arguments.timeout, arguments.body_bytes).values())
    attackers = [kinds[i % len(kinds)] for i in range(arguments.hostile_clients)]
    # Windows alone and under attack alternate, so that other work on the machine slows both alike.
    quiet: list[Outcome] = []
    attacked: list[Outcome] = []
    reset_peak_rss(pid)
    for round_number in range(1, arguments.rounds + 1):
        quiet += run_clients([well_behaved(port, arguments.max_tokens, wait_s)], arguments.hostile_seconds,
                             arguments.max_requests)
        attacked += run_clients([well_behaved(port, arguments.max_tokens, wait_s), *attackers],
                                arguments.hostile_seconds, arguments.max_requests)
        print(f"  round {round_number}: {len(attacked)} requests under attack so far", file=sys.stderr, flush=True)
    peak = peak_rss_mib(pid)
    seconds = arguments.rounds * arguments.hostile_seconds
    return report(load, Phase("alone", seconds, quiet, peak), Phase("hostile", seconds, attacked, peak),
                  memory_bound_mib())


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="a tuned model directory (default: a distilled copy of "
                                                    f"{STUDENT}, made in a temporary folder)")
    parser.add_argument("--seconds", type=float, default=60.0, help="each load phase's length")
    parser.add_argument("--hostile-seconds", type=float, default=30.0,
                        help="each window of the hostile phase (one client alone, then under attack)")
    parser.add_argument("--rounds", type=int, default=3, help="the hostile phase's pairs of windows")
    parser.add_argument("--clients", type=int, nargs="+", default=list(LOAD_CLIENTS))
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="the well-behaved requests' max_tokens")
    parser.add_argument("--hostile-clients", type=int, default=HOSTILE_CLIENTS)
    parser.add_argument("--max-requests", type=int, default=100_000, help="the most requests one phase sends")
    parser.add_argument("--timeout", type=float, default=30.0, help="the server's --timeout")
    parser.add_argument("--body-bytes", type=int, default=MAX_BODY_BYTES, help="the largest hostile bodies")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as scratch:
        model_dir = arguments.model or str(distilled_copy(Path(scratch) / "model"))
        server, port = start_server(model_dir, arguments.timeout, Path(scratch) / "server.log")
        try:
            os.nice(CLIENT_NICENESS)  # the clients yield the CPU to the server, as clients elsewhere would
            text, verdicts = run(port, server.pid, arguments)
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(f"serve load, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores visible, "
          f"{len(os.sched_getaffinity(0))} usable; max_tokens {arguments.max_tokens}:\n")
    print(text)
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
