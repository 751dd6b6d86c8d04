"""Link proxies: every directed peer link (node i -> node j) runs through one.

Node i is told that j lives at the proxy's address; the proxy forwards to where j really
listens. Because peer connections carry length-prefixed frames (conventions §5: a 4-byte
big-endian length, then a msgpack body), the proxy can find message boundaries without
knowing anything inside a frame, and so every fault acts per message:

- pass: bytes are forwarded in large reads; the proxy only walks the frame headers.
- drop: each message is discarded with probability ``loss`` (seeded RNG), or always while
  the link is ``blocked`` (a partition's grudge: "j drops what comes from i").
- delay: each message is held for ``delay`` +/- ``jitter`` seconds. By default the order of
  messages is kept, as TCP keeps it even when netem reorders packets underneath (Jepsen's
  delay never reorders messages of one connection). ``reorder=True`` lets a message with
  a shorter draw overtake one with a longer draw, which a real TCP stream never does but
  Raft must tolerate across reconnections anyway.
- cut "hold": connections stay open but nothing moves (the proxy stops reading, so bytes
  wait in the kernel buffers as on a black-holed TCP path); new connections are accepted
  and wait. Healing lets the held bytes flow.
- cut "reset": every connection is closed with a TCP reset, and new ones are accepted and
  reset at once, so the sender sees its connection refused until the link heals.
- blackhole (per direction, like ``blocked``): what a path that silently drops packets
  does to TCP, e.g. an iptables DROP rule. The proxy stops reading that direction and
  forwards nothing, so the sender's bytes pile up in its kernel buffers while the
  connection stays open; new connections are accepted and held (a SYN into the dark).
  Healing does not make the bytes flow at once: a sender whose packets went unanswered
  retransmits on TCP's exponential back-off, so a held direction resumes only at the
  sender's next retransmission, counted from when it went dark (RTO from 200 ms, doubling,
  at most 120 s; a SYN from 1 s). A 30 s blackhole thus stays dark about 21 s past its
  heal, unless the endpoints give up on the connection and dial a new one, which passes
  at once.

The first frame of each direction of a connection (the hello handshake and its answer) is
never dropped: a message-level fault must not turn into a protocol violation (a frame
before hello) that the node would log as malformed input. Everything after it is fair game.

Each direction of a connection has one reader task and one writer task (for delayed
frames); there is no task per message. Proxies run as Trio tasks in the campaign's process
under a nursery the campaign owns: ``await nursery.start(proxy.run)`` or
``async with proxy.serving():``.
"""

from __future__ import annotations

import fcntl
import heapq
import logging
import random
import socket
import struct
import termios
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

logger = logging.getLogger(__name__)

FRAME_HEADER_BYTES = 4
_HEADER = struct.Struct(">I")
# The node's default maximum frame is 32 MiB (ARCHITECTURE.md "Wire"); a proxy refuses to
# buffer anything larger and closes that connection, as the node itself would.
DEFAULT_MAX_FRAME_BYTES = 32 * 1024 * 1024 + 1024
READ_CHUNK_BYTES = 256 * 1024
CONNECT_TIMEOUT_SECONDS = 2.0

CUT_HOLD = "hold"
CUT_RESET = "reset"
CUT_MODES = (CUT_HOLD, CUT_RESET)

# How a partition's grudge acts on a link: the proxy discards each message ("drop": the
# connection stays live, and TCP retransmits nothing) or black-holes the link.
DROP = "drop"
BLACKHOLE = "blackhole"
PARTITION_MODES = (DROP, BLACKHOLE)

# TCP's retransmission timer as Linux runs it on loopback (RFC 6298 §2 and §5.5; Linux's
# TCP_RTO_MIN and TCP_RTO_MAX): the first retransmission 200 ms after the unanswered send,
# each next one twice as late, never more than 120 s apart; a SYN starts at 1 s.
RTO_MIN_SECONDS = 0.2
RTO_MAX_SECONDS = 120.0
SYN_RTO_SECONDS = 1.0

Address = tuple[str, int]


