"""The nemesis against real raftnode processes: proxies carry the peer traffic, a
partition moves leadership, clock requests are accepted, a killed node comes back.

Only behaviour is asserted (who leads, who answers), with generous timeouts: node start-up
takes seconds on a loaded machine.
"""

from __future__ import annotations

import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from nemesis_helpers import free_ports

from nemesis.admin import AdminError, ping
from nemesis.clock import ClockSetting, set_clock
from nemesis.faults.partition import PartitionFault
from nemesis.process import NodeProcess, ProcessGroup
from nemesis.proxy import ProxyMesh
from raftnode.client import ClientError, RaftClient

pytestmark = pytest.mark.slow

CLUSTER = "nemesis-real"
NODE_IDS = ("n1", "n2", "n3")
TIMEOUT = 60.0


class RealCluster:
    def __init__(self, tmp_path: Path, group: ProcessGroup) -> None:
        ports = free_ports(3 + 6)
        self.node_ids = NODE_IDS
        self.cluster_id = CLUSTER
        self.nodes = {node: ("127.0.0.1", ports[i]) for i, node in enumerate(NODE_IDS)}
        self.mesh = ProxyMesh(self.nodes, base_port=ports[3], seed=1)
        self.group = group
        self.tmp_path = tmp_path
        for node in NODE_IDS:
            argv = [
                sys.executable,
                "-m",
                "campaign",
                "node",
                "--id",
                node,
                "--listen",
                f"{self.nodes[node][0]}:{self.nodes[node][1]}",
                "--data-dir",
                str(self.data_dir(node)),
                "--cluster-id",
                CLUSTER,
                *self.mesh.peer_args(node),
            ]
            group.add(
                NodeProcess(node, argv, self.data_dir(node), tmp_path / "nodes" / f"{node}.log")
            )
        self.client = RaftClient(self.nodes, cluster_id=CLUSTER, timeout=1.0)

    @property
    def processes(self) -> dict[str, NodeProcess]:
        return self.group.processes

    def node_port(self, node_id: str) -> int:
        return self.nodes[node_id][1]

    def data_dir(self, node_id: str) -> Path:
        return self.tmp_path / "data" / node_id

    async def roles(self) -> dict[str, tuple[str | None, int | None]]:
        roles: dict[str, tuple[str | None, int | None]] = {}
        for node in NODE_IDS:
            try:
                status = await self.client.status(node, 0.5)
                roles[node] = (status.get("role"), status.get("term"))
            except ClientError:
                roles[node] = (None, None)
        return roles

    async def current_leader(self) -> str | None:
        """The leader in the highest term (a deposed one may not know it yet)."""
        roles = await self.roles()
        leaders = [(term or 0, node) for node, (role, term) in roles.items() if role == "leader"]
        return max(leaders)[1] if leaders else None

    async def wait_for_leader(self, other_than: str | None = None) -> str:
        with trio.fail_after(TIMEOUT):
            while True:
                leader = await self.current_leader()
                if leader is not None and leader != other_than:
                    return leader
                await trio.sleep(0.2)


@asynccontextmanager
async def real_cluster(tmp_path: Path) -> AsyncIterator[RealCluster]:
    async with ProcessGroup() as group:
        cluster = RealCluster(tmp_path, group)
        async with cluster.mesh.serving(), cluster.client:
            await group.start_all()
            yield cluster


async def test_partitioning_the_leader_through_the_proxies_moves_leadership(tmp_path: Path) -> None:
    async with real_cluster(tmp_path) as cluster:
        first = await cluster.wait_for_leader()
        # Peer traffic really flows through the proxies.
        assert sum(proxy.stats.frames_passed for proxy in cluster.mesh.proxies.values()) > 0
        fault = PartitionFault(["leader"])
        event = await fault.start(cluster, random.Random(1))  # type: ignore[arg-type]
        assert event.value["isolated"] == first
        second = await cluster.wait_for_leader(other_than=first)
        assert second != first
        assert any(proxy.stats.frames_dropped for proxy in cluster.mesh.proxies.values())
        await fault.stop(cluster)  # type: ignore[arg-type]
        # Healed: the old leader hears the new term and follows.
        with trio.fail_after(TIMEOUT):
            while (await cluster.roles())[first][0] == "leader":
                await trio.sleep(0.2)


async def test_clock_requests_and_restarts_on_real_nodes(tmp_path: Path) -> None:
    async with real_cluster(tmp_path) as cluster:
        await cluster.wait_for_leader()
        host, port = cluster.nodes["n1"]
        reply = await set_clock(
            host, port, cluster_id=CLUSTER, setting=ClockSetting(offset=3.0, rate=1.5)
        )
        assert reply["ok"] is True
        await set_clock(host, port, cluster_id=CLUSTER, setting=ClockSetting())
        process = cluster.processes["n2"]
        await process.kill()
        await process.start()
        host, port = cluster.nodes["n2"]
        with trio.fail_after(TIMEOUT):
            while True:
                try:
                    await ping(host, port, cluster_id=CLUSTER, timeout=1.0)
                    break
                except AdminError:
                    await trio.sleep(0.2)
        assert (tmp_path / "nodes" / "n2.log").read_text().count("=== raftlab n2: start #") == 2
        await cluster.wait_for_leader()
