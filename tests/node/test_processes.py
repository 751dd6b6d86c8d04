"""Real node processes on loopback: crash safety, catch-up by snapshot, hostile input,
and the kv/status commands' exit codes."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import trio
from node_procs import ProcessCluster, free_ports

from campaign.cli import main as raftlab_main
from raftnode.client import ClientError
from raftnode.wire import FrameStream, encode_frame, hello_frame

pytestmark = pytest.mark.slow

FAST = ["--heartbeat-ms", "50", "--election-timeout-ms", "300"]

# A "node" that completes the hello and then swallows every request.
SILENT_NODE = """
import socket, struct, sys, msgpack
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
conn, _ = server.accept()
conn.recv(65536)
body = msgpack.packb({"type": "hello_ok", "node": "n1"})
conn.sendall(struct.pack(">I", len(body)) + body)
while conn.recv(65536):
    pass
"""


async def write_until(
    cluster: Any, worker: int, acked: dict[str, int], stop: trio.Event, maybe: set[str]
) -> None:
    """Puts of unique keys until ``stop``; remembers what was acknowledged."""
    async with cluster.client(f"w{worker}", timeout=2.0) as client:
        i = 0
        while not stop.is_set():
            key = f"w{worker}-{i}"
            try:
                await client.put(key, i)
            except ClientError as error:
                if not error.definite:
                    maybe.add(key)
            else:
                acked[key] = i
            i += 1


async def test_leader_crash_failover_restart_and_catch_up_by_snapshot(
    process_cluster: Callable[..., Any],
) -> None:
    cluster = process_cluster(3, [*FAST, "--snapshot-threshold", "40"])
    cluster.start_all()
    first = await cluster.wait_for_leader()
    acked: dict[str, int] = {}
    maybe: set[str] = set()
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        for worker in range(4):
            nursery.start_soon(write_until, cluster, worker, acked, stop, maybe)
        with trio.fail_after(20):
            while len(acked) < 60:
                await trio.sleep(0.02)
        # SIGKILL the leader in the middle of the writes.
        cluster.kill(first)
        killed_at = len(acked)
        second = await cluster.wait_for_leader(exclude=first)
        assert second != first
        # The new leader serves writes, and enough of them to compact its log past
        # what the killed node has, so that it must catch up by snapshot.
        with trio.fail_after(20):
            while len(acked) < killed_at + 150:
                await trio.sleep(0.02)
        stop.set()
    statuses = await cluster.statuses()
    assert statuses[second]["snapshot_index"] > 0
    target = statuses[second]["commit_index"]

    cluster.start(first)
    with trio.fail_after(15):
        while True:
            status = (await cluster.statuses()).get(first)
            if status and status["applied_index"] >= target:
                break
            await trio.sleep(0.05)
    assert "snapshot restored" in cluster.log_text(first)
    assert status["snapshot_index"] > 0

    # Every acknowledged write is there, read back through the cluster (ReadIndex).
    async with cluster.client("reader", timeout=5.0) as client:
        async with trio.open_nursery() as nursery:
            missing: list[str] = []

            async def check(keys: list[str]) -> None:
                for key in keys:
                    if await client.get(key) != acked[key]:
                        missing.append(key)

            keys = sorted(acked)
            for part in range(8):
                nursery.start_soon(check, keys[part::8])
        assert missing == []
    # The new leader compacted its log; the restarted node caught up past it (above).
    assert "snapshot taken" in cluster.log_text(second)


async def send_raw(port: int, data: bytes) -> bytes:
    """Send bytes on a fresh connection; return whatever comes back before close."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    try:
        await stream.send_all(data)
        with trio.move_on_after(6):
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                received += chunk
    except trio.BrokenResourceError:
        pass
    finally:
        await stream.aclose()
    return received


def decode_frames(data: bytes) -> list[dict[str, Any]]:
    frames = []
    while len(data) >= 4:
        (length,) = struct.unpack(">I", data[:4])
        frames.append(msgpack.unpackb(data[4 : 4 + length], raw=False))
        data = data[4 + length :]
    return frames


