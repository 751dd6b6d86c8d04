"""Anomaly names, consistency models, and which anomalies each model forbids.

Names follow Elle (jepsen-io/elle, ``elle.consistency-model``) and Adya's thesis. Three
small graphs carry the facts:

- ``IMPLIED``: anomaly a → b when finding a also shows b (G0 is also G1c; any G1x is G1;
  a cycle without process or real-time edges is trivially one of the ``-process`` and
  ``-realtime`` classes too).
- ``STRONGER``: model a → b when every history a allows, b allows (strict-serializable →
  serializable → snapshot-isolation / repeatable-read → read-committed → read-uncommitted).
- ``FORBIDS``: the anomalies a model forbids directly; a model also forbids what the
  weaker models it implies forbid, and any anomaly implying a forbidden one.

One deliberate difference from Elle: our histories have no predicate reads, so every
dependency edge is an item edge and every cycle with an rw edge is Adya's G2-item. Elle
names a one-rw cycle G-single without G2-item among its implications (its source notes
this as a known gap for repeatable-read); here ``G-single`` → ``G-nonadjacent`` →
``G2-item`` → ``G2``, so repeatable-read forbids every cycle with an anti-dependency, as
Adya's PL-2.99 does for item histories.
"""

from __future__ import annotations

from collections.abc import Iterable

# The six models the CLI offers, strongest first.
MODELS = (
    "strict-serializable",
    "serializable",
    "snapshot-isolation",
    "repeatable-read",
    "read-committed",
    "read-uncommitted",
)

# Adya's / Elle's canonical names for them (as in Elle's "cycle-exists" anomaly names).
CANONICAL = {
    "strict-serializable": "PL-SS",
    "serializable": "PL-3",
    "snapshot-isolation": "PL-SI",
    "repeatable-read": "PL-2.99",
    "read-committed": "PL-2",
    "read-uncommitted": "PL-1",
}

STRONGER: dict[str, tuple[str, ...]] = {
    "strict-serializable": ("serializable",),
    "serializable": ("snapshot-isolation", "repeatable-read"),
    "snapshot-isolation": ("read-committed",),
    "repeatable-read": ("read-committed",),
    "read-committed": ("read-uncommitted",),
    "read-uncommitted": (),
}

CYCLE_BASES = ("G0", "G1c", "G-single", "G-nonadjacent", "G2-item")
VARIANTS = ("", "-process", "-realtime")
# Every named cycle, in the order searched: data cycles first, then those needing process
# edges, then those needing real-time edges (Elle's severity order).
CYCLE_TYPES = tuple(base + variant for variant in VARIANTS for base in CYCLE_BASES)


def _cycle_implications() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for variant in VARIANTS:
        for a, b in (
            ("G0", "G1c"),
            ("G1c", "G1"),
            ("G-single", "G-nonadjacent"),
            ("G-nonadjacent", "G2-item"),
            ("G2-item", "G2"),
        ):
            out.setdefault(a + variant, []).append(b + variant)
    for base in (*CYCLE_BASES, "G1", "G2"):
        out.setdefault(base, []).append(base + "-process")
        out.setdefault(base + "-process", []).append(base + "-realtime")
    return out


IMPLIED: dict[str, list[str]] = _cycle_implications()
for _a, _bs in {
    "G1a": ["G1"],
    "G1b": ["G1"],
    "incompatible-order": ["G1a"],
    "dirty-update": ["G1a"],
    "future-read": ["G1c"],
    "lost-update": ["G2-item"],
    # An acknowledged append that a read invoked after it never shows: the read rw→ (a chain
    # of ww to) the append's txn, which precedes the read in real time.
    "lost-append": ["G-single-realtime"],
}.items():
    IMPLIED.setdefault(_a, []).extend(_bs)

