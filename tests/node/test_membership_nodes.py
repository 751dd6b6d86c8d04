"""Membership and leadership transfer on real node processes (§4, §3.10): a new empty
node joins as a learner and is promoted, the leader removes itself, and writes keep
working with every acknowledged write readable; transfer-leader and SIGTERM hand-over."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
from node_procs import PROJECT_ROOT, ProcessCluster, free_ports

from nemesis.faults import FAULTS
from raftnode.client import ClientError, RaftClient

FAST = ["--heartbeat-ms", "50", "--election-timeout-ms", "300"]

pytestmark = pytest.mark.slow


def _cli(*args: str, timeout: float = 60.0) -> tuple[int, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "campaign", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, (done.returncode, done.stderr[-2000:])
    return done.returncode, json.loads(lines[-1])


def _start_joiner(cluster: ProcessCluster, node: str, port: int) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "campaign", "node", "--id", node,
        "--listen", f"127.0.0.1:{port}", "--data-dir", str(cluster.root / node),
        "--join", cluster.cluster_text, *FAST,
    ]  # fmt: skip
    with open(cluster.log_path(node), "ab") as log:
        process = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    cluster.processes[node] = process
    return process


async def _write_some(client: RaftClient, prefix: str, count: int, acked: dict[str, str]) -> None:
    for i in range(count):
        key, value = f"{prefix}{i}", f"v{i}"
        try:
            await client.put(key, value)
            acked[key] = value
        except ClientError as error:
            assert not error.definite or error.code in ("not_leader", "no_leader", "unavailable")


def test_join_promote_remove_the_leader_and_keep_every_acked_write(
    process_cluster, tmp_path: Path
) -> None:
    cluster = process_cluster(3, FAST)
    cluster.start_all()
    # A port no node holds: one that has not started listening yet looks free.
    taken = {port for _host, port in cluster.cluster.values()}
    port4 = next(p for p in free_ports(len(taken) + 1) if p not in taken)
    acked: dict[str, str] = {}

    async def scenario() -> None:
        leader = await cluster.wait_for_leader()
        async with cluster.client(timeout=2.0) as client:
            await _write_some(client, "a", 20, acked)
        _start_joiner(cluster, "n4", port4)
        with trio.fail_after(15):  # it serves before it is added, as an operator would see
            while True:
                try:
                    async with RaftClient({"n4": ("127.0.0.1", port4)}, timeout=0.5) as c4:
                        await c4.status("n4")
                    break
                except ClientError:
                    await trio.sleep(0.05)
        code, out = await trio.to_thread.run_sync(
            lambda: _cli(
                "member", "add", f"n4=127.0.0.1:{port4}", "--cluster", cluster.cluster_text
            )
        )
        assert code == 0, out
        assert sorted(out["value"]["voters"]) == ["n1", "n2", "n3", "n4"]
        cluster.cluster["n4"] = ("127.0.0.1", port4)
        cluster.ids.append("n4")
        async with cluster.client(timeout=2.0) as client:
            status = await client.status("n4")
            assert status["applied_index"] > 20 and "n4" in status["voters"]
            await _write_some(client, "b", 10, acked)
        # Remove the leader itself: it steps down once the removal commits (§4.2.2).
        code, out = await trio.to_thread.run_sync(
            lambda: _cli("member", "remove", leader, "--cluster", cluster.cluster_text)
        )
        assert code == 0, out
        assert leader not in out["value"]["voters"]
        rest = {n: a for n, a in cluster.cluster.items() if n != leader}
        async with RaftClient(rest, timeout=2.0) as client:
            with trio.fail_after(10):
                while True:
                    statuses = [await client.status(n) for n in rest]
                    if any(s["role"] == "leader" for s in statuses):
                        break
                    await trio.sleep(0.05)
            await _write_some(client, "c", 20, acked)
            for key, value in acked.items():
                assert await client.get(key) == value, key
        code, out = await trio.to_thread.run_sync(
            lambda: _cli(
                "member",
                "list",
                "--cluster",
                ",".join(f"{n}={h}:{p}" for n, (h, p) in rest.items()),
            )
        )
        assert code == 0 and sorted(out["value"]["voters"]) == sorted(rest)

    trio.run(scenario)
    assert len(acked) >= 45


def test_transfer_leader_and_sigterm_hand_over(process_cluster) -> None:
    cluster = process_cluster(3, FAST)
    cluster.start_all()

    async def scenario() -> None:
        leader = await cluster.wait_for_leader()
        target = next(n for n in cluster.ids if n != leader)
        code, out = await trio.to_thread.run_sync(
            lambda: _cli("transfer-leader", "--to", target, "--cluster", cluster.cluster_text)
        )
        assert code == 0, out
        assert out["value"]["leader"] == target
        # SIGTERM on the leader: it hands over before exiting.
        cluster.signal(target, signal.SIGTERM)
        await trio.to_thread.run_sync(cluster.processes[target].wait)
        assert "handing leadership to" in cluster.log_text(target)
        new = await cluster.wait_for_leader(timeout=5, exclude=target)
        assert new != target

    trio.run(scenario)


class _Control:
    """The few ClusterControl members the transfer fault uses, over a ProcessCluster
    (a stand-in for the campaign's control inside this one unit's test)."""

    cluster_id = "raftlab"

    def __init__(self, cluster: ProcessCluster) -> None:
        self.cluster = cluster
        self.node_ids = list(cluster.ids)
        self.mesh = SimpleNamespace(nodes=dict(cluster.cluster))

    def node_port(self, node: str) -> int:
        return self.cluster.cluster[node][1]

    async def current_leader(self) -> str | None:
        statuses = await self.cluster.statuses()
        return next((n for n, s in statuses.items() if s["role"] == "leader"), None)


def test_the_transfer_fault_moves_leadership(process_cluster) -> None:
    cluster = process_cluster(3, FAST)
    cluster.start_all()
    control = _Control(cluster)
    fault = FAULTS["transfer"](("next",))

    async def scenario() -> None:
        leader = await cluster.wait_for_leader()
        event = await fault.start(control, random.Random(1))
        assert event.f == "start-transfer" and event.value["from"] == leader
        assert event.value["result"] == "started", event.value
        with trio.fail_after(5):
            while await control.current_leader() != event.value["to"]:
                await trio.sleep(0.02)
        stopped = await fault.stop(control)
        assert stopped.f == "stop-transfer" and stopped.value["leader"] == event.value["to"]

    trio.run(scenario)


def test_the_member_fault_shrinks_and_grows_back(process_cluster) -> None:
    """A bare cluster control (no process hooks, no spares): shrink removes the leader
    (its process keeps running), at 3 voters the next step grows with the node outside,
    as a learner, and stop promotes it once it has caught up."""
    cluster = process_cluster(4, FAST)
    cluster.start_all()
    control = _Control(cluster)
    fault = FAULTS["member"](("leader",))
    acked: dict[str, str] = {}

    async def scenario() -> None:
        leader = await cluster.wait_for_leader()
        # Nobody is outside the configuration: whatever the draw, the step shrinks.
        event = await fault.start(control, random.Random(3))
        assert event.f == "start-member" and event.value["action"] == "shrink", event.value
        assert event.value["result"] == "removed", event.value
        assert event.value["node"] == leader and len(event.value["voters"]) == 3
        async with cluster.client(timeout=2.0) as client:
            await _write_some(client, "m", 10, acked)
        # At 3 voters the fault does not shrink: it grows with the removed node.
        grown = await fault.start(control, random.Random(4))
        assert grown.value["action"] == "grow" and grown.value["node"] == leader, grown.value
        assert grown.value["result"] == "added as learner", grown.value
        stopped = await fault.stop(control)
        assert stopped.value["promoted"] == [leader], stopped.value
        assert sorted(stopped.value["voters"]) == sorted(cluster.ids)
        async with cluster.client(timeout=2.0) as client:
            await _write_some(client, "n", 10, acked)
            for key, value in acked.items():
                assert await client.get(key) == value

    trio.run(scenario)
    assert len(acked) >= 15
