"""etcd's native gRPC KV API (Put, Range) over HTTP/2, with no gRPC library.

gRPC is HTTP/2 plus, per message, a 5-byte prefix (a compressed flag, then the length as a
big-endian uint32) before a protobuf message; a unary call is a POST to
``/<package>.<Service>/<Method>`` with ``content-type: application/grpc`` and ``te: trailers``,
answered by a 200, the response message, and the call's status in trailers
(``grpc-status``, 0 for OK), or by the status in the headers alone when the call failed
before any message ("Trailers-Only"). Speaking it over cleartext HTTP/2 with prior
knowledge reaches etcd's gRPC server directly, the path etcd's Go clients take; the v3
JSON gateway (``campaign.targets.etcd_client``) is an HTTP/1.1 server inside etcd that
re-issues every call as gRPC over loopback, an extra hop that costs etcd CPU and latency.

The HTTP/2 protocol is the ``h2`` package (httpx's ``http2`` extra), on a Trio TCP stream.
Not httpx's own HTTP/2 client, for three reasons measured or read here (httpx 0.28,
httpcore 1.0.9): it drops HTTP/2 trailers, so a call's ``grpc-status`` is unreachable; with
16 or 64 calls in flight on one connection some calls failed with ``LocalProtocolError``
(its HTTP/2 robustness issues, encode/httpx#3324); and it costs ~4 socket writes per call
(headers, data, end of stream, window update), 3.7 ms of client CPU per put at 1 in flight
on this machine. Here a call is one write (HEADERS and DATA with END_STREAM together), and
one reader task per connection hands each stream its response.

The messages are etcd's ``etcdserverpb`` (api/etcdserverpb/rpc.proto, mvccpb/kv.proto):
PutRequest{key=1 bytes, value=2 bytes}, PutResponse{header=1}, RangeRequest{key=1 bytes,
serializable=7 bool}, RangeResponse{header=1, kvs=2 repeated KeyValue, count=4},
KeyValue{key=1, mod_revision=3, value=5}, ResponseHeader{revision=3}. The protobuf
encoding of those few fields is written here (tag varint ``field << 3 | wire type``, then a
varint, or a varint length and bytes): no protobuf library is a dependency either.

A call succeeds only with HTTP 200, ``grpc-status: 0`` in its trailers, and a body that is
exactly one well-formed, uncompressed response message whose ResponseHeader carries a
revision > 0; anything else is a :class:`~raftnode.client.ClientError`. Values are stored
as the gateway client stores them (canonical JSON text), so either client reads what the
other wrote.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import trio

from raftnode.client import ClientError

T = TypeVar("T")
GRPC_HEADERS = [("content-type", "application/grpc"), ("te", "trailers")]
PUT_PATH = "/etcdserverpb.KV/Put"
RANGE_PATH = "/etcdserverpb.KV/Range"
# grpc-status codes whose call certainly did not take effect (the request was refused
# before etcd proposed it): UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED,
# INVALID_ARGUMENT, RESOURCE_EXHAUSTED (etcd's "too many requests"), FAILED_PRECONDITION.
DEFINITE_GRPC_STATUSES = {3, 7, 8, 9, 12, 16}
# A response larger than this is not what Put or a one-key Range answers.
MAX_MESSAGE = 16 << 20


class ProtobufError(ValueError):
    """Bytes that are not the protobuf message they should be."""


def encode_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("only non-negative varints are written here")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_bytes_field(field: int, data: bytes) -> bytes:
    """A length-delimited field (wire type 2): tag, varint length, the bytes."""
    return encode_varint(field << 3 | 2) + encode_varint(len(data)) + data


def encode_varint_field(field: int, value: int) -> bytes:
    return encode_varint(field << 3) + encode_varint(value)


def decode_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift >= 64:
            raise ProtobufError("varint longer than 10 bytes")


def decode_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """Every (field number, value) of a message: varints and fixed-width numbers as ints,
    length-delimited fields as bytes. Unknown fields are kept (the caller ignores them);
    a truncated field or an unknown wire type is an error."""
    fields: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        tag, at = decode_varint(data, at)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise ProtobufError("field number 0")
        if wire == 0:
            value, at = decode_varint(data, at)
            fields.append((field, value))
        elif wire == 2:
            length, at = decode_varint(data, at)
            if at + length > len(data):
                raise ProtobufError("truncated length-delimited field")
            fields.append((field, data[at : at + length]))
            at += length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if at + width > len(data):
                raise ProtobufError("truncated fixed-width field")
            fields.append((field, int.from_bytes(data[at : at + width], "little")))
            at += width
        else:
            raise ProtobufError(f"wire type {wire} (groups are not used by etcd)")
    return fields


def first_field(fields: list[tuple[int, int | bytes]], number: int, kind: type) -> Any:
    for found, value in fields:
        if found == number:
            if not isinstance(value, kind):
                raise ProtobufError(f"field {number} has the wrong wire type")
            return value
    return None


def frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: not compressed, 4-byte big-endian length."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def unframe(body: bytes) -> bytes:
    """The one message of a unary response body; anything else is an error."""
    if len(body) < 5:
        raise ProtobufError(f"a {len(body)}-byte body holds no gRPC message")
    compressed, length = body[0], struct.unpack(">I", body[1:5])[0]
    if compressed != 0:
        raise ProtobufError("a compressed message (none was asked for)")
    if length > MAX_MESSAGE or len(body) != 5 + length:
        raise ProtobufError(f"message length {length} but {len(body) - 5} bytes follow")
    return body[5:]


def encode_key(key: Any) -> bytes:
    return str(key).encode("utf-8")


def encode_value(value: Any) -> bytes:
    """Canonical JSON, the gateway client's encoding (campaign.targets.etcd_client)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def decode_value(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def put_request(key: Any, value: Any) -> bytes:
    return encode_bytes_field(1, encode_key(key)) + encode_bytes_field(2, encode_value(value))


