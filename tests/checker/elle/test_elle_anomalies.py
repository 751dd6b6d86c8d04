"""Each anomaly kind built by hand: the checker names it and shows its cycle.

Histories are written as events in history order: (type, process, micro-ops). Txn names
are ``T<index of the completion op>``.
"""

from __future__ import annotations

from typing import Any

import pytest

from checker.elle import check
from checker.elle.anomalies import boundary, cycle_type, forbidden_anomalies
from checker.history import Op


def ops_of(*events: tuple[str, int, list[list[Any]]]) -> list[Op]:
    return [
        Op(index=i, time=i * 1000, type=t, process=p, f="txn", value=v)
        for i, (t, p, v) in enumerate(events)
    ]


def serial(*txns: tuple[int, list[list[Any]]]) -> list[Op]:
    """Txns one after another; each (process, completed micro-ops); invokes blank reads."""
    events: list[tuple[str, int, list[list[Any]]]] = []
    for process, mops in txns:
        invoke = [[f, k, None if f == "r" else v] for f, k, v in mops]
        events += [("invoke", process, invoke), ("ok", process, mops)]
    return ops_of(*events)


def concurrent(*txns: tuple[int, list[list[Any]]]) -> list[Op]:
    """All txns invoked first, then all completed: no real-time order among them."""
    invokes = [
        ("invoke", p, [[f, k, None if f == "r" else v] for f, k, v in mops]) for p, mops in txns
    ]
    return ops_of(*invokes, *[("ok", p, mops) for p, mops in txns])


def cycle_of(result: dict[str, Any], kind: str) -> tuple[list[str], list[str]]:
    case = result["anomalies"][kind][0]
    return case["cycle"], [step["type"] for step in case["steps"]]


def assert_rotation(cycle: list[str], expected: list[str]) -> None:
    """A cycle [a, b, c, a] equals the expected one up to where it starts."""
    body = cycle[:-1]
    assert cycle[0] == cycle[-1]
    assert sorted(body) == sorted(expected)
    start = body.index(expected[0])
    assert body[start:] + body[:start] == expected


# --------------------------------------------------------------------------- list-append


def test_g0_write_cycle() -> None:
    # T2 and T3 both append to x and y; x shows T2 first, y shows T3 first.
    history = concurrent(
        (0, [["append", "x", 1], ["append", "y", 1]]),
        (1, [["append", "x", 2], ["append", "y", 2]]),
        (2, [["r", "x", [1, 2]], ["r", "y", [2, 1]]]),
    )
    result = check(history, "list-append", consistency_model="read-uncommitted")
    assert result["valid"] is False
    assert "G0" in result["anomaly-types"]
    cycle, kinds = cycle_of(result, "G0")
    assert_rotation(cycle, ["T3", "T4"])
    assert kinds == ["ww", "ww"]
    assert "read-uncommitted" in result["not"]
    texts = [s["text"] for s in result["anomalies"]["G0"][0]["steps"]]
    assert any("T4 appended 2 to x right after T3's append of 1" in t for t in texts)


def test_g1c_circular_information_flow() -> None:
    # T3 appends x=1 and reads y=[2]; T4 reads x=[1] and appends y=2.
    history = concurrent(
        (0, [["append", "x", 1], ["r", "y", [2]]]),
        (1, [["r", "x", [1]], ["append", "y", 2]]),
    )
    result = check(history, "list-append", consistency_model="read-committed")
    assert result["valid"] is False
    cycle, kinds = cycle_of(result, "G1c")
    assert_rotation(cycle, ["T2", "T3"])
    assert kinds == ["wr", "wr"]
    assert result["not"] == ["read-committed"]


