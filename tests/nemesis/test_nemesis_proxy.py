"""LinkProxy and ProxyMesh on loopback: every fault acts per message.

Assertions are about which frames arrive and in what order, never about how fast.
"""

from __future__ import annotations

import random

import pytest
import trio
from nemesis_helpers import FrameSink, frame, free_port, free_ports, read_frame

from nemesis.proxy import (
    BLACKHOLE,
    RTO_MAX_SECONDS,
    SYN_RTO_SECONDS,
    LinkFaults,
    LinkProxy,
    ProxyError,
    ProxyMesh,
    assign_proxy_ports,
    next_retransmission,
)

HELLO = b"hello"


async def _setup(nursery: trio.Nursery, **proxy_options: object) -> tuple[FrameSink, LinkProxy]:
    sink = FrameSink(port=free_port())
    await nursery.start(sink.run)
    proxy = LinkProxy(
        "n1", "n2", ("127.0.0.1", free_port()), ("127.0.0.1", sink.port), **proxy_options
    )
    await nursery.start(proxy.run)
    return sink, proxy


async def _dial(proxy: LinkProxy) -> tuple[trio.SocketStream, bytearray]:
    """Connect through the proxy and complete the handshake (first frame and its answer)."""
    stream = await trio.open_tcp_stream("127.0.0.1", proxy.listen[1])
    await stream.send_all(frame(HELLO))
    buffer = bytearray()
    answer = await read_frame(stream, buffer)
    assert answer == b"hello_ok"
    return stream, buffer


def _messages(count: int) -> list[bytes]:
    return [f"message-{i}".encode() * (1 + i % 7) for i in range(count)]


async def _marker_after(
    sink: FrameSink, stream: trio.SocketStream, proxy: LinkProxy
) -> list[bytes]:
    """Heal, send a marker and return what arrived before it (after the hello)."""
    proxy.heal()
    await stream.send_all(frame(b"marker"))
    with trio.fail_after(10):
        while b"marker" not in sink.payloads():
            await sink.wait_for(len(sink.frames) + 1)
    payloads = sink.payloads()
    return payloads[1 : payloads.index(b"marker")]


async def test_pass_forwards_every_frame_intact_and_in_order() -> None:
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery)
        stream, _ = await _dial(proxy)
        # Small frames in one write, a frame larger than one read, an empty frame, and a
        # frame whose header is split across writes.
        messages = _messages(200) + [bytes(range(256)) * 4096, b""]
        await stream.send_all(b"".join(frame(m) for m in messages))
        split = frame(b"split-header")
        await stream.send_all(split[:2])
        await trio.sleep(0.01)
        await stream.send_all(split[2:])
        with trio.fail_after(10):
            await sink.wait_for(1 + len(messages) + 1)
        assert sink.payloads() == [HELLO, *messages, b"split-header"]
        assert proxy.stats.frames_passed == len(messages) + 2
        assert proxy.stats.frames_dropped == 0
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_stream_stays_intact_across_arbitrary_splits_and_mode_changes() -> None:
    """Frames cut at random points while the proxy switches between its passing fast
    path, per-frame decisions and delayed (queued) delivery: every byte arrives once, in
    order."""
    rng = random.Random(2024)
    messages = [rng.randbytes(rng.choice([0, 1, 3, 4, 5, 50, 700, 70_000])) for _ in range(300)]
    stream_bytes = b"".join(frame(m) for m in messages)
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery)
        stream, _ = await _dial(proxy)
        position = 0
        modes = [
            {"loss": 0.0, "delay": 0.0},
            {"loss": 1e-300, "delay": 0.0},  # decided per frame, never dropped
            {"loss": 0.0, "delay": 0.002},
        ]
        while position < len(stream_bytes):
            mode = rng.choice(modes)
            proxy.faults.loss = mode["loss"]
            proxy.faults.delay = mode["delay"]
            piece = rng.choice([1, 2, 3, 5, 7, 100, 4096, 100_000])
            await stream.send_all(stream_bytes[position : position + piece])
            position += piece
            await trio.sleep(0.001)  # let the proxy read at this boundary
        # Headers cut by the end of a read while passing, whose frame's fate is then
        # decided under another fault: kept, queued, or dropped whole.
        expected = list(messages)
        for cut in (1, 2, 3):
            for loss, delay, kept in ((1e-300, 0.0, True), (0.0, 0.002, True), (1.0, 0.0, False)):
                message = f"cut {cut} {loss} {delay}".encode()
                proxy.heal()
                await stream.send_all(frame(message)[:cut])
                await trio.sleep(0.02)
                proxy.faults.loss = loss
                proxy.faults.delay = delay
                await stream.send_all(frame(message)[cut:])
                await trio.sleep(0.02)
                if kept:
                    expected.append(message)
        proxy.heal()
        await stream.send_all(frame(b"end"))
        with trio.fail_after(20):
            await sink.wait_for(1 + len(expected) + 1)
        assert sink.payloads() == [HELLO, *expected, b"end"]
        assert proxy.stats.frames_dropped == 3
        nursery.cancel_scope.cancel()


