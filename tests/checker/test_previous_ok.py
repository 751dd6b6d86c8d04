"""``previous_ok`` in a linearizability explanation names the last *ok* op linearized."""

from __future__ import annotations

from checker.linearizable import check
from checker.op import Op


def _history() -> list[Op]:
    rows = [
        ("invoke", 0, "write", 1),
        ("ok", 0, "write", 1),
        ("invoke", 1, "write", 2),  # times out below: may take effect any time after, or never
        ("invoke", 2, "read", None),
        ("ok", 2, "read", 1),
        ("invoke", 2, "cas", [5, 3]),
        ("ok", 2, "cas", [5, 3]),  # the register never held 5: cannot linearize
        ("info", 1, "write", 2),
    ]
    return [Op(i, i * 10, type_, p, f, v, None) for i, (type_, p, f, v) in enumerate(rows)]


def test_previous_ok_skips_an_info_op_ending_the_longest_linearization() -> None:
    result = check(_history(), "cas-register")
    assert result["valid"] is False
    [failure] = result["failures"]
    assert failure["op"]["f"] == "cas"
    # The search places the timed-out write after the read: the longest partial
    # linearization ends with that info op...
    assert failure["linearized"] == [0, 3, 2]
    # ...but previous_ok is the last acknowledged op of it, the read of 1.
    previous = failure["previous_ok"]
    assert previous["type"] == "ok"
    assert previous["index"] == 3
    assert (previous["f"], previous["value"]) == ("read", 1)


def test_previous_ok_is_none_when_only_info_ops_were_linearized() -> None:
    ops = [
        Op(0, 0, "invoke", 1, "write", 2, None),
        Op(1, 10, "invoke", 2, "cas", [5, 3], None),
        Op(2, 20, "ok", 2, "cas", [5, 3], None),
        Op(3, 30, "info", 1, "write", 2, "timeout"),
    ]
    result = check(ops, "cas-register")
    assert result["valid"] is False
    [failure] = result["failures"]
    assert failure["linearized"] == [0]  # the info write, which is no ok op
    assert failure["previous_ok"] is None
