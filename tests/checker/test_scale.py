"""The checker on long histories: the seeded generator, the refuted reads, the search's
bookkeeping (callable reads, windowed cache keys) against the plain search."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.generate import cas_register_history
from checker.linearizable import PRUNINGS, check
from checker.op import Op
from checker.plain import check_plain

WITHOUT_REFUTATIONS = tuple(name for name in PRUNINGS if name != "impossible-reads")


def _ops(*events: tuple[int, str, str, Any]) -> list[Op]:
    return [
        Op(index, index * 10, kind, process, f, value)
        for index, (process, kind, f, value) in enumerate(events)
    ]


def test_the_generator_is_seeded_and_valid_by_construction() -> None:
    first = cas_register_history(4, 300, seed=3)
    assert [op.to_dict() for op in first] == [
        op.to_dict() for op in cas_register_history(4, 300, seed=3)
    ]
    assert {op.type for op in first} >= {"invoke", "ok", "fail"}
    assert check(first, "cas-register")["valid"] is True
    small = cas_register_history(3, 60, seed=5, value_range=3)
    assert check(small, "cas-register")["valid"] is True


def test_a_planted_stale_read_is_found_by_the_refutation_and_by_the_search() -> None:
    history = cas_register_history(5, 400, seed=7, stale_reads=1)
    refuted = check(history, "cas-register")
    assert refuted["valid"] is False
    failure = refuted["failures"][0]
    assert failure["refuted_by"] == "overwritten"
    assert "was overwritten by" in failure["refutation"]
    assert len(failure["witnesses"]) == 2
    # small enough to be searched for the explanation too: the states and the reason
    assert failure["states"] and failure["reason"].startswith("read ")
    # too long to search for the explanation: the refutation's own
    long = cas_register_history(5, 2500, seed=7, stale_reads=1)
    failure = check(long, "cas-register")["failures"][0]
    assert failure["refuted_by"] == "overwritten"
    assert "was overwritten by" in failure["reason"]
    assert failure["window"][0] <= failure["witnesses"][0]["index"] <= failure["window"][1]
    searched = check(history, "cas-register", prunings=WITHOUT_REFUTATIONS)
    assert searched["valid"] is False
    assert searched["failures"][0]["op"]["f"] == "read"


@pytest.mark.parametrize(
    ("events", "rule"),
    [
        # a value nobody wrote
        ([(0, "invoke", "write", 1), (0, "ok", "write", 1),
          (1, "invoke", "read", None), (1, "ok", "read", 2)], "never-written"),
        # a failed write never happened
        ([(0, "invoke", "write", 2), (0, "fail", "write", 2),
          (1, "invoke", "read", None), (1, "ok", "read", 2)], "never-written"),
        # the only write of 2 was invoked after the read completed
        ([(1, "invoke", "read", None), (1, "ok", "read", 2),
          (0, "invoke", "write", 2), (0, "info", "write", 2)], "read-before-written"),
        # 1 overwritten by 2 before the read of 1 was invoked
        ([(0, "invoke", "write", 1), (0, "ok", "write", 1),
          (0, "invoke", "cas", [1, 2]), (0, "ok", "cas", [1, 2]),
          (1, "invoke", "read", None), (1, "ok", "read", 1)], "overwritten"),
    ],
)
def test_each_refutation_names_its_rule_and_agrees_with_the_plain_search(
    events: list[tuple[int, str, str, Any]], rule: str
) -> None:
    ops = _ops(*events)
    result = check(ops, "cas-register")
    assert result["valid"] is False
    assert result["failures"][0]["refuted_by"] == rule
    assert result["failures"][0]["refutation"].startswith("read ")
    assert check_plain(ops, "cas-register")["valid"] is False
    assert check(ops, "cas-register", prunings=WITHOUT_REFUTATIONS)["valid"] is False


@pytest.mark.parametrize(
    "events",
    [
        # the overwriting write is concurrent with the read: 1 may still be read
        [(0, "invoke", "write", 1), (0, "ok", "write", 1),
         (0, "invoke", "write", 2), (1, "invoke", "read", None),
         (1, "ok", "read", 1), (0, "ok", "write", 2)],
        # 1 is written twice: the second write may bring it back
        [(0, "invoke", "write", 1), (0, "ok", "write", 1),
         (0, "invoke", "write", 2), (0, "ok", "write", 2),
         (2, "invoke", "write", 1), (1, "invoke", "read", None),
         (1, "ok", "read", 1), (2, "info", "write", 1)],
        # the read of the initial value needs no write
        [(0, "invoke", "write", 1), (1, "invoke", "read", None),
         (1, "ok", "read", 0), (0, "ok", "write", 1)],
        # the info write of 2 may have happened before the read
        [(0, "invoke", "write", 2), (1, "invoke", "read", None),
         (1, "ok", "read", 2), (0, "info", "write", 2)],
    ],
)
def test_no_refutation_where_a_linearization_exists(
    events: list[tuple[int, str, str, Any]]
) -> None:
    ops = _ops(*events)
    assert check(ops, "cas-register", init=0)["valid"] is True
    assert check_plain(ops, "cas-register", init=0)["valid"] is True


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    clients=st.integers(1, 4),
    ops=st.integers(1, 9),
    seed=st.integers(0, 10_000),
    stale=st.booleans(),
    info_rate=st.sampled_from([0.0, 0.3]),
    value_range=st.sampled_from([None, 2]),
    nil_read=st.sampled_from(["absent", "unknown"]),
)
def test_generated_histories_agree_with_the_plain_search(
    clients: int,
    ops: int,
    seed: int,
    stale: bool,
    info_rate: float,
    value_range: int | None,
    nil_read: str,
) -> None:
    """Unique values (the refutations' ground) and few values (the read bookkeeping)."""
    try:
        history = cas_register_history(
            clients,
            ops,
            seed=seed,
            stale_reads=1 if stale and value_range is None else 0,
            info_rate=info_rate,
            value_range=value_range,
        )
    except ValueError:  # too short to hold a stale read
        return
    expected = check_plain(history, "cas-register", nil_read=nil_read)["valid"]
    for prunings in (None, ("impossible-reads",), ("forced-reads",), WITHOUT_REFUTATIONS):
        got = check(history, "cas-register", nil_read=nil_read, prunings=prunings)
        assert got["valid"] is expected, (prunings, [op.to_dict() for op in history])


def test_long_histories_keep_their_verdicts_under_every_switch() -> None:
    """The windowed cache keys and the callable-read lists on a history long enough to
    slide the window far (4k ops), with backtracking (few values, info ops)."""
    history = cas_register_history(6, 2000, seed=11, value_range=3, info_rate=0.05)
    assert check(history, "cas-register")["valid"] is True
    assert check(history, "cas-register", prunings=WITHOUT_REFUTATIONS)["valid"] is True
    stale = cas_register_history(6, 2000, seed=11, stale_reads=1)
    assert check(stale, "cas-register", prunings=WITHOUT_REFUTATIONS)["valid"] is False
