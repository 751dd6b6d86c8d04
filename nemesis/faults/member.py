"""member: grow and shrink the cluster through its membership changes (Jepsen's etcd
``member`` nemesis; Raft §4). ``start`` removes one voter - the leader too, sometimes -
while more than ``min_voters`` (3) remain; ``stop`` adds it back as a learner and promotes
it (two single-server changes). Nothing else happens to the removed node: its process
keeps running and its data stays, so its return exercises a stale member catching up.

The nemesis asks the leader itself with admin requests, straight to its port (never
through a proxy), as the clock and transfer faults do:
    {"type": "admin", "action": "member_list" | "member_remove" | "member_add" |
     "member_promote", "node": ID, "address": "HOST:PORT"} -> admin_reply
It knows no Raft internals: the leader comes from ``ctx.current_leader()``, the
configuration from the leader's ``member_list`` answer. A refused or failed request is
recorded in the event, never hidden.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

import trio

from nemesis.admin import AdminError, admin_connection
from nemesis.control import ClusterControl
from nemesis.faults.base import FaultEvent, check_variants, node_address

MEMBER_TARGETS: tuple[str, ...] = ("any", "leader", "follower")
MIN_VOTERS = 3
ATTEMPTS = 10  # a leader change or an uncommitted change refuses: retry this often


async def admin_at_leader(ctx: ClusterControl, action: str, **fields: Any) -> dict[str, Any]:
    """One admin request to the current leader, retried across leader changes and
    ``change_pending`` / ``term_not_committed`` refusals; raises AdminError at the end."""
    last: Exception = AdminError("no leader")
    for _ in range(ATTEMPTS):
        leader = await ctx.current_leader()
        if leader is not None:
            host, port = node_address(ctx, leader)
            try:
                async with admin_connection(host, port, cluster_id=ctx.cluster_id) as admin:
                    return await admin.request(action, **fields)
            except AdminError as error:
                last = error
        await trio.sleep(0.2)
    raise AdminError(str(last))


class MemberFault:
    name: ClassVar[str] = "member"
    variants: ClassVar[tuple[str, ...]] = MEMBER_TARGETS

    def __init__(self, targets: Sequence[str] = (), min_voters: int = MIN_VOTERS) -> None:
        self.targets = check_variants(self.name, tuple(targets), MEMBER_TARGETS)
        if min_voters < 1:
            raise ValueError(f"member: min_voters must be at least 1, got {min_voters}")
        self.min_voters = min_voters
        self.removed: list[str] = []

    async def start(self, ctx: ClusterControl, rng: random.Random) -> FaultEvent:
        choice = rng.choice(self.targets)
        value: dict[str, Any] = {"fault": self.name, "target": choice}
        try:
            conf = (await admin_at_leader(ctx, "member_list"))["value"]
        except AdminError as error:
            value["result"] = f"failed: {error}"
            return FaultEvent("start-member", value)
        voters = sorted(conf["voters"])
        value["voters"] = voters
        if len(voters) <= self.min_voters:
            value["result"] = f"not shrinking below {self.min_voters} voters"
            return FaultEvent("start-member", value)
        leader = conf.get("leader")
        if choice == "leader" and leader in voters:
            node = leader
        elif choice == "follower" and len([v for v in voters if v != leader]) > 0:
            node = rng.choice([v for v in voters if v != leader])
        else:
            node = rng.choice(voters)
        value["removed"] = node
        try:
            reply = await admin_at_leader(ctx, "member_remove", node=node)
            value["voters"] = sorted(reply["value"]["voters"])
            value["result"] = "removed"
            self.removed.append(node)
        except AdminError as error:
            value["result"] = f"failed: {error}"
        return FaultEvent("start-member", value)

    async def stop(self, ctx: ClusterControl) -> FaultEvent:
        value: dict[str, Any] = {"fault": self.name, "added": []}
        while self.removed:
            node = self.removed.pop()
            host, port = node_address(ctx, node)
            try:
                await admin_at_leader(
                    ctx, "member_add", node=node, address=f"{host}:{port}", learner=True
                )
                reply = await admin_at_leader(ctx, "member_promote", node=node)
                value["added"].append(node)
                value["voters"] = sorted(reply["value"]["voters"])
            except AdminError as error:
                value.setdefault("failed", []).append(f"{node}: {error}")
        return FaultEvent("stop-member", value)
