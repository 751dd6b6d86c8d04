"""The Elle-style check: a workload's dependency graph, its cycles, and the verdict.

Verdicts rest on exact, linear-time tests; searches only name and show what they prove:

1. The workload (:mod:`list_append`, :mod:`rw_register`) infers ww/wr/rw edges and the
   anomalies that need no cycle.
2. Process and real-time edges are added when the model needs them (strict
   serializability) or when asked.
3. Components with a cycle are found (:func:`graph.components`).
4. In each, Elle's *cycle-exists* test per model: a model's subgraph (ww for
   read-uncommitted, ww ∪ wr for read-committed, (ww ∪ wr) ; rw? for snapshot isolation,
   ww ∪ wr ∪ rw for repeatable read and serializable, all edges for strict serializable)
   has a cycle iff networkx finds a strongly connected component in it. This is exact, so
   whether a model's cycles exist is always decided.
5. Then the shortest cycle of each named kind (G0, G1c, G-single, G-nonadjacent, G2-item,
   and their -process / -realtime variants), by a bounded breadth-first search. A search
   cut by its time budget reports ``cycle-search-timeout`` for that kind — never a guess;
   the verdict does not depend on it, since step 4 already decided every model.

``valid`` is False when an anomaly the model forbids was found, ``"unknown"`` when the
overall time limit stopped the exact tests or the history cannot be analysed (duplicate
writes, no committed txn), and True otherwise.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from checker.elle import anomalies as names
from checker.elle import graph as g
from checker.elle import list_append, rw_register
from checker.elle.explain import explain_cycle, txn_summary
from checker.elle.history import Txn, txns_from_ops
from checker.history import Op, to_jsonable

WORKLOADS = {"list-append": list_append, "rw-register": rw_register}
DEFAULT_MODEL = "strict-serializable"  # Elle's default
CYCLE_SEARCH_TIMEOUT = 1.0  # seconds per kind per component (Elle's default)
MAX_CYCLES = 16  # cycles kept per kind

# (model, the edges of its cycle-exists subgraph; None: the SI extension relation)
_CYCLE_EXISTS: tuple[tuple[str, int | None], ...] = (
    ("read-uncommitted", g.WW),
    ("read-committed", g.WW | g.WR),
    ("snapshot-isolation", None),
    ("repeatable-read", g.DATA),
    ("serializable", g.DATA),
    ("strict-serializable", g.DATA | g.PROCESS | g.REALTIME),
)


def check(
    ops: Iterable[Op],
    workload: str,
    *,
    consistency_model: str = DEFAULT_MODEL,
    time_limit: float | None = None,
    cycle_search_timeout: float = CYCLE_SEARCH_TIMEOUT,
    process: bool | None = None,
    realtime: bool | None = None,
) -> dict[str, Any]:
    """Check a history of txns (Jepsen's ``f: "txn"``) of ``workload`` against a model.

    Raises :class:`TxnHistoryError` when the ops are not txns of that workload.
    """
    module = WORKLOADS[workload]
    with _no_cyclic_gc():
        txns = txns_from_ops(list(ops), module.MOPS)
        return check_txns(
            txns,
            workload,
            consistency_model=consistency_model,
            time_limit=time_limit,
            cycle_search_timeout=cycle_search_timeout,
            process=process,
            realtime=realtime,
        )


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector during a check: the check builds millions of
    small containers that hold no reference cycles, so each collection pass (triggered by
    allocations alone) finds nothing and costs about a third of the time; reference
    counting still frees everything. The collector's state is restored afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check_txns(
    txns: Sequence[Txn],
    workload: str,
    *,
    consistency_model: str = DEFAULT_MODEL,
    time_limit: float | None = None,
    cycle_search_timeout: float = CYCLE_SEARCH_TIMEOUT,
    process: bool | None = None,
    realtime: bool | None = None,
) -> dict[str, Any]:
    if consistency_model not in names.MODELS:
        raise ValueError(
            f"unknown consistency model {consistency_model!r}; expected one of "
            f"{', '.join(names.MODELS)}"
        )
    started = time.monotonic()
    deadline = math.inf if time_limit is None else started + time_limit
    realtime = consistency_model == "strict-serializable" if realtime is None else realtime
    process = realtime if process is None else process
    types = [t.type for t in txns]
    base: dict[str, Any] = {
        "checker": f"elle-{workload}",
        "consistency-model": consistency_model,
        "txns": {kind: types.count(kind) for kind in ("ok", "info", "fail")},
        "edges": {"process": process, "realtime": realtime},
    }
    module = WORKLOADS[workload]
    try:
        if workload == "rw-register":
            # Writes-follow-reads holds from read committed up (a txn reads committed
            # versions, and its own write installs later, at its commit); under read
            # uncommitted a txn may read a version installed after its own write.
            analysis = module.analyze(txns, wfr_keys=consistency_model != "read-uncommitted")
        else:
            analysis = module.analyze(txns)
    except (list_append.DuplicateAppends, rw_register.DuplicateWrites) as error:
        # A value written twice: reads cannot name their writers (Elle: valid? unknown).
        return {
            **base,
            "valid": "unknown",
            "error": str(error),
            "anomaly-types": [],
            "anomalies": {},
        }
    found: dict[str, list[dict[str, Any]]] = {k: list(v) for k, v in analysis.anomalies.items()}
    counts: dict[str, int] = dict(analysis.counts)
    if base["txns"]["ok"] == 0:
        found["empty-transaction-graph"] = [{"text": "no txn completed ok: nothing to check"}]

    live = [t for t in txns if t.type != "fail"]
    timed: list[g.TimedTxn] = [
        (t.id, t.process, t.invoke_pos, t.complete_pos if t.type == "ok" else None)
        for t in txns
    ]
    dep = analysis.graph
    if process:
        g.add_process_edges(dep, [timed[t.id] for t in live])
    if realtime:
        g.add_realtime_barriers(dep, [timed[t.id] for t in live])

    statuses: dict[str, str] = {}
    complete = True
    components = g.components(dep, len(txns))
    for members in components:
        if time.monotonic() > deadline:
            complete = False
            break
        local = g.local_graph(dep, members, timed, process=process, realtime=realtime)
        ok = _component(
            local, txns, analysis, found, counts, statuses, deadline, cycle_search_timeout,
            process=process, realtime=realtime,
        )
        if not ok:
            complete = False
            break

    found = _drop_redundant_cycle_exists(found)
    for kind in found:
        counts.setdefault(kind, len(found[kind]))
    forbidden = names.forbidden_anomalies(consistency_model)
    bad = sorted(set(found) & forbidden)
    if bad:
        valid: bool | str = False
    elif not complete or "empty-transaction-graph" in found:
        valid = "unknown"
    else:
        valid = True
    checked = [m for m in names.MODELS if realtime or m != "strict-serializable"]
    result = {
        **base,
        "valid": valid,
        "anomaly-types": sorted(found),
        "anomalies": found,
        "anomaly-counts": {k: counts[k] for k in sorted(found)},
        "forbidden-found": bad,
        **names.boundary(found, checked),
        "cycle-search": dict(sorted(statuses.items())),
        "components": {
            "count": len(components),
            "largest": len(components[0]) if components else 0,
        },
        "graph": {"vertices": dep.n, "edges": dep.edge_count()},
        "seconds": round(time.monotonic() - started, 6),
    }
    if not complete:
        result["error"] = "the time limit ran out before every component was checked"
        result["possible"] = []  # nothing is known to hold of a history not fully checked
    return to_jsonable(result)


def _drop_redundant_cycle_exists(
    found: dict[str, list[dict[str, Any]]],
) -> dict[str, list[dict[str, Any]]]:
    """Keep a ``*-cycle-exists`` only when no named anomaly already rules its model out."""
    named = [k for k in found if not k.endswith("-cycle-exists")]
    ruled_out = names.impossible_models(named)
    return {
        k: v
        for k, v in found.items()
        if not k.endswith("-cycle-exists") or v[0]["not"] not in ruled_out
    }


def _component(
    local: g.Local,
    txns: Sequence[Txn],
    analysis: Any,
    found: dict[str, list[dict[str, Any]]],
    counts: dict[str, int],
    statuses: dict[str, str],
    deadline: float,
    budget: float,
    *,
    process: bool,
    realtime: bool,
) -> bool:
    """Check one component; False when the overall deadline stopped the exact tests."""
    txn_names = sorted(local)
    # Exact cycle-exists tests, weakest model first; a model ruled out rules out the
    # stronger ones, which need no test of their own.
    impossible: set[str] = set()
    for model, mask in _CYCLE_EXISTS:
        if time.monotonic() > deadline:
            return False
        if model in impossible or (model == "strict-serializable" and not realtime):
            continue
        sub = g.extension_graph(local) if mask is None else g.project(local, mask)
        sccs = g.cyclic_sccs(sub)
        if sccs:
            smallest = min(sccs, key=len)
            kind = f"{names.CANONICAL[model]}-cycle-exists"
            found.setdefault(kind, []).append(
                {
                    "not": model,
                    "scc-size": len(smallest),
                    "scc": [txns[i].name for i in sorted(smallest)][:64],
                    "text": f"the {len(smallest)} txns "
                    f"{', '.join(txns[i].name for i in sorted(smallest)[:8])}"
                    f"{' …' if len(smallest) > 8 else ''} form a cycle that {model} forbids",
                }
            )
            impossible |= {m for m in names.MODELS if model in names.implied_models(m)}

    # Named cycles, most severe first; skip kinds an earlier find implies, and kinds whose
    # edges have no cycle at all here.
    cyclic_masks: dict[int, list[set[int]]] = {}
    redundant: set[str] = set()
    for cycle_type in names.CYCLE_TYPES:
        if cycle_type in redundant:
            continue
        if cycle_type.endswith("-process") and not process:
            continue
        if cycle_type.endswith("-realtime") and not realtime:
            continue
        spec = g.spec_for(cycle_type)
        if spec.kinds not in cyclic_masks:
            cyclic_masks[spec.kinds] = g.cyclic_sccs(g.project(local, spec.kinds))
        parts = cyclic_masks[spec.kinds]
        if not parts:
            _status(statuses, cycle_type, "none")
            continue
        need = {
            "G0": g.WW,
            "G1c": g.WR,
        }.get(cycle_type.split("-")[0], g.RW)
        if spec.variant:
            need = spec.variant
        stop = min(deadline, time.monotonic() + budget)
        shortest = True
        split = False
        cycles: list[list[g.Step]] = []
        for part in parts:
            sub_local = {u: {v: b for v, b in local[u].items() if v in part} for u in part}
            anchors = [u for u in part if any(b & need for b in sub_local[u].values())]
            result = g.search_cycle(sub_local, spec, stop, anchors=anchors)
            cycles.extend(result.cycles)
            shortest = shortest and result.complete
            split = split or result.split
        got = False
        for steps in cycles:
            kinds = [k for _, _, k in steps]
            actual = names.cycle_type(kinds)
            if cycle_type in names.implied_anomalies([actual]):
                got = True
            if actual in redundant and actual != cycle_type:
                continue
            _record_cycle(found, counts, actual, steps, txns, analysis, shortest)
            redundant |= names.implied_anomalies([actual])
        if got:
            _status(statuses, cycle_type, "found")
        elif split:
            # The shortest walk of this class repeated a txn and its simple pieces are of
            # other classes: a simple cycle of this class may still exist, longer.
            _status(statuses, cycle_type, "unknown")
        elif not shortest:
            _status(statuses, cycle_type, "unknown")
            found.setdefault("cycle-search-timeout", []).append(
                {
                    "anomaly": cycle_type,
                    "scc-size": len(txn_names),
                    "text": f"the search for {cycle_type} in a component of "
                    f"{len(txn_names)} txns ran out of time ({budget:g} s)",
                }
            )
        else:
            _status(statuses, cycle_type, "none")
    return True


_STATUS_RANK = {"none": 0, "unknown": 1, "found": 2}


def _status(statuses: dict[str, str], cycle_type: str, status: str) -> None:
    """A kind's status over all components: found beats unknown beats none."""
    if _STATUS_RANK[status] >= _STATUS_RANK[statuses.get(cycle_type, "none")]:
        statuses[cycle_type] = status


def _record_cycle(
    found: dict[str, list[dict[str, Any]]],
    counts: dict[str, int],
    cycle_type: str,
    steps: list[g.Step],
    txns: Sequence[Txn],
    analysis: Any,
    shortest: bool,
) -> None:
    counts[cycle_type] = counts.get(cycle_type, 0) + 1
    cases = found.setdefault(cycle_type, [])
    if len(cases) >= MAX_CYCLES:
        return
    explained = explain_cycle(steps, txns, analysis.explain)
    members = [txns[a] for a, _, _ in steps]
    cases.append(
        {
            "type": cycle_type,
            "cycle": [t.name for t in members] + [members[0].name],
            "steps": explained,
            "txns": [txn_summary(t) for t in members],
            "shortest": shortest,
        }
    )
