"""Elections: one leader per term, the election restriction, pre-vote, check-quorum,
restart from durable state, and the election-related bug switches."""

from __future__ import annotations

import random

import pytest
from raftcore_harness import Cluster, log_of

from raftnode.core import RaftConfig, RaftCore, Role
from raftnode.messages import HardState, Message, MessageType, RestoredState


def test_one_leader_per_term_through_split_votes() -> None:
    """Many seeds, a tight election timeout (so candidates collide), lossy delivery and
    flapping partitions: never two leaders in one term, and a leader emerges after each
    heal."""
    split_terms = 0
    for seed in range(30):
        pre_vote = seed % 2 == 0
        cluster = Cluster(5, seed=seed, election_ticks=2, pre_vote=pre_vote, check_quorum=pre_vote)
        rng = random.Random(seed)
        for _round in range(6):
            cluster.heal()
            for _ in range(rng.randrange(0, 3)):
                a, b = rng.sample(cluster.ids, 2)
                cluster.blocked.add((a, b))
            for _ in range(40):
                cluster.tick()
                # Lossy, reordered delivery: each message is dropped with 20 % chance.
                rng.shuffle(cluster.queue)
                while cluster.queue:
                    msg = cluster.queue.pop()
                    if rng.random() >= 0.2:
                        cluster.deliver(msg)
            cluster.heal()
            cluster.elect(max_ticks=300)
        assert not cluster.violations, (seed, cluster.violations)
        assert all(len(leaders) == 1 for leaders in cluster.leaders.values()), seed
        split_terms += sum(
            1
            for term, candidates in cluster.candidates.items()
            if len(candidates) > 1 and term not in cluster.leaders
        )
    # The scenario must actually produce split votes, or it proves nothing about them.
    assert split_terms > 0


def test_leader_elected_and_followers_agree() -> None:
    cluster = Cluster(3, seed=7)
    leader = cluster.elect()
    term = cluster.term(leader)
    cluster.run(5)
    for node in cluster.ids:
        status = cluster.cores[node].status()
        assert status.term == term
        assert status.leader == leader
        assert status.commit_index == 1  # the leader's no-op
    assert cluster.cores[leader].term_at(1) == term


def test_election_restriction_rejects_a_shorter_log() -> None:
    """§5.4.1: n3 misses the last entry, so n1 and n2 refuse it; only they can win."""
    restored = {
        "n1": RestoredState(HardState(term=1), None, log_of(1, 1)),
        "n2": RestoredState(HardState(term=1), None, log_of(1, 1)),
        "n3": RestoredState(HardState(term=1), None, log_of(1)),
    }
    for pre_vote in (True, False):
        cluster = Cluster(3, seed=1, restored=restored, pre_vote=pre_vote)
        # Only n3's clock runs: it campaigns again and again, and must always lose.
        for _ in range(100):
            cluster.tick(["n3"])
            cluster.deliver_all()
        assert cluster.role("n3") is not Role.LEADER
        assert not any("n3" in leaders for leaders in cluster.leaders.values())
        granted_to_n3 = cluster.count(MessageType.VOTE_RESP, lambda m: m.dst == "n3" and m.granted)
        assert granted_to_n3 == 0
        leader = cluster.elect()
        assert leader in ("n1", "n2")


def test_election_restriction_prefers_later_last_term_over_length() -> None:
    """A log whose last term is later is more up-to-date even if shorter (§5.4.1)."""
    restored = {
        "n1": RestoredState(HardState(term=3), None, log_of(1, 3)),
        "n2": RestoredState(HardState(term=3), None, log_of(1, 2, 2, 2)),
        "n3": RestoredState(HardState(term=3), None, log_of(1, 2, 2)),
    }
    cluster = Cluster(3, seed=2, restored=restored)
    for _ in range(60):
        cluster.tick(["n1"])
        cluster.deliver_all()
    assert cluster.leader() == "n1"
    cluster.run(5)
    # n2's and n3's term-2 tail was never committed: it is replaced by n1's log.
    assert cluster.log("n2") == cluster.log("n1") == cluster.log("n3")