def test_g_single_read_skew() -> None:
    # T2 sees x before T3's append but y after it.
    history = concurrent(
        (0, [["r", "x", []], ["r", "y", [1]]]),
        (1, [["append", "x", 1], ["append", "y", 1]]),
        (2, [["r", "x", [1]]]),
    )
    result = check(history, "list-append", consistency_model="snapshot-isolation")
    assert result["valid"] is False
    cycle, kinds = cycle_of(result, "G-single")
    assert_rotation(cycle, ["T3", "T4"])
    assert sorted(kinds) == ["rw", "wr"]
    rw = next(s for s in result["anomalies"]["G-single"][0]["steps"] if s["type"] == "rw")
    assert rw["text"].startswith("T3 read x = [] (the initial state) without T4's append of 1")
    assert rw["text"].endswith("T3 rw→ T4")
    assert "snapshot-isolation" in result["not"]


def test_g2_item_write_skew_is_allowed_by_snapshot_isolation() -> None:
    history = concurrent(
        (0, [["r", "x", []], ["append", "y", 1]]),
        (1, [["r", "y", []], ["append", "x", 1]]),
        (2, [["r", "x", [1]], ["r", "y", [1]]]),
    )
    si = check(history, "list-append", consistency_model="snapshot-isolation")
    assert si["valid"] is True
    cycle, kinds = cycle_of(si, "G2-item")
    assert_rotation(cycle, ["T3", "T4"])
    assert kinds == ["rw", "rw"]
    assert "snapshot-isolation" in si["possible"]
    serializable = check(history, "list-append", consistency_model="serializable")
    assert serializable["valid"] is False
    assert serializable["not"] == ["repeatable-read"]
    assert "serializable" in serializable["also-not"]


def test_rw_edge_in_the_issues_words() -> None:
    # T read x = [1 2] without the append of 3, which a later read saw after 2.
    history = serial(
        (0, [["append", "x", 1], ["append", "x", 2]]),
        (1, [["r", "x", [1, 2]], ["append", "y", 9]]),
        (2, [["append", "x", 3], ["r", "y", []]]),
        (3, [["r", "x", [1, 2, 3]]]),
    )
    result = check(history, "list-append", consistency_model="serializable")
    assert result["valid"] is False
    steps = result["anomalies"]["G2-item"][0]["steps"]
    texts = {s["type"]: s["text"] for s in steps}
    assert texts["rw"] in (
        "T3 read x = [1 2] without T5's append of 3, which T7 later saw after 2: T3 rw→ T5",
        "T5 read y = [] (the initial state) without T3's append of 9, which no read shows, "
        "so it follows every element read: T5 rw→ T3",
    )
    assert [s["text"] for s in steps if "T3 rw→ T5" in s["text"]] == [
        "T3 read x = [1 2] without T5's append of 3, which T7 later saw after 2: T3 rw→ T5"
    ]


def test_g1a_aborted_read() -> None:
    history = ops_of(
        ("invoke", 0, [["append", "x", 1]]),
        ("fail", 0, [["append", "x", 1]]),
        ("invoke", 1, [["r", "x", None]]),
        ("ok", 1, [["r", "x", [1]]]),
    )
    result = check(history, "list-append", consistency_model="read-committed")
    assert result["valid"] is False
    case = result["anomalies"]["G1a"][0]
    assert (case["reader"], case["writer"], case["element"]) == ("T3", "T1", 1)
    assert result["not"] == ["read-committed"]
    assert check(history, "list-append", consistency_model="read-uncommitted")["valid"] is True


def test_g1b_intermediate_read() -> None:
    history = concurrent(
        (0, [["append", "x", 1], ["append", "x", 2]]),
        (1, [["r", "x", [1]]]),
    )
    result = check(history, "list-append", consistency_model="read-committed")
    assert result["valid"] is False
    case = result["anomalies"]["G1b"][0]
    assert (case["reader"], case["writer"], case["element"]) == ("T3", "T2", 1)


def test_incompatible_order() -> None:
    history = serial(
        (0, [["append", "x", 1], ["append", "x", 2]]),
        (1, [["r", "x", [1, 2]]]),
        (2, [["r", "x", [2, 1, 3]]]),
        (3, [["append", "x", 3]]),
    )
    result = check(history, "list-append", consistency_model="read-committed")
    assert result["valid"] is False
    case = result["anomalies"]["incompatible-order"][0]
    assert case["key"] == "x"
    assert case["values"] == [[1, 2], [2, 1, 3]]
    assert "G1a" not in result["anomaly-types"]  # named by what it is, implied in `not`
    assert "read-committed" in result["not"]


