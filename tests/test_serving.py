import http.client
import json
import select
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from kfp_distill._implementation.conversations import Message, render_prompt
from kfp_distill._implementation.model_store import answer
from kfp_distill._implementation.student import StudentPredictor
from kfp_distill.interfaces.serving import (
    API_KEY_ENV,
    MAX_PROMPTS,
    MAX_TOKENS_CAP,
    RefusedRequest,
    StudentService,
    create_server,
    load_student_service,
)

QUESTION = (
    "Write the arithmetic expression that answers the question.\n"
    "Question: Ana has 12 boxes with 30 pencils in each box. How many pencils does Ana have in all?"
)
MAX_TOKENS = 16


@pytest.fixture(scope="module")
def predictor(varied_student_dir):
    return StudentPredictor(varied_student_dir, max_new_tokens=MAX_TOKENS)


@pytest.fixture(scope="module")
def expected(predictor):
    """What the endpoint must return: the label as `kfp-distill predict` answers it (the model store's `answer`),
    and the rationale task's greedy generation as it is."""
    (label,) = answer(predictor, [QUESTION])
    return {"label": label, "rationale": predictor.predict([QUESTION], task="rationale")[0].text}


@pytest.fixture(scope="module")
def base_url(predictor, expected):
    server = create_server(StudentService(predictor, model_id="tiny-student", max_tokens=MAX_TOKENS), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def client(base_url):
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)


def test_chat_completion_answers_an_openai_client_with_the_students_greedy_label(client, predictor, expected):
    response = client.chat.completions.create(
        model="qwen",  # whatever the client used for the teacher
        messages=[{"role": "user", "content": QUESTION}],
    )

    assert response.object == "chat.completion"
    assert response.model == "qwen"
    [choice] = response.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == expected["label"]
    assert choice.finish_reason in ("stop", "length")
    prompt_tokens = len(predictor.tokenizer(f"{QUESTION}\n[label]\n")["input_ids"])
    assert response.usage.prompt_tokens == prompt_tokens
    assert response.usage.completion_tokens > 0
    assert response.usage.total_tokens == prompt_tokens + response.usage.completion_tokens


def test_a_conversation_is_answered_as_predict_answers_its_rendering(client, predictor):
    """The system prompt and earlier turns are part of what the student reads, rendered as validate-dataset renders
    a logged conversation for tuning; the answer is `kfp-distill predict`'s on that rendering."""
    conversation = [
        {"role": "system", "content": "You solve tasks carefully."},
        {"role": "user", "content": "an earlier question"},
        {"role": "assistant", "content": "an earlier answer"},
        {"role": "user", "content": QUESTION},
    ]
    rendered = render_prompt([Message(m["role"], m["content"]) for m in conversation])
    (predicted,) = answer(predictor, [rendered])

    response = client.chat.completions.create(model="qwen", messages=conversation)

    assert response.choices[0].message.content == predicted
    assert response.usage.prompt_tokens == len(predictor.tokenizer(f"{rendered}\n[label]\n")["input_ids"])
    assert predicted != answer(predictor, [QUESTION])[0]  # the earlier turns changed what the student read


def test_a_conversation_the_student_cannot_read_is_refused_naming_the_field(client):
    import openai

    for messages in (
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],  # nothing left to answer
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}],
        [{"role": "tool", "content": "42", "tool_call_id": "1"}, {"role": "user", "content": "x"}],
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="m", messages=messages)
        assert refused.value.body["param"] == "messages"


def test_the_rationale_task_is_asked_by_model_suffix_or_extra_field(client, expected):
    by_suffix = client.chat.completions.create(
        model="tiny-student:rationale", messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]
    )
    by_field = client.completions.create(
        model="tiny-student", prompt=QUESTION, extra_body={"kfp_distill_task": "rationale"}
    )

    assert by_suffix.choices[0].message.content == expected["rationale"]
    assert by_field.object == "text_completion"
    assert by_field.choices[0].text == expected["rationale"]


