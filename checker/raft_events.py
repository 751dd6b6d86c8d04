"""Raft's own safety properties, checked over events a cluster's nodes report.

Generic: the events are plain records any Raft implementation's logs can be turned into
(``campaign/node_checks.py`` parses raftnode's node logs, the simulation feeds its nodes'
in-memory log lines through the same parser). Three checkers, each giving a result map
with a tri-state ``valid``:

- ``election_safety``: at most one leader per term across all nodes (Raft Figure 3,
  Election Safety; §5.2);
- ``commit_monotonic``: a node's commit index never goes backwards within one incarnation
  (one process lifetime). The commit index is volatile state (Figure 2): a restarted node
  starts again from what it persisted (possibly stale) or zero and relearns it from the
  leader, so a restart is not a regression and is not checked as one;
- ``acknowledged_writes``: every acknowledged write is in the final committed log: it was
  applied at some index, no node ever applied a different entry at that index (State
  Machine Safety, Figure 3), and the nodes' final incarnations applied at least that far.

A violation found is certain even when some logs are missing (``complete=False``): it is
reported ``False``. What missing or damaged logs could hide makes a clean result
``"unknown"``, never ``True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

UNKNOWN = "unknown"
MAX_LISTED = 20  # violations listed in a result; the count is always exact


@dataclass(frozen=True, slots=True)
class RoleChange:
    """A node reports its role in a term (``role`` is e.g. leader, follower, candidate)."""

    node: str
    incarnation: int
    role: str
    term: int
    time: str = ""  # as the log wrote it: for people, never compared


@dataclass(frozen=True, slots=True)
class CommitIndex:
    """A node reports its commit index; ``regressed_from`` when the node itself saw it go
    down from that value (a report made at once, not sampled)."""

    node: str
    incarnation: int
    index: int
    regressed_from: int | None = None
    time: str = ""


@dataclass(frozen=True, slots=True)
class Applied:
    """A node applies (or is about to apply) the committed entry at ``index``, of ``term``.
    ``digest`` identifies the entry's content (two different entries at one index of one
    term differ in it); ``session`` is the (client id, seq) of the write it carries,
    where the node knows it (the node that proposed it), else None."""

    node: str
    incarnation: int
    index: int
    term: int
    digest: str
    session: tuple[str, int] | None = None
    time: str = ""


@dataclass(frozen=True, slots=True)
class Incarnation:
    """A node (re)starts; what it restored already covers entries up to ``snapshot_index``."""

    node: str
    incarnation: int
    snapshot_index: int = 0
    time: str = ""


@dataclass(frozen=True, slots=True)
class Restored:
    """A node installs a snapshot (from the leader) covering entries up to ``index``."""

    node: str
    incarnation: int
    index: int
    time: str = ""


@dataclass(frozen=True, slots=True)
class Ack:
    """An acknowledged write of the history: op ``op_index`` carried (client, seq)."""

    op_index: int
    client: str
    seq: int


Event = RoleChange | CommitIndex | Applied | Incarnation | Restored


def _clean(result: dict[str, Any], complete: bool, missing: str) -> dict[str, Any]:
    if complete:
        result["valid"] = True
    else:
        result["valid"] = UNKNOWN
        result["error"] = f"nothing wrong seen, but {missing}"
    return result


def election_safety(
    events: Iterable[Event], *, complete: bool = True, missing: str = "logs are missing"
) -> dict[str, Any]:
    """At most one leader per term (Figure 3). ``complete``: every node's reports are here."""
    leaders: dict[int, dict[str, str]] = {}
    for event in events:
        if isinstance(event, RoleChange) and event.role == "leader":
            leaders.setdefault(event.term, {}).setdefault(event.node, event.time)
    violations = {term: nodes for term, nodes in sorted(leaders.items()) if len(nodes) > 1}
    if violations:
        return {
            "valid": False,
            "error": "two leaders in one term (Election Safety, Raft Figure 3)",
            "terms": {
                str(term): sorted(nodes) for term, nodes in list(violations.items())[:MAX_LISTED]
            },
            "became_leader_at": {
                str(term): dict(sorted(nodes.items()))
                for term, nodes in list(violations.items())[:MAX_LISTED]
            },
            "violations": len(violations),
        }
    return _clean({"terms_with_a_leader": len(leaders)}, complete, missing)


