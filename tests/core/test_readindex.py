"""ReadIndex (§6.4): a read point only after the term's no-op commits and a quorum
confirms leadership; dropped when leadership is lost; the readindex-before-noop bug."""

from __future__ import annotations

import pytest
from raftcore_harness import Cluster, log_of

from raftnode.core import NotLeader, ReadState, Role
from raftnode.messages import HardState, MessageType, RestoredState


def test_read_waits_for_the_noop_and_for_a_quorum() -> None:
    cluster = Cluster(3, seed=21)
    # Elect a leader but hold everything it sends, so its no-op is not yet committed.
    for _ in range(200):
        cluster.tick()
        cluster.deliver_all(where=lambda m: m.type in (MessageType.VOTE, MessageType.VOTE_RESP))
        if cluster.leader():
            break
    leader = cluster.leader()
    assert leader is not None
    core = cluster.cores[leader]
    noop_index = core.status().last_log_index
    assert core.status().commit_index < noop_index
    core.read_index(1)
    cluster.process(leader)
    assert cluster.read_states[leader] == []  # the no-op is not committed yet
    # Deliver appends and their answers: the no-op commits; the read then needs a fresh
    # heartbeat round echoed by a quorum before it is answered.
    followers = [n for n in cluster.ids if n != leader]
    cluster.blocked |= {(leader, followers[1]), (followers[1], leader)}
    cluster.deliver_all()
    assert core.status().commit_index == noop_index
    assert cluster.read_states[leader] == [ReadState(1, noop_index)]


def test_read_is_not_answered_without_a_quorum() -> None:
    cluster = Cluster(3, seed=22)
    leader = cluster.elect()
    cluster.run(3)
    core = cluster.cores[leader]
    cluster.isolate(leader)
    core.read_index(2)
    cluster.process(leader)
    cluster.deliver_all()
    # Below the check-quorum window, the leader is still leader but cannot confirm it.
    cluster.tick([leader], times=core.config.election_ticks - 2)
    cluster.deliver_all()
    assert cluster.read_states[leader] == []
    cluster.heal()
    cluster.tick([leader])
    cluster.deliver_all()
    assert [r.request_id for r in cluster.read_states[leader]] == [2]
    assert cluster.read_states[leader][0].index == core.status().commit_index


def test_many_reads_share_one_heartbeat_round() -> None:
    cluster = Cluster(3, seed=23)
    leader = cluster.elect()
    cluster.run(2)
    sent_before = len(cluster.sent)
    for request_id in range(100, 150):
        cluster.cores[leader].read_index(request_id)
    cluster.process(leader)
    heartbeats = [
        m for m in cluster.sent[sent_before:] if m.type is MessageType.APPEND and not m.entries
    ]
    assert len(heartbeats) == 2  # one per follower, for 50 reads
    cluster.deliver_all()
    assert [r.request_id for r in cluster.read_states[leader]] == list(range(100, 150))


def test_reads_are_dropped_when_leadership_is_lost() -> None:
    cluster = Cluster(3, seed=24)
    leader = cluster.elect()
    cluster.run(2)
    cluster.isolate(leader)
    cluster.cores[leader].read_index(7)
    cluster.process(leader)
    cluster.run(40)  # check-quorum deposes it; the majority elects another leader
    assert cluster.role(leader) is not Role.LEADER
    assert cluster.dropped_reads[leader] == [7]
    assert cluster.read_states[leader] == []


def test_read_on_a_follower_raises_not_leader_with_a_hint() -> None:
    cluster = Cluster(3, seed=25)
    leader = cluster.elect()
    cluster.run(2)
    follower = next(n for n in cluster.ids if n != leader)
    with pytest.raises(NotLeader) as caught:
        cluster.cores[follower].read_index(9)
    assert caught.value.leader_hint == leader
    with pytest.raises(NotLeader):
        cluster.cores[follower].propose(b"x")


def _new_leader_with_a_stale_commit_index(bugs: tuple[str, ...]) -> tuple[Cluster, str]:
    """n1 led term 1 and committed index 5, but crashed before n2 and n3 learned of
    it (they know commit 3). n2 wins term 2 and is asked for a read at once."""
    restored = {
        "n1": RestoredState(HardState(term=1, vote="n1", commit=5), None, log_of(1, 1, 1, 1, 1)),
        "n2": RestoredState(HardState(term=1, vote="n1", commit=3), None, log_of(1, 1, 1, 1, 1)),
        "n3": RestoredState(HardState(term=1, vote="n1", commit=3), None, log_of(1, 1, 1, 1, 1)),
    }
    cluster = Cluster(3, seed=26, restored=restored, bugs=bugs)
    cluster.crash("n1")
    for _ in range(200):
        cluster.tick(["n2"])
        cluster.deliver_all(where=lambda m: m.type in (MessageType.VOTE, MessageType.VOTE_RESP))
        if cluster.role("n2") is Role.LEADER:
            break
    assert cluster.role("n2") is Role.LEADER
    cluster.cores["n2"].read_index(1)
    cluster.process("n2")
    cluster.deliver_all()
    return cluster, "n2"


def test_read_index_covers_every_earlier_commit() -> None:
    cluster, leader = _new_leader_with_a_stale_commit_index(bugs=())
    (read,) = cluster.read_states[leader]
    assert read.index >= 6  # past index 5 (committed by n1): its no-op at 6 committed first


def test_readindex_before_noop_bug_serves_a_stale_read_point() -> None:
    """Bug readindex-before-noop (etcd #7331): the read point is the new leader's stale
    commit index 3, although index 5 was committed (and maybe acknowledged) by n1."""
    cluster, leader = _new_leader_with_a_stale_commit_index(bugs=("readindex-before-noop",))
    assert cluster.read_states[leader][0] == ReadState(1, 3)
