"""§5.3: the leader tells followers its commit index in later AppendEntries (heartbeats
included), not in an empty append of its own each time it moves.

A commit moved by an append response rides on the next append; a follower that gets
no append within a tick is sent an empty one at that tick, and the heartbeat carries it
too. These tests pin both halves: the lazy one (no extra messages per entry) and the
bound (every follower learns the commit index within one tick, and applies).
"""

from __future__ import annotations

from raftnode.messages import MessageType

from .raftcore_harness import Cluster


def _settled(heartbeat_ticks: int = 1) -> tuple[Cluster, str]:
    cluster = Cluster(3, seed=4, heartbeat_ticks=heartbeat_ticks, election_ticks=10)
    leader = cluster.elect()
    cluster.deliver_all()
    return cluster, leader


def test_a_commit_is_not_broadcast_in_appends_of_its_own() -> None:
    cluster, leader = _settled(heartbeat_ticks=5)
    before = len(cluster.sent)
    index, _term = cluster.cores[leader].propose(b"x")
    cluster.process(leader)
    cluster.deliver_all()
    assert cluster.cores[leader].log.committed == index
    new = cluster.sent[before:]
    appends = [m for m in new if m.type is MessageType.APPEND]
    # One append per follower carries the entry; the commit it caused sends nothing.
    assert len(appends) == 2 and all(m.entries for m in appends)
    assert len([m for m in new if m.type is MessageType.APPEND_RESP]) == 2
    followers = [n for n in cluster.ids if n != leader]
    assert all(cluster.cores[f].log.committed < index for f in followers)


def test_the_next_append_carries_the_commit_index() -> None:
    cluster, leader = _settled(heartbeat_ticks=5)
    first, _ = cluster.cores[leader].propose(b"a")
    cluster.process(leader)
    cluster.deliver_all()
    second, _ = cluster.cores[leader].propose(b"b")
    cluster.process(leader)
    carrying = [m for m in cluster.queue if m.type is MessageType.APPEND and m.entries]
    assert len(carrying) == 2 and all(m.leader_commit == first for m in carrying)
    cluster.deliver_all()
    followers = [n for n in cluster.ids if n != leader]
    # Each follower commits (and applies) the first entry: min(leader_commit, last new).
    assert all(cluster.cores[f].log.committed >= first for f in followers)
    assert all(cluster.applied[f][-1:] == [b"a"] for f in followers)
    assert cluster.cores[leader].log.committed == second


def test_every_follower_learns_the_commit_index_within_one_tick() -> None:
    cluster, leader = _settled(heartbeat_ticks=5)
    index, _ = cluster.cores[leader].propose(b"x")
    cluster.process(leader)
    cluster.deliver_all()
    followers = [n for n in cluster.ids if n != leader]
    assert all(cluster.cores[f].log.committed < index for f in followers)
    # One tick of the leader (not a heartbeat tick: heartbeat_ticks is 5).
    before = len(cluster.sent)
    cluster.tick([leader])
    told = [m for m in cluster.sent[before:] if m.type is MessageType.APPEND]
    assert sorted(m.dst for m in told) == sorted(followers)
    assert all(not m.entries and m.leader_commit == index for m in told)
    cluster.deliver_all()
    assert all(cluster.cores[f].log.committed == index for f in followers)
    assert all(cluster.applied[f] == [b"x"] for f in followers)
    # Told once: the next tick sends nothing more.
    before = len(cluster.sent)
    cluster.tick([leader])
    assert not [m for m in cluster.sent[before:] if m.type is MessageType.APPEND]
    assert not cluster.violations


def test_a_follower_that_missed_the_tick_learns_from_the_heartbeat() -> None:
    cluster, leader = _settled(heartbeat_ticks=1)
    index, _ = cluster.cores[leader].propose(b"x")
    cluster.process(leader)
    cluster.deliver_all()
    cluster.run(1)  # heartbeat_ticks=1: every tick is a heartbeat, which carries it
    assert all(cluster.cores[n].log.committed == index for n in cluster.ids)
    assert not cluster.violations
