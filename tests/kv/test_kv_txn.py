"""Transactions in the KV: one log command, atomic, reads filled, sessions, malformed
txns, and the ``txn-stale-reads`` teaching bug (raftnode/kv.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftnode.kv import (
    MAX_TXN_MOPS,
    KVStateMachine,
    MalformedCommand,
    encode_command,
    is_txn_read,
    validate_txn_ops,
    with_reads_at_proposal,
)
from raftnode.server import RequestError, validate_request

MALFORMED = {"ok": False, "error": "malformed"}


class Log:
    def __init__(self, kv: KVStateMachine) -> None:
        self.kv = kv
        self.index = 0

    def apply(self, **command: Any) -> dict[str, Any]:
        self.index += 1
        return self.kv.apply(self.index, encode_command(command))

    def txn(self, ops: list[Any], client: str = "c", seq: int | None = None) -> dict[str, Any]:
        session = {} if seq is None else {"client": client, "seq": seq}
        return self.apply(op="txn", ops=ops, **session)


def test_a_txn_applies_in_order_and_fills_its_reads() -> None:
    log = Log(KVStateMachine())
    reply = log.txn(
        [["r", "x", None], ["append", "x", 1], ["w", "y", "a"], ["r", "y", None]], seq=1
    )
    assert reply == {
        "ok": True,
        "value": [["r", "x", None], ["append", "x", 1], ["w", "y", "a"], ["r", "y", "a"]],
    }
    reply = log.txn([["append", "x", 2], ["r", "x", None], ["r", "z", None]], seq=2)
    assert reply["value"] == [["append", "x", 2], ["r", "x", [1, 2]], ["r", "z", None]]
    assert log.apply(op="get", key="x") == {"ok": True, "value": [1, 2]}


def test_a_read_sees_the_txns_own_earlier_writes_only() -> None:
    """Elle's internal consistency: a read after the txn's own append ends in it; a read
    before it does not."""
    log = Log(KVStateMachine())
    log.txn([["append", "k", 1]], seq=1)
    reply = log.txn([["r", "k", None], ["append", "k", 2], ["r", "k", None]], seq=2)
    assert reply["value"] == [["r", "k", [1]], ["append", "k", 2], ["r", "k", [1, 2]]]
    reply = log.txn([["w", "r", 1], ["w", "r", 2], ["r", "r", None]], seq=3)
    assert reply["value"][2] == ["r", "r", 2]


def test_a_txn_that_fails_part_way_changes_nothing() -> None:
    log = Log(KVStateMachine())
    log.apply(op="put", key="reg", value=5, client="c", seq=1)
    reply = log.txn([["append", "x", 1], ["w", "y", 2], ["append", "reg", 3]], seq=2)
    assert reply == MALFORMED
    assert log.apply(op="mget", keys=["x", "y", "reg"])["value"] == {"x": None, "y": None, "reg": 5}


def test_a_retried_txn_is_applied_once_and_gets_the_first_reply() -> None:
    log = Log(KVStateMachine())
    first = log.txn([["append", "x", 1], ["r", "x", None]], seq=1)
    log.txn([["append", "x", 2]], client="other", seq=1)
    again = log.txn([["append", "x", 1], ["r", "x", None]], seq=1)
    assert again == first and first["value"][1] == ["r", "x", [1]]
    assert log.apply(op="get", key="x")["value"] == [1, 2]
    assert log.txn([["append", "x", 9]], seq=0) == {"ok": False, "error": "stale_seq"}


def test_no_dedup_applies_a_retried_txn_twice() -> None:
    log = Log(KVStateMachine(bugs=frozenset({"no-dedup"})))
    log.txn([["append", "x", 1]], seq=1)
    log.txn([["append", "x", 1]], seq=1)
    assert log.apply(op="get", key="x")["value"] == [1, 1]


BAD_TXNS: list[Any] = [
    None,
    [],
    "r x",
    [["r", "x"]],
    [["r", "x", None, 1]],
    [["inc", "x", 1]],
    [["r", 1.5, None]],
    [["r", None, None]],
    [["r", "x", 3]],  # a read's value is filled by the reply, never sent
    [["append", "x", {1: 2}]],  # a map with a non-string key is not storable
    [["r", "x", None]] * (MAX_TXN_MOPS + 1),
]


@pytest.mark.parametrize("ops", BAD_TXNS)
def test_malformed_txns_are_refused_whole(ops: Any) -> None:
    with pytest.raises(MalformedCommand):
        validate_txn_ops(ops)
    kv = KVStateMachine()
    log = Log(kv)
    assert log.apply(op="txn", ops=ops, client="c", seq=1) == MALFORMED
    assert len(kv) == 0
    # The node refuses it before it reaches the log: a definite ``malformed``.
    with pytest.raises(RequestError):
        validate_request({"op": "txn", "ops": ops, "client": "c", "seq": 1})


def test_the_server_wants_a_session_for_a_txn_with_writes_only() -> None:
    read_only = validate_request({"op": "txn", "ops": [["r", "x", None]]})
    assert read_only == {"op": "txn", "ops": [["r", "x", None]]} and is_txn_read(read_only)
    with pytest.raises(RequestError):
        validate_request({"op": "txn", "ops": [["append", "x", 1]]})
    write = validate_request({"op": "txn", "ops": [["w", "x", 1]], "client": "c", "seq": 2})
    assert write["client"] == "c" and write["seq"] == 2 and not is_txn_read(write)
    # A read-only txn with a session is a log command like any other.
    with_session = validate_request(
        {"op": "txn", "ops": [["r", "x", None]], "client": "c", "seq": 3}
    )
    assert not is_txn_read(with_session)


def test_query_answers_read_only_txns_only() -> None:
    kv = KVStateMachine()
    Log(kv).txn([["append", "x", 1]], seq=1)
    assert kv.query({"op": "txn", "ops": [["r", "x", None], ["r", "y", None]]}) == {
        "ok": True,
        "value": [["r", "x", [1]], ["r", "y", None]],
    }
    assert kv.query({"op": "txn", "ops": [["append", "x", 2]]}) == MALFORMED
    assert kv.query({"op": "get", "key": "x"})["value"] == [1]


def test_txn_state_and_sessions_survive_a_snapshot() -> None:
    kv = KVStateMachine()
    log = Log(kv)
    reply = log.txn([["append", 7, 1], ["w", b"k", "v"], ["r", 7, None]], seq=1)
    restored = KVStateMachine()
    restored.restore(kv.snapshot())
    again = restored.apply(
        2,
        encode_command(
            {
                "op": "txn",
                "ops": [["append", 7, 1], ["w", b"k", "v"], ["r", 7, None]],
                "client": "c",
                "seq": 1,
            }
        ),
    )
    assert again == reply
    assert restored.query({"op": "txn", "ops": [["r", 7, None], ["r", b"k", None]]})["value"] == [
        ["r", 7, [1]],
        ["r", b"k", "v"],
    ]


def test_stale_reads_bug_reads_at_proposal_and_writes_at_commit() -> None:
    """The teaching bug: the leader's reads at proposal miss an append committed before
    the txn's entry, while the txn's own append still lands after it (no write lost)."""
    bug = frozenset({"txn-stale-reads"})
    leader, follower = KVStateMachine(bugs=bug), KVStateMachine(bugs=bug)
    for kv in (leader, follower):
        kv.apply(1, encode_command({"op": "append", "key": "x", "value": 1}))
    # Proposed on the leader while another append (2) is in flight.
    command = with_reads_at_proposal(
        leader,
        {
            "op": "txn",
            "ops": [["r", "x", None], ["append", "x", 3], ["r", "x", None]],
            "client": "c",
            "seq": 1,
        },
    )
    assert command["reads_at_proposal"] == [[1], [1, 3]]
    for kv in (leader, follower):
        kv.apply(2, encode_command({"op": "append", "key": "x", "value": 2}))
        reply = kv.apply(3, encode_command(command))
        assert reply["value"] == [["r", "x", [1]], ["append", "x", 3], ["r", "x", [1, 3]]]
        assert kv.query({"op": "get", "key": "x"})["value"] == [1, 2, 3]
    # The correct KV ignores the field: reads at commit.
    correct = KVStateMachine()
    for index, data in enumerate(
        [{"op": "append", "key": "x", "value": 1}, {"op": "append", "key": "x", "value": 2}],
        start=1,
    ):
        correct.apply(index, encode_command(data))
    assert correct.apply(3, encode_command(command))["value"][0] == ["r", "x", [1, 2]]


micro_op = st.one_of(
    st.tuples(st.just("r"), st.sampled_from(["a", "b", "c"]), st.none()),
    st.tuples(st.just("append"), st.sampled_from(["a", "b"]), st.integers(0, 9)),
    st.tuples(st.just("w"), st.sampled_from(["c"]), st.integers(0, 9)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(micro_op, min_size=1, max_size=5), min_size=1, max_size=12))
def test_txns_equal_their_micro_ops_applied_serially(txns: list[list[Any]]) -> None:
    """A txn is its micro-ops run one by one, in order, with nothing in between."""
    kv = KVStateMachine()
    model: dict[str, Any] = {}
    for seq, ops in enumerate(txns, start=1):
        expected = []
        for f, key, value in ops:
            if f == "r":
                expected.append(["r", key, model.get(key)])
            elif f == "w":
                model[key] = value
                expected.append(["w", key, value])
            else:
                model[key] = [*model.get(key, []), value]
                expected.append(["append", key, value])
        reply = kv.apply(seq, encode_command({"op": "txn", "ops": ops, "client": "c", "seq": seq}))
        assert reply == {"ok": True, "value": expected}
