"""Leadership transfer (§3.10): the leader stops accepting proposals, brings the target
up to date, sends TimeoutNow; the target campaigns at once without a pre-vote; the
transfer is abandoned after an election timeout."""

from __future__ import annotations

import pytest
from raftcore_harness import Cluster

from raftnode.core import ChangeRefused, NotLeader, Role
from raftnode.messages import MessageType


def _cluster() -> Cluster:
    return Cluster(3, seed=7, election_ticks=10, pre_vote=True, check_quorum=True)


def test_3_10_transfer_to_an_up_to_date_follower() -> None:
    cluster = _cluster()
    leader = cluster.elect()
    cluster.run(2)
    target = next(n for n in cluster.ids if n != leader)
    term = cluster.term(leader)
    cluster.cores[leader].transfer_leadership(target)
    cluster.process(leader)
    assert cluster.count(MessageType.TIMEOUT_NOW, lambda m: m.dst == target) == 1
    cluster.deliver_all()
    # The target won at term + 1 at once: no election timeout, no pre-vote.
    assert cluster.role(target) is Role.LEADER and cluster.term(target) == term + 1
    assert cluster.role(leader) is Role.FOLLOWER
    assert cluster.count(MessageType.VOTE, lambda m: m.src == target and m.pre_vote) == 0
    index, _ = cluster.cores[target].propose(b"after")
    cluster.process(target)
    cluster.run(2)
    assert all(cluster.cores[n].status().commit_index >= index for n in cluster.ids)
    assert not cluster.violations


def test_3_10_the_leader_refuses_proposals_and_brings_a_lagging_target_up_to_date() -> None:
    cluster = _cluster()
    leader = cluster.elect()
    cluster.run(2)
    target = next(n for n in cluster.ids if n != leader)
    cluster.held = {(leader, target)}
    for i in range(5):
        cluster.cores[leader].propose(f"w{i}".encode())
        cluster.process(leader)
    cluster.deliver_all()
    last = cluster.cores[leader].status().last_log_index
    assert cluster.cores[target].status().last_log_index < last
    cluster.cores[leader].transfer_leadership(target)
    cluster.process(leader)
    assert cluster.cores[leader].status().transferee == target
    with pytest.raises(NotLeader) as caught:
        cluster.cores[leader].propose(b"refused")
    assert caught.value.leader_hint == target
    assert cluster.count(MessageType.TIMEOUT_NOW) == 0  # not before it is caught up
    cluster.held = set()
    cluster.deliver_all()
    assert cluster.role(target) is Role.LEADER
    assert cluster.cores[target].status().last_log_index > last  # its no-op after ours


def test_3_10_a_transfer_is_abandoned_after_an_election_timeout() -> None:
    cluster = _cluster()
    leader = cluster.elect()
    cluster.run(2)
    target = next(n for n in cluster.ids if n != leader)
    cluster.crash(target)
    cluster.cores[leader].propose(b"x")  # so the target lags and no TimeoutNow goes yet
    cluster.process(leader)
    cluster.cores[leader].transfer_leadership(target)
    cluster.process(leader)
    with pytest.raises(NotLeader):
        cluster.cores[leader].propose(b"during")
    cluster.run(10)
    assert cluster.role(leader) is Role.LEADER
    assert cluster.cores[leader].status().transferee is None
    cluster.cores[leader].propose(b"after")  # accepted again


def test_3_10_only_a_voter_can_be_the_target_and_only_the_leader_sends_timeout_now() -> None:
    cluster = Cluster(3, seed=7, spares=1, election_ticks=10)
    leader = cluster.elect()
    with pytest.raises(ChangeRefused) as caught:
        cluster.cores[leader].transfer_leadership("n4")
    assert caught.value.reason == "not_a_voter"
    follower = next(n for n in cluster.voter_ids if n != leader)
    with pytest.raises(NotLeader):
        cluster.cores[follower].transfer_leadership(leader)
    cluster.cores[leader].transfer_leadership(leader)  # to itself: nothing to do
    assert cluster.cores[leader].status().transferee is None