FORBIDS: dict[str, tuple[str, ...]] = {
    "read-uncommitted": ("G0", "duplicate-elements", "cyclic-versions", "PL-1-cycle-exists"),
    "read-committed": ("G1", "PL-2-cycle-exists"),
    "repeatable-read": ("G1", "G2-item", "lost-update", "PL-2.99-cycle-exists"),
    "snapshot-isolation": (
        "internal",
        "G1",
        "G-single",
        "G-nonadjacent",
        "lost-update",
        "PL-SI-cycle-exists",
    ),
    "serializable": ("internal", "G1", "G2", "lost-update", "PL-3-cycle-exists"),
    "strict-serializable": ("G1c-realtime", "G2-realtime", "PL-SS-cycle-exists"),
}

# Anomalies that make a verdict unknown rather than false (Elle's unknown-anomaly-types).
UNKNOWN_TYPES = frozenset({"cycle-search-timeout", "empty-transaction-graph"})


def _closure(starts: Iterable[str], edges: dict[str, list[str]] | dict[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        item = stack.pop()
        if item in seen:
            continue
        seen.add(item)
        stack.extend(edges.get(item, ()))
    return seen


def _reverse(edges: dict[str, list[str]] | dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a, bs in edges.items():
        for b in bs:
            out.setdefault(b, []).append(a)
    return out


_IMPLIED_BY = _reverse(IMPLIED)
_WEAKER_OF = _reverse(STRONGER)


def implied_anomalies(anomalies: Iterable[str]) -> set[str]:
    """The anomalies given, and all they imply."""
    return _closure(anomalies, IMPLIED)


def anomalies_implying(anomalies: Iterable[str]) -> set[str]:
    """The anomalies given, and all that imply one of them."""
    return _closure(anomalies, _IMPLIED_BY)


def implied_models(model: str) -> set[str]:
    """A model and every weaker one it implies."""
    return _closure([model], STRONGER)


def forbidden_anomalies(model: str) -> set[str]:
    """Every anomaly whose presence rules ``model`` out."""
    direct = [a for m in implied_models(model) for a in FORBIDS[m]]
    return anomalies_implying(direct)


def impossible_models(anomalies: Iterable[str]) -> set[str]:
    """The models (of :data:`MODELS`) that the anomalies found rule out."""
    shown = implied_anomalies(anomalies)
    return {model for model in MODELS if shown & forbidden_anomalies(model)}


def boundary(anomalies: Iterable[str], checked_models: Iterable[str] = MODELS) -> dict[str, list[str]]:
    """Elle's boundary: ``not`` (weakest models ruled out), ``also-not`` (the stronger ones
    ruled out with them), and ``possible`` (models among those checked not ruled out)."""
    impossible = impossible_models(anomalies)
    weakest = {
        m for m in impossible if not (implied_models(m) - {m}) & impossible
    }
    order = {m: i for i, m in enumerate(MODELS)}
    checked = set(checked_models)
    return {
        "not": sorted(weakest, key=order.__getitem__),
        "also-not": sorted(impossible - weakest, key=order.__getitem__),
        "possible": sorted(checked - impossible, key=order.__getitem__),
    }


def cycle_type(kinds: list[str]) -> str:
    """Name a cycle from the kinds of its edges, in order (Elle's cycle explainer).

    Data edges decide the base: one rw → G-single; several rw → G2-item if two are adjacent
    (cyclically), else G-nonadjacent; otherwise G1c if any wr, else G0. A real-time edge adds
    ``-realtime``; otherwise a process edge adds ``-process``.
    """
    rw = kinds.count("rw")
    if rw == 1:
        base = "G-single"
    elif rw > 1:
        adjacent = any(kinds[i] == "rw" and kinds[i - 1] == "rw" for i in range(len(kinds)))
        base = "G2-item" if adjacent else "G-nonadjacent"
    elif "wr" in kinds:
        base = "G1c"
    elif "ww" in kinds:
        base = "G0"
    else:  # a cycle of only process / real-time edges cannot exist: those orders are acyclic
        raise ValueError(f"cannot name a cycle of edge kinds {kinds}")
    if "realtime" in kinds:
        return base + "-realtime"
    if "process" in kinds:
        return base + "-process"
    return base
