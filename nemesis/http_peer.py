"""Link faults for peers that talk HTTP to each other (etcd's rafthttp and the like).

Such systems derive member identities from their advertised peer URLs, so every member
must see the same URL for a given member: one proxy *per destination member* (not per
directed link, as `nemesis.proxy.ProxyMesh` does for raftnode). Each member advertises
its proxy's address; the proxy forwards to where the member really listens.

Who is calling? Every connection starts with an HTTP/1.1 request head from the dialing
member. The proxy reads that head (without consuming anything the destination would not
get) and asks a target-supplied ``identify(destination, headers)`` which member sent it
(etcd names itself in ``X-Server-From``). The proxy knows nothing else about HTTP: after
the head, bytes are forwarded as they come.

Direction. Bytes from the dialing member to the destination belong to the link
dialer -> destination; bytes coming back belong to destination -> dialer. (etcd's stream
connections are opened by the *receiver* of the messages: member i GETs
``/raft/stream/...`` from j and j's messages to i flow in the response; pipeline POSTs
from i to j carry i's messages to j. Both come out right under this rule.)

Faults act on byte chunks, since an HTTP byte stream has no message boundaries the proxy
can see:

- blocked (a partition's grudge: "j gets nothing from i"), or cut ``hold`` (and any other
  non-reset cut mode, e.g. a black hole): that direction stops being read and forwarded,
  so the sender's bytes wait in kernel buffers as on a silent network path; a connection
  whose first bytes are held is not even dialled through to the destination. The
  sender's own timeouts (etcd: 5 s on stream reads) end such connections; what is still
  held when the fault heals flows then, as TCP would retransmit it.
- cut ``reset``: every connection between the two members (either dialer) is reset, and
  new ones are reset as soon as their sender is known.
- delay: each chunk is held ``delay`` +/- ``jitter`` seconds (seeded per link), in order.
- loss: refused (``ValueError``): dropping bytes from an HTTP stream corrupts it, which
  no network does; there is no honest per-message loss without parsing the protocol.

A connection whose sender cannot be named (etcd's ``/version``, ``/members`` and
``/raft/probing`` requests carry no sender header) passes only while no partition or cut
touches its destination: while one does, such connections are reset (refusing a
connection is always something a network may do; letting it through could carry state
across a partition).
"""

from __future__ import annotations

import functools
import logging
import random
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from nemesis.proxy import (
    CUT_MODES,
    CUT_RESET,
    LinkFaults,
    ProxyError,
    accept_connections,
    close_streams,
    set_linger_reset,
    set_nodelay,
)

logger = logging.getLogger(__name__)

Address = tuple[str, int]
Link = tuple[str, str]
# identify(destination, headers with lower-case names) -> the sending node, or None
Identify = Callable[[str, Mapping[str, str]], str | None]

READ_CHUNK_BYTES = 256 * 1024
MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 2.0
QUEUED_CHUNKS = 64  # per direction; beyond it the proxy stops reading (back-pressure)
# The partition fault's modes (nemesis.faults.partition); both hold bytes here.
PARTITION_MODES = ("drop", "blackhole")


def parse_request_head(head: bytes) -> dict[str, str] | None:
    """The header fields of an HTTP/1.x request head (names lower-cased), or None when
    ``head`` does not hold a complete one. Repeated fields keep the first value."""
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = head[:end].decode("latin-1").split("\r\n")
    request_line = lines[0].split(" ")
    if len(request_line) != 3 or not request_line[2].startswith("HTTP/"):
        return None
    headers: dict[str, str] = {":path": request_line[1], ":method": request_line[0]}
    for line in lines[1:]:
        name, separator, value = line.partition(":")
        if separator:
            headers.setdefault(name.strip().lower(), value.strip())
    return headers


@dataclass(slots=True)
class ByteLinkStats:
    """Per directed link (``("?", j)`` for connections whose sender is unknown)."""

    connections: int = 0
    bytes_forwarded: int = 0
    connections_reset: int = 0


class _PeerGone(Exception):
    """The dialing side closed while its bytes were held."""


@dataclass(slots=True, eq=False)
class _PeerConnection:
    destination: str
    cancel_scope: trio.CancelScope
    streams: list[trio.SocketStream] = field(default_factory=list)
    sender: str | None = None
    identified: bool = False
    reset: bool = False


