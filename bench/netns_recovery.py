"""Recovery after a partition heals, in hosts mode (kernel drops, half-open TCP) and with
the proxies: time from the heal to the first write acknowledged after it that every node
has applied.

A 3-node raftnode cluster takes a steady stream of writes (one client, through the
leader). One follower is cut off both ways for P seconds — in hosts mode by nftables drops
in the namespaces, so its TCP connections stay open and keep retransmitting with
exponential back-off; with the proxies, by the proxies' drop. At the heal a clock starts;
writes continue; it stops when a write acknowledged after the heal shows as applied on
all three nodes (their ``applied_index`` at least the leader's ``commit_index`` read just
after the acknowledgement).

    python3 bench/netns_recovery.py [--partition 2,8] [--repeats 2] [--no-proxy]

Hosts mode needs root, ``ip`` and ``nft`` (see nemesis/netns.py).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

import trio

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from campaign.cluster import LocalCluster, choose_base_port, node_ids_for  # noqa: E402
from raftnode.client import ClientError, RaftClient  # noqa: E402


async def measure(net: str, partition_s: float, seed: int) -> dict:
    node_ids = node_ids_for(3)
    with tempfile.TemporaryDirectory(prefix="netns-recovery-") as scratch:
        root = Path(scratch)
        (root / "logs").mkdir()
        base = choose_base_port(3, 0, random.Random(seed))
        cluster = LocalCluster(
            node_ids=node_ids, base_port=base, data_root=root / "data", log_dir=root / "logs",
            cluster_id=f"recovery-{seed}", node_seed=seed, proxy_seed=seed, net=net,
            heartbeat_ms=100.0, election_timeout_ms=1000.0,
        )  # fmt: skip
        async with trio.open_nursery() as nursery:
            await nursery.start(cluster.run)
            leader = await cluster.wait_for_leader(30)
            client = RaftClient(
                cluster.node_addresses, timeout=1.0, cluster_id=cluster.cluster_id
            )
            async with client:
                counter = 0

                async def write() -> None:
                    nonlocal counter
                    counter += 1
                    await client.put("k", counter)

                for _ in range(20):
                    await write()
                victim = next(node for node in node_ids if node != leader)
                others = [node for node in node_ids if node != victim]
                cluster.mesh.apply_grudge({victim: set(others), **{o: {victim} for o in others}})
                with trio.move_on_after(partition_s):
                    while True:
                        try:
                            await write()
                        except ClientError:
                            await trio.sleep(0.05)
                cluster.mesh.heal()
                healed = trio.current_time()
                recovered = None
                with trio.move_on_after(60):
                    while recovered is None:
                        try:
                            await write()
                            leader = await cluster.current_leader() or leader
                            target = (await client.status(leader, 1.0))["commit_index"]
                        except (ClientError, KeyError, TypeError):
                            await trio.sleep(0.05)
                            continue
                        while True:
                            statuses = [await cluster.node_status(node) for node in node_ids]
                            applied = [(s or {}).get("applied_index") or 0 for s in statuses]
                            if min(applied) >= target:
                                recovered = trio.current_time() - healed
                                break
                            if trio.current_time() - healed > 60:
                                break
                            await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    return {
        "net": net,
        "partition_s": partition_s,
        "seed": seed,
        "recovery_s": None if recovered is None else round(recovered, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partition", default="2,8", help="partition lengths, seconds")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-proxy", action="store_true", help="hosts mode only")
    args = parser.parse_args()
    nets = ["netns"] + ([] if args.no_proxy else ["proxy"])
    rows = []
    for partition_s in (float(x) for x in args.partition.split(",")):
        for net in nets:
            for repeat in range(args.repeats):
                row = trio.run(measure, net, partition_s, 1000 + repeat)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print(f"{'net':6} {'partition s':>11} {'recovery s (median, max)':>26}")
    for partition_s in sorted({row["partition_s"] for row in rows}):
        for net in nets:
            values = [
                r["recovery_s"] for r in rows
                if r["net"] == net and r["partition_s"] == partition_s and r["recovery_s"]
            ]  # fmt: skip
            if values:
                print(
                    f"{net:6} {partition_s:11g} {statistics.median(values):13.3f} "
                    f"{max(values):12.3f}"
                )
            else:
                print(f"{net:6} {partition_s:11g} {'did not recover in 60 s':>26}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
