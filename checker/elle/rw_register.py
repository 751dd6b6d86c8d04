"""Read-write registers: txns write unique values and read single values (Elle's rw-register).

A read names its writer outright (writes are unique per key), so ``wr`` edges are exact.
The version order is only partly known; like Elle we infer it from:

- the initial state: every key starts at nil, which precedes every value written;
- writes follow reads (Elle's ``wfr-keys``): a txn that reads k = a (before writing k)
  and then writes k = b installs b after a. In any serial order the read saw the latest
  version and the write makes the next one; under read committed and every stronger model
  the read saw a committed version and the write installs at the txn's commit, later.
  Under read uncommitted a txn may read a version installed after its own write, so the
  check of that model leaves this inference out.

Each inferred version edge a → b gives ``ww`` from a's writer to b's writer and ``rw``
from every txn that read a to b's writer. A version a → b need not be adjacent, but the
versions between them chain a's readers and writer to b's writer through rw and ww edges,
so every inferred cycle is witnessed by a cycle of the real graph with as many rw edges.
If a key's inferred order has a cycle, ``cyclic-versions`` is reported and that key's
write-follows-read edges are not used.

Anomalies needing no cycle: ``G1a`` (a read of a failed txn's write), ``G1b`` (a read of a
value its writer overwrote in the same txn), ``internal`` (a read that disagrees with the
txn's own earlier read or write of the key) and ``lost-update``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from checker.elle.explain import arrow, show
from checker.elle.graph import RW, WR, WW, DepGraph
from checker.elle.history import Txn, TxnHistoryError, hashable

MOPS = frozenset({"w", "r"})
MAX_CASES = 16


class DuplicateWrites(TxnHistoryError):
    """Two writes of one value to one key: a read cannot name its writer."""


def external_reads(txn: Txn) -> dict[Any, Any]:
    """Each key's first read, when it comes before any write of the key in the txn."""
    out: dict[Any, Any] = {}
    written: set[Any] = set()
    for f, k, v in txn.mops:
        if f == "w":
            written.add(k)
        elif k not in written and k not in out:
            out[k] = v
    return out


def external_writes(txn: Txn) -> dict[Any, Any]:
    """Each key's last write in the txn."""
    return {k: v for f, k, v in txn.mops if f == "w"}


@dataclass(slots=True)
class Analysis:
    graph: DepGraph
    anomalies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    writer: dict[Any, dict[Any, int]] = field(default_factory=dict)  # key → value → txn id
    wfr: dict[Any, dict[tuple[Any, Any], int]] = field(default_factory=dict)  # (a, b) → txn
    txns: Sequence[Txn] = ()

    def note(self, kind: str, case: dict[str, Any]) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        cases = self.anomalies.setdefault(kind, [])
        if len(cases) < MAX_CASES:
            cases.append(case)

    def explain(self, a: Txn, b: Txn, kind: str) -> dict[str, Any]:
        if kind == "wr":
            reads = external_reads(b)
            for k, v in external_writes(a).items():
                if k in reads and reads[k] == v:
                    return {
                        "type": kind,
                        "key": k,
                        "value": v,
                        "text": f"{b.name} read {show(k)} = {show(v)}, which {a.name} wrote: "
                        f"{arrow(a, kind, b)}",
                    }
        b_writes = external_writes(b)
        a_values = external_writes(a) if kind == "ww" else external_reads(a)
        for k, av in a_values.items():
            if k not in b_writes:
                continue
            bv = b_writes[k]
            verb = "wrote" if kind == "ww" else "read"
            if av is None and kind == "rw":
                why = "nil, the initial state, precedes every write"
            else:
                source = self.wfr.get(k, {}).get((av, bv))
                if source is None:
                    continue
                why = (
                    f"{self.txns[source].name} read {show(k)} = {show(av)} and then wrote "
                    f"{show(bv)}"
                )
            return {
                "type": kind,
                "key": k,
                "value": av,
                "value'": bv,
                "text": f"{a.name} {verb} {show(k)} = {show(av)}, and {b.name} wrote "
                f"{show(k)} = {show(bv)}, which comes later ({why}): {arrow(a, kind, b)}",
            }
        return {"type": kind, "text": arrow(a, kind, b)}  # pragma: no cover - defensive


