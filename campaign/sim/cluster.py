"""A simulated raftnode cluster: the real core, driver, KV and storage semantics, in one
Trio run on a mock clock.

Each ``SimNode`` is what a node process is, minus sockets and files: a ``NodeDriver``
around a ``RaftCore`` and a ``KVStateMachine``, persisting into a ``MemoryStorage`` that
outlives crashes (it is the node's "disk"). Peer messages and client requests travel
through one ``SimNetwork``.

Faults act as on real processes:
- crash: the node's tasks are cancelled (SIGKILL), clients with requests in flight see
  their connection drop, and the disk loses whatever was not yet fsynced (only under the
  ``no-fsync`` teaching bug is anything unsynced), possibly with a torn last record;
- restart: a fresh driver is built from what the disk holds, as a process restart does;
- pause (SIGSTOP): the node is frozen, not stopped: its driver keeps every pending
  request, no tick fires and nothing is delivered to it; messages (peers' and clients')
  that arrive meanwhile are held, as a stopped process's kernel socket buffers hold them,
  and are handled on resume, in order, as one batch. Resume (SIGCONT) continues the same
  driver: requests still pending are answered as if nothing happened (or time out by the
  driver's own deadline at its first tick, as a real node's ticker would find them);
- clock: the node's tick period is stretched or shrunk (its timers run slow or fast) —
  the simulated equivalent of the node process's skewable clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from campaign.sim.network import SimNetwork
from raftnode.core import RaftConfig, RaftCore
from raftnode.driver import NodeDriver
from raftnode.kv import KVStateMachine, encode_command
from raftnode.messages import Message
from raftnode.server import DEFAULT_MAX_REQUEST_BYTES, Timing, start_answer
from raftnode.storage.memory import MemoryStorage

CLIENT_PREFIX = "client:"


@dataclass(slots=True)
class SimTiming:
    heartbeat_ms: float = 100.0
    election_timeout_ms: float = 1000.0
    snapshot_threshold: int = 512
    request_timeout: float = 5.0
    # RaftConfig.max_entries_per_append: a small value splits a catch-up into several
    # appends, as a large backlog does in a long run (Figure 8 needs a follower to
    # acknowledge earlier-term entries apart from the new leader's no-op).
    max_entries_per_append: int = 512


@dataclass(slots=True)
class ClientRequest:
    """A request in flight from a simulated client to a node (the payload on the network)."""

    frame: dict[str, Any]
    reply_to: str
    request_id: int


@dataclass(slots=True)
class ClientReply:
    request_id: int
    reply: dict[str, Any] | None  # None: the connection dropped (node crashed)


class SimTransport:
    """``raftnode.driver.Transport`` for one node: into the simulated network."""

    def __init__(self, node: SimNode) -> None:
        self.node = node

    def send(self, messages: list[Message]) -> None:
        node = self.node
        if not node.running:
            return
        node.observe_commit()
        for message in messages:
            node.network.send(node.node_id, message.dst, message)


@dataclass(slots=True)
class ConnectionClosed:
    """What a peer sees when a process dies: its kernel closes the process's
    connections (end of stream / reset), which a partition never does. Delivered like a
    message, so a partition between the two blocks it too."""


CONNECTION_CLOSED = ConnectionClosed()


@dataclass(slots=True)
class SimNode:
    node_id: str
    peers: tuple[str, ...]
    network: SimNetwork
    rng: random.Random  # the node's own stream: its core's election timeouts, its disk
    timing: SimTiming
    bugs: frozenset[str]
    log_lines: list[str]
    read_mode: str = "read_index"
    log_applied: bool = False  # NodeDriver's "apply" lines (the acknowledged-writes checker)
    # A crash closes this node's connections: its peers see it (ConnectionClosed) and a
    # follower of it may start a pre-vote at once (RaftCore.peer_connection_reset).
    connection_resets: bool = False
    # A spare node outside the initial configuration (`raftlab node --join`): the member
    # fault adds it as a learner, promotes it, removes it (§4).
    joining: bool = False
    storage: MemoryStorage = field(init=False)
    driver: NodeDriver | None = None
    running: bool = False
    paused: bool = False
    tick_rate: float = 1.0  # >1: the node's clock runs fast
    restarts: int = 0
    failures: list[str] = field(default_factory=list)  # exceptions that killed the node
    # Raft invariant watched from outside: within one incarnation the commit index never
    # decreases (it is volatile, so a restart may start lower).
    commit_regressions: list[str] = field(default_factory=list)
    # State Machine Safety (Raft Figure 3), watched from outside: the term of the entry
    # each node committed at each index, shared by the whole cluster (index -> (term,
    # first node)); a node committing another term at a known index is a violation.
    committed_terms: dict[int, tuple[int, str]] = field(default_factory=dict)
    safety_violations: list[str] = field(default_factory=list)
    # Commit quorum, watched from outside and configuration-aware (§4.1): every index a
    # leader commits is durable on a majority of the voters of the configuration in
    # force on that leader. ``storages``: every node's storage, shared by the cluster.
    storages: dict[str, MemoryStorage] = field(default_factory=dict)
    quorum_violations: list[str] = field(default_factory=list)
    _highest_commit: int = 0
    _scope: trio.CancelScope | None = None
    _nursery: trio.Nursery | None = None
    _paused_inbox: list[tuple[str, Any]] = field(default_factory=list)
    _incarnation: int = 0  # bumped at every (re)start and resume: ends older tick chains
    _pending_clients: dict[tuple[str, int], ClientRequest] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.storage = MemoryStorage(bugs=self.bugs, log=self.log)

    def observe_commit(self) -> None:
        """Called on every Ready that sends messages: a cheap, exact watch on commit."""
        if self.driver is None:
            return
        commit = self.driver.core.log.committed
        if commit < self._highest_commit and len(self.commit_regressions) < 20:
            self.commit_regressions.append(
                f"{trio.current_time():.6f} {self.node_id} commit index {self._highest_commit} "
                f"-> {commit}"
            )
        if commit > self._highest_commit:
            self._record_committed(self._highest_commit + 1, commit)
            if self.driver.core.role == "leader" and self.storages:
                self._check_commit_quorum(commit)
        self._highest_commit = max(self._highest_commit, commit)

    def _record_committed(self, first: int, last: int) -> None:
        assert self.driver is not None
        core = self.driver.core
        for index in range(first, last + 1):
            term = core.term_at(index)
            if term is None:
                continue  # compacted into a snapshot: checked when it was committed
            known = self.committed_terms.setdefault(index, (term, self.node_id))
            if known[0] != term and len(self.safety_violations) < 20:
                self.safety_violations.append(
                    f"{trio.current_time():.6f} {self.node_id} committed index {index} of "
                    f"term {term}, {known[1]} committed term {known[0]} there"
                )

    def _check_commit_quorum(self, index: int) -> None:
        assert self.driver is not None
        core = self.driver.core
        term = core.term_at(index)
        if term is None:
            return
        voters = core.conf_state().voters
        # The leader counts once its own log has the entry (its fsync may still run:
        # nothing is acknowledged before it returns); the others, once it is durable.
        storages = self.storages
        holding = [
            v
            for v in voters
            if v == self.node_id or (v in storages and storages[v].durably_holds(index, term))
        ]
        if len(holding) <= len(voters) // 2 and len(self.quorum_violations) < 20:
            self.quorum_violations.append(
                f"{trio.current_time():.6f} {self.node_id} committed index {index} (term "
                f"{term}) held by {sorted(holding)} of voters {sorted(voters)}"
            )

    def set_clock_rate(self, rate: float) -> None:
        """Clock skew: the node's timers run ``rate`` times as fast as real time."""
        self.tick_rate = rate
        if self.driver is not None:
            self.driver.tick_seconds = self._tick_seconds()

    def _tick_seconds(self) -> float:
        timing = Timing.from_ms(self.timing.heartbeat_ms, self.timing.election_timeout_ms)
        return timing.tick_seconds / self.tick_rate

    def log(self, line: str) -> None:
        self.log_lines.append(f"{trio.current_time():.6f} {self.node_id} {line}")

    # --- life cycle ----------------------------------------------------------------

    def _build_driver(self) -> NodeDriver:
        restored = self.storage.load()
        state_machine = KVStateMachine(bugs=self.bugs)
        applied_index = applied_term = 0
        if restored.snapshot is not None:
            state_machine.restore(restored.snapshot.data)
            applied_index = restored.snapshot.meta.index
            applied_term = restored.snapshot.meta.term
        timing = Timing.from_ms(self.timing.heartbeat_ms, self.timing.election_timeout_ms)
        core = RaftCore(
            RaftConfig(
                node_id=self.node_id,
                peers=self.peers,
                election_ticks=timing.election_ticks,
                heartbeat_ticks=timing.heartbeat_ticks,
                snapshot_threshold=self.timing.snapshot_threshold,
                max_entries_per_append=self.timing.max_entries_per_append,
                read_mode=self.read_mode,
                bugs=self.bugs,
                joining=self.joining,
            ),
            random.Random(self.rng.getrandbits(64)),
            restored,
        )
        self.log(
            f"starting restored_term={restored.hard_state.term} "
            f"restored_entries={len(restored.entries)} snapshot_index={applied_index}"
        )
        return NodeDriver(
            core,
            self.storage,
            state_machine,
            SimTransport(self),
            tick_seconds=self._tick_seconds(),
            log=self.log,
            encode_command=encode_command,
            read_mode=self.read_mode,
            bugs=self.bugs,
            request_timeout=self.timing.request_timeout,
            defer=self._defer,
            external_ticks=True,
            log_applied=self.log_applied,
            applied_index=applied_index,
            applied_term=applied_term,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until crashed (the scope is cancelled); then return. A pause freezes the
        node without ending this task (``pause``/``resume``)."""
        scope = trio.CancelScope()
        self._scope = scope
        started = False
        try:
            # A (re)start: what the disk holds, as a process would find it. A node that
            # cannot start (a broken invariant in what it restores) stays down. (A pause
            # never ends this task: resume() continues the same driver.)
            self.driver = self._build_driver()
            self._highest_commit = 0
            self.running = True
            self.network.attach(self.node_id, self._deliver)
            with scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    await nursery.start(self.driver.run)
                    self._incarnation += 1
                    self._schedule_tick(self.driver, self._incarnation, None)
                    task_status.started()
                    started = True
        except Exception as error:  # noqa: BLE001 - an invariant broke: the process dies
            self._die(error)
            if not started:
                task_status.started()
        finally:
            # A crash followed at once by a restart: the new run owns the node by now.
            if self._scope is scope:
                self._scope = None
                self.running = False

    def _die(self, error: Exception) -> None:
        """A real node process would crash here (run_node logs and re-raises). The
        simulation records it as a finding and keeps the node down until restarted."""
        self.failures.append(f"{trio.current_time():.6f} {type(error).__name__}: {error}")
        self.log(f"crashed: {type(error).__name__}: {error}")
        self.stop_tasks()
        self.running = False
        self.network.detach(self.node_id)
        self._drop_clients()
        self.driver = None

    def stop_tasks(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    def crash(self, rng: random.Random, *, tear: bool = False) -> None:
        """SIGKILL and power loss: volatile state is gone, unsynced writes may be lost."""
        self.stop_tasks()
        self.network.detach(self.node_id)
        self.running = False
        self.paused = False
        self._paused_inbox.clear()
        self._drop_clients()
        self.driver = None
        self.storage.crash(rng)
        if tear:
            self.storage.crash(_ForceTear())
        self.log("crashed")
        if self.connection_resets:
            for peer in self.peers:
                if peer != self.node_id:
                    self.network.send(self.node_id, peer, CONNECTION_CLOSED)

    def pause(self) -> None:
        """SIGSTOP: the node is frozen with everything it holds. Its driver is not
        cancelled (cancelling would fail every pending request, which a stopped process
        never does); its tick chain ends (``_tick`` sees ``running`` false), a deferred
        Ready waits (``_defer``), and what arrives is held in order (``_buffer``): a
        stopped process's peers keep writing into its kernel socket buffers, so holding,
        not dropping, is what TCP does. Clients waiting on it keep waiting: they time out
        on their own clocks, or get their answer after the resume."""
        self.running = False
        self.paused = True
        self.network.attach(self.node_id, self._buffer)
        self.log("paused")

    def resume(self) -> None:
        """SIGCONT: the same driver continues. Its ticker starts again on the tick grid
        (one tick, not a burst of missed ones: a real ticker's sleep ends once, late),
        a Ready left over from before the pause is handled, then what was held is
        delivered as one batch, in arrival order."""
        driver = self.driver
        assert driver is not None and self.paused
        self.paused = False
        self.running = True
        self.network.attach(self.node_id, self._deliver)
        self.log("resumed")
        self._incarnation += 1
        self._schedule_tick(driver, self._incarnation, None)
        backlog, self._paused_inbox = self._paused_inbox, []

        def catch_up() -> None:
            # A flush deferred before the pause was skipped by flush_if_alive: ask
            # afresh (flush() clears the driver's "already asked" flag).
            self._defer(driver.flush)
            for src, payload in backlog:
                if self.driver is not driver or not self.running:
                    return  # crashed by what it just handled: the rest is lost with it
                self._deliver(src, payload)

        self.network.batch(catch_up)

    def _buffer(self, src: str, payload: Any) -> None:
        self._paused_inbox.append((src, payload))

    def _drop_clients(self) -> None:
        # A TCP connection to a dead process is reset: tell every waiting client.
        for request in list(self._pending_clients.values()):
            self.network.send(
                self.node_id,
                request.reply_to,
                ClientReply(request.request_id, None),
                partitionable=False,
            )
        self._pending_clients.clear()

    # --- inputs --------------------------------------------------------------------

    def _deliver(self, src: str, payload: Any) -> None:
        assert self.driver is not None
        try:
            if isinstance(payload, Message):
                self.driver.receive(payload)
            elif isinstance(payload, ConnectionClosed):
                self.driver.peer_connection_reset(src)
            elif isinstance(payload, ClientRequest):
                key = (payload.reply_to, payload.request_id)
                self._pending_clients[key] = payload
                start_answer(
                    self.driver,
                    payload.frame,
                    max_request_bytes=DEFAULT_MAX_REQUEST_BYTES,
                    on_answer=partial(self._reply, key),
                )
        except Exception as error:  # noqa: BLE001 - the node process would die here
            self._die(error)

    def _schedule_tick(self, driver: NodeDriver, incarnation: int, previous: float | None) -> None:
        """The node's ticker, on the network's event heap (``NodeDriver.external_ticks``).

        A (re)started node's first tick falls on the next multiple of its tick period, so
        the ticks of all nodes whose clocks run at one rate coincide, as in etcd's raft
        tests, and share one scheduler round (election timeouts still differ by whole
        ticks, §5.2). ``previous`` is the exact time of the last tick, so rounding to the
        delivery grid never makes the clock drift."""
        period = driver.tick_seconds
        if previous is None:
            due = (math.floor(trio.current_time() / period) + 1) * period
        else:
            due = previous + period
        self.network.call_at(due, partial(self._tick, driver, incarnation, due))

    def _tick(self, driver: NodeDriver, incarnation: int, due: float) -> None:
        if self.driver is not driver or not self.running or incarnation != self._incarnation:
            return  # crashed, paused or restarted since: this chain ends
        try:
            driver.tick()
        except Exception as error:  # noqa: BLE001 - the node process would die here
            self._die(error)
            return
        self._schedule_tick(driver, incarnation, due)

    def _defer(self, flush: Callable[[], None]) -> None:
        """The driver's Readies run after the network's current delivery batch."""
        driver = self.driver

        def flush_if_alive() -> None:
            if self.driver is not driver or not self.running:
                return  # crashed or paused since: the restarted/resumed driver re-asks
            try:
                flush()
            except Exception as error:  # noqa: BLE001 - the node process would die here
                self._die(error)

        self.network.defer(flush_if_alive)

    def _reply(self, key: tuple[str, int], answer: dict[str, Any]) -> None:
        request = self._pending_clients.pop(key, None)
        if request is not None:
            self.network.send(
                self.node_id,
                request.reply_to,
                ClientReply(request.request_id, answer),
                partitionable=False,
            )


class _ForceTear:
    """An rng for MemoryStorage.crash that always leaves a torn last record."""

    def randrange(self, start: int, stop: int) -> int:
        return stop - 1


@dataclass(slots=True)
class SimCluster:
    node_ids: tuple[str, ...]
    network: SimNetwork
    rng: random.Random
    timing: SimTiming = field(default_factory=SimTiming)
    bugs: frozenset[str] = frozenset()
    read_mode: str = "read_index"
    log_applied: bool = False
    connection_resets: bool = False
    spares: tuple[str, ...] = ()  # joining nodes the member fault may add (§4)
    _storages: dict[str, MemoryStorage] = field(default_factory=dict)  # for invariant checks
    nodes: dict[str, SimNode] = field(default_factory=dict)
    log_lines: dict[str, list[str]] = field(default_factory=dict)
    committed_terms: dict[int, tuple[int, str]] = field(default_factory=dict)
    _nursery: trio.Nursery | None = None
    on_event: Callable[[str, dict[str, Any]], None] | None = None

    @property
    def all_ids(self) -> tuple[str, ...]:
        """The initial voters and the spares (clients know them all)."""
        return self.node_ids + self.spares

    def __post_init__(self) -> None:
        for node_id in self.all_ids:
            lines: list[str] = []
            self.log_lines[node_id] = lines
            self.nodes[node_id] = SimNode(
                node_id=node_id,
                peers=self.node_ids,
                network=self.network,
                rng=random.Random(self.rng.getrandbits(64)),
                timing=self.timing,
                bugs=self.bugs,
                log_lines=lines,
                read_mode=self.read_mode,
                log_applied=self.log_applied,
                committed_terms=self.committed_terms,
                connection_resets=self.connection_resets,
                joining=node_id in self.spares,
                storages=self._storages,
            )
            self._storages[node_id] = self.nodes[node_id].storage

    async def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        for node in self.nodes.values():
            await nursery.start(node.run)

    async def restart(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.running:
            return
        if node.paused and node.driver is not None:
            node.resume()  # SIGCONT: the frozen process goes on, nothing restarts
            return
        assert self._nursery is not None
        node.paused = False
        node.restarts += 1
        await self._nursery.start(node.run)

    def leader(self) -> str | None:
        """The leader of the highest term among running nodes, if any (for nemesis targets)."""
        best: tuple[int, str] | None = None
        for node in self.nodes.values():
            if node.running and node.driver is not None:
                status = node.driver.status()
                if status["role"] == "leader" and (best is None or status["term"] > best[0]):
                    best = (status["term"], node.node_id)
        return None if best is None else best[1]

    def status(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for node_id, node in self.nodes.items():
            if node.running and node.driver is not None:
                out[node_id] = node.driver.status()
            else:
                out[node_id] = {"role": "paused" if node.paused else "down"}
        return out
