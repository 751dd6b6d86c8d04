"""List-append: txns append unique values to lists and read whole lists (Elle's list-append).

Because an append only adds to the end, every read shows a prefix of the key's version
order. So per key the longest read *is* the version order of what was read, every other
read must be a prefix of it (else ``incompatible-order``), and the dependencies follow:

- ``wr``: the txn that appended a read's last element → the reader;
- ``ww``: the txn that appended element i-1 → the one that appended element i;
- ``rw``: every txn that read the list ending at element i-1 (``[]`` for the first) → the
  txn that appended element i.

An append no read shows still comes after every element read (a read that contained an
element but not an earlier-appended one would not be a prefix), so it gets ww/rw edges from
the last element read, as in Elle. Anomalies that need no cycle: ``G1a`` (a read shows an
element a failed txn appended), ``G1b`` (a read ends at an element that was not its txn's
last append to the key), ``dirty-update``, ``duplicate-elements``, ``internal`` (a read
disagrees with the txn's own earlier read or append), ``future-read``, ``lost-update`` (two
committed txns read the same state of a key and both appended to it) and ``lost-append``
(an acknowledged append no read shows, though an ok read of the key was invoked after it
completed — Elle has no name of its own for this: it is one of its G-single-realtime
cycles, which strict serializability forbids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from checker.elle.explain import arrow, show
from checker.elle.graph import RW, WR, WW, DepGraph
from checker.elle.history import Txn, TxnHistoryError

MOPS = frozenset({"append", "r"})
INIT = object()  # the empty list every key starts from
MAX_CASES = 16  # examples kept per anomaly kind (the count is kept whole)


class DuplicateAppends(TxnHistoryError):
    """Two appends of one value to one key: the version order cannot be recovered."""


@dataclass(slots=True)
class KeyOrder:
    values: list[Any]  # the version order (the longest read, duplicates dropped)
    index: dict[Any, int]
    source: int | None  # txn id whose read gave it


@dataclass(slots=True)
class Analysis:
    graph: DepGraph
    anomalies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    orders: dict[Any, KeyOrder] = field(default_factory=dict)
    writer: dict[Any, dict[Any, int]] = field(default_factory=dict)  # key → element → txn id
    txns: Sequence[Txn] = ()

    def note(self, kind: str, case: dict[str, Any]) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        cases = self.anomalies.setdefault(kind, [])
        if len(cases) < MAX_CASES:
            cases.append(case)

    # ------------------------------------------------------------------ explanations

    def explain(self, a: Txn, b: Txn, kind: str) -> dict[str, Any]:
        """Why ``a kind→ b``, found again from the indexes (Elle's pair explainers)."""
        if kind == "wr":
            for f, k, v in b.mops:
                if f == "r" and v and self.writer.get(k, {}).get(v[-1]) == a.id:
                    return {
                        "type": kind,
                        "key": k,
                        "value": v[-1],
                        "text": f"{b.name} read {show(k)} = {show(v)}, whose last element "
                        f"{show(v[-1])} {a.name} appended: {arrow(a, kind, b)}",
                    }
        for f, k, e in b.mops:
            if f != "append":
                continue
            prev = self.previous(k, e)
            if kind == "ww" and prev is not INIT and self.writer[k].get(prev) == a.id:
                return {
                    "type": kind,
                    "key": k,
                    "value": prev,
                    "value'": e,
                    "text": f"{b.name} appended {show(e)} to {show(k)} right after "
                    f"{a.name}'s append of {show(prev)}{self._order_note(k, e)}: "
                    f"{arrow(a, kind, b)}",
                }
            if kind == "rw":
                for rf, rk, rv in a.mops:
                    if rf != "r" or rk != k or rv is None:
                        continue
                    ends = rv[-1] if rv else INIT
                    if ends is prev or ends == prev:
                        return {
                            "type": kind,
                            "key": k,
                            "value": None if prev is INIT else prev,
                            "value'": e,
                            "text": self._rw_text(a, b, k, rv, e, prev),
                        }
        return {"type": kind, "text": f"{arrow(a, kind, b)}"}  # pragma: no cover - defensive

    def previous(self, key: Any, element: Any) -> Any:
        order = self.orders.get(key)
        if order is None:
            return INIT
        i = order.index.get(element)
        if i is None:  # never read: after everything read
            return order.values[-1] if order.values else INIT
        return order.values[i - 1] if i > 0 else INIT

    def _order_note(self, key: Any, element: Any) -> str:
        order = self.orders.get(key)
        if order is None or element not in order.index:
            return " (no read shows it, so it follows every element read)"
        source = self.txns[order.source].name if order.source is not None else "a read"
        return f" (as {source} read {show(key)})"

    def _rw_text(self, a: Txn, b: Txn, key: Any, read: list[Any], e: Any, prev: Any) -> str:
        order = self.orders.get(key)
        if order is not None and e in order.index and order.source is not None:
            seen = self.txns[order.source].name
            later = "later " if seen != a.name else ""
            after = "first" if prev is INIT else f"after {show(prev)}"
            why = f", which {seen} {later}saw {after}"
        else:
            why = ", which no read shows, so it follows every element read"
        state = "the initial state" if not read else None
        shown = f"{show(read)}" + (f" ({state})" if state else "")
        return (
            f"{a.name} read {show(key)} = {shown} without {b.name}'s append of {show(e)}"
            f"{why}: {arrow(a, 'rw', b)}"
        )


def _read_list(value: Any, txn: Txn) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise TxnHistoryError(
            f"op index {txn.index}: expected a list-append read to return a list, got "
            f"{value!r:.60}"
        )
    return list(value)


def analyze(txns: Sequence[Txn]) -> Analysis:
    """Indexes, the dependency graph and the anomalies that need no cycle."""
    graph = DepGraph(len(txns))
    result = Analysis(graph=graph, txns=txns)
    writer: dict[Any, dict[Any, int]] = {}  # ok/info appends
    failed: dict[Any, dict[Any, int]] = {}
    intermediate: dict[Any, dict[Any, int]] = {}
    longest: dict[Any, tuple[int, list[Any]]] = {}
    reads: list[tuple[int, Any, list[Any]]] = []  # (txn id, key, value) of ok reads
    duplicated: set[int] = set()  # positions in reads of reads with duplicate elements
    last_read_invoke: dict[Any, int] = {}  # key → latest invoke position of an ok read

    for txn in txns:
        tid = txn.id
        ok = txn.type == "ok"
        fail = txn.type == "fail"
        last_append: dict[Any, Any] | None = None
        mops = txn.mops
        for i, (f, k, v) in enumerate(mops):
            if f == "append":
                by_value = writer.get(k)
                if by_value is None:
                    by_value = writer[k] = {}
                if v in by_value or v in failed.get(k, ()):
                    raise DuplicateAppends(
                        f"op index {txn.invoke_index}: value {show(v)} is appended to key "
                        f"{show(k)} more than once; list-append needs unique appends"
                    )
                if fail:
                    failed.setdefault(k, {})[v] = tid
                    continue
                by_value[v] = tid
                if last_append is None:
                    last_append = {k: v}
                else:
                    if k in last_append:
                        intermediate.setdefault(k, {})[last_append[k]] = tid
                    last_append[k] = v
            elif ok:
                if type(v) is not list:
                    v = _read_list(v, txn)
                try:
                    if len(set(v)) != len(v):
                        duplicated.add(len(reads))
                except TypeError:  # elements that are lists or maps
                    v = [_hashable(e) for e in v]
                    if len(set(v)) != len(v):
                        duplicated.add(len(reads))
                mops[i] = (f, k, v)
                reads.append((tid, k, v))
                best = longest.get(k)
                if best is None or len(v) > len(best[1]):
                    longest[k] = (tid, v)
                if txn.invoke_pos > last_read_invoke.get(k, -1):
                    last_read_invoke[k] = txn.invoke_pos
    result.writer = writer

    # Version orders.
    for k, (source, value) in longest.items():
        distinct = list(dict.fromkeys(value))
        result.orders[k] = KeyOrder(distinct, {e: i for i, e in enumerate(distinct)}, source)

    # Each read: compatible with the order? its anomalies, its readers entry, its wr edge.
    out = graph.out
    readers: dict[Any, dict[Any, list[int]]] = {}
    for position, (tid, k, value) in enumerate(reads):
        source, source_value = longest[k]
        n = len(value)
        if n and value is not source_value and value != source_value[:n]:
            result.note(
                "incompatible-order",
                {
                    "key": k,
                    "values": [value, source_value],
                    "txns": [txns[tid].name, txns[source].name],
                    "text": f"{txns[tid].name} read {show(k)} = {show(value)}, which is "
                    f"not a prefix of {txns[source].name}'s read {show(source_value)}",
                },
            )
        end = value[-1] if n else INIT
        by_end = readers.get(k)
        if by_end is None:
            readers[k] = {end: [tid]}
        else:
            ids = by_end.get(end)
            if ids is None:
                by_end[end] = [tid]
            else:
                ids.append(tid)
        if not n:
            continue
        w = writer[k].get(end) if k in writer else None
        if w is not None and w != tid:
            succ = out[w]
            if succ is None:
                out[w] = {tid: WR}
            else:
                succ[tid] = succ.get(tid, 0) | WR
        if k in failed or k in intermediate or position in duplicated:
            _check_read(result, txns[tid], k, value, failed, intermediate)

    # ww and rw edges of each append, from the element before it.
    orders = result.orders
    empty: dict[Any, list[int]] = {}
    for txn in txns:
        if txn.type == "fail":
            continue
        tid = txn.id
        for f, k, e in txn.mops:
            if f != "append":
                continue
            order = orders.get(k)
            if order is None:
                prev = INIT
            else:
                i = order.index.get(e)
                if i is None:
                    prev = order.values[-1] if order.values else INIT
                else:
                    prev = order.values[i - 1] if i > 0 else INIT
            if prev is not INIT:
                w = writer[k].get(prev)
                if w is not None and w != tid:
                    succ = out[w]
                    if succ is None:
                        out[w] = {tid: WW}
                    else:
                        succ[tid] = succ.get(tid, 0) | WW
            for r in readers.get(k, empty).get(prev, ()):
                if r != tid:
                    succ = out[r]
                    if succ is None:
                        out[r] = {tid: RW}
                    else:
                        succ[tid] = succ.get(tid, 0) | RW

    _internal_cases(result, txns)
    _dirty_updates(result, txns, failed)
    _lost_updates(result, txns)
    _lost_appends(result, txns, last_read_invoke)
    return result


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        from checker.elle.history import hashable

        return hashable(value)
    return value


def _hashable_elements(value: list[Any]) -> list[Any]:
    try:
        hash(tuple(value))  # the usual case (numbers, strings): nothing to convert
    except TypeError:
        return [_hashable(e) for e in value]
    return value


def _check_read(
    result: Analysis,
    txn: Txn,
    k: Any,
    value: list[Any],
    failed: dict[Any, dict[Any, int]],
    intermediate: dict[Any, dict[Any, int]],
) -> None:
    """Anomalies of one nonempty read: G1a, G1b, duplicate elements."""
    txns = result.txns
    try:
        hashed, distinct = value, set(value)
    except TypeError:
        hashed = [_hashable(e) for e in value]
        distinct = set(hashed)
    failed_k = failed.get(k)
    if failed_k and not failed_k.keys().isdisjoint(hashed):
        for e in hashed:
            w = failed_k.get(e)
            if w is not None:
                result.note(
                    "G1a",
                    {
                        "key": k,
                        "element": e,
                        "reader": txn.name,
                        "writer": txns[w].name,
                        "text": f"{txn.name} read {show(k)} = {show(value)}, which holds "
                        f"{show(e)}, appended by {txns[w].name}, a txn that failed",
                    },
                )
    im = intermediate.get(k)
    if im:
        w = im.get(hashed[-1])
        if w is not None and w != txn.id:
            result.note(
                "G1b",
                {
                    "key": k,
                    "element": value[-1],
                    "reader": txn.name,
                    "writer": txns[w].name,
                    "text": f"{txn.name} read {show(k)} = {show(value)}, ending at "
                    f"{show(value[-1])}, which {txns[w].name} followed with another append "
                    f"to {show(k)} in the same txn (an intermediate state)",
                },
            )
    if len(distinct) != len(hashed):
        counts: dict[Any, int] = {}
        for e in hashed:
            counts[e] = counts.get(e, 0) + 1
        dups = {show(e): c for e, c in counts.items() if c > 1}
        result.note(
            "duplicate-elements",
            {
                "key": k,
                "reader": txn.name,
                "duplicates": dups,
                "text": f"{txn.name} read {show(k)} = {show(value)}, in which "
                + ", ".join(f"{e} appears {c} times" for e, c in dups.items()),
            },
        )


def _internal_cases(result: Analysis, txns: Sequence[Txn]) -> None:
    """Reads that disagree with the txn's own earlier reads and appends (Elle's op-int-case),
    and reads of elements the txn appends only later (future-read)."""
    for txn in txns:
        mops = txn.mops
        # Both anomalies need two micro-ops on one key.
        if txn.type != "ok" or len(mops) < 2 or len({m[1] for m in mops}) == len(mops):
            continue
        state: dict[Any, tuple[bool, list[Any]]] = {}  # key → (prefix known, expected tail)
        earlier_reads: dict[Any, list[list[Any]]] = {}
        for f, k, v in txn.mops:
            if f == "append":
                if any(v in r for r in earlier_reads.get(k, ())):
                    result.note(
                        "future-read",
                        {
                            "key": k,
                            "element": v,
                            "txn": txn.name,
                            "text": f"{txn.name} read {show(k)} holding {show(v)} before "
                            f"appending {show(v)} itself",
                        },
                    )
                known, expected = state.get(k, (False, []))
                state[k] = (known, [*expected, v])
                continue
            earlier_reads.setdefault(k, []).append(v)
            if k in state:
                known, expected = state[k]
                bad = (v != expected) if known else (
                    len(v) < len(expected) or v[len(v) - len(expected):] != expected
                )
                if bad:
                    shown = show(expected) if known else "[... " + show(expected)[1:]
                    result.note(
                        "internal",
                        {
                            "key": k,
                            "txn": txn.name,
                            "read": v,
                            "expected": shown,
                            "text": f"{txn.name} read {show(k)} = {show(v)}, but its own "
                            f"earlier reads and appends say it should be {shown}",
                        },
                    )
            state[k] = (True, v)


def _dirty_updates(
    result: Analysis, txns: Sequence[Txn], failed: dict[Any, dict[Any, int]]
) -> None:
    """A committed append right after a failed txn's append in a version order."""
    for k, order in result.orders.items():
        failed_k = failed.get(k)
        if not failed_k:
            continue
        writers = result.writer.get(k, {})
        previous_failed: int | None = None
        for e in order.values:
            if e in failed_k:
                previous_failed = failed_k[e]
                continue
            w = writers.get(e)
            if previous_failed is not None and w is not None and txns[w].type == "ok":
                result.note(
                    "dirty-update",
                    {
                        "key": k,
                        "txns": [txns[previous_failed].name, txns[w].name],
                        "text": f"{txns[w].name} (ok) appended {show(e)} to {show(k)} after "
                        f"an append of the failed {txns[previous_failed].name}",
                    },
                )
            if w is not None and txns[w].type == "ok":
                previous_failed = None


def _lost_updates(result: Analysis, txns: Sequence[Txn]) -> None:
    """Two committed txns read one state of a key and both appended to it (Elle's
    lost-update: one of the two must have missed the other's append)."""
    groups: dict[tuple[Any, Any], list[int]] = {}
    for txn in txns:
        if txn.type != "ok":
            continue
        mops = txn.mops
        if len(mops) < 2 or len({m[1] for m in mops}) == len(mops):  # needs a read, then an append
            continue
        first_read: dict[Any, Any] = {}
        wrote: set[Any] = set()
        for f, k, v in txn.mops:
            if f == "r":
                if k not in first_read and k not in wrote:
                    first_read[k] = v
            elif k not in wrote:
                wrote.add(k)
                if k in first_read:
                    state = tuple(_hashable_elements(first_read[k]))
                    groups.setdefault((k, state), []).append(txn.id)
    for (k, value), ids in groups.items():
        if len(ids) > 1:
            names = [txns[i].name for i in ids]
            result.note(
                "lost-update",
                {
                    "key": k,
                    "value": list(value),
                    "txns": names,
                    "text": f"{', '.join(names)} all read {show(k)} = {show(list(value))} and "
                    f"then appended to it",
                },
            )


def _lost_appends(
    result: Analysis, txns: Sequence[Txn], last_read_invoke: dict[Any, int]
) -> None:
    for k, writers in result.writer.items():
        latest = last_read_invoke.get(k)
        if latest is None:
            continue
        order = result.orders.get(k)
        index = order.index if order is not None else {}
        for e, w in writers.items():
            txn = txns[w]
            if (
                txn.type == "ok"
                and e not in index
                and txn.complete_pos is not None
                and txn.complete_pos < latest
            ):
                result.note(
                    "lost-append",
                    {
                        "key": k,
                        "element": e,
                        "writer": txn.name,
                        "text": f"{txn.name}'s append of {show(e)} to {show(k)} was "
                        f"acknowledged, yet no read shows it, not even one invoked after "
                        f"it completed",
                    },
                )
