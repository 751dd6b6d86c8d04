"""The linearizability search: Knossos' semantics, components, budgets, explanations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checker.history import HistoryError, read_history, to_jsonable
from checker.importers import read_jepsen_log
from checker.linearizable import PRUNINGS, check
from checker.models import MODELS
from checker.op import Op
from checker.results import merge, normalize, worst


class History:
    """Builds a history op by op: ``h.invoke(0, "write", 1); h.ok(0, "write", 1)``."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def add(
        self, process: int | str, type: str, f: str, value: Any = None, error: Any = None
    ) -> int:  # noqa: A002
        index = len(self.ops)
        self.ops.append(Op(index, index * 10, type, process, f, value, error))
        return index

    def invoke(self, process: int | str, f: str, value: Any = None) -> int:
        return self.add(process, "invoke", f, value)

    def ok(self, process: int | str, f: str, value: Any = None) -> int:
        return self.add(process, "ok", f, value)

    def fail(self, process: int | str, f: str, value: Any = None, error: Any = None) -> int:
        return self.add(process, "fail", f, value, error)

    def info(self, process: int | str, f: str, value: Any = None) -> int:
        return self.add(process, "info", f, value)

    def call(self, process: int | str, f: str, invoke_value: Any, ok_value: Any = None) -> None:
        """An op with no concurrency: invoke then ok at once."""
        self.invoke(process, f, invoke_value)
        self.ok(process, f, invoke_value if ok_value is None else ok_value)


def test_empty_and_sequential_histories_are_valid() -> None:
    assert check([], "register")["valid"] is True
    h = History()
    h.call(0, "write", 1)
    h.call(1, "read", None, 1)
    h.call(0, "cas", [1, 2])
    h.call(1, "read", None, 2)
    result = check(h.ops, "cas-register")
    assert result["valid"] is True
    assert result["op_count"] == 4
    assert "failures" not in result


def test_concurrent_ops_may_take_effect_in_any_order_within_their_intervals() -> None:
    h = History()
    h.invoke(0, "write", 1)
    h.invoke(1, "write", 2)
    h.invoke(2, "read", None)
    h.ok(2, "read", 1)  # write 1 came last so far...
    h.ok(0, "write", 1)
    h.ok(1, "write", 2)
    h.call(2, "read", None, 2)  # ...but write 2 may come after that read
    assert check(h.ops, "register")["valid"] is True


def test_a_stale_read_is_invalid_and_explained() -> None:
    h = History()
    h.call(0, "write", 1)
    h.call(0, "write", 2)
    h.invoke(1, "write", 3)
    read = h.invoke(2, "read", None)
    h.ok(2, "read", 1)  # 1 was overwritten by 2 before this read began
    h.ok(1, "write", 3)
    result = check(h.ops, "register")
    assert result["valid"] is False
    [failure] = result["failures"]
    assert failure["key"] is None
    assert failure["op"]["index"] == read
    assert failure["op"]["value"] == 1
    assert failure["op"]["completion_index"] == read + 1
    assert sorted(failure["states"]) == [2, 3]  # after write 2, with or without write 3
    assert [op["index"] for op in failure["concurrent"]] == [4]  # the write of 3
    assert failure["linearized"][:2] == [0, 2]
    assert failure["previous_ok"]["f"] == "write"
    for partial in failure["partial_linearizations"]:
        assert partial["state"] in (2, 3)
        assert partial["steps"][-1]["state"] == partial["state"]
    assert failure["window"] == [4, 7]
    json.dumps(to_jsonable(result))  # results.json-ready


def test_info_ops_may_take_effect_later_or_never() -> None:
    h = History()
    h.invoke(0, "write", 5)
    h.info(0, "write", 5)  # timed out
    h.call(1, "read", None, None)
    h.call(1, "read", None, 5)  # took effect after all, long after its invoke
    assert check(h.ops, "register")["valid"] is True

    never = History()
    never.call(1, "write", 1)
    never.invoke(0, "write", 5)
    never.info(0, "write", 5)
    never.call(1, "read", None, 1)  # never took effect: fine
    assert check(never.ops, "register")["valid"] is True

    too_early = History()
    too_early.call(1, "read", None, 5)  # sees 5 before anyone tried to write it
    too_early.invoke(0, "write", 5)
    too_early.info(0, "write", 5)
    assert check(too_early.ops, "register")["valid"] is False


def test_an_invoke_never_completed_counts_as_info() -> None:
    h = History()
    h.invoke(0, "write", 7)
    h.call(1, "read", None, 7)
    assert check(h.ops, "register")["valid"] is True
    h.call(1, "read", None, 8)
    assert check(h.ops, "register")["valid"] is False


