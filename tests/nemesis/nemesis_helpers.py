"""Helpers for the nemesis tests: ports in this area's range, a frame sink, a frame client.

The nemesis tests use ports 18000-18999 only (other areas test in parallel on this
machine), found free by binding and handed out once per session.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import pytest
import trio

PORT_RANGE = range(18000, 19000)
_next_port = [PORT_RANGE.start]


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` consecutive free ports from this area's range, never handed out twice."""
    port = _next_port[0]
    while port + count <= PORT_RANGE.stop:
        candidates = list(range(port, port + count))
        if all(_is_free(candidate) for candidate in candidates):
            _next_port[0] = port + count
            return candidates
        port += 1
    pytest.skip("no free ports left in 18000-18999")


def free_port() -> int:
    return free_ports(1)[0]


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


@dataclass
class FrameSink:
    """A tiny server: records every frame per connection; answers each first frame."""

    port: int
    answer_first: bytes | None = b"hello_ok"
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    connections: int = 0
    arrived: trio.Event = field(default_factory=trio.Event)

    def payloads(self, connection: int | None = None) -> list[bytes]:
        return [p for c, p in self.frames if connection is None or c == connection]

    async def wait_for(self, count: int) -> None:
        while len(self.frames) < count:
            self.arrived = trio.Event()
            await self.arrived.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        async with trio.open_nursery() as nursery:
            task_status.started()
            for listener in listeners:
                nursery.start_soon(self._accept, listener, nursery)

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        async with listener:
            while True:
                stream = await listener.accept()
                nursery.start_soon(self._serve, stream)

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        connection = self.connections
        buffer = bytearray()
        first = True
        try:
            async with stream:
                while True:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                    while len(buffer) >= 4:
                        length = int.from_bytes(buffer[:4], "big")
                        if len(buffer) < 4 + length:
                            break
                        self.frames.append((connection, bytes(buffer[4 : 4 + length])))
                        del buffer[: 4 + length]
                        self.arrived.set()
                        if first and self.answer_first is not None:
                            await stream.send_all(frame(self.answer_first))
                        first = False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return


async def read_frame(stream: trio.SocketStream, buffer: bytearray) -> bytes | None:
    """One frame from ``stream`` (None at end of stream)."""
    while True:
        if len(buffer) >= 4:
            length = int.from_bytes(buffer[:4], "big")
            if len(buffer) >= 4 + length:
                payload = bytes(buffer[4 : 4 + length])
                del buffer[: 4 + length]
                return payload
        data = await stream.receive_some(65536)
        if not data:
            return None
        buffer += data


@dataclass
class FakeAdminNode:
    """Answers a node's admin protocol: hello -> hello_ok, admin -> admin_reply.

    ``mode``: "ok" (apply), "refuse" (ok: False), "mismatch" (reject the hello's cluster),
    "silent" (read and never answer), "closed" (close at once). Every clock request received is kept in ``clock``.
    """

    port: int
    cluster_id: str = "test-cluster"
    mode: str = "ok"
    hellos: list[dict] = field(default_factory=list)
    clock: list[dict] = field(default_factory=list)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        task_status.started()
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        import msgpack

        if self.mode == "closed":  # like a node that is not serving yet
            await stream.aclose()
            return
        buffer = bytearray()
        async with stream:
            try:
                while True:
                    payload = await read_frame(stream, buffer)
                    if payload is None:
                        return
                    message = msgpack.unpackb(payload, raw=False)
                    if self.mode == "silent":
                        continue
                    if message.get("type") == "hello":
                        self.hellos.append(message)
                        if self.mode == "mismatch" or message.get("cluster") != self.cluster_id:
                            reply = {"type": "error", "error": "cluster_mismatch"}
                        else:
                            reply = {"type": "hello_ok", "node": "n1"}
                    elif message.get("type") == "admin":
                        self.clock.append(message)
                        ok = self.mode == "ok"
                        reply = {"type": "admin_reply", "id": message.get("id"), "ok": ok}
                        if not ok:
                            reply["error"] = "unsupported"
                    else:
                        reply = {"type": "error", "error": "malformed"}
                    await stream.send_all(frame(msgpack.packb(reply, use_bin_type=True)))
            except trio.BrokenResourceError:
                return
