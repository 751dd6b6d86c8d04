"""The node process: one TCP port for peers, clients and admin, around one NodeDriver.

Connections (ARCHITECTURE.md "Wire"): every connection starts with a hello naming the
cluster, the sender and its role. Peers: node i dials j and sends its messages to j on
that connection only, so each directed link is one TCP connection that a proxy can
delay, drop or cut on its own (the harness puts proxies where i *believes* j lives, so
the addresses in ``--peer`` need not be where the peers listen). Clients and admins send
requests with ids and get replies with those ids, many in flight per connection.

A frame that is malformed, oversized, of an unknown type, sent before the hello or from
a foreign cluster closes that one connection (with an ``error`` frame when possible) and
is logged; the node goes on serving everyone else. The node never trusts a frame's
content beyond what ``raftnode.wire`` and ``raftnode.messages`` validated.

Durability: the driver persists every Ready (one fsync) before sending its messages and
before applying the entries that answer clients, so an acknowledged write is on disk on
a majority when its client hears "ok", and a SIGKILL at any moment loses none.
"""

from __future__ import annotations

import math
import os
import random
import signal
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import trio

if TYPE_CHECKING:
    from raftnode.messages import ConfState

from raftnode.client import parse_address
from raftnode.clock import ClockError, SkewableClock
from raftnode.core.membership import ConfChange, ConfChangeType
from raftnode.driver import (
    READ_OPS,
    WRITE_OPS,
    NodeDriver,
    NotLeaderError,
    OutcomeUnknownError,
)
from raftnode.kv import TXN_OP, txn_has_writes, validate_txn_ops
from raftnode.messages import (
    Message,
    MessageError,
    MessageType,
    message_from_wire,
    message_to_wire,
)
from raftnode.wire import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameError,
    FrameStream,
    encode_frame,
    hello_frame,
    optional_number,
    parse_hello,
    require_int,
    require_key,
    require_str,
)

DEFAULT_CLUSTER_ID = "raftlab"
# Commands larger than this are refused (too_large). A Raft append carries up to 512
# entries and must fit in one frame (32 MiB): 32 MiB / 512 = 64 KiB per command.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024
HELLO_TIMEOUT = 5.0
PEER_QUEUE_LIMIT = 20_000  # messages queued for one peer before the oldest are dropped
BACKOFF_MIN = 0.02
BACKOFF_MAX = 1.0
UNREACHABLE_LOG_INTERVAL = 30.0
# A peer dial (connect + hello) gets two election timeouts, but never less than this: a
# black-holed SYN or hello must not hold a link for HELLO_TIMEOUT after the path heals.
PEER_DIAL_TIMEOUT_MIN = 0.5
# What a follower sends its leader in answer to every append and heartbeat: a leader that
# gets none from a peer for SILENT_LINK_TIMEOUTS election timeouts redials it.
SILENT_LINK_TIMEOUTS = 2
_PEER_ANSWERS = frozenset({MessageType.APPEND_RESP, MessageType.SNAPSHOT_RESP})
# The errors of a connection whose other end went away (or never answered): a node logs
# them and carries on; it never crashes on a peer's or a client's death.
CONNECTION_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class NodeStartError(Exception):
    """The node cannot start (bad data directory, damaged WAL, port in use…)."""


@dataclass(slots=True)
class NodeConfig:
    node_id: str
    listen_host: str
    listen_port: int
    peers: dict[str, tuple[str, int]]  # other voters → where this node dials them
    data_dir: Path
    cluster_id: str = DEFAULT_CLUSTER_ID
    heartbeat_ms: float = 100.0
    election_timeout_ms: float = 1000.0
    snapshot_threshold: int = 4096
    read_mode: str = "read_index"
    bugs: frozenset[str] = frozenset()
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    request_timeout: float = 10.0
    seed: int | None = None
    # A new, empty node joining a running cluster (``raftlab node --join``): ``peers`` are
    # the members it was told of; it learns its role (learner, then voter) from the log.
    join: bool = False


@dataclass(slots=True, frozen=True)
class Timing:
    """Milliseconds turned into core ticks.

    One tick is a tenth of the election timeout (or the heartbeat, if shorter), so the
    randomized timeout [E, 2E) has ten distinct values: enough spread to make split votes
    rare (§5.2, §9.3) without a busy ticker.
    """

    tick_seconds: float
    heartbeat_ticks: int
    election_ticks: int

    @classmethod
    def from_ms(cls, heartbeat_ms: float, election_timeout_ms: float) -> Timing:
        if not (heartbeat_ms > 0 and math.isfinite(heartbeat_ms)):
            raise ValueError(f"heartbeat must be a positive number of ms, got {heartbeat_ms}")
        if not election_timeout_ms > 2 * heartbeat_ms:
            raise ValueError(
                f"election timeout ({election_timeout_ms} ms) must exceed twice the heartbeat "
                f"({heartbeat_ms} ms), or followers time out between heartbeats"
            )
        tick_ms = min(heartbeat_ms, election_timeout_ms / 10)
        heartbeat_ticks = max(1, round(heartbeat_ms / tick_ms))
        election_ticks = max(heartbeat_ticks + 1, round(election_timeout_ms / tick_ms))
        return cls(tick_ms / 1000.0, heartbeat_ticks, election_ticks)


