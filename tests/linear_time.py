"""A size-scaled check that a parser of outside text takes linear time, for tests.

A wall-clock threshold flakes on a busy machine; a ratio does not: an input `FACTOR` times larger must take at
most `MAX_RATIO` times as long. Linear work gives about 8, quadratic 64, cubic 512. Each time is the best of a
few rounds of enough calls to take a measurable time, which discounts a busy moment; the texts stay within a
CPU's first-level cache (a few thousand characters), where the hardware adds no growth of its own (past it,
linear code on this project's machines took 20x for 8x the input). Smaller pairs come first, so cubic work
fails before its larger input would take minutes.
"""

from __future__ import annotations

import gc
import time
from typing import Callable

FACTOR = 8
MAX_RATIO = 24.0
SIZES = (64, 512)  # the smaller text of each pair, in characters
MEASURABLE_S = 0.002
ROUNDS = 5
ATTEMPTS = 3


def _seconds_per_call(function: Callable[[str], object], small: str, large: str, calls: int) -> tuple[float, float]:
    """The best time per call on `small` (`calls` calls a round) and on `large` (FACTOR times fewer), rounds
    alternating between the two so that a busy moment of the machine slows both alike."""
    best = [float("inf"), float("inf")]
    for _ in range(ROUNDS):
        for index, (text, count) in enumerate(((small, calls), (large, max(1, calls // FACTOR)))):
            started = time.perf_counter()
            for _ in range(count):
                function(text)
            best[index] = min(best[index], (time.perf_counter() - started) / count)
    return best[0], best[1]


def assert_linear_time(function: Callable[[str], object], make_input: Callable[[int], str]) -> None:
    """Fails when `function(make_input(n))` grows faster than linearly in n.

    Args:
        function: The parser, called with one text.
        make_input: A text of about n characters (a run of newlines, dots, ...).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        for size in SIZES:
            small, large = make_input(size), make_input(size * FACTOR)
            calls = 1
            while calls < 1 << 20:
                started = time.perf_counter()
                for _ in range(calls):
                    function(small)
                if time.perf_counter() - started >= MEASURABLE_S:
                    break
                calls *= 2
            # Load only ever adds time: a linear parser shows its ratio in one of a few tries, a quadratic
            # one (64x) never does.
            for _ in range(ATTEMPTS):
                base, larger = _seconds_per_call(function, small, large, calls)
                if larger <= MAX_RATIO * base:
                    break
            assert larger <= MAX_RATIO * base, (
                f"{getattr(function, '__name__', function)}: {base * 1e6:.1f} us at {len(small)} characters, "
                f"{larger * 1e6:.1f} us at {len(large)}: {larger / base:.0f}x for {FACTOR}x the input "
                f"(linear work: about {FACTOR}x)"
            )
    finally:
        if enabled:
            gc.enable()