def test_failed_ops_never_happened() -> None:
    h = History()
    h.call(0, "write", 1)
    h.invoke(1, "write", 2)
    h.fail(1, "write", 2)
    h.call(0, "read", None, 2)
    result = check(h.ops, "register")
    assert result["valid"] is False
    assert result["dropped"]["fail"] == 1
    h2 = History()
    h2.call(0, "write", 1)
    h2.invoke(1, "cas", [1, 3])
    h2.fail(1, "cas", [1, 3], error="cas_mismatch")
    h2.call(0, "read", None, 1)
    assert check(h2.ops, "cas-register")["valid"] is True  # Knossos drops it...
    assert check(h2.ops, "etcd")["valid"] is False  # ...the etcd model reads it: value was 1


def test_nemesis_ops_are_ignored_and_maps_are_accepted() -> None:
    ops = [
        {"index": 0, "time": 0, "type": "invoke", "process": 0, "f": "write", "value": 1},
        {"index": 1, "time": 1, "type": "info", "process": "nemesis", "f": "start-partition"},
        {"index": 2, "time": 2, "type": "ok", "process": 0, "f": "write", "value": 1},
        {"index": 3, "time": 3, "type": "info", "process": "nemesis", "f": "stop-partition"},
        {"index": 4, "time": 4, "type": "invoke", "process": 1, "f": "read", "value": None},
        {"index": 5, "time": 5, "type": "ok", "process": 1, "f": "read", "value": 1},
    ]
    result = check(ops, MODELS["register"])
    assert result["valid"] is True
    assert result["op_count"] == 2


def test_input_errors_are_reported_as_such() -> None:
    h = History()
    h.invoke(0, "write", 1)
    h.invoke(0, "write", 2)  # two outstanding ops on process 0
    with pytest.raises(HistoryError, match="outstanding"):
        check(h.ops, "register")
    orphan = History()
    orphan.ok(0, "write", 1)
    with pytest.raises(HistoryError, match="no outstanding invoke"):
        check(orphan.ops, "register")
    mismatch = History()
    mismatch.invoke(0, "write", 1)
    mismatch.ok(0, "read", 1)
    with pytest.raises(HistoryError, match="same function"):
        check(mismatch.ops, "register")
    unknown_f = History()
    unknown_f.call(0, "frobnicate", 1)
    with pytest.raises(HistoryError, match="no operation 'frobnicate'"):
        check(unknown_f.ops, "register")
    with pytest.raises(ValueError, match="unknown model"):
        check([], "no-such-model")


def keyed_history() -> History:
    """Key "a" is linearizable, key "b" is not (a stale read)."""
    h = History()
    h.call(0, "write", ["a", 1])
    h.call(0, "write", ["b", 1])
    h.call(0, "write", ["b", 2])
    h.invoke(1, "read", ["a", None])
    h.invoke(2, "read", ["b", None])
    h.ok(1, "read", ["a", 1])
    h.ok(2, "read", ["b", 1])
    h.invoke(3, "cas", ["a", [1, 4]])
    h.ok(3, "cas", ["a", [1, 4]])
    return h


def test_independent_keys_are_checked_apart() -> None:
    result = check(keyed_history().ops, "cas-register")
    assert result["independent"] is True
    assert result["component_count"] == 2
    assert result["valid"] is False
    assert [failure["key"] for failure in result["failures"]] == ["b"]
    assert result["failures"][0]["op"]["value"] == 1  # the value inside the tuple
    assert check(keyed_history().ops[:6], "cas-register")["valid"] is True  # key a alone


def test_plain_cas_histories_are_not_mistaken_for_keyed_ones() -> None:
    h = History()
    h.call(0, "cas", [None, 1])
    h.call(1, "cas", [1, 2])
    result = check(h.ops, "cas-register")
    assert result["independent"] is False
    assert result["valid"] is True
    with pytest.raises(HistoryError, match="cas value"):  # as keyed: [key, 1] is no cas
        check(h.ops, "cas-register", independent=True)


def test_all_components_explains_every_invalid_key() -> None:
    h = keyed_history()
    h.call(4, "write", ["c", 1])
    h.call(4, "read", ["c", None], ["c", 2])
    first = check(h.ops, "cas-register")
    assert first["valid"] is False
    every = check(h.ops, "cas-register", all_components=True)
    assert sorted(failure["key"] for failure in every["failures"]) == ["b", "c"]


