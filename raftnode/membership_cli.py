"""``raftlab member list|add|remove|promote`` and ``raftlab transfer-leader``.

Each command finds the leader (asking the nodes' status), sends it one ``admin`` frame
(ARCHITECTURE.md, Wire: ``member_*`` / ``transfer_leader``) and follows a ``not_leader``
hint. ``member add`` adds the node as a learner (§4.2.1), waits until it has applied
everything committed when it was added, then promotes it to voter (one single-server
change each, §4.1); ``--learner`` stops after the first step. Output: one JSON object.
Exit 0 done, 1 refused or failed (definite), 2 unknown outcome, 254 bad arguments.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import click
import trio

from raftnode.client import (
    DEFAULT_CLUSTER_ID,
    ClientError,
    RaftClient,
    parse_address,
    parse_cluster,
)

EXIT_OK, EXIT_FAILED, EXIT_UNKNOWN = 0, 1, 2


class AdminFailed(Exception):
    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(str(reply.get("error")))
        self.reply = reply


async def find_leader(client: RaftClient, nodes: list[str], timeout: float) -> str | None:
    """The leader most nodes name (asking each node's status), or None."""
    named: dict[str, int] = {}
    for node in nodes:
        try:
            status = await client.status(node, timeout)
        except ClientError:
            continue
        if status.get("role") == "leader":
            return node
        leader = status.get("leader")
        if isinstance(leader, str) and leader in client.cluster:
            named[leader] = named.get(leader, 0) + 1
    return max(named, key=named.__getitem__) if named else None


async def admin_at_leader(
    client: RaftClient, frame: dict[str, Any], timeout: float, attempts: int = 10
) -> dict[str, Any]:
    """Send ``frame`` to the leader, following hints; the reply's value, or AdminFailed."""
    nodes = list(client.cluster)
    target: str | None = None
    reply: dict[str, Any] = {"ok": False, "error": "no_leader"}
    for _ in range(attempts):
        if target is None:
            target = await find_leader(client, nodes, timeout)
        if target is None:
            await trio.sleep(0.2)
            continue
        try:
            # RaftClient's one-frame call (status and clock use it too).
            reply = await client._call_node(target, frame, timeout)
        except ClientError as error:
            if error.definite:
                target = None
                await trio.sleep(0.1)
                continue
            raise
        if reply.get("ok"):
            return reply
        if reply.get("error") == "not_leader":
            hint = reply.get("leader")
            target = hint if isinstance(hint, str) and hint in client.cluster else None
            await trio.sleep(0.05)
            continue
        raise AdminFailed(reply)
    raise AdminFailed(reply)


def _run(coroutine_fn: Any) -> None:
    try:
        value = trio.run(coroutine_fn)
    except AdminFailed as failure:
        click.echo(
            _json(
                {"ok": False, **{k: v for k, v in failure.reply.items() if k not in ("type", "id")}}
            )
        )
        sys.exit(EXIT_FAILED)
    except ClientError as error:
        click.echo(_json({"ok": False, "error": error.code, "detail": error.detail}))
        sys.exit(EXIT_FAILED if error.definite else EXIT_UNKNOWN)
    click.echo(_json({"ok": True, "value": value}))
    sys.exit(EXIT_OK)


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True)


def _nodes(cluster: str) -> dict[str, tuple[str, int]]:
    try:
        return parse_cluster(cluster)
    except ValueError as error:
        raise click.UsageError(f"--cluster: {error}") from None


