"""Batched greedy generation (accuracy measurements) answers exactly as one prompt at a time (serving)."""

import torch

from kfp_distill._implementation.models import load_tokenizer
from kfp_distill._implementation.student import StudentPredictor, generate_batched, student_prompt

# Prompts of different lengths, so the batch is padded on the left.
INPUTS = [
    "Sam has 3 apples.",
    "A farmer has 12 pears and 7 plums. How many fruits does the farmer have in all?",
    "What is 9 - 4?",
    "Ana has 12 boxes with 30 pencils in each box. How many pencils does Ana have?",
]


def test_batched_causal_generation_answers_as_one_at_a_time(varied_student_dir):
    predictor = StudentPredictor(varied_student_dir, max_new_tokens=12)
    for task in ("label", "rationale"):
        alone = [prediction.text for prediction in predictor.predict(INPUTS, task=task)]
        assert any(alone), "the fixture student must say something for this test to compare"
        batched = generate_batched(predictor.model, load_tokenizer(varied_student_dir), INPUTS, task, 12, batch_size=3)
        assert batched == alone


def test_a_prompt_longer_than_the_context_is_cut_as_tuning_cut_it(varied_student_dir):
    # The fixture's context is 512 tokens; this input is about 6,000. Uncut, the model would be run past its
    # context on work that grows with whatever a caller sends.
    predictor = StudentPredictor(varied_student_dir, max_new_tokens=12)
    tokenizer = predictor.tokenizer
    long_input = " ".join(INPUTS * 300)
    marker = tokenizer(student_prompt("", "label"), add_special_tokens=False)["input_ids"]
    kept = 512 - len(marker) - 12

    ids = predictor.input_ids(long_input)

    assert ids == tokenizer(student_prompt(long_input))["input_ids"][:kept] + marker
    assert len(ids) + 12 <= 512
    with torch.inference_mode():  # what the model says to exactly those tokens is what predict answers
        output = predictor.model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                                          pad_token_id=tokenizer.pad_token_id)
    assert predictor.predict([long_input])[0].text == tokenizer.decode(output[0, len(ids):], skip_special_tokens=True).strip()

    predictor.max_input_tokens = 16  # a student tuned on shorter inputs is asked as it was tuned
    assert predictor.input_ids(long_input) == tokenizer(student_prompt(long_input))["input_ids"][:16] + marker


def test_a_huge_input_is_cut_in_characters_before_it_is_tokenized(smollm2_tokenizer):
    """Tokenizing costs time in the input's length: what can never be kept is not tokenized at all, and what
    is kept is the same as from the whole input."""
    from kfp_distill._implementation.student import student_input_ids

    seen = []

    class Recording:
        def __getattr__(self, name):
            return getattr(smollm2_tokenizer, name)

        def __call__(self, text, **kwargs):
            seen.append(len(text))
            return smollm2_tokenizer(text, **kwargs)

    huge = "Ana has 12 boxes with 30 pencils in each box, and Ben has twice as many. " * 200_000  # 14 MB
    kept = 1000

    for encoder_decoder in (False, True):
        seen.clear()
        ids, cut = student_input_ids(Recording(), huge, "label", kept, encoder_decoder)
        whole = smollm2_tokenizer(huge[: len(huge) // 10] if encoder_decoder else student_prompt(huge[: len(huge) // 10]))
        assert cut and ids[:kept] == whole["input_ids"][:kept]
        assert max(seen) < 100 * kept, "the input was tokenized far past what is kept"
