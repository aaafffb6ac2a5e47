"""Logged conversations: the chat formats applications log, read into one typed value, and its one rendering.

An application that already calls a hosted model holds logs of chat requests and the answers it got. Three
formats are read, each detected per row by its top-level fields:

| format | what a row is | detected by |
|---|---|---|
| `openai_chat` | OpenAI's chat fine-tuning format (what its stored completions export, and what gateways such as LiteLLM write): `{"messages": [{"role": "system" or "developer", "user", "assistant", "content": ...}]}` | `messages` |
| `gemini` | Vertex AI's Gemini tuning format: `{"systemInstruction": {"parts": [{"text": ...}]}, "contents": [{"role": "user" or "model", "parts": [{"text": ...}]}]}` | `contents` |
| `bedrock` | an Amazon Bedrock model-invocation log record: `{"modelId", "operation", "input": {"inputBodyJson": ...}, "output": {"outputBodyJson": ...}}`, the bodies being the Converse API's or Anthropic Messages' | `modelId` and `input` |

The contract's own rows (`input_text`, ...) are the fourth kind, `contract`. A row is parsed into a
`LoggedConversation`: the prompt (system instructions and turns, in the order logged) and the answer, the
final assistant turn when there is one. A row that cannot be a training example of a text student (a tool
call or tool result anywhere, an image, audio or a document, no user turn, a failed or cut-off request) is
skipped with a reason; a row whose structure is not its format's (a field of the wrong type) is an error
naming the field.

`render_prompt` is the one rendering of a prompt into the text a student reads and a teacher is asked about:
used by validate-dataset for logged rows, and by `serve` for chat requests, so that what the student is
tuned on and what it is asked in production look the same. One user turn alone renders as its text, exactly
as a contract row's `input_text`; anything more renders as the turns in order, each under its role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]

CONTRACT = "contract"
OPENAI_CHAT = "openai_chat"
GEMINI = "gemini"
BEDROCK = "bedrock"
LOG_FORMATS = (OPENAI_CHAT, GEMINI, BEDROCK)

# Why a logged row is not a training example (the report counts rows by these).
TOOL_USE = "tool calls or tool results"
NOT_TEXT = "images, audio, documents or other content that is not text"
NO_USER_TURN = "no user turn before the answer"
FAILED_REQUEST = "the logged request failed"
CUT_OFF = "the logged answer was cut off at its token limit"
NOT_IN_RECORD = "the request body is not in the log record (logged to S3 as a separate object)"
UNKNOWN_BODY = "a Bedrock request body that is neither the Converse API's nor Anthropic Messages'"
SKIP_REASONS = (TOOL_USE, NOT_TEXT, NO_USER_TURN, FAILED_REQUEST, CUT_OFF, NOT_IN_RECORD, UNKNOWN_BODY)

ROLE_TITLES = {"system": "System", "user": "User", "assistant": "Assistant"}

# Stop reasons that mean the answer ended at its token limit, by API.
_CUT_OFF_STOP_REASONS = frozenset({"max_tokens", "length", "MAX_TOKENS"})
# Content parts that carry nothing for the student and are passed over (prompt-cache markers, hidden reasoning).
_IGNORED_CONVERSE_BLOCKS = frozenset({"cachePoint", "reasoningContent"})
_IGNORED_ANTHROPIC_BLOCKS = frozenset({"thinking", "redacted_thinking"})
_CONVERSE_TOOL_BLOCKS = frozenset({"toolUse", "toolResult"})
_ANTHROPIC_TOOL_BLOCKS = frozenset({"tool_use", "tool_result", "server_tool_use", "web_search_tool_result"})
_GEMINI_TOOL_PARTS = frozenset({"functionCall", "functionResponse", "executableCode", "codeExecutionResult"})


@dataclass(frozen=True)
class Message:
    """One turn of a conversation, or its system instructions."""

    role: Role
    text: str


@dataclass(frozen=True)
class LoggedConversation:
    """A logged chat exchange: what the model was asked, and what it answered (None when not logged).

    Attributes:
        prompt: The system instructions and turns before the answer, in the order logged; the last is a user turn.
        answer: The final assistant turn, or None.
    """

    prompt: tuple[Message, ...]
    answer: str | None

    @property
    def input_text(self) -> str:
        """The prompt as the student reads it (`render_prompt`)."""
        return render_prompt(self.prompt)


class ConversationSkipped(Exception):
    """A well-formed logged row that is not a training example of a text student; `reason` is one of SKIP_REASONS."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ConversationError(ValueError):
    """A row whose structure is not its format's: `field` names the place (e.g. `messages[2].content`)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def render_prompt(prompt: tuple[Message, ...] | list[Message]) -> str:
    """The text a student reads for a prompt: one user turn alone is its text; otherwise every turn in order,
    `System: ...`, `User: ...`, `Assistant: ...`, separated by blank lines.

    Raises:
        ValueError: The prompt is empty.
    """
    if not prompt:
        raise ValueError("a prompt needs at least one turn")
    if len(prompt) == 1 and prompt[0].role == "user":
        return prompt[0].text
    return "\n\n".join(f"{ROLE_TITLES[message.role]}: {message.text}" for message in prompt)


def detect_format(row: dict[str, Any]) -> str | None:
    """The format a row is in (CONTRACT or one of LOG_FORMATS), or None when it is in none."""
    if "input_text" in row:
        return CONTRACT
    if "messages" in row:
        return OPENAI_CHAT
    if "contents" in row:
        return GEMINI
    if "modelId" in row and "input" in row:
        return BEDROCK
    return None


def parse_logged_row(row: dict[str, Any], log_format: str) -> LoggedConversation:
    """Reads one logged row of `log_format` into a conversation.

    Raises:
        ConversationSkipped: The row is well formed but not a training example (the reason says why).
        ConversationError: The row's structure is not its format's.
        ValueError: An unknown format.
    """
    if log_format == OPENAI_CHAT:
        if "system" in row:  # Anthropic's layout: in OpenAI's the system prompt is a message, and would be lost
            raise ConversationError("system", "OpenAI chat rows hold the system prompt as a system message in messages")
        messages = _openai_messages(_field(row, "messages", list), "messages")
    elif log_format == GEMINI:
        messages = _gemini_messages(row)
    elif log_format == BEDROCK:
        messages = _bedrock_messages(row)
    else:
        raise ValueError(f"unknown log format {log_format!r}; known: {', '.join(LOG_FORMATS)}")
    return _split_answer(messages)


def read_chat_messages(messages: Any) -> tuple[Message, ...]:
    """The prompt of an OpenAI chat-completions request (`messages`), read as logged OpenAI rows are read.

    Raises:
        ConversationError: `messages` is not a list of chat messages, or it does not end with a user turn.
        ConversationSkipped: It holds tool calls, images or other content a text student cannot read.
    """
    if not isinstance(messages, list) or not messages:
        raise ConversationError("messages", "must be a non-empty list of chat messages")
    prompt = tuple(_openai_messages(messages, "messages"))
    if not prompt or prompt[-1].role != "user":
        raise ConversationError("messages", "the conversation must end with a user message: the student answers it")
    return prompt


def _split_answer(messages: list[Message]) -> LoggedConversation:
    answer = None
    if messages and messages[-1].role == "assistant":
        answer = messages.pop().text
    if not messages or messages[-1].role != "user":
        raise ConversationSkipped(NO_USER_TURN)
    return LoggedConversation(tuple(messages), answer)


def _field(value: dict[str, Any], name: str, kind: type, where: str = "") -> Any:
    """`value[name]`, which must be of `kind`."""
    place = f"{where}.{name}" if where else name
    if name not in value:
        raise ConversationError(place, "missing")
    found = value[name]
    if not isinstance(found, kind) or isinstance(found, bool):
        raise ConversationError(place, f"must be {_KIND_NAMES[kind]}, got {_json_type(found)}")
    return found


_KIND_NAMES = {list: "an array", dict: "an object", str: "a string"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConversationError(where, f"must be an object, got {_json_type(value)}")
    return value


# OpenAI chat format.

_OPENAI_ROLES: dict[str, Role] = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _openai_messages(messages: list[Any], where: str) -> list[Message]:
    read = []
    for index, item in enumerate(messages):
        place = f"{where}[{index}]"
        message = _object(item, place)
        role = _field(message, "role", str, place)
        if role in ("tool", "function") or message.get("tool_calls") or message.get("function_call"):
            raise ConversationSkipped(TOOL_USE)
        if role not in _OPENAI_ROLES:
            raise ConversationError(f"{place}.role", f"unknown role {role!r}; known: {', '.join(_OPENAI_ROLES)}")
        read.append(Message(_OPENAI_ROLES[role], _openai_content(message.get("content"), f"{place}.content")))
    return read


def _openai_content(content: Any, where: str) -> str:
    """A message's text: a string, or text content parts (`{"type": "text", "text": ...}`)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ConversationError(where, f"must be a string or an array of content parts, got {_json_type(content)}")
    texts = []
    for index, item in enumerate(content):
        part = _object(item, f"{where}[{index}]")
        kind = _field(part, "type", str, f"{where}[{index}]")
        if kind != "text":
            raise ConversationSkipped(NOT_TEXT)
        texts.append(_field(part, "text", str, f"{where}[{index}]"))
    return "".join(texts)


