"""A local cluster for one campaign: node processes on 127.0.0.1 behind a proxy mesh.

`LocalCluster` is what the nemesis acts on (it implements `nemesis.control.ClusterControl`):
node ids, the process of each node, the proxy mesh, and `current_leader()` from status
requests. It also owns the status poller that feeds the progress display and the report's
role / term timeline, and the clean-up that must happen however the run ends: heal every
link, SIGKILL every node process group, release every port.

Ports: each node listens on one port (peers, clients, admin); node i reaches node j
through the proxy i→j. Ports come from ``--base-port`` (nodes first, then the
n·(n−1) proxies), or, with base port 0, from a free block found by binding.
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from campaign.results import NodeEvent
from raftnode.client import ClientError

Address = tuple[str, int]
HOST = "127.0.0.1"
STATUS_TIMEOUT = 0.5
AUTO_PORT_LOW = 20_000  # below Linux's ephemeral range (32768+), so OS-chosen ports never clash
AUTO_PORT_HIGH = 32_000


class ClusterError(Exception):
    """The cluster could not be set up (ports in use, a node that will not start…)."""


def ports_needed(node_count: int) -> int:
    return node_count + node_count * (node_count - 1)


def _block_is_free(base: int, count: int) -> bool:
    sockets: list[socket.socket] = []
    try:
        for port in range(base, base + count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, port))
        return True
    except OSError as error:
        if error.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        raise
    finally:
        for sock in sockets:
            sock.close()


def choose_base_port(node_count: int, base_port: int, rng: random.Random) -> int:
    """The first port of a block of `ports_needed` free ports.

    A given base port is checked and used as is (a clear error when taken); 0 picks a
    free block in [20000, 32000) starting at a seeded random offset.
    """
    count = ports_needed(node_count)
    if base_port:
        if base_port + count - 1 > 65535:
            raise ClusterError(f"--base-port {base_port} + {count} ports exceeds 65535")
        if not _block_is_free(base_port, count):
            raise ClusterError(
                f"ports {base_port}..{base_port + count - 1} are not all free; "
                "choose another --base-port (or 0 to pick a free block)"
            )
        return base_port
    span = AUTO_PORT_HIGH - AUTO_PORT_LOW - count
    start = rng.randrange(span)
    for attempt in range(64):
        candidate = AUTO_PORT_LOW + (start + attempt * count) % span
        if _block_is_free(candidate, count):
            return candidate
    raise ClusterError(f"no block of {count} free ports found in {AUTO_PORT_LOW}..{AUTO_PORT_HIGH}")


@dataclass(slots=True)
class NodeStatus:
    node: str
    role: str | None
    term: int | None
    leader: str | None
    commit_index: int | None = None
    applied_index: int | None = None


@dataclass(slots=True)
class StatusBoard:
    """The latest status of every node and the history of their changes (for the report)."""

    node_ids: tuple[str, ...]
    latest: dict[str, NodeStatus] = field(default_factory=dict)
    events: list[NodeEvent] = field(default_factory=list)

    def record(self, node: str, status: dict[str, Any] | None, time_ns: int) -> None:
        if status is None:
            # Before a node first answers it is still starting (Python startup takes a
            # second or two); afterwards silence means unreachable.
            role = "unreachable" if node in self.latest else "starting"
            if self.latest.get(node) and self.latest[node].role == "starting":
                role = "starting"
            new = NodeStatus(node, role, None, None)
        else:
            new = NodeStatus(
                node,
                str(status.get("role")),
                status.get("term") if isinstance(status.get("term"), int) else None,
                status.get("leader") if isinstance(status.get("leader"), str) else None,
                status.get("commit_index"),
                status.get("applied_index"),
            )
        old = self.latest.get(node)
        self.latest[node] = new
        if old is None or (old.role, old.term, old.leader) != (new.role, new.term, new.leader):
            self.events.append(NodeEvent(time_ns, node, new.role, new.term, new.leader, "status"))

    def leader(self) -> tuple[str | None, int | None]:
        """The node that says it leads in the highest term (a deposed leader may not know yet)."""
        leaders = [s for s in self.latest.values() if s.role == "leader" and s.term is not None]
        if not leaders:
            return None, None
        best = max(leaders, key=lambda status: status.term or 0)
        return best.node, best.term


def node_ids_for(count: int) -> tuple[str, ...]:
    return tuple(f"n{number}" for number in range(1, count + 1))


def node_argv(
    node_id: str,
    *,
    port: int,
    data_dir: Path,
    cluster_id: str,
    peers: Mapping[str, Address],
    seed: int,
    heartbeat_ms: float,
    election_timeout_ms: float,
    unsafe_local_reads: bool,
) -> list[str]:
    """The command line of one node (`raftlab node`, run by this interpreter).

    ``peers`` maps each other node to where this node must dial it: a proxy, or (without
    proxies) the node itself."""
    from raftnode.cli import node_argv as raftnode_argv

    extra = [
        "--seed",
        str(seed),
        "--heartbeat-ms",
        f"{heartbeat_ms:g}",
        "--election-timeout-ms",
        f"{election_timeout_ms:g}",
    ]
    if unsafe_local_reads:
        extra.append("--unsafe-local-reads")
    return raftnode_argv(
        node_id, port, dict(peers), data_dir, host=HOST, cluster_id=cluster_id, extra=extra
    )


class LocalCluster:
    """Node processes behind a proxy mesh on 127.0.0.1; the nemesis's `ClusterControl`."""

    def __init__(
        self,
        *,
        node_ids: Sequence[str],
        base_port: int,
        data_root: Path,
        log_dir: Path,
        cluster_id: str,
        node_seed: int,
        proxy_seed: int,
        heartbeat_ms: float = 100.0,
        election_timeout_ms: float = 1000.0,
        unsafe_local_reads: bool = False,
        status_interval: float = 0.25,
        proxies: bool = True,
    ) -> None:
        from nemesis.process import NodeProcess, ProcessGroup
        from nemesis.proxy import ProxyMesh
        from raftnode.client import RaftClient

        self.node_ids: tuple[str, ...] = tuple(node_ids)
        self.cluster_id = cluster_id
        self.data_root = Path(data_root)
        self.log_dir = Path(log_dir)
        self.status_interval = status_interval
        self.node_addresses: dict[str, Address] = {
            node_id: (HOST, base_port + position) for position, node_id in enumerate(self.node_ids)
        }
        self.mesh = ProxyMesh(
            self.node_addresses,
            base_port=base_port + len(self.node_ids),
            host=HOST,
            seed=proxy_seed,
        )
        # Without proxies (bench/campaign_overhead.py's baseline) nodes dial each other
        # directly and link faults are impossible.
        self.proxies = proxies
        self.group = ProcessGroup()
        seeder = random.Random(node_seed)
        self.data_dirs: dict[str, Path] = {}
        for node_id in self.node_ids:
            data_dir = self.data_root / node_id
            self.data_dirs[node_id] = data_dir
            argv = node_argv(
                node_id,
                port=self.node_addresses[node_id][1],
                data_dir=data_dir,
                cluster_id=cluster_id,
                peers=self.mesh.peer_map(node_id) if proxies else self.node_addresses,
                seed=seeder.getrandbits(63),
                heartbeat_ms=heartbeat_ms,
                election_timeout_ms=election_timeout_ms,
                unsafe_local_reads=unsafe_local_reads,
            )
            self.group.add(NodeProcess(node_id, argv, data_dir, self.log_dir / f"{node_id}.log"))
        self.board = StatusBoard(self.node_ids)
        self._status_client = RaftClient(
            self.node_addresses, timeout=STATUS_TIMEOUT, cluster_id=cluster_id
        )
        self.clock_zero: float | None = None  # trio time of the history's zero, for events

    # --- what the nemesis uses (nemesis.control.ClusterControl) -------------------------

    @property
    def processes(self) -> dict[str, Any]:
        return self.group.processes

    def process(self, node_id: str) -> Any:
        return self.group[node_id]

    def data_dir(self, node_id: str) -> Path:
        return self.data_dirs[node_id]

    def address(self, node_id: str) -> Address:
        return self.node_addresses[node_id]

    def node_port(self, node_id: str) -> int:
        """Where the node really listens (clock requests go straight there, not via proxies)."""
        return self.node_addresses[node_id][1]

    async def current_leader(self) -> str | None:
        """Ask every node now; the one claiming leadership in the highest term."""
        await self.poll_once()
        return self.board.leader()[0]

    # --- life cycle -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Proxies up, nodes started, status polled; until cancelled, then every node killed."""
        async with self.group, self._status_client:
            async with trio.open_nursery() as nursery:
                if self.proxies:
                    await nursery.start(self.mesh.run)
                nursery.start_soon(self.group.watch_signals)
                await self.group.start_all()
                nursery.start_soon(self._poll_forever)
                task_status.started()

    def time_ns(self) -> int:
        """Nanoseconds on the history's clock (the recorder's zero), for events and nemesis.jsonl."""
        if self.clock_zero is None:
            return 0
        return max(0, int((trio.current_time() - self.clock_zero) * 1e9))

    async def poll_once(self) -> None:
        replies: dict[str, dict[str, Any] | None] = {}

        async def one(node_id: str) -> None:
            process = self.group[node_id]
            if not process.running or process.paused:
                replies[node_id] = {"role": "down" if not process.running else "paused"}
                return
            try:
                replies[node_id] = await self._status_client.status(node_id, STATUS_TIMEOUT)
            except ClientError:
                replies[node_id] = None

        async with trio.open_nursery() as nursery:
            for node_id in self.node_ids:
                nursery.start_soon(one, node_id)
        now = self.time_ns()
        for node_id in self.node_ids:
            self.board.record(node_id, replies.get(node_id), now)

    async def _poll_forever(self) -> None:
        while True:
            await self.poll_once()
            await trio.sleep(self.status_interval)

    async def wait_for_leader(self, timeout: float) -> str:
        """Until some node leads and the others agree (a stable first election)."""
        with trio.move_on_after(timeout):
            while True:
                await self.poll_once()
                leader, _term = self.board.leader()
                if leader is not None:
                    agreeing = [s for s in self.board.latest.values() if s.leader == leader]
                    if len(agreeing) > len(self.node_ids) // 2:
                        return leader
                await trio.sleep(0.1)
        exited = {
            node_id: process.returncode
            for node_id, process in self.group.processes.items()
            if not process.running
        }
        detail = f"; exited: {exited} (see nodes/<id>.log)" if exited else ""
        raise ClusterError(f"no leader elected within {timeout:g} s{detail}")

    def heal_links(self) -> None:
        self.mesh.heal()

    def kill_all(self) -> None:
        """Synchronous, for any exit path: every node group SIGKILLed, every link healed."""
        self.group.kill_all_now()
        self.mesh.heal()

    async def stop_all(self, grace_seconds: float = 3.0) -> None:
        """A clean stop at the end of a run (SIGTERM, SIGKILL after the grace)."""
        async with trio.open_nursery() as nursery:
            for process in self.group:
                nursery.start_soon(process.stop, grace_seconds)


def make_client_factory(cluster: LocalCluster, *, timeout: float = 1.0) -> Any:
    """The workloads' `ClientFactory` over real TCP: a `RaftClient` per process.

    Clients talk to the nodes directly (not through the proxies: as in Jepsen, the
    network between the clients and the nodes is not what the nemesis breaks). A process
    starts at its home node and follows leader hints.
    """
    from raftnode.client import RaftClient

    def factory(*, process: int, client_id: str, node: str | None) -> Any:
        addresses = dict(cluster.node_addresses)
        node = node if node in addresses else None
        return RaftClient(
            addresses,
            client_id=client_id,
            timeout=timeout,
            cluster_id=cluster.cluster_id,
            node=node,
        )

    return factory
