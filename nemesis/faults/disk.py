"""start-disk / stop-disk: kill a node, damage its WAL, start it again; on stop, record
whether it recovered (serves: completes an admin hello), refused to start (exited; its
exit status and last log lines are recorded) or is unresponsive (neither,
``settle_seconds`` after start). A refusal is an outcome of the fault, recorded like any
other, never an error of the harness.

Damage (see ``nemesis.disk``) is one of:

- ``truncate``: the last K bytes of the newest segment cut (K from 1 to
  ``max_truncate_bytes``): what a torn write looks like. A node should *recover*: drop
  the partial record and start.
- ``flip``: one byte flipped at a seeded offset of the newest segment: anywhere, or (a
  ``tail_flip_share`` of the time) among its last ``TAIL_FLIP_BYTES`` bytes, inside the
  complete, fsynced last record, where a careless WAL mistakes damage for a torn write.
  The start-disk value says which (``damage.window``).

A flipped byte in a complete record is damage to something the node acknowledged (a
vote, an append): a node should *refuse* to start rather than forget it (it could vote
twice in a term). Truncating fsynced bytes also makes a node forget what it acknowledged:
Raft does not promise safety then (the dissertation §3.8 assumes durable storage); the
campaign records what the node did.

A node that refused stays down, so this fault never damages a node when doing so could
leave fewer than a majority of undamaged-or-recovered nodes.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

import trio

from nemesis.admin import AdminError, ping
from nemesis.control import ClusterControl
from nemesis.disk import DEFAULT_WAL_GLOB, DiskFaultError, flip_byte, truncate_tail
from nemesis.faults.base import FaultEvent, check_variants, minority_size, node_address

ACTIONS: tuple[str, ...] = ("truncate", "flip")
TAIL_FLIP_BYTES = 32  # within the last record: raftnode's smallest (a vote) is 33 bytes
LOG_TAIL_LINES = 5


def _log_tail(path: Any, node_id: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The node's last log lines since its latest start marker (what it said this time)."""
    try:
        with open(path, "rb") as log:
            log.seek(0, 2)
            log.seek(max(0, log.tell() - 65536))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    recent = [line for line in text.splitlines() if line.strip()]
    marker = f"=== raftlab {node_id}: start #"
    starts = [index for index, line in enumerate(recent) if line.startswith(marker)]
    if starts:
        recent = recent[starts[-1] + 1 :]
    return recent[-lines:]


class DiskFault:
    name: ClassVar[str] = "disk"
    variants: ClassVar[tuple[str, ...]] = ACTIONS

    def __init__(
        self,
        actions: tuple[str, ...] = (),
        wal_glob: str = DEFAULT_WAL_GLOB,
        max_truncate_bytes: int = 256,
        settle_seconds: float = 20.0,
        tail_flip_share: float = 0.5,
    ) -> None:
        self.actions = check_variants(self.name, tuple(actions), ACTIONS)
        if not 0.0 <= tail_flip_share <= 1.0:
            raise ValueError(f"tail_flip_share must be in [0, 1], got {tail_flip_share}")
        self.tail_flip_share = tail_flip_share
        self.wal_glob = wal_glob
        self.max_truncate_bytes = max_truncate_bytes
        self.settle_seconds = settle_seconds
        self.damaged: str | None = None
        self.restarted_at = 0.0
        self.refused: set[str] = set()  # nodes that would not start after damage

    async def start(self, ctx: ClusterControl, rng: random.Random) -> FaultEvent:
        node_ids = list(ctx.node_ids)
        value: dict[str, Any] = {"fault": self.name}
        if len(self.refused) + 1 > minority_size(len(node_ids)):
            value["skipped"] = (
                f"{sorted(self.refused)} already refused to start; damaging another node "
                "could leave no majority"
            )
            return FaultEvent("start-disk", value)
        candidates = [node for node in node_ids if node not in self.refused]
        node_id = rng.choice(candidates)
        action = rng.choice(self.actions)
        process = ctx.processes[node_id]
        value.update(node=node_id, action=action)
        if process.running:
            value["kill_status"] = await process.kill()
        data_dir = ctx.data_dir(node_id)
        try:
            if action == "truncate":
                damage = truncate_tail(
                    data_dir, rng.randint(1, self.max_truncate_bytes), self.wal_glob
                )
            else:
                aim_at_tail = rng.random() < self.tail_flip_share
                window = TAIL_FLIP_BYTES if aim_at_tail else None
                damage = flip_byte(data_dir, rng, self.wal_glob, window=window)
            value["damage"] = damage.describe()
        except DiskFaultError as error:
            value["damage"] = None
            value["error"] = str(error)
        await process.start()
        self.restarted_at = trio.current_time()
        self.damaged = node_id
        return FaultEvent("start-disk", value)

    async def stop(self, ctx: ClusterControl) -> FaultEvent:
        value: dict[str, Any] = {"fault": self.name}
        node_id, self.damaged = self.damaged, None
        if node_id is None:
            value["outcome"] = "nothing damaged"
            return FaultEvent("stop-disk", value)
        value["node"] = node_id
        value["outcome"] = await self._await_outcome(ctx, node_id)
        process = ctx.processes[node_id]
        if value["outcome"] == "refused":
            value["exit_status"] = process.returncode
            self.refused.add(node_id)
        if value["outcome"] != "recovered":
            value["log_tail"] = _log_tail(process.log_path, node_id)
        return FaultEvent("stop-disk", value)

    async def _await_outcome(self, ctx: ClusterControl, node_id: str) -> str:
        """ "recovered" once the node completes an admin hello, "refused" if it exits,
        "unresponsive" if neither happens within ``settle_seconds`` of its restart (a
        node can take seconds to start on a loaded machine)."""
        process = ctx.processes[node_id]
        host, port = node_address(ctx, node_id)
        with trio.move_on_at(self.restarted_at + self.settle_seconds):
            while True:
                if not process.running:
                    return "refused"
                try:
                    await ping(host, port, cluster_id=ctx.cluster_id, timeout=1.0)
                except AdminError:
                    await trio.sleep(0.1)
                    continue
                # Answering now; an exit racing with the hello still counts as a refusal.
                return "recovered" if process.running else "refused"
        return "refused" if not process.running else "unresponsive"
