"""The anomaly in words for Elle's results: the kind, its cycle and every edge."""

from __future__ import annotations

from checker.elle import check
from checker.history import Op
from checker.summary import describe, summary_lines


def _read_skew() -> list[Op]:
    events = [
        ("invoke", 0, [["r", "x", None], ["r", "y", None]]),
        ("invoke", 1, [["append", "x", 1], ["append", "y", 1]]),
        ("invoke", 2, [["r", "x", None]]),
        ("ok", 0, [["r", "x", []], ["r", "y", [1]]]),
        ("ok", 1, [["append", "x", 1], ["append", "y", 1]]),
        ("ok", 2, [["r", "x", [1]]]),
    ]
    return [
        Op(index=i, time=i * 1000, type=t, process=p, f="txn", value=v)
        for i, (t, p, v) in enumerate(events)
    ]


def test_an_elle_cycle_is_named_with_its_edges() -> None:
    ops = _read_skew()
    result = check(ops, "list-append", consistency_model="snapshot-isolation")
    results = {"valid": False, "checkers": {"elle-list-append": result}}
    [anomaly] = describe(results, ops)
    assert anomaly.kind == "G-single" and anomaly.checker == "elle-list-append"
    assert anomaly.text.startswith("G-single: T3 → T4 → T3: T3 read x = [] (the initial state)")
    assert "T3 rw→ T4" in anomaly.text and "T4 wr→ T3" in anomaly.text
    assert summary_lines(results, ops)[0] == anomaly.text


def test_a_cycle_less_elle_anomaly_in_its_own_words() -> None:
    result = {
        "valid": False,
        "anomaly-types": ["G1a"],
        "anomalies": {"G1a": [{"type": "G1a", "text": "T7 read x = [5] of failed T3"}]},
    }
    [anomaly] = describe({"valid": False, "checkers": {"elle-list-append": result}})
    assert (anomaly.kind, anomaly.text) == ("G1a", "G1a: T7 read x = [5] of failed T3")