def analyze(txns: Sequence[Txn], *, wfr_keys: bool = True) -> Analysis:
    graph = DepGraph(len(txns))
    result = Analysis(graph=graph, txns=txns)
    writer: dict[Any, dict[Any, int]] = {}
    failed: dict[Any, dict[Any, int]] = {}
    intermediate: dict[Any, dict[Any, int]] = {}
    seen: dict[Any, set[Any]] = {}
    ext_reads: dict[int, dict[Any, Any]] = {}
    for txn in txns:
        txn.mops = [(f, k, hashable(v)) for f, k, v in txn.mops]
        last: dict[Any, Any] = {}
        for f, k, v in txn.mops:
            if f != "w":
                continue
            values = seen.setdefault(k, set())
            if v in values:
                raise DuplicateWrites(
                    f"op index {txn.invoke_index}: value {show(v)} is written to key "
                    f"{show(k)} more than once; rw-register needs unique writes"
                )
            values.add(v)
            if txn.type == "fail":
                failed.setdefault(k, {})[v] = txn.id
                continue
            if k in last:
                intermediate.setdefault(k, {})[last[k]] = txn.id
            last[k] = v
        if txn.type != "fail":
            for k, v in last.items():
                writer.setdefault(k, {})[v] = txn.id
        if txn.type == "ok":
            ext_reads[txn.id] = external_reads(txn)
    result.writer = writer

    # Anomalies of single reads, and wr edges.
    readers: dict[Any, dict[Any, list[int]]] = {}
    for txn_id, reads in ext_reads.items():
        txn = txns[txn_id]
        for k, v in reads.items():
            readers.setdefault(k, {}).setdefault(v, []).append(txn_id)
            if v is None:
                continue
            w = writer.get(k, {}).get(v)
            if w is not None and w != txn_id:
                graph.add(w, txn_id, WR)
        for f, k, v in txn.mops:
            if f != "r" or v is None:
                continue
            fw = failed.get(k, {}).get(v)
            if fw is not None:
                result.note(
                    "G1a",
                    {
                        "key": k,
                        "value": v,
                        "reader": txn.name,
                        "writer": txns[fw].name,
                        "text": f"{txn.name} read {show(k)} = {show(v)}, written by "
                        f"{txns[fw].name}, a txn that failed",
                    },
                )
            iw = intermediate.get(k, {}).get(v)
            if iw is not None and iw != txn_id:
                result.note(
                    "G1b",
                    {
                        "key": k,
                        "value": v,
                        "reader": txn.name,
                        "writer": txns[iw].name,
                        "text": f"{txn.name} read {show(k)} = {show(v)}, which "
                        f"{txns[iw].name} overwrote within the same txn (an intermediate "
                        f"state)",
                    },
                )
    _internal_cases(result, txns)
    _lost_updates(result, txns, ext_reads)

    # Version order: nil precedes every value; writes follow reads.
    for k, by_value in writer.items():
        nil_readers = readers.get(k, {}).get(None, ())
        for w in by_value.values():
            for r in nil_readers:
                if r != w:
                    graph.add(r, w, RW)
    if wfr_keys:
        pairs: dict[Any, dict[tuple[Any, Any], int]] = {}
        for txn_id, reads in ext_reads.items():
            writes = external_writes(txns[txn_id])
            for k, a in reads.items():
                if a is not None and k in writes and writes[k] != a:
                    pairs.setdefault(k, {}).setdefault((a, writes[k]), txn_id)
        for k, edges in pairs.items():
            g = nx.DiGraph(list(edges))
            cyclic = [c for c in nx.strongly_connected_components(g) if len(c) > 1]
            if cyclic:
                result.note(
                    "cyclic-versions",
                    {
                        "key": k,
                        "values": [sorted(map(show, c)) for c in cyclic],
                        "text": f"the writes-follow-reads order of {show(k)} has a cycle "
                        f"among values {', '.join(show(sorted(map(show, c))) for c in cyclic)}",
                    },
                )
                continue
            result.wfr[k] = edges
            by_value = writer.get(k, {})
            for a, b in edges:
                wb = by_value.get(b)
                if wb is None:
                    continue
                wa = by_value.get(a)
                if wa is not None and wa != wb:
                    graph.add(wa, wb, WW)
                for r in readers.get(k, {}).get(a, ()):
                    if r != wb:
                        graph.add(r, wb, RW)
    return result


def _internal_cases(result: Analysis, txns: Sequence[Txn]) -> None:
    for txn in txns:
        if txn.type != "ok" or len(txn.mops) < 2:
            continue
        state: dict[Any, Any] = {}
        for f, k, v in txn.mops:
            if f == "r" and k in state and state[k] != v:
                result.note(
                    "internal",
                    {
                        "key": k,
                        "txn": txn.name,
                        "read": v,
                        "expected": state[k],
                        "text": f"{txn.name} read {show(k)} = {show(v)}, but its own earlier "
                        f"read or write says {show(state[k])}",
                    },
                )
                break
            state[k] = v


def _lost_updates(
    result: Analysis, txns: Sequence[Txn], ext_reads: dict[int, dict[Any, Any]]
) -> None:
    groups: dict[tuple[Any, Any], list[int]] = {}
    for txn_id, reads in ext_reads.items():
        writes = external_writes(txns[txn_id])
        for k, v in reads.items():
            if k in writes:
                groups.setdefault((k, v), []).append(txn_id)
    for (k, v), ids in groups.items():
        if len(ids) > 1:
            names = [txns[i].name for i in ids]
            result.note(
                "lost-update",
                {
                    "key": k,
                    "value": v,
                    "txns": names,
                    "text": f"{', '.join(names)} all read {show(k)} = {show(v)} and then "
                    f"wrote {show(k)}",
                },
            )