def test_duplicate_elements() -> None:
    history = serial(
        (0, [["append", "x", 1]]),
        (1, [["r", "x", [1, 1]]]),
    )
    result = check(history, "list-append", consistency_model="read-uncommitted")
    assert result["valid"] is False
    assert result["anomalies"]["duplicate-elements"][0]["duplicates"] == {"1": 2}


def test_internal_inconsistency() -> None:
    # The txn appends 5 to x and then reads x without its own append.
    history = serial(
        (0, [["append", "x", 4]]),
        (1, [["append", "x", 5], ["r", "x", [4]]]),
    )
    result = check(history, "list-append", consistency_model="serializable")
    assert result["valid"] is False
    case = result["anomalies"]["internal"][0]
    assert (case["txn"], case["read"], case["expected"]) == ("T3", [4], "[... 5]")
    # Elle: internal is forbidden by serializable and snapshot isolation, not below.
    assert check(history, "list-append", consistency_model="read-committed")["valid"] is True


def test_stale_read_is_strict_serializability_violation_only() -> None:
    # T4 starts after T2 completed its append, yet reads x = [].
    history = serial(
        (0, [["append", "x", 1]]),
        (1, [["r", "x", []]]),
        (2, [["r", "x", [1]]]),
    )
    strict = check(history, "list-append")
    assert strict["valid"] is False
    cycle, kinds = cycle_of(strict, "G-single-realtime")
    assert_rotation(cycle, ["T1", "T3"])
    assert sorted(kinds) == ["realtime", "rw"]
    assert strict["not"] == ["strict-serializable"]
    assert check(history, "list-append", consistency_model="serializable")["valid"] is True


def test_process_variant_when_both_run_on_one_process() -> None:
    history = serial(
        (0, [["append", "x", 1]]),
        (0, [["r", "x", []]]),
        (1, [["r", "x", [1]]]),
    )
    result = check(history, "list-append", process=True, consistency_model="serializable")
    assert result["valid"] is True  # serializable ignores process order
    assert "G-single-process" in result["anomaly-types"]


def test_lost_append_in_final_read() -> None:
    history = serial(
        (0, [["append", "x", 1]]),
        (1, [["append", "x", 2]]),
        (2, [["r", "x", [1]]]),
    )
    result = check(history, "list-append")
    assert result["valid"] is False
    case = result["anomalies"]["lost-append"][0]
    assert (case["writer"], case["element"]) == ("T3", 2)
    assert "G-single-realtime" in result["anomaly-types"]


def test_lost_update() -> None:
    history = concurrent(
        (0, [["r", "x", []], ["append", "x", 1]]),
        (1, [["r", "x", []], ["append", "x", 2]]),
        (2, [["r", "x", [1, 2]]]),
    )
    result = check(history, "list-append", consistency_model="repeatable-read")
    assert result["valid"] is False
    assert result["anomalies"]["lost-update"][0]["txns"] == ["T3", "T4"]


def test_valid_serial_history_lists_every_model_as_possible() -> None:
    history = serial(
        (0, [["append", "x", 1], ["r", "y", []]]),
        (1, [["r", "x", [1]], ["append", "y", 2]]),
        (0, [["r", "x", [1]], ["r", "y", [2]]]),
    )
    result = check(history, "list-append")
    assert result["valid"] is True
    assert result["anomaly-types"] == []
    assert result["possible"][0] == "strict-serializable"
    assert result["not"] == []


def test_info_txn_seen_counts_as_committed_and_unseen_adds_no_cycle() -> None:
    history = ops_of(
        ("invoke", 0, [["append", "x", 1]]),
        ("info", 0, [["append", "x", 1]]),
        ("invoke", 1, [["append", "x", 2]]),
        ("info", 1, [["append", "x", 2]]),
        ("invoke", 2, [["r", "x", None]]),
        ("ok", 2, [["r", "x", [1]]]),
    )
    result = check(history, "list-append")
    assert result["valid"] is True