# Gemini (Vertex AI) tuning format.

_GEMINI_ROLES: dict[str, Role] = {"user": "user", "model": "assistant"}


def _gemini_parts(content: dict[str, Any], where: str) -> str:
    texts = []
    for index, item in enumerate(_field(content, "parts", list, where)):
        place = f"{where}.parts[{index}]"
        part = _object(item, place)
        if _GEMINI_TOOL_PARTS & part.keys():
            raise ConversationSkipped(TOOL_USE)
        if part.get("thought") is True:  # the model's hidden reasoning, not its answer
            continue
        if "text" not in part:
            raise ConversationSkipped(NOT_TEXT)
        texts.append(_field(part, "text", str, place))
    return "".join(texts)


def _gemini_messages(row: dict[str, Any]) -> list[Message]:
    messages = []
    if row.get("systemInstruction") is not None:
        instruction = _object(row["systemInstruction"], "systemInstruction")
        messages.append(Message("system", _gemini_parts(instruction, "systemInstruction")))
    for index, item in enumerate(_field(row, "contents", list)):
        place = f"contents[{index}]"
        content = _object(item, place)
        role = _field(content, "role", str, place)
        if role == "function":
            raise ConversationSkipped(TOOL_USE)
        if role not in _GEMINI_ROLES:
            raise ConversationError(f"{place}.role", f"unknown role {role!r}; known: user, model")
        messages.append(Message(_GEMINI_ROLES[role], _gemini_parts(content, place)))
    return messages