async def test_drop_with_probability_one_drops_every_message_but_the_handshake() -> None:
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery)
        proxy.faults.loss = 1.0
        stream, _ = await _dial(proxy)
        await stream.send_all(b"".join(frame(m) for m in _messages(50)))
        with trio.fail_after(10):
            while proxy.stats.frames_dropped < 50:
                await trio.sleep(0.01)
        assert await _marker_after(sink, stream, proxy) == []
        nursery.cancel_scope.cancel()


async def test_drop_with_probability_zero_drops_nothing() -> None:
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery)
        proxy.faults.loss = 0.0
        stream, _ = await _dial(proxy)
        messages = _messages(50)
        await stream.send_all(b"".join(frame(m) for m in messages))
        assert await _marker_after(sink, stream, proxy) == messages
        assert proxy.stats.frames_dropped == 0
        nursery.cancel_scope.cancel()


async def test_partial_loss_follows_the_seeded_rng_per_message() -> None:
    seed = 1234
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery, seed=seed)
        proxy.faults.loss = 0.5
        stream, _ = await _dial(proxy)
        messages = _messages(100)
        await stream.send_all(b"".join(frame(m) for m in messages))
        with trio.fail_after(10):
            while proxy.stats.frames_dropped + proxy.stats.frames_passed < 101:
                await trio.sleep(0.01)
        arrived = await _marker_after(sink, stream, proxy)
        nursery.cancel_scope.cancel()
    # The handshake draws nothing; then one draw per message, in order.
    rng = random.Random(seed)
    expected = [m for m in messages if not rng.random() < 0.5]
    assert arrived == expected
    assert 0 < len(arrived) < len(messages)


async def test_blocked_link_is_a_grudge_and_heal_restores_it() -> None:
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery)
        stream, _ = await _dial(proxy)
        proxy.faults.blocked = True
        await stream.send_all(b"".join(frame(m) for m in _messages(10)))
        with trio.fail_after(10):
            while proxy.stats.frames_dropped < 10:
                await trio.sleep(0.01)
        assert await _marker_after(sink, stream, proxy) == []
        assert proxy.faults.passing
        after_heal = _messages(5)
        await stream.send_all(b"".join(frame(m) for m in after_heal))
        with trio.fail_after(10):
            await sink.wait_for(1 + 1 + 5)
        assert sink.payloads()[-5:] == after_heal
        nursery.cancel_scope.cancel()


async def test_delay_keeps_order_and_never_delivers_early() -> None:
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery, seed=7)
        stream, _ = await _dial(proxy)
        proxy.faults.delay = 0.05
        proxy.faults.jitter = 0.04
        messages = _messages(40)
        sent_at = trio.current_time()
        await stream.send_all(b"".join(frame(m) for m in messages))
        with trio.fail_after(10):
            await sink.wait_for(1 + len(messages))
        # No message can arrive before the smallest possible delay has passed.
        assert trio.current_time() - sent_at >= 0.01
        assert sink.payloads()[1:] == messages
        assert proxy.stats.frames_delayed == len(messages)
        nursery.cancel_scope.cancel()


