"""Log replication: repair of divergent followers, Figure 8, batching, the in-flight
bound, the replication bug switches, and robustness of step() against odd input."""

from __future__ import annotations

import random

import pytest
from raftcore_harness import Cluster, log_of

from raftnode.core import InvariantViolation, RaftConfig, RaftCore, Role
from raftnode.messages import (
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    RestoredState,
    Snapshot,
    SnapshotMeta,
)


def _campaign_alone(cluster: Cluster, node: str, max_ticks: int = 200) -> None:
    """Only ``node``'s clock runs, so it is the one to campaign."""
    for _ in range(max_ticks):
        cluster.tick([node])
        cluster.deliver_all()
        if cluster.role(node) is Role.LEADER:
            cluster.deliver_all()
            return
    raise AssertionError(f"{node} did not become leader")


def test_divergent_follower_is_repaired_with_few_round_trips() -> None:
    """n3 holds a long uncommitted tail of term 2 that the term-3 history replaced. The
    new leader's log wins (§5.3), and the conflict hint skips the whole bad term at once
    instead of one entry per round trip."""
    restored = {
        "n1": RestoredState(HardState(term=3, commit=1), None, log_of(1, 3, 3)),
        "n2": RestoredState(HardState(term=3, commit=1), None, log_of(1, 3, 3)),
        "n3": RestoredState(HardState(term=3, commit=1), None, log_of(1, *([2] * 60))),
    }
    cluster = Cluster(3, seed=4, restored=restored)
    _campaign_alone(cluster, "n1")
    cluster.run(5)
    assert cluster.log("n3") == cluster.log("n1") == cluster.log("n2")
    assert cluster.log("n1")[-1] == (4, 4)  # 1@1, 2@3, 3@3, no-op 4@4
    rejections = cluster.count(MessageType.APPEND_RESP, lambda m: m.src == "n3" and not m.success)
    assert 1 <= rejections <= 3, rejections
    assert not cluster.violations


def test_follower_missing_entries_is_caught_up() -> None:
    cluster = Cluster(3, seed=8)
    leader = cluster.elect()
    lagging = next(n for n in cluster.ids if n != leader)
    cluster.isolate(lagging)
    for i in range(300):
        cluster.cores[leader].propose(f"w{i}".encode())
        if i % 50 == 0:
            cluster.process(leader)
            cluster.deliver_all()
    cluster.process(leader)
    cluster.run(3)
    assert cluster.applied_index[lagging] < 300
    cluster.heal()
    cluster.run(10)
    assert cluster.applied[lagging] == cluster.applied[leader]
    assert len(cluster.applied[leader]) == 300


def _figure8(bugs: tuple[str, ...]) -> Cluster:
    """Raft paper Figure 8, replayed (basic Raft: no pre-vote, no check-quorum). Index 1
    (term 1) is everywhere; S1 wrote index 2 in term 2 (reaching S2); S5 wrote index 2 in
    term 3 alone. Now S1 leads term 4 and copies its index 2 to S3 — one entry per
    append, and we stop before its no-op (3, term 4) reaches S3 — so a majority (S1, S2,
    S3) holds (2, term 2). Then S1 crashes and S5 wins term 5 with S3 and S4 (its last
    term 3 beats their 2 and 1) and overwrites index 2."""
    restored = {
        "n1": RestoredState(HardState(term=3, commit=1), None, log_of(1, 2)),
        "n2": RestoredState(HardState(term=3, commit=1), None, log_of(1, 2)),
        "n3": RestoredState(HardState(term=3, vote="n5", commit=1), None, log_of(1)),
        "n4": RestoredState(HardState(term=3, vote="n5", commit=1), None, log_of(1)),
        "n5": RestoredState(HardState(term=3, vote="n5", commit=1), None, log_of(1, 3)),
    }
    cluster = Cluster(
        5,
        seed=8,
        restored=restored,
        bugs=bugs,
        max_entries_per_append=1,
        pre_vote=False,
        check_quorum=False,
    )
    cluster.isolate("n5")

    def s1_allowed(m: Message) -> bool:
        if m.type is not MessageType.APPEND or m.src != "n1":
            return True
        if m.dst == "n4":
            return False  # S4 stays at index 1
        # Once S3 holds (2, term 2), S1's next append to it (its no-op) waits.
        return not (m.dst == "n3" and cluster.log("n3")[-1] == (2, 2) and m.entries)

    for _ in range(200):
        cluster.tick(["n1"])
        cluster.deliver_all(where=s1_allowed)
        if cluster.role("n1") is Role.LEADER:
            break
    assert cluster.term("n1") == 4 and cluster.role("n1") is Role.LEADER
    cluster.deliver_all(where=s1_allowed)
    assert cluster.log("n3")[-1] == (2, 2)
    # S1 crashes; S5 returns and wins term 5 with S3 and S4.
    cluster.crash("n1")
    cluster.heal()
    cluster.queue.clear()
    _campaign_alone(cluster, "n5")
    assert cluster.term("n5") == 5
    cluster.run(5, nodes=["n5"])
    return cluster