def range_request(key: Any, *, serializable: bool = False) -> bytes:
    message = encode_bytes_field(1, encode_key(key))
    if serializable:
        message += encode_varint_field(7, 1)
    return message


def header_revision(fields: list[tuple[int, int | bytes]]) -> int:
    """The revision of a response's ResponseHeader (field 1); > 0 in every answer of an
    etcd member (revision 1 is the empty store)."""
    header = first_field(fields, 1, bytes)
    if header is None:
        raise ProtobufError("a response without its ResponseHeader")
    revision = first_field(decode_fields(header), 3, int)
    if not revision:
        raise ProtobufError("a ResponseHeader without a revision")
    return revision


@dataclass(slots=True)
class RangeResult:
    revision: int
    value: Any  # None: the key is absent
    mod_revision: int | None


def parse_range_response(message: bytes, key: Any) -> RangeResult:
    fields = decode_fields(message)
    revision = header_revision(fields)
    wanted = encode_key(key)
    for number, kv in fields:
        if number != 2:
            continue
        if not isinstance(kv, bytes):
            raise ProtobufError("a KeyValue that is not a message")
        kv_fields = decode_fields(kv)
        if first_field(kv_fields, 1, bytes) != wanted:
            raise ProtobufError("a Range of one key answered another key")
        raw = first_field(kv_fields, 5, bytes) or b""
        return RangeResult(revision, decode_value(raw), first_field(kv_fields, 3, int))
    return RangeResult(revision, None, None)


@dataclass(slots=True)
class _Call:
    """One unary call's stream: what the reader task has received for it so far."""

    headers: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    ended: trio.Event = field(default_factory=trio.Event)
    error: str | None = None  # the stream or the connection failed: the outcome is unknown