def test_completions_take_several_prompts_and_honour_max_tokens_and_stop(client, predictor, expected):
    response = client.completions.create(model="tiny-student", prompt=[QUESTION, QUESTION], max_tokens=MAX_TOKENS)
    assert [c.text for c in response.choices] == [expected["label"]] * 2
    prompt_tokens = len(predictor.tokenizer(f"{QUESTION}\n[label]\n")["input_ids"])
    assert response.usage.prompt_tokens == 2 * prompt_tokens

    short = client.completions.create(model="tiny-student", prompt=QUESTION, max_tokens=2)
    assert short.usage.completion_tokens <= 2
    assert short.choices[0].finish_reason == "length"
    assert expected["label"].startswith(short.choices[0].text)

    stop = expected["label"].split()[1] if len(expected["label"].split()) > 1 else expected["label"][1:]
    cut = client.completions.create(model="tiny-student", prompt=QUESTION, stop=[stop])
    assert cut.choices[0].text == expected["label"][: expected["label"].find(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_streaming_clients_get_the_same_answer(client, expected):
    stream = client.chat.completions.create(
        model="tiny-student",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected["label"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens > 0


def test_the_route_functions_answer_a_decoded_body_as_the_server_does(predictor, expected):
    from kfp_distill.interfaces.serving import chat_completion, completion

    service = StudentService(predictor, model_id="tiny-student", max_tokens=MAX_TOKENS)
    chat = chat_completion(service, {"messages": [{"role": "user", "content": QUESTION}]})
    assert chat["choices"][0]["message"]["content"] == expected["label"] and chat["model"] == "tiny-student"
    text = completion(service, {"prompt": [QUESTION], "kfp_distill_task": "rationale"})
    assert text["choices"][0]["text"] == expected["rationale"]
    with pytest.raises(RefusedRequest, match="max_tokens"):
        completion(service, {"prompt": QUESTION, "max_tokens": 0})


def test_models_lists_both_tasks(client):
    assert [model.id for model in client.models.list()] == ["tiny-student", "tiny-student:rationale"]


def test_bad_requests_get_openai_style_errors(client, base_url):
    import openai

    with pytest.raises(openai.BadRequestError, match="end with a user message"):
        client.chat.completions.create(model="m", messages=[{"role": "system", "content": "hello"}])
    with pytest.raises(openai.BadRequestError, match="kfp_distill_task"):
        client.completions.create(model="m", prompt="x", extra_body={"kfp_distill_task": "summary"})
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.completions.create(model="m", prompt="x", max_tokens=0)

    request = urllib.request.Request(f"{base_url}/embeddings", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 404
    assert json.loads(raised.value.read())["error"]["type"] == "invalid_request_error"


def test_a_registered_model_is_served_by_name(varied_student_dir, tmp_path, monkeypatch, expected):
    from kfp_distill.components.upload_model.registry import register_model

    monkeypatch.setenv("KFP_DISTILL_HOME", str(tmp_path / "home"))
    register_model(varied_student_dir, "served-student")

    by_name = load_student_service("served-student", max_tokens=MAX_TOKENS)
    by_directory = load_student_service(varied_student_dir, max_tokens=MAX_TOKENS)

    assert by_name.model_id == "served-student"
    # The registered model answers exactly as its directory does, token counts included.
    for task in ("label", "rationale"):
        assert by_name.answer(QUESTION, task) == by_directory.answer(QUESTION, task)
        assert by_name.answer(QUESTION, task).text == expected[task]
    assert by_name.answer(QUESTION, "label").completion_tokens > 0


def test_the_cli_serves_a_model_directory_with_the_key_from_the_named_variable(varied_student_dir, expected):
    import os
    import subprocess
    import sys

    from openai import AuthenticationError, OpenAI

    server = subprocess.Popen(
        [sys.executable, "-m", "kfp_distill.interfaces.cli", "serve", varied_student_dir, "--port", "0",
         "--max-tokens", str(MAX_TOKENS), "--api-key-env", "STUDENT_ENDPOINT_KEY"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "STUDENT_ENDPOINT_KEY": "k-from-env"},
    )
    try:
        banner = server.stdout.readline()  # "Serving NAME at http://127.0.0.1:PORT/v1 ..."
        base_url = banner.split(" at ")[1].split()[0]
        client = OpenAI(base_url=base_url, api_key="k-from-env", max_retries=0, timeout=60)
        response = client.chat.completions.create(model="m", messages=[{"role": "user", "content": QUESTION}])
        assert response.choices[0].message.content == expected["label"]
        with pytest.raises(AuthenticationError):
            client.with_options(api_key="wrong").models.list()
    finally:
        server.terminate()
        server.wait(timeout=30)


# Bounds: each test talks to a real server over real sockets, as a careless or hostile client would.
SERVER_TIMEOUT_S = 2.0
ANSWER_WITHIN_S = 10.0  # generous: the server answers within its 2 s timeout plus a scheduler's delay


def _running(server):
    """Serves on a thread; yields the port, then stops the server."""
    with server.running() as port:
        yield port


@pytest.fixture(scope="module")
def bounded_port(predictor, expected):
    yield from _running(create_server(
        StudentService(predictor, model_id="tiny-student", max_tokens=MAX_TOKENS), port=0, api_key="",
        timeout=SERVER_TIMEOUT_S,
    ))


def _exchange(port: int, head: str, body: bytes = b"", trickle: bytes = b"") -> tuple[int, dict, float]:
    """Sends a raw request, then `trickle` a byte each 0.5 s until the server answers; returns (status, JSON
    body, seconds taken)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=3 * ANSWER_WITHIN_S) as connection:
        connection.sendall(head.encode("latin-1") + b"\r\n" + body)
        for byte in trickle:
            if select.select([connection], [], [], 0.5)[0]:  # answered: the server stopped waiting
                break
            connection.sendall(bytes([byte]))
        response = http.client.HTTPResponse(connection)
        response.begin()
        payload = json.loads(response.read() or b"{}")
    return response.status, payload, time.monotonic() - started


def _post(port: int, body: dict, headers: str = "") -> tuple[int, dict, float]:
    data = json.dumps(body).encode("utf-8")
    return _exchange(port, f"POST /v1/completions HTTP/1.1\r\nContent-Length: {len(data)}\r\n{headers}", data)


def _still_serving(port: int) -> None:
    status, payload, _ = _post(port, {"model": "m", "prompt": QUESTION})
    assert status == 200, payload
    assert payload["choices"][0]["text"]


@pytest.mark.parametrize(
    ("content_length", "status", "message"),
    [
        ("-1", 400, "Content-Length"),
        ("abc", 400, "Content-Length"),
        ("10, 10", 400, "Content-Length"),
        (str(10**12), 413, "over"),
        ("9" * 5000, 413, "over"),  # too long for int() to parse
    ],
)
def test_a_bad_or_huge_content_length_is_refused_at_once(bounded_port, content_length, status, message):
    # The client sends a body of 10 bytes and keeps the connection open: a server that reads to the end of
    # the stream, or waits for 10**12 bytes, never answers.
    head = f"POST /v1/completions HTTP/1.1\r\nContent-Length: {content_length}\r\n"
    answered, payload, seconds = _exchange(bounded_port, head, b'{"a": 1}  ')

    assert (answered, seconds < ANSWER_WITHIN_S) == (status, True)
    assert message in payload["error"]["message"]
    _still_serving(bounded_port)


def test_a_body_without_content_length_is_refused_with_411(bounded_port):
    head = "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
    status, payload, seconds = _exchange(bounded_port, head, b"0\r\n\r\n")

    assert (status, seconds < ANSWER_WITHIN_S) == (411, True)
    assert "Content-Length" in payload["error"]["message"]
    _still_serving(bounded_port)


@pytest.mark.parametrize(
    ("head", "body", "trickle"),
    [
        ("POST /v1/completions HTTP/1.1\r\nX-Slow: 1", b"", b""),  # stops in its headers
        ("POST /v1/completions HTTP/1.1\r\nX-Slow: 1", b"", b"a" * 40),  # trickles its headers
        ("POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n", b'{"prompt"', b""),  # stops in its body
        ("POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n", b'{"prompt"', b" " * 40),  # trickles it
    ],
    ids=["stops-in-headers", "trickles-headers", "stops-in-body", "trickles-body"],
)
def test_a_slow_client_is_answered_408_and_blocks_no_one(bounded_port, head, body, trickle):
    # A trickle of a byte each 0.5 s never lets a 2 s idle timeout fire: only a deadline on the whole
    # request stops it within ANSWER_WITHIN_S (40 bytes take 20 s).
    outcome = {}
    slow = threading.Thread(target=lambda: outcome.update(answer=_exchange(bounded_port, head, body, trickle)))
    slow.start()
    time.sleep(0.5)
    _still_serving(bounded_port)  # while the slow client holds its connection
    slow.join(timeout=3 * ANSWER_WITHIN_S)

    status, payload, seconds = outcome["answer"]
    assert (status, seconds < ANSWER_WITHIN_S) == (408, True)
    assert "seconds" in payload["error"]["message"]
    _still_serving(bounded_port)


def test_max_tokens_over_the_cap_is_refused_naming_the_cap(bounded_port):
    status, payload, seconds = _post(bounded_port, {"model": "m", "prompt": QUESTION, "max_tokens": 10**9})

    assert (status, seconds < ANSWER_WITHIN_S) == (400, True)
    assert str(MAX_TOKENS_CAP) in payload["error"]["message"]
    assert payload["error"]["param"] == "max_tokens"
    _still_serving(bounded_port)


def test_too_many_prompts_in_one_request_are_refused(bounded_port):
    status, payload, seconds = _post(bounded_port, {"model": "m", "prompt": ["1 + 1"] * (MAX_PROMPTS + 1)})

    assert (status, seconds < ANSWER_WITHIN_S) == (400, True)
    assert str(MAX_PROMPTS) in payload["error"]["message"]
    _still_serving(bounded_port)


def test_with_an_api_key_a_request_without_it_is_refused_401(predictor, monkeypatch, capfd):
    monkeypatch.setenv(API_KEY_ENV, "s3cret")
    server = create_server(StudentService(predictor, model_id="m", max_tokens=MAX_TOKENS), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        for headers in ("", "Authorization: Bearer wrong\r\n", "Authorization: s3cret\r\n"):
            status, payload, _ = _post(port, {"model": "m", "prompt": QUESTION}, headers)
            assert status == 401, headers
            assert API_KEY_ENV not in payload["error"]["message"]
        models = _exchange(port, "GET /v1/models HTTP/1.1\r\n")
        assert models[0] == 401
        assert _exchange(port, "GET /health HTTP/1.1\r\n")[0] == 200  # probes carry no key

        status, payload, _ = _post(port, {"model": "m", "prompt": QUESTION}, "Authorization: Bearer s3cret\r\n")
        assert status == 200, payload
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert "anyone" not in capfd.readouterr().err


def test_binding_beyond_loopback_without_a_key_warns(predictor, monkeypatch, capfd):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    server = create_server(StudentService(predictor, model_id="m", max_tokens=MAX_TOKENS), "0.0.0.0", 0)
    server.server_close()
    loopback = create_server(StudentService(predictor, model_id="m", max_tokens=MAX_TOKENS), "127.0.0.1", 0)
    loopback.server_close()

    warnings = capfd.readouterr().err
    assert f"anyone who can reach port {server.server_address[1]}" in warnings
    assert API_KEY_ENV in warnings
    assert str(loopback.server_address[1]) not in warnings


def test_connections_over_the_cap_are_answered_503_at_once_and_serving_goes_on(predictor):
    server = create_server(
        StudentService(predictor, model_id="m", max_tokens=MAX_TOKENS), port=0, api_key="", timeout=SERVER_TIMEOUT_S,
        max_connections=2,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        # Two clients that never finish their requests hold both connections until their deadline.
        holders = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        for holder in holders:
            holder.sendall(b"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.5)
        status, payload, seconds = _post(port, {"model": "m", "prompt": QUESTION})
        assert (status, seconds < SERVER_TIMEOUT_S) == (503, True)
        assert "2 connections" in payload["error"]["message"]

        for holder in holders:  # each answered 408 at its deadline, which frees its connection
            holder.settimeout(ANSWER_WITHIN_S)
            assert b" 408 " in holder.recv(1024)
            holder.close()
        time.sleep(0.5)  # the slot is freed as the handler's thread ends, just after the 408 is sent
        _still_serving(port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_long_prompt_is_answered_within_the_context_and_max_tokens_past_it_is_a_400(bounded_port):
    status, payload, _ = _post(bounded_port, {"model": "m", "prompt": QUESTION * 400, "max_tokens": 8})
    assert status == 200, payload
    assert payload["usage"]["prompt_tokens"] + 8 <= 512  # the fixture student's context

    status, payload, _ = _post(bounded_port, {"model": "m", "prompt": QUESTION, "max_tokens": 600})
    assert status == 400 and payload["error"]["param"] == "max_tokens"
    assert "512-token context" in payload["error"]["message"]
    _still_serving(bounded_port)


# Vertex AI's custom-container contract: the routes, port and model come from AIP_* variables, requests are
# {"instances": [...]}, answers {"predictions": [...]}, and a refused request is {"error": "..."} with a 4xx.
VERTEX_PREDICT_ROUTE = "/v1/endpoints/1/deployedModels/2:predict"


def _vertex_post(port: int, body: dict, route: str = VERTEX_PREDICT_ROUTE) -> tuple[int, dict, float]:
    data = json.dumps(body).encode("utf-8")
    return _exchange(port, f"POST {route} HTTP/1.1\r\nContent-Length: {len(data)}\r\n", data)


@pytest.fixture(scope="module")
def vertex_port(predictor, expected):
    yield from _running(create_server(
        StudentService(predictor, model_id="m", max_tokens=MAX_TOKENS), port=0, api_key="",
        predict_route=VERTEX_PREDICT_ROUTE, health_route="/ping",
    ))


def test_vertex_ai_instances_get_the_predictions_predict_gives(vertex_port, predictor):
    from kfp_distill._implementation.model_store import answer

    instances = [QUESTION, {"input_text": QUESTION}, {"input_text": QUESTION, "rationale": True}]
    status, payload, _ = _vertex_post(vertex_port, {"instances": instances})

    assert status == 200, payload
    (label,) = answer(predictor, [QUESTION])
    (explained,) = answer(predictor, [QUESTION], with_rationale=True)
    assert payload == {"predictions": [label, label, explained]}
    assert set(explained) == {"label", "rationale"}
    assert _exchange(vertex_port, "GET /ping HTTP/1.1\r\n")[0] == 200
    _still_serving(vertex_port)  # the OpenAI-compatible routes stay


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": QUESTION}, "instances"),
        ({"instances": []}, "instances"),
        ({"instances": QUESTION}, "instances"),
        ({"instances": [7]}, "instances[0]"),
        ({"instances": [QUESTION, {"text": QUESTION}]}, "instances[1]"),
        ({"instances": [{"input_text": QUESTION, "rationale": "yes"}]}, "rationale"),
        ({"instances": [{"input_text": QUESTION, "rationalle": True}]}, "rationalle"),
        ({"instances": [{"input_text": QUESTION, "max_tokens": 10**9}]}, str(MAX_TOKENS_CAP)),
        ({"instances": [QUESTION] * (MAX_PROMPTS + 1)}, str(MAX_PROMPTS)),
    ],
)
def test_a_bad_vertex_ai_request_is_a_400_whose_error_vertex_ai_shows(vertex_port, body, message):
    status, payload, seconds = _vertex_post(vertex_port, body)

    assert (status, seconds < ANSWER_WITHIN_S) == (400, True)
    assert set(payload) == {"error"} and isinstance(payload["error"], str)
    assert message in payload["error"]
    _still_serving(vertex_port)


def test_the_vertex_ai_route_keeps_the_servers_bounds(vertex_port):
    head = f"POST {VERTEX_PREDICT_ROUTE} HTTP/1.1\r\n"
    status, payload, _ = _exchange(vertex_port, head)
    assert status == 411 and "Content-Length" in payload["error"]
    status, payload, _ = _exchange(vertex_port, head + f"Content-Length: {(16 << 20) + 1}\r\n")
    assert status == 413 and isinstance(payload["error"], str)


def test_the_cli_serves_as_vertex_ai_runs_a_container_and_answers_as_predict(
    varied_student_dir, tmp_path, monkeypatch, capsys
):
    """`kfp-distill serve` with no MODEL and Vertex AI's variables: the model from AIP_STORAGE_URI, the port and
    routes from AIP_*; its predictions are what `kfp-distill predict` prints for the registered model."""
    import os
    import subprocess
    import sys

    from kfp_distill.interfaces import cli
    from kfp_distill.components.upload_model.registry import register_model

    monkeypatch.setenv("KFP_DISTILL_HOME", str(tmp_path / "home"))
    register_model(varied_student_dir, "vertex-student")
    assert cli.main(["predict", "vertex-student", QUESTION, "--rationale"]) == 0
    rationale_line, answer_line = capsys.readouterr().out.splitlines()
    printed = {"rationale": rationale_line.removeprefix("rationale: "), "label": answer_line.removeprefix("answer: ")}

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    vertex_environment = {
        "AIP_HTTP_PORT": str(port), "AIP_HEALTH_ROUTE": "/ping", "AIP_PREDICT_ROUTE": VERTEX_PREDICT_ROUTE,
        "AIP_STORAGE_URI": varied_student_dir,
    }
    # predict's StudentPredictor generates at most 64 tokens; the server is given the same limit.
    server = subprocess.Popen(
        [sys.executable, "-m", "kfp_distill.interfaces.cli", "serve", "--max-tokens", "64"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, **vertex_environment},
    )
    try:
        banner = server.stdout.readline()
        assert f":{port}" in banner and VERTEX_PREDICT_ROUTE in banner, banner
        assert _exchange(port, "GET /ping HTTP/1.1\r\n")[0] == 200
        status, payload, _ = _vertex_post(port, {"instances": [{"input_text": QUESTION, "rationale": True}, QUESTION]})
        assert status == 200, payload
        assert payload["predictions"] == [printed, printed["label"]]
    finally:
        server.terminate()
        server.wait(timeout=30)


# Hostile bodies: each refused with a 4xx before it costs memory or a server error, and serving goes on.


def test_a_body_of_many_small_values_is_refused_before_it_is_parsed(bounded_port):
    # 16 MiB of `{}` grows about 26x as Python objects: the scan of the bytes refuses it before json.loads.
    import tracemalloc

    data = b'{"prompt": [' + b"{}," * ((15 << 20) // 3) + b"{}]}"
    tracemalloc.start()
    try:
        status, payload, _ = _exchange(
            bounded_port, f"POST /v1/completions HTTP/1.1\r\nContent-Length: {len(data)}\r\n", data
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert status == 400 and "values" in payload["error"]["message"], payload
    assert peak < 4 * len(data), f"{peak / 2**20:.0f} MiB allocated for a {len(data) / 2**20:.0f} MiB body"
    _still_serving(bounded_port)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),  # deeper than json.loads can recurse
        (b'{"prompt": "x", "stream": true, "stream_options": "yes"}', "stream_options"),
        (b'{"prompt": "x", "stream": true, "stream_options": {"include_usage": "yes"}}', "stream_options"),
        (b'{"prompt": "x", "stream": "no"}', "stream"),
        (b'{"prompt": "x", "model": ["m"]}', "model"),
    ],
    ids=["deep", "stream-options-not-an-object", "include-usage-not-a-boolean", "stream-not-a-boolean",
         "model-not-a-string"],
)
def test_a_malformed_body_is_a_400_naming_what_is_wrong(bounded_port, body, param):
    status, payload, _ = _exchange(bounded_port, f"POST /v1/completions HTTP/1.1\r\nContent-Length: {len(body)}\r\n",
                                   body)

    assert status == 400, payload
    assert payload["error"]["param"] == param
    if param is None:
        assert "deep" in payload["error"]["message"]
    _still_serving(bounded_port)


@pytest.mark.parametrize(
    "content",
    [[{"type": "text", "text": 5}], [{"type": "text", "text": None}], ["plain"], [{"type": "text"}], 7],
)
def test_a_chat_message_whose_content_parts_are_not_text_is_a_400(bounded_port, content):
    data = json.dumps({"model": "m", "messages": [{"role": "user", "content": content}]}).encode()
    status, payload, _ = _exchange(
        bounded_port, f"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: {len(data)}\r\n", data
    )

    assert status == 400, payload
    assert payload["error"]["param"] == "messages"
    _still_serving(bounded_port)


def test_a_connection_that_sends_nothing_is_answered_408_without_a_traceback(bounded_port, capfd):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", bounded_port), timeout=3 * ANSWER_WITHIN_S) as silent:
        response = http.client.HTTPResponse(silent)
        response.begin()
        payload = json.loads(response.read())

    assert (response.status, time.monotonic() - started < ANSWER_WITHIN_S) == (408, True)
    assert "seconds" in payload["error"]["message"]
    _still_serving(bounded_port)
    assert "Traceback" not in capfd.readouterr().err


def test_large_bodies_share_a_memory_budget_and_small_ones_are_still_served(bounded_port):
    from kfp_distill.interfaces.serving import LARGE_BODIES_BYTES, MAX_BODY_BYTES

    head = f"POST /v1/completions HTTP/1.1\r\nContent-Length: {MAX_BODY_BYTES}\r\n\r\n".encode()
    # Clients that declare the largest body and send it slowly hold the budget for large bodies until their
    # deadline; one more is answered 503 before its body is read, not buffered beside them.
    holders = [socket.create_connection(("127.0.0.1", bounded_port)) for _ in range(LARGE_BODIES_BYTES // MAX_BODY_BYTES)]
    try:
        for holder in holders:
            holder.sendall(head + b'{"prompt": "')
        time.sleep(0.5)
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", bounded_port)) as late:
            late.sendall(head + b'{"prompt": "')
            response = http.client.HTTPResponse(late)
            response.begin()
            payload = json.loads(response.read())
        assert (response.status, time.monotonic() - started < SERVER_TIMEOUT_S) == (503, True), payload
        assert response.getheader("Retry-After") == "1"
        _still_serving(bounded_port)  # a small body needs no share of the budget
    finally:
        for holder in holders:
            holder.close()


def test_a_client_that_reads_no_answer_frees_its_connection_within_the_timeout(predictor):
    # The answer (an error that repeats an 8 MiB field) is larger than the socket buffers of a client that reads
    # nothing: the server's writes stall, and the connection is dropped after `timeout` seconds.
    server = create_server(
        StudentService(predictor, model_id="m", max_tokens=MAX_TOKENS), port=0, api_key="", timeout=SERVER_TIMEOUT_S,
        max_connections=1,
    )
    with server.running() as port:
        data = json.dumps({"prompt": QUESTION, "kfp_distill_task": "x" * (8 << 20)}).encode()
        with socket.socket() as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            stalled.connect(("127.0.0.1", port))
            stalled.sendall(f"POST /v1/completions HTTP/1.1\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
            time.sleep(0.5)
            answers = []
            deadline = time.monotonic() + ANSWER_WITHIN_S
            while not answers or answers[-1][0] != 200 and time.monotonic() < deadline:
                answers.append(_post(port, {"model": "m", "prompt": QUESTION}))  # 503 while the stalled one holds it
                time.sleep(0.25)
        assert answers[0][0] == 503 and answers[-1][0] == 200, [status for status, _, _ in answers]


def test_a_request_whose_client_left_holds_its_place_until_its_work_is_done(predictor):
    service = StudentService(predictor, model_id="m", max_tokens=MAX_TOKENS)
    with create_server(service, port=0, api_key="", timeout=SERVER_TIMEOUT_S, max_connections=1).running() as port:
        with service._lock:  # the model is busy: the request below waits for it
            data = json.dumps({"prompt": QUESTION}).encode()
            with socket.create_connection(("127.0.0.1", port)) as leaving:
                leaving.sendall(f"POST /v1/completions HTTP/1.1\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
                time.sleep(0.5)
            time.sleep(0.5)  # its client is gone; its request still waits for the model
            status, payload, _ = _post(port, {"model": "m", "prompt": QUESTION})
            assert status == 503, payload
        deadline = time.monotonic() + ANSWER_WITHIN_S
        while status != 200 and time.monotonic() < deadline:  # the place comes free once its answer is made
            time.sleep(0.25)
            status, payload, _ = _post(port, {"model": "m", "prompt": QUESTION})
        assert status == 200, payload


# Property-based tests of the request parsing: whatever a client sends, a 4xx RefusedRequest or a checked request.
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kfp_distill.interfaces import serving  # noqa: E402

_TEXT = st.text(max_size=12)
# Unpaired surrogates: json.dumps writes them as \ud800 escapes, which json.loads reads back.
_ODD_TEXT = st.text(st.characters(codec=None) | st.characters(categories=["Cs"]), min_size=1, max_size=4)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | _TEXT | _ODD_TEXT
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
                     max_leaves=12)


_PART = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]), "text": _TEXT})
_CONTENT = _TEXT | st.lists(_PART, max_size=3)
_MESSAGES = st.tuples(
    st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant"]), "content": _CONTENT}),
             max_size=3),
    st.fixed_dictionaries({"role": st.just("user"), "content": _CONTENT}),
).map(lambda earlier_and_last: [*earlier_and_last[0], earlier_and_last[1]])
_MAX_TOKENS = st.integers(1, MAX_TOKENS_CAP)
# The fields the generating routes read, all well-formed (a test then spoils some).
_OPTIONAL = {
    "model": st.sampled_from(["m", "m:rationale", ""]),
    "max_tokens": _MAX_TOKENS,
    "max_completion_tokens": _MAX_TOKENS,
    "stop": _TEXT | st.lists(_TEXT, max_size=3),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
    "kfp_distill_task": st.sampled_from(["label", "rationale"]),
}
_INSTANCE = _TEXT | st.fixed_dictionaries(
    {"input_text": _TEXT}, optional={"rationale": st.booleans(), "max_tokens": _MAX_TOKENS}
)
_BODIES = st.one_of(
    st.fixed_dictionaries({"messages": _MESSAGES}, optional=_OPTIONAL),
    st.fixed_dictionaries({"prompt": _TEXT | st.lists(_TEXT, min_size=1, max_size=MAX_PROMPTS)}, optional=_OPTIONAL),
    st.fixed_dictionaries({"instances": st.lists(_INSTANCE, min_size=1, max_size=MAX_PROMPTS)}),
    st.dictionaries(_TEXT, _JSON, max_size=4),
    _JSON,
)


def _places(value, path=()):
    """The path (keys and indexes) to every value inside a JSON value, its own first."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _places(item, (*path, key))


def _spoiled(data, body):
    """The body with up to two of its inner values replaced: by any JSON value, or a list by one past the caps."""
    for _ in range(data.draw(st.integers(0, 2))):
        places = list(_places(body))[1:]
        if not places:
            break
        *parents, last = data.draw(st.sampled_from(places))
        container = body
        for key in parents:
            container = container[key]
        if isinstance(container[last], list) and data.draw(st.booleans()):
            container[last] = container[last] * (MAX_PROMPTS + 1)
        else:
            container[last] = data.draw(_JSON | st.sampled_from([0, -1, MAX_TOKENS_CAP + 1, True, 1.5, "\ud800"]))
    return body


_PROPERTY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _model_text(text) -> bool:
    return isinstance(text, str) and not any("\ud800" <= c <= "\udfff" for c in text)


def _checked(parsed) -> None:
    """What a parse must return: every field of the type and in the range the answering code relies on."""
    if isinstance(parsed, serving.PredictionRequest):
        assert 1 <= len(parsed.instances) <= MAX_PROMPTS
        for text, rationale, max_tokens in parsed.instances:
            assert _model_text(text) and isinstance(rationale, bool)
            assert max_tokens is None or type(max_tokens) is int and 1 <= max_tokens <= MAX_TOKENS_CAP
        return
    texts = [parsed.input_text] if isinstance(parsed, serving.ChatRequest) else parsed.prompts
    assert 1 <= len(texts) <= MAX_PROMPTS and all(_model_text(text) for text in texts)
    assert parsed.task in ("label", "rationale") and isinstance(parsed.model, str)
    assert parsed.max_tokens is None or type(parsed.max_tokens) is int and 1 <= parsed.max_tokens <= MAX_TOKENS_CAP
    assert isinstance(parsed.stop, list) and all(isinstance(s, str) for s in parsed.stop)
    assert type(parsed.stream) is bool and type(parsed.include_usage) is bool


_PARSERS = [serving.parse_chat_request, serving.parse_completion_request, serving.parse_prediction_request]


@_PROPERTY
@given(data=st.data())
def test_any_json_body_is_parsed_or_refused_with_a_4xx(data):
    body = _spoiled(data, data.draw(_BODIES))
    encoded = json.dumps(body, separators=data.draw(st.sampled_from([(",", ":"), (", ", ": ")]))).encode()
    try:
        decoded = serving.decode_body(encoded)
    except serving.RefusedRequest as error:
        assert not isinstance(body, dict) and 400 <= error.status < 500
        return
    assert json.dumps(decoded) == json.dumps(body)  # as json.loads reads it
    for parse in _PARSERS:
        try:
            parsed = parse(decoded)
        except serving.RefusedRequest as error:
            assert 400 <= error.status < 500 and str(error)
        else:
            _checked(parsed)


@_PROPERTY
@given(data=st.binary(max_size=200) | _BODIES.map(lambda body: json.dumps(body).encode()).flatmap(
    lambda encoded: st.integers(0, len(encoded)).map(lambda cut: encoded[:cut] + encoded[cut + 1:])
))
def test_any_bytes_are_a_json_object_or_a_400(data):
    # Arbitrary bytes, and JSON with one byte taken out.
    try:
        body = serving.decode_body(data)
    except serving.RefusedRequest as error:
        assert error.status == 400
    else:
        assert isinstance(body, dict) and body == json.loads(data.decode("utf-8-sig"))


def _shape(value) -> tuple[int, int]:
    """(depth, count) of a JSON value as the caps count: values and keys, by the commas, colons and opening
    brackets that introduce them (an empty array or object counts one more)."""
    if isinstance(value, (list, dict)):
        inner = [_shape(item) for item in (value.values() if isinstance(value, dict) else value)]
        separators = max(len(inner) - 1, 0) + (len(value) if isinstance(value, dict) else 0)
        return 1 + max((depth for depth, _ in inner), default=0), 1 + separators + sum(count for _, count in inner)
    return 0, 0


@_PROPERTY
@given(value=st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=5),
                          max_leaves=40))
def test_the_depth_and_value_caps_hold_exactly(value):
    from unittest import mock

    depth, count = _shape(value)
    with mock.patch.multiple(serving, MAX_JSON_DEPTH=4, MAX_JSON_VALUES=20):
        try:
            # The body's count starts at 1; its object adds a level, a bracket and a colon.
            serving.decode_body(json.dumps({"v": value}).encode())
            refused = False
        except serving.RefusedRequest as error:
            refused = "deep" in str(error) or "values" in str(error)
    assert refused == (depth + 1 > 4 or 1 + 2 + count > 20), (depth, count)


def test_the_caps_at_their_real_size():
    from kfp_distill.interfaces.serving import MAX_JSON_DEPTH, MAX_JSON_VALUES, decode_body

    decode_body(b'{"a": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}")
    with pytest.raises(serving.RefusedRequest, match="deep"):
        decode_body(b'{"a": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}")
    # {"a": [0, ..., 0]} with n zeros: 1, then two brackets, a colon and n - 1 commas: n + 3.
    decode_body(json.dumps({"a": [0] * (MAX_JSON_VALUES - 3)}).encode())
    with pytest.raises(serving.RefusedRequest, match="values"):
        decode_body(json.dumps({"a": [0] * (MAX_JSON_VALUES - 2)}).encode())
    # Brackets, commas and escaped quotes inside strings are text, not structure.
    text = '[[{,:\\"' * MAX_JSON_VALUES
    assert decode_body(json.dumps({"prompt": text}).encode()) == {"prompt": text}


@_PROPERTY
@given(values=st.lists(st.text(max_size=8) | st.sampled_from(["10", "0010", "16777216", "16777217", "1" * 30, "-1"]),
                       max_size=3),
       chunked=st.booleans())
def test_body_framing_is_one_content_length_up_to_the_cap_or_a_4xx(values, chunked):
    headers = {"content-length": values} if values else {}
    if chunked:
        headers["transfer-encoding"] = ["chunked"]
    try:
        serving._check_body_framing(headers)
    except serving.RefusedRequest as error:
        assert error.status in (400, 411, 413)
    else:
        assert not chunked and len(set(values)) == 1 and 0 <= int(values[0]) <= serving.MAX_BODY_BYTES


@_PROPERTY
@given(head=st.binary(max_size=300))
def test_any_request_head_is_read_without_an_error(head):
    method, route, headers = serving._head_fields(head)
    assert isinstance(method, str) and isinstance(route, str)
    assert all(isinstance(value, str) for values in headers.values() for value in values)


def test_every_route_answers_an_extractive_question_with_a_span_of_its_context(varied_student_dir):
    from kfp_distill.interfaces.serving import chat_completion, completion, vertex_prediction

    context = ("Beijing is the capital of the People's Republic of China. With over 21 million residents, it is "
               "the world's most populous national capital city.")
    question = f"question: How many people live in Beijing? context: {context}"
    service = StudentService(StudentPredictor(varied_student_dir, max_new_tokens=MAX_TOKENS), model_id="m",
                             max_tokens=MAX_TOKENS, task_type="extractive_qa")

    answers = [
        chat_completion(service, {"messages": [{"role": "user", "content": question}]})["choices"][0]["message"]["content"],
        completion(service, {"prompt": question})["choices"][0]["text"],
        vertex_prediction(service, {"instances": [question]})["predictions"][0],
    ]

    assert all(text and text in context for text in answers), answers
    assert len(set(answers)) == 1


def test_a_model_uri_names_its_served_model_without_credentials_or_query():
    from kfp_distill.interfaces.serving import served_model_id

    assert served_model_id("gs://bucket/students/support-v2/") == "support-v2"
    signed = "https://storage.googleapis.com/b/students/support-v2?X-Goog-Signature=S3CRET&X-Goog-Credential=c"
    assert served_model_id(signed) == "support-v2"
    assert "S3CRET" not in served_model_id("https://user:S3CRET@host/support-v2")
