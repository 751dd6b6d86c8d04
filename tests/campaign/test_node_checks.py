"""Raft's own invariants on real runs: the generic checkers over hand-built event streams
(with violations), the parser over real node log lines, and one short real campaign."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from campaign.node_checks import (
    CHECKERS,
    acknowledged_sessions,
    check_node_logs,
    parse_node_log,
)
from checker.op import NEMESIS, Op
from checker.raft_events import (
    Ack,
    Applied,
    CommitIndex,
    Incarnation,
    Restored,
    RoleChange,
    acknowledged_writes,
    commit_monotonic,
    election_safety,
)
from raftnode.driver import _PendingProposal, applied_line
from raftnode.kv import encode_command
from raftnode.messages import Entry, EntryKind

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# --- election safety -----------------------------------------------------------------


def test_two_leaders_in_one_term_is_a_violation() -> None:
    events = [
        RoleChange("n1", 1, "leader", 3, "t1"),
        RoleChange("n2", 1, "follower", 3),
        RoleChange("n2", 1, "leader", 4),
        RoleChange("n3", 1, "leader", 3, "t2"),
    ]
    result = election_safety(events)
    assert result["valid"] is False
    assert result["terms"] == {"3": ["n1", "n3"]}
    assert result["became_leader_at"] == {"3": {"n1": "t1", "n3": "t2"}}


def test_one_leader_per_term_is_valid_and_the_same_node_twice_is_not_two() -> None:
    events = [
        RoleChange("n1", 1, "leader", 2),
        RoleChange("n1", 2, "leader", 2),  # restarted, logs its role again: one leader
        RoleChange("n2", 1, "leader", 3),
    ]
    assert election_safety(events) == {"terms_with_a_leader": 2, "valid": True}


def test_missing_logs_make_a_clean_result_unknown_but_not_a_violation() -> None:
    clean = election_safety([RoleChange("n1", 1, "leader", 2)], complete=False, missing="no n3")
    assert clean["valid"] == "unknown" and "no n3" in clean["error"]
    two = [RoleChange("n1", 1, "leader", 2), RoleChange("n2", 1, "leader", 2)]
    assert election_safety(two, complete=False)["valid"] is False


# --- commit index --------------------------------------------------------------------


def test_a_commit_index_that_goes_down_within_an_incarnation_is_a_violation() -> None:
    events = [CommitIndex("n1", 1, 10), CommitIndex("n1", 1, 40), CommitIndex("n1", 1, 35, None)]
    result = commit_monotonic(events)
    assert result["valid"] is False
    assert result["regressions"][0] | {"time": ""} == {
        "node": "n1",
        "incarnation": 1,
        "from": 40,
        "to": 35,
        "time": "",
    }


def test_a_regression_the_node_reported_between_samples_is_a_violation() -> None:
    # Sampled 10, then 40 (not sampled), then 20: the samples alone rise.
    events = [CommitIndex("n1", 1, 10), CommitIndex("n1", 1, 20, regressed_from=40)]
    result = commit_monotonic(events)
    assert result["valid"] is False and result["regressions"][0]["from"] == 40


def test_a_restart_may_start_lower_the_commit_index_is_volatile() -> None:
    events = [
        CommitIndex("n1", 1, 50),
        CommitIndex("n1", 2, 12),  # restarted from a stale persisted commit: allowed
        CommitIndex("n1", 2, 60),
        CommitIndex("n2", 1, 5),
    ]
    assert commit_monotonic(events) == {"reports": 4, "incarnations": 3, "valid": True}


# --- acknowledged writes -------------------------------------------------------------


def _applies(node: str, incarnation: int, first: int, items: list) -> list[Applied]:
    """Entries (term, session): the digest stands for the content (here, the session);
    only the proposer (n1 here) knows the session, as on real nodes."""
    return [
        Applied(
            node,
            incarnation,
            first + offset,
            term,
            digest=str(session),
            session=session if node == "n1" else None,
        )
        for offset, (term, session) in enumerate(items)
    ]


def _cluster_log(extra: list | None = None) -> list:
    log = [Incarnation("n1", 1), Incarnation("n2", 1)]
    for node in ("n1", "n2"):
        log += _applies(node, 1, 1, [(1, None), (1, ("p0", 1)), (1, ("p1", 1))])
    return log + (extra or [])


def test_every_acknowledged_write_applied_and_never_replaced_is_valid() -> None:
    acks = [Ack(1, "p0", 1), Ack(3, "p1", 1)]
    result = acknowledged_writes(acks, _cluster_log())
    assert result["valid"] is True and result["confirmed"] == 2 and result["final_index"] == 3


def test_an_acknowledged_write_no_node_applied_is_lost() -> None:
    result = acknowledged_writes([Ack(1, "p0", 1), Ack(5, "p0", 2)], _cluster_log())
    assert result["valid"] is False
    assert [(item["client"], item["seq"]) for item in result["lost"]] == [("p0", 2)]


def test_an_acknowledged_write_replaced_at_its_index_is_lost() -> None:
    # n2 restarts and applies another entry (a new leader's no-op, term 2) at index 2:
    # the write p0#1 that n1 applied there, and acknowledged, is gone (no-fsync, say).
    replaced = [Incarnation("n2", 2)] + _applies("n2", 2, 2, [(2, None), (2, ("p1", 1))])
    result = acknowledged_writes([Ack(1, "p0", 1)], _cluster_log(replaced))
    assert result["valid"] is False
    assert "State Machine Safety" in result["lost"][0]["why"]


def test_a_write_beyond_what_the_last_incarnations_applied_is_unknown() -> None:
    # Applied at index 3 by n1 in an earlier incarnation; every node's last incarnation
    # holds only up to index 2: the final state cannot be said to hold it.
    events = [Incarnation("n1", 1)] + _applies("n1", 1, 1, [(1, None), (1, None), (1, ("p0", 1))])
    events += [Incarnation("n1", 2, snapshot_index=2)]
    result = acknowledged_writes([Ack(0, "p0", 1)], events)
    assert result["valid"] == "unknown" and result["final_index"] == 2


def test_a_snapshot_installed_by_the_last_incarnation_counts_as_reached() -> None:
    events = [Incarnation("n1", 1)] + _applies("n1", 1, 1, [(1, None), (1, None), (1, ("p0", 1))])
    events += [Incarnation("n1", 2, snapshot_index=2)]
    assert acknowledged_writes([Ack(0, "p0", 1)], events)["valid"] == "unknown"
    events += [Restored("n1", 2, 3)]
    assert acknowledged_writes([Ack(0, "p0", 1)], events)["valid"] is True


def test_with_logs_missing_an_absent_write_is_unknown_not_lost() -> None:
    result = acknowledged_writes([Ack(0, "p9", 1)], _cluster_log(), complete=False)
    assert result["valid"] == "unknown"


def _op(index: int, type_: str, process, f: str, value=None) -> Op:
    return Op(index=index, time=index, type=type_, process=process, f=f, value=value)


def test_the_kth_write_of_process_p_carries_session_p_k() -> None:
    ops = [
        _op(0, "invoke", 0, "write", [1, 1]),
        _op(1, "invoke", 1, "read", [1, None]),
        _op(2, "ok", 0, "write", [1, 1]),
        _op(3, "ok", 1, "read", [1, 1]),
        _op(4, "invoke", 0, "cas", [1, [1, 2]]),
        _op(5, "fail", 0, "cas", [1, [1, 2]]),
        _op(6, "invoke", NEMESIS, "kill", None),
        _op(7, "invoke", 0, "write", [1, 3]),
        _op(8, "ok", 0, "write", [1, 3]),
    ]
    acks, invoked = acknowledged_sessions(ops, lambda f: f == "read")
    assert acks == [Ack(2, "p0", 1), Ack(8, "p0", 3)]  # the failed cas took seq 2
    assert invoked == {"p0": 3}


# --- the parser over real lines --------------------------------------------------------

REAL_LOG = """\
=== raftlab n1: start #1: python3 -m campaign node --id n1 at 2026-12-05T01:55:29.276Z ===
2026-12-05T01:55:32.371Z n1 starting cluster=raftlab-4 peers=n2,n3 tick=100ms heartbeat_ticks=1 \
election_ticks=10 read_mode=read_index snapshot_threshold=4096 seed=1 restored_term=0 \
restored_entries=0 snapshot_index=0
2026-12-05T01:55:32.378Z n1 listening on 127.0.0.1:19860
2026-12-05T01:55:33.514Z n1 role=pre_candidate term=0 leader=None
2026-12-05T01:55:33.514Z n1 commit_index=0 applied_index=0 last_log_index=0
2026-12-05T01:55:33.575Z n1 role=leader term=1 leader=n1
2026-12-05T01:55:33.592Z n1 apply index=1 entries=1:0
2026-12-05T01:55:33.767Z n1 apply index=2 entries=1:81dad661:p2:1,1:a7051597:p1:1
=== raftlab n1: killed (SIGKILL), exit status -9 at 2026-12-05T01:55:34.708Z ===
=== raftlab n1: start #2: python3 -m campaign node --id n1 at 2026-12-05T01:55:37.276Z ===
2026-12-05T01:55:39.491Z n1 starting cluster=raftlab-4 peers=n2,n3 restored_term=1 \
restored_entries=3 snapshot_index=0
2026-12-05T01:55:39.509Z n1 apply index=1 entries=1:0,1:81dad661,1:a7051597
2026-12-05T01:55:39.510Z n1 role=follower term=1 leader=None
2026-12-05T01:55:39.510Z n1 commit_index=3 applied_index=3 last_log_index=3
2026-12-05T01:55:39.611Z n1 commit_index regressed from=3 to=2
2026-12-05T01:55:39.700Z n1 snapshot restored index=4096 term=2
Traceback (most recent call last):
"""


def test_real_node_log_lines_parse_into_events() -> None:
    parsed = parse_node_log("n1", REAL_LOG.splitlines())
    assert parsed.damaged == [] and parsed.incarnations == 2
    kinds = [(type(e).__name__, e.incarnation) for e in parsed.events]
    assert kinds[0] == ("Incarnation", 1) and ("Incarnation", 2) in kinds
    roles = [(e.role, e.term) for e in parsed.events if isinstance(e, RoleChange)]
    assert roles == [("pre_candidate", 0), ("leader", 1), ("follower", 1)]
    applied = [
        (e.incarnation, e.index, e.term, e.digest, e.session)
        for e in parsed.events
        if isinstance(e, Applied)
    ]
    assert applied[:3] == [
        (1, 1, 1, "0", None),
        (1, 2, 1, "81dad661", ("p2", 1)),
        (1, 3, 1, "a7051597", ("p1", 1)),
    ]
    # Re-applied after the restart, as a follower: no sessions, the same digests.
    assert applied[3:] == [
        (2, 1, 1, "0", None),
        (2, 2, 1, "81dad661", None),
        (2, 3, 1, "a7051597", None),
    ]
    commits = [
        (e.incarnation, e.index, e.regressed_from)
        for e in parsed.events
        if isinstance(e, CommitIndex)
    ]
    assert commits == [(1, 0, None), (2, 3, None), (2, 2, 3)]
    assert commit_monotonic(parsed.events)["valid"] is False
    assert parsed.events[-1] == Restored("n1", 2, 4096, "2026-12-05T01:55:39.700Z")


def test_the_drivers_apply_line_round_trips_odd_client_ids() -> None:
    put = encode_command({"op": "put", "client": "a b,c:d", "seq": 4})
    entries = [
        Entry(index=7, term=2, kind=EntryKind.NOOP, data=b""),
        Entry(term=2, index=8, data=put),
        Entry(term=3, index=9, data=encode_command({"op": "put", "client": "p1", "seq": 2})),
        Entry(term=3, index=10, data=b"\xc1 not msgpack"),
    ]
    # This node proposed 8 (in term 2) and 9 (in term 2: another leader's entry is there).
    pending = {
        8: _PendingProposal(2, None, ("a b,c:d", 4)),  # type: ignore[arg-type]
        9: _PendingProposal(2, None, ("p1", 2)),  # type: ignore[arg-type]
    }
    line = applied_line(entries, pending)
    assert line.startswith("apply index=7 entries=2:0,2:")
    parsed = parse_node_log("n1", ["1.0 n1 starting snapshot_index=0", f"2.0 n1 {line}"])
    assert parsed.damaged == []
    applied = [e for e in parsed.events if isinstance(e, Applied)]
    assert [(e.index, e.term, e.session) for e in applied] == [
        (7, 2, None),
        (8, 2, ("a b,c:d", 4)),
        (9, 3, None),
        (10, 3, None),
    ]
    assert applied[1].digest == f"{zlib.crc32(put):x}"


def test_a_damaged_line_makes_the_clean_results_unknown() -> None:
    lines = [
        "1.0 n1 starting snapshot_index=0",
        "1.5 n1 role=leader term=1 leader=n1",
        "2.0 n1 apply index=x",
    ]
    ops = [_op(0, "invoke", 0, "write", [1, 1]), _op(1, "ok", 0, "write", [1, 1])]
    results = check_node_logs({"n1": lines, "n2": None}, ops, lambda f: f == "read")
    assert set(results) == set(CHECKERS)
    assert results["election-safety"]["valid"] == "unknown"
    assert "no log for n2" in results["election-safety"]["error"]
    assert results["election-safety"]["damaged_lines"] == {"n1": ["2.0 n1 apply index=x"]}
    # No p<process> session at all in the logs: the history cannot be matched, unknown.
    assert results["acknowledged-writes"]["valid"] == "unknown"


def test_one_seq_on_two_commands_means_no_mapping() -> None:
    lines = [
        "1.0 n1 starting snapshot_index=0",
        "2.0 n1 apply index=1 entries=1:ab:p0:1,1:cd:p0:1",
    ]
    ops = [_op(0, "invoke", 0, "write", [1, 1]), _op(1, "ok", 0, "write", [1, 1])]
    result = check_node_logs({"n1": lines}, ops, lambda f: f == "read")["acknowledged-writes"]
    assert result["valid"] == "unknown" and "two different commands" in result["error"]
    # The same command twice (a retry) is fine.
    lines[1] = "2.0 n1 apply index=1 entries=1:ab:p0:1,1:ab:p0:1"
    result = check_node_logs({"n1": lines}, ops, lambda f: f == "read")["acknowledged-writes"]
    assert result["valid"] is True


def test_a_log_session_beyond_what_its_process_invoked_means_no_mapping() -> None:
    lines = ["1.0 n1 starting snapshot_index=0", "2.0 n1 apply index=1 entries=1:ab:p0:5"]
    ops = [_op(0, "invoke", 0, "write", [1, 1]), _op(1, "ok", 0, "write", [1, 1])]
    result = check_node_logs({"n1": lines}, ops, lambda f: f == "read")["acknowledged-writes"]
    assert result["valid"] == "unknown" and "cannot be matched" in result["error"]


# --- one real campaign -----------------------------------------------------------------


def _free_base(count: int) -> int:
    from campaign.cluster import _block_is_free

    for base in range(19700, 19800 - count, count):
        if _block_is_free(base, count):
            return base
    pytest.skip("no free block of ports in 19700-19799")


@pytest.mark.slow
def test_a_real_campaign_reports_the_three_node_log_checkers(tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    completed = subprocess.run(
        [
            sys.executable, "-m", "campaign", "test", "--results-dir", str(results_dir),
            "--nodes", "3", "--nemesis", "kill", "--nemesis-interval", "1.5",
            "--time-limit", "4", "--recovery-time", "1", "--seed", "11",
            "--base-port", str(_free_base(12)), "--name", "node-checks",
        ],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    run_dir = (results_dir / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text())
    for name in CHECKERS:
        assert results["checkers"][name]["valid"] is True, (name, completed.stdout[-2000:])
    assert results["checkers"]["acknowledged-writes"]["confirmed"] > 0
    assert "acknowledged-writes" in (run_dir / "report.html").read_text()


def test_other_targets_get_no_node_log_checkers_and_missing_logs_are_unknown(
    tmp_path: Path,
) -> None:
    from campaign.node_checks import node_log_checkers

    config = {"target": "etcd", "nodes": 3, "workload": "register"}
    assert node_log_checkers(tmp_path, config, []) == {}  # etcd logs its own format
    ops = [_op(0, "invoke", 0, "write", [1, 1]), _op(1, "ok", 0, "write", [1, 1])]
    results = node_log_checkers(tmp_path, {**config, "target": "raftnode"}, ops)
    assert set(results) == set(CHECKERS)
    assert results["election-safety"]["valid"] == "unknown"
    assert "no log for n1, n2, n3" in results["election-safety"]["error"]