class _Connection:
    """One HTTP/2 connection to one member: callers write their streams under a lock, one
    reader task (in the client's nursery) reads every frame and completes the calls."""

    def __init__(self, stream: trio.SocketStream, authority: str) -> None:
        self.stream = stream
        self.authority = authority
        # Header checks off: our own few headers are fixed and well-formed, and etcd's
        # answers are read only for :status, grpc-status and grpc-message; h2 checking
        # every header field in both directions was ~15% of the client's CPU per call.
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding="utf-8",
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
            )
        )
        self.calls: dict[int, _Call] = {}
        self.send_lock = trio.Lock()
        self.window_opened = trio.Event()  # set when the server widens a send window
        self.closed: str | None = None

    async def flush(self) -> None:
        # Take the bytes under the lock: calls queued behind a write leave in one batch.
        async with self.send_lock:
            data = self.h2.data_to_send()
            if data:
                await self.stream.send_all(data)

    async def start(self) -> None:
        self.h2.initiate_connection()
        await self.flush()

    async def read_loop(self) -> None:
        try:
            while True:
                data = await self.stream.receive_some(65536)
                if not data:
                    self.fail("connection closed by the member")
                    return
                for event in self.h2.receive_data(data):
                    self.dispatch(event)
                await self.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
            self.fail(f"connection lost: {error!r}")
        except h2.exceptions.ProtocolError as error:
            self.fail(f"HTTP/2 protocol error: {error!r}")

    def dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self.window_opened.set()
            self.window_opened = trio.Event()
            return
        if isinstance(event, h2.events.ConnectionTerminated):
            self.fail(f"GOAWAY from the member (error {event.error_code})")
            return
        call = self.calls.get(getattr(event, "stream_id", None) or 0)
        if call is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            call.headers = dict(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            call.body += event.data
            if len(call.body) > MAX_MESSAGE + 5:
                call.error = "a response larger than any Put or Range answer"
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            call.trailers = dict(event.headers)
        elif isinstance(event, h2.events.StreamReset):
            call.error = f"stream reset by the member (error {event.error_code})"
        if isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
            del self.calls[event.stream_id]
            call.ended.set()

    def fail(self, reason: str) -> None:
        self.closed = reason
        for call in self.calls.values():
            call.error = reason
            call.ended.set()
        self.calls.clear()
        self.window_opened.set()

    async def call(self, path: str, body: bytes) -> _Call:
        """Send one unary call; returns once its stream ended (or failed). Cancelled (a
        timeout), the stream is reset so the member may stop working on it."""
        if self.closed:
            raise trio.BrokenResourceError(self.closed)
        stream_id = self.h2.get_next_available_stream_id()
        call = self.calls[stream_id] = _Call()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path),
                   (":authority", self.authority), *GRPC_HEADERS]  # fmt: skip
        self.h2.send_headers(stream_id, headers)
        while self.h2.local_flow_control_window(stream_id) < len(body):
            await self.window_opened.wait()  # the server's window: never long for ~100 bytes
            if self.closed:
                raise trio.BrokenResourceError(self.closed)
        # HEADERS and DATA (with END_STREAM) leave in one write.
        self.h2.send_data(stream_id, body, end_stream=True)
        try:
            await self.flush()
            await call.ended.wait()
        except BaseException:
            if stream_id in self.calls and not self.closed:
                del self.calls[stream_id]
                try:
                    self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                except h2.exceptions.ProtocolError:
                    pass  # already closed
            raise
        return call

    async def aclose(self) -> None:
        self.fail("closed by the client")
        await self.stream.aclose()


