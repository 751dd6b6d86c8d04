"""Clock faults without root: ask a node to skew its own Trio clock.

Jepsen bumps and strobes clocks with ``date`` as root. A raftlab node instead runs on a
Trio clock whose offset (seconds added) and rate (multiplier of elapsed time) an admin
request changes (ARCHITECTURE.md "Wire"). The nemesis sends that request itself, straight
to the node's port (never through a proxy, so a partition cannot block a heal):

    hello  {"type": "hello", "cluster": ID, "from": "nemesis", "role": "admin"} -> hello_ok
    admin  {"type": "admin", "id": N, "action": "clock", "offset": S, "rate": R} -> admin_reply

Raft's safety must not depend on clocks; these faults only move timeouts around.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import trio

from nemesis.admin import DEFAULT_TIMEOUT_SECONDS, AdminError, admin_connection


class ClockFaultError(AdminError):
    """The node did not apply the clock change (unreachable, refused, bad reply)."""


@dataclass(slots=True, frozen=True)
class ClockSetting:
    offset: float = 0.0  # seconds added to the node's clock
    rate: float = 1.0  # 2.0: the node's time runs twice as fast as the host's

    def describe(self) -> dict[str, float]:
        return {"offset": self.offset, "rate": self.rate}


NORMAL_CLOCK = ClockSetting()


async def set_clock(
    host: str,
    port: int,
    *,
    cluster_id: str,
    setting: ClockSetting,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Set one node's clock offset and rate; returns the node's ``admin_reply``."""
    if not math.isfinite(setting.offset) or not math.isfinite(setting.rate) or setting.rate <= 0:
        raise ValueError(f"clock setting must be finite with a positive rate: {setting}")
    try:
        async with admin_connection(host, port, cluster_id=cluster_id, timeout=timeout) as admin:
            return await admin.request(
                "clock", offset=float(setting.offset), rate=float(setting.rate)
            )
    except ClockFaultError:
        raise
    except AdminError as error:
        raise ClockFaultError(str(error)) from None


async def bump(
    host: str, port: int, *, cluster_id: str, offset: float, rate: float = 1.0
) -> ClockSetting:
    """Jump the node's clock by ``offset`` seconds (forwards or backwards)."""
    setting = ClockSetting(offset=offset, rate=rate)
    await set_clock(host, port, cluster_id=cluster_id, setting=setting)
    return setting


async def reset(host: str, port: int, *, cluster_id: str) -> ClockSetting:
    """Back to the host's clock: no offset, normal rate."""
    await set_clock(host, port, cluster_id=cluster_id, setting=NORMAL_CLOCK)
    return NORMAL_CLOCK


async def strobe(
    host: str,
    port: int,
    *,
    cluster_id: str,
    delta: float,
    period: float,
    duration: float,
) -> int:
    """Flip the node's clock between +``delta`` and 0 every ``period`` seconds for
    ``duration`` seconds (Jepsen's strobe), ending at 0 offset. Returns the flip count."""
    if period <= 0 or duration < 0:
        raise ValueError(f"strobe needs period > 0 and duration >= 0, got {period}, {duration}")
    flips = 0
    with trio.move_on_after(duration):
        while True:
            offset = delta if flips % 2 == 0 else 0.0
            await set_clock(host, port, cluster_id=cluster_id, setting=ClockSetting(offset=offset))
            flips += 1
            await trio.sleep(period)
    await reset(host, port, cluster_id=cluster_id)
    return flips