async def test_delay_with_reorder_delivers_by_drawn_delay() -> None:
    seed = 99
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery, seed=seed)
        stream, _ = await _dial(proxy)
        proxy.faults.delay = 0.1
        proxy.faults.jitter = 0.09
        proxy.faults.reorder = True
        messages = _messages(30)
        # Held while we write, so the proxy reads every frame in one read: they all
        # arrive at the same moment and only their drawn delays order them.
        proxy.set_cut("hold")
        await stream.send_all(b"".join(frame(m) for m in messages))
        await trio.sleep(0.05)
        proxy.set_cut(None)
        with trio.fail_after(10):
            await sink.wait_for(1 + len(messages))
        arrived = sink.payloads()[1:]
        nursery.cancel_scope.cancel()
    rng = random.Random(seed)
    draws = [rng.uniform(0.01, 0.19) for _ in messages]
    expected = [m for _, m in sorted(zip(draws, messages, strict=True), key=lambda pair: pair[0])]
    assert arrived == expected
    assert arrived != messages


async def test_delayed_frames_are_not_overtaken_after_the_delay_ends() -> None:
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery)
        stream, _ = await _dial(proxy)
        proxy.faults.delay = 0.2
        await stream.send_all(frame(b"slow-1") + frame(b"slow-2"))
        with trio.fail_after(10):
            while proxy.stats.frames_delayed < 2:
                await trio.sleep(0.005)
        proxy.faults.delay = 0.0
        await stream.send_all(frame(b"fast"))
        with trio.fail_after(10):
            await sink.wait_for(4)
        assert sink.payloads() == [HELLO, b"slow-1", b"slow-2", b"fast"]
        nursery.cancel_scope.cancel()


async def test_delayed_frames_are_delivered_after_the_sender_closes() -> None:
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery)
        stream, _ = await _dial(proxy)
        proxy.faults.delay = 0.1
        messages = _messages(20)
        await stream.send_all(b"".join(frame(m) for m in messages))
        await stream.aclose()
        with trio.fail_after(10):
            await sink.wait_for(1 + len(messages))
        assert sink.payloads() == [HELLO, *messages]
        with trio.fail_after(10):
            while proxy.connection_count:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


async def test_cut_hold_forwards_nothing_until_healed() -> None:
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery)
        stream, _ = await _dial(proxy)
        proxy.set_cut("hold")
        await stream.send_all(frame(b"held-1") + frame(b"held-2"))
        # A new connection is accepted but not forwarded either.
        second = await trio.open_tcp_stream("127.0.0.1", proxy.listen[1])
        await second.send_all(frame(b"second-hello"))
        await trio.sleep(0.3)
        assert sink.payloads() == [HELLO]
        assert sink.connections == 1
        proxy.set_cut(None)
        with trio.fail_after(10):
            await sink.wait_for(4)
        assert sink.payloads(1) == [HELLO, b"held-1", b"held-2"]
        assert sink.payloads(2) == [b"second-hello"]
        nursery.cancel_scope.cancel()


async def test_blackhole_holds_the_link_until_the_senders_next_retransmission() -> None:
    """Issue 9, defect 5: a black-holed direction reads and forwards nothing, holds new
    connections (a SYN into the dark), and after the heal stays dark until the sender's
    TCP would retransmit (0.2 s, then 0.6, 1.4, 3.0 s after it went dark), while a
    connection dialled after the heal passes at once."""
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery)
        stream, buffer = await _dial(proxy)
        proxy.set_blackhole(True)
        assert not proxy.faults.passing
        await stream.send_all(frame(b"dark-1") + frame(b"dark-2"))
        second = await trio.open_tcp_stream("127.0.0.1", proxy.listen[1])
        await second.send_all(frame(b"second-hello"))
        with trio.fail_after(10):
            while proxy.stats.blackhole_holds < 2:
                await trio.sleep(0.01)
        await trio.sleep(1.5)  # dark long enough: the next retransmission is 3.0 s in
        assert sink.payloads() == [HELLO]
        assert sink.connections == 1  # the SYN into the dark reached nobody
        assert proxy.connection_count == 2  # and both connections are still open
        proxy.heal()
        third, _ = await _dial(proxy)
        await third.send_all(frame(b"after-heal"))
        with trio.fail_after(10):
            while b"after-heal" not in sink.payloads():
                await sink.wait_for(len(sink.frames) + 1)
        assert b"dark-1" not in sink.payloads()  # still waiting for its retransmission
        with trio.fail_after(30):
            await sink.wait_for(6)
        assert sink.payloads(1) == [HELLO, b"dark-1", b"dark-2"]
        assert b"second-hello" in sink.payloads()
        # The connection is healthy again in both directions.
        await stream.send_all(frame(b"later"))
        with trio.fail_after(10):
            await sink.wait_for(7)
        assert sink.payloads(1)[-1] == b"later"
        nursery.cancel_scope.cancel()