def _stable_cluster(bugs: tuple[str, ...] = ()) -> tuple[Cluster, str, str]:
    cluster = Cluster(3, seed=3, bugs=bugs)
    leader = cluster.elect()
    cluster.run(5)
    follower = next(n for n in cluster.ids if n != leader)
    return cluster, leader, follower


def test_prevote_keeps_a_returning_partitioned_node_from_deposing_the_leader() -> None:
    cluster, leader, lonely = _stable_cluster()
    term = cluster.term(leader)
    cluster.isolate(lonely)
    cluster.run(200)
    # §9.6: its pre-votes fail, so it never bumps its term while cut off.
    assert cluster.term(lonely) == term
    assert cluster.role(lonely) in (Role.FOLLOWER, Role.PRE_CANDIDATE)
    cluster.heal()
    cluster.run(50)
    assert cluster.leader() == leader
    assert cluster.term(leader) == term
    assert cluster.cores[lonely].status().leader == leader


def test_without_prevote_and_checkquorum_a_returning_node_deposes_the_leader() -> None:
    """Bug no-prevote-checkquorum (etcd #9241): the same scenario disrupts the cluster."""
    cluster, leader, lonely = _stable_cluster(bugs=("no-prevote-checkquorum",))
    term = cluster.term(leader)
    cluster.isolate(lonely)
    cluster.run(200)
    assert cluster.term(lonely) > term + 1  # it kept campaigning, bumping its term
    cluster.heal()
    cluster.run(50)
    assert cluster.term(leader) > term  # the stable leader was deposed
    assert cluster.leader() is not None


def test_check_quorum_makes_a_cut_off_leader_step_down() -> None:
    cluster, leader, _ = _stable_cluster()
    cluster.cores[leader].read_index(41)
    cluster.isolate(leader)
    election_ticks = cluster.cores[leader].config.election_ticks
    cluster.run(2 * election_ticks + 1)
    assert cluster.role(leader) is Role.FOLLOWER
    # Leadership lost: a pending read is dropped, so its client can retry elsewhere.
    assert 41 in cluster.dropped_reads[leader]
    # The majority side elected a new leader in a later term meanwhile.
    new_leader = cluster.leader()
    assert new_leader is not None and new_leader != leader


def test_without_check_quorum_a_cut_off_leader_stays_leader() -> None:
    cluster, leader, _ = _stable_cluster(bugs=("no-prevote-checkquorum",))
    cluster.isolate(leader)
    cluster.run(100)
    assert cluster.role(leader) is Role.LEADER


def test_check_quorum_lease_ignores_a_disruptive_vote_request() -> None:
    """A follower that heard from its leader within the election timeout ignores a
    higher-term RequestVote (§6 "disruptive servers"): no term bump, no answer."""
    cluster, leader, follower = _stable_cluster()
    term = cluster.term(follower)
    other = next(n for n in cluster.ids if n not in (leader, follower))
    last = cluster.cores[follower].status().last_log_index
    cluster.cores[follower].step(
        Message(
            MessageType.VOTE,
            term + 5,
            other,
            follower,
            last_log_index=last + 10,
            last_log_term=term,
        )
    )
    assert cluster.term(follower) == term
    assert not cluster.cores[follower].has_ready()


def test_vote_is_kept_on_a_same_term_step_down() -> None:
    """A candidate that learns of the term's leader steps down but keeps its vote
    (for itself): a second candidate of the same term gets no vote from it."""
    core = RaftCore(RaftConfig("n1", ("n1", "n2", "n3"), pre_vote=False), random.Random(1))
    while core.status().role is not Role.CANDIDATE:
        core.tick()
    term = core.status().term
    core.step(Message(MessageType.APPEND, term, "n2", "n1"))
    assert core.status().role is Role.FOLLOWER and core.status().vote == "n1"
    core.advance(core.ready())
    core.step(Message(MessageType.VOTE, term, "n3", "n1", last_log_index=5, last_log_term=term))
    (answer,) = [m for m in core.ready().messages if m.type is MessageType.VOTE_RESP]
    assert not answer.granted


