"""A Trio clock whose offset and rate can be changed while the node runs (issue 4).

Jepsen skews clocks with ``date -s`` as root; we cannot, and do not need to: the node's
whole sense of time (ticks, election and heartbeat timers, request timeouts) comes from the
Trio clock of its ``trio.run``, so replacing that clock is a clock fault without root.

Time on this clock is ``base(now) + offset`` where ``base`` advances at ``rate`` times the
speed of the host's monotonic clock (``rate`` 2.0: timers fire twice as fast; 0.5: half as
fast) and ``offset`` is a jump (a "bump", forwards or backwards). Changing the rate rebases
``base`` so that time never jumps because of a rate change; only the offset jumps.

Raft's safety never depends on this clock: timers only decide *when* a node starts an
election or sends a heartbeat, never whether a vote or a commit is valid (§5.2, §9).
A skewed node may start needless elections; pre-vote and check-quorum keep those from
disrupting a healthy leader. raftnode has no leader leases, so no read trusts elapsed time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import trio

MIN_RATE = 0.001
MAX_RATE = 1000.0


class ClockError(ValueError):
    """An offset or rate that cannot be applied (not finite, rate not positive…)."""


class SkewableClock(trio.abc.Clock):
    """``trio.abc.Clock`` with a run-time adjustable offset (seconds) and rate."""

    def __init__(self, monotonic: Callable[[], float] = time.perf_counter) -> None:
        self._monotonic = monotonic
        self._real_anchor = monotonic()
        self._base_anchor = 0.0  # base time at _real_anchor
        self._rate = 1.0
        self._offset = 0.0

    # --- trio.abc.Clock --------------------------------------------------------------

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return self._base(self._monotonic()) + self._offset

    def deadline_to_sleep_time(self, deadline: float) -> float:
        remaining = deadline - self.current_time()
        if remaining <= 0:
            return 0.0
        # Trio sleeps in host seconds; one host second advances this clock by ``rate``.
        return remaining / self._rate

    # --- adjustments -----------------------------------------------------------------

    @property
    def offset(self) -> float:
        return self._offset

    @property
    def rate(self) -> float:
        return self._rate

    def set(self, *, offset: float | None = None, rate: float | None = None) -> None:
        """Set the absolute offset (seconds) and/or the rate; None leaves one unchanged.

        ``set(offset=0.0, rate=1.0)`` is a reset: no more jump, normal speed from now on
        (time that already ran fast or slow stays elapsed: a clock never un-ticks).
        """
        if offset is not None:
            if not math.isfinite(offset):
                raise ClockError(f"clock offset must be finite, got {offset!r}")
        if rate is not None:
            if not math.isfinite(rate) or not MIN_RATE <= rate <= MAX_RATE:
                raise ClockError(f"clock rate must be in [{MIN_RATE}, {MAX_RATE}], got {rate!r}")
            now = self._monotonic()
            self._base_anchor = self._base(now)
            self._real_anchor = now
            self._rate = rate
        if offset is not None:
            self._offset = offset

    def _base(self, now: float) -> float:
        return self._base_anchor + (now - self._real_anchor) * self._rate