class HttpPeerMesh:
    """One proxy per destination node; link faults per directed link (`LinkMesh`).

    ``nodes`` maps each node to where it really listens for peers; ``listen`` maps it to
    its proxy's address (what the other members must be told). ``identify`` names the
    sender of a connection from its first request's headers.
    """

    def __init__(
        self,
        nodes: Mapping[str, Address],
        listen: Mapping[str, Address],
        *,
        identify: Identify,
        seed: int = 0,
    ) -> None:
        self.nodes = dict(nodes)
        self.node_ids: tuple[str, ...] = tuple(self.nodes)
        if set(listen) != set(self.nodes):
            raise ValueError("every node needs exactly one proxy address")
        self.listen = {node: listen[node] for node in self.node_ids}
        clash = {address[1] for address in self.nodes.values()} & {
            address[1] for address in self.listen.values()
        }
        if clash:
            raise ValueError(f"proxy ports overlap node ports {sorted(clash)}")
        self.identify = identify
        self.links: tuple[Link, ...] = tuple(
            (source, destination)
            for source in self.node_ids
            for destination in self.node_ids
            if source != destination
        )
        self.link_faults: dict[Link, LinkFaults] = {link: LinkFaults() for link in self.links}
        self.cuts: dict[Link, str | None] = {link: None for link in self.links}
        self.grudge: dict[str, set[str]] = {}
        seeder = random.Random(seed)
        self._rngs = {link: random.Random(seeder.getrandbits(64)) for link in self.links}
        self.stats: dict[Link, ByteLinkStats] = {link: ByteLinkStats() for link in self.links}
        for node in self.node_ids:
            self.stats[("?", node)] = ByteLinkStats()
        self._changed = trio.Event()
        self._connections: set[_PeerConnection] = set()
        self._listeners: dict[str, list[trio.SocketListener]] = {}
        self.bound_ports: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"HttpPeerMesh({', '.join(self.node_ids)})"

    def peer_address(self, node_id: str) -> Address:
        """The address every member must use for ``node_id`` (its proxy)."""
        return self.listen[node_id]

    # -- fault state ---------------------------------------------------------------------

    def _notify(self) -> None:
        """Wake every held direction to look at the faults again."""
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    def _check_nodes(self, ids: set[str] | list[str] | tuple[str, ...]) -> None:
        unknown = sorted(set(ids) - set(self.node_ids))
        if unknown:
            raise ValueError(f"unknown nodes {unknown}; nodes: {', '.join(self.node_ids)}")

    def _holds(self, link: Link) -> bool:
        cut = self.cuts[link]
        return self.link_faults[link].blocked or (cut is not None and cut != CUT_RESET)

    def _pair_reset(self, sender: str, destination: str) -> bool:
        return CUT_RESET in (self.cuts[(sender, destination)], self.cuts[(destination, sender)])

    def touched(self, node: str) -> bool:
        """A partition or cut touches a link into or out of ``node``."""
        return any(
            (self.link_faults[link].blocked or self.cuts[link] is not None) and node in link
            for link in self.links
        )

    def _refused(self, connection: _PeerConnection) -> bool:
        if not connection.identified:
            return False
        if connection.sender is None:
            return self.touched(connection.destination)
        return self._pair_reset(connection.sender, connection.destination)

    def _enforce(self) -> None:
        """Reset the live connections the current faults refuse; wake the held ones."""
        for connection in list(self._connections):
            if self._refused(connection):
                self._reset(connection)
        self._notify()

    def apply_grudge(
        self, grudge: Mapping[str, set[str] | list[str] | tuple[str, ...]], *, mode: str = "drop"
    ) -> None:
        """Replace the partition: ``grudge[j]`` is the set of nodes whose bytes j never gets.

        Both of the partition fault's modes hold the blocked directions: on a byte stream
        "drop" cannot discard a message, and holding is what a black hole does (here the
        held bytes flow as soon as the partition heals, as if TCP retransmitted at once).
        """
        if mode not in PARTITION_MODES:
            raise ValueError(
                f"unknown partition mode {mode!r}; valid: {', '.join(PARTITION_MODES)}"
            )
        self._check_nodes(list(grudge))
        for sources in grudge.values():
            self._check_nodes(list(sources))
        self.grudge = {dst: set(srcs) - {dst} for dst, srcs in grudge.items() if set(srcs) - {dst}}
        for (source, destination), faults in self.link_faults.items():
            faults.blocked = source in self.grudge.get(destination, set())
        self._enforce()

    def links_touching(self, nodes: set[str] | list[str] | tuple[str, ...]) -> list[Link]:
        chosen = set(nodes)
        self._check_nodes(chosen)
        return [link for link in self.links if link[0] in chosen or link[1] in chosen]

    def set_loss(self, probability: float, links: list[Link] | None = None) -> None:
        if probability > 0.0:
            raise ValueError(
                "message loss has no meaning on an HTTP byte stream (dropping bytes corrupts "
                "it); partitions, cuts and delay are the faults of these links"
            )

    def set_delay(
        self,
        delay: float,
        jitter: float = 0.0,
        *,
        reorder: bool = False,
        links: list[Link] | None = None,
    ) -> None:
        if delay < 0 or jitter < 0:
            raise ValueError(f"delay and jitter must be >= 0, got {delay}, {jitter}")
        if reorder:
            raise ValueError("bytes of one HTTP stream cannot be reordered")
        for link in links if links is not None else list(self.links):
            self.link_faults[link].delay = delay
            self.link_faults[link].jitter = jitter
        self._notify()

    def set_cut(self, mode: str | None, links: list[Link] | None = None) -> None:
        if mode is not None and mode not in CUT_MODES:
            raise ValueError(f"unknown cut mode {mode!r}; valid: {', '.join(CUT_MODES)}")
        for link in links if links is not None else list(self.links):
            self.cuts[link] = mode
        self._enforce()

    def heal(self) -> None:
        """Every link passes again: no grudge, cut or delay."""
        self.grudge = {}
        for link in self.links:
            faults = self.link_faults[link]
            faults.blocked = False
            faults.loss = 0.0
            faults.delay = 0.0
            faults.jitter = 0.0
            faults.reorder = False
            self.cuts[link] = None
        self._notify()

    def describe(self) -> dict[str, object]:
        faulty: dict[str, object] = {}
        for link in self.links:
            faults = self.link_faults[link]
            cut = self.cuts[link]
            if not faults.passing or cut is not None:
                entry = faults.describe()
                entry["cut"] = cut
                faulty[f"{link[0]}->{link[1]}"] = entry
        return faulty

    # -- serving -------------------------------------------------------------------------

    async def bind(self) -> None:
        """Open every proxy's listening socket; ProxyError (unwrapped) if a port is taken."""
        try:
            for node, (host, port) in self.listen.items():
                if node in self._listeners:
                    continue
                try:
                    self._listeners[node] = await trio.open_tcp_listeners(port, host=host)
                except OSError as error:
                    raise ProxyError(
                        f"peer proxy of {node} cannot listen on {host}:{port}: {error}"
                    ) from error
                self.bound_ports[node] = self._listeners[node][0].socket.getsockname()[1]
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        listeners, self._listeners = self._listeners, {}
        with trio.CancelScope(shield=True):
            for group in listeners.values():
                for listener in group:
                    await listener.aclose()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve every proxy until cancelled; ``started`` once all of them listen."""
        try:
            await self.bind()
            async with trio.open_nursery() as nursery:
                for node, group in self._listeners.items():
                    for listener in group:
                        handle = functools.partial(self._handle_connection, node)
                        nursery.start_soon(accept_connections, self, listener, nursery, handle)
                task_status.started()
        finally:
            await self.aclose()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[HttpPeerMesh]:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.run)
            try:
                yield self
            finally:
                nursery.cancel_scope.cancel()

    def _reset(self, connection: _PeerConnection) -> None:
        if not connection.reset:
            connection.reset = True
            key = (connection.sender or "?", connection.destination)
            self.stats[key].connections_reset += 1
        for stream in connection.streams:
            set_linger_reset(stream)
        connection.cancel_scope.cancel()

    async def _read_head(self, client: trio.SocketStream) -> bytes:
        head = bytearray()
        with trio.move_on_after(HEAD_TIMEOUT_SECONDS):
            while b"\r\n\r\n" not in head and len(head) < MAX_HEAD_BYTES:
                data = await client.receive_some(READ_CHUNK_BYTES)
                if not data:
                    break
                head += data
        return bytes(head)

    async def _handle_connection(self, destination: str, client: trio.SocketStream) -> None:
        connection = _PeerConnection(destination, trio.CancelScope(), [client])
        self._connections.add(connection)
        try:
            with connection.cancel_scope:
                head = await self._read_head(client)
                headers = parse_request_head(head)
                sender = None
                if headers is not None:
                    try:
                        sender = self.identify(destination, headers)
                    except Exception:  # a bad hook must not take the proxy down
                        logger.exception("%r: identify failed", self)
                if sender not in self.node_ids or sender == destination:
                    sender = None
                connection.sender = sender
                connection.identified = True
                self.stats[(sender or "?", destination)].connections += 1
                if self._refused(connection):
                    self._reset(connection)
                    return
                up = None if sender is None else (sender, destination)
                down = None if sender is None else (destination, sender)
                # The dialer's first bytes belong to sender -> destination: while that
                # link is held the destination does not even see a connection.
                await self._wait_passing(connection, up, client)
                try:
                    with trio.fail_after(CONNECT_TIMEOUT_SECONDS):
                        server = await trio.open_tcp_stream(*self.nodes[destination])
                except (OSError, trio.TooSlowError) as error:
                    logger.debug("%r: cannot reach %s: %s", self, destination, error)
                    return
                connection.streams.append(server)
                if connection.reset:
                    set_linger_reset(server)
                    return
                set_nodelay(client, server)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._direction, connection, client, server, up, head)
                    nursery.start_soon(self._direction, connection, server, client, down, b"")
        except* _PeerGone:
            pass
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # either end went away: the connection is over
        finally:
            self._connections.discard(connection)
            await close_streams(connection.streams, reset=connection.reset)

    async def _wait_passing(
        self, connection: _PeerConnection, link: Link | None, source: trio.SocketStream | None
    ) -> None:
        """Return once bytes may flow on ``link``; reset the connection if they never may."""
        while True:
            if self._refused(connection):
                self._reset(connection)
                await trio.sleep_forever()  # the reset cancelled our scope
            if link is None or not self._holds(link):
                return
            changed = self._changed
            async with trio.open_nursery() as nursery:
                if source is not None:
                    nursery.start_soon(self._watch_close, source)
                await changed.wait()
                nursery.cancel_scope.cancel()

    @staticmethod
    async def _watch_close(source: trio.SocketStream) -> None:
        """While a direction is held its bytes are not read; notice its sender hanging up
        (a held connection must not outlive it)."""
        data = await source.socket.recv(1, socket.MSG_PEEK)
        if not data:
            raise _PeerGone()
        await trio.sleep_forever()

    def _draw_delay(self, link: Link | None) -> float:
        if link is None:
            return 0.0
        faults = self.link_faults[link]
        if faults.delay <= 0.0 and faults.jitter <= 0.0:
            return 0.0
        rng = self._rngs[link]
        return max(0.0, rng.uniform(faults.delay - faults.jitter, faults.delay + faults.jitter))

    async def _direction(
        self,
        connection: _PeerConnection,
        source: trio.SocketStream,
        sink: trio.SocketStream,
        link: Link | None,
        first: bytes,
    ) -> None:
        """Forward one direction under ``link``'s faults; its end ends the connection."""
        stats = self.stats[link if link is not None else ("?", connection.destination)]
        send_channel, receive_channel = trio.open_memory_channel[tuple[float, bytes]](QUEUED_CHUNKS)

        async def writer() -> None:
            async with receive_channel:
                async for deliver_at, data in receive_channel:
                    if deliver_at > trio.current_time():
                        await trio.sleep_until(deliver_at)
                    await self._wait_passing(connection, link, None)
                    stats.bytes_forwarded += len(data)
                    await sink.send_all(data)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                last_deliver_at = 0.0
                pending = first
                async with send_channel:
                    while True:
                        if not pending:
                            await self._wait_passing(connection, link, source)
                            pending = await source.receive_some(READ_CHUNK_BYTES)
                            if not pending:
                                break
                        arrived_at = trio.current_time()
                        await self._wait_passing(connection, link, None)
                        deliver_at = max(arrived_at + self._draw_delay(link), last_deliver_at)
                        last_deliver_at = deliver_at
                        await send_channel.send((deliver_at, pending))
                        pending = b""
                # The source closed: the writer delivers what is queued, then ends.
        finally:
            connection.cancel_scope.cancel()
