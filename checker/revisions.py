"""Checks of the revisions an MVCC store reports (etcd's), beyond linearizability.

A store like etcd numbers every change of its whole keyspace: the *revision*. Every reply
carries the revision of the store that served it (``header.revision``), and a read also
shows each key's ``mod_revision``, the revision of the key's last change. Clients record
them on each completion as the op's extra keys ``revision`` (an int) and, for reads,
``mod_revision`` (an int for a single-key read, 0 when the key is absent; a map key →
int for a multi-key read). These invariants follow from MVCC alone, whatever member
served the op, so they catch what a linearizability check of the values can miss
(members whose stores diverged but happen to answer plausible values, as in etcd issue
13766):

- **monotonic** (`check_monotonic_revisions`): the revisions one client process sees
  never go backwards. A process runs one op at a time, each invoked after the previous
  completed; every member answering a linearizable request has applied at least what
  was committed when the request arrived, which includes every change the process saw
  before. (Serializable reads from a lagging member break it: unsafe on purpose.)
- **read consistency** (`check_read_revisions`): a read at revision ``R`` showing key
  ``k`` with mod_revision ``M`` says that ``k`` held the value written at ``M`` during
  the whole interval ``[M, R]`` (nothing changed it in between, a delete included). So:
  ``M <= R``; two reads of ``k`` showing mod_revisions ``M1 != M2`` must have disjoint
  intervals; a read showing ``k`` absent at ``R`` must lie outside every such interval;
  and the same ``(k, M)`` always carries the same value. In particular two reads at the
  same revision agree on the key's value and mod_revision, whichever member served them.
  Multi-key reads (a bank's balances) are checked key by key on mod_revisions, and as a
  whole: two of them with the same mod_revision map must return the same value.

Each check is tri-state (conventions §2): ``False`` with the anomalies, naming the ops;
``"unknown"`` when no op carried what it needs (nothing was observed: a target that
records no revisions proves nothing); ``True`` otherwise. Ops are `checker.op.Op` or
maps (as read from history.jsonl); keys unknown to conventions §1 are in ``Op.extra``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from checker.history import op_from_mapping
from checker.models.base import freeze, thaw
from checker.op import Op
from checker.results import UNKNOWN, worst

REVISION = "revision"
MOD_REVISION = "mod_revision"
COMPLETIONS = frozenset({"ok", "fail", "info"})
DEFAULT_READ_FUNCTIONS = frozenset({"read", "get"})
EXAMPLES = 20  # anomalies listed in full; all are counted


def _as_ops(history: Iterable[Op | Mapping[str, Any]]) -> list[Op]:
    return [
        item if isinstance(item, Op) else op_from_mapping(item, position=position)
        for position, item in enumerate(history)
    ]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def describe(op: Op) -> dict[str, Any]:
    """An op as an anomaly names it: enough to find it in history.txt and the report."""
    out: dict[str, Any] = {
        "index": op.index,
        "process": op.process,
        "type": op.type,
        "f": op.f,
        "value": op.value,
    }
    if op.node is not None:
        out["node"] = op.node
    for key in (REVISION, MOD_REVISION):
        if key in op.extra:
            out[key] = op.extra[key]
    return out


def _label(op: Op) -> str:
    where = f" on {op.node}" if op.node is not None else ""
    return f"op {op.index} (process {op.process}, {op.type} {op.f} {op.value!r}{where})"


def _result(anomalies: list[dict[str, Any]], observed: int, what: str) -> dict[str, Any]:
    if anomalies:
        valid: bool | str = False
        explanation = f"{len(anomalies)} anomalies; first: {anomalies[0]['explanation']}"
    elif observed == 0:
        valid = UNKNOWN
        explanation = f"no op carried {what}: nothing was observed"
    else:
        valid = True
        explanation = f"{observed} ops checked, no anomaly"
    return {
        "valid": valid,
        "explanation": explanation,
        "observed": observed,
        "anomaly_count": len(anomalies),
        "anomalies": anomalies[:EXAMPLES],
    }


# --- monotonic revisions per process ----------------------------------------------------


def check_monotonic_revisions(history: Iterable[Op | Mapping[str, Any]]) -> dict[str, Any]:
    """The revisions each client process saw never decrease, in history order."""
    highest: dict[Any, Op] = {}  # process -> the completion with its highest revision
    anomalies: list[dict[str, Any]] = []
    observed = 0
    for op in _as_ops(history):
        if op.type not in COMPLETIONS or not isinstance(op.process, int):
            continue
        revision = _int(op.extra.get(REVISION))
        if revision is None:
            continue
        observed += 1
        before = highest.get(op.process)
        if before is None or revision >= before.extra[REVISION]:
            highest[op.process] = op
            continue
        anomalies.append(
            {
                "kind": "revision-went-backwards",
                "process": op.process,
                "ops": [describe(before), describe(op)],
                "explanation": (
                    f"process {op.process} saw revision {before.extra[REVISION]} at "
                    f"{_label(before)}, then the older revision {revision} at {_label(op)}"
                ),
            }
        )
    return {"checker": "monotonic-revisions", **_result(anomalies, observed, "a revision")}


# --- what reads say about each key --------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Sighting:
    """One read of one key: at ``revision`` it had ``mod_revision`` (0: absent)."""

    op: Op
    revision: int
    mod_revision: int
    value: Any  # frozen; _NO_VALUE when the read's value cannot be split per key


_NO_VALUE = object()


def _sightings(op: Op) -> tuple[list[tuple[Any, _Sighting]], Any]:
    """The (key, sighting) pairs of one ok read, and its whole-read group (multi-key)."""
    revision = _int(op.extra.get(REVISION))
    mods = op.extra.get(MOD_REVISION)
    if revision is None or mods is None:
        return [], None
    single = _int(mods)
    value = op.value
    if single is not None and isinstance(value, list | tuple) and len(value) == 2:
        # A keyed read, Jepsen's independent tuple [key, value].
        key = ("key", freeze(value[0]))
        return [(key, _Sighting(op, revision, single, freeze(value[1])))], None
    if isinstance(mods, Mapping):
        out = []
        for name, mod in mods.items():
            mod_revision = _int(mod)
            if mod_revision is not None:
                sighting = _Sighting(op, revision, mod_revision, _NO_VALUE)
                out.append((("key", freeze(name)), sighting))
        group = freeze({str(k): v for k, v in mods.items()})
        return out, group
    return [], None


def check_read_revisions(
    history: Iterable[Op | Mapping[str, Any]],
    *,
    read_functions: Iterable[str] = DEFAULT_READ_FUNCTIONS,
) -> dict[str, Any]:
    """Reads agree with each other about every key's history of revisions (module doc).

    The checks, per key: sort the present sightings by mod_revision ``M``; each ``M``
    covers ``[M, highest R seen with it]``. Two different ``M`` overlap iff the earlier
    one's interval reaches the later ``M``: a sweep keeping the furthest-reaching interval
    so far finds one overlap whenever any exists (the furthest reach is at least any
    overlapping one's). An absent sighting at ``R`` contradicts the interval of the
    greatest ``M <= R`` reaching furthest, found by bisection over the prefix maxima.
    """
    functions = frozenset(read_functions)
    by_key: dict[Any, list[_Sighting]] = {}
    groups: dict[Any, dict[Any, Op]] = {}  # multi-key mod_revision map -> value -> first op
    anomalies: list[dict[str, Any]] = []
    observed = 0
    for op in _as_ops(history):
        if op.type != "ok" or op.f not in functions or not isinstance(op.process, int):
            continue
        pairs, group = _sightings(op)
        if not pairs:
            continue
        observed += 1
        for key, sighting in pairs:
            by_key.setdefault(key, []).append(sighting)
        if group is not None:
            seen = groups.setdefault(group, {})
            frozen_value = freeze(op.value)
            if frozen_value not in seen:
                seen[frozen_value] = op
                if len(seen) == 2:
                    first = next(iter(seen.values()))
                    anomalies.append(
                        {
                            "kind": "same-revisions-different-values",
                            "ops": [describe(first), describe(op)],
                            "explanation": (
                                f"{_label(first)} and {_label(op)} saw every key at the same "
                                f"mod_revisions {thaw(group)!r} but returned different values"
                            ),
                        }
                    )
    for key, sightings in by_key.items():
        anomalies.extend(_key_anomalies(key[1], sightings))
    anomalies.sort(key=lambda a: min(o["index"] for o in a["ops"]))
    return {
        "checker": "read-revisions",
        **_result(anomalies, observed, "a revision and a mod_revision on a read"),
    }


def _key_anomalies(key: Any, sightings: list[_Sighting]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    shown = thaw(key)
    present: dict[int, list[_Sighting]] = {}
    absent: list[_Sighting] = []
    for sighting in sightings:
        if sighting.mod_revision > sighting.revision:
            found.append(
                {
                    "kind": "mod-revision-after-revision",
                    "key": shown,
                    "ops": [describe(sighting.op)],
                    "explanation": (
                        f"{_label(sighting.op)} read key {shown!r} at revision "
                        f"{sighting.revision} with the later mod_revision {sighting.mod_revision}"
                    ),
                }
            )
        elif sighting.mod_revision > 0:
            present.setdefault(sighting.mod_revision, []).append(sighting)
        else:
            absent.append(sighting)

    # The same (key, mod_revision) is the same write: one value.
    for mod_revision, group in present.items():
        first_by_value: dict[Any, _Sighting] = {}
        for sighting in group:
            if sighting.value is _NO_VALUE or sighting.value in first_by_value:
                continue
            first_by_value[sighting.value] = sighting
            if len(first_by_value) == 2:
                first = next(iter(first_by_value.values()))
                found.append(
                    {
                        "kind": "same-mod-revision-different-values",
                        "key": shown,
                        "ops": [describe(first.op), describe(sighting.op)],
                        "explanation": (
                            f"{_label(first.op)} and {_label(sighting.op)} read key {shown!r} "
                            f"with the same mod_revision {mod_revision} but different values"
                        ),
                    }
                )

    # Intervals [M, furthest R seen with M]; the sighting that reaches furthest names it.
    reach = sorted(
        (mod_revision, max(group, key=lambda s: (s.revision, -s.op.index)))
        for mod_revision, group in present.items()
    )
    furthest: _Sighting | None = None
    prefix: list[_Sighting] = []  # prefix[i]: the furthest-reaching of reach[0..i]
    for mod_revision, reacher in reach:
        if furthest is not None and furthest.revision >= mod_revision:
            witness = min(present[mod_revision], key=lambda s: s.op.index)
            found.append(
                {
                    "kind": "divergent-mod-revisions",
                    "key": shown,
                    "ops": [describe(furthest.op), describe(witness.op)],
                    "explanation": (
                        f"{_label(furthest.op)} read key {shown!r} last changed at revision "
                        f"{furthest.mod_revision} and unchanged through revision "
                        f"{furthest.revision}, but {_label(witness.op)} read it changed at "
                        f"revision {mod_revision} within that span"
                    ),
                }
            )
        if furthest is None or reacher.revision > furthest.revision:
            furthest = reacher
        prefix.append(furthest)
    starts = [mod_revision for mod_revision, _ in reach]
    for sighting in absent:
        position = bisect_right(starts, sighting.revision) - 1
        if position < 0:
            continue
        covering = prefix[position]
        if covering.revision >= sighting.revision:
            found.append(
                {
                    "kind": "absent-within-present",
                    "key": shown,
                    "ops": [describe(covering.op), describe(sighting.op)],
                    "explanation": (
                        f"{_label(sighting.op)} read key {shown!r} absent at revision "
                        f"{sighting.revision}, but {_label(covering.op)} read it present "
                        f"from revision {covering.mod_revision} through {covering.revision}"
                    ),
                }
            )
    return found


def check_revisions(
    history: Iterable[Op | Mapping[str, Any]],
    *,
    read_functions: Iterable[str] = DEFAULT_READ_FUNCTIONS,
) -> dict[str, Any]:
    """Both checks: ``{"valid": worst, "checkers": {"monotonic-revisions": …,
    "read-revisions": …}}`` (the shape of a workload's ``check``)."""
    ops = _as_ops(history)
    parts = {
        "monotonic-revisions": check_monotonic_revisions(ops),
        "read-revisions": check_read_revisions(ops, read_functions=read_functions),
    }
    return {"valid": worst(part["valid"] for part in parts.values()), "checkers": parts}
