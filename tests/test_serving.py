import json
import threading
import urllib.error
import urllib.request

import pytest

from kfp_distill._implementation.student import StudentPredictor
from kfp_distill.serving import StudentService, create_server, load_student

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
    """StudentPredictor's own greedy answers, what the endpoint must return."""
    return {task: predictor.predict([QUESTION], task=task)[0].text for task in ("label", "rationale")}


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
        messages=[
            {"role": "system", "content": "You solve tasks carefully."},
            {"role": "user", "content": "an earlier question"},
            {"role": "assistant", "content": "an earlier answer"},
            {"role": "user", "content": QUESTION},
        ],
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


def test_models_lists_both_tasks(client):
    assert [model.id for model in client.models.list()] == ["tiny-student", "tiny-student:rationale"]


def test_bad_requests_get_openai_style_errors(client, base_url):
    import openai

    with pytest.raises(openai.BadRequestError, match="no user message"):
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

    by_name = load_student("served-student", max_tokens=MAX_TOKENS)
    by_directory = load_student(varied_student_dir, max_tokens=MAX_TOKENS)

    assert by_name.model_id == "served-student"
    # The registered model answers exactly as its directory does, token counts included.
    for task in ("label", "rationale"):
        assert by_name.answer(QUESTION, task) == by_directory.answer(QUESTION, task)
        assert by_name.answer(QUESTION, task).text == expected[task]
    assert by_name.answer(QUESTION, "label").completion_tokens > 0


def test_the_cli_serves_a_model_directory(varied_student_dir, expected):
    import subprocess
    import sys

    from openai import OpenAI

    server = subprocess.Popen(
        [sys.executable, "-m", "kfp_distill.cli", "serve", varied_student_dir, "--port", "0",
         "--max-tokens", str(MAX_TOKENS)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        banner = server.stdout.readline()  # "Serving NAME at http://127.0.0.1:PORT/v1 ..."
        base_url = banner.split(" at ")[1].split()[0]
        client = OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)
        response = client.chat.completions.create(model="m", messages=[{"role": "user", "content": QUESTION}])
        assert response.choices[0].message.content == expected["label"]
    finally:
        server.terminate()
        server.wait(timeout=30)
