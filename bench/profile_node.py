"""Profile a real 3-node raftnode cluster under a put load (cProfile inside each node).

    python3 bench/profile_node.py [--in-flight 1] [--duration 5] [--top 25] [--out DIR]

Starts three nodes with ``RAFTNODE_PROFILE=DIR`` (raftnode/server.py: the node runs under
cProfile and writes ``DIR/<id>.prof`` when it stops), puts 64-byte values with N requests
in flight at the leader for ``--duration`` seconds (bench/kv_bench.py's load), stops the
nodes with SIGTERM and prints, per node, the functions with the most own time and the
per-put call counts of the handlers that mark a task wake-up (a batch of peer or client
frames, a Ready). cProfile roughly doubles the nodes' CPU: read the shares, not the times.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import signal
import sys
import tempfile
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.kv_bench import RaftnodeCluster, free_ports, put_load  # noqa: E402
from raftnode.server import PROFILE_ENV  # noqa: E402

# Functions whose call counts say how often each node's tasks woke up for work.
MARKERS = (
    "_peer_frames",
    "_client_frames",
    "_handle_ready",
    "_handle_ready_now",
    "_ready_loop",
    "persist",
    "_write_now",
    "put",
    "receive_batch",
    "_encode_peer_message",
    "encode_frame",
    "message_to_wire",
    "message_from_wire",
    "encode_command",
    "pack",
)


async def run(args: argparse.Namespace, out: Path) -> tuple[str, int]:
    with tempfile.TemporaryDirectory(prefix="profile-node-") as tmp:
        ports = free_ports(3, args.port_low, args.port_high)
        cluster = RaftnodeCluster(Path(tmp), ports, args.node_args.split())
        os.environ[PROFILE_ENV] = str(out)
        try:
            for node in cluster.ids:
                cluster.start(node)
        finally:
            del os.environ[PROFILE_ENV]
        try:
            leader = await cluster.leader(timeout=60)
            share = await put_load(
                "raftnode", cluster.spec, "profile", args.in_flight, args.duration, 1, leader
            )
            ops = len(share["latencies"])
            latencies = sorted(share["latencies"])
            print(
                json.dumps(
                    {
                        "in_flight": args.in_flight,
                        "ops": ops,
                        "ops_per_s": round(ops / share["elapsed"], 1),
                        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
                        "note": "under cProfile: slower than a plain run",
                    }
                )
            )
        finally:
            for process in cluster.processes.values():
                process.send_signal(signal.SIGTERM)
            for process in cluster.processes.values():
                try:
                    process.wait(timeout=20)
                except Exception:
                    process.kill()
    return leader, ops


def report(path: Path, ops: int, top: int) -> None:
    stats = pstats.Stats(str(path))
    print(f"\n===== {path.stem}: calls per put of the wake-up markers")
    counts: dict[str, int] = {}
    for (filename, _line, name), (_cc, calls, *_rest) in stats.stats.items():  # type: ignore[attr-defined]
        if name in MARKERS and ("raftnode" in filename or "msgpack" in filename):
            key = f"{Path(filename).name}:{name}"
            counts[key] = counts.get(key, 0) + calls
    for key, calls in sorted(counts.items()):
        print(f"  {key:45s} {calls / max(ops, 1):6.2f}")
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None, help="where the .prof files go")
    parser.add_argument("--node-args", default="", help="extra 'raftlab node' flags")
    parser.add_argument("--port-low", type=int, default=18500)
    parser.add_argument("--port-high", type=int, default=18999)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="raftnode-prof-"))
    leader, ops = trio.run(run, args, out)
    print(f"leader {leader}; profiles in {out}")
    for path in sorted(out.glob("*.prof")):
        print(f"\n##### {path.stem} ({'leader' if path.stem == leader else 'follower'})")
        report(path, ops, args.top)


if __name__ == "__main__":
    main()