async def test_an_idle_connection_in_a_healed_blackhole_passes_at_once() -> None:
    """Nothing was sent into the dark, so nothing waits for a retransmission."""
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery)
        stream, _ = await _dial(proxy)
        proxy.set_blackhole(True)
        await trio.sleep(0.3)
        proxy.set_blackhole(False)
        await stream.send_all(frame(b"after"))
        with trio.fail_after(10):
            await sink.wait_for(2)
        assert sink.payloads() == [HELLO, b"after"]
        assert proxy.stats.blackhole_holds == 0
        nursery.cancel_scope.cancel()


def test_next_retransmission_follows_tcp_exponential_backoff() -> None:
    assert next_retransmission(0.0, 0.0) == pytest.approx(0.2)
    assert next_retransmission(0.0, 0.2) == pytest.approx(0.2)
    assert next_retransmission(0.0, 0.25) == pytest.approx(0.6)
    assert next_retransmission(10.0, 11.5) == pytest.approx(13.0)
    # The case: 30 s dark, healed; the sender is silent ~21 s more.
    assert next_retransmission(0.0, 30.0) == pytest.approx(51.0)
    assert next_retransmission(0.0, 2.0, SYN_RTO_SECONDS) == pytest.approx(3.0)
    times = [0.0]
    while times[-1] < 2000:
        times.append(next_retransmission(0.0, times[-1] + 1e-9))
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) == pytest.approx(RTO_MAX_SECONDS)
    assert all(
        b == pytest.approx(min(2 * a, RTO_MAX_SECONDS))
        for a, b in zip(gaps[1:], gaps[2:], strict=False)
    )


async def test_cut_reset_closes_connections_and_refuses_new_ones() -> None:
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery)
        stream, buffer = await _dial(proxy)
        proxy.set_cut("reset")
        with trio.fail_after(10):
            try:
                assert await read_frame(stream, buffer) is None
            except trio.BrokenResourceError:
                pass  # connection reset by peer: what a reset should look like
        assert proxy.connection_count == 0
        # New connections are accepted and reset at once; nothing reaches the sink.
        refused = await trio.open_tcp_stream("127.0.0.1", proxy.listen[1])
        with trio.fail_after(10):
            try:
                assert await refused.receive_some(100) == b""
            except trio.BrokenResourceError:
                pass
        assert sink.connections == 1
        proxy.heal()
        healed, _ = await _dial(proxy)
        await healed.send_all(frame(b"after-heal"))
        with trio.fail_after(10):
            await sink.wait_for(3)
        assert sink.payloads(2) == [HELLO, b"after-heal"]
        nursery.cancel_scope.cancel()


async def test_oversized_frame_closes_that_connection_only() -> None:
    async with trio.open_nursery() as nursery:
        sink, proxy = await _setup(nursery, max_frame_bytes=1000)
        stream, buffer = await _dial(proxy)
        await stream.send_all((5000).to_bytes(4, "big") + b"x" * 100)
        with trio.fail_after(10):
            assert await read_frame(stream, buffer) is None
        healthy, _ = await _dial(proxy)
        await healthy.send_all(frame(b"still-works"))
        with trio.fail_after(10):
            await sink.wait_for(3)
        assert sink.payloads()[-1] == b"still-works"
        nursery.cancel_scope.cancel()


