"""member: grow and shrink the cluster through its membership changes (Jepsen's etcd
``member`` nemesis; Raft §4).

Jepsen's test has a pool of nodes larger than the cluster at any moment, and its member
nemesis either *grows* the cluster with a node outside it or *shrinks* it. Here the pool
is ``ctx.all_ids``: the ``--nodes`` plus the ``--spares`` (`campaign.cluster`). Each
``start`` is one single-server change, chosen with the seeded RNG:

- **grow**: a node outside the configuration - a spare never started, or a node removed
  earlier - is brought into play (``ctx.start_member``: a spare starts as a brand-new
  empty ``raftlab node --join``, a removed node restarts on its own data) and added as a
  learner at the address ``ctx.member_address`` gives (its hello router, so its links run
  through the proxies like every other node's). ``stop`` waits (at most ``catch_up``
  seconds) until it has applied the entry that added it, then promotes it to voter, as
  ``raftlab member add`` does (one not caught up by then is left a learner, recorded);
  with ``--nemesis-option member.promote=false`` every learner is left one (the sim's
  ``member:learner``), which is what exposes a build that counts learners in quorums.
- **shrink**: a voter (``member-leader``, ``member-follower`` or ``member-any``; the
  leader steps down once its removal commits, §4.2.2) is removed while more than
  ``min_voters`` (3) remain, and taken out of play (``ctx.retire_member``: stopped, its
  data kept for a later grow). ``stop`` has nothing to undo.

A grow with nobody outside becomes a shrink and a shrink at ``min_voters`` a grow; with
neither possible (``--nodes 3 --spares 0``) the step records that. A cluster control
without ``start_member`` / ``retire_member`` (a bare `ClusterControl`) leaves processes
alone: a removed node keeps running and a grow re-adds it.

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
CATCH_UP_SECONDS = 10.0  # a learner not caught up by then is left a learner (recorded)


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
                if "invalid" in str(error):  # e.g. already a member: retrying cannot help
                    break
        await trio.sleep(0.2)
    raise AdminError(str(last))


async def configuration(ctx: ClusterControl) -> dict[str, Any]:
    """The leader's ``member_list`` value: voters, learners, addresses, leader."""
    return (await admin_at_leader(ctx, "member_list"))["value"]


async def applied_index(ctx: ClusterControl, node: str) -> int | None:
    """What ``node`` has applied, asked of the node itself; None if it does not answer."""
    host, port = node_address(ctx, node)
    try:
        async with admin_connection(host, port, cluster_id=ctx.cluster_id) as admin:
            value = (await admin.status()).get("applied_index")
    except AdminError:
        return None
    return value if isinstance(value, int) else None


