"""Local clusters for one campaign: node processes on 127.0.0.1 behind a proxy mesh.

`ProcessCluster` is the target-independent part of a running cluster (see
`campaign.targets.base`): the node processes (`nemesis.process.ProcessGroup`), the
proxy mesh of every directed peer link, the status poller that feeds the progress display
and the report's role / term timeline, the wait for a first leader, and the clean-up that
must happen however the run ends: heal every link, SIGKILL every node process group,
release every port. It is what the nemesis acts on (`nemesis.control.ClusterControl`).
A target's cluster subclasses it and says how to start its nodes, how to ask one node for
its status, and how to make clients.

`LocalCluster` is raftnode's: each node listens on one port (peers, clients, admin); node
i reaches node j through the proxy i→j. Ports come from ``--base-port`` (nodes first,
then the n·(n−1) proxies, then, with spares, one hello router per node:
`nemesis.peer_router`), or, with base port 0, from a free block found by binding.

**Spares** (``raftlab test --spares N``): nodes n<k+1>… beyond the ``--nodes`` k that start
nothing until the member fault grows the cluster with one (`start_member`): a brand-new
empty ``raftlab node --join`` process with its own data directory and ``nodes/<id>.log``,
dialling the members through its proxies. The address put in the configuration for any
member (`member_address`) is its hello router, which sends each peer's connection through
that peer's proxy, so partitions reach nodes added later too. `node_ids` is the nodes in
play (started and not removed): what the nemesis targets and the final heal restarts;
`all_ids` is every node of the run, spares included.
"""

from __future__ import annotations

import abc
import errno
import random
import socket
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from campaign.results import NodeEvent
from raftnode.client import ClientError

Address = tuple[str, int]
HOST = "127.0.0.1"
STATUS_TIMEOUT = 0.5
START_WAIT_SECONDS = 10.0  # a node added by the member fault gets this long to serve
AUTO_PORT_LOW = 20_000  # below Linux's ephemeral range (32768+), so OS-chosen ports never clash
AUTO_PORT_HIGH = 32_000


class ClusterError(Exception):
    """The cluster could not be set up (ports in use, a node that will not start…)."""


def ports_needed(node_count: int, spares: int = 0) -> int:
    """Ports of a raftnode cluster of ``node_count`` nodes and ``spares`` spares: each
    node's own, the proxies of every directed link, and with spares one hello router per
    node (without spares every node dials every other through its ``--peer`` proxies)."""
    pool = node_count + spares
    return pool + pool * (pool - 1) + (pool if spares else 0)


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


def choose_base_port(
    node_count: int, base_port: int, rng: random.Random, *, count: int | None = None
) -> int:
    """The first port of a block of ``count`` free ports (raftnode's `ports_needed` by
    default; a target says how many it needs).

    A given base port is checked and used as is (a clear error when taken); 0 picks a
    free block in [20000, 32000) starting at a seeded random offset.
    """
    count = ports_needed(node_count) if count is None else count
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
    bugs: Sequence[str] = (),
    host: str = HOST,
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
    if bugs:  # teaching bug switches (the raftnode target's unsafe_bugs option)
        extra += ["--unsafe", *(word for bug in bugs for word in ("--bug", bug))]
    return raftnode_argv(
        node_id, port, dict(peers), data_dir, host=host, cluster_id=cluster_id, extra=extra
    )


