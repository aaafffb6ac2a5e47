"""Extractive answers are spans: a student's answer is decoded within its context, a teacher's mapped to one."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfp_distill._implementation.models import load_tokenizer
from kfp_distill._implementation.spans import SpanConstraint, context_passage, is_span, nearest_span
from kfp_distill._implementation.student import StudentPredictor, generate_batched, load_student_model

EXTRACTIVE = "extractive_qa"
# Words a context is made of: plain, capitalised, with punctuation, accents, and characters that SmolLM2's
# byte-level vocabulary spells in several tokens.
WORDS = ["Beijing", "over", "21", "million", "people", "live", "in", "the", "capital", "Zürich", "北京", "naïve",
         "U.S.", "(1998)", "well-known", "river,", "Louisiana", "64", "parishes.", "\n", "Über", "café"]
INPUTS = [
    "question: How many people live in Beijing? context: Beijing is the capital of China. Over 21 million "
    "people live there.",
    "question: How many parishes are there in Louisiana? context: The U.S. state of Louisiana is divided into "
    "64 parishes in the same manner that 48 other states are divided into counties.",
    "context: Zürich is the largest city in Switzerland. question: Which city is the largest?",
    "question: Who? context: 北京 naïve",
]
# Assigned characters: SmolLM2's byte-level vocabulary has no token for the UTF-8 lead bytes of planes 4-11, which
# hold no assigned character, so no answer can spell one (an answer of such characters only is empty).
assigned = st.characters(exclude_categories=("Cn", "Cs"))
contexts = st.lists(st.sampled_from(WORDS) | st.text(assigned, min_size=1, max_size=6), max_size=30).map(" ".join)
questions = st.text(max_size=40)


@pytest.fixture(scope="module")
def varied_predictor(varied_student_dir):
    return StudentPredictor(varied_student_dir, max_new_tokens=12)


def test_the_context_is_the_passage_after_its_marker_up_to_a_question_after_it():
    assert context_passage("question: Who? context:  Ann met Bo. ") == "Ann met Bo."
    assert context_passage("Context: Ann met Bo.\nQuestion: Who met Bo?") == "Ann met Bo."
    assert context_passage("question: Who met Bo? Ann met Bo.") == "question: Who met Bo? Ann met Bo."


@settings(max_examples=25, deadline=None)
@given(question=questions, context=contexts)
def test_the_students_answer_is_always_a_span_of_its_context(varied_predictor, question, context):
    input_text = f"question: {question} context: {context}"
    passage = context_passage(input_text)

    (prediction,) = varied_predictor.predict([input_text], task_type=EXTRACTIVE)

    assert prediction.text in passage
    assert prediction.text or not passage.strip()  # a context that holds a word gets an answer


def test_the_constraint_is_what_makes_the_answers_spans(varied_predictor):
    unconstrained = [prediction.text for prediction in varied_predictor.predict(INPUTS)]
    assert not any(is_span(answer, context_passage(text)) for answer, text in zip(unconstrained, INPUTS))

    spans = [prediction.text for prediction in varied_predictor.predict(INPUTS, task_type=EXTRACTIVE)]

    assert all(is_span(answer, context_passage(text)) for answer, text in zip(spans, INPUTS))
    # Other tasks, and the rationale task, are left alone.
    assert [p.text for p in varied_predictor.predict(INPUTS, task_type="free_text")] == unconstrained
    rationales = [p.text for p in varied_predictor.predict(INPUTS, task="rationale")]
    assert [p.text for p in varied_predictor.predict(INPUTS, task="rationale", task_type=EXTRACTIVE)] == rationales


def test_batched_span_decoding_answers_as_one_at_a_time(varied_predictor):
    alone = [prediction.text for prediction in varied_predictor.predict(INPUTS, task_type=EXTRACTIVE)]

    batched = generate_batched(
        varied_predictor.model, varied_predictor.tokenizer, INPUTS, "label", 12, batch_size=3, task_type=EXTRACTIVE
    )

    assert batched == alone


def test_an_encoder_decoder_student_answers_spans_alone_and_batched(tiny_t5_dir):
    predictor = StudentPredictor(tiny_t5_dir, max_new_tokens=8)
    alone = [prediction.text for prediction in predictor.predict(INPUTS, task_type=EXTRACTIVE)]
    assert all(is_span(answer, context_passage(text)) for answer, text in zip(alone, INPUTS))
    model = load_student_model(tiny_t5_dir).eval()
    tokenizer = load_tokenizer(tiny_t5_dir)
    batched = generate_batched(model, tokenizer, INPUTS, "label", 8, batch_size=3, task_type=EXTRACTIVE)
    assert batched == alone


def test_a_vocabulary_that_is_not_byte_level_decodes_spans_by_its_tokens_text():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "</s>", "▁a", "▁Beijing", "▁is", "▁the", "▁capital", "▁of", "▁China", ".", "▁Over", "▁cap",
             "ital"]
    backend = Tokenizer(models.WordLevel({word: index for index, word in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer, backend.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()  # SentencePiece's
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", eos_token="</s>")
    ids = {word: index for index, word in enumerate(words)}
    span = SpanConstraint(tokenizer, "Beijing is the capital of China.", [ids["</s>"]])

    assert span.allowed([]) == sorted(ids[word] for word in words[3:12] if word != "▁Over")  # words there
    assert span.allowed([ids["▁Beijing"]]) == [ids["</s>"], ids["▁is"]]
    assert span.allowed([ids["▁cap"]]) == [ids["ital"]]  # "cap" ends inside a word
    assert span.answer([ids[word] for word in ("▁the", "▁cap", "ital", "</s>", "▁of")]) == "the capital"


CONTEXT = "The U.S. state of Louisiana is divided into 64 parishes; over 21 million people live in Beijing."


@pytest.mark.parametrize(
    ("answer", "span", "f1"),
    [
        ("64 parishes", "64 parishes", 1.0),  # a span already
        ("louisiana", "Louisiana", 1.0),  # written in the context's case
        ("About 21 million people", "21 million people", 6 / 7),  # the words of the context nearest it
        ("Beijing City", "Beijing", 2 / 3),  # without the punctuation at its edges
        ("It is not mentioned", "is", 0.4),  # a word in common is all it takes
        ("Nowhere", None, None),
        ("", None, None),
    ],
)
def test_a_teachers_answer_maps_to_the_nearest_span(answer, span, f1):
    nearest = nearest_span(answer, CONTEXT)
    assert (nearest and nearest.text, nearest and nearest.f1) == (span, pytest.approx(f1) if f1 else None)


@settings(max_examples=200, deadline=None)
@given(answer=st.text(max_size=30) | contexts, context=contexts)
def test_the_nearest_span_is_a_span(answer, context):
    nearest = nearest_span(answer, context)
    assert nearest is None or (is_span(nearest.text, context) and 0 < nearest.f1 <= 1)