class MemberFault:
    name: ClassVar[str] = "member"
    variants: ClassVar[tuple[str, ...]] = MEMBER_TARGETS

    def __init__(
        self,
        targets: Sequence[str] = (),
        min_voters: int = MIN_VOTERS,
        catch_up: float = CATCH_UP_SECONDS,
        promote: bool = True,
    ) -> None:
        self.targets = check_variants(self.name, tuple(targets), MEMBER_TARGETS)
        if min_voters < 1:
            raise ValueError(f"member: min_voters must be at least 1, got {min_voters}")
        if not catch_up >= 0:
            raise ValueError(f"member: catch_up must be >= 0 seconds, got {catch_up}")
        self.min_voters = min_voters
        self.catch_up = float(catch_up)
        if not isinstance(promote, bool):
            raise ValueError(f"member: promote must be true or false, got {promote!r}")
        self.promote = promote
        self.learners: list[tuple[str, int]] = []  # (node, index of its add) to promote

    async def start(self, ctx: ClusterControl, rng: random.Random) -> FaultEvent:
        value: dict[str, Any] = {"fault": self.name}
        try:
            conf = await configuration(ctx)
        except AdminError as error:
            value["result"] = f"failed: {error}"
            return FaultEvent("start-member", value)
        voters, learners = sorted(conf["voters"]), sorted(conf["learners"])
        value["voters"] = voters
        pool = list(getattr(ctx, "all_ids", None) or ctx.node_ids)
        outside = [node for node in pool if node not in voters and node not in learners]
        action = rng.choice(("grow", "shrink"))
        if action == "grow" and not outside:
            action = "shrink"
        if action == "shrink" and len(voters) <= self.min_voters:
            action = "grow"
        value["action"] = action
        if action == "grow" and not outside:
            value["result"] = (
                f"not shrinking below {self.min_voters} voters and no node outside the "
                "configuration to grow with"
            )
            return FaultEvent("start-member", value)
        if action == "grow":
            await self._grow(ctx, rng.choice(outside), [*voters, *learners], value)
        else:
            await self._shrink(ctx, rng, conf, voters, value)
        return FaultEvent("start-member", value)

    async def _grow(
        self, ctx: ClusterControl, node: str, members: list[str], value: dict[str, Any]
    ) -> None:
        value["node"] = node
        start_member = getattr(ctx, "start_member", None)
        if start_member is not None:
            value["process"] = await start_member(node, members)
        member_address = getattr(ctx, "member_address", None)
        if member_address is not None:
            address = member_address(node)
        else:
            host, port = node_address(ctx, node)
            address = f"{host}:{port}"
        value["address"] = address
        try:
            reply = await admin_at_leader(ctx, "member_add", node=node, address=address)
            self.learners.append((node, int(reply["value"].get("index", 0))))
            value["learners"] = sorted(reply["value"]["learners"])
            value["result"] = "added as learner"
        except AdminError as error:
            # The add may have committed anyway (its answer lost): look before giving up.
            conf = await _configuration_or_none(ctx)
            if conf is not None and node in conf["learners"]:
                self.learners.append((node, 0))
                value["result"] = f"added as learner (answer lost: {error})"
                return
            value["result"] = f"failed: {error}"
            retire = getattr(ctx, "retire_member", None)
            if retire is not None and (conf is None or node not in conf["voters"]):
                value["process"] = await retire(node)

    async def _shrink(
        self,
        ctx: ClusterControl,
        rng: random.Random,
        conf: dict[str, Any],
        voters: list[str],
        value: dict[str, Any],
    ) -> None:
        choice = rng.choice(self.targets)
        value["target"] = choice
        leader = conf.get("leader")
        followers = [v for v in voters if v != leader]
        if choice == "leader" and leader in voters:
            node = leader
        elif choice == "follower" and followers:
            node = rng.choice(followers)
        else:
            node = rng.choice(voters)
        value["node"] = node
        try:
            reply = await admin_at_leader(ctx, "member_remove", node=node)
            value["voters"] = sorted(reply["value"]["voters"])
            value["result"] = "removed"
        except AdminError as error:
            after = await _configuration_or_none(ctx)
            if after is None or node in after["voters"] or node in after["learners"]:
                value["result"] = f"failed: {error}"
                return
            value["voters"] = sorted(after["voters"])
            value["result"] = f"removed (answer lost: {error})"
        retire = getattr(ctx, "retire_member", None)
        if retire is not None:
            value["process"] = await retire(node)

    async def stop(self, ctx: ClusterControl) -> FaultEvent:
        """Promote the learners the last grow added, once caught up (§4.2.1)."""
        value: dict[str, Any] = {"fault": self.name, "promoted": []}
        if not self.promote:  # member.promote=false: learners stay learners (sim's member:learner)
            value["left_learners"] = [node for node, _index in self.learners]
            self.learners.clear()
            return FaultEvent("stop-member", value)
        while self.learners:
            node, index = self.learners.pop()
            caught_up = False
            with trio.move_on_after(self.catch_up):
                while True:
                    applied = await applied_index(ctx, node)
                    if applied is not None and applied >= index:
                        caught_up = True
                        break
                    await trio.sleep(0.1)
            if not caught_up:  # as `raftlab member add` does: left a learner, said so
                value.setdefault("left_learners", []).append(node)
                continue
            try:
                reply = await admin_at_leader(ctx, "member_promote", node=node)
                value["promoted"].append(node)
                value["voters"] = sorted(reply["value"]["voters"])
            except AdminError as error:
                value.setdefault("failed", []).append(f"{node}: {error}")
        return FaultEvent("stop-member", value)


async def _configuration_or_none(ctx: ClusterControl) -> dict[str, Any] | None:
    try:
        return await configuration(ctx)
    except AdminError:
        return None
