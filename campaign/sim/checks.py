"""Checkers only a simulation can run exactly: Raft's own safety and liveness properties.

- election safety (Raft Figure 3): at most one leader per term, read off every node's
  role changes (the driver logs ``role=leader term=N``), by the same checker real runs
  use (``checker.raft_events`` over ``campaign.node_checks``' parser);
- availability under a fault that leaves a connected majority: some write must commit
  within an explicit bound (``liveness_timeouts`` election timeouts) after the fault
  starts, as long as it lasts that long. This is the property pre-vote and check-quorum
  exist for (etcd #9241): without them, a node cut off one way keeps deposing leaders,
  or a leader that cannot hear its followers never steps down.

Each returns a result map with a tri-state ``valid``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from typing import Any

from checker.op import NEMESIS, Op


def election_safety(node_logs: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """One implementation for real runs and simulated ones: the nodes' log lines (here in
    memory, complete by construction) parsed by ``campaign.node_checks`` into
    ``checker.raft_events`` events."""
    from campaign.node_checks import parse_node_logs
    from checker.raft_events import election_safety as check

    parsed = parse_node_logs(node_logs)
    return check(event for log in parsed.values() for event in log.events)


def connected_majority(grudges: Mapping[str, Sequence[str]], nodes: Sequence[str]) -> bool:
    """Whether some majority of nodes can all talk to each other both ways."""

    def linked(a: str, b: str) -> bool:
        return a not in grudges.get(b, ()) and b not in grudges.get(a, ())

    majority = len(nodes) // 2 + 1
    return any(
        all(linked(a, b) for a, b in combinations(group, 2))
        for group in combinations(sorted(nodes), majority)
    )


def availability(
    ops: Sequence[Op],
    nodes: Sequence[str],
    *,
    bound_seconds: float,
    is_read: Callable[[str], bool],
) -> dict[str, Any]:
    """Under every partition that leaves a connected majority and lasts longer than the
    bound, a write invoked after it started must succeed within the bound."""
    bound_ns = int(bound_seconds * 1e9)
    windows: list[tuple[int, int, Any]] = []
    open_start: tuple[int, Any] | None = None
    for op in ops:
        if op.process != NEMESIS:
            continue
        if op.f == "start-partition" and isinstance(op.value, Mapping):
            open_start = (op.time, op.value.get("grudges") or {})
        elif op.f in ("stop-partition", "heal") and open_start is not None:
            windows.append((open_start[0], op.time, open_start[1]))
            open_start = None
    completions: list[tuple[int, int]] = []  # (invoke time, ok time) of writes
    # pair by process: the last invoke of a process precedes its completion
    last_invoke: dict[Any, int] = {}
    for op in ops:
        if op.process == NEMESIS:
            continue
        if op.type == "invoke":
            last_invoke[op.process] = op.time
        elif op.type == "ok" and not is_read(op.f) and op.process in last_invoke:
            completions.append((last_invoke[op.process], op.time))
    checked = 0
    failures = []
    for start, stop, grudges in windows:
        if stop - start <= bound_ns or not connected_majority(grudges, nodes):
            continue
        checked += 1
        if not any(start <= invoked and done <= start + bound_ns for invoked, done in completions):
            failures.append(
                {
                    "fault_start_s": start / 1e9,
                    "fault_stop_s": stop / 1e9,
                    "grudges": grudges,
                }
            )
    if failures:
        return {
            "valid": False,
            "error": (
                f"no write committed within {bound_seconds:g} s of a partition that left a "
                "connected majority"
            ),
            "windows": failures,
            "checked_windows": checked,
        }
    return {"valid": True, "checked_windows": checked, "bound_seconds": bound_seconds}