def test_figure8_old_term_entries_are_not_committed_by_counting() -> None:
    cluster = _figure8(bugs=())
    # S1 never committed (2, term 2): only an entry of its own term could have done that.
    assert cluster.cores["n1"].status().commit_index == 1
    # S5 overwrote index 2 everywhere, and that is fine: it was never committed.
    assert all(cluster.log(n)[1] == (2, 3) for n in ("n2", "n3", "n4", "n5"))
    assert not cluster.violations


def test_figure8_with_commit_old_term_bug_loses_a_committed_entry() -> None:
    """Bug commit-old-term (Figure 8, PySyncObj #169): S1 commits (2, term 2) by
    counting replicas, applies it, and S5 then commits (2, term 3) at the same index."""
    cluster = _figure8(bugs=("commit-old-term",))
    assert cluster.cores["n1"].status().commit_index == 2
    assert any("State Machine Safety: index 2" in v for v in cluster.violations), cluster.violations


def test_many_proposals_travel_in_few_append_messages() -> None:
    cluster = Cluster(3, seed=9, max_entries_per_append=64)
    leader = cluster.elect()
    cluster.run(2)
    sent_before = len(cluster.sent)
    for i in range(200):
        cluster.cores[leader].propose(f"p{i}".encode())
    cluster.process(leader)
    new = cluster.sent[sent_before:]
    carrying = [m for m in new if m.type is MessageType.APPEND and m.entries]
    # 200 entries at 64 per message: 4 messages per follower, not 200.
    assert len(carrying) == 2 * 4
    assert sum(len(m.entries) for m in carrying) == 2 * 200
    cluster.deliver_all()
    cluster.run(2)
    assert all(len(cluster.applied[n]) == 200 for n in cluster.ids)


def test_appends_in_flight_are_bounded_per_follower() -> None:
    cluster = Cluster(3, seed=10, max_entries_per_append=1, max_inflight_appends=3)
    leader = cluster.elect()
    cluster.run(2)
    slow = next(n for n in cluster.ids if n != leader)
    cluster.held.add((leader, slow))  # its appends queue up, unanswered
    sent_before = len(cluster.sent)
    for i in range(20):
        cluster.cores[leader].propose(f"p{i}".encode())
    cluster.process(leader)
    cluster.deliver_all()
    to_slow = [m for m in cluster.sent[sent_before:] if m.dst == slow and m.entries]
    assert len(to_slow) == 3  # the bound, although 20 entries wait
    # Once they are answered, the pipeline moves on and everything arrives.
    cluster.heal()
    cluster.run(30)
    assert len(cluster.applied[slow]) == 20
    assert not cluster.violations


def _follower(bugs: frozenset[str] = frozenset()) -> RaftCore:
    return RaftCore(RaftConfig("f", ("f", "l", "x"), bugs=bugs), random.Random(0))


def _append(prev: int, entries: list[Entry], commit: int, term: int = 1) -> Message:
    prev_term = 1 if prev else 0
    return Message(
        MessageType.APPEND,
        term,
        "l",
        "f",
        prev_log_index=prev,
        prev_log_term=prev_term,
        entries=entries,
        leader_commit=commit,
    )