def test_duplicate_appends_make_the_verdict_unknown() -> None:
    history = serial((0, [["append", "x", 1]]), (1, [["append", "x", 1]]))
    result = check(history, "list-append")
    assert result["valid"] == "unknown"
    assert "more than once" in result["error"]


# --------------------------------------------------------------------------- rw-register


def test_register_g1c_and_wr_words() -> None:
    history = concurrent(
        (0, [["w", "x", 1], ["r", "y", 2]]),
        (1, [["r", "x", 1], ["w", "y", 2]]),
    )
    result = check(history, "rw-register", consistency_model="read-committed")
    assert result["valid"] is False
    cycle, kinds = cycle_of(result, "G1c")
    assert_rotation(cycle, ["T2", "T3"])
    assert kinds == ["wr", "wr"]
    steps = result["anomalies"]["G1c"][0]["steps"]
    assert "T3 read x = 1, which T2 wrote: T2 wr→ T3" in [s["text"] for s in steps]


def test_register_g_single_from_initial_nil() -> None:
    # T2 reads x = nil but y = 1, both written by T3.
    history = concurrent(
        (0, [["r", "x", None], ["r", "y", 1]]),
        (1, [["w", "x", 1], ["w", "y", 1]]),
    )
    result = check(history, "rw-register", consistency_model="serializable")
    assert result["valid"] is False
    cycle, kinds = cycle_of(result, "G-single")
    assert sorted(kinds) == ["rw", "wr"]
    rw = next(s for s in result["anomalies"]["G-single"][0]["steps"] if s["type"] == "rw")
    assert "nil, the initial state, precedes every write" in rw["text"]


def test_register_g0_from_writes_follow_reads() -> None:
    history = concurrent(
        (0, [["w", "x", 1], ["w", "y", 1]]),
        (1, [["w", "x", 2], ["w", "y", 2]]),
        (2, [["r", "x", 1], ["w", "x", 3]]),
        (3, [["r", "x", 3], ["w", "x", 4]]),
        (4, [["r", "y", 2], ["w", "y", 5]]),
    )
    result = check(history, "rw-register", consistency_model="read-uncommitted")
    # Only 1 < 3 < 4 on x and 2 < 5 on y are known: no ww cycle between T6 and T7.
    assert result["valid"] is True
    history = concurrent(
        (0, [["w", "x", 1], ["w", "y", 2]]),
        (1, [["r", "x", 1], ["w", "x", 3], ["r", "y", 4], ["w", "y", 5]]),
        (2, [["r", "y", 2], ["w", "y", 4], ["r", "x", 3], ["w", "x", 6]]),
    )
    # x: 1 < 3 (T4) < 6 (T5); y: 2 < 4 (T5) < 5 (T4): T4 ww→ T5 on x, T5 ww→ T4 on y.
    # (Read uncommitted does not assume writes follow reads: nothing is inferred there.)
    assert check(history, "rw-register", consistency_model="read-uncommitted")["valid"] is True
    result = check(history, "rw-register", consistency_model="read-committed")
    assert result["valid"] is False
    cycle, kinds = cycle_of(result, "G0")
    assert_rotation(cycle, ["T4", "T5"])
    assert kinds == ["ww", "ww"]
    texts = [s["text"] for s in result["anomalies"]["G0"][0]["steps"]]
    assert any("T4 read x = 1 and then wrote 3" in t or "T5 read x = 3 and then wrote 6" in t
               for t in texts)


def test_register_g1a_g1b_internal_lost_update() -> None:
    history = ops_of(
        ("invoke", 0, [["w", "x", 1]]),
        ("fail", 0, [["w", "x", 1]]),
        ("invoke", 1, [["w", "y", 1], ["w", "y", 2]]),
        ("ok", 1, [["w", "y", 1], ["w", "y", 2]]),
        ("invoke", 2, [["r", "x", None], ["r", "y", None], ["r", "z", None], ["w", "z", 7]]),
        ("ok", 2, [["r", "x", 1], ["r", "y", 1], ["r", "z", None], ["w", "z", 7]]),
        ("invoke", 3, [["w", "q", 1], ["r", "q", None]]),
        ("ok", 3, [["w", "q", 1], ["r", "q", 9]]),
        ("invoke", 4, [["r", "z", None], ["w", "z", 8]]),
        ("ok", 4, [["r", "z", None], ["w", "z", 8]]),
    )
    result = check(history, "rw-register", consistency_model="serializable")
    assert result["valid"] is False
    assert result["anomalies"]["G1a"][0]["writer"] == "T1"
    assert result["anomalies"]["G1b"][0]["writer"] == "T3"
    assert result["anomalies"]["internal"][0]["txn"] == "T7"
    assert result["anomalies"]["lost-update"][0]["txns"] == ["T5", "T9"]


