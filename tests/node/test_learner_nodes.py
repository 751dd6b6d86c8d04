"""A learner on real node processes (§4.2.1): ``raftlab member add --learner`` leaves a new
empty node a learner that catches up, is listed as one, gets no vote and is not counted
in any quorum; ``raftlab member promote`` then makes it a voter. The same commit check
with the ``learner-quorum`` bug switch on shows the check can fail."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import trio
from node_procs import PROJECT_ROOT, ProcessCluster, free_ports

from raftnode.client import ClientError

FAST = ["--heartbeat-ms", "50", "--election-timeout-ms", "300"]
ELECTION_SECONDS = 0.3

pytestmark = pytest.mark.slow


def _cli(cluster: ProcessCluster, *args: str, members: str | None = None) -> tuple[int, dict]:
    done = cluster.cli(*args, "--cluster", members or cluster.cluster_text, timeout=60)
    lines = done.stdout.strip().splitlines()
    assert lines, (done.returncode, done.stderr[-2000:])
    return done.returncode, json.loads(lines[-1])


def _reserve_learner(cluster: ProcessCluster) -> str:
    """n4's address: a port no node of the cluster holds (``free_ports`` probes by
    binding, and a node that has not started listening yet looks free)."""
    taken = {port for _host, port in cluster.cluster.values()}
    port = next(p for p in free_ports(len(taken) + 1) if p not in taken)
    cluster.cluster["n4"] = ("127.0.0.1", port)
    cluster.ids.append("n4")
    return f"n4=127.0.0.1:{port}"


def _start_learner(cluster: ProcessCluster, members: str) -> None:
    """n4: a new empty node (``raftlab node --join``) at its reserved address."""
    port = cluster.cluster["n4"][1]
    argv = [
        sys.executable, "-m", "campaign", "node", "--id", "n4",
        "--listen", f"127.0.0.1:{port}", "--data-dir", str(cluster.root / "n4"),
        "--join", members, *cluster.extra,
    ]  # fmt: skip
    with open(cluster.log_path("n4"), "ab") as log:
        cluster.processes["n4"] = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )


async def _add_learner_and_catch_up(cluster: ProcessCluster) -> str:
    """A leader, 20 writes, then n4 added as a learner and caught up; returns the leader."""
    leader = await cluster.wait_for_leader()
    async with cluster.client(timeout=2.0) as client:
        for i in range(20):
            await client.put(f"k{i}", f"v{i}")
    members = cluster.cluster_text
    # Added before it even runs, then started: the leader's first probe is lost and the
    # cluster is idle, so it catches up only because heartbeat answers re-probe it
    # (tests/core/test_learner_catch_up.py; `member add` used to hang here).
    member = _reserve_learner(cluster)
    code, out = await trio.to_thread.run_sync(
        lambda: _cli(cluster, "member", "add", member, "--learner", members=members)
    )
    assert code == 0, out
    assert out["value"]["learners"] == ["n4"]
    assert sorted(out["value"]["voters"]) == ["n1", "n2", "n3"]
    _start_learner(cluster, members)
    async with cluster.client(timeout=1.0) as client:
        with trio.fail_after(10):  # it catches up: everything the leader committed
            while True:
                leader_status = await client.status(leader)
                try:
                    status = await client.status("n4")
                except ClientError:
                    status = {"applied_index": -1}
                if status["applied_index"] >= leader_status["commit_index"] > 20:
                    break
                await trio.sleep(0.05)
        assert status["learners"] == ["n4"] and "n4" not in status["voters"]
        assert await client.get("k19") == "v19"
    return leader


async def _write_with_only_the_leader_and_the_learner(
    cluster: ProcessCluster, leader: str
) -> bool:
    """Kill both other voters; does a write still commit (leader + learner)?"""
    for node in ("n1", "n2", "n3"):
        if node != leader:
            cluster.kill(node)
    async with cluster.client(timeout=3 * ELECTION_SECONDS, node=leader) as client:
        try:
            await client.put("q", "only leader and learner")
        except ClientError:
            return False
    return True


def test_a_learner_catches_up_gets_no_vote_no_quorum_and_is_promoted(process_cluster) -> None:
    cluster = process_cluster(3, FAST)
    cluster.start_all()

    async def scenario() -> None:
        leader = await _add_learner_and_catch_up(cluster)
        code, listed = await trio.to_thread.run_sync(lambda: _cli(cluster, "member", "list"))
        assert code == 0 and listed["value"]["learners"] == ["n4"], listed
        assert sorted(listed["value"]["voters"]) == ["n1", "n2", "n3"]
        # Not counted in a commit quorum: the leader and the learner are 2 of 4 members
        # but 1 of 3 voters, so the write must not commit.
        assert not await _write_with_only_the_leader_and_the_learner(cluster, leader)
        # No vote: with the leader gone too, one voter and the learner are left. The
        # voter cannot win (1 of 3 voters, the learner's grant does not count) and the
        # learner never campaigns.
        others = [n for n in ("n1", "n2", "n3") if n != leader]
        cluster.start(others[0])
        cluster.kill(leader)
        await trio.sleep(8 * ELECTION_SECONDS)
        statuses = await cluster.statuses()
        assert set(statuses) == {others[0], "n4"}, statuses
        assert all(s["role"] != "leader" for s in statuses.values()), statuses
        assert statuses["n4"]["learners"] == ["n4"]
        log = cluster.log_text("n4")
        assert "role=leader" not in log and "role=candidate" not in log
        assert "role=pre_candidate" not in log
        # Back to three voters; promote the learner: a voter now, listed as one.
        cluster.start(leader)
        cluster.start(others[1])
        await cluster.wait_for_leader(timeout=15)
        code, out = await trio.to_thread.run_sync(
            lambda: _cli(cluster, "member", "promote", "n4")
        )
        assert code == 0, out
        assert sorted(out["value"]["voters"]) == ["n1", "n2", "n3", "n4"]
        assert out["value"]["learners"] == []
        async with cluster.client(timeout=3.0) as client:
            await client.put("after", "promotion")
            assert await client.get("k0") == "v0"

    trio.run(scenario)


def test_with_the_learner_quorum_bug_the_leader_and_learner_commit(process_cluster) -> None:
    """The same quorum check against a build that counts learners (a teaching switch):
    the write commits, so the check above would catch the bug."""
    cluster = process_cluster(3, [*FAST, "--unsafe", "--bug", "learner-quorum"])
    cluster.start_all()

    async def scenario() -> None:
        leader = await _add_learner_and_catch_up(cluster)
        assert await _write_with_only_the_leader_and_the_learner(cluster, leader)

    trio.run(scenario)
