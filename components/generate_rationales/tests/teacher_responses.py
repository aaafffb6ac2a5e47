"""Hypothesis strategies for what a teacher's server may send, and the property every answer read from one
must have: checked, cached, and read back without an error, on every later run."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from kfp_distill.components.generate_rationales.answer_format import parse_answer, unusable_reason
from kfp_distill.components.generate_rationales.backends.base import (
    MAX_COMPLETION_CHARS,
    MAX_TOKEN_COUNT,
    Completion,
)
from kfp_distill.components.generate_rationales.cache import AnswerCache

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
any_json = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def or_any(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly `valid`, sometimes any JSON value in its place."""
    return st.integers(0, 4).flatmap(lambda draw: any_json if draw == 0 else valid)


# Mostly a count, sometimes none, one out of range, or anything else.
token_counts = or_any(st.integers(0, 10**6) | st.none() | st.integers(-(2**70), 2**70))


def maybe(**fields: st.SearchStrategy) -> st.SearchStrategy:
    """An object whose fields are each there or not."""
    return st.fixed_dictionaries({}, optional=fields)


def assert_cached_and_read_back(completion: Completion, folder: Path) -> None:
    """A completion a backend returned has checked fields, and reads back from the cache and parses."""
    assert type(completion.text) is str and len(completion.text) <= MAX_COMPLETION_CHARS
    for count in (completion.prompt_tokens, completion.completion_tokens):
        assert type(count) is int and 0 <= count <= MAX_TOKEN_COUNT
    assert completion.finish_reason is None or type(completion.finish_reason) is str
    with AnswerCache(folder / "properties.sqlite") as cache:
        cache.put("key", "teacher", completion, 0.5)
        assert cache.get("key").completion == completion
    for answer_format in ("json", "text"):
        parse_answer(completion.text, answer_format)
        unusable_reason(completion.text, completion.finish_reason, answer_format)