class ProcessCluster(abc.ABC):
    """Node processes behind a proxy mesh; subclasses fill in the target-specific parts.

    A subclass calls ``self._setup(node_ids, mesh=..., ...)``, adds one `NodeProcess` per
    node with ``self.group.add(...)``, and implements `node_status`, `node_port`,
    `client_factory` and `client_endpoints` (and `status_session` if its status probe
    holds connections). Everything else (life cycle, status board, leader wait, clean-up)
    is shared.
    """

    status_interval: float = 0.25

    def _setup(
        self,
        node_ids: Sequence[str],
        *,
        cluster_id: str,
        data_root: Path,
        log_dir: Path,
        mesh: Any,
        proxies: bool,
        status_interval: float = 0.25,
        spare_ids: Sequence[str] = (),
    ) -> None:
        from nemesis.process import ProcessGroup

        # Every node of the run (spares last) and those in play (module docstring).
        self.all_ids: tuple[str, ...] = (*node_ids, *spare_ids)
        self.spare_ids: tuple[str, ...] = tuple(spare_ids)
        self._in_play: set[str] = set(node_ids)
        self.cluster_id = cluster_id
        self.data_root = Path(data_root)
        self.log_dir = Path(log_dir)
        self.status_interval = status_interval
        self.mesh = mesh
        # Without proxies (bench/campaign_overhead.py's baseline) nodes dial each other
        # directly and link faults are impossible.
        self.proxies = proxies
        self.group = ProcessGroup()
        self.data_dirs: dict[str, Path] = {
            node_id: self.data_root / node_id for node_id in self.all_ids
        }
        self.board = StatusBoard(self.all_ids)
        self.clock_zero: float | None = None  # trio time of the history's zero, for events

    @property
    def node_ids(self) -> tuple[str, ...]:
        """The nodes in play: the initial ones, plus spares added, minus nodes removed."""
        return tuple(node_id for node_id in self.all_ids if node_id in self._in_play)

    # --- what a target's cluster provides ---------------------------------------------

    @abc.abstractmethod
    async def node_status(self, node_id: str) -> dict[str, Any] | None:
        """``{"role", "term", "leader", ...}`` of one running node, None if it does not answer."""

    @abc.abstractmethod
    def node_port(self, node_id: str) -> int:
        """Where the node really listens for admin requests (clock faults), not its proxies."""

    @abc.abstractmethod
    def client_factory(self) -> Any:
        """The workloads' `ClientFactory` for this cluster."""

    @abc.abstractmethod
    def client_endpoints(self) -> dict[str, str]:
        """Node id -> where clients reach it, for people (`--leave-cluster-running`)."""

    def status_session(self) -> AbstractAsyncContextManager[Any]:
        """Entered around the cluster's life (e.g. the status client's connections)."""
        return nullcontext()

    # --- what the nemesis uses (nemesis.control.ClusterControl) -------------------------

    @property
    def processes(self) -> dict[str, Any]:
        return self.group.processes

    def process(self, node_id: str) -> Any:
        return self.group[node_id]

    def data_dir(self, node_id: str) -> Path:
        return self.data_dirs[node_id]

    async def current_leader(self) -> str | None:
        """Ask every node now; the one claiming leadership in the highest term."""
        await self.poll_once()
        return self.board.leader()[0]

    # --- life cycle -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Proxies up, nodes started, status polled; until cancelled, then every node killed."""
        async with self.group, self.status_session():
            async with trio.open_nursery() as nursery:
                if self.proxies:
                    await nursery.start(self.mesh.run)
                nursery.start_soon(self.group.watch_signals)
                if getattr(self, "routers", None) is not None and self.proxies:
                    await nursery.start(self.routers.run)
                for node_id in self.node_ids:  # spares start when the member fault adds them
                    if not self.group[node_id].running:
                        await self.group[node_id].start()
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
            replies[node_id] = await self.node_status(node_id)

        # A spare that never started has no status (nor a lane in the report).
        polled = [n for n in self.all_ids if n in self._in_play or self.group[n].starts]
        async with trio.open_nursery() as nursery:
            for node_id in polled:
                nursery.start_soon(one, node_id)
        now = self.time_ns()
        for node_id in polled:
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