def commit_monotonic(
    events: Iterable[Event], *, complete: bool = True, missing: str = "logs are missing"
) -> dict[str, Any]:
    """Within one incarnation of a node, no commit index report is below an earlier one,
    and the node reported no regression of its own."""
    highest: dict[tuple[str, int], int] = {}
    reports = 0
    violations: list[dict[str, Any]] = []
    for event in events:
        if not isinstance(event, CommitIndex):
            continue
        reports += 1
        key = (event.node, event.incarnation)
        before = highest.get(key)
        fell_from = None
        if event.regressed_from is not None and event.regressed_from > event.index:
            fell_from = event.regressed_from  # the node saw it fall between two samples
        elif before is not None and event.index < before:
            fell_from = before
        if fell_from is None:
            highest[key] = max(before or 0, event.index)
            continue
        violations.append(
            {
                "node": event.node,
                "incarnation": event.incarnation,
                "from": fell_from,
                "to": event.index,
                "time": event.time,
            }
        )
        highest[key] = event.index  # it goes on from where it fell: only a new fall counts
    if violations:
        return {
            "valid": False,
            "error": "a node's commit index went backwards within one incarnation",
            "regressions": violations[:MAX_LISTED],
            "violations": len(violations),
        }
    return _clean(
        {"reports": reports, "incarnations": len(highest)},
        complete,
        missing,
    )


def acknowledged_writes(
    acks: Sequence[Ack],
    events: Iterable[Event],
    *,
    complete: bool = True,
    missing: str = "logs are missing",
) -> dict[str, Any]:
    """Every acknowledged write is in the final committed log.

    A write acknowledged to its client was applied first (the node answers at apply
    time), so it has an ``Applied`` report. It is in the final state when, at some index
    where it was applied, every report of that index names the same (term, digest) —
    any other entry there means a committed entry was replaced (State Machine Safety) —
    and the nodes' last incarnations applied that index (their restored snapshot or
    their reports reach it). Sound given complete reports: each condition that fails
    is a fact about what the nodes did; with ``complete`` false, an absence is unknown.
    """
    at_index: dict[int, set[tuple[int, str]]] = {}
    where: dict[tuple[str, int], set[int]] = {}
    events = list(events)
    last_incarnation: dict[str, int] = {}
    for event in events:
        if isinstance(event, Incarnation | Applied | Restored):
            last = last_incarnation.get(event.node, event.incarnation)
            last_incarnation[event.node] = max(last, event.incarnation)
    reach: dict[str, int] = {}  # node -> highest index its last incarnation holds applied
    for event in events:
        if isinstance(event, Applied):
            at_index.setdefault(event.index, set()).add((event.term, event.digest))
            if event.session is not None:
                where.setdefault(event.session, set()).add(event.index)
        if isinstance(event, Incarnation | Applied | Restored) and (
            event.incarnation == last_incarnation[event.node]
        ):
            index = event.snapshot_index if isinstance(event, Incarnation) else event.index
            reach[event.node] = max(reach.get(event.node, 0), index)
    final_reach = max(reach.values(), default=0)
    lost: list[dict[str, Any]] = []
    undecided: list[dict[str, Any]] = []
    confirmed = 0
    for ack in acks:
        session = (ack.client, ack.seq)
        indexes = sorted(where.get(session, ()))
        if not indexes:
            item = {"op_index": ack.op_index, "client": ack.client, "seq": ack.seq}
            if complete:
                lost.append({**item, "why": "no node ever applied it"})
            else:
                undecided.append({**item, "why": "not applied in the logs that are here"})
            continue
        consistent = [i for i in indexes if len(at_index[i]) == 1]
        if not consistent:
            lost.append(
                {
                    "op_index": ack.op_index,
                    "client": ack.client,
                    "seq": ack.seq,
                    "why": "another entry was applied at its index (State Machine Safety)",
                    "indexes": {
                        str(i): sorted(_describe(entry) for entry in at_index[i])
                        for i in indexes[:3]
                    },
                }
            )
        elif consistent[0] > final_reach:
            undecided.append(
                {
                    "op_index": ack.op_index,
                    "client": ack.client,
                    "seq": ack.seq,
                    "index": consistent[0],
                    "why": f"the nodes' last incarnations applied only up to {final_reach}",
                }
            )
        else:
            confirmed += 1
    summary = {"acknowledged": len(acks), "confirmed": confirmed, "final_index": final_reach}
    if lost:
        return {
            "valid": False,
            "error": f"{len(lost)} acknowledged writes are not in the final committed log",
            "lost": lost[:MAX_LISTED],
            **summary,
        }
    if undecided:
        return {
            "valid": UNKNOWN,
            "error": f"{len(undecided)} acknowledged writes could not be placed in the final log",
            "undecided": undecided[:MAX_LISTED],
            **summary,
        }
    return _clean(summary, complete, missing)


def _describe(entry: tuple[int, str]) -> str:
    term, digest = entry
    return f"term {term} digest {digest}"
