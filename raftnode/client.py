"""Async (Trio) client for a raftnode cluster.

It finds the leader by following the ``leader`` hints of ``not_leader`` replies, retries
a request until it gets an answer or its deadline passes, and tells the caller precisely
what it knows (conventions §3):

- success: the reply's value;
- ``ClientError(definite=True)``: the operation certainly did not take effect
  (``not_leader``/``no_leader`` on every attempt, ``cas_mismatch``, ``not_found``,
  ``malformed``, ``too_large``, ``insufficient_funds``, ``stale_seq``, or ``unavailable``:
  no node could even be reached, so nothing was sent);
- ``ClientError(definite=False)``: it may or may not have taken effect (``timeout``,
  ``connection_lost``, ``outcome_unknown``).

Exactly once (Raft dissertation §6.3): every write carries (client id, seq) and every
retry of it reuses the same pair, so a write that was applied after its first attempt
timed out is not applied again: the retry gets the cached reply. Once an attempt may
have reached a leader, a later "not leader" no longer proves anything (the first attempt
may still commit), so the error stays indefinite.

Concurrency: one ``RaftClient`` may run many requests at once (one TCP connection per
node, replies matched by id). The KV keeps one cached reply per client id, so two
writes of the same client id must never be in flight together: a retry of the older
one would then meet ``stale_seq``. The client therefore runs each in-flight write in its
own *session*: ``client_id`` for the first, ``client_id.1``, ``client_id.2``… for
concurrent ones, each with its own increasing seq. Use one ``RaftClient`` (one client id)
per logical process, as the workloads do; ids must be unique in the cluster.
"""

from __future__ import annotations

import itertools
import math
import random
import secrets
import zlib
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import trio

from raftnode.wire import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameError,
    FrameStream,
    encode_frame,
    hello_frame,
)

DEFAULT_CLUSTER_ID = "raftlab"
WRITE_OPS = frozenset({"put", "cas", "append", "delete", "transfer", "txn"})
DEFINITE_CODES = frozenset(
    {
        "not_leader",
        "no_leader",
        "cas_mismatch",
        "not_found",
        "malformed",
        "too_large",
        "insufficient_funds",
        "stale_seq",
        "unavailable",
    }
)
INDEFINITE_CODES = frozenset({"timeout", "connection_lost", "node_crashed", "outcome_unknown"})
BACKOFF_MIN = 0.005
BACKOFF_MAX = (
    0.05  # polls a leaderless cluster ~20 times a second: cheap, and failover is seen fast
)


class ClientError(Exception):
    """A request that did not succeed. ``definite``: it certainly did not take effect."""

    def __init__(
        self,
        code: str,
        *,
        definite: bool,
        leader: str | None = None,
        node: str | None = None,
        detail: str | None = None,
    ) -> None:
        text = f"{code} ({'definite' if definite else 'outcome unknown'})"
        if node:
            text += f" from {node}"
        if detail:
            text += f": {detail}"
        super().__init__(text)
        self.code = code
        self.definite = definite
        self.leader = leader
        self.node = node
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": False,
            "error": self.code,
            "definite": self.definite,
            "leader": self.leader,
            "node": self.node,
            "detail": self.detail,
        }


class _Lost(Exception):
    """The connection broke. ``sent``: the request may have reached the node."""

    def __init__(self, sent: bool, detail: str) -> None:
        super().__init__(detail)
        self.sent = sent


class _ConnectFailed(Exception):
    pass


@dataclass(slots=True)
class _Slot:
    event: trio.Event = field(default_factory=trio.Event)
    reply: dict[str, Any] | None = None
    lost: str | None = None
    sent: bool = False


