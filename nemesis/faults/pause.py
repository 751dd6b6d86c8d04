"""pause / resume: SIGSTOP a target set of nodes, SIGCONT them when the fault stops.

A paused node keeps its sockets and its state but answers nothing: to its peers it looks
like a long GC pause or a frozen VM, the case Raft's terms and leases must survive.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

from nemesis.control import ClusterControl
from nemesis.faults.base import TARGETS, FaultEvent, check_variants, select_targets


class PauseFault:
    name: ClassVar[str] = "pause"
    variants: ClassVar[tuple[str, ...]] = TARGETS

    def __init__(self, targets: Sequence[str] = ()) -> None:
        self.targets = check_variants(self.name, tuple(targets), TARGETS)
        self.paused: list[str] = []

    async def start(self, ctx: ClusterControl, rng: random.Random) -> FaultEvent:
        target = rng.choice(self.targets)
        nodes, note = await select_targets(target, ctx, rng)
        value: dict[str, Any] = {"fault": self.name, "target": target, "nodes": nodes}
        if note:
            value["note"] = note
        for node_id in nodes:
            process = ctx.processes[node_id]
            if process.running and not process.paused:
                process.pause()
                self.paused.append(node_id)
        value["paused"] = sorted(self.paused)
        return FaultEvent("pause", value)

    async def stop(self, ctx: ClusterControl) -> FaultEvent:
        resumed: list[str] = []
        for node_id in self.paused:
            process = ctx.processes[node_id]
            if process.running and process.paused:
                process.resume()
                resumed.append(node_id)
        self.paused = []
        return FaultEvent("resume", {"fault": self.name, "nodes": resumed})
