"""What every fault package shares: the Fault interface, events, and target selection.

A fault package is a class with a ``name`` (conventions §4), constructed with its options
(all optional), and two coroutines: ``start(ctx, rng)`` applies one fault chosen with the
seeded ``rng`` and ``stop(ctx)`` undoes it. Each returns a ``FaultEvent``: the history's
``f`` (Jepsen's names: ``start-partition``/``stop-partition``, ``kill``/``start``,
``pause``/``resume``, ``start-X``/``stop-X`` for the rest) and a JSON-able ``value``
describing exactly what was done.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from nemesis.control import ClusterControl

# Jepsen's db-nemesis targets (conventions §4).
TARGETS: tuple[str, ...] = ("one", "minority", "majority", "leader", "all")


@dataclass(slots=True)
class FaultEvent:
    f: str
    value: dict[str, Any] = field(default_factory=dict)


class Fault(Protocol):
    name: ClassVar[str]
    variants: ClassVar[tuple[str, ...]]  # shapes or targets a spec may name: partition-leader

    async def start(self, ctx: ClusterControl, rng: random.Random) -> FaultEvent: ...

    async def stop(self, ctx: ClusterControl) -> FaultEvent: ...


def majority_size(node_count: int) -> int:
    return node_count // 2 + 1


def minority_size(node_count: int) -> int:
    """The largest group that is not a majority (Jepsen: majority - 1)."""
    return majority_size(node_count) - 1


async def select_targets(
    target: str,
    ctx: ClusterControl,
    rng: random.Random,
) -> tuple[list[str], str | None]:
    """The nodes a target spec names, and a note when it had to fall back.

    ``leader`` asks the cluster; with no leader known it falls back to one random node
    (and says so), since a nemesis step must always do something describable.
    """
    node_ids = list(ctx.node_ids)
    if target == "leader":
        leader = await ctx.current_leader()
        if leader is not None and leader in node_ids:
            return [leader], None
        return [rng.choice(node_ids)], "no leader known: a random node instead"
    return pick_targets(target, node_ids, rng), None


def pick_targets(target: str, node_ids: list[str], rng: random.Random) -> list[str]:
    """Pure target selection for every target but ``leader``."""
    if target == "one":
        return [rng.choice(node_ids)]
    if target == "minority":
        return sorted(rng.sample(node_ids, max(1, minority_size(len(node_ids)))))
    if target == "majority":
        return sorted(rng.sample(node_ids, majority_size(len(node_ids))))
    if target == "all":
        return list(node_ids)
    raise ValueError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")


def check_variants(fault: str, chosen: tuple[str, ...], valid: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [variant for variant in chosen if variant not in valid]
    if unknown:
        raise ValueError(
            f"unknown {fault} option(s) {', '.join(unknown)}; valid: {', '.join(valid)}"
        )
    return chosen or valid


def node_address(ctx: ClusterControl, node_id: str) -> tuple[str, int]:
    """Where a node really listens (not its proxies)."""
    return ctx.mesh.nodes[node_id][0], ctx.node_port(node_id)
