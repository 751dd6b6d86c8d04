"""The set and bank checkers on crafted histories, and end to end over an in-memory KV."""

from __future__ import annotations

import random
import zlib
from typing import Any

import trio
import trio.testing
from workload_fakes import FakeClientError, FakeFactory, Fault, MemoryKV

from checker.op import Op
from workloads import make_workload
from workloads.bank import check_bank
from workloads.recorder import HistoryRecorder
from workloads.runner import run_final_ops, run_workload
from workloads.set import check_set

NODES = ["n1", "n2", "n3"]


def history(*steps: tuple[Any, ...]) -> list[Op]:
    """(process, type, f, value[, error]) tuples → ops with indexes and times."""
    ops = []
    for index, step in enumerate(steps):
        process, op_type, f, value, *error = step
        ops.append(Op(index, index * 1000, op_type, process, f, value, error[0] if error else None))
    return ops


def add(process: int, key: int, element: int, outcome: str) -> list[tuple[Any, ...]]:
    return [(process, "invoke", "add", [key, element]), (process, outcome, "add", [key, element])]


def final_read(process: int, key: int, elements: list[int] | None) -> list[tuple[Any, ...]]:
    return [(process, "invoke", "read", [key, None]), (process, "ok", "read", [key, elements])]


# ---- set ------------------------------------------------------------------------------


def test_set_all_acknowledged_adds_read_is_valid() -> None:
    result = check_set(
        history(
            *add(0, 0, 1, "ok"),
            *add(1, 0, 2, "ok"),
            *add(2, 1, 3, "info"),  # indeterminate and absent: fine
            *add(3, 1, 4, "fail"),
            ("nemesis", "info", "start-partition", "one"),
            *final_read(9, 0, [2, 1]),
            *final_read(10, 1, None),  # absent key reads as empty
        )
    )
    assert result["valid"] is True
    assert (result["attempt_count"], result["acknowledged_count"]) == (4, 2)
    assert result["lost"] == [] and result["unexpected"] == [] and result["recovered"] == []


def test_set_reports_lost_elements() -> None:
    result = check_set(history(*add(0, 0, 1, "ok"), *add(1, 0, 2, "ok"), *final_read(9, 0, [2])))
    assert result["valid"] is False
    assert result["lost"] == [1] and result["lost_count"] == 1
    assert "missing" in result["explanation"]


def test_set_reports_unexpected_elements() -> None:
    result = check_set(history(*add(0, 0, 1, "ok"), *final_read(9, 0, [1, 99])))
    assert result["valid"] is False
    assert result["unexpected"] == [99]


def test_set_an_element_read_under_the_wrong_key_is_unexpected() -> None:
    result = check_set(
        history(*add(0, 0, 1, "ok"), *final_read(9, 0, [1]), *final_read(10, 1, [1]))
    )
    assert result["valid"] is False and result["unexpected"] == [1]


def test_set_recovered_infos_are_reported_but_valid() -> None:
    result = check_set(
        history(*add(0, 0, 1, "info"), *add(1, 0, 2, "ok"), *final_read(9, 0, [1, 2]))
    )
    assert result["valid"] is True
    assert result["recovered"] == [1] and result["recovered_count"] == 1


def test_set_an_unfinished_add_counts_as_indeterminate() -> None:
    result = check_set(history((0, "invoke", "add", [0, 5]), *final_read(9, 0, [5])))
    assert result["valid"] is True and result["recovered"] == [5]


def test_set_a_failed_add_that_is_present_is_invalid() -> None:
    result = check_set(history(*add(0, 0, 1, "fail"), *final_read(9, 0, [1])))
    assert result["valid"] is False and result["failed_present"] == [1]


def test_set_a_duplicated_element_is_invalid() -> None:
    result = check_set(history(*add(0, 0, 1, "ok"), *final_read(9, 0, [1, 1])))
    assert result["valid"] is False and result["duplicated"] == [1]


def test_set_without_a_final_read_is_unknown() -> None:
    result = check_set(
        history(
            *add(0, 0, 1, "ok"),
            *add(1, 1, 2, "ok"),
            *final_read(9, 0, [1]),
            (10, "invoke", "read", [1, None]),
            (10, "fail", "read", [1, None], "timeout"),
        )
    )
    assert result["valid"] == "unknown"
    assert result["unread_keys"] == [1]


def test_set_the_last_ok_read_of_a_key_is_the_final_one() -> None:
    result = check_set(
        history(*add(0, 0, 1, "ok"), *final_read(9, 0, [9]), *final_read(10, 0, [1]))
    )
    # An earlier read is superseded ... (here it would have shown 9, unexpected).
    assert result["valid"] is True


def test_set_an_add_acknowledged_after_the_read_began_is_not_lost() -> None:
    result = check_set(
        history(
            (0, "invoke", "add", [0, 1]),
            (9, "invoke", "read", [0, None]),
            (0, "ok", "add", [0, 1]),
            (9, "ok", "read", [0, []]),
        )
    )
    assert result["valid"] is True and result["acknowledged_after_read"] == 1


