"""Real node processes whose peers and clients die or misbehave: a node never crashes on
a peer's or a client's death (issue 9, defect 4), and a follower's ``not_leader`` names
the leader it knows (issue 12)."""

from __future__ import annotations

import json
import signal
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest
import trio
from node_procs import ProcessCluster

from raftnode.client import ClientError, RaftClient
from raftnode.wire import FrameStream, encode_frame, hello_frame

pytestmark = pytest.mark.slow

FAST = ["--heartbeat-ms", "50", "--election-timeout-ms", "300"]


async def test_a_follower_killed_with_data_queued_for_it_never_takes_the_leader_down(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    """Defect 4: the follower is paused (SIGSTOP) under 32 KB puts, so the leader's link to
    it fills its socket buffers and the leader's sender blocks in a send; then it is
    SIGKILLed, and that send fails with a reset. The leader used to exit 255 with an
    ExceptionGroup out of the link's nursery. The pause stays under two election timeouts
    so the silent-link watchdog has not redialled the link yet: the send is still blocked
    when the follower dies."""
    cluster = process_cluster(3, ["--heartbeat-ms", "50", "--election-timeout-ms", "1000"])
    cluster.start_all()
    leader = await cluster.wait_for_leader(timeout=60)
    follower = next(node for node in cluster.ids if node != leader)
    stop = trio.Event()
    acked: list[int] = [0]
    after_kill: list[int] = [0]
    killed = trio.Event()

    async def write(worker: int) -> None:
        async with cluster.client(f"w{worker}", timeout=2.0) as client:
            i = 0
            while not stop.is_set():
                try:
                    await client.put(f"w{worker}-{i % 50}", "x" * 32_000)
                except ClientError:
                    await trio.sleep(0.01)
                else:
                    acked[0] += 1
                    if killed.is_set():
                        after_kill[0] += 1
                i += 1

    async with trio.open_nursery() as nursery:
        for worker in range(8):
            nursery.start_soon(write, worker)
        with trio.move_on_after(60):
            while acked[0] < 20:
                await trio.sleep(0.05)
        cluster.signal(follower, signal.SIGSTOP)
        await trio.sleep(1.5)  # the follower's receive buffer fills in well under a second
        cluster.kill(follower)  # SIGKILL while stopped: its kernel resets the connections
        killed.set()
        # The leader keeps serving with the other follower: writes are acknowledged.
        with trio.move_on_after(60):
            while after_kill[0] < 20 and cluster.processes[leader].poll() is None:
                await trio.sleep(0.05)
        stop.set()
    log = cluster.log_text(leader)
    assert cluster.processes[leader].poll() is None, log[-3000:]
    assert "crashed" not in log and "ExceptionGroup" not in log
    assert after_kill[0] >= 20
    statuses = await cluster.statuses()
    assert leader in statuses  # it answers (whoever leads by now)
    assert f"peer {follower} at" in log  # the lost link is logged, then redialled


async def test_clients_that_reset_their_connections_never_take_the_node_down(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    """A client that sends a burst of requests and resets its connection (RST) before
    reading the replies: the node's reader or reply writer meets the reset inside the
    connection's nursery. It used to leave as an ExceptionGroup and crash the node."""
    cluster = process_cluster(1, FAST)
    cluster.start_all()
    node = await cluster.wait_for_leader(timeout=60)
    host, port = cluster.cluster[node]
    burst = b"".join(
        encode_frame({"type": "request", "id": i, "op": "get", "key": "k"}) for i in range(2000)
    )
    for attempt in range(20):
        with socket.create_connection((host, port), timeout=10) as raw:
            raw.sendall(encode_frame(hello_frame("raftlab", f"rude{attempt}", "client")))
            raw.recv(1000)  # hello_ok
            raw.sendall(burst)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await trio.sleep(0.01)
    async with cluster.client("polite", timeout=10.0) as client:
        await client.put("k", "still here")
        assert await client.get("k") == "still here"
    assert cluster.processes[node].poll() is None
    assert "crashed" not in cluster.log_text(node)


async def test_a_follower_names_the_leader_it_knows_in_not_leader(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    """Issue 12: a follower answered `not_leader` with `"leader": null` (as the client and
    `raftlab kv` reported it) although its status named the leader."""
    # A calm election timeout: the leader must not move while we probe.
    cluster = process_cluster(3, ["--heartbeat-ms", "50", "--election-timeout-ms", "1000"])
    cluster.start_all()
    await cluster.wait_for_leader(timeout=60)
    follower = leader = ""
    with trio.fail_after(30):
        while not leader:
            for node, status in (await cluster.statuses()).items():
                if status["role"] == "follower" and status.get("leader"):
                    follower, leader = node, status["leader"]
            await trio.sleep(0.05)
    host, port = cluster.cluster[follower]
    # The node's own answer, on the wire.
    stream = FrameStream(await trio.open_tcp_stream(host, port))
    async with stream.stream:
        await stream.send(hello_frame("raftlab", "probe", "client"))
        assert (await stream.receive() or {}).get("type") == "hello_ok"
        for request in (
            {"op": "put", "key": "k", "value": 1, "client": "probe", "seq": 1},
            {"op": "get", "key": "k"},
        ):
            await stream.send({"type": "request", "id": 1, **request})
            reply: dict[str, Any] = await stream.receive() or {}
            assert (reply.get("error"), reply.get("leader")) == ("not_leader", leader), reply
    # A client that knows only the follower cannot follow the hint, but reports it.
    only_follower = {follower: cluster.cluster[follower]}
    # A bound on attempts, not on time: a deadline that cuts an attempt short gives an
    # (indefinite) timeout instead.
    async with RaftClient(only_follower, "probe2", timeout=30.0, max_attempts=3) as client:
        with pytest.raises(ClientError) as info:
            await client.put("k", 1)
    assert (info.value.code, info.value.definite, info.value.leader) == (
        "not_leader",
        True,
        leader,
    )
    # And so does `raftlab kv` (what the reporter ran).
    result = await trio.to_thread.run_sync(
        lambda: cluster.cli(
            "kv", "--cluster", f"{follower}={host}:{port}", "--timeout", "1", "put", "k", "1"
        )
    )
    printed = json.loads(result.stdout)
    # not_leader, or timeout when the deadline cut the last retry short: the leader the
    # follower named is reported either way.
    assert (printed["leader"], printed["node"]) == (leader, follower), printed
    assert printed["error"] in ("not_leader", "timeout"), printed
