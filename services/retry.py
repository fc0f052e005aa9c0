"""Retry timing shared by every client that retries (caption endpoints, Triton, the Celery tasks)."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None,
                  retry_after: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): exponential, jittered, capped.

    Half the exponential step is fixed and half random, so retries spread out
    without ever collapsing to zero; a server's Retry-After is a lower bound.
    """
    step = min(cap, base * (2**attempt))
    delay = step / 2 + (rng or random).uniform(0, step / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(cap, delay) if cap > 0 else delay
