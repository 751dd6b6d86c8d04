"""Dependency graphs over transactions, their strongly connected components, and cycles.

Vertices are txn ids (0 … n-1). An edge u → v carries a bit set of kinds: ``ww``, ``wr``,
``rw`` (data dependencies inferred by a workload), ``process`` and ``realtime``.

Scale. Real-time precedence (u completed before v was invoked) has O(n²) pairs and even
its transitive reduction has O(n × concurrency) edges. For finding components it is
encoded instead with *barrier* vertices n, n+1, …: each completion links its txn to the
newest barrier, each invoke links the newest barrier to its txn, and barriers chain in
time order. A txn reaches another through barriers exactly when it completed before the
other was invoked, so reachability between txns — hence the components, restricted to
txns — is the same as with every real-time edge, in O(n) edges. Inside a component the
real-time edges among its members are then made explicit (a transitive reduction by the
usual frontier sweep) so that cycles name real txns.

Before networkx computes components, vertices that cannot lie on a cycle are peeled off:
repeatedly drop vertices with no in-edge or no out-edge among those remaining (Kahn's
algorithm both ways). A vertex with no in-edge among the remaining vertices is on no cycle
of them, and every cycle lies within the remaining ones, so nothing on a cycle is ever
dropped. On an acyclic graph — every valid history — this removes everything in linear
time and networkx sees an empty graph.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import networkx as nx

WW, WR, RW, PROCESS, REALTIME = 1, 2, 4, 8, 16
DATA = WW | WR | RW
KINDS: tuple[tuple[str, int], ...] = (
    ("ww", WW),
    ("wr", WR),
    ("process", PROCESS),
    ("realtime", REALTIME),
    ("rw", RW),
)
BIT = dict(KINDS)


class DepGraph:
    """Edges u → v with kind bits, as one dict of successors per vertex."""

    __slots__ = ("n", "out")

    def __init__(self, n: int) -> None:
        self.n = n
        self.out: list[dict[int, int] | None] = [None] * n

    def add(self, u: int, v: int, bit: int) -> None:
        if u == v:
            return
        succ = self.out[u]
        if succ is None:
            self.out[u] = {v: bit}
        else:
            succ[v] = succ.get(v, 0) | bit

    def add_vertex(self) -> int:
        self.out.append(None)
        self.n += 1
        return self.n - 1

    def edge_count(self) -> int:
        return sum(len(s) for s in self.out if s)


# What the order graphs need of a txn, as a plain tuple (100k of them are built per check):
# (txn id, process, invoke position, completion position or None when it never completed
# ok — an info txn may take effect at any later time, so it precedes nothing).
TimedTxn = tuple[int, "int | str", int, "int | None"]


def process_order(txns: Sequence[TimedTxn]) -> list[tuple[int, int]]:
    """Each process's txns in invoke order: a process runs one txn at a time.

    Edges leave only txns that completed ok: one that ended ``info`` may take effect after
    its process moved on (Jepsen's processes never do; other histories may), so the next
    txn is linked from the last ok one before it instead.
    """
    last_ok: dict[int | str, int] = {}
    edges: list[tuple[int, int]] = []
    for txn_id, process, _, complete_pos in sorted(txns, key=lambda t: t[2]):
        previous = last_ok.get(process)
        if previous is not None:
            edges.append((previous, txn_id))
        if complete_pos is not None:
            last_ok[process] = txn_id
    return edges


def add_process_edges(graph: DepGraph, txns: Sequence[TimedTxn]) -> None:
    out = graph.out
    for previous, txn_id in process_order(txns):
        succ = out[previous]
        if succ is None:
            out[previous] = {txn_id: PROCESS}
        else:
            succ[txn_id] = succ.get(txn_id, 0) | PROCESS


def add_realtime_barriers(graph: DepGraph, txns: Sequence[TimedTxn]) -> None:
    """Real-time precedence through barrier vertices (see the module's docstring)."""
    events: list[tuple[int, int, int]] = []  # (position, 0 completion / 1 invoke, txn id)
    for txn_id, _, invoke_pos, complete_pos in txns:
        events.append((invoke_pos, 1, txn_id))
        if complete_pos is not None:
            events.append((complete_pos, 0, txn_id))
    events.sort()
    out = graph.out
    barrier = -1
    fresh = False  # no invoke has linked from the newest barrier yet
    for _, kind, txn_id in events:
        if kind == 0:
            if barrier < 0 or not fresh:
                new = graph.add_vertex()
                if barrier >= 0:
                    succ = out[barrier]
                    if succ is None:
                        out[barrier] = {new: REALTIME}
                    else:
                        succ[new] = REALTIME
                barrier, fresh = new, True
            succ = out[txn_id]
            if succ is None:
                out[txn_id] = {barrier: REALTIME}
            else:
                succ[barrier] = REALTIME
        elif barrier >= 0:
            succ = out[barrier]
            if succ is None:
                out[barrier] = {txn_id: REALTIME}
            else:
                succ[txn_id] = REALTIME
            fresh = False


def realtime_reduction(txns: Sequence[TimedTxn]) -> list[tuple[int, int]]:
    """Real-time edges among ``txns`` (u completed before v invoked), transitively reduced.

    Sweep events in order keeping a frontier of completed txns no later completion is known
    to follow; an invoke links the frontier to the txn; a completion removes from the
    frontier the txns that preceded the completing one, then joins it.
    """
    events: list[tuple[int, int, int]] = []
    for i, (_, _, invoke_pos, complete_pos) in enumerate(txns):
        events.append((invoke_pos, 1, i))
        if complete_pos is not None:
            events.append((complete_pos, 0, i))
    events.sort()
    frontier: set[int] = set()
    preds: dict[int, list[int]] = {}
    edges: list[tuple[int, int]] = []
    for _, kind, i in events:
        if kind == 1:
            preds[i] = list(frontier)
            edges.extend((txns[p][0], txns[i][0]) for p in frontier)
        else:
            frontier.difference_update(preds.get(i, ()))
            frontier.add(i)
    return edges


def cyclic_core(graph: DepGraph) -> list[int]:
    """Vertices left after peeling those with no in-edge or no out-edge, repeatedly.

    Forward first (Kahn: drop vertices with no in-edge): on an acyclic graph — a valid
    history — that alone empties it. Only what is left is peeled backwards.
    """
    n = graph.n
    out = graph.out
    indeg = [0] * n
    for succ in out:
        if succ:
            for v in succ:
                indeg[v] += 1
    queue = [u for u in range(n) if indeg[u] == 0]
    pop, push = queue.pop, queue.append
    while queue:
        succ = out[pop()]
        if succ:
            for v in succ:
                d = indeg[v] - 1
                indeg[v] = d
                if d == 0:
                    push(v)
    rest = [u for u in range(n) if indeg[u] > 0]
    if not rest:
        return []
    alive = set(rest)
    outdeg: dict[int, int] = {}
    preds: dict[int, list[int]] = {u: [] for u in rest}
    for u in rest:
        succ = out[u]
        count = 0
        for v in succ or ():
            if v in alive:
                count += 1
                preds[v].append(u)
        outdeg[u] = count
    stack = [u for u in rest if outdeg[u] == 0]
    while stack:
        u = stack.pop()
        alive.discard(u)
        for w in preds[u]:
            if w in alive:
                outdeg[w] -= 1
                if outdeg[w] == 0:
                    stack.append(w)
    return [u for u in rest if u in alive]


def components(graph: DepGraph, txn_count: int) -> list[list[int]]:
    """The strongly connected components with a cycle, as lists of txn ids (barrier
    vertices, numbered from ``txn_count``, left out), largest first."""
    core = cyclic_core(graph)
    if not core:
        return []
    members = set(core)
    nxg = nx.DiGraph()
    nxg.add_nodes_from(core)
    nxg.add_edges_from(
        (u, v) for u in core for v in (graph.out[u] or ()) if v in members
    )
    out: list[list[int]] = []
    for scc in nx.strongly_connected_components(nxg):
        if len(scc) > 1:
            out.append(sorted(u for u in scc if u < txn_count))
    out.sort(key=len, reverse=True)
    return out


# --------------------------------------------------------------------------- local graphs


Local = dict[int, dict[int, int]]


def local_graph(
    graph: DepGraph,
    member_ids: Sequence[int],
    timed: Sequence[TimedTxn] | None,
    *,
    process: bool,
    realtime: bool,
) -> Local:
    """The component's own edges: data edges among its txns, plus explicit process and
    real-time edges among them when asked."""
    members = set(member_ids)
    local: Local = {u: {} for u in member_ids}
    for u in member_ids:
        succ = graph.out[u]
        if succ:
            row = local[u]
            for v, bits in succ.items():
                if v in members and bits & DATA:
                    row[v] = row.get(v, 0) | (bits & DATA)
    if timed is not None and (process or realtime):
        chosen = [timed[u] for u in member_ids]
        if process:
            for previous, txn_id in process_order(chosen):
                local[previous][txn_id] = local[previous].get(txn_id, 0) | PROCESS
        if realtime:
            for u, v in realtime_reduction(chosen):
                local[u][v] = local[u].get(v, 0) | REALTIME
    return local


def project(local: Local, mask: int) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(local)
    g.add_edges_from((u, v) for u, row in local.items() for v, b in row.items() if b & mask)
    return g


def extension_graph(local: Local) -> nx.DiGraph:
    """Cerone and Gotsman's SI relation (ww ∪ wr) ; rw? as a graph (Elle's PL-SI subgraph):
    a cycle in it is a cycle of the dependency graph with no two adjacent rw edges."""
    g = nx.DiGraph()
    g.add_nodes_from(local)
    for u, row in local.items():
        for v, b in row.items():
            if b & (WW | WR):
                g.add_edge(u, v)
                for w, b2 in local[v].items():
                    if b2 & RW:
                        g.add_edge(u, w)  # u → u too: a two-txn cycle with one rw
    return g


def cyclic_sccs(g: nx.DiGraph) -> list[set[int]]:
    return [
        c
        for c in nx.strongly_connected_components(g)
        if len(c) > 1 or g.has_edge(next(iter(c)), next(iter(c)))
    ]


# --------------------------------------------------------------------------- cycle search


State = tuple[int, bool, int, bool, bool, bool, bool]


@dataclass(frozen=True, slots=True)
class CycleSpec:
    """A cycle class as an automaton over the kinds of the edges taken.

    State: (rw count capped at 2, last edge rw, first edge rw (2: no edge yet), two adjacent
    rw seen, a wr seen, a variant edge seen, a ww seen). ``kinds`` are the kinds an edge may be used as.
    """

    name: str
    kinds: int  # bit mask of usable kinds
    accept: Callable[[State], bool]
    prune: Callable[[State], bool]
    variant: int  # PROCESS or REALTIME bit that must be used (0 for none)


def _state_after(
    state: State, kind: int, variant: int
) -> State:
    rw, last_rw, first_rw, adjacent, wr, var, ww = state
    is_rw = kind == RW
    if first_rw == 2:  # no edge yet
        first_rw = 1 if is_rw else 0
    return (
        min(rw + is_rw, 2),
        is_rw,
        first_rw,
        adjacent or (is_rw and last_rw),
        wr or kind == WR,
        var or (variant != 0 and kind == variant),
        ww or kind == WW,
    )


def spec_for(cycle_type: str) -> CycleSpec:
    """The automaton of a named cycle type (see :data:`anomalies.CYCLE_TYPES`)."""
    variant = 0
    base = cycle_type
    if cycle_type.endswith("-realtime"):
        variant, base = REALTIME, cycle_type[: -len("-realtime")]
    elif cycle_type.endswith("-process"):
        variant, base = PROCESS, cycle_type[: -len("-process")]
    extra = {0: 0, PROCESS: PROCESS, REALTIME: PROCESS | REALTIME}[variant]

    def with_variant(ok: bool, state: State) -> bool:
        return ok and (variant == 0 or state[5])

    if base == "G0":
        return CycleSpec(
            cycle_type, WW | extra, lambda s: with_variant(s[6], s), lambda s: False, variant
        )
    if base == "G1c":
        return CycleSpec(
            cycle_type, WW | WR | extra, lambda s: with_variant(s[4], s), lambda s: False, variant
        )
    if base == "G-single":
        return CycleSpec(
            cycle_type,
            DATA | extra,
            lambda s: with_variant(s[0] == 1, s),
            lambda s: s[0] > 1,
            variant,
        )
    if base == "G-nonadjacent":
        return CycleSpec(
            cycle_type,
            DATA | extra,
            lambda s: with_variant(s[0] == 2 and not (s[1] and s[2] == 1), s),
            lambda s: s[3],
            variant,
        )
    if base == "G2-item":
        return CycleSpec(
            cycle_type,
            DATA | extra,
            lambda s: with_variant(s[0] == 2 and (s[3] or (s[1] and s[2] == 1)), s),
            lambda s: False,
            variant,
        )
    raise ValueError(f"unknown cycle type {cycle_type!r}")


START: State = (0, False, 2, False, False, False, False)

Step = tuple[int, int, str]  # (from txn id, to txn id, kind)


class SearchTimeout(Exception):
    pass


@dataclass(slots=True)
class SearchResult:
    cycles: list[list[Step]] = field(default_factory=list)  # simple cycles, any type
    complete: bool = True  # every start was searched to the end (or pruned by length)
    split: bool = False  # the shortest walk repeated a txn and was split into cycles


def _kinds_of(bits: int, mask: int) -> list[int]:
    usable = bits & mask
    return [bit for _, bit in KINDS if usable & bit]


def search_cycle(
    local: Local, spec: CycleSpec, deadline: float, *, anchors: Iterable[int] | None = None
) -> SearchResult:
    """The shortest closed walk of ``spec``'s class, by breadth-first search over (txn,
    automaton state) from each start txn back to itself.

    ``anchors`` limits the starts (every cycle of the class passes through one of them).
    The search stops at ``deadline`` (``complete`` is then False). A walk that repeats a
    txn is split into the simple cycles it is made of, each reported for what it is.
    """
    names = {k: n for n, k in KINDS}
    result = SearchResult()
    best = None
    transitions: dict[tuple[State, int], object] = {}
    starts = list(anchors) if anchors is not None else list(local)
    count = 0
    for s in starts:
        if time.monotonic() > deadline:
            result.complete = False
            break
        parent: dict[tuple[int, tuple], tuple[tuple[int, tuple], int] | None] = {(s, START): None}
        frontier = [(s, START)]
        depth = 0
        found: tuple[tuple[int, tuple], int, tuple] | None = None
        while frontier and found is None and (best is None or depth + 1 < best):
            depth += 1
            nxt = []
            for state in frontier:
                u, q = state
                for v, bits in local[u].items():
                    usable = bits & spec.kinds
                    if not usable:
                        continue
                    for kind in _kinds_of(bits, spec.kinds):
                        key = (q, kind)
                        q2 = transitions.get(key)
                        if q2 is None:
                            q2 = _state_after(q, kind, spec.variant)
                            q2 = False if spec.prune(q2) else q2
                            transitions[key] = q2
                        if q2 is False:
                            continue
                        if v == s:
                            if spec.accept(q2):  # type: ignore[arg-type]
                                found = (state, kind, q2)  # type: ignore[assignment]
                                break
                            continue
                        st = (v, q2)
                        if st not in parent:
                            parent[st] = (state, kind)
                            nxt.append(st)
                    if found is not None:
                        break
                if found is not None:
                    break
                count += 1
                if count & 1023 == 0 and time.monotonic() > deadline:
                    result.complete = False
                    return _finish(result, names)
            frontier = nxt
        if found is not None:
            state, kind, _ = found
            steps: list[tuple[int, int, int]] = [(state[0], s, kind)]
            while True:
                entry = parent[state]
                if entry is None:
                    break
                previous, k = entry
                steps.append((previous[0], state[0], k))
                state = previous
            steps.reverse()
            walk = [(a, b, k) for a, b, k in steps]
            if best is None or len(walk) < best:
                best = len(walk)
                result.cycles = [[(a, b, names[k]) for a, b, k in walk]]
    return _finish(result, names)


def _finish(result: SearchResult, names: dict[int, str]) -> SearchResult:
    simple: list[list[Step]] = []
    for walk in result.cycles:
        pieces = split_simple(walk)
        result.split = result.split or len(pieces) > 1
        simple.extend(pieces)
    result.cycles = simple
    return result


def split_simple(walk: list[Step]) -> list[list[Step]]:
    """Split a closed walk into simple cycles at repeated txns."""
    seen: dict[int, int] = {}
    for i, (a, _, _) in enumerate(walk):
        if a in seen:
            j = seen[a]
            inner = walk[j:i]
            outer = walk[:j] + walk[i:]
            return split_simple(inner) + split_simple(outer)
        seen[a] = i
    return [walk]