class _Connection:
    """One TCP connection to one node; requests multiplexed by id.

    Requests queue in an outbox that one writer task flushes with a single ``send_all``
    per wake-up, so many requests in flight cost one syscall per batch, not one each.
    """

    def __init__(self, node_id: str, stream: FrameStream) -> None:
        self.node_id = node_id
        self.stream = stream
        self.pending: dict[int, _Slot] = {}
        self.closed = False
        self.close_reason = ""
        self._outbox: list[tuple[bytes, _Slot]] = []
        self._wakeup = trio.Event()

    async def read_replies(self) -> None:
        reason = "connection closed by the node"
        try:
            while True:
                frames = await self.stream.receive_batch()
                if not frames:
                    break
                for frame in frames:
                    if frame.get("type") == "error":
                        reason = f"node closed the connection: {frame.get('error')!r:.60}"
                        continue
                    slot = self.pending.pop(frame.get("id"), None)  # type: ignore[arg-type]
                    if slot is not None:
                        slot.reply = frame
                        slot.event.set()
        except (FrameError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
            reason = f"{type(error).__name__}: {error}"
        finally:
            self.mark_closed(reason)

    async def write_requests(self) -> None:
        try:
            while not self.closed:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                if not self._outbox or self.closed:
                    continue
                batch, self._outbox = self._outbox, []
                for _, slot in batch:
                    slot.sent = True  # from here on the node may have decoded it
                await self.stream.send_raw(b"".join(data for data, _ in batch))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
            self.mark_closed(f"{type(error).__name__}: {error}")

    def mark_closed(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
        for slot in self.pending.values():
            slot.lost = reason
            slot.event.set()
        self.pending.clear()
        self._outbox.clear()
        self._wakeup.set()

    async def call(self, frame: dict[str, Any], request_id: int, timeout: float) -> dict[str, Any]:
        """Send one request and wait for its reply. Raises _Lost or trio.TooSlowError."""
        if self.closed:
            raise _Lost(False, self.close_reason)
        data = encode_frame(frame, self.stream.max_frame_bytes)  # FrameError: too large
        slot = _Slot()
        alone = not self.pending
        self.pending[request_id] = slot
        written = 0
        if alone and not self._outbox and not self.stream.sending:
            # The only request outstanding: straight to the socket (no writer-task
            # wake-up). With others in flight, the writer task batches many requests
            # into one send instead. What the socket does not take goes first in the
            # outbox.
            try:
                written = self.stream.write_nowait(data)
            except OSError as error:
                self.mark_closed(f"{type(error).__name__}: {error}")
                raise _Lost(False, self.close_reason) from None
            if written:
                slot.sent = True  # from here on the node may have decoded it
        if written < len(data):
            self._outbox.append((data[written:], slot))
            self._wakeup.set()
        try:
            with trio.fail_after(max(timeout, 0.0)):
                await slot.event.wait()
        finally:
            self.pending.pop(request_id, None)
        if slot.reply is None:
            # Never handed to the socket: the node cannot have seen it (definite).
            raise _Lost(slot.sent, slot.lost or "connection lost")
        return slot.reply


@dataclass(slots=True)
class _Session:
    client_id: str
    next_seq: int = 1


class RaftClient:
    """See the module docstring. Use as ``async with RaftClient(cluster) as client:``."""

    def __init__(
        self,
        cluster: dict[str, tuple[str, int]],
        client_id: str | None = None,
        timeout: float = 1.0,
        max_attempts: int = 50,
        *,
        cluster_id: str = DEFAULT_CLUSTER_ID,
        node: str | None = None,
        connect_timeout: float = 0.5,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        seed: int | None = None,
    ) -> None:
        if not cluster:
            raise ValueError("the cluster needs at least one node")
        if node is not None and node not in cluster:
            raise ValueError(f"node {node!r} is not in the cluster")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.cluster = dict(cluster)
        self.node_ids = sorted(self.cluster)
        self.client_id = client_id or f"c-{secrets.token_hex(6)}"
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.cluster_id = cluster_id
        self.connect_timeout = connect_timeout
        self.max_frame_bytes = max_frame_bytes
        self.rng = random.Random(seed if seed is not None else zlib.crc32(self.client_id.encode()))
        self.last_node: str | None = None
        self._leader: str | None = node
        self._connections: dict[str, _Connection] = {}
        self._connect_locks: dict[str, trio.Lock] = {}
        self._request_ids = itertools.count(1)
        self._free_sessions: list[_Session] = []
        self._session_count = 0
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._stack = AsyncExitStack()
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        assert self._stack is not None
        self._nursery = None
        try:
            return await self._stack.__aexit__(exc_type, exc, traceback)
        except BaseExceptionGroup as group:
            # The client's own tasks catch their errors, so a group holding just the
            # body's exception is Trio's nursery wrapping the caller's error: hand it back
            # as raised, so ``except ClientError`` around ``async with`` works.
            if exc is None or list(group.exceptions) != [exc]:
                raise
        assert exc is not None
        raise exc

    async def aclose(self) -> None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        connections = list(self._connections.values())
        self._connections.clear()
        with trio.CancelScope(shield=True):
            for connection in connections:
                connection.mark_closed("client closed")
                await connection.stream.aclose()

    # --- operations (ARCHITECTURE.md "Client") ---------------------------------------

    async def get(self, key: Any) -> Any:
        return await self.request("get", key=key)

    async def put(self, key: Any, value: Any) -> Any:
        return await self.request("put", key=key, value=value)

    async def cas(self, key: Any, from_value: Any, to_value: Any) -> Any:
        return await self.request("cas", key=key, **{"from": from_value, "to": to_value})

    async def append(self, key: Any, value: Any) -> Any:
        return await self.request("append", key=key, value=value)

    async def delete(self, key: Any) -> Any:
        return await self.request("delete", key=key)

    async def transfer(self, from_key: Any, to_key: Any, amount: int) -> Any:
        return await self.request("transfer", from_key=from_key, to_key=to_key, amount=amount)

    async def mget(self, keys: list[Any]) -> Any:
        return await self.request("mget", keys=list(keys))

    async def txn(self, ops: list[Any], *, read_index: bool = False) -> Any:
        """One transaction of micro-ops (``["append", k, v]``, ``["w", k, v]``,
        ``["r", k, None]``), applied atomically as one log command with this client's
        session; returns the micro-ops with the reads filled. With ``read_index`` a
        read-only txn goes without a session and is answered by ReadIndex (no log entry);
        by default every txn takes a session seq, so that a process's k-th txn is its
        k-th write (the acknowledged-writes checker relies on it)."""
        mops = [list(mop) if isinstance(mop, list | tuple) else mop for mop in ops]
        if read_index and all(isinstance(m, list) and m[:1] == ["r"] for m in mops):
            frame = {"type": "request", "op": "txn", "ops": mops}
            return await self._attempt_until_answered(frame, is_write=False)
        return await self.request("txn", ops=mops)

    async def status(self, node_id: str, timeout: float | None = None) -> dict[str, Any]:
        """One node's status map (raises ClientError ``unavailable``/``timeout``)."""
        reply = await self._call_node(node_id, {"type": "status"}, timeout or self.timeout)
        return {k: v for k, v in reply.items() if k not in ("type", "id")}

    async def set_clock(
        self, node_id: str, *, offset: float | None = None, rate: float | None = None
    ) -> dict[str, Any]:
        """Skew one node's clock (the node must accept admin frames on this connection)."""
        frame: dict[str, Any] = {"type": "admin", "action": "clock"}
        if offset is not None:
            frame["offset"] = offset
        if rate is not None:
            frame["rate"] = rate
        return await self._call_node(node_id, frame, self.timeout)

    # --- the request loop ------------------------------------------------------------

    async def request(self, op: str, **fields: Any) -> Any:
        """Run one KV operation with retries; see the module docstring."""
        frame: dict[str, Any] = {"type": "request", "op": op, **fields}
        if op not in WRITE_OPS:
            return await self._attempt_until_answered(frame, is_write=False)
        session = self._acquire_session()
        try:
            frame["client"] = session.client_id
            frame["seq"] = session.next_seq
            return await self._attempt_until_answered(frame, is_write=True)
        finally:
            # Advance even after an unknown outcome: if the old attempt applies late, the
            # next seq makes the KV refuse any further copy of it (stale_seq).
            session.next_seq += 1
            self._free_sessions.append(session)

    def _acquire_session(self) -> _Session:
        if self._free_sessions:
            return self._free_sessions.pop()
        number = self._session_count
        self._session_count += 1
        name = self.client_id if number == 0 else f"{self.client_id}.{number}"
        return _Session(name)

    async def _attempt_until_answered(self, frame: dict[str, Any], *, is_write: bool) -> Any:
        deadline = trio.current_time() + self.timeout
        target = self._leader or self.node_ids[self.rng.randrange(len(self.node_ids))]
        unknown: ClientError | None = None  # set once an attempt may have taken effect
        last: ClientError | None = None
        misses = 0  # consecutive attempts that found no leader
        # Hinted leaders tried since the last back-off: a hint to a node not in it is
        # followed at once (a new leader just named: no reason to wait), one already in
        # it waits a back-off (stale hints naming each other in a ring must not spin).
        followed: set[str] = set()
        told: str | None = None  # the last leader a node named (reported with any error)
        for _attempt in range(self.max_attempts):
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                break
            node = target
            try:
                reply = await self._send_to(node, frame, remaining)
            except _ConnectFailed as error:
                last = ClientError("unavailable", definite=True, node=node, detail=str(error))
                self._forget_leader(node)
                target = self._next_node(node)
                misses += 1
                await self._backoff(misses, deadline)
                followed.clear()
                continue
            except _Lost as error:
                err = ClientError(
                    "connection_lost", definite=not error.sent, node=node, detail=str(error)
                )
                if error.sent and is_write:
                    unknown = unknown or err
                last = err
                self._forget_leader(node)
                target = self._next_node(node)
                continue
            except trio.TooSlowError:
                last = ClientError("timeout", definite=False, leader=told, node=node)
                break
            except FrameError as error:  # our own request does not fit in a frame
                raise ClientError(error.code, definite=True, detail=error.reason) from None
            self.last_node = node
            if reply.get("ok") is True:
                self._leader = node
                return reply.get("value")
            code = reply.get("error")
            code = code if isinstance(code, str) else "malformed_reply"
            if code in ("not_leader", "no_leader"):
                named = reply.get("leader")
                named = named if isinstance(named, str) and named else None
                told = named or told
                # Follow the hint only to a node we know the address of, but report it
                # either way: a client given part of the cluster still learns the leader.
                hint = named if named in self.cluster else None
                last = ClientError(code, definite=True, leader=named, node=node)
                if hint is not None and hint != node and hint not in followed:
                    followed.add(hint)
                    self._leader = hint
                    target = hint
                    continue
                self._forget_leader(node)
                target = hint if hint is not None else self._next_node(node)
                misses += 1
                await self._backoff(misses, deadline)
                followed.clear()
                continue
            if code in DEFINITE_CODES:
                # The state machine's own answer for this (client, seq): authoritative even
                # after earlier attempts with unknown outcome, thanks to the session.
                raise ClientError(code, definite=True, node=node, detail=reply.get("reason"))
            # outcome_unknown, timeout from the node, or a code we do not know: unknown.
            err = ClientError(code, definite=False, node=node, detail=reply.get("reason"))
            if is_write:
                unknown = unknown or err
            last = err
            target = self._next_node(node)
        if unknown is not None:
            if trio.current_time() >= deadline:
                raise ClientError(
                    "timeout",
                    definite=False,
                    leader=told,
                    node=unknown.node,
                    detail=f"no answer within {self.timeout} s after {unknown.code}",
                )
            raise unknown
        if last is None:
            raise ClientError("timeout", definite=False, detail="no time left for an attempt")
        raise last

    async def _send_to(self, node: str, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
        connection = await self._connection(node, timeout)
        request_id = next(self._request_ids)
        frame["id"] = request_id
        return await connection.call(frame, request_id, timeout)

    async def _call_node(self, node: str, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
        if node not in self.cluster:
            raise ClientError("malformed", definite=True, detail=f"unknown node {node!r}")
        try:
            with trio.fail_after(timeout):
                return await self._send_to(node, dict(frame), timeout)
        except _ConnectFailed as error:
            raise ClientError("unavailable", definite=True, node=node, detail=str(error)) from None
        except _Lost as error:
            raise ClientError(
                "connection_lost", definite=False, node=node, detail=str(error)
            ) from None
        except trio.TooSlowError:
            raise ClientError("timeout", definite=False, node=node) from None

    async def _connection(self, node: str, timeout: float) -> _Connection:
        existing = self._connections.get(node)
        if existing is not None and not existing.closed:
            return existing
        if self._nursery is None:
            raise RuntimeError("use RaftClient inside 'async with'")
        lock = self._connect_locks.setdefault(node, trio.Lock())
        async with lock:
            existing = self._connections.get(node)
            if existing is not None and not existing.closed:
                return existing
            host, port = self.cluster[node]
            stream: FrameStream | None = None
            try:
                with trio.fail_after(max(min(timeout, self.connect_timeout), 0.001)):
                    raw = await trio.open_tcp_stream(host, port)
                    stream = FrameStream(raw, self.max_frame_bytes)
                    await stream.send(hello_frame(self.cluster_id, self.client_id, "client"))
                    reply = await stream.receive()
            except (OSError, trio.BrokenResourceError, trio.TooSlowError, FrameError) as error:
                if stream is not None:
                    await stream.aclose()
                raise _ConnectFailed(
                    f"cannot connect to {node} at {host}:{port}: {error}"
                ) from None
            if reply is None or reply.get("type") != "hello_ok":
                await stream.aclose()
                why = "closed" if reply is None else repr(reply.get("error"))
                raise _ConnectFailed(f"{node} refused the hello: {why}")
            connection = _Connection(node, stream)
            self._connections[node] = connection
            self._nursery.start_soon(connection.read_replies)
            self._nursery.start_soon(connection.write_requests)
            return connection

    def _forget_leader(self, node: str) -> None:
        if self._leader == node:
            self._leader = None

    def _next_node(self, node: str) -> str:
        index = self.node_ids.index(node)
        return self.node_ids[(index + 1) % len(self.node_ids)]

    async def _backoff(self, misses: int, deadline: float) -> None:
        if misses < len(self.node_ids):
            return  # first go round the cluster without waiting
        delay = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (misses - len(self.node_ids)))
        delay *= 0.5 + self.rng.random()
        await self._sleep(max(0.0, min(delay, deadline - trio.current_time())))

    async def _sleep(self, seconds: float) -> None:
        """The client's only wait of its own (the simulation's client overrides it)."""
        await trio.sleep(seconds)


def parse_cluster(text: str) -> dict[str, tuple[str, int]]:
    """``n1=127.0.0.1:7001,n2=127.0.0.1:7002`` → {"n1": ("127.0.0.1", 7001), …}."""
    cluster: dict[str, tuple[str, int]] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        node_id, sep, address = item.partition("=")
        if not sep or not node_id:
            raise ValueError(f"expected ID=HOST:PORT, got {item!r}")
        if node_id in cluster:
            raise ValueError(f"node {node_id!r} listed twice")
        cluster[node_id] = parse_address(address)
    if not cluster:
        raise ValueError("the cluster list is empty")
    return cluster


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad port in {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return host.strip("[]"), port
