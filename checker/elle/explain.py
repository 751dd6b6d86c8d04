"""Words for people: values, edges and cycles as sentences (Elle's explainers, our words).

Every edge of a reported cycle is one sentence ending in ``A kind→ B``, for instance
``T2 read x = [1 2] without T5's append of 3, which T1 later saw after 2: T2 rw→ T5``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from checker.elle.history import Txn

ARROWS = {"ww": "ww→", "wr": "wr→", "rw": "rw→", "process": "process→", "realtime": "rt→"}


def show(value: Any) -> str:
    """A value the way Jepsen prints it: nil, [1 2 3], x."""
    if value is None:
        return "nil"
    if isinstance(value, list | tuple):
        return "[" + " ".join(show(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def arrow(a: Txn, kind: str, b: Txn) -> str:
    return f"{a.name} {ARROWS[kind]} {b.name}"


def explain_order_edge(a: Txn, b: Txn, kind: str) -> dict[str, Any]:
    """Process and real-time edges: the same words for every workload."""
    if kind == "process":
        text = f"{a.name} and {b.name} ran on process {a.process}, {a.name} first"
    else:
        text = (
            f"{a.name} completed (op {a.index}) before {b.name} was invoked "
            f"(op {b.invoke_index})"
        )
    return {"type": kind, "text": f"{text}: {arrow(a, kind, b)}"}


def explain_cycle(
    steps: Sequence[tuple[int, int, str]],
    txns: Sequence[Txn],
    explain_data: Callable[[Txn, Txn, str], dict[str, Any]],
) -> list[dict[str, Any]]:
    out = []
    for a_id, b_id, kind in steps:
        a, b = txns[a_id], txns[b_id]
        if kind in ("process", "realtime"):
            step = explain_order_edge(a, b, kind)
        else:
            step = explain_data(a, b, kind)
        out.append({"from": a.name, "to": b.name, **step})
    return out


def txn_summary(txn: Txn) -> dict[str, Any]:
    return {
        "name": txn.name,
        "index": txn.index,
        "process": txn.process,
        "type": txn.type,
        "value": [[f, list(k) if isinstance(k, tuple) else k, v] for f, k, v in txn.mops],
    }


def cycle_text(anomaly: dict[str, Any]) -> list[str]:
    """Lines for a terminal: the cycle, then one line per edge."""
    names = [step["from"] for step in anomaly["steps"]]
    lines = [f"{anomaly['type']}: " + " → ".join([*names, names[0]])]
    lines.extend(f"  {step['text']}" for step in anomaly["steps"])
    return lines