def test_register_cyclic_versions() -> None:
    history = concurrent(
        (0, [["w", "x", 1]]),
        (1, [["w", "x", 2]]),
        (2, [["r", "x", 1], ["w", "x", 3]]),
        (3, [["r", "x", 3], ["w", "x", 4]]),
        (4, [["r", "x", 4], ["w", "x", 5]]),
        (5, [["r", "x", 5], ["w", "x", 6]]),
    )
    assert check(history, "rw-register")["valid"] is True
    history = concurrent(
        (0, [["r", "x", 2], ["w", "x", 1]]),
        (1, [["r", "x", 1], ["w", "x", 2]]),
    )
    result = check(history, "rw-register", consistency_model="read-committed")
    assert result["valid"] is False
    assert {"cyclic-versions", "G1c"} <= set(result["anomaly-types"])


# --------------------------------------------------------------------------- the models


def test_models_and_names() -> None:
    assert cycle_type(["ww", "ww"]) == "G0"
    assert cycle_type(["ww", "wr"]) == "G1c"
    assert cycle_type(["rw", "wr", "ww"]) == "G-single"
    assert cycle_type(["rw", "wr", "rw", "ww"]) == "G-nonadjacent"
    assert cycle_type(["rw", "rw", "wr"]) == "G2-item"
    assert cycle_type(["wr", "rw", "rw"]) == "G2-item"
    assert cycle_type(["rw", "ww", "rw"]) == "G2-item"  # the last and first are adjacent
    assert cycle_type(["rw", "realtime"]) == "G-single-realtime"
    assert cycle_type(["ww", "process", "ww"]) == "G0-process"
    assert "G2-item" not in forbidden_anomalies("snapshot-isolation")
    assert "G-nonadjacent" in forbidden_anomalies("snapshot-isolation")
    assert "G-single" in forbidden_anomalies("repeatable-read")
    assert "G1c-realtime" in forbidden_anomalies("strict-serializable")
    assert "G-single-realtime" not in forbidden_anomalies("serializable")
    assert boundary(["G0"])["not"] == ["read-uncommitted"]
    assert boundary(["G-single"]) == {
        "not": ["snapshot-isolation", "repeatable-read"],
        "also-not": ["strict-serializable", "serializable"],
        "possible": ["read-committed", "read-uncommitted"],
    }


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown consistency model"):
        check(serial((0, [["append", "x", 1]])), "list-append", consistency_model="linear")


def test_no_process_edge_leaves_an_info_txn() -> None:
    # Process 0's append ends info and may land after its next txn read x = []: no cycle.
    history = ops_of(
        ("invoke", 0, [["append", "x", 1]]),
        ("info", 0, [["append", "x", 1]]),
        ("invoke", 0, [["r", "x", None]]),
        ("ok", 0, [["r", "x", []]]),
        ("invoke", 1, [["r", "x", None]]),
        ("ok", 1, [["r", "x", [1]]]),
    )
    result = check(history, "list-append", process=True, realtime=False)
    assert result["valid"] is True
    assert result["anomaly-types"] == []


