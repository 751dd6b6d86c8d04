"""start-loss / stop-loss: each message on the links of a target set of nodes is dropped
with probability ``probability`` (Jepsen's netem loss, per message, seeded per link)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

from nemesis.control import ClusterControl
from nemesis.faults.base import TARGETS, FaultEvent, check_variants, select_targets


class LossFault:
    name: ClassVar[str] = "loss"
    variants: ClassVar[tuple[str, ...]] = TARGETS

    def __init__(self, targets: Sequence[str] = (), probability: float = 0.2) -> None:
        self.targets = check_variants(self.name, tuple(targets), TARGETS)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"loss probability must be within [0, 1], got {probability}")
        self.probability = probability
        self.links: list[tuple[str, str]] = []

    async def start(self, ctx: ClusterControl, rng: random.Random) -> FaultEvent:
        target = rng.choice(self.targets)
        nodes, note = await select_targets(target, ctx, rng)
        self.links = ctx.mesh.links_touching(nodes)
        ctx.mesh.set_loss(self.probability, links=self.links)
        value: dict[str, Any] = {
            "fault": self.name,
            "target": target,
            "nodes": nodes,
            "probability": self.probability,
            "links": len(self.links),
        }
        if note:
            value["note"] = note
        return FaultEvent("start-loss", value)

    async def stop(self, ctx: ClusterControl) -> FaultEvent:
        ctx.mesh.set_loss(0.0, links=self.links)
        healed = len(self.links)
        self.links = []
        return FaultEvent("stop-loss", {"fault": self.name, "links": healed})
