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

import itertools
import math
from dataclasses import dataclass
from typing import Any

import msgpack
import trio

REPLY_MAX_BYTES = 1024 * 1024  # an admin reply is a few dozen bytes
DEFAULT_TIMEOUT_SECONDS = 2.0
_request_ids = itertools.count(1)


class ClockFaultError(Exception):
    """The node did not apply the clock change (unreachable, refused, bad reply)."""


@dataclass(slots=True, frozen=True)
class ClockSetting:
    offset: float = 0.0  # seconds added to the node's clock
    rate: float = 1.0  # 2.0: the node's time runs twice as fast as the host's

    def describe(self) -> dict[str, float]:
        return {"offset": self.offset, "rate": self.rate}


NORMAL_CLOCK = ClockSetting()


def _frame(message: dict[str, Any]) -> bytes:
    body = msgpack.packb(message, use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


async def _read_frame(stream: trio.SocketStream, buffer: bytearray) -> dict[str, Any]:
    while True:
        if len(buffer) >= 4:
            length = int.from_bytes(buffer[:4], "big")
            if length > REPLY_MAX_BYTES:
                raise ClockFaultError(f"reply frame of {length} bytes is too large")
            if len(buffer) >= 4 + length:
                body = bytes(buffer[4 : 4 + length])
                del buffer[: 4 + length]
                try:
                    reply = msgpack.unpackb(
                        body,
                        raw=False,
                        max_array_len=1000,
                        max_map_len=1000,
                        max_str_len=REPLY_MAX_BYTES,
                        max_bin_len=REPLY_MAX_BYTES,
                    )
                except (ValueError, TypeError, msgpack.UnpackException) as error:
                    raise ClockFaultError(f"undecodable reply: {error}") from None
                if not isinstance(reply, dict):
                    raise ClockFaultError(f"reply is not a map: {reply!r}")
                return reply
        data = await stream.receive_some(65536)
        if not data:
            raise ClockFaultError("the node closed the connection")
        buffer += data


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
    request_id = next(_request_ids)
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                buffer = bytearray()
                await stream.send_all(
                    _frame(
                        {"type": "hello", "cluster": cluster_id, "from": "nemesis", "role": "admin"}
                    )
                )
                hello = await _read_frame(stream, buffer)
                if hello.get("type") != "hello_ok":
                    raise ClockFaultError(f"{host}:{port} refused the admin hello: {hello}")
                await stream.send_all(
                    _frame(
                        {
                            "type": "admin",
                            "id": request_id,
                            "action": "clock",
                            "offset": float(setting.offset),
                            "rate": float(setting.rate),
                        }
                    )
                )
                reply = await _read_frame(stream, buffer)
    except trio.TooSlowError:
        raise ClockFaultError(f"{host}:{port} did not answer within {timeout} s") from None
    except (OSError, trio.BrokenResourceError) as error:
        raise ClockFaultError(f"cannot reach {host}:{port}: {error}") from None
    if reply.get("type") != "admin_reply" or reply.get("id") != request_id:
        raise ClockFaultError(f"{host}:{port} sent an unexpected reply: {reply}")
    if reply.get("ok") is not True:
        raise ClockFaultError(
            f"{host}:{port} refused the clock change: {reply.get('error')} {reply.get('reason', '')}".strip()
        )
    return reply


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
