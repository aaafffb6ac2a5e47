"""The local Hugging Face teacher (a tiny random Llama with the real SmolLM2 tokenizer) and its micro-batcher."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from kfp_distill._implementation.teacher_reference import parse_teacher_reference
from kfp_distill.components.generate_rationales.asking import Teacher
from kfp_distill.components.generate_rationales.backends import backend_for
from kfp_distill.components.generate_rationales.backends.base import DecodingSettings, TeacherRequestError
from kfp_distill.components.generate_rationales.backends.batching import MicroBatcher
from kfp_distill.components.generate_rationales.backends.huggingface import HuggingFaceBackend
from kfp_distill.components.generate_rationales.cache import AnswerCache

GREEDY = DecodingSettings(max_new_tokens=6)
# Prompts of different lengths, so the batch is left-padded.
CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "system", "content": "Explain step by step."}, {"role": "user", "content": "Name a prime number."}],
    [{"role": "user", "content": "Ana has 12 boxes with 30 pencils in each box. How many pencils in all?"}],
    [{"role": "user", "content": "Hi"}],
]


@pytest.fixture(scope="module")
def tiny_teacher(tiny_student_dir):
    """The tiny model's folder as a Hugging Face teacher reference."""
    return parse_teacher_reference(f"hf:{tiny_student_dir}")


@pytest.fixture(scope="module")
def one_at_a_time(tiny_teacher):
    """Answers from a teacher that never batches: what every batched answer must equal."""
    backend = HuggingFaceBackend(tiny_teacher, max_batch_size=1)
    return [backend.complete(messages, GREEDY) for messages in CONVERSATIONS]


def ask_at_once(backend, conversations, settings=GREEDY):
    with ThreadPoolExecutor(len(conversations)) as pool:
        return list(pool.map(lambda messages: backend.complete(messages, settings), conversations))


def test_batched_greedy_answers_equal_one_at_a_time_answers(tiny_teacher, smollm2_tokenizer, one_at_a_time):
    backend = HuggingFaceBackend(tiny_teacher, max_batch_size=4, max_wait_s=5.0)
    batched = ask_at_once(backend, CONVERSATIONS)

    assert backend.batch_sizes == [4]
    assert batched == one_at_a_time
    for messages, completion in zip(CONVERSATIONS, batched):
        template = smollm2_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert completion.prompt_tokens == len(smollm2_tokenizer(template, add_special_tokens=False)["input_ids"])
        # A random model does not stop by itself: it writes max_new_tokens.
        assert (completion.completion_tokens, completion.finish_reason) == (GREEDY.max_new_tokens, "length")


def test_rows_that_stop_at_different_steps_count_their_own_tokens(tiny_teacher, smollm2_tokenizer):
    import torch

    batched_backend = HuggingFaceBackend(tiny_teacher, max_batch_size=4, max_wait_s=5.0)
    single_backend = HuggingFaceBackend(tiny_teacher, max_batch_size=1)
    # Make the third token the first conversation's answer writes a stop token: that answer ends there.
    template = smollm2_tokenizer.apply_chat_template(CONVERSATIONS[0], add_generation_prompt=True, tokenize=False)
    prompt = smollm2_tokenizer(template, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        written = batched_backend._model.generate(**prompt, max_new_tokens=3, do_sample=False)[0, -3:].tolist()
    for backend in (batched_backend, single_backend):
        backend._model.generation_config.eos_token_id = [written[2]]

    batched = ask_at_once(batched_backend, CONVERSATIONS)

    first_stop = written.index(written[2])  # the token may come up earlier in the answer
    assert (batched[0].completion_tokens, batched[0].finish_reason) == (first_stop + 1, "stop")
    assert batched[0].text == smollm2_tokenizer.decode(written[:first_stop], skip_special_tokens=True)
    assert batched == [single_backend.complete(messages, GREEDY) for messages in CONVERSATIONS]


def test_the_teachers_concurrency_becomes_batches(tiny_teacher, one_at_a_time, tmp_path):
    # Waits long enough for the pool's threads to join a batch even on a busy machine.
    backend = HuggingFaceBackend(tiny_teacher, max_wait_s=0.5)
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        answers = Teacher(backend, cache, GREEDY, max_concurrency=4).ask_all(CONVERSATIONS * 2)

    assert [answer.completion for answer in answers[:4]] == one_at_a_time
    assert sum(backend.batch_sizes) == 4  # the repeated conversations share the requests of the first ones
    assert max(backend.batch_sizes) > 1


def test_the_identity_names_the_weights(tiny_teacher):
    first = backend_for(tiny_teacher)
    assert isinstance(first, HuggingFaceBackend) and first.supports_concurrency
    assert first.identity.startswith("huggingface:safetensors-sha256:")
    assert HuggingFaceBackend(tiny_teacher).identity == first.identity


def test_a_prompt_longer_than_the_context_is_refused_before_generation(tiny_teacher):
    backend = HuggingFaceBackend(tiny_teacher)
    with pytest.raises(TeacherRequestError, match="512-token context") as raised:
        backend.complete([{"role": "user", "content": "word " * 600}], GREEDY)
    assert not raised.value.retryable
    assert backend.batch_sizes == []


def test_sampled_answers_differ_between_seeds_in_one_batch_and_repeat_for_one_batch(tiny_teacher):
    samples = [DecodingSettings(max_new_tokens=6, temperature=1.0, seed=seed) for seed in (0, 1)]
    backend = HuggingFaceBackend(tiny_teacher, max_batch_size=2, max_wait_s=5.0)
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda settings: backend.complete(CONVERSATIONS[0], settings), samples))
    assert backend.batch_sizes == [2]  # both seeds in one batch, as self-consistency's samples of many rows
    assert both[0].text != both[1].text

    alone = HuggingFaceBackend(tiny_teacher, max_batch_size=1)
    assert alone.complete(CONVERSATIONS[0], samples[0]) == alone.complete(CONVERSATIONS[0], samples[0])


def test_the_micro_batcher_groups_requests_and_keeps_their_order():
    batches = []

    def run_batch(requests):
        batches.append(list(requests))
        return [request * 10 for request in requests]

    batcher = MicroBatcher(run_batch, max_batch_size=3, max_wait_s=5.0, group_of=lambda request: request % 2)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(batcher.submit, range(6)))

    assert results == [0, 10, 20, 30, 40, 50]
    assert sorted(sorted(batch) for batch in batches) == [[0, 2, 4], [1, 3, 5]]
    assert batcher.batch_sizes == [3, 3]


def test_a_failed_batch_fails_each_of_its_requests():
    def run_batch(requests):
        raise TeacherRequestError("out of memory", "out of memory", retryable=True)

    batcher = MicroBatcher(run_batch, max_batch_size=2, max_wait_s=5.0)
    errors = []

    def submit(request):
        try:
            batcher.submit(request)
        except TeacherRequestError as error:
            errors.append(error.kind)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == ["out of memory", "out of memory"]
    assert batcher.batch_sizes == []


def test_an_idle_worker_ends_and_the_next_request_starts_another():
    batcher = MicroBatcher(lambda requests: [request + 1 for request in requests], max_wait_s=0.0, idle_exit_s=0.05)
    assert batcher.submit(1) == 2
    deadline = time.monotonic() + 5
    while batcher._worker is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher._worker is None
    assert batcher.submit(2) == 3