def next_retransmission(dark_since: float, now: float, first_rto: float = RTO_MIN_SECONDS) -> float:
    """When a sender whose bytes went unanswered from ``dark_since`` on retransmits next,
    at or after ``now`` (TCP's exponential back-off; see the module docstring)."""
    rto = first_rto
    at = dark_since + rto
    while at < now:
        rto = min(rto * 2, RTO_MAX_SECONDS)
        at += rto
    return at


@dataclass(slots=True)
class LinkFaults:
    """What happens to messages flowing one way on one link. All off means pass.

    ``blackhole`` is changed with ``set_blackhole`` (it wakes the held readers).
    """

    blocked: bool = False  # partition grudge: every message is dropped
    loss: float = 0.0  # probability that a message is dropped
    delay: float = 0.0  # seconds added to each message
    jitter: float = 0.0  # the delay is drawn uniformly from delay +/- jitter (never < 0)
    reorder: bool = False  # False: delayed messages keep their order (TCP semantics)
    blackhole: bool = False  # nothing is read or forwarded; the connection stays open
    _lit: trio.Event = field(default_factory=trio.Event, repr=False, compare=False)

    @property
    def passing(self) -> bool:
        return (
            not self.blocked
            and not self.blackhole
            and self.loss <= 0.0
            and self.delay <= 0.0
            and self.jitter <= 0.0
        )

    def describe(self) -> dict[str, object]:
        return {
            "blocked": self.blocked,
            "loss": self.loss,
            "delay": self.delay,
            "jitter": self.jitter,
            "reorder": self.reorder,
            "blackhole": self.blackhole,
        }

    def set_blackhole(self, dark: bool) -> None:
        if dark and not self.blackhole:
            self._lit = trio.Event()
        self.blackhole = dark
        if not dark:
            self._lit.set()

    async def wait_lit(self) -> None:
        while self.blackhole:
            if self._lit.is_set():  # the flag was set without set_blackhole
                self._lit = trio.Event()
            await self._lit.wait()

    async def wait_out_blackhole(self, dark_since: float, first_rto: float) -> None:
        """Return once this direction is lit and the sender, in the dark since
        ``dark_since``, retransmits (its next retransmission after the heal)."""
        while True:
            await self.wait_lit()
            await trio.sleep_until(next_retransmission(dark_since, trio.current_time(), first_rto))
            if not self.blackhole:  # dark again before it: that one was lost too
                return


@dataclass(slots=True)
class LinkStats:
    """Message counts per link direction, for tests and for nemesis descriptions."""

    frames_passed: int = 0  # forwarded without delay
    frames_delayed: int = 0  # forwarded after a delay
    frames_dropped: int = 0
    bytes_forwarded: int = 0
    connections_accepted: int = 0
    connections_reset: int = 0
    blackhole_holds: int = 0  # times a connection had bytes (or a SYN) held in a blackhole


class ProxyError(Exception):
    """A proxy could not be set up (e.g. its port is taken)."""


class _FrameTooLarge(Exception):
    pass