def _timeout(value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise click.UsageError("--timeout must be a positive number of seconds")
    return value


_cluster_option = click.option(
    "--cluster", required=True, metavar="ID=HOST:PORT,...", help="Nodes of the cluster."
)
_cluster_id_option = click.option("--cluster-id", default=DEFAULT_CLUSTER_ID, show_default=True)
_timeout_option = click.option(
    "--timeout", type=float, default=5.0, show_default=True, help="Seconds per request."
)


@click.group("member")
def member_group() -> None:
    """Cluster membership: single-server changes through the Raft log (§4)."""


@member_group.command("list")
@_cluster_option
@_cluster_id_option
@_timeout_option
def member_list(cluster: str, cluster_id: str, timeout: float) -> None:
    """The configuration in force on the leader: voters, learners, addresses."""
    nodes, timeout = _nodes(cluster), _timeout(timeout)

    async def run() -> Any:
        async with RaftClient(nodes, timeout=timeout, cluster_id=cluster_id) as client:
            reply = await admin_at_leader(
                client, {"type": "admin", "action": "member_list"}, timeout
            )
            return reply.get("value")

    _run(run)


@member_group.command("add")
@_cluster_option
@_cluster_id_option
@_timeout_option
@click.option("--learner", is_flag=True, help="Leave the new member a learner (no promotion).")
@click.option(
    "--catch-up-timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to wait for the learner to catch up before promoting it.",
)
@click.argument("member")
def member_add(
    cluster: str,
    cluster_id: str,
    timeout: float,
    learner: bool,
    catch_up_timeout: float,
    member: str,
) -> None:
    """Add MEMBER (ID=HOST:PORT, started with ``raftlab node --join``): as a learner,
    then, once it has caught up, promoted to voter."""
    nodes, timeout = _nodes(cluster), _timeout(timeout)
    node_id, sep, address = member.partition("=")
    if not sep or not node_id:
        raise click.UsageError(f"expected ID=HOST:PORT, got {member!r}")
    try:
        new_address = parse_address(address)
    except ValueError as error:
        raise click.UsageError(f"{member}: {error}") from None
    if node_id in nodes:
        raise click.UsageError(f"{node_id} is already in --cluster")

    async def run() -> Any:
        async with RaftClient(nodes, timeout=timeout, cluster_id=cluster_id) as client:
            frame = {
                "type": "admin",
                "action": "member_add",
                "node": node_id,
                "address": address,
                "learner": True,
            }
            added = (await admin_at_leader(client, frame, timeout))["value"]
            if learner:
                return added
        # Wait for the learner to apply everything committed when it was added.
        watch = {**nodes, node_id: new_address}
        async with RaftClient(watch, timeout=timeout, cluster_id=cluster_id) as client:
            with trio.move_on_after(catch_up_timeout) as waited:
                while True:
                    try:
                        status = await client.status(node_id, timeout)
                        if status.get("applied_index", 0) >= added["index"]:
                            break
                    except ClientError:
                        pass
                    await trio.sleep(0.1)
            if waited.cancelled_caught:
                raise AdminFailed(
                    {"error": "not_caught_up", "detail": f"{node_id} is left a learner"}
                )
            frame = {"type": "admin", "action": "member_promote", "node": node_id}
            return (await admin_at_leader(client, frame, timeout))["value"]

    _run(run)


def _single_change(action: str, help_text: str) -> click.Command:
    @click.command(action.removeprefix("member_"), help=help_text)
    @_cluster_option
    @_cluster_id_option
    @_timeout_option
    @click.argument("node_id")
    def command(cluster: str, cluster_id: str, timeout: float, node_id: str) -> None:
        nodes, timeout = _nodes(cluster), _timeout(timeout)

        async def run() -> Any:
            async with RaftClient(nodes, timeout=timeout, cluster_id=cluster_id) as client:
                frame = {"type": "admin", "action": action, "node": node_id}
                return (await admin_at_leader(client, frame, timeout))["value"]

        _run(run)

    return command


member_group.add_command(
    _single_change(
        "member_remove",
        "Remove a voter or learner (the leader too: it steps down once that commits).",
    )
)
member_group.add_command(_single_change("member_promote", "Promote a learner to voter."))


@click.command("transfer-leader")
@_cluster_option
@_cluster_id_option
@_timeout_option
@click.option("--to", "target", required=True, help="The voter to hand leadership to.")
def transfer_leader_command(cluster: str, cluster_id: str, timeout: float, target: str) -> None:
    """Hand leadership to a voter (§3.10) and wait until it leads."""
    nodes, timeout = _nodes(cluster), _timeout(timeout)
    if target not in nodes:
        raise click.UsageError(f"--to {target}: not in --cluster")

    async def run() -> Any:
        async with RaftClient(nodes, timeout=timeout, cluster_id=cluster_id) as client:
            frame = {"type": "admin", "action": "transfer_leader", "node": target}
            await admin_at_leader(client, frame, timeout)
            with trio.move_on_after(timeout):
                while True:
                    try:
                        status = await client.status(target, timeout)
                        if status.get("role") == "leader":
                            return {"leader": target, "term": status.get("term")}
                    except ClientError:
                        pass
                    await trio.sleep(0.02)
            raise AdminFailed(
                {"error": "transfer_timeout", "detail": f"{target} did not take over"}
            )

    _run(run)
