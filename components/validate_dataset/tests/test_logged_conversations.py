"""validate-dataset reading application logs: OpenAI chat, Gemini tuning and Amazon Bedrock invocation log rows
become contract rows, with what was skipped, collapsed and refused in the report."""

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfp_distill._implementation.conversations import NO_USER_TURN, NOT_TEXT, TOOL_USE, Message, render_prompt
from kfp_distill._implementation.jsonl import DatasetError, load_rows, write_jsonl
from kfp_distill._implementation.scripts import load_module
from kfp_distill.components.validate_dataset.validation import (
    BLANK_ANSWER,
    NO_LOGGED_ANSWER,
    SKIPPED_METRIC_NAMES,
    SKIPPED_SHARE_WARNED,
)

log_formats = load_module("log_formats", Path(__file__).resolve().parents[3] / "benchmarks" / "log_formats.py")

# Rows as each vendor's documentation shows them: a conversation with a system prompt and earlier turns, a
# single question, and a request logged without its answer.
OPENAI_ROWS = [
    {"messages": [
        {"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."},
        {"role": "user", "content": "What's the capital of France?"},
        {"role": "assistant", "content": "Paris, as if everyone doesn't know that already."},
        {"role": "user", "content": [{"type": "text", "text": "Who wrote Romeo and Juliet?"}]},
        {"role": "assistant", "content": "Oh, just some guy named William Shakespeare.", "weight": 1},
    ]},
    {"messages": [{"role": "user", "content": "How far is the Moon from Earth?"},
                  {"role": "assistant", "content": "About 384,400 kilometers."}]},
    {"messages": [{"role": "developer", "content": "Answer in one word."}, {"role": "user", "content": "Sky colour?"}]},
]
GEMINI_ROWS = [
    {"systemInstruction": {"role": "system", "parts": [{"text": "You are a pirate dog named Captain Barktholomew."}]},
     "contents": [
         {"role": "user", "parts": [{"text": "Hi"}]},
         {"role": "model", "parts": [{"text": "Argh! What brings ye to my ship?"}]},
         {"role": "user", "parts": [{"text": "What's your name?"}]},
         {"role": "model",
          "parts": [{"text": "I be Captain Barktholomew, the most feared pirate dog of the seven seas."}]},
     ]},
    {"contents": [{"role": "user", "parts": [{"text": "How far is the Moon from Earth?"}]},
                  {"role": "model", "parts": [{"text": "About 384,400 kilometers."}]}]},
    {"systemInstruction": {"parts": [{"text": "Answer in one word."}]},
     "contents": [{"role": "user", "parts": [{"text": "Sky colour?"}]}]},
]


def _bedrock_record(operation: str, request: dict, response: dict | None) -> dict:
    record = {
        "schemaType": "ModelInvocationLog", "schemaVersion": "1.0", "timestamp": "2025-04-09T23:00:17Z",
        "accountId": "123456789012", "region": "us-east-1", "requestId": "915a6a04-3f83-4c70-a277-7fbf7ea546b3",
        "operation": operation, "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "input": {"inputContentType": "application/json", "inputBodyJson": request, "inputTokenCount": 35},
    }
    if response is not None:
        record["output"] = {"outputContentType": "application/json", "outputBodyJson": response, "outputTokenCount": 2}
    return record


def _converse_answer(text: str) -> dict:
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": "end_turn",
            "metrics": {"latencyMs": 364}, "usage": {"inputTokens": 35, "outputTokens": 2, "totalTokens": 37}}


