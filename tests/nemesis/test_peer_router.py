"""The hello router (nemesis/peer_router.py): one address per node, every peer's
connection still through that peer's own proxy, so link faults reach members added by a
configuration change. Real sockets on loopback: a frame sink stands for the node."""

from __future__ import annotations

import msgpack
import pytest
import trio
from nemesis_helpers import FrameSink, frame, free_ports, read_frame

from nemesis.peer_router import HelloRouter, hello_sender
from nemesis.proxy import ProxyMesh


def _hello(sender: str) -> bytes:
    return msgpack.packb({"type": "hello", "cluster": "c", "from": sender, "role": "peer"})


def test_hello_sender_reads_only_a_hellos_from() -> None:
    assert hello_sender(_hello("n1")) == "n1"
    assert hello_sender(msgpack.packb({"type": "raft", "from": "n1"})) is None
    assert hello_sender(msgpack.packb({"type": "hello", "from": 3})) is None
    assert hello_sender(b"\xc1 not msgpack") is None


async def _mesh_and_router(nursery: trio.Nursery) -> tuple[ProxyMesh, HelloRouter, FrameSink]:
    """Nodes a, b, c: c's real port is a frame sink; c's router routes by sender."""
    ports = free_ports(3 + 6 + 1)
    nodes = {name: ("127.0.0.1", port) for name, port in zip("abc", ports[:3], strict=True)}
    sink = FrameSink(nodes["c"][1])
    await nursery.start(sink.run)
    mesh = ProxyMesh(nodes, base_port=ports[3])
    await nursery.start(mesh.run)
    router = HelloRouter(
        "c",
        ("127.0.0.1", ports[9]),
        {source: ("127.0.0.1", mesh.ports[(source, "c")]) for source in "ab"},
    )
    await nursery.start(router.run)
    return mesh, router, sink


async def _send(router: HelloRouter, sender: str, payloads: list[bytes]) -> trio.SocketStream:
    stream = await trio.open_tcp_stream(*router.listen)
    await stream.send_all(frame(_hello(sender)) + b"".join(frame(p) for p in payloads))
    return stream


def test_each_sender_goes_through_its_own_proxy_and_a_partition_reaches_it() -> None:
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            mesh, router, sink = await _mesh_and_router(nursery)
            from_a = await _send(router, "a", [b"a1"])
            buffer = bytearray()
            assert await read_frame(from_a, buffer) == b"hello_ok"  # answered back through
            from_b = await _send(router, "b", [b"b1"])
            with trio.fail_after(5):
                await sink.wait_for(4)
            assert router.routed == {"a": 1, "b": 1}
            assert mesh.proxies[("a", "c")].stats.connections_accepted == 1
            assert mesh.proxies[("b", "c")].stats.connections_accepted == 1
            # c drops what comes from a: a's frames stop, b's still arrive.
            mesh.apply_grudge({"c": {"a"}})
            await from_a.send_all(frame(b"a2"))
            await from_b.send_all(frame(b"b2"))
            with trio.fail_after(5):
                await sink.wait_for(5)
            await trio.sleep(0.2)
            assert b"b2" in sink.payloads() and b"a2" not in sink.payloads()
            mesh.heal()
            await from_a.send_all(frame(b"a3"))
            with trio.fail_after(5):
                await sink.wait_for(6)
            assert b"a3" in sink.payloads()
            await from_a.aclose()
            await from_b.aclose()
            nursery.cancel_scope.cancel()

    trio.run(scenario)


@pytest.mark.parametrize("first", [b"not a frame at all", None])
def test_an_unknown_sender_or_a_non_hello_is_reset(first: bytes | None) -> None:
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            _mesh, router, sink = await _mesh_and_router(nursery)
            stream = await trio.open_tcp_stream(*router.listen)
            # An unknown sender's hello, or garbage that is no hello.
            await stream.send_all(frame(first) if first is not None else frame(_hello("zz")))
            with trio.fail_after(5):
                with pytest.raises(trio.BrokenResourceError):
                    while await stream.receive_some(100):
                        pass
            assert router.refused == 1 and sink.connections == 0
            nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_a_cut_reset_on_the_proxy_reaches_the_dialler_as_a_reset() -> None:
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            mesh, router, sink = await _mesh_and_router(nursery)
            stream = await _send(router, "a", [b"x"])
            with trio.fail_after(5):
                await sink.wait_for(2)
            mesh.set_cut("reset", [("a", "c")])
            with trio.fail_after(5):
                with pytest.raises(trio.BrokenResourceError):
                    while await stream.receive_some(100):
                        pass
            mesh.heal()
            nursery.cancel_scope.cancel()

    trio.run(scenario)
