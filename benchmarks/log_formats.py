"""Writes a conversation as each vendor logs it: OpenAI's chat format, Vertex AI's Gemini tuning format, and
Amazon Bedrock model-invocation log records (Converse API and Anthropic Messages bodies).

The shapes follow the vendors' public documentation (OpenAI's fine-tuning data format, Vertex AI's "Prepare
supervised fine-tuning data for Gemini models", Amazon Bedrock's "Monitor model invocation using CloudWatch
Logs and Amazon S3" and its Converse and Anthropic Claude Messages request/response pages). The log-route
benchmark writes its public chat data through them, and the tests check that validate-dataset reads all of
them into the same training rows.
"""

from __future__ import annotations

import uuid
from typing import Any

Turn = tuple[str, str]  # (role: "system" | "user" | "assistant", text)


def openai_chat(turns: list[Turn]) -> dict[str, Any]:
    """`{"messages": [...]}`, as OpenAI's chat fine-tuning files and stored-completions exports hold it."""
    return {"messages": [{"role": role, "content": text} for role, text in turns]}


def gemini(turns: list[Turn]) -> dict[str, Any]:
    """`{"systemInstruction": ..., "contents": [...]}`, Vertex AI's Gemini tuning format (roles user and model)."""
    row: dict[str, Any] = {}
    system = [text for role, text in turns if role == "system"]
    if system:
        row["systemInstruction"] = {"role": "system", "parts": [{"text": "\n\n".join(system)}]}
    row["contents"] = [
        {"role": "model" if role == "assistant" else "user", "parts": [{"text": text}]}
        for role, text in turns
        if role != "system"
    ]
    return row


def _bedrock_record(operation: str, model_id: str, request: dict, response: dict | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": "2026-01-01T00:00:00Z",
        "accountId": "123456789012",
        "identity": {"arn": "arn:aws:sts::123456789012:assumed-role/app/session"},
        "region": "us-east-1",
        "requestId": str(uuid.UUID(int=0)),
        "operation": operation,
        "modelId": model_id,
        "input": {"inputContentType": "application/json", "inputBodyJson": request, "inputTokenCount": 0},
    }
    if response is not None:
        record["output"] = {"outputContentType": "application/json", "outputBodyJson": response, "outputTokenCount": 0}
    return record


def bedrock_converse(turns: list[Turn], model_id: str = "amazon.nova-lite-v1:0") -> dict[str, Any]:
    """A Bedrock invocation log record of a Converse call; the final assistant turn is its logged response."""
    system = [{"text": text} for role, text in turns if role == "system"]
    rest = [(role, text) for role, text in turns if role != "system"]
    answer = rest.pop()[1] if rest and rest[-1][0] == "assistant" else None
    request: dict[str, Any] = {"messages": [{"role": role, "content": [{"text": text}]} for role, text in rest]}
    if system:
        request["system"] = system
    response = None
    if answer is not None:
        response = {
            "output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0},
        }
    return _bedrock_record("Converse", model_id, request, response)


def bedrock_anthropic(
    turns: list[Turn], model_id: str = "anthropic.claude-3-haiku-20240307-v1:0"
) -> dict[str, Any]:
    """A Bedrock invocation log record of an InvokeModel call with an Anthropic Messages body."""
    system = "\n\n".join(text for role, text in turns if role == "system")
    rest = [(role, text) for role, text in turns if role != "system"]
    answer = rest.pop()[1] if rest and rest[-1][0] == "assistant" else None
    request: dict[str, Any] = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 512,
        "messages": [{"role": role, "content": [{"type": "text", "text": text}]} for role, text in rest],
    }
    if system:
        request["system"] = system
    response = None
    if answer is not None:
        response = {
            "id": "msg_0",
            "type": "message",
            "role": "assistant",
            "model": model_id,
            "content": [{"type": "text", "text": answer}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
    return _bedrock_record("InvokeModel", model_id, request, response)


WRITERS = {
    "openai_chat": openai_chat,
    "gemini": gemini,
    "bedrock_converse": bedrock_converse,
    "bedrock_anthropic": bedrock_anthropic,
}