def _anthropic_answer(text: str) -> dict:
    return {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
            "model": "claude-3-5-sonnet-20241022", "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 28, "output_tokens": 2}}


# One Bedrock log holds both APIs' records: the Converse API's and InvokeModel's with an Anthropic Messages body.
BEDROCK_ROWS = [
    _bedrock_record("Converse", {
        "system": [{"text": "Marv is a factual chatbot that is also sarcastic."}],
        "messages": [
            {"role": "user", "content": [{"text": "What's the capital of France?"}]},
            {"role": "assistant", "content": [{"text": "Paris, as if everyone doesn't know that already."}]},
            {"role": "user", "content": [{"text": "Who wrote Romeo and Juliet?"}, {"cachePoint": {"type": "default"}}]},
        ],
        "inferenceConfig": {"maxTokens": 512},
    }, _converse_answer("Oh, just some guy named William Shakespeare.")),
    _bedrock_record("InvokeModel", {
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 1024,
        "messages": [{"role": "user", "content": "How far is the Moon from Earth?"}],
    }, _anthropic_answer("About 384,400 kilometers.")),
    _bedrock_record("InvokeModel", {
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 1024,
        "system": [{"type": "text", "text": "Answer in one word."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Sky colour?"}]}],
    }, None),
]

MARV = (
    "System: Marv is a factual chatbot that is also sarcastic.\n\n"
    "User: What's the capital of France?\n\n"
    "Assistant: Paris, as if everyone doesn't know that already.\n\n"
    "User: Who wrote Romeo and Juliet?"
)
MOON = {"input_text": "How far is the Moon from Earth?", "output_text": "About 384,400 kilometers."}
SKY = {"input_text": "System: Answer in one word.\n\nUser: Sky colour?", "output_text": None}


@pytest.mark.parametrize("rows, data_format, expected", [
    (OPENAI_ROWS, "openai_chat",
     [{"input_text": MARV, "output_text": "Oh, just some guy named William Shakespeare."}, MOON, SKY]),
    (GEMINI_ROWS, "gemini", [
        {"input_text": "System: You are a pirate dog named Captain Barktholomew.\n\nUser: Hi\n\n"
                       "Assistant: Argh! What brings ye to my ship?\n\nUser: What's your name?",
         "output_text": "I be Captain Barktholomew, the most feared pirate dog of the seven seas."},
        MOON, SKY,
    ]),
    (BEDROCK_ROWS, "bedrock",
     [{"input_text": MARV, "output_text": "Oh, just some guy named William Shakespeare."}, MOON, SKY]),
], ids=["openai_chat", "gemini", "bedrock-converse-and-anthropic"])
def test_each_log_format_becomes_contract_rows(tmp_path, outputs, tokenizer, rows, data_format, expected):
    write_jsonl(tmp_path / "log.jsonl", rows)

    report = outputs.run(str(tmp_path / "log.jsonl"))

    assert load_rows(outputs.train) == expected
    assert report.train.data_format == data_format
    assert (report.train.rows_read, report.train.examples, report.train.labeled_examples) == (3, 3, 2)
    assert report.kind == "mixed"
    markdown = outputs.report.read_text()
    assert f"- Format: training **{data_format}**" in markdown
    assert "| rows read | 3 | - |" in markdown and "| examples | 3 | - |" in markdown


# A sample of Banking77 (PolyAI, https://github.com/PolyAI-LDN/task-specific-datasets, CC BY 4.0; Casanueva et
# al., 2020): customers' messages to an online bank, unchanged, each with the intent it expresses as the
# assistant's reply. The system prompt and the conversation layout are ours.
BANKING_SYSTEM = (
    "You are the support assistant of an online bank. Read the customer's message and reply with the one intent it "
    "expresses, written exactly as one of: card_arrival, lost_or_stolen_card, change_pin, exchange_rate, "
    "top_up_failed, cash_withdrawal_charge, transfer_not_received_by_recipient, terminate_account."
)
BANKING_TRAIN = [  # train.csv
    ("What are the steps I need to do if I have a stolen card?", "lost_or_stolen_card"),
    ("I just had a look at my statement. Why have I been changed for using the ATM?", "cash_withdrawal_charge"),
    ("My top up didn't go through", "top_up_failed"),
    ("Can I change my pin at a cash machine?", "change_pin"),
    ("I need to find out where the card is that I ordered.", "card_arrival"),
    ("I made a transfer to my friend earlier and she hasn't received it yet.  What's the hold up?",
     "transfer_not_received_by_recipient"),
    ("What exchange rates do you use?", "exchange_rate"),
]
BANKING_EVALUATION = [  # test.csv
    ("A fee was charged for my recent withdrawal.", "cash_withdrawal_charge"),
    ("How long does it take for a transfer to get to a recipient?", "transfer_not_received_by_recipient"),
    ("What is the base of the exchange rates?", "exchange_rate"),
    ("What's the deal? My card was just denied for top up. Why is it not going through?", "top_up_failed"),
    ("Why did I have to pay a fee when I got cash?", "cash_withdrawal_charge"),
    ("Can you delete my account please?", "terminate_account"),
    ("So, I tried topping up my card for the today. Unfortunately, it failed. A couple of days back I used it and it "
     "works fine. Can you double check and tell me what's going on?", "top_up_failed"),
    ("I have never been charged a fee for cash withdrawal before. When did that change?", "cash_withdrawal_charge"),
    ("How do I get rid of my account ASAP?", "terminate_account"),
    ("how long do money transfers take?", "transfer_not_received_by_recipient"),
]


def _conversations(sample: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    return [[("system", BANKING_SYSTEM), ("user", message), ("assistant", intent)] for message, intent in sample]


# Multi-turn conversations, and a single question without a system prompt, as a support chat logs them.
FOLLOW_UPS = [
    [("system", BANKING_SYSTEM), ("user", "I lost my card. Can you help me?"), ("assistant", "lost_or_stolen_card"),
     ("user", "Found it. Can I reset my PIN?"), ("assistant", "change_pin")],
    [("user", "Is the exchange rate current?"), ("assistant", "exchange_rate")],
]


def test_the_same_conversations_in_every_log_format_give_byte_identical_training_rows(tmp_path, tokenizer):
    from kfp_distill.components.validate_dataset.validation import validate_dataset

    train, evaluation = _conversations(BANKING_TRAIN) + FOLLOW_UPS, _conversations(BANKING_EVALUATION)
    written = {}
    for name, write in log_formats.WRITERS.items():
        folder = tmp_path / name
        write_jsonl(folder / "train-log.jsonl", [write(turns) for turns in train])
        write_jsonl(folder / "eval-log.jsonl", [write(turns) for turns in evaluation])
        validate_dataset(str(folder / "train-log.jsonl"), str(folder / "eval-log.jsonl"), "smollm2-135m-instruct",
                         folder / "train.jsonl", folder / "eval.jsonl", folder / "report.md")
        written[name] = ((folder / "train.jsonl").read_bytes(), (folder / "eval.jsonl").read_bytes())

    assert len(set(written.values())) == 1, {name: files[0][:200] for name, files in written.items()}
    rows = load_rows(tmp_path / "openai_chat" / "train.jsonl")
    assert rows[0] == {
        "input_text": f"System: {BANKING_SYSTEM}\n\nUser: What are the steps I need to do if I have a stolen card?",
        "output_text": "lost_or_stolen_card",
    }
    assert rows[-2]["input_text"].endswith(
        "User: I lost my card. Can you help me?\n\nAssistant: lost_or_stolen_card\n\n"
        "User: Found it. Can I reset my PIN?"
    )
    assert rows[-1] == {"input_text": "Is the exchange rate current?", "output_text": "exchange_rate"}
    assert len(load_rows(tmp_path / "gemini" / "eval.jsonl")) == 10


@pytest.mark.parametrize("rows, expected", [
    ([OPENAI_ROWS[0], GEMINI_ROWS[0]],
     "{train}, line 2: a row in the gemini format (Vertex AI Gemini tuning: contents) in a file of openai_chat rows "
     "(OpenAI chat: messages), the format of its first row (line 1); a file holds one format"),
    ([{"input_text": "q", "output_text": "a"}, OPENAI_ROWS[0]],
     "{train}, line 2: a row in the openai_chat format (OpenAI chat: messages) in a file of contract rows "
     "(input_text, output_text), the format of its first row (line 1); a file holds one format"),
    ([BEDROCK_ROWS[0], {"input_text": "q"}, GEMINI_ROWS[1], {"prompt": "q"}],
     "{train}, line 2: a row in the contract format (input_text, output_text) in a file of bedrock rows (Amazon "
     "Bedrock invocation log: modelId, input), the format of its first row (line 1); a file holds one format "
     "(2 more lines have errors)"),
], ids=["openai-then-gemini", "contract-then-openai", "bedrock-then-others"])
def test_a_row_in_another_format_is_refused_naming_its_line_and_both_formats(tmp_path, outputs, rows, expected):
    write_jsonl(tmp_path / "log.jsonl", rows)

    with pytest.raises(DatasetError, match="^" + re.escape(expected.format(train=tmp_path / "log.jsonl")) + "$"):
        outputs.run(str(tmp_path / "log.jsonl"))
    assert outputs.left_behind() == []


def test_training_and_evaluation_files_in_different_formats_are_refused_naming_both(tmp_path, outputs):
    write_jsonl(tmp_path / "train.jsonl", OPENAI_ROWS)
    write_jsonl(tmp_path / "eval.jsonl", [{"contents": [{"role": "user", "parts": [{"text": f"q{i}"}]},
                                                        {"role": "model", "parts": [{"text": "a"}]}]}
                                          for i in range(10)])
    expected = (
        f"{tmp_path / 'eval.jsonl'}: is in the gemini format (Vertex AI Gemini tuning: contents), but the training "
        f"data {tmp_path / 'train.jsonl'} is in the openai_chat format (OpenAI chat: messages); give both in one "
        "format, so that the student is evaluated on inputs rendered as it was trained on"
    )

    with pytest.raises(DatasetError, match="^" + re.escape(expected) + "$"):
        outputs.run(str(tmp_path / "train.jsonl"), str(tmp_path / "eval.jsonl"))
    assert outputs.left_behind() == []


def test_a_malformed_logged_row_is_refused_naming_file_line_and_field(tmp_path, outputs):
    write_jsonl(tmp_path / "log.jsonl", [OPENAI_ROWS[1], {"messages": [{"role": "user", "content": 7}]}])
    expected = (f"{tmp_path / 'log.jsonl'}, line 2, field 'messages[0].content': must be a string or an array of "
                "content parts, got a number")

    with pytest.raises(DatasetError, match="^" + re.escape(expected) + "$"):
        outputs.run(str(tmp_path / "log.jsonl"))


def _chat(question: str, answer: str | None = "an answer") -> dict:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
    return {"messages": messages + ([{"role": "assistant", "content": answer}] if answer is not None else [])}


TOOL_CALL = {"messages": [{"role": "user", "content": "Weather in Paris?"},
                          {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]}]}
IMAGE = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                      {"role": "assistant", "content": "a cat"}]}
NO_USER = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Hello!"}]}


def test_skipped_rows_are_counted_by_reason_and_duplicate_prompts_collapsed(tmp_path, outputs, tokenizer, caplog):
    rows = [_chat(f"question {i}") for i in range(20)]
    rows[3:3] = [TOOL_CALL, IMAGE, TOOL_CALL, NO_USER, _chat("question 0", "another answer"), _chat("question 1"),
                 _chat("question 2", "   ")]
    write_jsonl(tmp_path / "log.jsonl", rows)

    report = outputs.run(str(tmp_path / "log.jsonl"))

    summary = report.train
    assert (summary.rows_read, summary.examples, summary.duplicates_collapsed) == (27, 20, 2)
    assert summary.skipped == {TOOL_USE: 2, NOT_TEXT: 1, NO_USER_TURN: 1, BLANK_ANSWER: 1}
    # The first of each prompt is kept, with its answer.
    assert load_rows(outputs.train)[0] == {"input_text": "System: Be brief.\n\nUser: question 0",
                                           "output_text": "an answer"}
    markdown = outputs.report.read_text()
    for line in ("| rows read | 27 | - |", "| examples | 20 | - |", f"| skipped: {TOOL_USE} | 2 | - |",
                 f"| skipped: {NOT_TEXT} | 1 | - |", f"| skipped: {NO_USER_TURN} | 1 | - |",
                 f"| skipped: {BLANK_ANSWER} | 1 | - |", "| duplicate prompts collapsed to the first | 2 | - |"):
        assert line + "\n" in markdown, line
    metrics = report.metrics()
    assert (metrics["train_rows_read"], metrics["train_rows_skipped"], metrics["train_duplicates_collapsed"]) == (
        27.0, 5.0, 2.0
    )
    assert metrics["train_rows_skipped_tool_use"] == 2.0 and metrics["train_rows_skipped_blank_answer"] == 1.0
    # 5 of 27 rows skipped: more than the share that is warned of.
    warning = (
        f"{tmp_path / 'log.jsonl'}: 5 of 27 logged rows were skipped (2 {TOOL_USE}, 1 {NOT_TEXT}, 1 {NO_USER_TURN}, "
        f"1 {BLANK_ANSWER}); the student learns only from the rest: check that they are still like the traffic it "
        "will answer"
    )
    assert warning in report.warnings and warning in caplog.text
    # No warning of repeated inputs: they were collapsed.
    assert not any("repeat an earlier example" in w for w in report.warnings)


def test_a_few_skipped_rows_are_counted_but_not_warned_of(tmp_path, outputs, tokenizer):
    rows = [_chat(f"question {i}") for i in range(100)] + [TOOL_CALL] * 2
    assert 2 / 102 < SKIPPED_SHARE_WARNED
    write_jsonl(tmp_path / "log.jsonl", rows)

    report = outputs.run(str(tmp_path / "log.jsonl"))

    assert report.train.skipped == {TOOL_USE: 2} and report.warnings == []


def test_every_skip_reason_has_a_metric_name():
    from kfp_distill._implementation.conversations import SKIP_REASONS

    assert set(SKIP_REASONS) < set(SKIPPED_METRIC_NAMES)
    assert all(re.fullmatch("[a-z_]+", name) for name in SKIPPED_METRIC_NAMES.values())
    assert len(set(SKIPPED_METRIC_NAMES.values())) == len(SKIPPED_METRIC_NAMES)


def test_a_file_of_only_skipped_rows_says_why_it_has_no_examples(tmp_path, outputs):
    write_jsonl(tmp_path / "log.jsonl", [TOOL_CALL, IMAGE, TOOL_CALL])
    expected = (f"{tmp_path / 'log.jsonl'}: has no examples: every one of its 3 rows was skipped "
                f"(2 {TOOL_USE}, 1 {NOT_TEXT})")

    with pytest.raises(DatasetError, match="^" + re.escape(expected) + "$"):
        outputs.run(str(tmp_path / "log.jsonl"))


def test_an_evaluation_log_keeps_only_the_rows_with_a_logged_answer(tmp_path, outputs, tokenizer):
    write_jsonl(tmp_path / "train.jsonl", [_chat(f"question {i}") for i in range(3)])
    evaluation = [_chat(f"held-out {i}", f"answer {i}") for i in range(10)] + [_chat("unanswered", None), TOOL_CALL]
    write_jsonl(tmp_path / "eval.jsonl", evaluation)

    report = outputs.run(str(tmp_path / "train.jsonl"), str(tmp_path / "eval.jsonl"))

    assert (report.evaluation.rows_read, report.evaluation.examples) == (12, 10)
    assert report.evaluation.skipped == {NO_LOGGED_ANSWER: 1, TOOL_USE: 1}
    assert all(row["output_text"] for row in load_rows(outputs.evaluation))
    assert f"| skipped: {NO_LOGGED_ANSWER} | 0 | 1 |\n" in outputs.report.read_text()

    write_jsonl(tmp_path / "eval.jsonl", evaluation[1:])  # 9 answered rows: too few to score
    expected = (f"{tmp_path / 'eval.jsonl'}: has 9 examples; an evaluation set needs 10 to 250 (11 rows read: "
                f"1 {NO_LOGGED_ANSWER}, 1 {TOOL_USE})")
    with pytest.raises(DatasetError, match="^" + re.escape(expected) + "$"):
        outputs.run(str(tmp_path / "train.jsonl"), str(tmp_path / "eval.jsonl"))


def test_without_logged_answers_the_training_rows_are_unlabeled_and_the_evaluation_keeps_its_own(
    tmp_path, outputs, tokenizer
):
    write_jsonl(tmp_path / "train.jsonl", [_chat(f"question {i}") for i in range(3)] + [_chat("question 9", "  ")])
    write_jsonl(tmp_path / "eval.jsonl", [_chat(f"held-out {i}", f"answer {i}") for i in range(10)])

    report = outputs.run(str(tmp_path / "train.jsonl"), str(tmp_path / "eval.jsonl"), use_logged_answers=False)

    assert report.kind == "unlabeled" and report.train.examples == 4  # a blank answer matters no more
    assert [row["output_text"] for row in load_rows(outputs.train)] == [None] * 4
    assert [row["output_text"] for row in load_rows(outputs.evaluation)] == [f"answer {i}" for i in range(10)]
    assert "- Logged answers: not used; the teacher answers every training prompt afresh" in (
        outputs.report.read_text()
    )


def test_contract_rows_keep_their_output_text_without_logged_answers(tmp_path, outputs, tokenizer):
    write_jsonl(tmp_path / "train.jsonl", [{"input_text": "q", "output_text": "a"}])

    report = outputs.run(str(tmp_path / "train.jsonl"), use_logged_answers=False)

    assert report.kind == "labeled" and report.train.data_format == "contract"
    assert "Logged answers" not in outputs.report.read_text()


def test_a_long_system_prompt_is_truncated_and_counted_like_any_input_text(tmp_path, outputs, tokenizer):
    system = "Follow the bank's policy on every point. " * 10
    write_jsonl(tmp_path / "log.jsonl", [
        {"messages": [{"role": "system", "content": system}, {"role": "user", "content": "My card is lost."},
                      {"role": "assistant", "content": "lost_or_stolen_card"}]},
        {"messages": [{"role": "user", "content": "Short."}, {"role": "assistant", "content": "ok"}]},
    ])
    rendered = render_prompt([Message("system", system), Message("user", "My card is lost.")])
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]

    report = outputs.run(str(tmp_path / "log.jsonl"), max_input_tokens=16)

    truncation = report.train.input_text_truncation
    assert (truncation.rows, truncation.tokens) == (1, len(ids) - 16)
    assert report.train.max_input_tokens_seen == len(ids)
    assert load_rows(outputs.train)[0]["input_text"] == tokenizer.decode(ids[:16])
    assert f"1 training input_text values were truncated to 16 tokens ({len(ids) - 16} tokens dropped)" in (
        report.warnings
    )


