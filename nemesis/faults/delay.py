"""start-delay / stop-delay: every message on the links of a target set of nodes waits
``delay`` +/- ``jitter`` seconds (Jepsen's netem delay, per message).

Messages on one link keep their order, as TCP keeps it under netem's packet delay; the
proxy's ``reorder`` option exists for harsher experiments but is not used here.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

from nemesis.control import ClusterControl
from nemesis.faults.base import TARGETS, FaultEvent, check_variants, select_targets


class DelayFault:
    name: ClassVar[str] = "delay"
    variants: ClassVar[tuple[str, ...]] = TARGETS

    def __init__(
        self, targets: Sequence[str] = (), delay: float = 0.1, jitter: float = 0.05
    ) -> None:
        self.targets = check_variants(self.name, tuple(targets), TARGETS)
        if delay < 0 or jitter < 0:
            raise ValueError(f"delay and jitter must be >= 0, got {delay}, {jitter}")
        self.delay = delay
        self.jitter = jitter
        self.links: list[tuple[str, str]] = []

    async def start(self, ctx: ClusterControl, rng: random.Random) -> FaultEvent:
        target = rng.choice(self.targets)
        nodes, note = await select_targets(target, ctx, rng)
        self.links = ctx.mesh.links_touching(nodes)
        ctx.mesh.set_delay(self.delay, self.jitter, links=self.links)
        value: dict[str, Any] = {
            "fault": self.name,
            "target": target,
            "nodes": nodes,
            "delay": self.delay,
            "jitter": self.jitter,
            "links": len(self.links),
        }
        if note:
            value["note"] = note
        return FaultEvent("start-delay", value)

    async def stop(self, ctx: ClusterControl) -> FaultEvent:
        ctx.mesh.set_delay(0.0, 0.0, links=self.links)
        healed = len(self.links)
        self.links = []
        return FaultEvent("stop-delay", {"fault": self.name, "links": healed})