def test_stale_append_does_not_truncate_matching_entries() -> None:
    core = _follower()
    entries = log_of(1, 1, 1, 1, 1)
    core.step(_append(0, entries, commit=0))
    core.step(_append(0, entries[:2], commit=0))  # a delayed duplicate arrives late
    assert core.status().last_log_index == 5


def test_truncate_always_bug_drops_acknowledged_entries() -> None:
    """Bug truncate-always (hashicorp/raft PR #113): the late duplicate erases 3..5,
    which the follower had already acknowledged to the leader."""
    core = _follower(frozenset({"truncate-always"}))
    entries = log_of(1, 1, 1, 1, 1)
    core.step(_append(0, entries, commit=0))
    core.step(_append(0, entries[:2], commit=0))
    assert core.status().last_log_index == 2


def test_follower_commit_never_regresses() -> None:
    core = _follower()
    entries = log_of(1, 1, 1, 1, 1)
    core.step(_append(0, entries, commit=4))
    core.step(_append(2, entries[2:3], commit=2))  # stale: an older leader_commit
    assert core.status().commit_index == 4


def test_commit_regress_bug_moves_commit_backwards() -> None:
    """Bug commit-regress (PySyncObj #166): commit = min(leader_commit, last new index)
    without the max, so the stale append lowers it."""
    core = _follower(frozenset({"commit-regress"}))
    entries = log_of(1, 1, 1, 1, 1)
    core.step(_append(0, entries, commit=4))
    core.step(_append(2, entries[2:3], commit=2))
    assert core.status().commit_index == 2


def test_real_conflict_truncates_and_reports_the_persist_point() -> None:
    core = _follower()
    core.step(_append(0, log_of(1, 1, 1), commit=1))
    core.advance(core.ready())
    replacement = [Entry(term=2, index=2, data=b"new")]
    core.step(_append(1, replacement, commit=1, term=2))
    rd = core.ready()
    assert rd.entries == replacement  # the driver overwrites from index 2 on
    assert core.status().last_log_index == 2
    assert core.term_at(2) == 2


def test_step_survives_garbage_ish_messages() -> None:
    core = _follower()
    core.step(_append(0, log_of(1, 1), commit=1))
    core.advance(core.ready())
    before = core.status()
    odd = [
        # From a node we do not know, with a huge term: the leader lease (check-quorum,
        # §4.2.3) ignores it. (An APPEND from a stranger is Raft business since
        # membership changes: it may be a leader added by a change we have not seen
        # yet, §4.1; the wire's hello keeps other clusters out.)
        Message(
            MessageType.VOTE, 10**12, "stranger", "f", last_log_index=10**9, last_log_term=10**9
        ),
        # Addressed to someone else, or claiming to come from ourselves.
        Message(MessageType.APPEND, 1, "l", "someone-else"),
        Message(MessageType.APPEND, 1, "f", "f"),
        # Entries that do not follow prev_log_index, or whose terms go backwards/ahead.
        Message(
            MessageType.APPEND,
            1,
            "l",
            "f",
            prev_log_index=1,
            prev_log_term=1,
            entries=[Entry(1, 7)],
        ),
        Message(
            MessageType.APPEND,
            1,
            "l",
            "f",
            prev_log_index=2,
            prev_log_term=1,
            entries=[Entry(5, 3)],
        ),
        # Prev index far beyond our log: rejected with a hint, nothing changes.
        Message(MessageType.APPEND, 1, "l", "f", prev_log_index=10**9, prev_log_term=1),
        # Responses a follower never asked for; a snapshot without a snapshot.
        Message(MessageType.APPEND_RESP, 1, "l", "f", success=True, match_index=10**9),
        Message(MessageType.VOTE_RESP, 1, "x", "f", granted=True),
        Message(MessageType.SNAPSHOT, 1, "l", "f"),
        Message(MessageType.SNAPSHOT_RESP, 1, "l", "f", success=True),
        # TimeoutNow from a server that is not our leader (§3.10: only the leader may).
        Message(MessageType.TIMEOUT_NOW, 1, "x", "f"),
        # Stale terms.
        Message(MessageType.APPEND, 0, "l", "f", prev_log_index=0, entries=[Entry(0, 1)]),
        Message(MessageType.VOTE, 0, "x", "f"),
        "not a message",  # type: ignore[list-item]
    ]
    for msg in odd:
        core.step(msg)  # type: ignore[arg-type]
    after = core.status()
    assert (after.term, after.vote, after.last_log_index, after.commit_index) == (
        before.term,
        before.vote,
        before.last_log_index,
        before.commit_index,
    )
    rd = core.ready()
    # The far-ahead append got a rejection with a hint; stale requests got our term.
    rejections = [m for m in rd.messages if m.type is MessageType.APPEND_RESP and not m.success]
    assert any(m.conflict_index == 3 for m in rejections)
    assert all(m.dst in ("l", "x") for m in rd.messages)
    # A huge term from a real peer is Raft business: we adopt it (§5.1).
    core.advance(rd)
    core.step(Message(MessageType.APPEND, 10**12, "l", "f", prev_log_index=2, prev_log_term=1))
    assert core.status().term == 10**12 and core.status().leader == "l"


