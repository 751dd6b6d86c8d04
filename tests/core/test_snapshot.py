"""Snapshots: should_snapshot, compaction, InstallSnapshot for a lagging follower,
restart from a snapshot."""

from __future__ import annotations

import random

import pytest
from raftcore_harness import Cluster, decode_state

from raftnode.core import RaftConfig, RaftCore
from raftnode.messages import Message, MessageType, Snapshot, SnapshotMeta


def _write(cluster: Cluster, leader: str, count: int, prefix: str = "w") -> None:
    for i in range(count):
        cluster.cores[leader].propose(f"{prefix}{i}".encode())
        if i % 10 == 9:
            cluster.process(leader)
            cluster.deliver_all()
    cluster.process(leader)
    cluster.deliver_all()


def test_log_is_compacted_after_the_threshold() -> None:
    cluster = Cluster(3, seed=31, snapshot_threshold=20)
    leader = cluster.elect()
    _write(cluster, leader, 100)
    cluster.run(3)
    for node in cluster.ids:
        status = cluster.cores[node].status()
        assert status.snapshot_index >= 80  # snapshots were taken and the log dropped
        assert status.applied_index - status.snapshot_index < 20 + 10
        assert cluster.disks[node].snapshot is not None
        assert (
            decode_state(cluster.disks[node].snapshot.data)
            == cluster.applied[node][: len(decode_state(cluster.disks[node].snapshot.data))]
        )


def test_lagging_follower_is_caught_up_by_snapshot() -> None:
    cluster = Cluster(3, seed=32, snapshot_threshold=20)
    leader = cluster.elect()
    cluster.run(2)
    lagging = next(n for n in cluster.ids if n != leader)
    cluster.isolate(lagging)
    _write(cluster, leader, 120)
    cluster.run(3)
    assert (
        cluster.cores[leader].status().snapshot_index
        > cluster.cores[lagging].status().last_log_index
    )
    cluster.heal()
    cluster.run(10)
    assert cluster.count(MessageType.SNAPSHOT, lambda m: m.dst == lagging) >= 1
    assert cluster.applied[lagging] == cluster.applied[leader]
    assert (
        cluster.cores[lagging].status().applied_index
        == cluster.cores[leader].status().applied_index
    )
    # It keeps up with ordinary appends afterwards.
    _write(cluster, leader, 5, prefix="after")
    cluster.run(3)
    assert cluster.applied[lagging][-1] == b"after4"
    assert not cluster.violations


def test_lost_snapshot_is_sent_again() -> None:
    cluster = Cluster(3, seed=33, snapshot_threshold=20)
    leader = cluster.elect()
    cluster.run(2)
    lagging = next(n for n in cluster.ids if n != leader)
    cluster.isolate(lagging)
    _write(cluster, leader, 60)
    cluster.heal()

    def is_snapshot(m: Message) -> bool:
        return m.type is MessageType.SNAPSHOT

    for _ in range(10):  # run until the leader sends a snapshot, then lose it
        cluster.tick()
        cluster.deliver_all(where=lambda m: not is_snapshot(m))
        if any(is_snapshot(m) for m in cluster.queue):
            break
    lost = [m for m in cluster.queue if is_snapshot(m)]
    assert len(lost) == 1
    cluster.queue.remove(lost[0])
    cluster.run(60)
    assert cluster.count(MessageType.SNAPSHOT, lambda m: m.dst == lagging) >= 2
    assert cluster.applied[lagging] == cluster.applied[leader]


def test_restart_from_a_snapshot_and_catch_up() -> None:
    cluster = Cluster(3, seed=34, snapshot_threshold=20)
    leader = cluster.elect()
    _write(cluster, leader, 50)
    cluster.run(3)
    victim = next(n for n in cluster.ids if n != leader)
    cluster.crash(victim)
    _write(cluster, leader, 50, prefix="more")
    cluster.run(3)
    cluster.restart(victim)
    restarted = cluster.cores[victim].status()
    assert restarted.snapshot_index > 0
    assert restarted.applied_index >= restarted.snapshot_index
    cluster.run(10)
    assert cluster.applied[victim] == cluster.applied[leader]
    assert len(cluster.applied[leader]) == 100
    assert not cluster.violations


def test_compact_is_validated() -> None:
    cluster = Cluster(1, seed=35)
    leader = cluster.elect()
    core = cluster.cores[leader]
    core.propose(b"a")
    cluster.process(leader)
    applied = core.status().applied_index
    with pytest.raises(ValueError, match="beyond the applied index"):
        core.compact(Snapshot(SnapshotMeta(applied + 1, 1), b"[]"))
    with pytest.raises(ValueError, match="term"):
        core.compact(Snapshot(SnapshotMeta(applied, 99), b"[]"))
    core.compact(Snapshot(SnapshotMeta(applied, core.status().term), b"[]"))
    assert core.status().snapshot_index == applied
    core.compact(Snapshot(SnapshotMeta(1, 1), b"[]"))  # older than what we hold: ignored
    assert core.status().snapshot_index == applied


def test_should_snapshot_is_raised_at_the_threshold() -> None:
    core = RaftCore(RaftConfig("a", ("a",), snapshot_threshold=3), random.Random(0))
    while core.status().role.value != "leader":
        core.tick()
    flags = []
    for i in range(6):
        core.propose(f"{i}".encode())
        rd = core.ready()
        flags.append(rd.should_snapshot)
        core.advance(rd)
        if rd.should_snapshot:
            last = rd.committed_entries[-1]
            core.compact(Snapshot(SnapshotMeta(last.index, last.term), b""))
    # Applied indexes 1 (no-op, first ready) then 2..7: snapshots at 3 and 6.
    assert flags.count(True) == 2