def test_vote_twice_bug_grants_a_second_vote_in_one_term() -> None:
    """Bug vote-twice (etcd PR #2461): the same scenario grants a second vote."""
    core = RaftCore(
        RaftConfig("n1", ("n1", "n2", "n3"), pre_vote=False, bugs=frozenset({"vote-twice"})),
        random.Random(1),
    )
    while core.status().role is not Role.CANDIDATE:
        core.tick()
    term = core.status().term
    core.step(Message(MessageType.APPEND, term, "n2", "n1"))
    core.advance(core.ready())
    core.step(Message(MessageType.VOTE, term, "n3", "n1", last_log_index=5, last_log_term=term))
    (answer,) = [m for m in core.ready().messages if m.type is MessageType.VOTE_RESP]
    assert answer.granted and core.status().vote == "n3"


def test_restart_from_restored_state() -> None:
    """Crash every node, restart from what the Readies persisted: term, vote, commit and
    log survive, and the cluster carries on."""
    cluster = Cluster(3, seed=5)
    leader = cluster.elect()
    for i in range(20):
        cluster.cores[leader].propose(f"v{i}".encode())
    cluster.process(leader)
    cluster.run(5)
    before = {n: cluster.cores[n].status() for n in cluster.ids}
    for node in cluster.ids:
        cluster.crash(node)
    cluster.queue.clear()
    for node in cluster.ids:
        cluster.restart(node)
        after = cluster.cores[node].status()
        assert after.role is Role.FOLLOWER
        assert (after.term, after.vote, after.last_log_index, after.commit_index) == (
            before[node].term,
            before[node].vote,
            before[node].last_log_index,
            before[node].commit_index,
        )
        # Committed entries are handed out again to rebuild the state machine.
        assert cluster.applied[node] == [f"v{i}".encode() for i in range(20)]
    new_leader = cluster.elect()
    assert cluster.term(new_leader) > before[leader].term
    cluster.cores[new_leader].propose(b"after")
    cluster.process(new_leader)
    cluster.run(5)
    assert all(cluster.applied[n][-1] == b"after" for n in cluster.ids)
    assert not cluster.violations


def test_restored_state_is_validated() -> None:
    config = RaftConfig("n1", ("n1", "n2", "n3"))
    with pytest.raises(ValueError, match="beyond the restored term"):
        RaftCore(config, random.Random(0), RestoredState(HardState(term=1), None, log_of(1, 2)))
    with pytest.raises(ValueError, match="not contiguous"):
        RaftCore(config, random.Random(0), RestoredState(HardState(term=2), None, log_of(1, 2)[1:]))
    with pytest.raises(ValueError, match="beyond the last log index"):
        RaftCore(
            config, random.Random(0), RestoredState(HardState(term=2, commit=5), None, log_of(1))
        )
    # A vote for a server outside the configuration held is legitimate since membership
    # changes (§4.1): it may be a voter of a configuration this server has not seen yet.
    core = RaftCore(config, random.Random(0), RestoredState(HardState(term=2, vote="zz")))
    assert core.status().vote == "zz"


def test_single_node_cluster_elects_itself_and_commits_alone() -> None:
    cluster = Cluster(1, seed=0)
    leader = cluster.elect()
    index, term = cluster.cores[leader].propose(b"solo")
    cluster.process(leader)
    assert cluster.applied[leader] == [b"solo"]
    assert cluster.cores[leader].status().commit_index == index
    assert term == cluster.term(leader)


def test_vote_twice_bug_lets_a_new_leader_vote_for_a_rival_of_its_term() -> None:
    """The other face of etcd PR #2461: becoming leader reset the vote, so a competing
    candidate's late request in the same term is granted — by the leader itself."""
    for bugs, expect_grant in ((frozenset(), False), (frozenset({"vote-twice"}), True)):
        cluster = Cluster(3, seed=13, bugs=bugs, pre_vote=False)
        leader = cluster.elect()
        term = cluster.term(leader)
        rival = next(n for n in cluster.ids if n != leader)
        cluster.cores[leader].step(
            Message(MessageType.VOTE, term, rival, leader, last_log_index=99, last_log_term=term)
        )
        rd = cluster.cores[leader].ready()
        (answer,) = [m for m in rd.messages if m.type is MessageType.VOTE_RESP]
        assert answer.granted is expect_grant