def _unread_bytes(stream: trio.SocketStream) -> int:
    """Bytes waiting in the socket's receive buffer (FIONREAD), 0 if unknown."""
    try:
        answer = fcntl.ioctl(stream.socket.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    return int(struct.unpack("i", answer)[0])


def set_linger_reset(stream: trio.SocketStream) -> None:
    """Make the next close send a TCP RST instead of a FIN."""
    try:
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (OSError, trio.ClosedResourceError):
        pass


def set_nodelay(*streams: trio.SocketStream) -> None:
    """Forward each write at once (frames and HTTP chunks are small and latency-bound)."""
    for stream in streams:
        try:
            stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        except OSError:
            pass


async def accept_connections(
    owner: object,
    listener: trio.SocketListener,
    nursery: trio.Nursery,
    handle: Callable[[trio.SocketStream], Awaitable[None]],
) -> None:
    """Accept forever, each connection handled by ``handle`` in a task of ``nursery``.

    Shared by the frame proxy, the HTTP peer proxy and the hello router: an accept error
    (EMFILE, say) backs off instead of spinning, and one connection's failure is logged
    and never takes ``owner`` (and the campaign) down.
    """
    while True:
        try:
            stream = await listener.accept()
        except OSError as error:
            logger.warning("%r: accept failed: %s", owner, error)
            await trio.sleep(0.05)
            continue
        nursery.start_soon(_handle_logged, owner, handle, stream)


async def _handle_logged(
    owner: object,
    handle: Callable[[trio.SocketStream], Awaitable[None]],
    stream: trio.SocketStream,
) -> None:
    try:
        await handle(stream)
    except* Exception:
        logger.exception("%r: connection handler failed", owner)


async def close_streams(streams: list[trio.SocketStream], *, reset: bool) -> None:
    """Close both ends of a proxied connection (with a RST when ``reset``), shielded: it
    runs in ``finally`` blocks of cancelled tasks, and a socket must never leak."""
    with trio.CancelScope(shield=True):
        for stream in streams:
            if reset:
                set_linger_reset(stream)
            try:
                await stream.aclose()
            except (OSError, trio.BrokenResourceError):
                pass


@dataclass(slots=True, eq=False)  # identity hashing: kept in a set of live connections
class _Connection:
    cancel_scope: trio.CancelScope
    streams: list[trio.SocketStream] = field(default_factory=list)
    reset: bool = False


class _FrameWriter:
    """The sending half of one direction: direct sends plus a queue of delayed frames.

    All sends go through one FIFO lock so a delayed frame is never interleaved inside
    another frame's bytes.
    """

    __slots__ = (
        "_sink",
        "_lock",
        "_heap",
        "_sequence",
        "_queued",
        "_emptied",
        "last_deliver_at",
        "_proxy",
        "_stats",
    )

    def __init__(self, sink: trio.SocketStream, proxy: LinkProxy, stats: LinkStats) -> None:
        self._sink = sink
        self._stats = stats
        self._lock = trio.StrictFIFOLock()
        self._heap: list[tuple[float, int, bytes]] = []
        self._sequence = 0
        self._queued = trio.Event()  # set when a frame is queued (it may be the new head)
        self._emptied = trio.Event()  # set when the queue runs empty
        self.last_deliver_at = 0.0
        self._proxy = proxy

    @property
    def has_pending(self) -> bool:
        return bool(self._heap)

    async def send_direct(self, data: bytes | bytearray | memoryview) -> None:
        async with self._lock:
            await self._proxy._wait_not_held()
            self._stats.bytes_forwarded += len(data)
            await self._sink.send_all(data)

    def queue(self, deliver_at: float, frame: bytes) -> None:
        heapq.heappush(self._heap, (deliver_at, self._sequence, frame))
        self._sequence += 1
        self.last_deliver_at = max(self.last_deliver_at, deliver_at)
        self._queued.set()

    async def drain(self) -> None:
        """Wait until every queued frame was sent (used when the source closes)."""
        while self._heap:
            self._emptied = trio.Event()
            await self._emptied.wait()
        async with self._lock:  # the writer may still be sending the last frames
            pass

    async def run(self) -> None:
        while True:
            self._queued = trio.Event()
            if not self._heap:
                self._emptied.set()
                await self._queued.wait()
                continue
            with trio.move_on_at(self._heap[0][0]):
                # A frame queued meanwhile may be due earlier (with reorder): look again.
                await self._queued.wait()
                continue
            async with self._lock:
                await self._proxy._wait_not_held()
                now = trio.current_time()
                due: list[bytes] = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                if due:
                    payload = b"".join(due)
                    self._stats.bytes_forwarded += len(payload)
                    await self._sink.send_all(payload)


class _FramePump:
    """Reads one direction of a connection, walks frame headers, applies faults per frame."""

    __slots__ = (
        "_proxy",
        "_source",
        "_writer",
        "_faults",
        "_stats",
        "_header",
        "_remaining",
        "_fate",
        "_frame_buffer",
        "_deliver_at",
        "_frames_seen",
        "_in_body",
    )

    _DIRECT = 0
    _DROP = 1
    _QUEUED = 2

    def __init__(
        self,
        proxy: LinkProxy,
        source: trio.SocketStream,
        writer: _FrameWriter,
        faults: LinkFaults,
        stats: LinkStats,
    ) -> None:
        self._proxy = proxy
        self._source = source
        self._writer = writer
        self._faults = faults
        self._stats = stats
        self._header = bytearray()
        self._remaining = 0  # body bytes left in the current frame
        self._fate = self._DIRECT
        self._frame_buffer = bytearray()
        self._deliver_at = 0.0
        self._frames_seen = 0
        self._in_body = False

    def _decide(self, arrived_at: float) -> None:
        """Choose the fate of the frame whose header was just read."""
        faults = self._faults
        rng = self._proxy.rng
        handshake = self._frames_seen == 0
        self._frames_seen += 1
        if not handshake and (faults.blocked or (faults.loss > 0.0 and rng.random() < faults.loss)):
            self._fate = self._DROP
            self._stats.frames_dropped += 1
            return
        delay = 0.0
        if faults.delay > 0.0 or faults.jitter > 0.0:
            delay = max(
                0.0, rng.uniform(faults.delay - faults.jitter, faults.delay + faults.jitter)
            )
        if delay <= 0.0 and not self._writer.has_pending:
            self._fate = self._DIRECT
            self._stats.frames_passed += 1
            return
        deliver_at = arrived_at + delay
        if not faults.reorder:
            deliver_at = max(deliver_at, self._writer.last_deliver_at)
        self._fate = self._QUEUED
        self._deliver_at = deliver_at
        if delay > 0.0:
            self._stats.frames_delayed += 1
        else:
            self._stats.frames_passed += 1

    async def run(self) -> None:
        max_frame = self._proxy.max_frame_bytes
        while True:
            await self._proxy._wait_not_held()
            if self._faults.blackhole:
                await self._hold_in_blackhole(holding=False)
            data = await self._source.receive_some(READ_CHUNK_BYTES)
            if self._faults.blackhole:  # these bytes (or the EOF) came into the dark
                await self._hold_in_blackhole(holding=True)
            if not data:
                return
            if (
                self._faults.passing
                and not self._writer.has_pending
                and not self._header
                and (not self._in_body or self._fate == self._DIRECT)
            ):
                # The passing fast path: forward the whole read as it is and only walk
                # the headers to keep track of where the next frame starts.
                forward_end = self._skip_frames(data, max_frame)
                if forward_end:
                    await self._writer.send_direct(
                        data if forward_end == len(data) else memoryview(data)[:forward_end]
                    )
                continue
            # Every frame of one read arrived at the same moment.
            arrived_at = trio.current_time()
            view = memoryview(data)
            size = len(data)
            position = 0
            # Slices to send directly, in order; flushed before anything is queued so a
            # queued frame never overtakes bytes read before it.
            direct: list[memoryview | bytes] = []
            while position < size:
                if not self._in_body:
                    take = min(FRAME_HEADER_BYTES - len(self._header), size - position)
                    self._header += view[position : position + take]
                    position += take
                    if len(self._header) < FRAME_HEADER_BYTES:
                        break  # the rest of the header comes with the next read
                    frame_length = int.from_bytes(self._header, "big")
                    if frame_length > max_frame:
                        raise _FrameTooLarge(frame_length)
                    self._decide(arrived_at)
                    self._remaining = frame_length
                    self._in_body = True
                    if self._fate == self._DIRECT:
                        direct.append(bytes(self._header))
                    elif self._fate == self._QUEUED:
                        self._frame_buffer = bytearray(self._header)
                    self._header.clear()
                if self._remaining:
                    take = min(self._remaining, size - position)
                    if self._fate == self._DIRECT:
                        direct.append(view[position : position + take])
                    elif self._fate == self._QUEUED:
                        self._frame_buffer += view[position : position + take]
                    position += take
                    self._remaining -= take
                if self._remaining == 0:  # the frame is complete
                    self._in_body = False
                    if self._fate == self._QUEUED:
                        if direct:
                            await self._flush(direct)
                            direct = []
                        self._writer.queue(self._deliver_at, bytes(self._frame_buffer))
                        self._frame_buffer = bytearray()
            if direct:
                await self._flush(direct)

    async def _hold_in_blackhole(self, *, holding: bool) -> None:
        """Read nothing while the direction is dark, then wait for the sender's next
        retransmission, if it sent anything into the dark (``holding``: the bytes just
        read; otherwise whatever waits unread in the socket)."""
        faults = self._faults
        dark_since = trio.current_time()
        if not holding:
            await faults.wait_lit()
            if not _unread_bytes(self._source):
                return  # nothing was sent into the dark: nothing to retransmit
        self._stats.blackhole_holds += 1
        await faults.wait_out_blackhole(dark_since, RTO_MIN_SECONDS)

    def _skip_frames(self, data: bytes, max_frame: int) -> int:
        """Advance the frame state over ``data``, where every frame passes; returns how
        many bytes to forward now. A header cut by the end of the read is kept back, so
        that the next read decides its frame's fate as a whole."""
        size = len(data)
        position = 0
        remaining = self._remaining if self._in_body else 0
        frames = 0
        while True:
            if remaining > size - position:  # the current frame goes on in the next read
                self._remaining = remaining - (size - position)
                self._in_body = True
                break
            position += remaining
            if position + FRAME_HEADER_BYTES > size:
                # The next header starts in this read (or exactly at its end).
                self._header += data[position:size]
                self._remaining = 0
                self._in_body = False
                size = position
                break
            remaining = _HEADER.unpack_from(data, position)[0]
            if remaining > max_frame:
                raise _FrameTooLarge(remaining)
            position += FRAME_HEADER_BYTES
            frames += 1
        self._fate = self._DIRECT
        self._frames_seen += frames
        self._stats.frames_passed += frames
        return size

    async def _flush(self, direct: list[memoryview | bytes]) -> None:
        payload = direct[0] if len(direct) == 1 else b"".join(direct)
        await self._writer.send_direct(payload)


class LinkProxy:
    """The proxy of one directed link ``source -> destination``.

    ``faults`` governs frames from the source to the destination. ``reverse_faults``
    governs frames flowing back on the same connections (by the wire contract only the
    handshake answer and error frames do; ``ProxyMesh`` passes the reverse link's state
    so that any traffic from j to i obeys j -> i's faults). ``cut`` acts on this proxy's
    connections in both directions.
    """

    def __init__(
        self,
        source: str,
        destination: str,
        listen: Address,
        target: Address,
        *,
        seed: int = 0,
        faults: LinkFaults | None = None,
        reverse_faults: LinkFaults | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self.source = source
        self.destination = destination
        self.listen = listen
        self.target = target
        self.rng = random.Random(seed)
        self.faults = faults if faults is not None else LinkFaults()
        # Without a reverse link to obey (a standalone proxy), the reverse state is ours.
        self._owns_reverse_faults = reverse_faults is None
        self.reverse_faults = reverse_faults if reverse_faults is not None else LinkFaults()
        self.max_frame_bytes = max_frame_bytes
        self.stats = LinkStats()
        self.reverse_stats = LinkStats()
        self.cut: str | None = None
        self._unheld = trio.Event()
        self._unheld.set()
        self._connections: set[_Connection] = set()
        self._listeners: list[trio.SocketListener] = []
        self.bound_port: int | None = None

    def __repr__(self) -> str:
        return f"LinkProxy({self.source}->{self.destination} {self.listen[0]}:{self.listen[1]} -> {self.target[0]}:{self.target[1]})"

    # -- fault control (synchronous: safe to call from any task) ---------------------------

    def set_cut(self, mode: str | None) -> None:
        """Cut the link (``"hold"`` or ``"reset"``) or, with ``None``, restore it."""
        if mode is not None and mode not in CUT_MODES:
            raise ValueError(f"unknown cut mode {mode!r}; valid: {', '.join(CUT_MODES)}")
        self.cut = mode
        if mode == CUT_HOLD:
            if self._unheld.is_set():
                self._unheld = trio.Event()
        else:
            self._unheld.set()
        if mode == CUT_RESET:
            for connection in list(self._connections):
                self._reset(connection)

    def heal(self) -> None:
        """Pass everything again: no cut, no drop, no delay. The reverse direction's
        faults belong to the reverse link when a mesh wired one in: they stay."""
        owned = [self.faults] + ([self.reverse_faults] if self._owns_reverse_faults else [])
        for faults in owned:
            faults.blocked = False
            faults.loss = 0.0
            faults.delay = 0.0
            faults.jitter = 0.0
            faults.reorder = False
            faults.set_blackhole(False)
        self.set_cut(None)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def _wait_not_held(self) -> None:
        while self.cut == CUT_HOLD:
            await self._unheld.wait()

    def set_blackhole(self, dark: bool) -> None:
        """Black-hole this link's direction source -> destination (see the module
        docstring), or light it again."""
        self.faults.set_blackhole(dark)

    def _reset(self, connection: _Connection) -> None:
        connection.reset = True
        for stream in connection.streams:
            set_linger_reset(stream)
        connection.cancel_scope.cancel()
        self.stats.connections_reset += 1

    # -- serving ----------------------------------------------------------------------------

    async def bind(self) -> int:
        """Open the listening socket now (idempotent); returns the bound port.

        Raises ProxyError, unwrapped, when the port is taken: callers bind before they
        open the nursery that serves, so the error is plain.
        """
        if self._listeners:
            return self.listen[1] if self.bound_port is None else self.bound_port
        host, port = self.listen
        try:
            self._listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as error:
            raise ProxyError(
                f"proxy {self.source}->{self.destination} cannot listen on {host}:{port}: {error}"
            ) from error
        self.bound_port = self._listeners[0].socket.getsockname()[1]
        return self.bound_port

    async def aclose(self) -> None:
        """Close the listening socket (connections end with the serving nursery)."""
        listeners, self._listeners = self._listeners, []
        with trio.CancelScope(shield=True):
            for listener in listeners:
                await listener.aclose()

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and forward until cancelled. ``task_status.started`` gets the bound port."""
        port = await self.bind()
        try:
            async with trio.open_nursery() as nursery:
                for listener in self._listeners:
                    nursery.start_soon(
                        accept_connections, self, listener, nursery, self._handle_connection
                    )
                task_status.started(port)
        finally:
            await self.aclose()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[LinkProxy]:
        await self.bind()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.run)
                try:
                    yield self
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            await self.aclose()

    async def _handle_connection(self, client: trio.SocketStream) -> None:
        connection = _Connection(cancel_scope=trio.CancelScope(), streams=[client])
        self.stats.connections_accepted += 1
        if self.cut == CUT_RESET:
            set_linger_reset(client)
            self.stats.connections_reset += 1
            with trio.CancelScope(shield=True):
                await client.aclose()
            return
        self._connections.add(connection)
        try:
            with connection.cancel_scope:
                await self._wait_not_held()
                if self.faults.blackhole:
                    # A SYN into the dark: the source's connect stays unanswered until
                    # the link is lit and the SYN retransmitted (only then is the
                    # destination dialled and the hello forwarded).
                    self.stats.blackhole_holds += 1
                    await self.faults.wait_out_blackhole(trio.current_time(), SYN_RTO_SECONDS)
                try:
                    with trio.fail_after(CONNECT_TIMEOUT_SECONDS):
                        server = await trio.open_tcp_stream(*self.target)
                except (OSError, trio.TooSlowError) as error:
                    # The destination is down: close, so the source notices and redials.
                    logger.debug("%r: cannot reach destination: %s", self, error)
                    return
                connection.streams.append(server)
                if connection.reset:  # reset while we were dialling
                    set_linger_reset(server)
                    return
                set_nodelay(client, server)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(
                        self._direction, client, server, self.faults, self.stats, connection
                    )
                    nursery.start_soon(
                        self._direction,
                        server,
                        client,
                        self.reverse_faults,
                        self.reverse_stats,
                        connection,
                    )
        finally:
            self._connections.discard(connection)
            await close_streams(connection.streams, reset=connection.reset)

    async def _direction(
        self,
        source: trio.SocketStream,
        sink: trio.SocketStream,
        faults: LinkFaults,
        stats: LinkStats,
        connection: _Connection,
    ) -> None:
        """Forward one direction; when it ends for any reason, end the whole connection."""
        writer = _FrameWriter(sink, self, stats)
        pump = _FramePump(self, source, writer, faults, stats)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer.run)
                await pump.run()
                # The source closed: deliver what is still delayed, as TCP would.
                await writer.drain()
                nursery.cancel_scope.cancel()
        except* _FrameTooLarge as group:
            logger.warning(
                "%r: frame of %s bytes exceeds %d; closing the connection",
                self,
                group.exceptions[0].args[0],
                self.max_frame_bytes,
            )
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # either end went away: the connection is over
        finally:
            connection.cancel_scope.cancel()


def assign_proxy_ports(
    node_ids: list[str] | tuple[str, ...], base_port: int
) -> dict[tuple[str, str], int]:
    """Deterministic ports for the n*(n-1) directed links: base_port, base_port+1, ...

    Links are numbered in the order (source, destination) of the node ids as given, so the
    same cluster always gets the same ports.
    """
    if len(set(node_ids)) != len(node_ids):
        raise ValueError(f"duplicate node ids in {list(node_ids)}")
    ports: dict[tuple[str, str], int] = {}
    next_port = base_port
    for source in node_ids:
        for destination in node_ids:
            if source == destination:
                continue
            ports[(source, destination)] = next_port
            next_port += 1
    if next_port - 1 > 65535:
        raise ValueError(f"proxy ports {base_port}..{next_port - 1} exceed 65535")
    return ports


class ProxyMesh:
    """All n*(n-1) directed link proxies of a cluster.

    ``nodes`` maps each node id to the address it really listens on. Node i is given
    ``peer_map(i)``: each peer j's id mapped to the address of the proxy i -> j.
    """

    def __init__(
        self,
        nodes: Mapping[str, Address],
        *,
        base_port: int,
        host: str = "127.0.0.1",
        seed: int = 0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self.nodes = dict(nodes)
        self.node_ids: tuple[str, ...] = tuple(self.nodes)
        self.host = host
        self.ports = assign_proxy_ports(self.node_ids, base_port)
        node_ports = {address[1] for address in self.nodes.values()}
        clash = sorted(node_ports & set(self.ports.values()))
        if clash:
            raise ValueError(f"proxy ports overlap node ports {clash}; choose another base port")
        self.link_faults: dict[tuple[str, str], LinkFaults] = {
            link: LinkFaults() for link in self.ports
        }
        # One seeded RNG per link, derived from the mesh seed, so each link's sequence of
        # drop/delay draws is reproducible given the order of its messages.
        seeder = random.Random(seed)
        self.proxies: dict[tuple[str, str], LinkProxy] = {}
        for (source, destination), port in self.ports.items():
            self.proxies[(source, destination)] = LinkProxy(
                source,
                destination,
                (host, port),
                self.nodes[destination],
                seed=seeder.getrandbits(64),
                faults=self.link_faults[(source, destination)],
                reverse_faults=self.link_faults[(destination, source)],
                max_frame_bytes=max_frame_bytes,
            )
        self.grudge: dict[str, set[str]] = {}

    def peer_map(self, node_id: str) -> dict[str, Address]:
        """Peer id -> the proxy address node ``node_id`` must dial to reach it."""
        if node_id not in self.nodes:
            raise KeyError(f"unknown node {node_id!r}; nodes: {', '.join(self.node_ids)}")
        return {
            destination: (self.host, self.ports[(node_id, destination)])
            for destination in self.node_ids
            if destination != node_id
        }

    def peer_args(self, node_id: str) -> list[str]:
        """``--peer j=HOST:PORT`` arguments for ``raftlab node``."""
        args: list[str] = []
        for peer, (host, port) in self.peer_map(node_id).items():
            args += ["--peer", f"{peer}={host}:{port}"]
        return args

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve every proxy until cancelled; ``started`` once all of them listen."""
        try:
            await self.bind()
            async with trio.open_nursery() as nursery:
                for proxy in self.proxies.values():
                    await nursery.start(proxy.run)
                task_status.started()
        finally:
            await self.aclose()

    async def bind(self) -> None:
        """Open every proxy's listening socket; on failure close those opened and raise
        ProxyError (unwrapped)."""
        try:
            for proxy in self.proxies.values():
                await proxy.bind()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        for proxy in self.proxies.values():
            await proxy.aclose()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[ProxyMesh]:
        """``async with mesh.serving():`` every link is proxied inside the block; on exit
        every listener and connection is closed."""
        await self.bind()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.run)
                try:
                    yield self
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            await self.aclose()

    # -- faults ----------------------------------------------------------------------------

    def _check_nodes(self, ids: set[str] | list[str] | tuple[str, ...]) -> None:
        unknown = sorted(set(ids) - set(self.node_ids))
        if unknown:
            raise ValueError(f"unknown nodes {unknown}; nodes: {', '.join(self.node_ids)}")

    def apply_grudge(
        self,
        grudge: Mapping[str, set[str] | list[str] | tuple[str, ...]],
        mode: str = DROP,
    ) -> None:
        """Replace the current partition: ``grudge[j]`` is the set of nodes j drops from.

        ``mode`` says how: ``"drop"`` discards every message on those links (``blocked``),
        ``"blackhole"`` black-holes them (see the module docstring). Links not named in
        the grudge are unblocked and lit (other faults such as delay stay).
        """
        if mode not in PARTITION_MODES:
            valid = ", ".join(PARTITION_MODES)
            raise ValueError(f"unknown partition mode {mode!r}; valid: {valid}")
        self._check_nodes(list(grudge))
        for sources in grudge.values():
            self._check_nodes(list(sources))
        self.grudge = {dst: set(srcs) - {dst} for dst, srcs in grudge.items() if set(srcs) - {dst}}
        for (source, destination), faults in self.link_faults.items():
            cut = source in self.grudge.get(destination, set())
            faults.blocked = cut and mode == DROP
            faults.set_blackhole(cut and mode == BLACKHOLE)

    def links_touching(
        self, nodes: set[str] | list[str] | tuple[str, ...]
    ) -> list[tuple[str, str]]:
        chosen = set(nodes)
        self._check_nodes(chosen)
        return [link for link in self.ports if link[0] in chosen or link[1] in chosen]

    def set_loss(self, probability: float, links: list[tuple[str, str]] | None = None) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"loss probability must be within [0, 1], got {probability}")
        for link in links if links is not None else list(self.ports):
            self.link_faults[link].loss = probability

    def set_delay(
        self,
        delay: float,
        jitter: float = 0.0,
        *,
        reorder: bool = False,
        links: list[tuple[str, str]] | None = None,
    ) -> None:
        if delay < 0 or jitter < 0:
            raise ValueError(f"delay and jitter must be >= 0, got {delay}, {jitter}")
        for link in links if links is not None else list(self.ports):
            faults = self.link_faults[link]
            faults.delay = delay
            faults.jitter = jitter
            faults.reorder = reorder

    def set_cut(self, mode: str | None, links: list[tuple[str, str]] | None = None) -> None:
        for link in links if links is not None else list(self.ports):
            self.proxies[link].set_cut(mode)

    def set_blackhole(self, dark: bool, links: list[tuple[str, str]] | None = None) -> None:
        """Black-hole (or light) the given directed links, every link by default."""
        for link in links if links is not None else list(self.ports):
            self.link_faults[link].set_blackhole(dark)

    def heal(self) -> None:
        """Every link passes again: no grudge, loss, delay or cut."""
        self.grudge = {}
        for proxy in self.proxies.values():
            proxy.heal()

    def describe(self) -> dict[str, object]:
        """The links that do not simply pass, for logs and nemesis records."""
        faulty: dict[str, object] = {}
        for (source, destination), faults in self.link_faults.items():
            cut = self.proxies[(source, destination)].cut
            if not faults.passing or cut is not None:
                entry = faults.describe()
                entry["cut"] = cut
                faulty[f"{source}->{destination}"] = entry
        return faulty
