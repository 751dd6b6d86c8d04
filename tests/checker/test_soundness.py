"""Issue 9's checker defects and issue 12's time limit, each a case that was judged wrong.

1. A read of nil after a write said nothing (Knossos' meaning) even for raftlab's own
   histories, where it means the key is absent: a stale read of a fresh key went unseen.
2. Values compared with Python's ``==``: ``write true`` then ``read 1`` was linearizable.
4. A failing step says why, in the result, the terminal and the page.
5. ``--time-limit 0.001`` gave VALID: the limit did not bound the whole check.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from checker import linearizable
from checker.explain import render_html
from checker.history import Op, write_edn, write_jsonl
from checker.linearizable import check
from checker.plain import check_plain


def sequential(*steps: tuple[str, Any, Any]) -> list[Op]:
    """One op after another, each on its own process: (f, invoke value, ok value)."""
    ops: list[Op] = []
    for process, (f, invoke_value, ok_value) in enumerate(steps):
        ops.append(Op(len(ops), len(ops), "invoke", process, f, invoke_value))
        ops.append(Op(len(ops), len(ops), "ok", process, f, ok_value))
    return ops


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from campaign.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["check", *args])
    code = exit_info.value.code
    return (0 if code is None else int(code)), capsys.readouterr().out


# The case: write [0 3] ok, then strictly later read [0 nil] ok.
STALE_NIL = sequential(("write", [0, 3], [0, 3]), ("read", [0, None], [0, None]))


# ----------------------------------------------------------------------------- defect 1


def test_a_nil_read_after_a_write_is_invalid_when_nil_means_absent() -> None:
    for model in ("cas-register", "register", "etcd"):
        result = check(STALE_NIL, model, nil_read="absent")
        assert result["valid"] is False, model
        assert result["nil_read"] == "absent"
        assert result["failures"][0]["reason"] == "read nil but the register holds 3"
    # Knossos' meaning, still the default of its models: the read tells nothing.
    assert check(STALE_NIL, "cas-register")["valid"] is True
    assert check(STALE_NIL, "cas-register")["nil_read"] == "unknown"
    assert check(STALE_NIL, "etcd", nil_read="unknown")["valid"] is True
    # A nil read of a key never written holds under both meanings.
    fresh = sequential(("write", [0, 3], [0, 3]), ("read", [1, None], [1, None]))
    assert check(fresh, "cas-register", nil_read="absent")["valid"] is True


@pytest.mark.parametrize(
    ("model", "write", "nil_read_op"),
    [
        ("kv", ("put", ["k", "x"], ["k", "x"]), ("get", ["k", None], ["k", None])),
        ("set", ("add", 1, 1), ("read", None, None)),
        ("counter", ("add", 1, 1), ("read", None, None)),
        (
            "multi-register",
            ("txn", [["write", "x", 1]], [["write", "x", 1]]),
            ("txn", [["read", "x", None]], [["read", "x", None]]),
        ),
    ],
)
def test_every_model_with_reads_has_both_nil_meanings(
    model: str, write: tuple[str, Any, Any], nil_read_op: tuple[str, Any, Any]
) -> None:
    ops = sequential(write, nil_read_op)
    assert check(ops, model, nil_read="absent")["valid"] is False
    assert check(ops, model, nil_read="unknown")["valid"] is True
    assert check_plain(ops, model, nil_read="absent")["valid"] is False


def test_raftlab_check_reads_nil_as_absent_in_jsonl_and_as_unknown_in_edn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jsonl = tmp_path / "history.jsonl"
    write_jsonl(jsonl, STALE_NIL)
    edn = tmp_path / "history.edn"
    write_edn(edn, STALE_NIL)
    code, out = run_cli([str(jsonl), "--model", "cas-register"], capsys)
    assert code == 1, out
    assert "nil read = absent (the default for jsonl)" in out
    assert "why: read nil but the register holds 3" in out
    assert run_cli([str(jsonl)], capsys)[0] == 1  # the guessed model too
    assert run_cli([str(jsonl), "--nil-read", "unknown"], capsys)[0] == 0
    code, out = run_cli([str(edn)], capsys)
    assert code == 0, out
    assert "nil read = unknown (the default for edn)" in out
    assert run_cli([str(edn), "--nil-read", "absent"], capsys)[0] == 1
    out_dir = tmp_path / "out"
    assert run_cli([str(jsonl), "--out", str(out_dir)], capsys)[0] == 1
    document = json.loads((out_dir / "results.json").read_text())
    assert document["nil_read"] == "absent"
    assert document["result"]["nil_read"] == "absent"
    assert document["result"]["model"] == document["model"]
    code, out = run_cli([str(jsonl), "--nil-read", "sometimes"], capsys)
    assert code == 254


def test_check_help_says_what_nil_means_per_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(["--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "--nil-read [absent|unknown]" in text
    assert "absent for raftlab JSONL" in text and "unknown for Jepsen EDN" in text


# ----------------------------------------------------------------------------- defect 2


@pytest.mark.parametrize(
    ("model", "ops"),
    [
        ("register", sequential(("write", True, True), ("read", None, 1))),
        ("register", sequential(("write", 1, 1), ("read", None, 1.0))),
        ("register", sequential(("write", 1.0, 1.0), ("read", None, 1))),
        ("register", sequential(("write", False, False), ("read", None, 0))),
        ("cas-register", sequential(("write", 1, 1), ("cas", [True, 2], [True, 2]))),
        ("etcd", sequential(("write", 1, 1), ("cas", [1.0, 2], [1.0, 2]))),
        # inside lists and maps
        ("register", sequential(("write", [1, 2], [1, 2]), ("read", None, [True, 2]))),
        ("register", sequential(("write", {"a": 1}, {"a": 1}), ("read", None, {"a": 1.0}))),
        ("kv", sequential(("put", ["k", [1]], ["k", [1]]), ("get", ["k", None], ["k", [True]]))),
        ("kv", sequential(("append", ["k", 1], ["k", 1]), ("get", ["k", None], ["k", [1.0]]))),
        ("set", sequential(("add", True, True), ("read", None, [1]))),
        ("counter", sequential(("add", 1, 1), ("add", 1.0, 1.0), ("read", None, 2))),
        ("fifo-queue", sequential(("enqueue", 1.0, 1.0), ("dequeue", None, 1))),
        ("unordered-queue", sequential(("enqueue", 1, 1), ("dequeue", None, True))),
        # True as a key: a register of its own, never written
        (
            "multi-register",
            sequential(
                ("txn", [["write", True, 5]], [["write", True, 5]]),
                ("txn", [["read", 1, None]], [["read", 1, 5]]),
            ),
        ),
        ("cas-register", sequential(("write", [True, 5], [True, 5]), ("read", [1, None], [1, 5]))),
    ],
)
def test_true_1_and_1_0_are_three_values(model: str, ops: list[Op]) -> None:
    assert check(ops, model)["valid"] is False
    assert check_plain(ops, model)["valid"] is False


def test_equal_values_of_one_kind_still_match() -> None:
    assert check(sequential(("write", 1.0, 1.0), ("read", None, 1.0)), "register")["valid"]
    assert check(sequential(("write", True, True), ("read", None, True)), "register")["valid"]
    counter = sequential(("add", 1, 1), ("add", 1.0, 1.0), ("read", None, 2.0))
    assert check(counter, "counter")["valid"] is True
    both = sequential(("add", True, True), ("add", 1, 1), ("read", None, [1, True]))
    assert check(both, "set")["valid"] is True  # two elements, not one


def concurrent_writes_then_read(read_value: Any) -> list[Op]:
    """write 1 [0, 4] and write 1.0 [1, 5] overlap; a read follows both."""
    events = [
        ("invoke", 0, "write", 1),
        ("invoke", 1, "write", 1.0),
        ("ok", 0, "write", 1),
        ("ok", 1, "write", 1.0),
        ("invoke", 2, "read", None),
        ("ok", 2, "read", read_value),
    ]
    return [Op(i, i, t, p, f, v) for i, (t, p, f, v) in enumerate(events)]


@pytest.mark.parametrize("prunings", [None, ("identical-ops",), ("forced-reads",)])
def test_identical_op_classes_and_read_lookups_use_the_same_identity(
    prunings: tuple[str, ...] | None,
) -> None:
    """write 1 and write 1.0 are not identical ops: the read of 1 needs 1.0 written first,
    an order that the identical-op pruning would skip if it took them for one class; and
    the state 1.0 must not be found by the read-of-1 lookup."""
    for read_value in (1, 1.0):
        ops = concurrent_writes_then_read(read_value)
        assert check(ops, "register", prunings=prunings)["valid"] is True
    assert check(concurrent_writes_then_read(True), "register", prunings=prunings)["valid"] is False
    late = sequential(("write", 1.0, 1.0), ("read", None, 1))
    assert check(late, "register", prunings=prunings)["valid"] is False


# ----------------------------------------------------------------------------- reasons


def test_a_failing_step_says_why_in_the_result_and_on_the_page() -> None:
    ops = sequential(("write", True, True), ("read", None, 1))
    result = check(ops, "register")
    failure = result["failures"][0]
    assert failure["reason"] == "read 1 but the register holds true"
    assert failure["reasons"] == ["read 1 but the register holds true"]
    page = render_html(ops, result)
    assert "read 1 but the register holds true" in page
    kv = sequential(("put", ["k", "x"], ["k", "x"]), ("get", ["k", None], ["k", "y"]))
    assert check(kv, "kv")["failures"][0]["reason"] == (
        'get of key "k" saw "y" but the key holds "x"'
    )
    cas = sequential(("write", 1, 1), ("cas", [2, 3], [2, 3]))
    assert check(cas, "cas-register")["failures"][0]["reason"] == (
        "cas from 2 to 3 but the register holds 1"
    )


# ----------------------------------------------------------------------------- time limit


def test_a_time_limit_too_short_for_the_check_gives_unknown() -> None:
    """The limit bounds the whole check: a history decided in a microsecond still is not
    decided within a nanosecond."""
    ops = sequential(("write", 1, 1), ("read", None, 1))
    result = check(ops, "register", time_limit=1e-9)
    assert result["valid"] == "unknown"
    assert "time limit" in result["error"]
    assert check(ops, "register", time_limit=60)["valid"] is True


def test_the_time_limit_bounds_the_per_key_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """With many keys, each one decided at once, the clock is still read between keys:
    a clock that moves one second per reading runs out after a few of the 50 keys."""
    ops = list(
        itertools.chain.from_iterable(
            sequential(("write", [k, 1], [k, 1]), ("read", [k, None], [k, 1])) for k in range(50)
        )
    )
    ops = [Op(i, i, op.type, op.process + 2 * (i // 4), op.f, op.value) for i, op in enumerate(ops)]
    ticks = itertools.count()
    monkeypatch.setattr(linearizable.time, "monotonic", lambda: float(next(ticks)))
    result = check(ops, "cas-register", time_limit=10)
    assert result["valid"] == "unknown"
    assert "time limit of 10 s reached" in result["error"]
    assert 0 < len(result["unknown_keys"]) < 50


def test_raftlab_check_time_limit_gives_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "history.jsonl"
    write_jsonl(path, sequential(("write", 1, 1), ("read", None, 1)))
    code, out = run_cli([str(path), "--time-limit", "1e-9"], capsys)
    assert code == 2, out
    assert "UNKNOWN" in out and "time limit" in out
    assert run_cli([str(path), "--time-limit", "60"], capsys)[0] == 0


def test_the_page_keeps_keys_true_and_1_apart() -> None:
    """The lanes of key 1 do not show the ops of key true (one identity everywhere)."""
    from checker.explain import _same_key

    assert _same_key(1, 1) and _same_key("k", "k") and _same_key([1, 2], [1, 2])
    assert not _same_key(True, 1) and not _same_key(1, 1.0) and not _same_key(None, None)
    ops = sequential(
        ("write", [True, 5], [True, 5]),
        ("write", [1, 4], [1, 4]),
        ("read", [1, None], [1, 5]),
    )
    result = check(ops, "cas-register")
    assert result["failures"][0]["key"] == 1
    lanes = render_html(ops, result).split("Operations per process")[-1].split("</svg>")[0]
    assert "write [1,4]" in lanes
    assert "write [true,5]" not in lanes