class LocalCluster(ProcessCluster):
    """raftnode's node processes behind a proxy mesh on 127.0.0.1."""

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
        bugs: Sequence[str] = (),
        net: str = "proxy",
        spare_ids: Sequence[str] = (),
    ) -> None:
        from nemesis.peer_router import HelloRouter, RouterSet
        from nemesis.process import NodeProcess
        from nemesis.proxy import ProxyMesh
        from raftnode.client import RaftClient

        pool = (*node_ids, *spare_ids)
        if spare_ids and net == "netns":
            raise ClusterError("spare nodes are not supported with --net netns")
        self.node_addresses: dict[str, Address] = {
            node_id: (HOST, base_port + position) for position, node_id in enumerate(pool)
        }
        self.routers: Any = None
        if net == "netns":  # hosts mode: a namespace per node, faults in the kernel
            from nemesis.netns import NetnsMesh

            mesh: Any = NetnsMesh(node_ids, port=base_port, seed=proxy_seed)
            self.node_addresses = dict(mesh.nodes)
        else:
            mesh = ProxyMesh(
                self.node_addresses,
                base_port=base_port + len(pool),
                host=HOST,
                seed=proxy_seed,
            )
        if spare_ids and net != "netns":
            # One hello router per node after the proxies: the address members learn.
            first_router = base_port + len(pool) + len(mesh.ports)
            self.routers = RouterSet(
                {
                    node_id: HelloRouter(
                        node_id,
                        (HOST, first_router + position),
                        {
                            source: (HOST, mesh.ports[(source, node_id)])
                            for source in pool
                            if source != node_id
                        },
                    )
                    for position, node_id in enumerate(pool)
                }
            )
        self._setup(
            node_ids,
            cluster_id=cluster_id,
            data_root=data_root,
            log_dir=log_dir,
            mesh=mesh,
            proxies=proxies,
            status_interval=status_interval,
            spare_ids=spare_ids,
        )
        self._net = net
        seeder = random.Random(node_seed)
        self._argv_settings: dict[str, Any] = {
            "cluster_id": cluster_id,
            "heartbeat_ms": heartbeat_ms,
            "election_timeout_ms": election_timeout_ms,
            "unsafe_local_reads": unsafe_local_reads,
            "bugs": bugs,
        }
        self._seeds: dict[str, int] = {}
        for node_id in pool:  # seeds drawn in a fixed order: spares do not shift the others'
            self._seeds[node_id] = seeder.getrandbits(63)
            data_dir = self.data_dirs[node_id]
            if node_id in spare_ids:
                argv = self._join_argv(node_id, members=node_ids)  # replaced when added
            else:
                argv = self._node_argv(node_id, self._dial_map(node_id, node_ids))
            if net == "netns":
                argv = mesh.exec_prefix(node_id) + argv
            self.group.add(NodeProcess(node_id, argv, data_dir, self.log_dir / f"{node_id}.log"))
        self._status_client = RaftClient(
            self.node_addresses, timeout=STATUS_TIMEOUT, cluster_id=cluster_id
        )

    def address(self, node_id: str) -> Address:
        return self.node_addresses[node_id]

    # --- membership: what the member fault asks of the cluster ------------------------

    def _dial_map(self, node_id: str, peers: Sequence[str]) -> dict[str, Address]:
        """Where ``node_id`` dials each of ``peers``: its proxies (or the nodes themselves)."""
        if self.proxies and self._net != "netns":
            proxies = self.mesh.peer_map(node_id)
            return {peer: proxies[peer] for peer in peers if peer != node_id}
        return {peer: self.node_addresses[peer] for peer in peers if peer != node_id}

    def _node_argv(self, node_id: str, peers: Mapping[str, Address]) -> list[str]:
        settings = self._argv_settings
        return node_argv(
            node_id,
            port=self.node_addresses[node_id][1],
            data_dir=self.data_dirs[node_id],
            cluster_id=settings["cluster_id"],
            peers=peers,
            seed=self._seeds[node_id],
            heartbeat_ms=settings["heartbeat_ms"],
            election_timeout_ms=settings["election_timeout_ms"],
            unsafe_local_reads=settings["unsafe_local_reads"],
            bugs=settings["bugs"],
            host=self.node_addresses[node_id][0],
        )

    def _join_argv(self, node_id: str, members: Sequence[str]) -> list[str]:
        """``raftlab node --join``: a node outside the configuration, told of ``members``
        (through its proxies); it learns its role from the leader's log."""
        argv = self._node_argv(node_id, {})
        joined = ",".join(
            f"{peer}={host}:{port}" for peer, (host, port) in self._dial_map(node_id, members).items()
        )
        return [*argv, "--join", joined]

    def member_address(self, node_id: str) -> str:
        """The address to put in the configuration for ``node_id``: its hello router, so
        every peer's connection to it still runs through that peer's proxy."""
        host, port = (
            self.routers.address(node_id)
            if self.routers is not None and self.proxies
            else self.node_addresses[node_id]
        )
        return f"{host}:{port}"

    async def start_member(self, node_id: str, members: Sequence[str]) -> str:
        """Bring ``node_id`` into play before it is added to the configuration: a spare
        never started starts empty with ``--join`` (told of ``members``); a node removed
        earlier restarts on its own data (never wiped: its vote in a term it already
        voted in must stay remembered, §3.8). Returns what was done, for the record."""
        process = self.group[node_id]
        self._in_play.add(node_id)
        if process.running:
            return "already running"
        fresh = process.starts == 0
        if node_id in self.spare_ids:
            process.argv = self._join_argv(node_id, members)
        await process.start()
        done = "started empty (--join)" if fresh else "restarted on its data"
        # Serving before it is added, as an operator would check: the leader's first
        # probe of a member it begins to dial is otherwise lost more often than not.
        from nemesis.admin import AdminError, ping

        host, port = self.node_addresses[node_id]
        with trio.move_on_after(START_WAIT_SECONDS):
            while process.running:
                try:
                    await ping(host, port, cluster_id=self.cluster_id, timeout=0.5)
                    return done
                except AdminError:
                    await trio.sleep(0.05)
        return f"{done}, not serving yet"

    async def retire_member(self, node_id: str, grace_seconds: float = 3.0) -> str:
        """Take a node the configuration no longer holds out of play and stop it (SIGTERM,
        SIGKILL after the grace); its data directory stays for a later return."""
        self._in_play.discard(node_id)
        process = self.group[node_id]
        if not process.running:
            return "already down"
        status = await process.stop(grace_seconds)
        return f"stopped (exit status {status})"

    def node_port(self, node_id: str) -> int:
        """Where the node really listens (clock requests go straight there, not via proxies)."""
        return self.node_addresses[node_id][1]

    def status_session(self) -> AbstractAsyncContextManager[Any]:
        return self._status_client

    async def node_status(self, node_id: str) -> dict[str, Any] | None:
        try:
            return await self._status_client.status(node_id, STATUS_TIMEOUT)
        except ClientError:
            return None

    def client_factory(self) -> Any:
        return make_client_factory(self)

    def client_endpoints(self) -> dict[str, str]:
        """The nodes in play (a spare never added serves nothing)."""
        return {
            node_id: f"{host}:{port}"
            for node_id, (host, port) in self.node_addresses.items()
            if node_id in self.node_ids
        }


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
