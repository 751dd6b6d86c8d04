"""The nemesis's one conversation with a node: an admin connection (ARCHITECTURE "Wire").

    hello {"type": "hello", "cluster": ID, "from": "nemesis", "role": "admin"} -> hello_ok
    then requests such as {"type": "admin", "id": N, "action": "clock", ...} -> admin_reply

Used for clock faults (``nemesis.clock``) and to tell whether a restarted node serves
(``ping``: the handshake alone), always straight to the node's port, never through a
proxy. The nemesis parses nothing else of the protocol.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgpack
import trio

REPLY_MAX_BYTES = 1024 * 1024  # an admin reply is a few dozen bytes
DEFAULT_TIMEOUT_SECONDS = 2.0
_request_ids = itertools.count(1)


class AdminError(Exception):
    """The node could not be reached, refused, or answered something unexpected."""


def encode_frame(message: dict[str, Any]) -> bytes:
    body = msgpack.packb(message, use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


def decode_body(body: bytes) -> dict[str, Any]:
    try:
        reply = msgpack.unpackb(
            body,
            raw=False,
            max_array_len=1000,
            max_map_len=1000,
            max_str_len=REPLY_MAX_BYTES,
            max_bin_len=REPLY_MAX_BYTES,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise AdminError(f"undecodable reply: {error}") from None
    if not isinstance(reply, dict):
        raise AdminError(f"reply is not a map: {reply!r}")
    return reply


class AdminConnection:
    def __init__(self, stream: trio.SocketStream, where: str) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self.where = where

    async def receive(self) -> dict[str, Any]:
        buffer = self._buffer
        while True:
            if len(buffer) >= 4:
                length = int.from_bytes(buffer[:4], "big")
                if length > REPLY_MAX_BYTES:
                    raise AdminError(f"{self.where} sent a frame of {length} bytes")
                if len(buffer) >= 4 + length:
                    body = bytes(buffer[4 : 4 + length])
                    del buffer[: 4 + length]
                    return decode_body(body)
            data = await self._stream.receive_some(65536)
            if not data:
                raise AdminError(f"{self.where} closed the connection")
            buffer += data

    async def request(self, action: str, **fields: Any) -> dict[str, Any]:
        """One admin request; returns the ``admin_reply`` (raises unless it says ok)."""
        request_id = next(_request_ids)
        await self._stream.send_all(
            encode_frame({"type": "admin", "id": request_id, "action": action, **fields})
        )
        reply = await self.receive()
        if reply.get("type") != "admin_reply" or reply.get("id") != request_id:
            raise AdminError(f"{self.where} sent an unexpected reply: {reply}")
        if reply.get("ok") is not True:
            detail = f"{reply.get('error')} {reply.get('reason', '')}".strip()
            raise AdminError(f"{self.where} refused the {action} request: {detail}")
        return reply

    async def status(self) -> dict[str, Any]:
        """The node's ``status_reply`` (role, term, applied_index, ...; ARCHITECTURE "Wire")."""
        request_id = next(_request_ids)
        await self._stream.send_all(encode_frame({"type": "status", "id": request_id}))
        reply = await self.receive()
        if reply.get("type") != "status_reply" or reply.get("id") != request_id:
            raise AdminError(f"{self.where} sent an unexpected reply: {reply}")
        return reply


@asynccontextmanager
async def admin_connection(
    host: str, port: int, *, cluster_id: str, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> AsyncIterator[AdminConnection]:
    """Connect and complete the admin hello; everything inside must finish in ``timeout``."""
    where = f"{host}:{port}"
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                connection = AdminConnection(stream, where)
                await stream.send_all(
                    encode_frame(
                        {"type": "hello", "cluster": cluster_id, "from": "nemesis", "role": "admin"}
                    )
                )
                hello = await connection.receive()
                if hello.get("type") != "hello_ok":
                    raise AdminError(f"{where} refused the admin hello: {hello}")
                yield connection
    except trio.TooSlowError:
        raise AdminError(f"{where} did not answer within {timeout} s") from None
    except (OSError, trio.BrokenResourceError) as error:
        raise AdminError(f"cannot reach {where}: {error}") from None


async def ping(
    host: str, port: int, *, cluster_id: str, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> None:
    """Succeeds when the node completes an admin hello: it is up and serving its port."""
    async with admin_connection(host, port, cluster_id=cluster_id, timeout=timeout):
        pass
