"""The check's shortcuts on register histories that keep its answers as they were.

- The search runs first, for a head start of 2n + 1024 steps; the impossible-reads
  refutation runs only when that search does not end valid (a refutation can only turn a
  component invalid). A refutable history must still be decided by the refutation, with
  its rule and witnesses; a history linearized within the head start never reaches it.
- An ok op whose completion carries a plain value uses the completion as its view; op
  records must still give the invoke's index and time.

The verdicts themselves are compared with the plain search in
test_search_against_plain.py and test_differential.py (all prunings on, so through the
head start).
"""

from __future__ import annotations

from typing import Any

import pytest

import checker.linearizable as linearizable
from checker.generate import cas_register_history
from checker.linearizable import check
from checker.op import Op
from checker.plain import check_plain


def _ops(*events: tuple[int, str, str, Any]) -> list[Op]:
    """(process, type, f, value) events, timed 10 ns apart from 100."""
    return [
        Op(index=k, time=100 + 10 * k, type=kind, process=process, f=f, value=value)
        for k, (process, kind, f, value) in enumerate(events)
    ]


def test_a_history_linearized_within_the_head_start_skips_the_refutation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("the refutation ran on a history the search linearized")

    monkeypatch.setattr(linearizable, "_impossible_read", refuse)
    history = cas_register_history(5, 400, seed=3)
    assert check(history, "cas-register")["valid"] is True


@pytest.mark.parametrize("seed", range(12))
def test_a_refutable_history_is_still_decided_by_the_refutation(seed: int) -> None:
    history = cas_register_history(4, 300, seed=seed, stale_reads=1)
    result = check(history, "cas-register")
    assert result["valid"] is False
    assert check_plain(history, "cas-register")["valid"] is False
    (failure,) = result["failures"]
    # A stale read of a unique value is refuted ("overwritten"), as before the head start.
    assert failure["refuted_by"] == "overwritten"
    assert len(failure["witnesses"]) == 2


def test_a_read_of_a_value_never_written_is_refuted_after_a_failed_head_start() -> None:
    history = _ops(
        (0, "invoke", "write", 1), (0, "ok", "write", 1),
        (1, "invoke", "read", None), (1, "ok", "read", 7),
    )
    result = check(history, "cas-register")
    assert result["valid"] is False
    assert result["failures"][0]["refuted_by"] == "never-written"
    assert result["configs"] == 0  # the refutation's verdict, not the search's


def test_op_records_give_the_invoke_index_and_time_when_the_view_is_the_completion() -> None:
    # Process 1's read completes ok with a plain value (its completion is its view) and
    # cannot be placed: 2 was overwritten by 3 before it was invoked.
    history = _ops(
        (0, "invoke", "write", 2), (0, "ok", "write", 2),
        (0, "invoke", "write", 3), (0, "ok", "write", 3),
        (1, "invoke", "read", None), (1, "ok", "read", 2),
    )
    for prunings in (None, tuple(p for p in linearizable.PRUNINGS if p != "impossible-reads")):
        result = check(history, "cas-register", prunings=prunings)
        assert result["valid"] is False
        op = result["failures"][0]["op"]
        assert (op["index"], op["completion_index"]) == (4, 5)
        assert (op["invoke_time"], op["complete_time"]) == (140, 150)
        assert op["value"] == 2


def test_a_malformed_completion_names_the_invoke_index() -> None:
    history = _ops((0, "invoke", "cas", [1, 2]), (0, "ok", "cas", 5))
    with pytest.raises(linearizable.HistoryError, match="op index 0: expected a cas value"):
        check(history, "cas-register")
