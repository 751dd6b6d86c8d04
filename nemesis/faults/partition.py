"""Network partitions as grudges, with Jepsen's shapes (jepsen.nemesis).

A grudge maps a node to the set of nodes whose messages it drops: ``{"n2": {"n1"}}`` means
n2 drops what comes from n1, while n1 still hears n2, so one-way cuts are natural. The
shape functions are pure (node ids and a seeded RNG in, a grudge out).

- ``one``: isolate one random node from all others.
- ``majority``: shuffle and cut into two halves, the smaller first (Jepsen's bisect).
- ``majorities-ring``: every node hears a majority (itself included) and no two nodes
  hear the same majority. Built as Jepsen's "perfect" ring: nodes on a shuffled ring,
  each hears the window of ``majority`` nodes around it. Grudges are directional, so the
  construction works for every size (for even sizes some links are cut one way only).
- ``minority-third``: cut off a random minority of at most a third of the nodes (at least
  one): the largest k < n/3, or 1.
- ``bridge``: two halves, except one node of the larger half hears and is heard by all.
- ``leader``: isolate the current leader (a random node when none is known).
- ``one-way``: one random node either cannot send (everyone drops what comes from it) or
  cannot receive (it drops what comes from everyone); the RNG chooses which.

How the cut links fail is the fault's ``modes`` option (``nemesis.proxy``):

- ``drop`` (the default): the proxies discard every message on a cut link; connections
  stay up, so the moment the partition heals, messages flow again.
- ``blackhole``: packets vanish as under an iptables DROP rule (what Jepsen's partitions
  do): nothing is read or forwarded, the senders' kernel buffers fill and TCP backs off,
  and after the heal a held connection resumes only at its sender's next retransmission,
  seconds later. A node must notice the silent link and redial to catch up sooner.

With several modes, each start draws one with the seeded RNG (after the shape) and
records it as ``mode``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

from nemesis.control import ClusterControl
from nemesis.faults.base import FaultEvent, check_variants, majority_size
from nemesis.proxy import DROP, PARTITION_MODES

Grudge = dict[str, set[str]]

SHAPES: tuple[str, ...] = (
    "one",
    "majority",
    "majorities-ring",
    "minority-third",
    "bridge",
    "leader",
    "one-way",
)


def complete_grudge(components: Sequence[Sequence[str]]) -> Grudge:
    """Every node drops what comes from every node outside its component."""
    everyone = {node for component in components for node in component}
    grudge: Grudge = {}
    for component in components:
        outside = everyone - set(component)
        for node in component:
            if outside:
                grudge[node] = set(outside)
    return grudge


def isolate(node: str, node_ids: Sequence[str]) -> Grudge:
    return complete_grudge([[node], [other for other in node_ids if other != node]])


def shape_one(node_ids: Sequence[str], rng: random.Random) -> Grudge:
    return isolate(rng.choice(list(node_ids)), node_ids)


def bisect(nodes: Sequence[str]) -> tuple[list[str], list[str]]:
    """Jepsen's bisect: the first half is the smaller one."""
    middle = len(nodes) // 2
    return list(nodes[:middle]), list(nodes[middle:])


def _shuffled(node_ids: Sequence[str], rng: random.Random) -> list[str]:
    nodes = list(node_ids)
    rng.shuffle(nodes)
    return nodes


def shape_majority(node_ids: Sequence[str], rng: random.Random) -> Grudge:
    return complete_grudge(bisect(_shuffled(node_ids, rng)))


