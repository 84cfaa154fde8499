"""Test helpers for programs built on `effect`.

`TestClock` replaces the `Clock` service with virtual time that only moves when the
test says so (`adjust`, `set_time`), so retries, timeouts and sleeps are
deterministic and instant.
"""

from effect.testing.clock import TestClock

__all__ = ["TestClock"]
