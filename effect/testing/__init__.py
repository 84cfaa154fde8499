"""Test helpers for programs built on `effect`.

`TestClock` replaces the `Clock` service with virtual time that only moves when the
test says so (`adjust`, `set_time`), so retries, timeouts and sleeps are
deterministic and instant.

`effect.testing.strategies` (it needs `hypothesis`, so it is imported on its own)
generates random effect programs with resources, finalizers, failures, defects,
interruptions and forks, together with an oracle of what running them must show:
see docs/effect/testing.md.
"""

from effect.testing.clock import TestClock

__all__ = ["TestClock"]
