"""`Retry`: how a failing step is tried again."""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

__all__ = ["Retry"]


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value}")


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value}")


@attrs.frozen
class Retry:
    """Retry policy of a step: up to `max_attempts` attempts in all, waiting
    `backoff * 2**(n-1)` seconds after failed attempt `n`, capped at `max_delay`, with
    `jitter` (a fraction, e.g. 0.1 for +-10%). `retry_on(error)` decides which errors
    are worth another attempt (all by default). Crashed attempts count, so
    `max_attempts` holds across process crashes.

    Examples:
        >>> Retry(max_attempts=3, backoff=1.0).delay(2, random.Random(0))
        2.0
    """

    max_attempts: int = attrs.field(default=3, validator=_positive)
    backoff: float = attrs.field(default=1.0, validator=_non_negative)
    max_delay: float = attrs.field(default=3600.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.0, validator=_non_negative)
    retry_on: Callable[[object], bool] | None = None

    def delay(self, failed_attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt `failed_attempt` (1-based)."""
        try:
            raw = min(self.max_delay, self.backoff * 2 ** (failed_attempt - 1))
        except OverflowError:  # far past the cap
            raw = self.max_delay
        if self.jitter:
            raw *= rng.uniform(1 - self.jitter, 1 + self.jitter)
        return max(0.0, float(raw))

    def should_retry(self, error: object, failed_attempts: int) -> bool:
        """True if another attempt is allowed after `failed_attempts` failures."""
        if failed_attempts >= self.max_attempts:
            return False
        return self.retry_on is None or bool(self.retry_on(error))


NO_RETRY = Retry(max_attempts=1)