def test_set_a_malformed_history_makes_the_workload_check_unknown() -> None:
    result = make_workload("set").check(history((0, "invoke", "add", "not a pair")))
    assert result["valid"] == "unknown"
    assert "raised" in result["checkers"]["set"]["error"]


# ---- bank -----------------------------------------------------------------------------


def read(process: int, balances: Any) -> list[tuple[Any, ...]]:
    return [(process, "invoke", "read", None), (process, "ok", "read", balances)]


def test_bank_reads_with_the_total_are_valid() -> None:
    result = check_bank(
        history(
            *read(0, {0: 10, 1: 10}),
            (1, "invoke", "transfer", {"from": 0, "to": 1, "amount": 3}),
            (1, "ok", "transfer", {"from": 0, "to": 1, "amount": 3}),
            *read(0, {"0": 7, "1": 13}),  # string keys: as read back from JSON
        ),
        accounts=2,
        total=20,
    )
    assert result["valid"] is True and result["read_count"] == 2


def test_bank_a_changed_total_is_invalid() -> None:
    result = check_bank(
        history(*read(0, {0: 10, 1: 10}), *read(1, {0: 7, 1: 10})), accounts=2, total=20
    )
    assert result["valid"] is False
    assert result["wrong_total_count"] == 1
    assert result["first_bad_reads"][0]["index"] == 3
    assert "total 17 instead of 20" in result["first_bad_reads"][0]["problems"][0]


def test_bank_a_negative_balance_is_invalid() -> None:
    result = check_bank(history(*read(0, {0: -2, 1: 22})), accounts=2, total=20)
    assert result["valid"] is False and result["negative_count"] == 1


def test_bank_a_missing_account_is_invalid() -> None:
    result = check_bank(history(*read(0, {0: 20, 1: None})), accounts=2, total=20)
    assert result["valid"] is False and result["incomplete_count"] == 1
    result = check_bank(history(*read(0, {0: 20})), accounts=2, total=20)
    assert result["valid"] is False and result["incomplete_count"] == 1


def test_bank_failed_reads_are_ignored_and_no_read_is_unknown() -> None:
    result = check_bank(
        history((0, "invoke", "read", None), (0, "fail", "read", None, "timeout")),
        accounts=2,
        total=20,
    )
    assert result["valid"] == "unknown"


# ---- end to end over an in-memory KV ------------------------------------------------


async def run_with_final_reads(name: str, kv: MemoryKV, decide: Any = None) -> dict[str, Any]:
    workload = make_workload(name)
    recorder = HistoryRecorder()
    factory = FakeFactory(kv, latency=0.01, decide=decide)
    await run_workload(
        workload,
        factory,
        recorder,
        concurrency="2n",
        rate=100,
        time_limit=20,
        rng=random.Random(11),
        nodes=NODES,
    )
    factory.decide = None  # healed
    await run_final_ops(workload, factory, recorder, nodes=NODES)
    return workload.check(recorder.ops)


def timeouts_that_apply(client_id: str, op: str, args: tuple) -> Fault | None:
    # Every 7th write times out after it took effect: info, a process retired.
    if op in ("append", "transfer") and zlib.crc32(repr((client_id, args)).encode()) % 7 == 0:
        return Fault(FakeClientError("timeout", False), applied=True)
    return None


async def test_set_end_to_end_valid(autojump_clock: trio.testing.MockClock) -> None:
    result = await run_with_final_reads("set", MemoryKV(), timeouts_that_apply)
    assert result["valid"] is True, result
    set_result = result["checkers"]["set"]
    assert set_result["acknowledged_count"] > 1000
    assert set_result["recovered_count"] > 0  # the applied timeouts are found


async def test_set_end_to_end_catches_lost_adds(autojump_clock: trio.testing.MockClock) -> None:
    result = await run_with_final_reads("set", MemoryKV(lose_appends=True))
    assert result["valid"] is False
    assert result["checkers"]["set"]["lost_count"] > 1000


async def test_bank_end_to_end_valid(autojump_clock: trio.testing.MockClock) -> None:
    result = await run_with_final_reads("bank", MemoryKV(), timeouts_that_apply)
    assert result["valid"] is True, result
    assert result["checkers"]["bank"]["read_count"] > 500


async def test_bank_end_to_end_catches_a_changed_total(
    autojump_clock: trio.testing.MockClock,
) -> None:
    kv = MemoryKV()

    def leak_money(client_id: str, op: str, args: tuple) -> Fault | None:
        if op == "transfer" and args[2] == 5:  # a planted bug: a 5-transfer debits only
            kv.data[args[0]] -= 5
            return Fault(FakeClientError("not_leader", True))
        return None

    result = await run_with_final_reads("bank", kv, leak_money)
    assert result["valid"] is False
    assert result["checkers"]["bank"]["wrong_total_count"] > 0