async def test_destination_down_closes_the_accepted_connection() -> None:
    async with trio.open_nursery() as nursery:
        proxy = LinkProxy("n1", "n2", ("127.0.0.1", free_port()), ("127.0.0.1", free_port()))
        await nursery.start(proxy.run)
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.listen[1])
        with trio.fail_after(10):
            try:
                assert await stream.receive_some(100) == b""
            except trio.BrokenResourceError:
                pass
        nursery.cancel_scope.cancel()


async def test_listening_on_a_taken_port_is_a_clear_error() -> None:
    port = free_port()
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    try:
        proxy = LinkProxy("n1", "n2", ("127.0.0.1", port), ("127.0.0.1", free_port()))
        with pytest.raises(ProxyError, match="cannot listen"):
            async with proxy.serving():
                pass
    finally:
        for listener in listeners:
            await listener.aclose()


def test_link_faults_passing() -> None:
    assert LinkFaults().passing
    assert not LinkFaults(loss=0.1).passing
    assert not LinkFaults(blocked=True).passing
    assert not LinkFaults(delay=0.01).passing
    assert not LinkFaults(blackhole=True).passing


# -- ProxyMesh -------------------------------------------------------------------------


def test_assign_proxy_ports_is_deterministic_and_covers_every_directed_link() -> None:
    for nodes in (["n1", "n2", "n3"], ["n1", "n2", "n3", "n4", "n5"]):
        ports = assign_proxy_ports(nodes, 18500)
        n = len(nodes)
        assert len(ports) == n * (n - 1)
        assert sorted(ports.values()) == list(range(18500, 18500 + n * (n - 1)))
        assert all(source != destination for source, destination in ports)
        assert ports == assign_proxy_ports(nodes, 18500)
    with pytest.raises(ValueError, match="duplicate"):
        assign_proxy_ports(["n1", "n1"], 18500)
    with pytest.raises(ValueError, match="65535"):
        assign_proxy_ports(["a", "b", "c"], 65534)


def test_mesh_peer_map_points_each_node_at_its_own_proxies() -> None:
    nodes = {"n1": ("127.0.0.1", 18901), "n2": ("127.0.0.1", 18902), "n3": ("127.0.0.1", 18903)}
    mesh = ProxyMesh(nodes, base_port=18910)
    assert mesh.peer_map("n1") == {"n2": ("127.0.0.1", 18910), "n3": ("127.0.0.1", 18911)}
    assert mesh.peer_map("n2") == {"n1": ("127.0.0.1", 18912), "n3": ("127.0.0.1", 18913)}
    assert mesh.peer_args("n3") == ["--peer", "n1=127.0.0.1:18914", "--peer", "n2=127.0.0.1:18915"]
    # The proxy n1 -> n2 forwards to n2's real address.
    assert mesh.proxies[("n1", "n2")].target == ("127.0.0.1", 18902)
    with pytest.raises(KeyError, match="unknown node"):
        mesh.peer_map("n9")
    with pytest.raises(ValueError, match="overlap"):
        ProxyMesh(nodes, base_port=18898)