def make_logger(node_id: str, stream: TextIO = sys.stderr) -> Callable[[str], None]:
    """One line per event: UTC timestamp (ms), node id, message. Flushed at once so a
    SIGKILL leaves every line written before it."""

    # The formatted second, reused within it: a node logs an "apply" line per Ready
    # (hundreds a second), and strftime was most of a line's cost.
    cached: list[Any] = [-1, ""]

    def log(line: str) -> None:
        now_ns = time.time_ns()
        second = now_ns // 1_000_000_000
        if second != cached[0]:
            cached[0] = second
            cached[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        stamp = f"{cached[1]}.{now_ns // 1_000_000 % 1000:03d}Z"
        try:
            stream.write(f"{stamp} {node_id} {line}\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not take the node down

    return log


class RequestError(Exception):
    """A well-framed client request with bad fields: answered ``malformed``."""


def validate_request(frame: dict[str, Any]) -> dict[str, Any]:
    """The command map the driver and the KV see: known fields only, types checked."""
    try:
        op = require_str(frame, "op")
        if op not in READ_OPS and op not in WRITE_OPS and op != TXN_OP:
            raise RequestError(f"unknown op {op!r:.40}")
        request: dict[str, Any] = {"op": op}
        if op in ("get", "put", "cas", "append", "delete"):
            request["key"] = require_key(frame, "key")
        if op in ("put", "append"):
            if "value" not in frame:
                raise RequestError("field 'value' is required")
            request["value"] = frame["value"]
        elif op == "cas":
            for name in ("from", "to"):
                if name not in frame:
                    raise RequestError(f"field {name!r} is required")
                request[name] = frame[name]
        elif op == "transfer":
            request["from_key"] = require_key(frame, "from_key")
            request["to_key"] = require_key(frame, "to_key")
            request["amount"] = require_int(frame, "amount", minimum=None)
        elif op == "mget":
            keys = frame.get("keys")
            if not isinstance(keys, list):
                raise RequestError("field 'keys' must be a list")
            request["keys"] = [require_key({"k": k}, "k") for k in keys]
        elif op == TXN_OP:  # raftnode/kv.py: a read-only txn may come without a session
            try:
                request["ops"] = validate_txn_ops(frame.get("ops"))
            except ValueError as error:
                raise RequestError(str(error)) from None
        if op in WRITE_OPS or (
            op == TXN_OP and ("client" in frame or txn_has_writes(request["ops"]))
        ):
            request["client"] = require_str(frame, "client")
            request["seq"] = require_int(frame, "seq")
    except FrameError as error:
        raise RequestError(error.reason) from None
    return request


@dataclass(slots=True)
class PeerLink:
    """The outbound half of one directed link (this node → peer)."""

    peer_id: str
    address: tuple[str, int]
    queue: deque[Message] = field(default_factory=deque)
    wakeup: trio.Event = field(default_factory=trio.Event)
    connected: bool = False
    dropped: int = 0
    stream: FrameStream | None = None  # while connected
    # Encoded bytes the socket did not take at once: they go before anything queued.
    backlog: bytearray = field(default_factory=bytearray)
    connected_at: float = 0.0  # Trio time of the current connection's hello_ok
    # Cancels the current connection (the silent-link watchdog); None while dialling.
    reset_scope: trio.CancelScope | None = None


class PeerTransport:
    """``raftnode.driver.Transport`` over the peer links.

    Messages are written to the peer's socket at once when it takes them (the common
    case); what it does not take, and everything while a link is busy or down, waits for
    the link's sender task, in order. A queue over its limit drops its oldest messages:
    Raft tolerates loss, and a stalled link must not eat memory.
    """

    def __init__(
        self, links: dict[str, PeerLink], encode: Callable[[Message], bytes | None]
    ) -> None:
        self.links = links
        self.encode = encode

    def send(self, messages: list[Message]) -> None:
        touched: set[str] = set()
        for msg in messages:
            link = self.links.get(msg.dst)
            if link is None:
                continue
            link.queue.append(msg)
            touched.add(msg.dst)
        for peer_id in touched:
            link = self.links[peer_id]
            if link.stream is not None and not link.backlog and not link.stream.sending:
                self._write_now(link, link.stream)
                continue
            overflow = len(link.queue) - PEER_QUEUE_LIMIT
            for _ in range(max(0, overflow)):
                link.queue.popleft()
                link.dropped += 1
            link.wakeup.set()

    def _write_now(self, link: PeerLink, stream: FrameStream) -> None:
        data = b"".join(filter(None, map(self.encode, link.queue)))
        link.queue.clear()
        try:
            kept = stream.write_or_keep(data, link.backlog)
        except OSError:
            return  # the link is broken: its task notices, reconnects; Raft resends
        if kept:
            link.wakeup.set()


class ResponseWriter:
    """Replies for one client connection: written at once when the socket takes them,
    else batched by the writer task (one send per wake-up)."""

    def __init__(self, stream: FrameStream, on_broken: Callable[[], None]) -> None:
        self.stream = stream
        self.on_broken = on_broken
        self.queue: list[dict[str, Any]] = []
        self.backlog = bytearray()  # encoded replies the socket did not take at once
        self.wakeup = trio.Event()
        self.sending = False
        self.broken = False

    @property
    def busy(self) -> bool:
        return bool(self.queue) or bool(self.backlog) or self.sending

    def put(self, frame: dict[str, Any], *, last: bool = True) -> None:
        """Queue a reply; ``last`` (no other request of this connection outstanding):
        write everything queued now, in one write, without waking the writer task.
        Otherwise the task sends the batch on its next turn (or the last reply does)."""
        if self.broken:
            return
        self.queue.append(frame)
        if not last or self.backlog or self.sending:
            self.wakeup.set()
            return
        batch, self.queue = self.queue, []
        try:
            data = b"".join(encode_frame(f, self.stream.max_frame_bytes) for f in batch)
            kept = self.stream.write_or_keep(data, self.backlog)
        except (OSError, FrameError):
            self.broken = True
            self.on_broken()
            return
        if kept:
            self.wakeup.set()

    async def run(self) -> None:
        try:
            while True:
                await self.wakeup.wait()
                self.wakeup = trio.Event()
                batch, self.queue = self.queue, []
                data = bytes(self.backlog) + b"".join(
                    encode_frame(frame, self.stream.max_frame_bytes) for frame in batch
                )
                self.backlog.clear()
                if not data:
                    continue
                self.sending = True
                await self.stream.send_raw(data)
                self.sending = False
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, FrameError):
            self.broken = True
            self.on_broken()


class NodeServer:
    def __init__(
        self,
        config: NodeConfig,
        *,
        clock: SkewableClock | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.log = log or make_logger(config.node_id)
        self.port: int | None = None
        self.driver: NodeDriver | None = None
        self.storage: Any = None
        seed = config.seed
        if seed is None:
            seed = random.SystemRandom().randrange(2**63)
        self.seed = seed
        self._rng = random.Random(seed)
        self.links = {
            peer_id: PeerLink(peer_id, address) for peer_id, address in config.peers.items()
        }
        # Membership (§4): links to members added later are started in the serving
        # nursery, each under its own cancel scope so a removed member's link stops.
        self._nursery: trio.Nursery | None = None
        self._link_scopes: dict[str, trio.CancelScope] = {}
        # Peer links heal within about two election timeouts of their path healing: a
        # silent link is redialled after that long (_watch_silent_links), a dial that
        # hangs gives up after that long, and the back-off between dials stays below half
        # an election timeout.
        election_seconds = config.election_timeout_ms / 1000.0
        self.silent_link_seconds = SILENT_LINK_TIMEOUTS * election_seconds
        self.dial_timeout = min(HELLO_TIMEOUT, max(self.silent_link_seconds, PEER_DIAL_TIMEOUT_MIN))
        self.backoff_max = min(BACKOFF_MAX, max(BACKOFF_MIN, election_seconds / 2))
        self._answered: dict[str, float] = {}  # peer -> when its last append answer came
        self._inbound: dict[str, set[trio.CancelScope]] = {}  # peer -> its open links to us
        # Client requests waiting for a leader to be known (_answer_or_park): (frame,
        # on_answer, until when, the no_leader answer they get if none is by then). One
        # heartbeat: an election after a reset takes a few ms; a node cut off from the
        # leader keeps answering no_leader, a heartbeat later instead of at once.
        self._parked: list[
            tuple[dict[str, Any], Callable[[dict[str, Any]], None], float, dict[str, Any]]
        ] = []
        self._park_seconds = config.heartbeat_ms / 1000.0
        self._parked_timer = False
        self.silent_resets = 0

    # --- start-up --------------------------------------------------------------------

    def _build_driver(self) -> NodeDriver:
        from raftnode.core import RaftConfig, RaftCore
        from raftnode.kv import KVStateMachine, encode_command
        from raftnode.storage.interface import StorageError
        from raftnode.storage.wal import FileStorage

        config = self.config
        timing = Timing.from_ms(config.heartbeat_ms, config.election_timeout_ms)
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            storage = FileStorage(config.data_dir, bugs=config.bugs, log=self.log)
            restored = storage.load()
        except (StorageError, OSError) as error:
            raise NodeStartError(
                f"cannot open the data directory {config.data_dir}: {error}"
            ) from None
        self.storage = storage
        state_machine = KVStateMachine(bugs=config.bugs)
        applied_index = applied_term = 0
        if restored.snapshot is not None:
            state_machine.restore(restored.snapshot.data)
            applied_index = restored.snapshot.meta.index
            applied_term = restored.snapshot.meta.term
        raft_config = RaftConfig(
            node_id=config.node_id,
            peers=tuple(
                sorted(set(config.peers) if config.join else {config.node_id, *config.peers})
            ),
            joining=config.join,
            election_ticks=timing.election_ticks,
            heartbeat_ticks=timing.heartbeat_ticks,
            snapshot_threshold=config.snapshot_threshold,
            read_mode=config.read_mode,
            bugs=config.bugs,
        )
        try:
            core = RaftCore(raft_config, random.Random(self._rng.randrange(2**63)), restored)
        except ValueError as error:  # the stored state breaks a Raft invariant
            raise NodeStartError(f"the state in {config.data_dir} is not usable: {error}") from None
        self.log(
            f"starting cluster={config.cluster_id} peers={','.join(sorted(config.peers))} "
            f"tick={timing.tick_seconds * 1000:g}ms heartbeat_ticks={timing.heartbeat_ticks} "
            f"election_ticks={timing.election_ticks} read_mode={config.read_mode} "
            f"snapshot_threshold={config.snapshot_threshold} seed={self.seed} "
            f"restored_term={restored.hard_state.term} restored_entries={len(restored.entries)} "
            f"snapshot_index={applied_index}"
            + (f" UNSAFE bugs={','.join(sorted(config.bugs))}" if config.bugs else "")
        )
        return NodeDriver(
            core,
            storage,
            state_machine,
            PeerTransport(self.links, self._encode_peer_message),
            tick_seconds=timing.tick_seconds,
            log=self.log,
            encode_command=encode_command,
            read_mode=config.read_mode,
            bugs=config.bugs,
            request_timeout=config.request_timeout,
            log_applied=True,  # the campaign's acknowledged-writes checker reads these
            # No fsync thread: the ready loop fsyncs in place (~0.2 ms here). Handing it
            # to a thread cost two task wake-ups and ~160 us of CPU per Ready, more than
            # the fsync; while it runs, what arrives waits in the socket buffers and joins
            # the next Ready (group commit), and a leader's appends have already left
            # (written to the sockets before its own fsync, §10.2.1).
            applied_index=applied_index,
            applied_term=applied_term,
        )

    def _encode_peer_message(self, msg: Message) -> bytes | None:
        try:
            return encode_frame(
                {"type": "raft", "msg": message_to_wire(msg)}, self.config.max_frame_bytes
            )
        except FrameError as error:
            self.log(f"dropping a {msg.type} to {msg.dst}: {error.reason}")
            return None

    def prepare(self) -> None:
        """Open storage and build the driver (NodeStartError on a bad data directory)."""
        if self.driver is None:
            self.driver = self._build_driver()
            self.driver.on_conf_change = self._conf_changed
            self.driver.on_leader_change = self._leader_changed

    async def bind(self) -> list[trio.SocketListener]:
        """Listen on the configured address (NodeStartError if it is taken)."""
        try:
            listeners = await trio.open_tcp_listeners(
                self.config.listen_port, host=self.config.listen_host
            )
        except OSError as error:
            raise NodeStartError(
                f"cannot listen on {self.config.listen_host}:{self.config.listen_port}: {error}"
            ) from None
        self.port = listeners[0].socket.getsockname()[1]
        return listeners

    async def serve(
        self,
        listeners: list[trio.SocketListener] | None = None,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the node until cancelled; ``task_status.started(port)`` once listening."""
        self.prepare()
        assert self.driver is not None
        if listeners is None:
            listeners = await self.bind()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, self._handle_connection, listeners)
                self.log(f"listening on {self.config.listen_host}:{self.port}")
                await nursery.start(self.driver.run)
                self._nursery = nursery
                for link in list(self.links.values()):
                    self._start_link(link)
                if self.links:
                    nursery.start_soon(self._watch_silent_links)
                task_status.started(self.port)
        finally:
            with trio.CancelScope(shield=True):
                if self.storage is not None:
                    await trio.to_thread.run_sync(self.storage.close)

    # --- outbound peer links ---------------------------------------------------------

    async def _run_link(self, link: PeerLink) -> None:
        """Dial the peer, pump the link until it breaks, redial with back-off; forever.

        Whatever the peer does (dies, pauses, resets, goes silent) ends one connection,
        never this task: errors are caught inside ``_pump_link``'s nursery and, should one
        still come out of a nursery as an ExceptionGroup, by ``except*`` here.
        """
        backoff = BACKOFF_MIN
        failures = 0
        next_failure_log = 0.0
        host, port = link.address
        while True:
            stream: FrameStream | None = None
            silent = False
            try:
                with trio.fail_after(self.dial_timeout):  # a black hole must not stall the link
                    raw = await trio.open_tcp_stream(host, port)
                    stream = FrameStream(raw, self.config.max_frame_bytes)
                    await stream.send(
                        hello_frame(self.config.cluster_id, self.config.node_id, "peer")
                    )
                    reply = await stream.receive()
                if reply is None:
                    raise ConnectionError("peer closed the connection during the hello")
                if reply.get("type") != "hello_ok":
                    raise ConnectionError(f"peer refused the hello: {reply.get('error')!r:.80}")
                link.connected = True
                link.connected_at = trio.current_time()
                self.log(f"peer {link.peer_id} connected at {host}:{port}")
                failures = 0
                backoff = BACKOFF_MIN
                with trio.CancelScope() as reset_scope:
                    link.reset_scope = reset_scope
                    reason = await self._pump_link(link, stream)
                link.reset_scope = None
                if reset_scope.cancelled_caught:
                    silent = True
                    reason = "silent link, redialling"
            except* (*CONNECTION_ERRORS, FrameError, trio.TooSlowError, ConnectionError) as group:
                reason = _describe(group)
            finally:
                link.reset_scope = None
                if stream is not None:
                    with trio.CancelScope(shield=True):
                        if silent:
                            _abort_on_close(stream.stream)  # its unsent bytes are stale
                        await stream.stream.aclose()
            was_connected = link.connected
            link.connected = False
            link.stream = None
            link.queue.clear()  # stale by the time we are back; Raft resends what matters
            link.backlog.clear()
            failures += 1
            now = trio.current_time()
            if was_connected or failures == 1 or now >= next_failure_log:
                self.log(
                    f"peer {link.peer_id} at {host}:{port} "
                    f"{'lost' if was_connected else 'unreachable'}: {reason}"
                    + (f" ({failures} attempts)" if failures > 1 else "")
                )
                next_failure_log = now + UNREACHABLE_LOG_INTERVAL
            await trio.sleep(backoff * (0.5 + self._rng.random()))
            backoff = min(backoff * 2, self.backoff_max)

    async def _pump_link(self, link: PeerLink, stream: FrameStream) -> str:
        """Send queued messages in batches until the link breaks; returns why it ended.

        Both tasks catch their connection errors themselves: an exception leaving this
        nursery would come out as an ExceptionGroup (Trio), which is how a follower's
        SIGKILL used to take its leader down with it.
        """
        ended = ["closed by the peer"]
        async with trio.open_nursery() as nursery:

            async def watch_for_close() -> None:
                # The receiver never speaks after hello_ok; EOF or anything else means the
                # link is gone (or a proxy reset it): reconnect.
                try:
                    frame = await stream.receive()
                    if frame is not None:
                        ended[0] = f"unexpected {frame.get('type')!r:.40} frame from the peer"
                except (*CONNECTION_ERRORS, FrameError) as error:
                    ended[0] = f"{type(error).__name__}: {error}"
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_for_close)
            link.stream = stream
            try:
                while True:
                    await link.wakeup.wait()
                    link.wakeup = trio.Event()
                    if not link.queue and not link.backlog:
                        continue
                    data = bytes(link.backlog) + b"".join(
                        filter(None, map(self._encode_peer_message, link.queue))
                    )
                    link.backlog.clear()
                    link.queue.clear()
                    await stream.send_raw(data)
            except CONNECTION_ERRORS as error:
                ended[0] = f"{type(error).__name__}: {error}"
                nursery.cancel_scope.cancel()
            finally:
                link.stream = None
        return ended[0]

    async def _watch_silent_links(self) -> None:
        """Redial a peer link that went silent while the path looks open.

        A path that drops packets without closing the connection (a one-way partition in
        the kernel, a black hole) leaves TCP retransmitting with exponential back-off:
        after the path heals, the connection carries nothing until the next
        retransmission, which comes up to two minutes later. Raft tells us when a link is
        silent: a follower answers every append and heartbeat of its leader (§5.2, §5.3),
        so a leader that gets no answer from a peer for ``SILENT_LINK_TIMEOUTS`` election
        timeouts while its link to that peer is up closes both directions of the link
        (it redials its own; the peer redials its own when ours closes). Either direction
        being black-holed silences the answers, so this covers both. A paused or dead peer
        is silent too; redialling it costs one connection attempt per period.

        A leader whose own loop stalled (its watchdog woke late) skips that round: the
        answers may be waiting, unread, in its socket buffers.
        """
        assert self.driver is not None
        period = self.silent_link_seconds / 4
        led_since: float | None = None  # when this node (last) became leader, in its term
        led_term = -1
        woke = trio.current_time()
        while True:
            await trio.sleep(period)
            now = trio.current_time()
            stalled = now - woke > 2 * period
            woke = now
            status = self.driver.status()
            if status["role"] != "leader":
                led_since = None
                continue
            if led_since is None or status["term"] != led_term:
                led_since, led_term = now, status["term"]
                continue
            if stalled:
                continue
            for link in self.links.values():
                scope = link.reset_scope
                if not link.connected or scope is None or scope.cancel_called:
                    continue  # dialling (the dial timeout bounds that), or being reset
                quiet_since = max(
                    self._answered.get(link.peer_id, -math.inf), led_since, link.connected_at
                )
                if now - quiet_since >= self.silent_link_seconds:
                    self._reset_peer(link, now - quiet_since)

    def _reset_peer(self, link: PeerLink, quiet: float) -> None:
        self.silent_resets += 1
        self.log(
            f"peer {link.peer_id} silent for {quiet:.2f} s (no append answer to this "
            f"leader): redialling peer link"
        )
        if link.reset_scope is not None:
            link.reset_scope.cancel()
        for scope in self._inbound.get(link.peer_id, ()):
            scope.cancel()

    # --- inbound connections ---------------------------------------------------------

    async def _handle_connection(self, raw: trio.SocketStream) -> None:
        try:
            host, port = raw.socket.getpeername()[:2]
            peer_name = f"{host}:{port}"
        except OSError:
            peer_name = "?"
        stream = FrameStream(raw, self.config.max_frame_bytes)
        error_reply: dict[str, Any] | None = None
        try:
            with trio.fail_after(HELLO_TIMEOUT):
                first = await stream.receive()
            if first is None:
                return
            hello = parse_hello(first)
            if hello.cluster != self.config.cluster_id:
                self.log(
                    f"refusing {peer_name}: cluster id {hello.cluster!r:.60} is not "
                    f"{self.config.cluster_id!r}"
                )
                error_reply = {
                    "type": "error",
                    "error": "cluster_mismatch",
                    "expected": self.config.cluster_id,
                }
                return
            if hello.role == "peer" and hello.sender not in self.links:
                self.log(f"refusing {peer_name}: {hello.sender!r:.60} is not a peer")
                error_reply = {"type": "error", "error": "unknown_peer"}
                return
            await stream.send({"type": "hello_ok", "node": self.config.node_id})
            if hello.role == "peer":
                await self._serve_peer(stream, hello.sender)
            else:
                error_reply = await self._serve_client(stream, hello.role, peer_name)
        # except*: an error may reach here wrapped in an ExceptionGroup by a nursery
        # below; whatever the other side does ends this connection, never the node.
        except* FrameError as group:
            error = _first_leaf(group)
            assert isinstance(error, FrameError)
            self.log(f"closing connection from {peer_name}: {error.reason}")
            error_reply = {"type": "error", "error": error.code, "reason": error.reason}
        except* trio.TooSlowError:
            self.log(f"closing connection from {peer_name}: no hello within {HELLO_TIMEOUT} s")
        except* CONNECTION_ERRORS:
            pass  # the other side went away: nothing to answer
        finally:
            with trio.CancelScope(shield=True):
                if error_reply is not None:
                    with trio.move_on_after(1.0):
                        try:
                            await stream.send(error_reply)
                        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                            pass
                await raw.aclose()

    async def _serve_peer(self, stream: FrameStream, sender: str) -> None:
        assert self.driver is not None
        node_id = self.config.node_id
        # The silent-link watchdog may close this link (cancel) to make the peer redial.
        inbound = self._inbound.setdefault(sender, set())
        with trio.CancelScope() as scope:
            inbound.add(scope)
            try:
                while True:
                    try:
                        frames = await stream.receive_batch()
                    except CONNECTION_ERRORS:
                        self.driver.peer_connection_reset(sender)  # a reset: it died
                        raise
                    if not frames:
                        # End of stream: the peer's process closed the link (or died and
                        # its kernel closed it). A follower may start a pre-vote at once
                        # if that was its leader; a partition never closes a link.
                        self.driver.peer_connection_reset(sender)
                        return
                    self._peer_frames(frames, sender, node_id)
            finally:
                inbound.discard(scope)

    def _peer_frames(self, frames: list[dict[str, Any]], sender: str, node_id: str) -> None:
        driver = self.driver
        assert driver is not None
        # One batch: the Ready these frames make is handled here, in this task, when
        # the last one is stepped (NodeDriver.batch), not by waking the ready loop.
        with driver.batch():
            answered = self._step_peer_frames(frames, sender, node_id)
        if answered:  # the silent-link watchdog's evidence that the link works both ways
            self._answered[sender] = trio.current_time()

    def _step_peer_frames(self, frames: list[dict[str, Any]], sender: str, node_id: str) -> bool:
        assert self.driver is not None
        answered = False
        for frame in frames:
            if frame["type"] != "raft":
                raise FrameError(f"unexpected frame type {frame['type']!r:.40} on a peer link")
            try:
                msg = message_from_wire(frame.get("msg"))
            except MessageError as error:
                raise FrameError(f"bad raft message from {sender}: {error}") from None
            if msg.src != sender or msg.dst != node_id:
                raise FrameError(
                    f"foreign raft message {msg.src}->{msg.dst} on the link from {sender}"
                )
            if msg.type in _PEER_ANSWERS:
                answered = True
            self.driver.receive(msg)
        return answered

    def _client_frames(
        self,
        frames: list[dict[str, Any]],
        writer: ResponseWriter,
        in_flight: list[int],
        peer_name: str,
    ) -> None:
        driver = self.driver
        assert driver is not None
        with driver.batch():  # as in _peer_frames: proposals handled here, one Ready
            self._start_client_frames(frames, writer, in_flight, peer_name)

    def _start_client_frames(
        self,
        frames: list[dict[str, Any]],
        writer: ResponseWriter,
        in_flight: list[int],
        peer_name: str,
    ) -> None:
        driver = self.driver
        assert driver is not None
        for frame in frames:
            frame_type = frame["type"]
            request_id = require_int(frame, "id")
            if frame_type == "request":
                in_flight[0] += 1
                on_answer = partial(_send_answer, writer, request_id, in_flight)
                if driver.core.leader is None:  # an election may be under way: _answer_or_park
                    on_answer = partial(
                        self._answer_or_park,
                        frame,
                        on_answer,
                        trio.current_time() + self._park_seconds,
                    )
                start_answer(
                    driver,
                    frame,
                    max_request_bytes=self.config.max_request_bytes,
                    on_answer=on_answer,
                )
            elif frame_type == "status":
                writer.put(self._status_reply(request_id), last=not in_flight[0])
            elif frame_type == "admin" and frame.get("action") in MEMBERSHIP_ACTIONS:
                self._membership_admin(frame, request_id, writer, in_flight)
            elif frame_type == "admin":  # clients may skew clocks too: no auth
                writer.put(self._admin(frame, request_id, peer_name), last=not in_flight[0])
            else:
                raise FrameError(f"unknown frame type {frame_type!r:.40}")

    async def _serve_client(
        self, stream: FrameStream, role: str, peer_name: str
    ) -> dict[str, Any] | None:
        """Serve requests until EOF; returns the error frame to send on a bad frame."""
        bad_frame: FrameError | None = None
        in_flight = [0]  # requests being answered (a list: shared with their tasks)
        async with trio.open_nursery() as nursery:
            writer = ResponseWriter(stream, nursery.cancel_scope.cancel)
            nursery.start_soon(writer.run)
            try:
                while True:
                    frames = await stream.receive_batch()
                    if not frames:
                        break
                    self._client_frames(frames, writer, in_flight, peer_name)
                # End of the client's requests (it may still read): answer what is in
                # flight, within the request timeout, before closing.
                with trio.move_on_after(self.config.request_timeout + 1.0):
                    while in_flight[0] or writer.busy:
                        await trio.sleep(0.005)
            except FrameError as error:
                bad_frame = error
            except CONNECTION_ERRORS:
                # The client went away (a reset, say): caught here, inside the nursery,
                # or it would leave as an ExceptionGroup.
                pass
            nursery.cancel_scope.cancel()
        writer.broken = True  # answers that come later have nowhere to go
        if bad_frame is not None:
            raise bad_frame
        return None

    # --- requests that wait for a leader ---------------------------------------------

    def _answer_or_park(
        self,
        frame: dict[str, Any],
        on_answer: Callable[[dict[str, Any]], None],
        park_until: float,
        answer: dict[str, Any],
    ) -> None:
        """A request that met a node knowing no leader waits (until ``park_until``) for
        one to be known, instead of taking ``no_leader`` back at once: right after a
        leader's crash the election takes a few milliseconds, while a client told
        ``no_leader`` polls the nodes with back-off and found the new leader tens of
        milliseconds late (most of a failover here). It is then started again: proposed
        if this node won, else answered ``not_leader`` with the new leader, whom the
        client asks at once. Safe: ``no_leader`` means nothing was proposed or
        registered (a definite failure), so starting it again is a first attempt."""
        if (
            answer.get("error") != "no_leader"
            or self._nursery is None  # not serving yet: nothing would answer it later
            or trio.current_time() >= park_until
        ):
            on_answer(answer)
            return
        self._parked.append((frame, on_answer, park_until, answer))
        if not self._parked_timer:
            self._parked_timer = True
            self._nursery.start_soon(self._expire_parked)

    def _leader_changed(self) -> None:
        """Driver hook: once a leader is known, start the parked requests again."""
        assert self.driver is not None
        if not self._parked or self.driver.core.leader is None:
            return
        parked, self._parked = self._parked, []
        for frame, on_answer, park_until, _answer in parked:
            start_answer(
                self.driver,
                frame,
                max_request_bytes=self.config.max_request_bytes,
                on_answer=partial(self._answer_or_park, frame, on_answer, park_until),
            )

    async def _expire_parked(self) -> None:
        """Answer the parked requests whose wait is over with their ``no_leader``."""
        try:
            while self._parked:
                await trio.sleep_until(min(item[2] for item in self._parked))
                now = trio.current_time()
                due = [item for item in self._parked if item[2] <= now]
                self._parked = [item for item in self._parked if item[2] > now]
                for _frame, on_answer, _until, answer in due:
                    on_answer(answer)
        finally:
            self._parked_timer = False

    # --- membership (§4) and leadership transfer (§3.10) ----------------------------

    def _start_link(self, link: PeerLink) -> None:
        assert self._nursery is not None
        scope = trio.CancelScope()
        self._link_scopes[link.peer_id] = scope

        async def run() -> None:
            with scope:
                await self._run_link(link)

        self._nursery.start_soon(run)

    def _conf_changed(self, conf: ConfState) -> None:
        """The configuration in force changed: dial new members (at the address given on
        the command line if any, else the one in the configuration), stop removed ones."""
        members = set(conf.members) - {self.config.node_id}
        addresses = conf.address_map()
        for member in sorted(members - set(self.links)):
            address = self.config.peers.get(member)
            if address is None:
                try:
                    address = parse_address(addresses[member])
                except (KeyError, ValueError):
                    self.log(f"member {member} has no usable address: not dialling it")
                    continue
            link = PeerLink(member, address)
            self.links[member] = link
            self.log(f"peer {member} added at {address[0]}:{address[1]}")
            if self._nursery is not None:
                self._start_link(link)
        for member in sorted(set(self.links) - members):
            del self.links[member]
            scope = self._link_scopes.pop(member, None)
            if scope is not None:
                scope.cancel()
            self.log(f"peer {member} removed: link closed")

    def _membership_admin(
        self,
        frame: dict[str, Any],
        request_id: int,
        writer: ResponseWriter,
        in_flight: list[int],
    ) -> None:
        """``member_list``, ``member_add`` (node, address, learner), ``member_promote``,
        ``member_remove`` (node) and ``transfer_leader`` (node): answered with an
        ``admin_reply`` when the change is committed here (or refused)."""
        assert self.driver is not None
        in_flight[0] += 1
        head = {"type": "admin_reply", "id": request_id}

        def answer(result: dict[str, Any] | Exception) -> None:
            in_flight[0] -= 1
            writer.put({**head, **answer_of(result)}, last=not in_flight[0])

        action = frame["action"]
        if action == "member_list":
            conf = self.driver.core.conf_state()
            value = {
                "voters": list(conf.voters),
                "learners": list(conf.learners),
                "addresses": conf.address_map(),
                "leader": self.driver.core.status().leader,
            }
            answer({"ok": True, "value": value})
            return
        node = frame.get("node")
        address = frame.get("address", "")
        if not isinstance(node, str) or not node or not isinstance(address, str):
            answer({"ok": False, "error": "malformed"})
            return
        if action == "transfer_leader":
            self.driver.start_transfer(node, answer)
            return
        if action == "member_add":
            if address:
                try:
                    parse_address(address)
                except ValueError:
                    answer({"ok": False, "error": "malformed"})
                    return
            learner = frame.get("learner", True)
            kind = ConfChangeType.ADD_LEARNER if learner else ConfChangeType.ADD_VOTER
        elif action == "member_promote":
            kind = ConfChangeType.PROMOTE
        else:
            kind = ConfChangeType.REMOVE
        self.driver.start_conf_change(ConfChange(kind, node, address), answer)

    async def hand_over(self) -> None:
        """§3.10 on shutdown: a leader hands leadership to its most up-to-date voter and
        waits (at most two election timeouts) for it to take over, so a rolling restart
        costs no election timeout."""
        driver = self.driver
        if driver is None or driver.core.status().role.value != "leader":
            return
        target = driver.core.best_transfer_target()
        if target is None:
            return
        self.log(f"handing leadership to {target} before stopping")
        driver.start_transfer(target, lambda result: None)
        with trio.move_on_after(2 * self.config.election_timeout_ms / 1000.0):
            while driver.core.status().role.value == "leader":
                await trio.sleep(0.005)
        self.log(f"leader now {driver.core.status().leader}")

    def _status_reply(self, request_id: int) -> dict[str, Any]:
        assert self.driver is not None
        return {
            "type": "status_reply",
            "id": request_id,
            "node": self.config.node_id,
            **self.driver.status(),
        }

    def _admin(self, frame: dict[str, Any], request_id: int, peer_name: str) -> dict[str, Any]:
        reply: dict[str, Any] = {"type": "admin_reply", "id": request_id}
        action = frame.get("action")
        if action != "clock":
            return {**reply, "ok": False, "error": "malformed", "reason": "unknown action"}
        if self.clock is None:
            return {**reply, "ok": False, "error": "unsupported", "reason": "no skewable clock"}
        try:
            offset = optional_number(frame, "offset")
            rate = optional_number(frame, "rate")
            self.clock.set(offset=offset, rate=rate)
        except (FrameError, ClockError) as error:
            reason = error.reason if isinstance(error, FrameError) else str(error)
            return {**reply, "ok": False, "error": "malformed", "reason": reason}
        self.log(
            f"clock set by {peer_name}: offset={self.clock.offset:g}s rate={self.clock.rate:g}"
        )
        return {**reply, "ok": True}


MEMBERSHIP_ACTIONS = frozenset(
    {"member_list", "member_add", "member_promote", "member_remove", "transfer_leader"}
)


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _describe(group: BaseExceptionGroup[Any]) -> str:
    error = _first_leaf(group)
    return f"{type(error).__name__}: {error}"


def _abort_on_close(stream: trio.abc.Stream) -> None:
    """Make the coming close send a TCP reset and drop unsent bytes (SO_LINGER 0)."""
    linger = struct.pack("ii", 1, 0)
    try:
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)  # type: ignore[attr-defined]
    except (OSError, AttributeError, trio.ClosedResourceError):
        pass


def start_answer(
    driver: NodeDriver,
    frame: dict[str, Any],
    *,
    max_request_bytes: int,
    on_answer: Callable[[dict[str, Any]], None],
) -> None:
    """Start answering one client request frame: ``on_answer`` gets the answer (without
    its ``type`` and ``id``) exactly once, now or when the driver knows it. What the node
    process sends back, and what the simulation's nodes answer too."""
    try:
        request = validate_request(frame)
        # Sized as the entry it becomes, and the driver proposes these very bytes
        # instead of encoding the command a second time.
        encoded = driver.encode_command(request)
        if len(encoded) > max_request_bytes:
            on_answer({"ok": False, "error": "too_large"})
            return
    except RequestError as error:
        on_answer({"ok": False, "error": "malformed", "reason": str(error)})
        return
    driver.start(request, lambda result: on_answer(answer_of(result)), encoded)


def answer_of(result: dict[str, Any] | Exception) -> dict[str, Any]:
    """A driver result (reply map or exception) as the answer a client receives."""
    if isinstance(result, NotLeaderError):
        return {"ok": False, "error": result.code, "leader": result.leader}
    if isinstance(result, OutcomeUnknownError):
        return {"ok": False, "error": "outcome_unknown"}
    if isinstance(result, TimeoutError):
        return {"ok": False, "error": "timeout"}
    if isinstance(result, Exception):
        raise result  # not a client outcome: a bug in the driver
    if result.get("ok"):
        return {"ok": True, "value": result.get("value")}
    return {"ok": False, "error": result.get("error", "unknown")}


async def answer_request(
    driver: NodeDriver, frame: dict[str, Any], *, max_request_bytes: int
) -> dict[str, Any]:
    """``start_answer`` as a coroutine: the answer to one client request frame."""
    answered = trio.Event()
    answers: list[dict[str, Any]] = []

    def on_answer(answer: dict[str, Any]) -> None:
        answers.append(answer)
        answered.set()

    start_answer(driver, frame, max_request_bytes=max_request_bytes, on_answer=on_answer)
    with trio.move_on_after(driver.request_timeout):
        await answered.wait()
    return answers[0] if answers else {"ok": False, "error": "timeout"}


def _send_answer(
    writer: ResponseWriter, request_id: int, in_flight: list[int], answer: dict[str, Any]
) -> None:
    in_flight[0] -= 1
    writer.put({"type": "response", "id": request_id, **answer}, last=not in_flight[0])


def run_node(config: NodeConfig) -> int:
    """Run a node in this process until SIGTERM/SIGINT. Returns the exit status."""
    clock = SkewableClock()
    log = make_logger(config.node_id)

    async def main() -> int:
        server = NodeServer(config, clock=clock, log=log)
        server.prepare()
        listeners = await server.bind()
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for signum in signals:
                        log(f"stopping on {signal.Signals(signum).name}")
                        await server.hand_over()
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(stop_on_signal)
                await server.serve(listeners)
        log("stopped")
        return 0

    try:
        profile_dir = os.environ.get(PROFILE_ENV)
        if profile_dir:  # a developer's profile of this node (bench/profile_node.py)
            return _run_profiled(main, clock, Path(profile_dir) / f"{config.node_id}.prof")
        return trio.run(main, clock=clock)
    except NodeStartError as error:
        log(f"cannot start: {error}")
        return 1
    except BaseException as error:  # a crash: say so in the node's log before the traceback
        if not isinstance(error, KeyboardInterrupt | SystemExit):
            log(f"crashed: {type(error).__name__}: {error}")
        raise


# Set to a directory: the node runs under cProfile and writes ``<id>.prof`` there when
# it stops (SIGTERM/SIGINT; a SIGKILL writes nothing). For profiling only: it costs CPU.
# The profile counts this process's CPU time (a wall-clock profile on a loaded machine
# charges a socket write with the time the woken receiver ran instead);
# RAFTNODE_PROFILE_CLOCK=wall counts wall time.
PROFILE_ENV = "RAFTNODE_PROFILE"
PROFILE_CLOCK_ENV = "RAFTNODE_PROFILE_CLOCK"


def _run_profiled(main: Callable[[], Any], clock: SkewableClock, path: Path) -> int:
    import cProfile

    if os.environ.get(PROFILE_CLOCK_ENV) == "wall":
        profiler = cProfile.Profile()
    else:
        profiler = cProfile.Profile(time.process_time)
    try:
        return profiler.runcall(trio.run, main, clock=clock)
    finally:
        path.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(path)