def test_elle_paper_example_is_g_single(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The history of Elle's paper (jepsen-io/elle, histories/paper-example.edn), with the
    process and f each op needs added: Elle finds G-single there."""
    from checker.history import read_edn

    lines = [
        "[[:append 253 1] [:append 253 3] [:append 253 4] [:append 255 2] [:append 255 3] "
        "[:append 255 4] [:append 255 5] [:append 256 1] [:append 256 2]]",
        "[[:append 255 8] [:r 253 [1 3 4]]]",
        "[[:append 256 4] [:r 255 [2 3 4 5 8]] [:r 256 [1 2 4]] [:r 253 [1 3 4]]]",
        "[[:append 250 10] [:r 253 [1 3 4]] [:r 255 [2 3 4 5]] [:append 256 3]]",
    ]
    text = ""
    for i, value in enumerate(lines):
        invoke = value.replace("[1 3 4]", "nil").replace("[2 3 4 5 8]", "nil")
        invoke = invoke.replace("[1 2 4]", "nil").replace("[2 3 4 5]", "nil")
        text += f"{{:index {2 * i} :type :invoke :process {i} :f :txn :value {invoke}}}\n"
        text += f"{{:index {2 * i + 1} :type :ok :process {i} :f :txn :value {value}}}\n"
    path = tmp_path / "paper-example.edn"
    path.write_text(text)
    result = check(read_edn(path), "list-append", consistency_model="serializable")
    assert result["valid"] is False
    assert result["anomaly-types"] == ["G-single"]
    cycle, kinds = cycle_of(result, "G-single")
    assert_rotation(cycle, ["T7", "T3", "T5"])
    assert kinds[cycle.index("T7")] == "rw"


def test_time_limit_gives_unknown_never_valid() -> None:
    from checker.elle.generate import list_append_history

    ops = list_append_history(400, seed=3, clients=5, plant="G-single")
    result = check(ops, "list-append", time_limit=1e-9)
    assert result["valid"] == "unknown"
    assert result["possible"] == []
    assert check(ops, "list-append")["valid"] is False


def test_a_search_cut_short_is_unknown_for_its_kind_and_the_verdict_still_exact() -> None:
    history = concurrent(
        (0, [["r", "x", []], ["r", "y", [1]]]),
        (1, [["append", "x", 1], ["append", "y", 1]]),
        (2, [["r", "x", [1]]]),
    )
    result = check(
        history, "list-append", consistency_model="serializable", cycle_search_timeout=0.0
    )
    assert result["valid"] is False  # decided by the exact cycle-exists test
    assert {"PL-SI-cycle-exists", "PL-2.99-cycle-exists"} <= set(result["anomaly-types"])
    assert result["not"] == ["snapshot-isolation", "repeatable-read"]
    assert result["cycle-search"]["G-single"] == "unknown"
    assert "G-single" not in result["anomaly-types"]
    timeouts = result["anomalies"]["cycle-search-timeout"]
    assert "G-single" in {t["anomaly"] for t in timeouts}


def test_input_shapes() -> None:
    from checker.elle import TxnHistoryError

    nemesis = Op(index=2, time=2, type="info", process="nemesis", f="start-partition")
    history = serial((0, [["append", "x", 1]]), (1, [["r", "x", [1]]]))
    history.insert(2, nemesis)
    for i, op in enumerate(history):
        op.index = i
    assert check(history, "list-append")["valid"] is True  # nemesis ops are set aside
    mismatch = ops_of(("invoke", 0, [["append", "x", 1]]), ("ok", 0, [["append", "y", 1]]))
    with pytest.raises(TxnHistoryError, match="do not match those invoked"):
        check(mismatch, "list-append")
    not_a_list = ops_of(("invoke", 0, [["r", "x", None]]), ("ok", 0, [["r", "x", "abc"]]))
    with pytest.raises(TxnHistoryError, match="expected a list-append read to return a list"):
        check(not_a_list, "list-append")
    not_txn = ops_of(("invoke", 0, [["r", "x", None]]))
    not_txn[0].f = "read"
    with pytest.raises(TxnHistoryError, match="expected f 'txn'"):
        check(not_txn, "list-append")
    # Keys and values may be any data: lists become hashable, and read back as they were.
    odd = serial((0, [["append", ["k", 1], [1, 2]]]), (1, [["r", ["k", 1], [[1, 2]]]]))
    result = check(odd, "list-append")
    assert result["valid"] is True
