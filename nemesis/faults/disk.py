"""start-disk / stop-disk: kill a node, damage its WAL, start it again; on stop, record
whether it recovered (serves: completes an admin hello), refused to start (exited; its
last log lines are recorded) or is unresponsive (neither, ``settle_seconds`` after start).

Damage is either a truncated tail (the last K bytes of the newest segment, K from 1 to
``max_truncate_bytes``) or one flipped byte at a seeded offset (see ``nemesis.disk``).
Truncating fsynced bytes makes a node forget what it acknowledged: Raft does not promise
safety then (the dissertation §3.8 assumes durable storage), which is why a node that
detects damage should refuse rather than rejoin; the campaign records what it did.

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
    ) -> None:
        self.actions = check_variants(self.name, tuple(actions), ACTIONS)
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
                damage = flip_byte(data_dir, rng, self.wal_glob)
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
