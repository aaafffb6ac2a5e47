"""Logged conversations: the three vendors' formats read into one conversation, skips, errors and rendering."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfp_distill._implementation.conversations import (
    BEDROCK,
    CONTRACT,
    CUT_OFF,
    FAILED_REQUEST,
    GEMINI,
    NO_USER_TURN,
    NOT_IN_RECORD,
    NOT_TEXT,
    OPENAI_CHAT,
    TOOL_USE,
    ConversationError,
    ConversationSkipped,
    LoggedConversation,
    Message,
    detect_format,
    read_chat_messages,
    parse_logged_row,
    render_prompt,
)
from kfp_distill._implementation.scripts import load_module

log_formats = load_module("log_formats", Path(__file__).resolve().parents[1] / "benchmarks" / "log_formats.py")

# Rows as the vendors' documentation shows them.
OPENAI_ROW = {
    "messages": [
        {"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."},
        {"role": "user", "content": "What's the capital of France?"},
        {"role": "assistant", "content": "Paris, as if everyone doesn't know that already."},
        {"role": "user", "content": [{"type": "text", "text": "Who wrote "}, {"type": "text", "text": "Romeo and Juliet?"}]},
        {"role": "assistant", "content": "Oh, just some guy named William Shakespeare.", "weight": 1},
    ]
}
GEMINI_ROW = {
    "systemInstruction": {"role": "system", "parts": [{"text": "You are a pirate dog named Captain Barktholomew."}]},
    "contents": [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Argh! What brings ye to my ship?"}]},
        {"role": "user", "parts": [{"text": "What's your name?"}]},
        {"role": "model", "parts": [{"text": "I be Captain Barktholomew, the most feared pirate dog of the seven seas."}]},
    ],
}
CONVERSE_RECORD = {
    "schemaType": "ModelInvocationLog",
    "schemaVersion": "1.0",
    "timestamp": "2025-04-09T23:00:17Z",
    "accountId": "123456789012",
    "identity": {"arn": "arn:aws:sts::123456789012:assumed-role/app/x"},
    "region": "us-east-1",
    "requestId": "915a6a04-3f83-4c70-a277-7fbf7ea546b3",
    "operation": "Converse",
    "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
    "input": {
        "inputContentType": "application/json",
        "inputBodyJson": {
            "messages": [{"role": "user", "content": [{"text": "Classify: the stock fell 5%."}, {"cachePoint": {"type": "default"}}]}],
            "system": [{"text": "Answer with one word."}],
            "inferenceConfig": {"maxTokens": 512},
        },
        "inputTokenCount": 35,
    },
    "output": {
        "outputContentType": "application/json",
        "outputBodyJson": {
            "output": {"message": {"role": "assistant", "content": [{"text": "business"}]}},
            "stopReason": "end_turn",
            "metrics": {"latencyMs": 364},
            "usage": {"inputTokens": 35, "outputTokens": 2, "totalTokens": 37},
        },
        "outputTokenCount": 2,
    },
    "requestMetadata": {"traceId": "b956002a-fd01-47ba-9da7-07e4c9b1a6b6"},
}
ANTHROPIC_RECORD = {
    "schemaType": "ModelInvocationLog",
    "schemaVersion": "1.0",
    "timestamp": "2025-04-09T23:00:17Z",
    "accountId": "123456789012",
    "region": "us-east-1",
    "requestId": "0",
    "operation": "InvokeModel",
    "modelId": "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "input": {
        "inputContentType": "application/json",
        "inputBodyJson": {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "Answer with one word."}],
            "messages": [{"role": "user", "content": "Classify: the stock fell 5%."}],
        },
        "inputTokenCount": 28,
    },
    "output": {
        "outputContentType": "application/json",
        "outputBodyJson": {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-sonnet-20241022",
            "content": [{"type": "thinking", "thinking": "..."}, {"type": "text", "text": "business"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 28, "output_tokens": 2},
        },
        "outputTokenCount": 2,
    },
}


def test_each_format_is_detected_by_its_fields():
    assert detect_format({"input_text": "x"}) == CONTRACT
    assert detect_format(OPENAI_ROW) == OPENAI_CHAT
    assert detect_format(GEMINI_ROW) == GEMINI
    assert detect_format(CONVERSE_RECORD) == BEDROCK
    assert detect_format(ANTHROPIC_RECORD) == BEDROCK
    assert detect_format({"prompt": "x", "completion": "y"}) is None


def test_an_openai_row_keeps_its_system_prompt_and_earlier_turns():
    conversation = parse_logged_row(OPENAI_ROW, OPENAI_CHAT)
    assert conversation.answer == "Oh, just some guy named William Shakespeare."
    assert conversation.prompt == (
        Message("system", "Marv is a factual chatbot that is also sarcastic."),
        Message("user", "What's the capital of France?"),
        Message("assistant", "Paris, as if everyone doesn't know that already."),
        Message("user", "Who wrote Romeo and Juliet?"),
    )
    assert conversation.input_text == (
        "System: Marv is a factual chatbot that is also sarcastic.\n\n"
        "User: What's the capital of France?\n\n"
        "Assistant: Paris, as if everyone doesn't know that already.\n\n"
        "User: Who wrote Romeo and Juliet?"
    )


def test_a_gemini_row_reads_model_turns_as_assistant_turns():
    conversation = parse_logged_row(GEMINI_ROW, GEMINI)
    assert conversation.answer == "I be Captain Barktholomew, the most feared pirate dog of the seven seas."
    assert [m.role for m in conversation.prompt] == ["system", "user", "assistant", "user"]
    assert conversation.prompt[0].text == "You are a pirate dog named Captain Barktholomew."


@pytest.mark.parametrize("record", [CONVERSE_RECORD, ANTHROPIC_RECORD], ids=["converse", "anthropic"])
def test_bedrock_records_of_both_apis_give_the_same_conversation(record):
    conversation = parse_logged_row(record, BEDROCK)
    assert conversation == LoggedConversation(
        (Message("system", "Answer with one word."), Message("user", "Classify: the stock fell 5%.")), "business"
    )


def test_a_single_user_turn_renders_as_a_contract_input_text():
    assert render_prompt([Message("user", "Classify: 5 stocks to buy now")]) == "Classify: 5 stocks to buy now"
    conversation = parse_logged_row({"messages": [{"role": "user", "content": "hi"}]}, OPENAI_CHAT)
    assert (conversation.input_text, conversation.answer) == ("hi", None)


@pytest.mark.parametrize(
    "row, log_format, reason",
    [
        ({"messages": [{"role": "user", "content": "weather?"},
                       {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]}]},
         OPENAI_CHAT, TOOL_USE),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "42", "tool_call_id": "1"},
                       {"role": "assistant", "content": "y"}]}, OPENAI_CHAT, TOOL_USE),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                       {"role": "assistant", "content": "a cat"}]}, OPENAI_CHAT, NOT_TEXT),
        ({"messages": [{"role": "system", "content": "be brief"}, {"role": "assistant", "content": "hello"}]},
         OPENAI_CHAT, NO_USER_TURN),
        ({"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": "gs://b/x.png"}}]},
                       {"role": "model", "parts": [{"text": "a cat"}]}]}, GEMINI, NOT_TEXT),
        ({"contents": [{"role": "user", "parts": [{"text": "x"}]},
                       {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}]}, GEMINI, TOOL_USE),
        ({**CONVERSE_RECORD, "errorCode": "ThrottlingException"}, BEDROCK, FAILED_REQUEST),
        ({**CONVERSE_RECORD, "input": {"inputContentType": "application/json", "inputBodyS3Path": "s3://b/k"}},
         BEDROCK, NOT_IN_RECORD),
        ({**CONVERSE_RECORD, "output": {"outputBodyJson": {**CONVERSE_RECORD["output"]["outputBodyJson"],
                                                           "stopReason": "max_tokens"}}}, BEDROCK, CUT_OFF),
        ({**ANTHROPIC_RECORD, "output": {"outputBodyJson": {"content": [{"type": "tool_use", "id": "t", "name": "f",
                                                                         "input": {}}],
                                                            "stop_reason": "tool_use"}}}, BEDROCK, TOOL_USE),
    ],
)
def test_rows_that_are_no_text_training_example_are_skipped_with_their_reason(row, log_format, reason):
    with pytest.raises(ConversationSkipped) as skipped:
        parse_logged_row(row, log_format)
    assert skipped.value.reason == reason


def test_a_bedrock_record_without_a_logged_response_has_no_answer():
    record = {key: value for key, value in CONVERSE_RECORD.items() if key != "output"}
    assert parse_logged_row(record, BEDROCK).answer is None


@pytest.mark.parametrize(
    "row, log_format, field",
    [
        ({"messages": "hello"}, OPENAI_CHAT, "messages"),
        ({"messages": [{"role": "user", "content": 7}]}, OPENAI_CHAT, "messages[0].content"),
        ({"messages": [{"role": "narrator", "content": "x"}]}, OPENAI_CHAT, "messages[0].role"),
        ({"contents": [{"role": "user", "parts": [{"text": 3}]}]}, GEMINI, "contents[0].parts[0].text"),
        ({"contents": [{"role": "user"}]}, GEMINI, "contents[0].parts"),
        ({**CONVERSE_RECORD, "input": {"inputBodyJson": {"messages": [{"role": "user", "content": "x"}]}}}, BEDROCK,
         "input.inputBodyJson.messages[0].content"),
    ],
)
def test_a_row_not_shaped_as_its_format_names_the_field(row, log_format, field):
    with pytest.raises(ConversationError) as error:
        parse_logged_row(row, log_format)
    assert error.value.field == field


def test_a_chat_request_must_end_with_a_user_message():
    assert read_chat_messages([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]) == (
        Message("system", "s"), Message("user", "u")
    )
    with pytest.raises(ConversationError, match="end with a user message"):
        read_chat_messages([{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}])
    with pytest.raises(ConversationError):
        read_chat_messages([])


texts = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


@st.composite
def conversations(draw):
    """A system prompt (or none), alternating user and assistant turns ending with a user turn, and an answer."""
    turns = [("system", draw(texts))] if draw(st.booleans()) else []
    exchanges = draw(st.integers(min_value=0, max_value=3))
    for _ in range(exchanges):
        turns += [("user", draw(texts)), ("assistant", draw(texts))]
    turns.append(("user", draw(texts)))
    return turns, draw(st.one_of(st.none(), texts))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_every_vendor_format_of_one_conversation_reads_back_the_same(conversation):
    turns, answer = conversation
    logged = turns + ([("assistant", answer)] if answer is not None else [])
    expected = LoggedConversation(tuple(Message(role, text) for role, text in turns), answer)
    for name, write in log_formats.WRITERS.items():
        row = write(logged)
        assert parse_logged_row(row, detect_format(row)) == expected, name


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["messages", "role", "content", "type", "text", "parts", "contents", "systemInstruction",
                         "modelId", "input", "output", "inputBodyJson", "outputBodyJson", "system",
                         "anthropic_version", "message", "stopReason", "stop_reason", "tool_calls", "errorCode"]),
        children, max_size=5,
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(json_values, st.sampled_from([OPENAI_CHAT, GEMINI, BEDROCK]))
def test_any_row_is_read_skipped_or_refused_naming_a_field(value, log_format):
    row = value if isinstance(value, dict) else {"messages": value}
    try:
        conversation = parse_logged_row(row, log_format)
    except (ConversationSkipped, ConversationError):
        return
    assert conversation.prompt and conversation.prompt[-1].role == "user"
    assert isinstance(conversation.input_text, str)


def test_a_stop_reason_of_any_json_type_is_read_without_error():
    record = {**CONVERSE_RECORD, "output": {"outputBodyJson": {**CONVERSE_RECORD["output"]["outputBodyJson"],
                                                               "stopReason": ["max_tokens"]}}}
    assert parse_logged_row(record, BEDROCK).answer == "business"


def _paths(value, path=()):
    """Every place in a JSON value, as a path of keys and indices."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, path + (key,))


def _replaced(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([(OPENAI_ROW, OPENAI_CHAT), (GEMINI_ROW, GEMINI), (CONVERSE_RECORD, BEDROCK),
                        (ANTHROPIC_RECORD, BEDROCK)]), st.data())
def test_a_documented_row_with_any_one_value_replaced_is_read_skipped_or_refused(example, data):
    row, log_format = example
    path = data.draw(st.sampled_from(list(_paths(row))[1:]))
    mutated = _replaced(row, path, data.draw(json_values))
    try:
        conversation = parse_logged_row(mutated, log_format)
    except (ConversationSkipped, ConversationError):
        return
    assert conversation.prompt[-1].role == "user"


def test_a_top_level_system_prompt_in_an_openai_row_is_refused_not_dropped():
    row = {"system": "List of intents: ...", "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(ConversationError) as error:
        parse_logged_row(row, OPENAI_CHAT)
    assert error.value.field == "system" and "system message" in error.value.message
