"""start-delay / stop-delay: every message on the links of a target set of nodes waits
``delay`` +/- ``jitter`` seconds (Jepsen's netem delay, per message).

By default a link keeps its order: through the proxies (``--net proxy``) whole messages
wait, and TCP keeps the order of a connection under any packet delay. ``reorder=True``
(``--nemesis-option delay.reorder=true``; Jepsen's netem ``:reorder``) draws each wait on
its own, so a short draw overtakes a long one: in hosts mode (``--net netns``) that
reorders *packets* below TCP (out-of-order segments, duplicate ACKs, fast retransmits;
the application still reads its bytes in order); through the proxies it reorders whole
messages of a connection, harsher than any network, which a Raft node must survive too
(its messages may come in any order on separate connections).
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
        self,
        targets: Sequence[str] = (),
        delay: float = 0.1,
        jitter: float = 0.05,
        reorder: bool = False,
    ) -> None:
        self.targets = check_variants(self.name, tuple(targets), TARGETS)
        if delay < 0 or jitter < 0:
            raise ValueError(f"delay and jitter must be >= 0, got {delay}, {jitter}")
        if not isinstance(reorder, bool):  # from the command line: JSON true/false only
            raise ValueError(f"reorder must be true or false, got {reorder!r}")
        self.delay = delay
        self.jitter = jitter
        self.reorder = reorder
        self.links: list[tuple[str, str]] = []

    async def start(self, ctx: ClusterControl, rng: random.Random) -> FaultEvent:
        target = rng.choice(self.targets)
        nodes, note = await select_targets(target, ctx, rng)
        self.links = ctx.mesh.links_touching(nodes)
        ctx.mesh.set_delay(self.delay, self.jitter, reorder=self.reorder, links=self.links)
        value: dict[str, Any] = {
            "fault": self.name,
            "target": target,
            "nodes": nodes,
            "delay": self.delay,
            "jitter": self.jitter,
            "links": len(self.links),
        }
        if self.reorder:
            value["reorder"] = True
        if note:
            value["note"] = note
        return FaultEvent("start-delay", value)

    async def stop(self, ctx: ClusterControl) -> FaultEvent:
        ctx.mesh.set_delay(0.0, 0.0, links=self.links)
        healed = len(self.links)
        self.links = []
        return FaultEvent("stop-delay", {"fault": self.name, "links": healed})