async def test_hostile_input_closes_only_that_connection(
    process_cluster: Callable[..., Any],
) -> None:
    cluster = process_cluster(1)
    cluster.start_all()
    await cluster.wait_for_leader()
    port = cluster.cluster["n1"][1]
    async with cluster.client("steady", timeout=3.0) as client:
        await client.put("before", 1)  # an established client connection, kept throughout

        # Garbage (an HTTP request reads as a ~1.2 GB length): refused as too large.
        reply = decode_frames(await send_raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert reply and reply[0]["type"] == "error" and reply[0]["error"] == "too_large"
        # Undecodable msgpack of a plausible length.
        reply = decode_frames(await send_raw(port, struct.pack(">I", 5) + b"\xc1" * 5))
        assert reply[0]["error"] == "malformed"
        # An oversized frame announced after a valid hello.
        hello = encode_frame(hello_frame("raftlab", "x", "client"))
        reply = decode_frames(await send_raw(port, hello + struct.pack(">I", 64 << 20)))
        assert [f["type"] for f in reply] == ["hello_ok", "error"]
        assert reply[1]["error"] == "too_large"
        # A foreign cluster id.
        reply = decode_frames(await send_raw(port, encode_frame(hello_frame("other", "x", "peer"))))
        assert reply[0]["error"] == "cluster_mismatch"
        # A request before the hello; a peer hello from a stranger.
        reply = decode_frames(
            await send_raw(port, encode_frame({"type": "request", "id": 1, "op": "get"}))
        )
        assert reply[0]["type"] == "error"
        reply = decode_frames(
            await send_raw(port, encode_frame(hello_frame("raftlab", "mallory", "peer")))
        )
        assert reply[0]["error"] == "unknown_peer"
        # A truncated frame, then the peer goes away.
        await send_raw(port, hello + encode_frame({"type": "status", "id": 1})[:-1])

        # Bad fields in a well-formed request: answered, and the connection stays usable.
        stream = FrameStream(await trio.open_tcp_stream("127.0.0.1", port))
        await stream.send(hello_frame("raftlab", "probe", "client"))
        assert (await stream.receive() or {}).get("type") == "hello_ok"
        await stream.send({"type": "request", "id": 5, "op": "put", "key": "k"})
        answer = await stream.receive()
        assert answer is not None and (answer["id"], answer["error"]) == (5, "malformed")
        await stream.send({"type": "status", "id": 6})
        assert (await stream.receive() or {}).get("type") == "status_reply"
        # A client that half-closes after its last request still gets the answer.
        await stream.send({"type": "request", "id": 7, "op": "put", "key": "h", "value": 1,
                           "client": "half", "seq": 1})  # fmt: skip
        await stream.stream.send_eof()
        answer = await stream.receive()
        assert answer is not None and (answer["id"], answer["ok"]) == (7, True)
        assert await stream.receive() is None
        await stream.aclose()

        # A command over the request limit is refused, definitely.
        with pytest.raises(ClientError) as too_large:
            await client.put("big", "x" * 70_000)
        assert (too_large.value.code, too_large.value.definite) == ("too_large", True)
        # Clock skew by admin request: applied, logged; nonsense refused.
        assert (await client.set_clock("n1", offset=5.0, rate=2.0))["ok"] is True
        refused = await client.set_clock("n1", rate=-1.0)
        assert (refused["ok"], refused["error"]) == (False, "malformed")
        assert (await client.set_clock("n1", offset=0.0, rate=1.0))["ok"] is True

        # The node kept serving, the old connection included.
        await client.put("after", 2)
        assert await client.get("before") == 1
        assert await client.get("after") == 2
    log = cluster.log_text("n1")
    assert "cluster id 'other'" in log and "exceeds the maximum" in log
    assert "clock set by" in log and "rate=2" in log
    assert cluster.processes["n1"].poll() is None


def test_kv_and_status_commands(
    process_cluster: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        """``raftlab ARGS`` in this process (a fresh interpreter costs ~1 s per call)."""
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            raftlab_main(list(args))
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, exit_info.value.code, captured.out, captured.err)

    cluster = process_cluster(3, FAST)
    cluster.start_all()
    trio.run(cluster.wait_for_leader)
    text = cluster.cluster_text

    # Once through the real entry point, then in-process.
    result = cluster.cli("kv", "--cluster", text, "put", "k", '{"a": [1, 2]}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
    result = cli("kv", "--cluster", text, "get", "k")
    assert json.loads(result.stdout)["value"] == {"a": [1, 2]}
    result = cli("kv", "--cluster", text, "append", "l", "hello")
    assert (result.returncode, json.loads(result.stdout)["value"]) == (0, ["hello"])
    result = cli("kv", "--cluster", text, "cas", "k", "1", "2")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == "cas_mismatch"
    result = cli("kv", "--cluster", text, "put", "k")
    assert result.returncode == 254
    result = cli("kv", "--cluster", "n1", "get", "k")
    assert result.returncode == 254

    result = cli("status", "--cluster", text)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == cluster.ids
    assert sum(r["role"] == "leader" for r in rows) == 1
    assert all(r["reachable"] and r["commit_index"] >= 3 for r in rows)

    # One node down: status says so (exit 1); the cluster still serves writes.
    cluster.kill("n3")
    result = cli("status", "--cluster", text)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1 and rows[2] == {**rows[2], "id": "n3", "reachable": False}
    assert cli("kv", "--cluster", text, "put", "x", "1").returncode == 0

    # A node that takes the request and never answers: the outcome is unknown (exit 2).
    # (A real leader without a quorum steps down within an election timeout, check-quorum,
    # and then answers not_leader: too quick to catch from a fresh process reliably.)
    port = free_ports(1)[0]
    silent = subprocess.Popen(
        [sys.executable, "-c", SILENT_NODE, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert silent.stdout is not None and silent.stdout.readline().strip() == "ready"
        result = cli("kv", "--cluster", f"n1=127.0.0.1:{port}", "--timeout", "1", "put", "z", "1")
        assert result.returncode == 2, result.stdout
        assert json.loads(result.stdout)["definite"] is False
    finally:
        silent.kill()
        silent.wait()

    # Nothing reachable at all: definitely not done (exit 1).
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"n9=127.0.0.1:{unused.getsockname()[1]}"
    result = cli("kv", "--cluster", dead, "--timeout", "0.5", "get", "k")
    assert result.returncode == 1 and json.loads(result.stdout)["error"] == "unavailable"


async def test_sigkill_right_after_acks_loses_nothing_and_start_errors_are_clear(
    process_cluster: Callable[..., Any],
) -> None:
    """A single node: every write it acknowledged is durable the instant the ack leaves
    (persist before apply before reply), across SIGKILL and restart from WAL + snapshot."""
    cluster = process_cluster(1, ["--snapshot-threshold", "25"])
    cluster.start_all()
    await cluster.wait_for_leader()
    acked: dict[str, int] = {}
    async with cluster.client("durable", timeout=3.0) as client:
        async with trio.open_nursery() as nursery:

            async def writer(worker: int) -> None:
                for i in range(30):
                    await client.put(f"d{worker}-{i}", i)
                    acked[f"d{worker}-{i}"] = i

            for worker in range(4):
                nursery.start_soon(writer, worker)
            with trio.fail_after(20):
                while len(acked) < 100:
                    await trio.sleep(0.001)
            cluster.kill("n1")  # mid-stream: later writes fail, acked ones must survive
            nursery.cancel_scope.cancel()
    # A second node on the same data directory is refused with a clear message.
    cluster.start("n1")
    await cluster.wait_for_leader()
    clash = cluster.cli(
        "node", "--id", "n1", "--listen", "127.0.0.1:0", "--data-dir", str(cluster.root / "n1")
    )
    assert clash.returncode == 1 and "in use by another process" in clash.stderr
    taken_port = cluster.cluster["n1"][1]
    clash = cluster.cli(
        "node", "--id", "n1", "--listen", f"127.0.0.1:{taken_port}",
        "--data-dir", str(cluster.root / "other"),
    )  # fmt: skip
    assert clash.returncode == 1 and "cannot listen" in clash.stderr
    status = (await cluster.statuses())["n1"]
    assert status["snapshot_index"] > 0  # restarted from a snapshot plus the log after it
    async with cluster.client("reader", timeout=3.0) as client:
        for key, value in acked.items():
            assert await client.get(key) == value, key


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports in 17000-17999 that bind right now.

    Every base is tried, in an order of its own: ``free_ports(1)`` with its default
    generator gives the same port on every call of one process, so retrying it retried
    one base (CI failed when that base's neighbours were busy)."""
    bases = list(range(17000, 18000 - count))
    random.Random(os.getpid()).shuffle(bases)
    for base in bases:
        sockets = []
        try:
            for port in range(base, base + count):
                probe = socket.socket()
                sockets.append(probe)
                probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for probe in sockets:
                probe.close()
    raise RuntimeError("no run of free ports in 17000-17999")


def test_cluster_up_prints_the_cluster_and_stops_every_node(tmp_path: Any) -> None:
    base = consecutive_free_ports(3)
    up = subprocess.Popen(
        [sys.executable, "-m", "campaign", "cluster", "up", "--nodes", "3", "--data-dir",
         str(tmp_path), "--base-port", str(base), "--election-timeout-ms", "300",
         "--heartbeat-ms", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    children: list[int] = []
    try:
        assert up.stdout is not None
        line = up.stdout.readline().strip()
        assert line == ",".join(f"n{i + 1}=127.0.0.1:{base + i}" for i in range(3))
        children_file = f"/proc/{up.pid}/task/{up.pid}/children"
        with open(children_file) as handle:
            children = [int(pid) for pid in handle.read().split()]
        assert len(children) == 3
        trio.run(ProcessClusterView(line).wait_for_leader)
        up.send_signal(signal.SIGINT)  # Ctrl-C
        assert up.wait(timeout=15) == 0
        for pid in children:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class ProcessClusterView:
    """Just enough of node_procs.ProcessCluster to poll a cluster we did not start."""

    def __init__(self, cluster_text: str) -> None:
        from raftnode.client import parse_cluster

        self.cluster = parse_cluster(cluster_text)
        self.ids = list(self.cluster)

    client = ProcessCluster.client
    statuses = ProcessCluster.statuses
    wait_for_leader = ProcessCluster.wait_for_leader
