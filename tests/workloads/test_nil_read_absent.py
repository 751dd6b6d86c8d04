"""raftlab's own workloads check a read of nil as "the key is absent" (issue 9, defect 1).

raftnode's get returns nil only for a key that holds nothing, and every key the register
workload rotates in starts absent: under Knossos' meaning (nil tells nothing) a stale read
of a fresh key would never be caught. The model and its nil meaning go into the result
(and so into results.json).
"""

from __future__ import annotations

from typing import Any

from checker.op import Op
from workloads.append import AppendWorkload, ListAppendModel
from workloads.register import RegisterWorkload


def sequential(*steps: tuple[str, Any, Any]) -> list[Op]:
    ops: list[Op] = []
    for process, (f, invoke_value, ok_value) in enumerate(steps):
        ops.append(Op(len(ops), len(ops), "invoke", process, f, invoke_value))
        ops.append(Op(len(ops), len(ops), "ok", process, f, ok_value))
    return ops


def test_register_workload_catches_a_stale_nil_read() -> None:
    stale = sequential(("write", [0, 3], [0, 3]), ("read", [0, None], [0, None]))
    result = RegisterWorkload().check(stale)
    linearizable = result["checkers"]["linearizable"]
    assert result["valid"] is False
    assert linearizable["model"] == "cas-register"
    assert linearizable["nil_read"] == "absent"
    fresh = sequential(("write", [0, 3], [0, 3]), ("read", [1, None], [1, None]))
    assert RegisterWorkload().check(fresh)["valid"] is True


def test_append_workload_checks_with_nil_absent() -> None:
    ops = sequential(("append", [0, 1], [0, 1]), ("read", [0, None], [0, [1]]))
    result = AppendWorkload().check(ops)
    assert result["valid"] is True
    assert result["checkers"]["linearizable"]["nil_read"] == "absent"
    stale = sequential(("append", [0, 1], [0, 1]), ("read", [0, None], [0, None]))
    assert AppendWorkload().check(stale)["valid"] is False
    assert ListAppendModel().nil_read == "unknown"  # Knossos' default, as every model's
