"""Membership changes (dissertation chapter 4): single-server changes through the log,
learners, a leader removing itself, overwritten configuration entries, configurations in
snapshots and the disruptive-server problem; and safety storms with changes mixed in."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raftcore_harness import Cluster, Disk, chaos, log_of, propose_random_change
from test_safety_property import _check_log_matching

from raftnode.core import (
    ChangeRefused,
    ConfChange,
    ConfChangeType,
    NotLeader,
    RaftConfig,
    RaftCore,
    Role,
    apply_change,
)
from raftnode.messages import (
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    RestoredState,
    conf_to_bytes,
)

ADD_LEARNER, ADD_VOTER, PROMOTE, REMOVE = (
    ConfChangeType.ADD_LEARNER,
    ConfChangeType.ADD_VOTER,
    ConfChangeType.PROMOTE,
    ConfChangeType.REMOVE,
)


def _cluster(n: int = 3, spares: int = 1, **config: object) -> Cluster:
    params: dict[str, object] = {"election_ticks": 5, "snapshot_threshold": 1000}
    params.update(config)
    return Cluster(n, seed=3, spares=spares, **params)


def _change(cluster: Cluster, leader: str, kind: ConfChangeType, node: str) -> int:
    index, _term = cluster.cores[leader].propose_conf_change(ConfChange(kind, node))
    cluster.process(leader)
    return index


def _write(cluster: Cluster, leader: str, data: bytes) -> int:
    index, _term = cluster.cores[leader].propose(data)
    cluster.process(leader)
    return index


def _voters(cluster: Cluster, node: str) -> tuple[str, ...]:
    return cluster.cores[node].status().voters


# --------------------------------------------------------------------- §4.1 rules


def test_4_1_each_change_moves_at_most_one_voter() -> None:
    conf = ConfState(("a", "b", "c"))
    assert apply_change(conf, ConfChange(ADD_LEARNER, "d")).voters == ("a", "b", "c")
    learner = apply_change(conf, ConfChange(ADD_LEARNER, "d"))
    promoted = apply_change(learner, ConfChange(PROMOTE, "d"))
    assert promoted.voters == ("a", "b", "c", "d") and promoted.learners == ()
    assert apply_change(conf, ConfChange(REMOVE, "b")).voters == ("a", "c")
    with_address = apply_change(conf, ConfChange(ADD_LEARNER, "d", "127.0.0.1:9"))
    assert with_address.address_map() == {"d": "127.0.0.1:9"}
    for bad in (
        ConfChange(ADD_VOTER, "a"),  # already a voter
        ConfChange(PROMOTE, "a"),  # not a learner
        ConfChange(REMOVE, "zz"),  # not a member
        ConfChange(ADD_LEARNER, ""),
    ):
        with pytest.raises(ChangeRefused) as caught:
            apply_change(conf, bad)
        assert caught.value.reason == "invalid"
    with pytest.raises(ChangeRefused, match="last voter"):
        apply_change(ConfState(("a",)), ConfChange(REMOVE, "a"))


def test_4_1_a_change_while_another_is_pending_is_refused() -> None:
    cluster = _cluster()
    leader = cluster.elect()
    others = [n for n in cluster.voter_ids if n != leader]
    cluster.held = {(leader, n) for n in others}  # nothing commits while held
    first = _change(cluster, leader, ADD_LEARNER, "n4")
    with pytest.raises(ChangeRefused) as caught:
        cluster.cores[leader].propose_conf_change(ConfChange(REMOVE, others[0]))
    assert caught.value.reason == "change_pending"
    # In force at once on the leader, committed or not (§4.1).
    assert cluster.cores[leader].status().learners == ("n4",)
    assert cluster.cores[leader].status().commit_index < first
    cluster.heal()
    cluster.run(3)
    assert cluster.cores[leader].status().commit_index >= first
    _change(cluster, leader, PROMOTE, "n4")  # the next change is accepted once committed


def test_4_1_a_new_leader_changes_nothing_before_committing_in_its_term() -> None:
    """Ongaro's 2015 correction to §4.1: a leader must commit an entry of its own term
    before it starts a change."""
    cluster = _cluster()
    leader = cluster.elect()
    _write(cluster, leader, b"x")
    cluster.run(2)
    cluster.isolate(leader)
    cluster.held = set()
    new = None
    for _ in range(200):
        cluster.tick([n for n in cluster.ids if n != leader])
        # Deliver votes but no appends, so the new leader's no-op stays uncommitted.
        cluster.deliver_all(where=lambda m: m.type is not MessageType.APPEND_RESP)
        new = next(
            (n for n in cluster.voter_ids if n != leader and cluster.role(n) is Role.LEADER),
            None,
        )
        if new:
            break
    assert new is not None
    with pytest.raises(ChangeRefused) as caught:
        cluster.cores[new].propose_conf_change(ConfChange(ADD_LEARNER, "n4"))
    assert caught.value.reason == "term_not_committed"


def test_4_1_configuration_in_force_on_a_follower_when_appended() -> None:
    core = RaftCore(RaftConfig("f", ("f", "l", "x")), random.Random(0))
    conf = ConfState(("f", "l", "x"), ("y",))
    entry = Entry(1, 1, EntryKind.CONFIG, conf_to_bytes(conf))
    core.step(Message(MessageType.APPEND, 1, "l", "f", entries=[entry], leader_commit=0))
    assert core.status().commit_index == 0
    assert core.conf_state() == conf


def test_4_1_config_entry_overwritten_by_a_new_leader_reverts_the_configuration() -> None:
    core = RaftCore(RaftConfig("f", ("f", "l", "x")), random.Random(0))
    base = log_of(1)
    grown = ConfState(("f", "l", "x", "y"))
    core.step(Message(MessageType.APPEND, 1, "l", "f", entries=base))
    core.step(
        Message(
            MessageType.APPEND,
            1,
            "l",
            "f",
            prev_log_index=1,
            prev_log_term=1,
            entries=[Entry(1, 2, EntryKind.CONFIG, conf_to_bytes(grown))],
        )
    )
    assert core.status().voters == ("f", "l", "x", "y")
    # A leader of term 2 that never had the entry overwrites index 2 (§5.3).
    core.step(
        Message(
            MessageType.APPEND,
            2,
            "x",
            "f",
            prev_log_index=1,
            prev_log_term=1,
            entries=[Entry(2, 2, EntryKind.NOOP)],
        )
    )
    assert core.term_at(2) == 2
    assert core.status().voters == ("f", "l", "x")  # §4.1: back to the latest left


def test_4_1_overwritten_change_reverts_in_a_cluster() -> None:
    """5 voters; the leader's change reaches only one follower, a new leader elected by
    the other three overwrites it, and the follower falls back to 5 voters."""
    cluster = _cluster(5, spares=1)
    leader = cluster.elect()
    cluster.run(3)
    rest = [n for n in cluster.voter_ids if n != leader]
    keeper, majority = rest[0], rest[1:]
    cluster.held = {(leader, n) for n in majority}
    _change(cluster, leader, REMOVE, majority[0])
    cluster.deliver_all()
    assert majority[0] not in _voters(cluster, keeper)
    # Cut the leader and the keeper off; the other three elect a leader.
    cluster.held = set()
    cluster.queue = [m for m in cluster.queue if m.src != leader]
    for node in (leader, keeper):
        cluster.isolate(node)
    new = None
    for _ in range(300):
        cluster.run(1, nodes=majority)
        new = next((n for n in majority if cluster.role(n) is Role.LEADER), None)
        if new:
            break
    assert new is not None
    _write(cluster, new, b"after")
    cluster.run(3, nodes=majority)
    cluster.heal()
    cluster.run(10)
    assert set(_voters(cluster, keeper)) == set(cluster.voter_ids)
    assert not cluster.violations


# ------------------------------------------------------------------ §4.2 learners


def test_4_2_1_learners_never_vote_and_do_not_count_for_commit() -> None:
    cluster = _cluster()
    leader = cluster.elect()
    _change(cluster, leader, ADD_LEARNER, "n4")
    cluster.run(5)
    assert cluster.cores["n4"].status().learners == ("n4",)
    assert cluster.applied_index["n4"] == cluster.applied_index[leader]
    # With both other voters cut off, leader + learner hold the entry: no commit.
    for node in cluster.voter_ids:
        if node != leader:
            cluster.isolate(node)
    cluster.blocked -= {(leader, "n4"), ("n4", leader)}
    before = cluster.cores[leader].status().commit_index
    index = _write(cluster, leader, b"needs-a-voter")
    cluster.deliver_all()
    assert cluster.cores["n4"].status().last_log_index >= index
    assert cluster.cores[leader].status().commit_index == before
    # An isolated learner never campaigns, however long it waits.
    cluster.isolate("n4")
    term = cluster.term("n4")
    cluster.tick(["n4"], times=100)
    assert cluster.role("n4") is Role.FOLLOWER and cluster.term("n4") == term
    assert cluster.count(MessageType.VOTE, lambda m: m.src == "n4") == 0


def test_4_2_1_a_candidate_does_not_count_a_learners_grant() -> None:
    conf = ConfState(("c", "a", "b"), ("l",))
    entry = Entry(1, 1, EntryKind.CONFIG, conf_to_bytes(conf))
    core = RaftCore(
        RaftConfig("c", ("c", "a", "b"), pre_vote=False),
        random.Random(0),
        RestoredState(HardState(term=1), entries=[entry]),
    )
    core.tick()
    while core.status().role is not Role.CANDIDATE:
        core.tick()
    rd = core.ready()
    assert {m.dst for m in rd.messages if m.type is MessageType.VOTE} == {"a", "b"}
    core.advance(rd)
    term = core.status().term
    core.step(Message(MessageType.VOTE_RESP, term, "l", "c", granted=True))
    assert core.status().role is Role.CANDIDATE  # 1 voter + a learner is no majority
    core.step(Message(MessageType.VOTE_RESP, term, "a", "c", granted=True))
    assert core.status().role is Role.LEADER


def test_4_2_1_a_promoted_learner_counts_toward_the_quorum() -> None:
    cluster = _cluster()
    leader = cluster.elect()
    index = _change(cluster, leader, ADD_LEARNER, "n4")
    cluster.run(3)
    _change(cluster, leader, PROMOTE, "n4")
    cluster.run(3)
    assert set(_voters(cluster, "n4")) == {"n1", "n2", "n3", "n4"}
    # 4 voters: a quorum is 3, so the leader and one other voter no longer commit.
    others = [n for n in cluster.voter_ids if n != leader]
    cluster.isolate(others[0])
    cluster.isolate("n4")
    before = cluster.cores[leader].status().commit_index
    _write(cluster, leader, b"q")
    cluster.deliver_all()
    assert cluster.cores[leader].status().commit_index == before
    cluster.heal()
    cluster.run(3)
    assert cluster.cores[leader].status().commit_index > max(before, index)


# ------------------------------------------------------------ §4.2.2 the leader


def test_4_2_2_a_leader_not_in_the_new_configuration() -> None:
    cluster = _cluster()
    leader = cluster.elect()
    cluster.run(2)
    others = [n for n in cluster.voter_ids if n != leader]
    cluster.isolate(others[1])
    index = _change(cluster, leader, REMOVE, leader)
    cluster.deliver_all()
    # The leader holds the entry and so does others[0]: a majority of the OLD voters,
    # but the new configuration is {others}, and the leader does not count itself.
    assert cluster.cores[others[0]].status().last_log_index >= index
    assert cluster.cores[leader].status().commit_index < index
    assert cluster.role(leader) is Role.LEADER  # it still manages the cluster meanwhile
    term = cluster.term(leader)
    cluster.heal()
    cluster.run(3)
    # Committed: the removed leader stepped down, handing over at once (TimeoutNow).
    assert cluster.role(leader) is Role.FOLLOWER
    new = cluster.leader()
    assert new in others and cluster.term(new) == term + 1
    data = _write(cluster, new, b"after-removal")
    cluster.run(3)
    for node in others:
        assert cluster.cores[node].status().commit_index >= data
    # The removed server never campaigns again.
    cluster.tick([leader], times=100)
    assert cluster.role(leader) is Role.FOLLOWER
    assert not cluster.violations


# ------------------------------------------------- §4.2.3 disruptive servers


@pytest.mark.parametrize("pre_vote", [True, False])
def test_4_2_3_a_removed_server_does_not_disrupt_the_cluster(pre_vote: bool) -> None:
    """The removed server never learns of its removal (it is cut off meanwhile), times
    out and campaigns. Its RequestVotes (or PreVotes) are ignored by servers that heard
    from a leader within the election timeout (check-quorum's lease, §4.2.3), so the
    cluster keeps its leader and term."""
    cluster = _cluster(check_quorum=True, pre_vote=pre_vote)
    leader = cluster.elect()
    cluster.run(2)
    victim = next(n for n in cluster.voter_ids if n != leader)
    cluster.isolate(victim)
    _change(cluster, leader, REMOVE, victim)
    cluster.run(3, nodes=[n for n in cluster.ids if n != victim])
    assert victim not in _voters(cluster, leader)
    assert victim in _voters(cluster, victim)
    cluster.tick([victim], times=30)  # its campaigns pile up
    term = cluster.term(leader)
    cluster.heal()
    cluster.run(20)
    assert cluster.leader() == leader and cluster.term(leader) == term
    assert cluster.count(MessageType.VOTE, lambda m: m.src == victim) > 0


# ------------------------------------------------------------ snapshots and WAL


def test_snapshot_carries_the_configuration_and_a_restart_restores_it() -> None:
    cluster = _cluster(snapshot_threshold=4)
    leader = cluster.elect()
    _change(cluster, leader, ADD_LEARNER, "n4")
    cluster.run(3)
    for i in range(10):
        _write(cluster, leader, f"w{i}".encode())
        cluster.run(1)
    expected = cluster.cores[leader].conf_state()
    for node in cluster.voter_ids:
        snapshot = cluster.disks[node].snapshot
        assert snapshot is not None and snapshot.meta.index > 2
        assert snapshot.meta.conf == expected  # the change entry itself is compacted away
        assert all(e.kind is not EntryKind.CONFIG for e in cluster.disks[node].entries)
    # A restart rebuilds the configuration from the snapshot (not the static peers).
    follower = next(n for n in cluster.voter_ids if n != leader)
    cluster.restart(follower)
    assert cluster.cores[follower].conf_state() == expected


def test_a_new_member_learns_the_configuration_from_a_snapshot() -> None:
    cluster = _cluster(snapshot_threshold=4)
    leader = cluster.elect()
    for i in range(10):
        _write(cluster, leader, f"w{i}".encode())
        cluster.run(1)
    _change(cluster, leader, ADD_LEARNER, "n4")
    cluster.run(5)
    n4 = cluster.cores["n4"].status()
    assert n4.learners == ("n4",) and n4.applied_index == cluster.applied_index[leader]
    assert cluster.applied["n4"] == cluster.applied[leader]


def test_restart_recovers_the_configuration_from_log_entries() -> None:
    conf = ConfState(("a", "b"), ("c",))
    entries = [*log_of(1), Entry(1, 2, EntryKind.CONFIG, conf_to_bytes(conf))]
    disk = Disk(hard_state=HardState(term=1), entries=entries)
    core = RaftCore(RaftConfig("a", ("a", "b", "x")), random.Random(0), disk.restored())
    assert core.conf_state() == conf


def test_a_leader_ignores_answers_from_outside_its_configuration() -> None:
    cluster = _cluster()
    leader = cluster.elect()
    cluster.cores[leader].step(
        Message(MessageType.APPEND_RESP, cluster.term(leader), "ghost", leader, success=True)
    )
    assert cluster.role(leader) is Role.LEADER


# -------------------------------------------------------------------- storms


def _members(cluster: Cluster, leader: str) -> tuple[str, ...]:
    return cluster.cores[leader].conf_state().members


def _check_recovers_with_members(cluster: Cluster) -> None:
    cluster.heal()
    for node in list(cluster.down):
        cluster.restart(node)
    leader = cluster.elect(max_ticks=400)
    cluster.run(5)
    leader = cluster.leader()
    assert leader is not None
    index, _ = cluster.cores[leader].propose(b"final")
    cluster.process(leader)
    cluster.run(30)
    for node in _members(cluster, leader):
        assert cluster.cores[node].status().applied_index >= index, (node, leader)
    assert not cluster.violations, cluster.violations
    _check_log_matching(cluster)


STORM_EXAMPLES = int(os.environ.get("RAFTLAB_CORE_EXAMPLES", "25"))


@settings(max_examples=STORM_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.sampled_from([3, 5]),
    pre_vote=st.booleans(),
    steps=st.integers(200, 1500),
)
def test_storms_with_membership_changes_keep_raft_safe(
    seed: int, size: int, pre_vote: bool, steps: int
) -> None:
    cluster = chaos(seed, size, pre_vote=pre_vote, steps=steps, membership=True)
    assert not cluster.violations, (seed, cluster.violations)
    assert all(len(leaders) == 1 for leaders in cluster.leaders.values())
    _check_log_matching(cluster)


def test_membership_storms_change_the_configuration_often() -> None:
    """Guard against storms that prove nothing: many committed configuration changes."""
    cluster = chaos(5, 3, steps=2000, membership=True)
    assert not cluster.violations
    assert cluster.configs_applied >= 10, cluster.configs_applied
    assert len(cluster.leaders) >= 4


@settings(
    max_examples=STORM_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**16),
    schedule=st.lists(
        st.tuples(
            st.sampled_from(["tick", "deliver", "drop", "cut", "heal", "propose", "change"]),
            st.integers(0, 10_000),
        ),
        min_size=20,
        max_size=300,
    ),
)
def test_random_schedules_with_changes_keep_raft_safe(
    seed: int, schedule: list[tuple[str, int]]
) -> None:
    cluster = Cluster(
        3, seed=seed, spares=2, election_ticks=3, max_entries_per_append=3, snapshot_threshold=6
    )
    rng = random.Random(seed)
    ids = cluster.ids
    for action, arg in schedule:
        node = ids[arg % len(ids)]
        if action == "tick":
            cluster.tick([node] if arg % 3 else None)
        elif action in ("deliver", "drop") and cluster.queue:
            msg = cluster.queue.pop(arg % len(cluster.queue))
            if action == "deliver":
                cluster.deliver(msg)
        elif action == "cut":
            cluster.blocked.add((node, ids[(arg // 7) % len(ids)]))
        elif action == "heal":
            cluster.heal()
        elif action == "propose":
            try:
                cluster.cores[node].propose(f"p{arg}".encode())
                cluster.process(node)
            except NotLeader:
                pass
        elif action == "change":
            propose_random_change(cluster, rng)
        assert not cluster.violations, cluster.violations
    _check_log_matching(cluster)
    _check_recovers_with_members(cluster)



def test_bug_learner_quorum_commits_with_a_learner_instead_of_a_voter() -> None:
    """The teaching bug learner-quorum (§4.2.1): the leader and a learner alone commit."""
    for bugs, commits in (((), False), (("learner-quorum",), True)):
        cluster = Cluster(3, seed=3, spares=1, election_ticks=5, bugs=bugs)
        leader = cluster.elect()
        _change(cluster, leader, ADD_LEARNER, "n4")
        cluster.run(5)
        for node in cluster.voter_ids:
            if node != leader:
                cluster.isolate(node)
        cluster.blocked -= {(leader, "n4"), ("n4", leader)}
        index = _write(cluster, leader, b"x")
        cluster.deliver_all()
        assert (cluster.cores[leader].status().commit_index >= index) is commits, bugs
