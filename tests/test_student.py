"""Batched greedy generation (accuracy measurements) answers exactly as one prompt at a time (serving)."""

from kfp_distill._implementation.models import load_tokenizer
from kfp_distill._implementation.student import StudentPredictor, generate_batched

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
