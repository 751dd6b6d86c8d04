"""`nemesis.http_peer`: one proxy per destination, the sender named by its request headers,
and link faults per direction on real sockets (fast: tiny servers on 127.0.0.1)."""

from __future__ import annotations

import socket

import pytest
import trio

from nemesis.http_peer import HttpPeerMesh, parse_request_head


def free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def request(sender: str | None, body: bytes = b"") -> bytes:
    header = f"X-Server-From: {sender}\r\n" if sender else ""
    return f"POST /raft HTTP/1.1\r\nHost: x\r\n{header}\r\n".encode() + body


class Member:
    """A node's peer port: records what arrives and answers every read with b"<name>:<data>"."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.received = bytearray()
        self.connections = 0

    async def serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        try:
            while data := await stream.receive_some(65536):
                self.received += data
                await stream.send_all(self.name.encode() + b":" + data)
        except trio.BrokenResourceError:
            pass


@pytest.fixture
async def mesh(nursery):
    ports = free_ports(4)
    members = {"a": Member("a"), "b": Member("b")}
    for member, port in zip(members.values(), ports[:2], strict=True):
        await nursery.start(trio.serve_tcp, member.serve, port)
    identify = lambda destination, headers: headers.get("x-server-from")  # noqa: E731
    peer_mesh = HttpPeerMesh(
        {"a": ("127.0.0.1", ports[0]), "b": ("127.0.0.1", ports[1])},
        {"a": ("127.0.0.1", ports[2]), "b": ("127.0.0.1", ports[3])},
        identify=identify,
        seed=1,
    )
    await nursery.start(peer_mesh.run)
    peer_mesh.members = members
    return peer_mesh


async def dial(mesh: HttpPeerMesh, destination: str) -> trio.SocketStream:
    return await trio.open_tcp_stream(*mesh.peer_address(destination))


async def receive_within(stream: trio.SocketStream, seconds: float) -> bytes | None:
    """What arrives within ``seconds`` (None: nothing; b"": the connection ended or was reset)."""
    with trio.move_on_after(seconds):
        try:
            return await stream.receive_some(65536)
        except trio.BrokenResourceError:
            return b""
    return None


def test_request_heads_are_parsed_and_partial_ones_refused():
    headers = parse_request_head(request("8e9e05c52164694d") + b"body")
    assert headers["x-server-from"] == "8e9e05c52164694d" and headers[":path"] == "/raft"
    assert parse_request_head(b"GET / HTTP/1.1\r\nX-A: 1\r\n") is None  # no blank line yet
    assert parse_request_head(b"\x00\x01garbage\r\n\r\n") is None


async def test_the_sender_is_named_by_its_header_and_bytes_pass_both_ways(mesh):
    stream = await dial(mesh, "b")
    await stream.send_all(request("a", b"hello"))
    reply = b""
    while b"hello" not in reply:
        reply += await stream.receive_some(65536)
    assert reply.startswith(b"b:POST /raft")
    assert mesh.stats[("a", "b")].connections == 1
    assert mesh.stats[("a", "b")].bytes_forwarded > 0 and mesh.stats[("b", "a")].bytes_forwarded > 0
    await stream.aclose()


async def test_a_blocked_link_holds_the_dialers_bytes_until_it_heals(mesh):
    mesh.apply_grudge({"b": {"a"}})  # b gets nothing from a
    stream = await dial(mesh, "b")
    await stream.send_all(request("a", b"x"))
    assert await receive_within(stream, 0.3) is None
    assert mesh.members["b"].connections == 0  # not even dialled through
    mesh.heal()
    reply = await receive_within(stream, 5)
    assert reply and reply.startswith(b"b:POST")
    await stream.aclose()


async def test_the_reverse_direction_is_held_for_a_one_way_cut(mesh):
    # a drops what comes from b: a's stream request to b (the GET whose response carries
    # b's messages to a) reaches b, but b's answer is held.
    mesh.apply_grudge({"a": {"b"}})
    stream = await dial(mesh, "b")
    await stream.send_all(request("a", b"get"))
    with trio.fail_after(5):
        while b"get" not in mesh.members["b"].received:
            await trio.sleep(0.01)
    assert await receive_within(stream, 0.3) is None
    mesh.apply_grudge({})
    assert await receive_within(stream, 5)
    await stream.aclose()


async def test_a_reset_cut_resets_both_dialers_connections(mesh):
    one = await dial(mesh, "b")
    await one.send_all(request("a", b"1"))
    assert await receive_within(one, 5)
    other = await dial(mesh, "a")  # b dialling a: the same pair of members
    await other.send_all(request("b", b"2"))
    assert await receive_within(other, 5)
    mesh.set_cut("reset", [("a", "b")])
    for stream in (one, other):
        assert await receive_within(stream, 5) == b""
    assert mesh.stats[("a", "b")].connections_reset + mesh.stats[("b", "a")].connections_reset == 2


async def test_unnamed_senders_pass_only_while_no_partition_touches_the_destination(mesh):
    stream = await dial(mesh, "b")
    await stream.send_all(request(None, b"probe"))
    assert await receive_within(stream, 5)
    assert mesh.stats[("?", "b")].connections == 1
    mesh.apply_grudge({"a": {"b"}})  # touches b (b -> a is blocked)
    assert await receive_within(stream, 5) == b""  # reset: the unnamed connection ends
    late = await dial(mesh, "b")
    await late.send_all(request(None, b"probe"))
    assert await receive_within(late, 5) == b""
    assert mesh.stats[("?", "b")].connections_reset == 2


async def test_delay_holds_each_chunk_in_order_and_loss_is_refused(mesh):
    mesh.set_delay(0.2, 0.0, links=[("a", "b")])
    stream = await dial(mesh, "b")
    started = trio.current_time()
    await stream.send_all(request("a", b"late"))
    reply = await receive_within(stream, 5)
    assert reply and trio.current_time() - started >= 0.2
    assert mesh.describe()["a->b"]["delay"] == 0.2
    with pytest.raises(ValueError, match="byte stream"):
        mesh.set_loss(0.1)
    mesh.set_loss(0.0)  # turning loss off is fine
    await stream.aclose()


async def test_both_partition_modes_hold_a_byte_stream(mesh):
    mesh.apply_grudge({"b": {"a"}}, mode="blackhole")
    stream = await dial(mesh, "b")
    await stream.send_all(request("a", b"x"))
    assert await receive_within(stream, 0.3) is None
    mesh.apply_grudge({})
    assert await receive_within(stream, 5)
    with pytest.raises(ValueError, match="unknown partition mode"):
        mesh.apply_grudge({"b": {"a"}}, mode="shred")
    await stream.aclose()