# Amazon Bedrock model-invocation log records.


def _bedrock_messages(row: dict[str, Any]) -> list[Message]:
    if row.get("errorCode") or row.get("status") not in (None, "Success", "success"):
        raise ConversationSkipped(FAILED_REQUEST)
    request = _field(row, "input", dict)
    if "inputBodyJson" not in request:
        raise ConversationSkipped(NOT_IN_RECORD)
    body = _field(request, "inputBodyJson", dict, "input")
    where = "input.inputBodyJson"
    if "anthropic_version" in body:
        messages = _anthropic_system(body.get("system"), f"{where}.system")
        for index, item in enumerate(_field(body, "messages", list, where)):
            messages.append(_anthropic_message(item, f"{where}.messages[{index}]"))
        answer = _anthropic_answer(row)
    elif "messages" in body:
        system = body.get("system") or []
        if not isinstance(system, list):
            raise ConversationError(f"{where}.system", f"must be an array of blocks, got {_json_type(system)}")
        messages = [Message("system", _converse_text(system, f"{where}.system"))] if system else []
        for index, item in enumerate(_field(body, "messages", list, where)):
            place = f"{where}.messages[{index}]"
            message = _object(item, place)
            role = _bedrock_role(message, place)
            messages.append(Message(role, _converse_text(_field(message, "content", list, place), f"{place}.content")))
        answer = _converse_answer(row)
    else:
        raise ConversationSkipped(UNKNOWN_BODY)
    if answer is not None:
        messages.append(Message("assistant", answer))
    return messages