def shape_majorities_ring(node_ids: Sequence[str], rng: random.Random) -> Grudge:
    ring = _shuffled(node_ids, rng)
    count = len(ring)
    window = majority_size(count)
    everyone = set(ring)
    grudge: Grudge = {}
    for start in range(count):
        visible = [ring[(start + offset) % count] for offset in range(window)]
        centre = visible[window // 2]
        dropped = everyone - set(visible)
        if dropped:
            grudge[centre] = dropped
    return grudge


def minority_third_size(node_count: int) -> int:
    """The largest k with k < n/3, but at least 1."""
    return max(1, (node_count - 1) // 3)


def shape_minority_third(node_ids: Sequence[str], rng: random.Random) -> Grudge:
    nodes = _shuffled(node_ids, rng)
    size = minority_third_size(len(nodes))
    return complete_grudge([nodes[:size], nodes[size:]])


def shape_bridge(node_ids: Sequence[str], rng: random.Random) -> Grudge:
    smaller, larger = bisect(_shuffled(node_ids, rng))
    bridge = larger[0]
    grudge = complete_grudge([smaller, larger])
    grudge.pop(bridge, None)
    return {node: dropped - {bridge} for node, dropped in grudge.items() if dropped - {bridge}}


def shape_one_way(node_ids: Sequence[str], rng: random.Random) -> tuple[Grudge, str, str]:
    """(grudge, node, direction): "mute" (nobody hears it) or "deaf" (it hears nobody)."""
    node = rng.choice(list(node_ids))
    others = {other for other in node_ids if other != node}
    if rng.random() < 0.5:
        return {other: {node} for other in others}, node, "mute"
    return {node: others}, node, "deaf"


def grudge_to_json(grudge: Grudge) -> dict[str, list[str]]:
    return {node: sorted(dropped) for node, dropped in sorted(grudge.items())}


def heard_by(grudge: Grudge, node_ids: Sequence[str]) -> dict[str, set[str]]:
    """For each node, the nodes it hears (itself included)."""
    return {
        node: {other for other in node_ids if other not in grudge.get(node, set())}
        for node in node_ids
    }


class PartitionFault:
    """start-partition / stop-partition: one shape at random from the enabled ones."""

    name: ClassVar[str] = "partition"
    variants: ClassVar[tuple[str, ...]] = SHAPES

    def __init__(self, shapes: Sequence[str] = (), *, modes: Sequence[str] = (DROP,)) -> None:
        self.shapes = check_variants(self.name, tuple(shapes), SHAPES)
        if isinstance(modes, str):
            modes = (modes,)
        unknown = [mode for mode in modes if mode not in PARTITION_MODES]
        if unknown or not modes:
            raise ValueError(
                f"unknown partition mode(s) {', '.join(unknown) or '(none given)'}; "
                f"valid: {', '.join(PARTITION_MODES)}"
            )
        self.modes = tuple(modes)

    async def start(self, ctx: ClusterControl, rng: random.Random) -> FaultEvent:
        node_ids = list(ctx.node_ids)
        shape = rng.choice(self.shapes)
        # One mode draws nothing, so the default keeps every seed's schedule as it was.
        mode = self.modes[0] if len(self.modes) == 1 else rng.choice(self.modes)
        value: dict[str, Any] = {"fault": self.name, "shape": shape, "mode": mode}
        if shape == "one":
            grudge = shape_one(node_ids, rng)
        elif shape == "majority":
            grudge = shape_majority(node_ids, rng)
        elif shape == "majorities-ring":
            grudge = shape_majorities_ring(node_ids, rng)
        elif shape == "minority-third":
            grudge = shape_minority_third(node_ids, rng)
        elif shape == "bridge":
            grudge = shape_bridge(node_ids, rng)
        elif shape == "leader":
            leader = await ctx.current_leader()
            if leader is None or leader not in node_ids:
                leader = rng.choice(node_ids)
                value["note"] = "no leader known: a random node instead"
            value["isolated"] = leader
            grudge = isolate(leader, node_ids)
        else:  # one-way
            grudge, node, direction = shape_one_way(node_ids, rng)
            value["node"] = node
            value["direction"] = direction
        if mode == DROP:  # the default: a third-party mesh need not know the keyword
            ctx.mesh.apply_grudge(grudge)
        else:
            ctx.mesh.apply_grudge(grudge, mode=mode)
        value["grudge"] = grudge_to_json(grudge)
        return FaultEvent("start-partition", value)

    async def stop(self, ctx: ClusterControl) -> FaultEvent:
        ctx.mesh.apply_grudge({})
        return FaultEvent("stop-partition", {"fault": self.name, "healed": "all links pass"})
