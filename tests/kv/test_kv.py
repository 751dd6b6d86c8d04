"""The KV state machine: ops, replies, sessions (§6.3), snapshots, malformed commands."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftnode.kv import (
    KVStateMachine,
    MalformedCommand,
    decode_command,
    encode_command,
    same_value,
)


class Log:
    """Feeds commands to a state machine at increasing log indexes."""

    def __init__(self, kv: KVStateMachine, start: int = 1) -> None:
        self.kv = kv
        self.index = start - 1

    def apply(self, **command: Any) -> dict[str, Any]:
        self.index += 1
        return self.kv.apply(self.index, encode_command(command))

    def skip(self, count: int) -> None:
        """Entries of other kinds (no-ops) or of other clients pass by."""
        self.index += count


def test_put_get_delete() -> None:
    log = Log(KVStateMachine())
    assert log.apply(op="get", key="k") == {"ok": True, "value": None}
    assert log.apply(op="put", key="k", value=[1, "x"], client="c", seq=1) == {
        "ok": True,
        "value": None,
    }
    assert log.apply(op="get", key="k") == {"ok": True, "value": [1, "x"]}
    assert log.kv.query({"op": "get", "key": "k"}) == {"ok": True, "value": [1, "x"]}
    assert log.apply(op="delete", key="k", client="c", seq=2) == {"ok": True, "value": None}
    assert log.kv.query({"op": "get", "key": "k"}) == {"ok": True, "value": None}
    assert log.apply(op="delete", key="k", client="c", seq=3)["ok"] is True  # absent: fine


def test_cas_match_mismatch_absent() -> None:
    log = Log(KVStateMachine())
    assert log.apply(op="cas", key="r", **{"from": 1, "to": 2}) == {
        "ok": False,
        "error": "not_found",
    }
    log.apply(op="put", key="r", value=1)
    assert log.apply(op="cas", key="r", **{"from": 3, "to": 4}) == {
        "ok": False,
        "error": "cas_mismatch",
    }
    assert log.kv.query({"op": "get", "key": "r"})["value"] == 1
    assert log.apply(op="cas", key="r", **{"from": 1, "to": 2}) == {"ok": True, "value": None}
    assert log.kv.query({"op": "get", "key": "r"})["value"] == 2
    # Exact comparison: neither True nor 2.0 is 2.
    for lookalike in (True, 2.0):
        reply = log.apply(op="cas", key="r", **{"from": lookalike, "to": 9})
        assert reply == {"ok": False, "error": "cas_mismatch"}
    # A stored None is a value, not absence.
    log.apply(op="put", key="n", value=None)
    assert log.apply(op="cas", key="n", **{"from": None, "to": 1})["ok"] is True


def test_append_starts_a_list_and_returns_it() -> None:
    log = Log(KVStateMachine())
    assert log.apply(op="append", key="l", value=1) == {"ok": True, "value": [1]}
    first = log.kv.query({"op": "get", "key": "l"})["value"]
    assert log.apply(op="append", key="l", value="two") == {"ok": True, "value": [1, "two"]}
    assert first == [1]  # a value handed out earlier is never mutated in place
    log.apply(op="put", key="s", value="scalar")
    assert log.apply(op="append", key="s", value=1) == {"ok": False, "error": "malformed"}


def test_transfer_and_mget() -> None:
    log = Log(KVStateMachine())
    log.apply(op="put", key="a", value=10)
    log.apply(op="put", key="b", value=5)
    assert log.apply(op="transfer", from_key="a", to_key="b", amount=7) == {
        "ok": True,
        "value": None,
    }
    assert log.apply(op="transfer", from_key="a", to_key="b", amount=4) == {
        "ok": False,
        "error": "insufficient_funds",
    }
    assert log.apply(op="transfer", from_key="b", to_key="new", amount=12)["ok"] is True
    assert log.kv.query({"op": "mget", "keys": ["a", "b", "new", "nobody"]}) == {
        "ok": True,
        "value": {"a": 3, "b": 0, "new": 12, "nobody": None},
    }
    assert log.apply(op="transfer", from_key="a", to_key="a", amount=3)["ok"] is True
    assert log.apply(op="mget", keys=["a"]) == {"ok": True, "value": {"a": 3}}
    for bad in ({"amount": -1}, {"amount": "3"}, {"amount": 1.5}, {"to_key": 4.0}):
        command = {"op": "transfer", "from_key": "a", "to_key": "b", "amount": 1, **bad}
        assert log.apply(**command) == {"ok": False, "error": "malformed"}
    log.apply(op="put", key="text", value="abc")
    assert log.apply(op="transfer", from_key="text", to_key="a", amount=0)["error"] == "malformed"
    assert log.kv.query({"op": "mget", "keys": ["a", "b"]})["value"] == {"a": 3, "b": 0}


def test_a_retried_write_is_applied_once() -> None:
    log = Log(KVStateMachine())
    first = log.apply(op="append", key="l", value="x", client="c1", seq=1)
    log.apply(op="append", key="l", value="y", client="c2", seq=1)
    retry = log.apply(op="append", key="l", value="x", client="c1", seq=1)
    assert retry == first == {"ok": True, "value": ["x"]}  # the cached reply
    assert log.kv.query({"op": "get", "key": "l"})["value"] == ["x", "y"]
    # A definite failure is cached too, and not re-evaluated against the new state.
    log.apply(op="put", key="r", value=1, client="c1", seq=2)
    failed = log.apply(op="cas", key="r", client="c1", seq=3, **{"from": 5, "to": 6})
    log.apply(op="put", key="r", value=5, client="c2", seq=2)
    assert log.apply(op="cas", key="r", client="c1", seq=3, **{"from": 5, "to": 6}) == failed
    assert log.kv.query({"op": "get", "key": "r"})["value"] == 5


def test_cached_reply_cannot_be_changed_by_the_caller() -> None:
    log = Log(KVStateMachine())
    reply = log.apply(op="put", key="k", value=1, client="c", seq=1)
    reply["id"] = 99  # a driver decorating its response
    assert log.apply(op="put", key="k", value=1, client="c", seq=1) == {"ok": True, "value": None}


def test_an_older_seq_is_stale() -> None:
    log = Log(KVStateMachine())
    log.apply(op="put", key="k", value=1, client="c", seq=5)
    assert log.apply(op="put", key="k", value=2, client="c", seq=4) == {
        "ok": False,
        "error": "stale_seq",
    }
    assert log.kv.query({"op": "get", "key": "k"})["value"] == 1
    assert log.apply(op="put", key="k", value=3, client="c", seq=9)["ok"] is True  # gaps are fine


def test_no_dedup_bug_applies_a_retry_twice() -> None:
    log = Log(KVStateMachine(bugs=frozenset({"no-dedup"})))
    log.apply(op="append", key="l", value="x", client="c", seq=1)
    assert log.apply(op="append", key="l", value="x", client="c", seq=1)["value"] == ["x", "x"]
    assert log.apply(op="put", key="k", value=1, client="c", seq=0)["ok"] is True  # no stale_seq
    assert log.kv.session_count == 0


def test_sessions_expire_by_log_position() -> None:
    log = Log(KVStateMachine(session_ttl_entries=10))
    log.apply(op="append", key="l", value="x", client="old", seq=1)  # index 1
    log.skip(9)
    # Index 11: the last entry of "old" is exactly 10 entries back: still alive.
    assert log.apply(op="append", key="l", value="x", client="old", seq=1)["value"] == ["x"]
    assert log.kv.session("old") is not None and log.kv.session("old").last_index == 11
    log.skip(10)
    log.apply(op="put", key="other", value=1, client="new", seq=1)  # index 22
    assert log.kv.session("old") is None and log.kv.session("new") is not None
    # An expired client's retry is applied again: the TTL must exceed any retry window.
    assert log.apply(op="append", key="l", value="x", client="old", seq=1)["value"] == ["x", "x"]


def test_expiry_is_the_same_on_every_replica_whatever_the_history() -> None:
    """Two replicas, one restored from a snapshot midway, expire the same sessions."""
    commands = [
        {"op": "put", "key": f"k{i % 7}", "value": i, "client": f"c{i % 5}", "seq": i}
        for i in range(1, 200)
        if i % 3
    ]
    whole = KVStateMachine(session_ttl_entries=40)
    replica = KVStateMachine(session_ttl_entries=40)
    replies_whole, replies_replica = [], []
    for position, command in enumerate(commands):
        index = 1 + position * 2  # no-ops in between
        replies_whole.append(whole.apply(index, encode_command(command)))
        if position == 50:
            restored = KVStateMachine(session_ttl_entries=40)
            restored.restore(replica.snapshot())
            replica = restored
        replies_replica.append(replica.apply(index, encode_command(command)))
    assert replies_whole == replies_replica
    assert whole.snapshot() == replica.snapshot()


def test_snapshot_round_trip() -> None:
    log = Log(KVStateMachine(session_ttl_entries=1000))
    log.apply(op="put", key="a", value={"nested": [1, b"\x00bytes", None, 2.5]}, client="c", seq=1)
    log.apply(op="append", key="l", value=1, client="d", seq=4)
    data = log.kv.snapshot()
    copy = KVStateMachine(session_ttl_entries=1000)
    copy.restore(data)
    assert copy.snapshot() == data
    assert copy.applied_index == 2
    assert copy.query({"op": "mget", "keys": ["a", "l"]}) == log.kv.query(
        {"op": "mget", "keys": ["a", "l"]}
    )
    # Sessions travelled: a retry against the copy is still applied once.
    again = copy.apply(
        3, encode_command({"op": "append", "key": "l", "value": 1, "client": "d", "seq": 4})
    )
    assert again == {"ok": True, "value": [1]}
    assert copy.apply(
        4, encode_command({"op": "put", "key": "a", "value": 0, "client": "c", "seq": 0})
    ) == {
        "ok": False,
        "error": "stale_seq",
    }
    empty = KVStateMachine()
    empty.restore(b"")
    assert len(empty) == 0


def test_restore_refuses_a_foreign_snapshot() -> None:
    kv = KVStateMachine()
    for bad in (b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"format": "other"})):
        with pytest.raises(ValueError):
            kv.restore(bad)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x92\x01",  # truncated array
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"op": "fly"}),
        msgpack.packb({"key": "k"}),
        msgpack.packb({"op": "put", "key": 3.5, "value": 1}),
        msgpack.packb({"op": "put", "key": True, "value": 1}),
        msgpack.packb({"op": "put", "key": [1], "value": 1}),
        msgpack.packb({"op": "put", "key": "k"}),
        msgpack.packb({"op": "cas", "key": "k", "from": 1}),
        msgpack.packb({"op": "mget", "keys": "abc"}),
        msgpack.packb({"op": "mget", "keys": [None]}),
        msgpack.packb({"op": "put", "key": "k", "value": 1, "client": "c"}),
        msgpack.packb({"op": "put", "key": "k", "value": 1, "client": 5, "seq": 1}),
        msgpack.packb({"op": "put", "key": "k", "value": 1, "client": "c", "seq": -1}),
        msgpack.packb({"op": "put", "key": "k", "value": 1, "client": "c", "seq": True}),
        msgpack.packb({"op": "put", "key": "k", "value": msgpack.ExtType(5, b"x")}),
        msgpack.packb({1: "integer keys"}),
        b"\x91" * 5000 + b"\xc0",  # deep nesting
    ],
)
def test_malformed_commands_get_a_malformed_reply(data: bytes) -> None:
    kv = KVStateMachine()
    assert kv.apply(1, data) == {"ok": False, "error": "malformed"}
    after = KVStateMachine()
    after.restore(kv.snapshot())
    assert len(after) == 0 and after.session_count == 0


def test_query_only_answers_reads() -> None:
    kv = KVStateMachine()
    assert kv.query({"op": "put", "key": "k", "value": 1}) == {"ok": False, "error": "malformed"}
    assert kv.query("get") == {"ok": False, "error": "malformed"}  # type: ignore[arg-type]
    assert len(kv) == 0


def test_encode_decode_command() -> None:
    command = {"op": "put", "key": "k", "value": b"\x00\xff", "client": "c", "seq": 1}
    assert decode_command(encode_command(command)) == command
    with pytest.raises(MalformedCommand):
        decode_command(msgpack.packb([1]))
    with pytest.raises(MalformedCommand):
        decode_command(b"\xc1")


def test_same_value_is_exact() -> None:
    assert same_value([1, {"a": b"x"}], [1, {"a": b"x"}])
    assert not same_value([1], [True])
    assert not same_value({"a": 1}, {"a": 1.0})
    assert not same_value(0, None)


# --- properties ------------------------------------------------------------------------------

keys = st.sampled_from(["a", "b", 1])
values = st.one_of(st.integers(-5, 20), st.text(max_size=3), st.none())
commands = st.one_of(
    st.fixed_dictionaries({"op": st.just("put"), "key": keys, "value": values}),
    st.fixed_dictionaries({"op": st.just("append"), "key": keys, "value": values}),
    st.fixed_dictionaries({"op": st.just("delete"), "key": keys}),
    st.fixed_dictionaries({"op": st.just("get"), "key": keys}),
    st.fixed_dictionaries({"op": st.just("mget"), "keys": st.lists(keys, max_size=3)}),
    st.fixed_dictionaries({"op": st.just("cas"), "key": keys, "from": values, "to": values}),
    st.fixed_dictionaries(
        {
            "op": st.just("transfer"),
            "from_key": keys,
            "to_key": keys,
            "amount": st.integers(0, 10),
        }
    ),
)
sessioned = st.tuples(commands, st.sampled_from(["p", "q"]), st.integers(1, 6), st.booleans())


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(sessioned, max_size=40), cut=st.integers(0, 40))
def test_replicas_agree_and_retries_apply_once(
    steps: list[tuple[dict[str, Any], str, int, bool]], cut: int
) -> None:
    """Two replicas (one restored from a snapshot at ``cut``) give the same replies, and a
    log with every sessioned write retried right after itself ends in the same state."""
    once = KVStateMachine(session_ttl_entries=1000)
    twice = KVStateMachine(session_ttl_entries=1000)
    replica = KVStateMachine(session_ttl_entries=1000)
    seqs: dict[str, int] = {}
    index = 0
    for position, (command, client, bump, sessioned_write) in enumerate(steps):
        if sessioned_write:
            seqs[client] = seqs.get(client, 0) + bump
            command = {**command, "client": client, "seq": seqs[client]}
        data = encode_command(command)
        index += 2
        reply = once.apply(index, data)
        assert twice.apply(index - 1, data) == reply
        if "seq" in command:
            assert twice.apply(index, data) == reply  # the retry: the cached reply
        if position == cut:
            fresh = KVStateMachine(session_ttl_entries=1000)
            fresh.restore(replica.snapshot())
            replica = fresh
        assert replica.apply(index, data) == reply
    assert replica.snapshot() == once.snapshot()
    state = {"op": "mget", "keys": ["a", "b", 1]}
    assert twice.query(state) == once.query(state)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    kv = KVStateMachine()
    reply = kv.apply(1, data)
    assert isinstance(reply, dict) and set(reply) in ({"ok", "value"}, {"ok", "error"})


def test_integer_and_bytes_keys_are_distinct_keys_and_survive_a_snapshot() -> None:
    log = Log(KVStateMachine())
    log.apply(op="put", key=1, value="int", client="c", seq=1)
    log.apply(op="put", key="1", value="str", client="c", seq=2)
    log.apply(op="put", key=b"1", value="bytes", client="c", seq=3)
    reply = log.apply(op="mget", keys=[1, "1", b"1", 2])
    assert reply == {"ok": True, "value": {1: "int", "1": "str", b"1": "bytes", 2: None}}
    copy = KVStateMachine()
    copy.restore(log.kv.snapshot())
    assert copy.query({"op": "mget", "keys": [1, "1", b"1"]}) == log.kv.query(
        {"op": "mget", "keys": [1, "1", b"1"]}
    )
