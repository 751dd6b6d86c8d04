"""Transactions on real node processes: `raftlab kv txn`, ReadIndex for read-only txns,
the ``txn-stale-reads`` switch (refused without --unsafe, caught by Elle), and a short real
`raftlab test --workload list-append` campaign under partitions and kills (slow)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from node_procs import PROJECT_ROOT, ProcessCluster

from raftnode.cli import node_argv
from raftnode.client import ClientError, RaftClient
from workloads import make_workload
from workloads.recorder import HistoryRecorder
from workloads.runner import run_final_ops, run_workload

pytestmark = pytest.mark.slow

MakeCluster = Callable[..., ProcessCluster]


def test_kv_txn_from_the_command_line(process_cluster: MakeCluster) -> None:
    cluster = process_cluster(3)
    cluster.start_all()
    trio.run(cluster.wait_for_leader)
    text = cluster.cluster_text
    result = cluster.cli("kv", "--cluster", text, "txn", '[["append","x",1],["r","x",null]]')
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["ok"] is True and reply["op"] == "txn"
    assert reply["value"] == [["append", "x", 1], ["r", "x", [1]]]
    result = cluster.cli("kv", "--cluster", text, "txn", '[["w","y","a"],["r","y",null]]')
    assert json.loads(result.stdout)["value"] == [["w", "y", "a"], ["r", "y", "a"]]
    # Refused before anything is sent: not JSON, or not micro-ops.
    for bad in ("[[", '[["inc","x",1]]', "[]"):
        result = cluster.cli("kv", "--cluster", text, "txn", bad)
        assert result.returncode not in (0, 1, 2) and "txn" in result.stderr, result


def test_read_only_txns_by_read_index_and_malformed_txns(process_cluster: MakeCluster) -> None:
    cluster = process_cluster(3)
    cluster.start_all()

    async def main() -> None:
        await cluster.wait_for_leader()
        async with cluster.client("c1", timeout=5.0) as client:
            await client.txn([["append", "k", 1], ["append", "k", 2]])
            before = await client.status(client.last_node or "n1")
            value = await client.txn([["r", "k", None], ["r", "z", None]], read_index=True)
            assert value == [["r", "k", [1, 2]], ["r", "z", None]]
            after = await client.status(client.last_node or "n1")
            # A ReadIndex read appends nothing to the log (heartbeats only).
            assert after["last_log_index"] == before["last_log_index"]
            with pytest.raises(ClientError) as error:
                await client.txn([["append", "k", 3], ["w", "k", 4], ["r", 1.5, None]])
            assert error.value.code == "malformed" and error.value.definite
            with pytest.raises(ClientError) as error:
                await client.txn([["r", "k", None]] * 257)
            assert error.value.code == "malformed"
            assert await client.get("k") == [1, 2]  # nothing of the refused txns applied

    trio.run(main)


def test_the_stale_reads_switch_needs_unsafe(tmp_path: Path) -> None:
    argv = node_argv(
        "n1", 1, {"n1": ("127.0.0.1", 1)}, tmp_path, extra=["--bug", "txn-stale-reads"]
    )
    result = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "--unsafe" in result.stderr, result


def _run_list_append(cluster: ProcessCluster, seconds: float) -> dict:
    workload = make_workload("list-append", key_count=3)
    recorders: list[HistoryRecorder] = []

    def factory(*, process: int, client_id: str, node: str | None) -> RaftClient:
        return RaftClient(cluster.cluster, client_id, timeout=2.0)

    async def main() -> None:
        await cluster.wait_for_leader()
        recorder = HistoryRecorder()
        recorders.append(recorder)
        await run_workload(
            workload, factory, recorder, concurrency="5n", rate=300, time_limit=seconds,
            rng=random.Random(3), nodes=cluster.ids,
        )  # fmt: skip
        await run_final_ops(workload, factory, recorder, nodes=cluster.ids, time_limit=10)

    trio.run(main)
    return workload.check(recorders[0].ops)["checkers"]["elle-list-append"]


def test_the_stale_reads_switch_on_real_nodes_is_caught_by_elle(
    process_cluster: MakeCluster,
) -> None:
    """Reads taken at proposal on the leader miss what commits before the txn's entry:
    over loopback that window is short, but 15 clients on 3 keys hit it within seconds."""
    cluster = process_cluster(3, ["--unsafe", "--bug", "txn-stale-reads"])
    cluster.start_all()
    elle = _run_list_append(cluster, 4.0)
    assert elle["valid"] is False
    assert set(elle["anomaly-types"]) & {"G-single", "G2-item", "G-nonadjacent", "lost-update"}
    assert "lost-append" not in elle["anomaly-types"]  # durability is intact


def test_a_real_list_append_campaign_under_partitions_and_kills_is_valid(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    completed = subprocess.run(
        [sys.executable, "-m", "campaign", "test", "--results-dir", str(results),
         "--nodes", "3", "--workload", "list-append", "--nemesis", "partition,kill",
         "--nemesis-interval", "2", "--time-limit", "8", "--recovery-time", "1",
         "--seed", "4", "--base-port", "0", "--name", "txn"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    run = json.loads((results / "latest" / "results.json").read_text())
    elle = run["checkers"]["elle-list-append"]
    assert run["valid"] is True and elle["valid"] is True
    assert elle["txns"]["ok"] >= 30
    # Every txn is one session seq, so the node logs' acknowledged-writes check applies.
    assert run["checkers"]["acknowledged-writes"]["valid"] is True
    history = [json.loads(line) for line in (results / "latest" / "history.jsonl").open()]
    assert {op["f"] for op in history if op["process"] == "nemesis"} & {"kill", "start-partition"}
