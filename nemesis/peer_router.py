"""Hello routers: one address per node that any peer may dial, still through its proxy.

A node learns how to dial a member it was not started with from the configuration
(``member add n4=HOST:PORT``): one address, the same for every node. But link faults
act per directed link (``nemesis.proxy``: node i reaches j through the proxy i→j), so a
member added later must not be dialled directly, or partitions never reach it.

A `HelloRouter` listens on that one address for its node. Every peer connection begins
with a hello frame naming its sender (ARCHITECTURE.md "Wire": a 4-byte big-endian length,
then a msgpack map ``{"type": "hello", ..., "from": SENDER, ...}``), so the router reads
that first frame, dials the proxy SENDER→node (from ``routes``) and replays the frame
into it, then pipes bytes both ways. Every fault stays the proxy's: the router only
mirrors how each side ended (a reset from the proxy becomes a reset to the dialler, an
end of stream an end of stream), so a node still tells a cut from a crash
(``peer_connection_reset``). A first frame that is not a hello from a known sender gets
the connection reset (a hello that passed would be refused by the node anyway).

Like the HTTP peer mesh (``nemesis.http_peer``), this reads the one part of the protocol
that names the sender; nothing else of a frame is looked at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import msgpack
import trio

from nemesis.proxy import accept_connections, close_streams, set_nodelay

Address = tuple[str, int]
HELLO_MAX_BYTES = 64 * 1024  # a hello is a few dozen bytes
HELLO_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 2.0
READ_CHUNK_BYTES = 256 * 1024


def hello_sender(frame_body: bytes) -> str | None:
    """The ``from`` of a hello frame's body, None for anything else."""
    try:
        message = msgpack.unpackb(
            frame_body,
            raw=False,
            max_array_len=16,
            max_map_len=16,
            max_str_len=HELLO_MAX_BYTES,
            max_bin_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    if not isinstance(message, dict) or message.get("type") != "hello":
        return None
    sender = message.get("from")
    return sender if isinstance(sender, str) else None


class HelloRouter:
    """Routes connections to ``node`` by their hello's sender: ``routes[sender]`` is the
    address of the proxy sender→node."""

    def __init__(self, node: str, listen: Address, routes: Mapping[str, Address]) -> None:
        self.node = node
        self.listen = listen
        self.routes = dict(routes)
        self.routed: dict[str, int] = {}  # sender -> connections routed (for tests, logs)
        self.refused = 0
        self._listeners: list[trio.SocketListener] = []

    def __repr__(self) -> str:
        return f"HelloRouter({self.node} at {self.listen[0]}:{self.listen[1]})"

    async def bind(self) -> None:
        if not self._listeners:
            host, port = self.listen
            self._listeners = await trio.open_tcp_listeners(port, host=host)

    async def aclose(self) -> None:
        listeners, self._listeners = self._listeners, []
        with trio.CancelScope(shield=True):
            for listener in listeners:
                await listener.aclose()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.bind()
        try:
            async with trio.open_nursery() as nursery:
                for listener in self._listeners:
                    nursery.start_soon(accept_connections, self, listener, nursery, self._route)
                task_status.started()
        finally:
            await self.aclose()

    async def _read_hello(self, client: trio.SocketStream) -> tuple[bytes, str | None]:
        buffer = bytearray()
        with trio.move_on_after(HELLO_TIMEOUT_SECONDS):
            while True:
                if len(buffer) >= 4:
                    length = int.from_bytes(buffer[:4], "big")
                    if length > HELLO_MAX_BYTES:
                        return bytes(buffer), None
                    if len(buffer) >= 4 + length:
                        return bytes(buffer), hello_sender(bytes(buffer[4 : 4 + length]))
                data = await client.receive_some(READ_CHUNK_BYTES)
                if not data:
                    break
                buffer += data
        return bytes(buffer), None

    async def _route(self, client: trio.SocketStream) -> None:
        streams = [client]
        reset = False
        try:
            try:
                head, sender = await self._read_hello(client)
            except (trio.BrokenResourceError, OSError):
                return
            route = self.routes.get(sender) if sender is not None else None
            if route is None:
                self.refused += 1
                reset = True
                return
            try:
                with trio.fail_after(CONNECT_TIMEOUT_SECONDS):
                    upstream = await trio.open_tcp_stream(*route)
            except (OSError, trio.TooSlowError):
                reset = True  # the proxy is gone: the harness is shutting down
                return
            streams.append(upstream)
            self.routed[sender] = self.routed.get(sender, 0) + 1
            set_nodelay(client, upstream)
            ended: list[bool] = []  # one entry per direction: True when it ended in a reset
            async with trio.open_nursery() as nursery:

                async def pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
                    try:
                        while True:
                            data = await source.receive_some(READ_CHUNK_BYTES)
                            if not data:
                                ended.append(False)
                                break
                            await sink.send_all(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        ended.append(True)
                    nursery.cancel_scope.cancel()  # one side ended: so does the other

                try:
                    await upstream.send_all(head)
                except (trio.BrokenResourceError, OSError):
                    reset = True
                    return
                nursery.start_soon(pump, client, upstream)
                nursery.start_soon(pump, upstream, client)
            reset = any(ended)
        finally:
            await close_streams(streams, reset=reset)


class RouterSet:
    """One `HelloRouter` per node, served together under the campaign's nursery."""

    def __init__(self, routers: Mapping[str, HelloRouter]) -> None:
        self.routers = dict(routers)

    def address(self, node: str) -> Address:
        return self.routers[node].listen

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            for router in self.routers.values():
                await router.bind()
            async with trio.open_nursery() as nursery:
                for router in self.routers.values():
                    await nursery.start(router.run)
                task_status.started()
        finally:
            for router in self.routers.values():
                await router.aclose()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[RouterSet]:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.run)
            try:
                yield self
            finally:
                nursery.cancel_scope.cancel()
