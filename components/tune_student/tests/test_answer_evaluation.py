"""The answered evaluation rows are bounded: how many, how long an answer may be, how much of an input is read."""

from kfp_distill.components.tune_student.answer_evaluation import (
    ANSWER_TOKEN_MARGIN,
    MAX_ANSWER_TOKENS,
    AnswerEvaluation,
)
from kfp_distill.components.tune_student.data import EvaluationRow


def rows(count: int, gold: str = "blue") -> list[EvaluationRow]:
    return [EvaluationRow(f"question: row {i}? context: a text", gold) for i in range(count)]


def test_all_rows_are_answered_when_there_are_few_and_a_fixed_sample_when_there_are_many(smollm2_tokenizer):
    few = AnswerEvaluation.of_rows(rows(5), "extractive_qa", smollm2_tokenizer, max_rows=5, max_input_tokens=1024)
    assert few.input_texts == [row.input_text for row in rows(5)]
    many = AnswerEvaluation.of_rows(rows(50), "extractive_qa", smollm2_tokenizer, max_rows=8, max_input_tokens=1024)
    again = AnswerEvaluation.of_rows(rows(50), "extractive_qa", smollm2_tokenizer, max_rows=8, max_input_tokens=1024)
    assert len(many.input_texts) == 8 == len(set(many.input_texts)) and many.input_texts == again.input_texts
    assert many.input_texts != [row.input_text for row in rows(8)]  # a sample of all the rows, not the first ones
    assert (many.main_metric, many.metrics) == ("f1", ("exact_match", "f1"))


def test_an_answer_may_be_the_longest_gold_answer_and_a_margin_long_up_to_a_cap(smollm2_tokenizer):
    golds = ["blue", "the deep blue of a summer sky"]
    evaluation = AnswerEvaluation.of_rows(
        [EvaluationRow("q", gold) for gold in golds], "free_text", smollm2_tokenizer, max_rows=10, max_input_tokens=1024
    )
    longest = max(len(smollm2_tokenizer(gold, add_special_tokens=False)["input_ids"]) for gold in golds)
    assert evaluation.max_new_tokens == longest + ANSWER_TOKEN_MARGIN
    summary = AnswerEvaluation.of_rows(
        [EvaluationRow("q", "word " * 1000)], "summarization", smollm2_tokenizer, max_rows=10, max_input_tokens=1024
    )
    assert summary.max_new_tokens == MAX_ANSWER_TOKENS


def test_a_long_input_is_cut_to_what_tuning_reads_and_to_the_student_s_context(smollm2_tokenizer):
    long_input = " ".join(f"w{i}" for i in range(2000))
    row = [EvaluationRow(long_input, "blue")]
    cut = AnswerEvaluation.of_rows(row, "free_text", smollm2_tokenizer, max_rows=1, max_input_tokens=100)
    assert len(smollm2_tokenizer(cut.input_texts[0], add_special_tokens=False)["input_ids"]) <= 100
    assert long_input.startswith(cut.input_texts[0])
    in_context = AnswerEvaluation.of_rows(row, "free_text", smollm2_tokenizer, 1, 7168, context_tokens=512)
    prompt = smollm2_tokenizer(in_context.input_texts[0] + "\n[label]\n")["input_ids"]
    assert len(prompt) + in_context.max_new_tokens <= 512


def test_checkpoints_are_judged_on_extractive_answers_decoded_as_spans_as_evaluate_decodes_them(varied_student_dir):
    """The answers that pick a checkpoint are the answers evaluate, predict and serve give: spans of the context."""
    from transformers import AutoModelForCausalLM

    from kfp_distill._implementation.models import load_tokenizer

    tokenizer = load_tokenizer(varied_student_dir)
    context = "Beijing is the capital of China. Over 21 million people live in Beijing."
    evaluation = AnswerEvaluation.of_rows(
        [EvaluationRow(f"question: How many people live in Beijing? context: {context}", "21 million")],
        "extractive_qa", tokenizer, max_rows=1, max_input_tokens=1024,
    )

    (answer,) = evaluation.answers(AutoModelForCausalLM.from_pretrained(varied_student_dir), batch_size=1).values()

    assert answer and answer in context
