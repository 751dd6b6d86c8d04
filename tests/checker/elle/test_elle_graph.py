"""The graph module's shortcuts against plain searches on small random graphs.

- Real-time order through barrier vertices, then peeling, then networkx's components,
  gives the same components as every real-time pair made an explicit edge.
- The frontier sweep's real-time edges have the same transitive closure as all pairs.
- The automaton search finds the shortest simple cycle of each class that a brute-force
  enumeration of simple cycles (and of every way to read each edge's kinds) finds, and
  never claims a class that is not there.
"""

from __future__ import annotations

import itertools
import random
import time

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.elle import graph as g
from checker.elle.anomalies import CYCLE_TYPES, cycle_type

NAMES = {bit: name for name, bit in g.KINDS}


def random_timed(rng: random.Random, n: int) -> list[g.TimedTxn]:
    positions = list(range(2 * n))
    rng.shuffle(positions)
    out = []
    for i in range(n):
        a, b = sorted(positions[2 * i : 2 * i + 2])
        out.append((i, rng.randrange(3), a, b if rng.random() < 0.8 else None))
    return out


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 14), st.integers(0, 20))
def test_barrier_components_equal_explicit_realtime_components(
    seed: int, n: int, data_edges: int
) -> None:
    rng = random.Random(seed)
    timed = random_timed(rng, n)
    dep = g.DepGraph(n)
    plain = nx.DiGraph()
    plain.add_nodes_from(range(n))
    for _ in range(data_edges):
        u, v = rng.randrange(n), rng.randrange(n)
        if u != v:
            dep.add(u, v, rng.choice([g.WW, g.WR, g.RW]))
            plain.add_edge(u, v)
    for a in timed:
        for b in timed:
            if a[3] is not None and a[3] < b[2]:
                plain.add_edge(a[0], b[0])
    g.add_realtime_barriers(dep, timed)
    ours = sorted(map(tuple, g.components(dep, n)))
    expected = sorted(
        tuple(sorted(c)) for c in nx.strongly_connected_components(plain) if len(c) > 1
    )
    assert ours == expected


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 14))
def test_realtime_reduction_has_the_full_closure(seed: int, n: int) -> None:
    timed = random_timed(random.Random(seed), n)
    reduced = nx.DiGraph(g.realtime_reduction(timed))
    reduced.add_nodes_from(range(n))
    closure = nx.transitive_closure_dag(reduced)
    full = {
        (a[0], b[0]) for a in timed for b in timed if a[3] is not None and a[3] < b[2]
    }
    assert set(closure.edges) == full


def brute_force_shortest(local: g.Local) -> dict[str, int]:
    """For each cycle class, the length of its shortest simple cycle (every reading of each
    edge's kind bits tried)."""
    plain = nx.DiGraph([(u, v) for u, row in local.items() for v in row])
    best: dict[str, int] = {}
    for cycle in nx.simple_cycles(plain):
        edges = list(zip(cycle, cycle[1:] + cycle[:1], strict=True))
        options = [[NAMES[b] for _, b in g.KINDS if local[u][v] & b] for u, v in edges]
        for kinds in itertools.product(*options):
            try:
                name = cycle_type(list(kinds))
            except ValueError:
                continue
            best[name] = min(best.get(name, len(edges)), len(edges))
    return best


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 6), st.integers(2, 14))
def test_cycle_search_agrees_with_enumeration(seed: int, n: int, edges: int) -> None:
    rng = random.Random(seed)
    local: g.Local = {u: {} for u in range(n)}
    for _ in range(edges):
        u, v = rng.randrange(n), rng.randrange(n)
        if u != v:
            bits = 0
            while not bits:
                bits = sum(b for _, b in g.KINDS if rng.random() < 0.3)
                if u > v:  # process and real-time orders go forward in time: acyclic
                    bits &= g.DATA
            local[u][v] = local[u].get(v, 0) | bits
    expected = brute_force_shortest(local)
    for name in CYCLE_TYPES:
        spec = g.spec_for(name)
        result = g.search_cycle(local, spec, time.monotonic() + 30)
        assert result.complete
        got = [c for c in result.cycles if cycle_type([k for _, _, k in c]) == name]
        for cycle in result.cycles:  # every reported cycle is simple and made of real edges
            assert len({a for a, _, _ in cycle}) == len(cycle)
            for a, b, kind in cycle:
                assert local[a][b] & g.BIT[kind]
        if name not in expected:
            assert not got, (name, got)
        elif not result.split:
            assert got, (name, expected)
            assert len(got[0]) == expected[name]


def test_cyclic_core_keeps_cycles_and_drops_the_rest() -> None:
    dep = g.DepGraph(7)
    for u, v in [(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (5, 0), (4, 6)]:
        dep.add(u, v, g.WW)
    assert sorted(g.cyclic_core(dep)) == [0, 1, 2]
    assert g.components(dep, 7) == [[0, 1, 2]]