def test_more_logged_rows_than_the_limit_are_refused_at_the_first_one_past_it(tmp_path, outputs):
    rows = [_chat(f"question {i}") for i in range(5)] + [TOOL_CALL, _chat("question 0")] + [_chat("question 5")]
    write_jsonl(tmp_path / "log.jsonl", rows)
    expected = f"{tmp_path / 'log.jsonl'}, line 8: more than 5 examples (the limit); this is example 6"

    with pytest.raises(DatasetError, match="^" + re.escape(expected) + "$"):
        outputs.run(str(tmp_path / "log.jsonl"), max_train_examples=5)



LOGS_PAGE = Path(__file__).resolve().parents[3] / "docs" / "logs.md"


def test_the_log_pages_example_rows_give_the_training_row_it_shows(tmp_path, tokenizer):
    from kfp_distill.components.validate_dataset.validation import validate_dataset

    page = LOGS_PAGE.read_text()
    examples = re.findall(r"```json\n(.*?)\n```", page, re.S)
    (shown,) = re.findall(r"```text\n(.*?)\n```", page, re.S)
    formats = []
    for index, example in enumerate(examples):
        folder = tmp_path / str(index)
        folder.mkdir()
        (folder / "log.jsonl").write_text(example + "\n")  # one copy-paste line
        report = validate_dataset(str(folder / "log.jsonl"), "", "smollm2-135m-instruct", folder / "train.jsonl",
                                  folder / "eval.jsonl", folder / "report.md")
        formats.append(report.train.data_format)
        assert load_rows(folder / "train.jsonl") == [{"input_text": shown, "output_text": "lost_or_stolen_card"}]
    assert formats == ["openai_chat", "gemini", "bedrock", "bedrock"]
    # Its table of skip reasons names every metric.
    for name in SKIPPED_METRIC_NAMES.values():
        assert f"| `{name}` |" in page, name


texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
logged_rows = st.one_of(
    st.builds(lambda write, turns: write(turns), st.sampled_from(list(log_formats.WRITERS.values())),
              st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), texts), min_size=1, max_size=5)),
    st.sampled_from([TOOL_CALL, IMAGE, NO_USER, {"input_text": "q"}, {"messages": 3}, {"prompt": "q"}]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(logged_rows, min_size=1, max_size=8), st.booleans(), st.booleans())
def test_every_row_read_is_taken_skipped_or_collapsed_or_the_file_is_refused(
    tmp_path, rows, evaluation, use_logged_answers
):
    from kfp_distill.components.validate_dataset.validation import _read_rows

    write_jsonl(tmp_path / "log.jsonl", rows)
    try:
        read = _read_rows(str(tmp_path / "log.jsonl"), 5, evaluation, use_logged_answers)
    except DatasetError as error:
        assert error.line is not None and 1 <= error.line <= len(rows)
        return
    assert read.rows_read == len(rows) == len(read.rows) + sum(read.skipped.values()) + read.duplicates_collapsed
    assert all(row.input_text.strip() for row in read.rows)
    if read.data_format == "contract":  # checked as today: repeats are warned of, not collapsed
        return
    assert len({row.input_text for row in read.rows}) == len(read.rows)
    if evaluation:
        assert all(row.output_text is not None and row.output_text.strip() for row in read.rows)
    elif not use_logged_answers:
        assert all(row.output_text is None for row in read.rows)


README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readmes_log_files_are_written_as_shown_and_give_one_and_the_same_training_row(tmp_path, tokenizer):
    import subprocess

    from kfp_distill.components.validate_dataset.validation import validate_dataset

    (block,) = [body for body in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S) if "> openai.jsonl" in body]
    writes = "\n".join(line for line in block.splitlines() if line.startswith("echo "))
    subprocess.run(["bash", "-euc", writes], cwd=tmp_path, check=True)  # the copy-paste lines, as written
    found = {}
    for name in ("openai", "gemini", "bedrock"):
        report = validate_dataset(str(tmp_path / f"{name}.jsonl"), "", "smollm2-135m-instruct",
                                  tmp_path / f"{name}-train.jsonl", tmp_path / f"{name}-eval.jsonl",
                                  tmp_path / f"{name}-report.md")
        found[report.train.data_format] = load_rows(tmp_path / f"{name}-train.jsonl")
    assert list(found) == ["openai_chat", "gemini", "bedrock"]
    expected = [{"input_text": "System: Reply with the intent.\n\nUser: I lost my card.", "output_text": "lost_or_stolen_card"}]
    assert all(rows == expected for rows in found.values()), found
