"""A tiny in-test network of RaftCores, driven by messages and ticks only.

Each node has a "disk" (what a Ready asked to persist), a list state machine and a core.
The harness follows the driver contract of ``Ready`` (persist, send, restore, apply,
advance, compact), round-trips every message through ``message_to_wire`` /
``message_from_wire`` (so the wire contract is exercised too), and records safety
evidence as it goes: leaders per term, and every committed entry any node applied
(State Machine Safety: an index never commits two different entries).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from raftnode.core import (
    ChangeRefused,
    ConfChange,
    ConfChangeType,
    NotLeader,
    RaftConfig,
    RaftCore,
    ReadState,
    Role,
)
from raftnode.messages import (
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    RestoredState,
    Snapshot,
    message_from_wire,
    message_to_wire,
)


@dataclass
class Disk:
    """Durable state of one node, as a Storage would keep it."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)

    def persist(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None
    ) -> None:
        if hard_state is not None:
            self.hard_state = hard_state
        if snapshot is not None:
            # The Storage contract: keep the entries after the snapshot only if the log
            # holds the snapshot's last entry; otherwise the whole log goes.
            holds_last = any(
                e.index == snapshot.meta.index and e.term == snapshot.meta.term
                for e in self.entries
            )
            self.snapshot = snapshot
            self.entries = [e for e in self.entries if holds_last and e.index > snapshot.meta.index]
        if entries:
            # Overwrite from entries[0].index on (the stored entries are contiguous).
            base = self.entries[0].index if self.entries else entries[0].index
            del self.entries[max(entries[0].index - base, 0) :]
            self.entries.extend(entries)

    def compact(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.entries = [e for e in self.entries if e.index > snapshot.meta.index]

    def restored(self) -> RestoredState:
        return RestoredState(self.hard_state, self.snapshot, list(self.entries))


def encode_state(applied: list[bytes]) -> bytes:
    return json.dumps([d.hex() for d in applied]).encode()


def decode_state(data: bytes) -> list[bytes]:
    return [bytes.fromhex(h) for h in json.loads(data)]


def log_of(*terms: int) -> list[Entry]:
    """Entries 1..n with the given terms (payload names the index and term)."""
    return [
        Entry(term=t, index=i, kind=EntryKind.COMMAND, data=f"{i}@{t}".encode())
        for i, t in enumerate(terms, start=1)
    ]


class Cluster:
    def __init__(
        self,
        n: int = 3,
        seed: int = 0,
        *,
        bugs: Iterable[str] = (),
        restored: dict[str, RestoredState] | None = None,
        spares: int = 0,
        **config: object,
    ) -> None:
        # ``spares`` extra nodes start empty and outside the configuration (joining, as
        # ``raftlab node --join`` starts them): a configuration change may add them.
        self.voter_ids = tuple(f"n{i + 1}" for i in range(n))
        self.ids = tuple(f"n{i + 1}" for i in range(n + spares))
        self.rng = random.Random(seed)
        self.seed = seed
        self.bugs = frozenset(bugs)
        self.config = dict(config)
        self.disks: dict[str, Disk] = {}
        self.cores: dict[str, RaftCore] = {}
        self.applied: dict[str, list[bytes]] = {}
        self.applied_index: dict[str, int] = {}
        self.queue: list[Message] = []
        self.blocked: set[tuple[str, str]] = set()
        self.down: set[str] = set()
        self.held: set[tuple[str, str]] = set()  # links whose messages wait in the queue
        self.committed: dict[int, tuple[int, bytes]] = {}
        self.violations: list[str] = []
        self.leaders: dict[int, set[str]] = defaultdict(set)
        self.candidates: dict[int, set[str]] = defaultdict(set)
        self.read_states: dict[str, list[ReadState]] = defaultdict(list)
        self.dropped_reads: dict[str, list[int]] = defaultdict(list)
        self.sent: list[Message] = []  # every message a core emitted, for counting
        self.configs_applied = 0  # configuration entries applied, summed over nodes
        for i, node in enumerate(self.ids):
            disk = Disk()
            if restored and node in restored:
                r = restored[node]
                disk = Disk(r.hard_state, r.snapshot, list(r.entries))
            self.disks[node] = disk
            self._start(node, seed * 1000 + i)

    # ------------------------------------------------------------------ nodes

    def config_for(self, node: str) -> RaftConfig:
        return RaftConfig(
            node_id=node,
            peers=self.voter_ids,
            bugs=self.bugs,
            joining=node not in self.voter_ids,
            **self.config,  # type: ignore[arg-type]
        )

    def _start(self, node: str, rng_seed: int) -> None:
        disk = self.disks[node]
        self.cores[node] = RaftCore(self.config_for(node), random.Random(rng_seed), disk.restored())
        if disk.snapshot is not None:
            self.applied[node] = decode_state(disk.snapshot.data)
            self.applied_index[node] = disk.snapshot.meta.index
        else:
            self.applied[node] = []
            self.applied_index[node] = 0
        self.process(node)

    def crash(self, node: str) -> None:
        self.down.add(node)

    def restart(self, node: str) -> None:
        self.down.discard(node)
        self._start(node, self.rng.randrange(1 << 30))

    def process(self, node: str) -> None:
        """Do every Ready the core has, exactly as the driver contract says."""
        core = self.cores[node]
        while core.has_ready():
            rd = core.ready()
            self.disks[node].persist(rd.hard_state, rd.entries, rd.snapshot)
            for msg in rd.messages:
                self.sent.append(msg)
                self.queue.append(message_from_wire(message_to_wire(msg)))
            if rd.snapshot is not None:
                self.applied[node] = decode_state(rd.snapshot.data)
                self.applied_index[node] = rd.snapshot.meta.index
            for entry in rd.committed_entries:
                self._apply(node, entry)
            self.read_states[node].extend(rd.read_states)
            self.dropped_reads[node].extend(rd.dropped_reads)
            core.advance(rd)
            if rd.should_snapshot:
                last = rd.committed_entries[-1]
                # As the driver does: the snapshot carries the configuration at its index.
                snap = Snapshot(
                    core.snapshot_meta(last.index, last.term), encode_state(self.applied[node])
                )
                self.disks[node].compact(snap)
                core.compact(snap)
        status = core.status()
        if status.role is Role.LEADER:
            self.leaders[status.term].add(node)
            if len(self.leaders[status.term]) > 1:
                self.violations.append(
                    f"two leaders in term {status.term}: {self.leaders[status.term]}"
                )
        elif status.role is Role.CANDIDATE:
            self.candidates[status.term].add(node)

    def _apply(self, node: str, entry: Entry) -> None:
        if entry.index != self.applied_index[node] + 1:
            self.violations.append(f"{node} applied {entry.index} after {self.applied_index[node]}")
        self.applied_index[node] = entry.index
        known = self.committed.get(entry.index)
        if known is None:
            self.committed[entry.index] = (entry.term, entry.data)
        elif known != (entry.term, entry.data):
            self.violations.append(
                f"State Machine Safety: index {entry.index} committed as {known} and as "
                f"{(entry.term, entry.data)} (on {node})"
            )
        if entry.kind is EntryKind.COMMAND:
            self.applied[node].append(entry.data)
        elif entry.kind is EntryKind.CONFIG:
            self.configs_applied += 1

    # ---------------------------------------------------------------- network

    def isolate(self, node: str) -> None:
        for other in self.ids:
            if other != node:
                self.blocked.add((node, other))
                self.blocked.add((other, node))

    def heal(self) -> None:
        self.blocked.clear()
        self.held.clear()

    def deliver(self, msg: Message) -> bool:
        if (msg.src, msg.dst) in self.blocked or msg.dst in self.down or msg.src in self.down:
            return False
        self.cores[msg.dst].step(msg)
        self.process(msg.dst)
        return True

    def deliver_all(
        self, max_messages: int = 100_000, where: Callable[[Message], bool] | None = None
    ) -> int:
        """Deliver queued messages (FIFO) until none is left; held links stay queued."""
        delivered = 0
        while delivered < max_messages:
            index = next(
                (
                    i
                    for i, m in enumerate(self.queue)
                    if (m.src, m.dst) not in self.held and (where is None or where(m))
                ),
                None,
            )
            if index is None:
                break
            if self.deliver(self.queue.pop(index)):
                delivered += 1
        return delivered

    def tick(self, nodes: Iterable[str] | None = None, times: int = 1) -> None:
        for _ in range(times):
            for node in nodes if nodes is not None else self.ids:
                if node not in self.down:
                    self.cores[node].tick()
                    self.process(node)

    def run(self, ticks: int, nodes: Iterable[str] | None = None) -> None:
        """Tick, then deliver everything, ``ticks`` times."""
        chosen = tuple(nodes) if nodes is not None else None
        for _ in range(ticks):
            self.tick(chosen)
            self.deliver_all()

    # ---------------------------------------------------------------- queries

    def role(self, node: str) -> Role:
        return self.cores[node].status().role

    def term(self, node: str) -> int:
        return self.cores[node].status().term

    def leader(self) -> str | None:
        """The leader of the highest term among live nodes, if any."""
        best: tuple[int, str] | None = None
        for node in self.ids:
            if node in self.down:
                continue
            status = self.cores[node].status()
            if status.role is Role.LEADER and (best is None or status.term > best[0]):
                best = (status.term, node)
        return best[1] if best else None

    def elect(self, max_ticks: int = 500) -> str:
        for _ in range(max_ticks):
            self.run(1)
            leader = self.leader()
            if leader is not None:
                self.deliver_all()
                return leader
        raise AssertionError(f"no leader within {max_ticks} ticks (seed {self.seed})")

    def log(self, node: str) -> list[tuple[int, int]]:
        core = self.cores[node]
        return [
            (i, core.term_at(i) or 0) for i in range(core.log.first_index, core.log.last_index + 1)
        ]

    def count(self, kind: MessageType, where: Callable[[Message], bool] | None = None) -> int:
        return sum(1 for m in self.sent if m.type is kind and (where is None or where(m)))


def chaos(
    seed: int,
    size: int = 3,
    *,
    pre_vote: bool = True,
    steps: int = 1500,
    bugs: Iterable[str] = (),
    membership: bool = False,
) -> Cluster:
    """A seeded storm biased toward interesting histories: mostly ticks and (often
    reordered, sometimes lost or duplicated) deliveries, writes sent to the leader,
    partitions, one-way cuts, crashes and restarts of a minority; with ``membership``,
    two spare nodes and single-server configuration changes (add a learner or a voter,
    promote, remove) proposed to the leader. Stops at the first safety violation (see
    ``Cluster.violations``)."""
    rng = random.Random(seed)
    cluster = Cluster(
        size,
        seed=seed,
        spares=2 if membership else 0,
        bugs=bugs,
        election_ticks=4,
        pre_vote=pre_vote,
        check_quorum=pre_vote,
        max_entries_per_append=3,
        max_inflight_appends=2,
        snapshot_threshold=8,
    )
    written = 0
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.25:
            cluster.tick([rng.choice(cluster.ids)])
        elif roll < 0.30:
            cluster.tick()
        elif roll < 0.75:
            for _ in range(rng.randint(1, 2 * size)):
                if not cluster.queue:
                    break
                position = rng.randrange(len(cluster.queue)) if rng.random() < 0.3 else 0
                msg = cluster.queue.pop(position)
                if rng.random() < 0.9:
                    cluster.deliver(msg)
                if rng.random() < 0.05:
                    cluster.queue.append(msg)
        elif roll < 0.85:
            node = cluster.leader() if rng.random() < 0.8 else rng.choice(cluster.ids)
            if node is not None and node not in cluster.down:
                if cluster.role(node) is Role.LEADER:
                    cluster.cores[node].propose(f"w{written}".encode())
                    written += 1
                    cluster.process(node)
        elif roll < 0.90:
            if rng.random() < 0.5:
                cluster.heal()
            elif rng.random() < 0.5:
                cluster.isolate(rng.choice(cluster.ids))
            else:
                cluster.blocked.add((rng.choice(cluster.ids), rng.choice(cluster.ids)))
        elif roll < 0.93:
            node = rng.choice(cluster.ids)
            if node in cluster.down:
                cluster.restart(node)
            elif len(cluster.down) < (size - 1) // 2:
                cluster.crash(node)
        elif membership and roll < 0.96:
            propose_random_change(cluster, rng)
        if cluster.violations:
            break
    return cluster


def propose_random_change(cluster: Cluster, rng: random.Random) -> bool:
    """Ask the leader (if any) for a random single-server change; True if appended."""
    leader = cluster.leader()
    if leader is None:
        return False
    core = cluster.cores[leader]
    conf = core.conf_state()
    node = rng.choice(cluster.ids)
    if node in conf.voters:
        kind = ConfChangeType.REMOVE
    elif node in conf.learners:
        kind = rng.choice([ConfChangeType.PROMOTE, ConfChangeType.REMOVE])
    else:
        kind = rng.choice([ConfChangeType.ADD_LEARNER, ConfChangeType.ADD_VOTER])
    try:
        core.propose_conf_change(ConfChange(kind, node))
    except (ChangeRefused, NotLeader):
        return False
    cluster.process(leader)
    return True