class EtcdGrpcClient:
    """Put and get on etcd members through gRPC: one HTTP/2 connection per member, shared
    by every task using this client (each call one HTTP/2 stream), as etcd's own clients do.

    The same surface as the gateway client for what kv_bench uses: ``async with``,
    ``put``, ``get``, ``last_node``, failures as ClientError. No retries: a failed call
    moves the client to the next member and raises, the caller decides."""

    def __init__(
        self,
        endpoints: dict[str, str],
        *,
        client_id: str = "grpc",
        timeout: float = 5.0,
        node: str | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.addresses: dict[str, tuple[str, int]] = {}
        for name, url in endpoints.items():
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname or not parts.port:
                raise ValueError(f"{name}: an http://HOST:PORT endpoint, not {url!r}")
            self.addresses[name] = (parts.hostname, parts.port)
        self.names = list(self.addresses)
        self.client_id = client_id
        self.timeout = timeout
        self._preferred = node if node in self.addresses else self.names[0]
        self.last_node: str | None = None
        self.last_revision: int | None = None
        self._connections: dict[str, _Connection] = {}
        self._connecting: dict[str, trio.Lock] = {name: trio.Lock() for name in self.names}
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: Any = None

    async def __aenter__(self) -> Self:
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()
        self._nursery = None
        try:
            for connection in list(self._connections.values()):
                with trio.CancelScope(shield=True):
                    await connection.aclose()
            self._connections.clear()
        finally:
            # Only the reader tasks live in this nursery and they catch what they expect:
            # the body's own exception (if any) propagates as is, not in an ExceptionGroup.
            await self._nursery_manager.__aexit__(None, None, None)

    async def put(self, key: Any, value: Any) -> int:
        """Put ``value`` at ``key``; returns the revision of the write."""
        message = await self._call(PUT_PATH, put_request(key, value), write=True)
        revision = self._parsed(lambda m: header_revision(decode_fields(m)), message)
        self.last_revision = revision
        return revision

    async def get(self, key: Any, *, serializable: bool = False) -> Any:
        """The value at ``key`` (None when absent); linearizable unless ``serializable``."""
        return (await self.get_result(key, serializable=serializable)).value

    async def get_result(self, key: Any, *, serializable: bool = False) -> RangeResult:
        message = await self._call(
            RANGE_PATH, range_request(key, serializable=serializable), write=False
        )
        result = self._parsed(lambda m: parse_range_response(m, key), message)
        self.last_revision = result.revision
        return result

    def _parsed(self, parse: Callable[[bytes], T], message: bytes) -> T:
        """A framed message that is not the response it should be: an unknown outcome."""
        try:
            return parse(message)
        except ProtobufError as error:
            raise ClientError(
                "malformed_response", definite=False, node=self.last_node, detail=str(error)
            ) from None

    async def _connection(self, node: str) -> _Connection:
        async with self._connecting[node]:
            connection = self._connections.get(node)
            if connection is not None and not connection.closed:
                return connection
            if self._nursery is None:
                raise RuntimeError("use EtcdGrpcClient inside 'async with'")
            host, port = self.addresses[node]
            stream = await trio.open_tcp_stream(host, port)  # TCP_NODELAY is trio's default
            connection = _Connection(stream, f"{host}:{port}")
            await connection.start()
            self._nursery.start_soon(connection.read_loop)
            self._connections[node] = connection
            return connection

    async def _call(self, path: str, message: bytes, *, write: bool) -> bytes:
        """One unary call to the preferred member: the response message, or ClientError
        (and the next member becomes the preferred one)."""
        node = self._preferred
        call: _Call | None = None
        try:
            with trio.move_on_after(self.timeout) as scope:
                try:
                    connection = await self._connection(node)
                except OSError as error:
                    raise ClientError(
                        "unavailable", definite=True, node=node, detail=repr(error)
                    ) from None
                try:
                    call = await connection.call(path, frame(message))
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
                    raise ClientError(
                        "connection_lost", definite=not write, node=node, detail=repr(error)
                    ) from None
            if scope.cancelled_caught or call is None:
                raise ClientError(
                    "timeout", definite=not write, node=node, detail=f"{self.timeout} s"
                )
            answer = self._check(call, node, write)
        except ClientError:
            self._preferred = self._next_node(node)
            raise
        self.last_node = node
        return answer

    def _check(self, call: _Call, node: str, write: bool) -> bytes:
        if call.error is not None:
            raise ClientError("connection_lost", definite=not write, node=node, detail=call.error)
        # Trailers-Only (a failure before any message) carries the status in the headers.
        status = call.trailers.get("grpc-status", call.headers.get("grpc-status"))
        if status != "0":
            message = call.trailers.get("grpc-message", call.headers.get("grpc-message", ""))
            detail = f"HTTP {call.headers.get(':status')}, grpc-status {status}: {message}"
            code = int(status) if status is not None and status.isdigit() else -1
            definite = (not write) or code in DEFINITE_GRPC_STATUSES
            name = "timeout" if code == 4 else "unavailable" if code == 14 else "server_error"
            raise ClientError(name, definite=definite, node=node, detail=detail)
        if call.headers.get(":status") != "200":
            raise ClientError(
                "server_error", definite=not write, node=node,
                detail=f"HTTP {call.headers.get(':status')} with grpc-status 0",
            )  # fmt: skip
        try:
            return unframe(bytes(call.body))
        except ProtobufError as error:
            raise ClientError(
                "malformed_response", definite=not write, node=node, detail=str(error)
            ) from None

    def _next_node(self, node: str) -> str:
        return self.names[(self.names.index(node) + 1) % len(self.names)]