def test_mesh_apply_grudge_blocks_exactly_the_named_directions() -> None:
    nodes = {f"n{i}": ("127.0.0.1", 18950 + i) for i in range(1, 4)}
    mesh = ProxyMesh(nodes, base_port=18960)
    mesh.apply_grudge({"n2": {"n1"}})
    blocked = {link for link, faults in mesh.link_faults.items() if faults.blocked}
    assert blocked == {("n1", "n2")}
    mesh.apply_grudge({"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}})
    blocked = {link for link, faults in mesh.link_faults.items() if faults.blocked}
    assert blocked == {("n2", "n1"), ("n3", "n1"), ("n1", "n2"), ("n1", "n3")}
    assert set(mesh.describe()) == {"n2->n1", "n3->n1", "n1->n2", "n1->n3"}
    with pytest.raises(ValueError, match="unknown nodes"):
        mesh.apply_grudge({"n7": {"n1"}})
    # Healing one proxy heals its own direction only.
    mesh.proxies[("n1", "n2")].heal()
    assert not mesh.link_faults[("n1", "n2")].blocked
    assert mesh.link_faults[("n2", "n1")].blocked
    mesh.heal()
    assert not any(faults.blocked for faults in mesh.link_faults.values())
    assert mesh.describe() == {}


def test_mesh_blackhole_grudge_darkens_exactly_the_named_directions() -> None:
    nodes = {f"n{i}": ("127.0.0.1", 18950 + i) for i in range(1, 4)}
    mesh = ProxyMesh(nodes, base_port=18960)
    mesh.apply_grudge({"n2": {"n1"}}, BLACKHOLE)
    dark = {link for link, faults in mesh.link_faults.items() if faults.blackhole}
    assert dark == {("n1", "n2")}
    assert not any(faults.blocked for faults in mesh.link_faults.values())
    assert mesh.describe() == {
        "n1->n2": {
            "blocked": False,
            "loss": 0.0,
            "delay": 0.0,
            "jitter": 0.0,
            "reorder": False,
            "blackhole": True,
            "cut": None,
        }
    }
    # The proxy n2 -> n1 carries n1's answers to n2 on its connections: they obey n1 -> n2.
    assert mesh.proxies[("n2", "n1")].reverse_faults.blackhole
    mesh.apply_grudge({"n1": {"n2"}})  # a new partition, dropping: the old one is lit
    assert not any(faults.blackhole for faults in mesh.link_faults.values())
    assert mesh.link_faults[("n2", "n1")].blocked
    mesh.set_blackhole(True, [("n3", "n1")])
    mesh.heal()
    assert mesh.describe() == {}
    with pytest.raises(ValueError, match="unknown partition mode"):
        mesh.apply_grudge({"n2": {"n1"}}, "cut")


async def test_mesh_one_way_grudge_on_live_links() -> None:
    sink_ports = free_ports(3)
    base = free_ports(6)[0]
    sinks = {f"n{i + 1}": FrameSink(port=port) for i, port in enumerate(sink_ports)}
    mesh = ProxyMesh(
        {node: ("127.0.0.1", sink.port) for node, sink in sinks.items()}, base_port=base
    )
    async with trio.open_nursery() as nursery:
        for sink in sinks.values():
            await nursery.start(sink.run)
        await nursery.start(mesh.run)
        streams: dict[tuple[str, str], trio.SocketStream] = {}
        for source in sinks:
            for destination, (host, port) in mesh.peer_map(source).items():
                stream = await trio.open_tcp_stream(host, port)
                await stream.send_all(frame(f"hello from {source}".encode()))
                assert await read_frame(stream, bytearray()) == b"hello_ok"
                streams[(source, destination)] = stream
        mesh.apply_grudge({"n2": {"n1"}})  # n2 drops what comes from n1; n1 still hears n2
        for (source, destination), stream in streams.items():
            await stream.send_all(frame(f"{source}->{destination} cut?".encode()))
        expected_counts = {"n1": 4, "n2": 3, "n3": 4}  # two hellos each, then the messages
        with trio.fail_after(10):
            for destination, sink in sinks.items():
                await sink.wait_for(expected_counts[destination])
            while mesh.proxies[("n1", "n2")].stats.frames_dropped < 1:
                await trio.sleep(0.01)
        assert b"n1->n2 cut?" not in sinks["n2"].payloads()
        assert b"n3->n2 cut?" in sinks["n2"].payloads()
        assert b"n2->n1 cut?" in sinks["n1"].payloads()
        assert b"n1->n3 cut?" in sinks["n3"].payloads()
        mesh.heal()
        await streams[("n1", "n2")].send_all(frame(b"n1->n2 healed"))
        with trio.fail_after(10):
            while b"n1->n2 healed" not in sinks["n2"].payloads():
                await sinks["n2"].wait_for(len(sinks["n2"].frames) + 1)
        nursery.cancel_scope.cancel()
