"""kill / start: SIGKILL a target set of nodes; stopping the fault starts them again.

Targets as Jepsen's db nemesis: one, minority, majority, leader, all. A node restarts
with the same argv and data directory, so it must recover from its WAL (Raft §5.2 and
the dissertation §3.8: what it acknowledged is on disk).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

from nemesis.control import ClusterControl
from nemesis.faults.base import TARGETS, FaultEvent, check_variants, select_targets


class KillFault:
    name: ClassVar[str] = "kill"
    variants: ClassVar[tuple[str, ...]] = TARGETS

    def __init__(self, targets: Sequence[str] = ()) -> None:
        self.targets = check_variants(self.name, tuple(targets), TARGETS)
        self.killed: list[str] = []

    async def start(self, ctx: ClusterControl, rng: random.Random) -> FaultEvent:
        target = rng.choice(self.targets)
        nodes, note = await select_targets(target, ctx, rng)
        value: dict[str, Any] = {"fault": self.name, "target": target, "nodes": nodes}
        if note:
            value["note"] = note
        exit_status: dict[str, int | None] = {}
        for node_id in nodes:
            process = ctx.processes[node_id]
            if process.running:
                exit_status[node_id] = await process.kill()
                self.killed.append(node_id)
        value["killed"] = sorted(exit_status)
        already_down = sorted(set(nodes) - set(exit_status))
        if already_down:
            value["already_down"] = already_down
        return FaultEvent("kill", value)

    async def stop(self, ctx: ClusterControl) -> FaultEvent:
        started: list[str] = []
        for node_id in self.killed:
            process = ctx.processes[node_id]
            if not process.running:
                await process.start()
                started.append(node_id)
        self.killed = []
        return FaultEvent("start", {"fault": self.name, "nodes": started})
