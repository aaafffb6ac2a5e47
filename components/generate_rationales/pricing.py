"""Estimated teacher cost for models with a published per-token price."""

from __future__ import annotations

from kfp_distill._implementation.teacher_reference import TeacherReference

# USD per million tokens (prompt, completion): standard (non-batch) tier, uncached input, prompts up to
# 200k tokens; from the vendors' public price pages (platform.openai.com/docs/pricing,
# ai.google.dev/gemini-api/docs/pricing) as of 2025-08-01. Prices change: an estimate, not a bill.
PRICES_PER_MILLION_TOKENS: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
}


def price_per_million_tokens(model: str) -> tuple[float, float] | None:
    """The (prompt, completion) price of a model name, or None when unknown.

    Dated snapshots and provider prefixes count as their model (`gpt-4o-mini-2024-07-18`,
    `google/gemini-2.5-flash`); the longest matching name wins, so `gpt-4o-mini` is not priced as `gpt-4o`.
    """
    name = model.strip().lower().rsplit("/", 1)[-1]
    matches = [known for known in PRICES_PER_MILLION_TOKENS if name == known or name.startswith(known + "-")]
    return PRICES_PER_MILLION_TOKENS[max(matches, key=len)] if matches else None


def estimated_cost_usd(teacher: TeacherReference, prompt_tokens: int, completion_tokens: int) -> float | None:
    """The cost of so many tokens from a hosted teacher (an endpoint, Vertex AI) whose model has a known price,
    or None (a model run here is not billed by the token)."""
    prices = price_per_million_tokens(teacher.model) if teacher.is_hosted else None
    if prices is None:
        return None
    prompt_price, completion_price = prices
    return (prompt_tokens * prompt_price + completion_tokens * completion_price) / 1_000_000
