"""How the teacher writes an answer, how it is read back, and whether its rationale is worth learning.

Two formats: `json`, an object `{"rationale": ..., "answer": ...}` that backends with structured output
(llama.cpp grammars, `response_format` of OpenAI-compatible servers, Gemini's response schema) are held
to by a JSON schema, so every answer parses by construction; and `text`, a rationale ending "The answer is
<answer>.", for backends and servers without structured output. `auto` picks `json` where the backend
supports it.
"""

from __future__ import annotations

import json
import re
from typing import Sequence

from kfp_distill._implementation.answers import normalize_text, split_completion

AUTO, JSON, TEXT = "auto", "json", "text"
ANSWER_FORMATS = (AUTO, JSON, TEXT)
# Shorter than this is no explanation ("Yes."); the schema makes the teacher write at least this much.
MIN_RATIONALE_CHARS = 20
# A rationale with fewer words of its own (beyond the answer's and function words) only restates the answer.
MIN_OWN_WORDS = 3
_FUNCTION_WORDS = frozenset(
    "a an the is are was were be been it its this that these those so thus therefore hence because since as "
    "of to in on for and or but not answer correct right final class label option choice which".split()
)


def resolve_answer_format(answer_format: str, supports_structured_output: bool) -> str:
    """The format a run uses: `auto` is `json` where the backend can be held to a schema, else `text`.

    Raises:
        ValueError: An unknown format.
    """
    chosen = (answer_format or AUTO).strip().lower()
    if chosen not in ANSWER_FORMATS:
        raise ValueError(f"answer_format must be one of {', '.join(ANSWER_FORMATS)}; got {answer_format!r}")
    if chosen == AUTO:
        return JSON if supports_structured_output else TEXT
    return chosen


def answer_schema(classes: Sequence[str] = ()) -> str:
    """The JSON schema of a structured answer, as JSON text (it is part of the answer-cache key).

    The rationale comes first, so the teacher reasons before it answers; with known classes the answer
    can only be one of them.
    """
    answer: dict = {"type": "string", "enum": list(classes)} if classes else {"type": "string", "minLength": 1}
    schema = {
        "type": "object",
        "properties": {"rationale": {"type": "string", "minLength": MIN_RATIONALE_CHARS}, "answer": answer},
        "required": ["rationale", "answer"],
        "additionalProperties": False,
    }
    return json.dumps(schema, ensure_ascii=False)


def render_answer(rationale: str, answer: str, answer_format: str) -> str:
    """A demonstration's answer turn in the run's format."""
    if answer_format == JSON:
        return json.dumps({"rationale": rationale.strip(), "answer": answer}, ensure_ascii=False)
    return f"{rationale.strip()} The answer is {answer}" + ("" if answer.endswith(".") else ".")


def parse_answer(text: str, answer_format: str) -> tuple[str, str | None]:
    """Splits a teacher answer into (rationale, answer); the answer is None when there is none to read.

    A JSON answer is the first JSON object in the text with string fields `rationale` and `answer`. Any text
    at all is read (never an error): it may come back from the cache on every later run.
    """
    if answer_format != JSON:
        return split_completion(text)
    rationale, answer, _ = _read_json_answer(text)
    return rationale, answer


def _read_json_answer(text: str) -> tuple[str, str | None, str]:
    """(rationale, answer, why there is no answer: "" or a parenthesised note) of a JSON answer."""
    start = text.find("{")
    if start < 0:
        return text.strip(), None, ""
    try:
        value, _ = json.JSONDecoder().raw_decode(text, start)
    except RecursionError:  # deeper than the interpreter's recursion limit
        return text.strip(), None, " (nested too deep)"
    except ValueError:
        return text.strip(), None, ""
    if not isinstance(value, dict) or not all(isinstance(value.get(key), str) for key in ("rationale", "answer")):
        return text.strip(), None, ""
    answer = " ".join(value["answer"].split())
    return value["rationale"].strip(), (answer or None), ""


def unusable_reason(text: str, finish_reason: str | None, answer_format: str) -> str | None:
    """Why a teacher answer cannot be used, or None when it has a rationale and an answer."""
    if answer_format == JSON:
        rationale, answer, note = _read_json_answer(text)
        reason = "no JSON answer with a rationale and an answer" + note
    else:
        rationale, answer = split_completion(text)
        reason = "no 'The answer is ...' line"
    if answer is None:
        return reason + (" (cut off at max_new_tokens)" if finish_reason == "length" else "")
    return None if rationale else "empty rationale"


def restates_answer(rationale: str, answer: str) -> bool:
    """Whether a rationale says nothing but its answer ("The answer is X because it is X")."""
    answer_words = set(normalize_text(answer).split())
    own = {word for word in normalize_text(rationale).split() if word not in answer_words | _FUNCTION_WORDS}
    return len(own) < MIN_OWN_WORDS
