"""Length-prefixed msgpack frames: the one wire format of raftnode (conventions §5).

A frame is a 4-byte big-endian length followed by that many bytes of msgpack holding one
map with a string ``type``. Everything a peer, client or proxy sends goes through
``FrameDecoder`` before anything else looks at it, so a malformed, truncated or oversized
frame becomes a ``FrameError`` with a reason a person can read, never a crash and never
an unbounded allocation: the length is checked against ``max_frame_bytes`` before the body
is buffered, and the msgpack unpacker gets explicit limits on every container and string.

``FrameStream`` wraps a Trio stream with a decoder and batched sends. The validation
helpers (``require_str``, ``require_int``…) turn a decoded map into typed fields, again
raising ``FrameError`` with the field name.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
import trio

DEFAULT_MAX_FRAME_BYTES = 32 * 1024 * 1024
HEADER = struct.Struct(">I")
HEADER_BYTES = HEADER.size
# Largest msgpack container we accept inside one frame. A Raft append carries at most
# max_entries_per_append entries; a mget a few thousand keys. Bounded so that a hostile
# frame of a few bytes cannot announce a billion-element array.
MAX_CONTAINER_ITEMS = 1_000_000
RECEIVE_CHUNK_BYTES = 256 * 1024


class FrameError(Exception):
    """A frame cannot be accepted. ``code`` is the client error code to answer with.

    ``malformed`` for anything undecodable or of the wrong shape, ``too_large`` for a
    length over the limit, ``truncated`` when the stream ended inside a frame.
    """

    def __init__(self, reason: str, code: str = "malformed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def _reject_ext(code: int, data: bytes) -> Any:
    # msgpack extension types (timestamps included) never appear in our protocol; refusing
    # them keeps decoded frames to plain data that the validators understand.
    raise ValueError(f"msgpack extension type {code} is not allowed")


def pack(obj: dict[str, Any]) -> bytes:
    """msgpack bytes of one map (bytes stay bin, str stays str)."""
    return msgpack.packb(obj, use_bin_type=True)


def encode_frame(obj: dict[str, Any], max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """One complete frame; raises FrameError(code="too_large") rather than emit one the
    receiver would refuse."""
    try:
        body = pack(obj)
    except (TypeError, ValueError, OverflowError) as error:
        raise FrameError(f"cannot encode frame: {error}") from None
    if len(body) > max_frame_bytes:
        raise FrameError(
            f"frame of {len(body)} bytes exceeds the maximum of {max_frame_bytes}", "too_large"
        )
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes | bytearray | memoryview, max_frame_bytes: int) -> dict[str, Any]:
    """Decode one frame body into a map with a string ``type``; FrameError otherwise."""
    limit = min(len(body), max_frame_bytes)
    try:
        obj = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_reject_ext,
            max_str_len=limit,
            max_bin_len=limit,
            max_array_len=min(limit, MAX_CONTAINER_ITEMS),
            max_map_len=min(limit, MAX_CONTAINER_ITEMS),
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        # ValueError covers ExtraData, FormatError, StackError, bad UTF-8 and our ext hook;
        # TypeError an unhashable map key.
        raise FrameError(f"undecodable msgpack: {type(error).__name__}: {error}"[:200]) from None
    if not isinstance(obj, dict):
        raise FrameError(f"a frame must be a msgpack map, got {type(obj).__name__}")
    frame_type = obj.get("type")
    if not isinstance(frame_type, str) or not frame_type:
        raise FrameError("a frame needs a non-empty string 'type'")
    return obj


class FrameDecoder:
    """Incremental decoder: feed bytes, get complete frames.

    The length prefix is checked as soon as its 4 bytes arrive, so an oversized frame is
    refused before its body is read.
    """

    __slots__ = ("max_frame_bytes", "_buffer", "_error")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        # An error found after good frames in the same chunk: those frames are returned
        # first (a hello followed by garbage still gets its hello_ok), the error next time.
        self._error: FrameError | None = None

    def raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self.raise_pending()
        self._buffer += data
        frames: list[dict[str, Any]] = []
        offset = 0
        buffer = self._buffer
        try:
            while len(buffer) - offset >= HEADER_BYTES:
                (length,) = HEADER.unpack_from(buffer, offset)
                if length > self.max_frame_bytes:
                    raise FrameError(
                        f"frame length {length} exceeds the maximum of {self.max_frame_bytes}",
                        "too_large",
                    )
                if length == 0:
                    raise FrameError("empty frame (length 0)")
                end = offset + HEADER_BYTES + length
                if len(buffer) < end:
                    break
                body = memoryview(buffer)[offset + HEADER_BYTES : end]
                try:
                    frames.append(decode_body(body, self.max_frame_bytes))
                finally:
                    body.release()
                offset = end
        except FrameError as error:
            if not frames:
                raise
            self._error = error
        finally:
            if offset:
                del buffer[:offset]
        return frames

    def check_eof(self) -> None:
        """At end of stream: a partial frame left over is an error."""
        self.raise_pending()
        if self._buffer:
            raise FrameError(
                f"connection closed inside a frame ({len(self._buffer)} bytes pending)",
                "truncated",
            )


class FrameStream:
    """A Trio stream carrying frames. One reader at a time; sends are serialized by a lock
    and ``send_many`` writes a whole batch with one ``send_all``."""

    def __init__(
        self, stream: trio.abc.Stream, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    ) -> None:
        self.stream = stream
        self.max_frame_bytes = max_frame_bytes
        self._decoder = FrameDecoder(max_frame_bytes)
        self._ready: deque[dict[str, Any]] = deque()
        self._send_lock = trio.Lock()
        self._eof = False
        # The Trio socket under a SocketStream (None for other streams): ``_receive``
        # reads it directly after a wait, see there.
        socket = getattr(stream, "socket", None)
        self._socket = socket if isinstance(socket, trio.socket.SocketType) else None
        self._drained = True  # the last read emptied the socket (a short read)

    async def receive(self) -> dict[str, Any] | None:
        """The next frame, or None at a clean end of stream. Raises FrameError."""
        while not self._ready:
            if not await self._fill():
                return None
        return self._ready.popleft()

    async def receive_batch(self) -> list[dict[str, Any]]:
        """Every frame available from one read (at least one), or [] at a clean EOF."""
        while not self._ready:
            if not await self._fill():
                return []
        batch = list(self._ready)
        self._ready.clear()
        return batch

    async def _fill(self) -> bool:
        self._decoder.raise_pending()
        if self._eof:
            return False
        data = await self._receive()
        if not data:
            self._eof = True
            self._decoder.check_eof()
            return False
        self._ready.extend(self._decoder.feed(data))
        return True

    async def _receive(self) -> bytes:
        """``receive_some``, but after a short read (the socket was emptied) wait for the
        socket first and then read it once: Trio's ``receive_some`` reads first, which
        at one request in flight almost always fails with EAGAIN (a syscall and an
        exception per frame, each Raft message and client request being a frame of its
        own), then waits and reads again. The wait is a checkpoint; errors are Trio's:
        ClosedResourceError if the socket is closed, BrokenResourceError on a reset."""
        socket = self._socket
        if socket is None or not self._drained:
            data = await self.stream.receive_some(RECEIVE_CHUNK_BYTES)
        else:
            await trio.lowlevel.wait_readable(socket)
            fd = socket.fileno()
            if fd < 0:
                raise trio.ClosedResourceError("the socket was closed")
            try:
                data = os.read(fd, RECEIVE_CHUNK_BYTES)
            except BlockingIOError:  # a spurious wake-up: the usual way
                data = await self.stream.receive_some(RECEIVE_CHUNK_BYTES)
            except OSError as error:
                raise trio.BrokenResourceError(f"socket connection broken: {error}") from error
        self._drained = len(data) < RECEIVE_CHUNK_BYTES
        return data

    async def send(self, obj: dict[str, Any]) -> None:
        await self.send_raw(encode_frame(obj, self.max_frame_bytes))

    async def send_many(self, objs: Iterable[dict[str, Any]]) -> None:
        data = b"".join(encode_frame(obj, self.max_frame_bytes) for obj in objs)
        if data:
            await self.send_raw(data)

    async def send_raw(self, data: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(data)

    def write_or_keep(self, data: bytes, backlog: bytearray) -> bool:
        """``write_nowait``, keeping what the socket did not take at the end of
        ``backlog`` for the caller's sender task; True if anything was kept (wake it).
        Raises OSError when the connection is broken."""
        written = self.write_nowait(data)
        if written < len(data):
            backlog += data[written:]
            return True
        return False

    @property
    def sending(self) -> bool:
        """A ``send_raw`` is under way (nothing may be written before it completes)."""
        return self._send_lock.locked()

    def write_nowait(self, data: bytes) -> int:
        """Write what the socket takes right now, without blocking or yielding: the bytes
        written (0 when the socket is full, a send is in progress, or the stream is not a
        socket). The caller hands the rest to a task that awaits ``send_raw``: a reply or
        a Raft message then leaves without waking a task, which is most of its cost.
        Raises OSError when the connection is broken."""
        if self.sending:
            return 0  # a send_all is under way: bytes must not overtake it
        socket = getattr(self.stream, "socket", None)
        if socket is None:
            return 0
        fd = socket.fileno()  # -1 once closed: never write to a recycled descriptor
        if fd < 0:
            return 0
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0

    async def aclose(self) -> None:
        await self.stream.aclose()


# --- validation helpers: typed fields out of a decoded map, FrameError otherwise ---------


def require_str(frame: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = frame.get(key)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise FrameError(f"field {key!r} must be a {'' if allow_empty else 'non-empty '}string")
    return value


def optional_str(frame: dict[str, Any], key: str) -> str | None:
    value = frame.get(key)
    if value is not None and not isinstance(value, str):
        raise FrameError(f"field {key!r} must be a string or absent")
    return value


def require_int(frame: dict[str, Any], key: str, *, minimum: int | None = 0) -> int:
    value = frame.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise FrameError(f"field {key!r} must be an integer")
    if minimum is not None and value < minimum:
        raise FrameError(f"field {key!r} must be >= {minimum}")
    return value


def optional_number(frame: dict[str, Any], key: str) -> float | None:
    value = frame.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise FrameError(f"field {key!r} must be a number")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise FrameError(f"field {key!r} must be finite")
    return number


def require_key(frame: dict[str, Any], key: str) -> Any:
    """A KV key: a string, an integer or bytes (hashable, msgpack-native)."""
    if key not in frame:
        raise FrameError(f"field {key!r} is required")
    value = frame[key]
    if isinstance(value, bool) or not isinstance(value, str | int | bytes):
        raise FrameError(f"field {key!r} must be a string, an integer or bytes")
    return value


@dataclass(slots=True, frozen=True)
class Hello:
    cluster: str
    sender: str
    role: str


HELLO_ROLES = ("peer", "client", "admin")


def parse_hello(frame: dict[str, Any]) -> Hello:
    if frame.get("type") != "hello":
        raise FrameError(f"the first frame must be a hello, got {frame.get('type')!r:.40}")
    role = require_str(frame, "role")
    if role not in HELLO_ROLES:
        raise FrameError(f"unknown hello role {role!r:.40}")
    return Hello(
        cluster=require_str(frame, "cluster"), sender=require_str(frame, "from"), role=role
    )


def hello_frame(cluster: str, sender: str, role: str) -> dict[str, Any]:
    return {"type": "hello", "cluster": cluster, "from": sender, "role": role}