def test_multi_register_keys_form_components() -> None:
    h = History()
    h.call(0, "txn", [["write", "x", 1], ["write", "y", 1]])
    h.call(1, "txn", [["read", "y", 1], ["write", "z", 2]])
    h.call(2, "txn", [["write", "w", 5]])
    h.call(2, "txn", [["read", "w", 5]])
    result = check(h.ops, "multi-register")
    assert result["valid"] is True
    assert result["component_count"] == 2  # {x, y, z} and {w}
    h.call(0, "txn", [["read", "x", 1], ["read", "z", 3]])
    bad = check(h.ops, "multi-register")
    assert bad["valid"] is False
    assert bad["failures"][0]["key"] == ["x", "y", "z"]
    assert check(h.ops, "multi-register", decompose=False)["valid"] is False


def test_initial_values() -> None:
    h = History()
    h.call(0, "read", None, 3)
    assert check(h.ops, "register")["valid"] is False
    assert check(h.ops, "register", init=3)["valid"] is True
    m = History()
    m.call(0, "txn", [["read", "x", 0], ["read", "y", 0]])
    assert check(m.ops, "multi-register", init={"x": 0, "y": 0})["valid"] is True
    assert check(m.ops, "multi-register")["valid"] is False


def wide_history(writers: int = 12) -> list[Op]:
    """Many concurrent writes, then a read of a value nobody wrote: a large search space."""
    h = History()
    for process in range(writers):
        h.invoke(process, "write", process)
    for process in range(writers):
        h.ok(process, "write", process)
    h.call(writers, "read", None, -1)
    return h.ops


def test_budgets_end_in_unknown_never_in_a_guess() -> None:
    assert check(wide_history(), "register")["valid"] is False
    # A read of a value nobody wrote is refuted before any search, whatever the budget.
    assert check(wide_history(), "register", max_configs=200)["valid"] is False
    # (Without "unseen-writes" too: no read sees the writes, which that pruning collapses.)
    searching = [name for name in PRUNINGS if name not in ("impossible-reads", "unseen-writes")]
    by_memory = check(wide_history(), "register", max_configs=200, prunings=searching)
    assert by_memory["valid"] == "unknown"
    assert "memory limit" in by_memory["error"]
    by_time = check(wide_history(), "register", time_limit=0, prunings=searching)
    assert by_time["valid"] == "unknown"
    assert "time limit" in by_time["error"]
    assert by_time["unknown_keys"] == [None]


def test_identical_concurrent_ops_do_not_multiply_the_search() -> None:
    h = History()
    for process in range(16):
        h.invoke(process, "write", 1)
    for process in range(16):
        h.ok(process, "write", 1)
    h.call(16, "read", None, 2)
    result = check(h.ops, "register")
    assert result["valid"] is False
    assert result["configs"] < 100  # without the symmetry rule: 2**16 subsets


ETCD_LOG = """\
INFO  jepsen.util - 0	:invoke	:write	1
INFO  jepsen.util - 0	:ok	:write	1
INFO  jepsen.util - 1	:invoke	:cas	[1 2]
INFO  jepsen.util - 1	:fail	:cas	[1 2]
INFO  jepsen.util - 2	:invoke	:read	nil
INFO  jepsen.util - 2	:ok	:read	1
""".splitlines()


def test_etcd_semantics_through_the_importer() -> None:
    # The cas failed, so the value was not 1 at that moment; yet it was 1 before and after.
    assert check(read_jepsen_log(ETCD_LOG), "etcd")["valid"] is False
    timed_out = [line.replace(":fail\t:cas\t[1 2]", ":info\t:cas\t:timed-out") for line in ETCD_LOG]
    assert check(read_jepsen_log(timed_out), "etcd")["valid"] is True
    absent = [
        "INFO  jepsen.util - 0\t:invoke\t:write\t1",
        "INFO  jepsen.util - 0\t:ok\t:write\t1",
        "INFO  jepsen.util - 1\t:invoke\t:read\tnil",
        "INFO  jepsen.util - 1\t:ok\t:read\tnil",
    ]
    assert check(read_jepsen_log(absent), "etcd")["valid"] is False  # nil: the key was absent
    assert check(read_jepsen_log(absent), "cas-register")["valid"] is True  # Knossos: nothing
    read_timeout = [*absent[:2], "INFO  jepsen.util - 1\t:invoke\t:read\tnil"]
    read_timeout.append("INFO  jepsen.util - 1\t:fail\t:read\t:timed-out")
    assert check(read_jepsen_log(read_timeout), "etcd")["valid"] is True


def test_results_merge_takes_the_worst() -> None:
    assert merge([{"valid": True}, {"valid": "unknown"}])["valid"] == "unknown"
    assert merge([{"valid": True}, {"valid": False}, {"valid": "unknown"}])["valid"] is False
    assert merge([{"valid": True}, {"valid": True}])["valid"] is True
    assert merge([])["valid"] == "unknown"
    assert merge([{"valid": None}])["valid"] == "unknown"
    assert worst([True, True]) is True
    assert normalize("yes") == "unknown"


