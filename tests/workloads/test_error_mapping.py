"""Every client error code of conventions §3 maps to the right completion type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from workload_fakes import FakeClient, FakeClientError, Fault, MemoryKV

from workloads import make_workload
from workloads.base import OpRequest
from workloads.outcome import (
    ALWAYS_INDEFINITE_CODES,
    DEFINITE_CODES,
    INDEFINITE_CODES,
    error_is_definite,
    outcome_of_error,
)
from workloads.recorder import HistoryRecorder
from workloads.runner import perform_op

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ALL_CODES = sorted(DEFINITE_CODES | INDEFINITE_CODES)

# One write and one read of each workload, and the client call each one makes.
WRITES = {
    "register": OpRequest("write", [0, 3]),
    "set": OpRequest("add", [0, 7]),
    "append": OpRequest("append", [0, 7]),
    "bank": OpRequest("transfer", {"from": 0, "to": 1, "amount": 2}),
}
READS = {
    "register": OpRequest("read", [0, None]),
    "set": OpRequest("read", [0, None]),
    "append": OpRequest("read", [0, None]),
    "bank": OpRequest("read", None),
}


def test_codes_match_the_architecture_contract() -> None:
    """The code tables are those ARCHITECTURE.md lists (definite and indefinite)."""
    text = (PROJECT_ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    match = re.search(r"Client error codes[^:]*: definite (.*?);\s+indefinite (.*?)\.", text, re.S)
    assert match, "ARCHITECTURE.md no longer lists the client error codes"
    # "`not_leader` (with `leader`)": the parenthesis names a field, not a code.
    definite = set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", match.group(1))))
    indefinite = set(re.findall(r"`([a-z_]+)`", match.group(2)))
    assert definite <= DEFINITE_CODES
    assert indefinite <= INDEFINITE_CODES
    assert not DEFINITE_CODES & INDEFINITE_CODES


@pytest.mark.parametrize("code", ALL_CODES)
@pytest.mark.parametrize("definite", [True, False])
def test_the_raft_client_error_maps_by_code_and_flag(code: str, definite: bool) -> None:
    from raftnode.client import ClientError

    error = ClientError(code, definite=definite, leader="n2")
    write = outcome_of_error(error, read=False)
    read = outcome_of_error(error, read=True)
    sound_definite = definite and code not in ALWAYS_INDEFINITE_CODES
    assert write.type == ("fail" if sound_definite else "info")
    assert read.type == "fail"
    assert write.error == read.error == code
    assert write.node is None  # no node named on this error


def test_the_node_that_answered_an_error_is_kept() -> None:
    from raftnode.client import ClientError

    outcome = outcome_of_error(ClientError("timeout", definite=False, node="n4"), read=False)
    assert (outcome.type, outcome.node) == ("info", "n4")


@pytest.mark.parametrize("code", sorted(DEFINITE_CODES))
def test_definite_errors_fail(code: str) -> None:
    for read in (False, True):
        outcome = outcome_of_error(FakeClientError(code, True), read=read, value=[1, 2])
        assert (outcome.type, outcome.error, outcome.value) == ("fail", code, [1, 2])


@pytest.mark.parametrize("code", sorted(INDEFINITE_CODES))
def test_indefinite_errors_are_info_for_writes_and_fail_for_reads(code: str) -> None:
    assert outcome_of_error(FakeClientError(code, False), read=False).type == "info"
    assert outcome_of_error(FakeClientError(code, False), read=True).type == "fail"


@pytest.mark.parametrize("code", sorted(ALWAYS_INDEFINITE_CODES))
def test_an_unknown_outcome_code_stays_indefinite_even_if_flagged_definite(code: str) -> None:
    # A fail for a write that may have happened would be unsound; info is always safe.
    error = FakeClientError(code, True)
    assert not error_is_definite(error)
    assert outcome_of_error(error, read=False).type == "info"


def test_connection_lost_follows_the_flag() -> None:
    """raftnode.client: connection_lost is definite only when nothing was sent."""
    assert outcome_of_error(FakeClientError("connection_lost", True), read=False).type == "fail"
    assert outcome_of_error(FakeClientError("connection_lost", False), read=False).type == "info"


def test_unknown_codes_follow_the_definite_flag() -> None:
    assert outcome_of_error(FakeClientError("weird", True), read=False).type == "fail"
    assert outcome_of_error(FakeClientError("weird", False), read=False).type == "info"


def test_a_non_client_exception_is_info_for_writes() -> None:
    outcome = outcome_of_error(RuntimeError("bug"), read=False)
    assert (outcome.type, outcome.error) == ("info", "exception:RuntimeError")
    assert outcome_of_error(KeyError("x"), read=True).type == "fail"


@pytest.mark.parametrize("workload_name", sorted(WRITES))
@pytest.mark.parametrize("code", ALL_CODES)
async def test_each_workload_records_each_code(workload_name: str, code: str) -> None:
    """Through the real workload invoke and the recorder: one invoke, one completion."""
    definite = code in DEFINITE_CODES
    for request, is_read in ((WRITES[workload_name], False), (READS[workload_name], True)):
        kv = MemoryKV()
        client = FakeClient(
            kv,
            client_id="c",
            decide=lambda *_: Fault(FakeClientError(code, definite)),  # noqa: B023
        )
        recorder = HistoryRecorder()
        async with client:
            completion = await perform_op(
                make_workload(workload_name), client, recorder, 0, request
            )
        expected = "fail" if definite or is_read else "info"
        assert completion.type == expected, (workload_name, request.f, code)
        assert completion.error == code
        assert completion.f == request.f
        assert [op.type for op in recorder.ops] == ["invoke", expected]
        assert recorder.in_flight() == []


async def test_ok_completions_carry_the_result_and_the_answering_node() -> None:
    kv = MemoryKV({"r0": 4})
    client = FakeClient(kv, client_id="c", node="n2")
    recorder = HistoryRecorder()
    async with client:
        read = await perform_op(
            make_workload("register"), client, recorder, 3, OpRequest("read", [0, None])
        )
        cas = await perform_op(
            make_workload("register"), client, recorder, 3, OpRequest("cas", [0, [4, 1]])
        )
        mismatch = await perform_op(
            make_workload("register"), client, recorder, 3, OpRequest("cas", [0, [4, 2]])
        )
    assert (read.type, read.value, read.node) == ("ok", [0, 4], "n2")
    assert (cas.type, cas.value) == ("ok", [0, [4, 1]])
    assert (mismatch.type, mismatch.error, mismatch.value) == ("fail", "cas_mismatch", [0, [4, 2]])
    assert kv.data["r0"] == 1


async def test_bank_insufficient_funds_is_a_definite_fail() -> None:
    kv = MemoryKV({"acct0": 1, "acct1": 0})
    client = FakeClient(kv, client_id="c")
    recorder = HistoryRecorder()
    async with client:
        completion = await perform_op(
            make_workload("bank"),
            client,
            recorder,
            0,
            OpRequest("transfer", {"from": 0, "to": 1, "amount": 2}),
        )
    assert (completion.type, completion.error) == ("fail", "insufficient_funds")
    assert kv.data == {"acct0": 1, "acct1": 0}


def test_the_raft_client_satisfies_the_workload_client_protocol() -> None:
    """Structurally: every call a workload makes binds to RaftClient's method."""
    import inspect

    from raftnode.client import RaftClient

    calls = {
        "get": ("k",),
        "put": ("k", 1),
        "cas": ("k", 1, 2),
        "append": ("k", 1),
        "transfer": ("a", "b", 3),
        "mget": (["a", "b"],),
    }
    for name, args in calls.items():
        method = getattr(RaftClient, name)
        assert inspect.iscoroutinefunction(method), name
        inspect.signature(method).bind(object(), *args)  # raises TypeError on a mismatch
    assert hasattr(RaftClient, "__aenter__") and hasattr(RaftClient, "__aexit__")