def test_leader_survives_odd_responses() -> None:
    cluster = Cluster(3, seed=11)
    leader = cluster.elect()
    other, third = (n for n in cluster.ids if n != leader)
    term = cluster.term(leader)
    core = cluster.cores[leader]
    for msg in [
        # Two peers claiming entries the leader never had: must not commit past its log.
        Message(MessageType.APPEND_RESP, term, third, leader, success=True, match_index=10**9),
        Message(MessageType.SNAPSHOT_RESP, term, third, leader, success=True, match_index=10**9),
        Message(MessageType.APPEND_RESP, term, other, leader, success=True, match_index=10**9),
        Message(MessageType.APPEND_RESP, term, other, leader, success=False, conflict_index=10**9),
        Message(
            MessageType.APPEND_RESP,
            term,
            other,
            leader,
            success=False,
            conflict_index=1,
            conflict_term=10**6,
        ),
        Message(MessageType.SNAPSHOT_RESP, term, other, leader, success=True, match_index=0),
        Message(MessageType.VOTE_RESP, term, other, leader, granted=True),
    ]:
        core.step(msg)
    # A match index beyond our log is ignored rather than trusted.
    assert core.status().commit_index <= core.status().last_log_index
    cluster.process(leader)
    cluster.run(5)
    assert cluster.leader() == leader
    assert cluster.log(other) == cluster.log(leader)


def test_invariants_are_checked_loudly() -> None:
    core = _follower()
    core.step(_append(0, log_of(1, 1, 1), commit=3))
    with pytest.raises(InvariantViolation, match="regress"):
        core.log.commit_to(1)
    with pytest.raises(InvariantViolation, match="overwrite committed"):
        core.log.append([Entry(term=1, index=2)])
    with pytest.raises(InvariantViolation, match="log matching"):
        core.log.append([Entry(term=1, index=9)])
    with pytest.raises(RuntimeError, match="before advance"):
        core.ready()
        core.ready()


def test_snapshot_message_for_an_older_prefix_is_answered_not_applied() -> None:
    core = _follower()
    core.step(_append(0, log_of(1, 1, 1), commit=3))
    core.advance(core.ready())
    stale = Snapshot(SnapshotMeta(index=2, term=1), b"[]")
    core.step(Message(MessageType.SNAPSHOT, 1, "l", "f", snapshot=stale))
    rd = core.ready()
    assert rd.snapshot is None
    (answer,) = rd.messages
    assert answer.type is MessageType.SNAPSHOT_RESP and answer.match_index == 3
    assert core.status().last_log_index == 3


def test_noop_starts_every_term() -> None:
    cluster = Cluster(3, seed=12)
    first = cluster.elect()
    term = cluster.term(first)
    entry = cluster.cores[first].log.entry_at(1)
    assert entry is not None and entry.kind is EntryKind.NOOP and entry.term == term
    cluster.isolate(first)
    cluster.run(40)
    second = cluster.leader()
    assert second is not None and second != first
    last = cluster.cores[second].log.entry_at(cluster.cores[second].status().last_log_index)
    assert last is not None and last.kind is EntryKind.NOOP and last.term == cluster.term(second)
