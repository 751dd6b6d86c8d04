"""transfer: ask the leader to hand leadership to another node (Raft §3.10), as an
operator's rolling restart does. Correct systems lose no acknowledged write and elect no
second leader; the fault exercises the TimeoutNow path, the target's campaign without a
pre-vote, and clients following a moving leader.

The nemesis sends the admin request itself, straight to the leader's port (never through
a proxy), as the clock fault does:
    admin  {"type": "admin", "id": N, "action": "transfer_leader", "node": ID} -> admin_reply
It knows no Raft internals: which node leads comes from ``ctx.current_leader()``. Stopping
the fault does nothing (there is nothing to undo); it records the leader then.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

from nemesis.admin import AdminError, admin_connection
from nemesis.control import ClusterControl
from nemesis.faults.base import FaultEvent, check_variants, node_address

# "any": a random other node; "next": the next node id after the leader (round robin).
TRANSFER_TARGETS: tuple[str, ...] = ("any", "next")


class TransferFault:
    name: ClassVar[str] = "transfer"
    variants: ClassVar[tuple[str, ...]] = TRANSFER_TARGETS

    def __init__(self, targets: Sequence[str] = ()) -> None:
        self.targets = check_variants(self.name, tuple(targets), TRANSFER_TARGETS)

    async def start(self, ctx: ClusterControl, rng: random.Random) -> FaultEvent:
        choice = rng.choice(self.targets)
        value: dict[str, Any] = {"fault": self.name, "target": choice}
        leader = await ctx.current_leader()
        node_ids = list(ctx.node_ids)
        if leader is None or leader not in node_ids:
            value["note"] = "no leader known: nothing to transfer"
            return FaultEvent("start-transfer", value)
        others = [n for n in node_ids if n != leader]
        if not others:
            value["note"] = "a single node: nothing to transfer to"
            return FaultEvent("start-transfer", value)
        if choice == "next":
            to = others[node_ids.index(leader) % len(others)]
        else:
            to = rng.choice(others)
        value.update({"from": leader, "to": to})
        host, port = node_address(ctx, leader)
        try:
            async with admin_connection(host, port, cluster_id=ctx.cluster_id) as admin:
                await admin.request("transfer_leader", node=to)
            value["result"] = "started"
        except AdminError as error:
            # The leader moved or is unreachable meanwhile: recorded, never hidden.
            value["result"] = f"refused: {error}"
        return FaultEvent("start-transfer", value)

    async def stop(self, ctx: ClusterControl) -> FaultEvent:
        return FaultEvent(
            "stop-transfer", {"fault": self.name, "leader": await ctx.current_leader()}
        )