def test_kv_keys_may_be_tuples_and_start_from_their_initial_values() -> None:
    h = History()
    h.call(0, "get", [[1, 2], None], [[1, 2], "v"])
    h.call(0, "append", [[1, 2], "w"])
    h.call(0, "get", [[1, 2], None], [[1, 2], "vw"])
    assert check(h.ops, "kv", init={(1, 2): "v"})["valid"] is True
    assert check(h.ops, "kv")["valid"] is False
    assert check(h.ops, "kv", init={(1, 2): "v"}, decompose=False)["valid"] is True


def test_an_invalid_key_stops_the_search_of_the_others() -> None:
    h = History()
    h.call(0, "write", ["bad", 1])
    h.call(0, "read", ["bad", None], ["bad", 2])
    # A valid key with a large search space: write 1 must come last of twelve.
    for process in range(1, 13):
        h.invoke(process, "write", ["wide", process])
    for process in range(1, 13):
        h.ok(process, "write", ["wide", process])
    h.call(0, "read", ["wide", None], ["wide", 1])
    # (Without "unseen-writes": no read sees writes 2..12, which that pruning collapses.)
    wide = [name for name in PRUNINGS if name != "unseen-writes"]
    result = check(h.ops, "cas-register", prunings=wide)
    assert result["valid"] is False
    assert [failure["key"] for failure in result["failures"]] == ["bad"]
    assert result["skipped_keys"] == ["wide"]
    assert "unknown_keys" not in result
    every = check(h.ops, "cas-register", all_components=True, prunings=wide)
    assert every["valid"] is False
    assert "skipped_keys" not in every
    assert every["configs"] > result["configs"]


def test_a_value_no_get_sees_is_forgotten_until_a_put_replaces_it() -> None:
    # After "a" no get can hold by appends alone (the search forgets the value), but the
    # put can come between.
    h = History()
    h.call(0, "append", ["k", "a"])
    h.invoke(1, "put", ["k", "b"])
    h.invoke(2, "get", ["k", None])
    h.ok(1, "put", ["k", "b"])
    h.ok(2, "get", ["k", "b"])
    assert check(h.ops, "kv")["valid"] is True
    # The same get once the put is over and an append came after it: "ba" only.
    h.call(0, "append", ["k", "a"])
    h.call(2, "get", ["k", None], ["k", "b"])
    assert check(h.ops, "kv")["valid"] is False
    assert check(h.ops, "kv", decompose=False)["valid"] is False


def _erased_appends(count: int, last_read: str) -> History:
    """``count`` concurrent appends that a put erases before any get sees them, then gets."""
    h = History()
    for process in range(count):
        h.invoke(process, "append", ["k", f"<{process}>"])
    h.invoke(count, "put", ["k", "P"])
    for process in range(count):
        h.ok(process, "append", ["k", f"<{process}>"])
    h.ok(count, "put", ["k", "P"])
    h.call(count, "get", ["k", None], ["k", "P"])
    h.call(count, "get", ["k", None], ["k", last_read])
    return h


def test_orders_of_appends_no_get_sees_make_one_configuration() -> None:
    # Each order of the eight appends is a different string, but none is the start of
    # what a get sees: the search keeps one configuration per set of appends, not per
    # order (8! orders), and still finds the impossible last read.
    valid = check(_erased_appends(8, "P").ops, "kv")
    assert valid["valid"] is True
    invalid = check(_erased_appends(8, "Q").ops, "kv", all_components=True)
    assert invalid["valid"] is False
    assert invalid["configs"] < 2**8 * 4
    assert invalid["failures"][0]["op"]["value"] == ["k", "Q"]
    assert check(_erased_appends(5, "Q").ops, "kv", decompose=False)["valid"] is False


PORCUPINE_KV = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "porcupine" / "kv"


@pytest.mark.skipif(
    not (PORCUPINE_KV / "c50-bad.txt").is_file(),
    reason=f"Porcupine's kv corpus is absent (expected {PORCUPINE_KV / 'c50-bad.txt'})",
)
def test_every_key_of_porcupine_c50_bad_is_decided() -> None:
    # Three of its keys alone ran out of five million configurations before the search
    # forgot the values no get sees (appends a put erases in every order).
    ops = read_history(PORCUPINE_KV / "c50-bad.txt", "porcupine-kv")
    result = check(ops, "kv", all_components=True)
    assert result["valid"] is False
    assert "unknown_keys" not in result
    assert len(result["failures"]) == result["component_count"] == 10
    assert result["configs"] < 200_000