def _bedrock_role(message: dict[str, Any], where: str) -> Role:
    role = _field(message, "role", str, where)
    if role not in ("user", "assistant"):
        raise ConversationError(f"{where}.role", f"unknown role {role!r}; known: user, assistant")
    return role  # type: ignore[return-value]


def _converse_text(blocks: list[Any], where: str) -> str:
    """The text of Converse content blocks (`{"text": ...}`); other blocks are skipped or passed over."""
    texts = []
    for index, item in enumerate(blocks):
        place = f"{where}[{index}]"
        block = _object(item, place)
        if _CONVERSE_TOOL_BLOCKS & block.keys():
            raise ConversationSkipped(TOOL_USE)
        if _IGNORED_CONVERSE_BLOCKS & block.keys():
            continue
        if "text" not in block:
            raise ConversationSkipped(NOT_TEXT)
        texts.append(_field(block, "text", str, place))
    return "".join(texts)


def _bedrock_output(row: dict[str, Any]) -> dict[str, Any] | None:
    """The logged response body, or None when the record holds none."""
    if row.get("output") is None:
        return None
    output = _object(row["output"], "output")
    if output.get("outputBodyJson") is None:
        return None
    return _field(output, "outputBodyJson", dict, "output")


def _converse_answer(row: dict[str, Any]) -> str | None:
    body = _bedrock_output(row)
    if body is None:
        return None
    where = "output.outputBodyJson"
    _check_stop_reason(body.get("stopReason"))
    message = _field(_field(body, "output", dict, where), "message", dict, f"{where}.output")
    place = f"{where}.output.message"
    _bedrock_role(message, place)
    return _converse_text(_field(message, "content", list, place), f"{place}.content")


def _check_stop_reason(reason: Any) -> None:
    """Skips an answer that stopped at its token limit or to call a tool."""
    if isinstance(reason, str) and reason in _CUT_OFF_STOP_REASONS:
        raise ConversationSkipped(CUT_OFF)
    if reason == "tool_use":
        raise ConversationSkipped(TOOL_USE)


def _anthropic_system(system: Any, where: str) -> list[Message]:
    if system is None:
        return []
    if isinstance(system, str):
        return [Message("system", system)]
    if not isinstance(system, list):
        raise ConversationError(where, f"must be a string or an array of text blocks, got {_json_type(system)}")
    return [Message("system", _anthropic_blocks(system, where))]


def _anthropic_blocks(content: list[Any], where: str) -> str:
    texts = []
    for index, item in enumerate(content):
        place = f"{where}[{index}]"
        block = _object(item, place)
        kind = _field(block, "type", str, place)
        if kind in _ANTHROPIC_TOOL_BLOCKS:
            raise ConversationSkipped(TOOL_USE)
        if kind in _IGNORED_ANTHROPIC_BLOCKS:
            continue
        if kind != "text":
            raise ConversationSkipped(NOT_TEXT)
        texts.append(_field(block, "text", str, place))
    return "".join(texts)


def _anthropic_message(item: Any, where: str) -> Message:
    message = _object(item, where)
    role = _bedrock_role(message, where)
    content = message.get("content")
    if isinstance(content, str):
        return Message(role, content)
    if not isinstance(content, list):
        raise ConversationError(f"{where}.content", f"must be a string or an array of blocks, got {_json_type(content)}")
    return Message(role, _anthropic_blocks(content, f"{where}.content"))


def _anthropic_answer(row: dict[str, Any]) -> str | None:
    body = _bedrock_output(row)
    if body is None:
        return None
    where = "output.outputBodyJson"
    _check_stop_reason(body.get("stop_reason"))
    return _anthropic_blocks(_field(body, "content", list, where), f"{where}.content")
