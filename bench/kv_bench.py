"""raftnode throughput, latency and failover on a local 3-node cluster (fsync on).

    python3 bench/kv_bench.py [--duration 5] [--trials 8] [--in-flight 1,16,64] [--client-procs 2]

Prints JSON lines:

- ``{"bench": "put", "in_flight": N, "ops_per_s", "p50_ms", "p99_ms", ...}``: puts of
  64-byte values to random keys with N requests in flight for ``--duration`` seconds
  (default node timings: heartbeat 100 ms, election timeout 1000 ms), from one client
  process, then (N >= 2, with ``--client-procs P``) from P processes sharing the N (one
  CPython client is a single thread in series with the nodes in this closed loop, where
  etcd's benchmark spreads its clients over every core; measured here: 2 processes add
  ~3% at 64 in flight, so the nodes, not the client, bound it);
- ``{"bench": "failover", "median_s", "max_s", "samples_s", ...}``: SIGKILL the leader
  while a client writes, time from the kill to the first write acknowledged by the new
  leader (heartbeat 50 ms, election timeout 250 ms), ``--trials`` times;
- ``{"bench": "fsync", ...}``: the disk's fsync latency and the machine's load, printed
  first: a put waits for two fsyncs in a row, so they bound what any Raft store gets here;
- ``{"bench": "compare", ...}``: the figures next to etcd 3.4's on these machines.

Every node is a real process with its WAL on disk (fsync before acknowledging). The
machine's other load matters: run it on a quiet machine and compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from raftnode.cli import node_argv  # noqa: E402
from raftnode.client import ClientError, RaftClient, parse_cluster  # noqa: E402

ETCD = {"put_ops_per_s_64": 6200.0, "put_p50_ms_1": 0.95, "failover_median_s": 0.3}
VALUE = "v" * 64
KEYS = 1000


def free_ports(count: int, low: int, high: int) -> list[int]:
    import socket

    ports = []
    for port in range(low, high):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise SystemExit(f"no {count} free ports in {low}-{high}")


class LocalCluster:
    def __init__(self, root: Path, ports: list[int], extra: list[str]) -> None:
        self.root = root
        self.ids = [f"n{i + 1}" for i in range(len(ports))]
        self.cluster = {n: ("127.0.0.1", p) for n, p in zip(self.ids, ports, strict=True)}
        self.extra = extra
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        root.mkdir(parents=True, exist_ok=True)

    def start(self, node: str) -> None:
        argv = node_argv(
            node, self.cluster[node][1], self.cluster, self.root / node, extra=self.extra
        )
        log = open(self.root / f"{node}.log", "ab")
        self.processes[node] = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        log.close()

    def cpu_seconds(self) -> float:
        """User + system CPU of the node processes so far (Linux /proc)."""
        total = 0
        for process in self.processes.values():
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / os.sysconf("SC_CLK_TCK")

    def kill(self, node: str) -> None:
        process = self.processes.pop(node)
        process.kill()
        process.wait()

    def close(self) -> None:
        for process in self.processes.values():
            process.kill()
            process.wait()
        self.processes.clear()

    async def leader(self, timeout: float = 20.0, exclude: str | None = None) -> str:
        with trio.fail_after(timeout):
            async with RaftClient(self.cluster, timeout=0.3) as client:
                while True:
                    found = set()
                    for node in self.ids:
                        if node == exclude:
                            continue
                        try:
                            status = await client.status(node)
                        except ClientError:
                            continue
                        if status["role"] == "leader" and status["commit_index"] > 0:
                            found.add(node)
                    if len(found) == 1:
                        return found.pop()
                    await trio.sleep(0.02)

    async def caught_up(self, timeout: float = 30.0) -> None:
        """Every node applied what the leader committed."""
        with trio.fail_after(timeout):
            async with RaftClient(self.cluster, timeout=0.5) as client:
                while True:
                    try:
                        statuses = [await client.status(n) for n in self.ids]
                    except ClientError:
                        await trio.sleep(0.05)
                        continue
                    commit = max(s["commit_index"] for s in statuses)
                    if all(s["applied_index"] >= commit for s in statuses):
                        return
                    await trio.sleep(0.05)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


async def put_load(
    cluster: dict[str, tuple[str, int]], client_id: str, in_flight: int, duration: float, seed: int
) -> dict[str, Any]:
    """One client process's share of a put run: ``in_flight`` workers for ``duration`` s."""
    rng = random.Random(seed)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with RaftClient(cluster, client_id, timeout=5.0) as client:
        await client.put("warmup", VALUE)
        stop_at = trio.current_time() + duration

        async def worker() -> None:
            while trio.current_time() < stop_at:
                key = f"k{rng.randrange(KEYS)}"
                start = time.perf_counter()
                try:
                    await client.put(key, VALUE)
                except ClientError as error:
                    errors[error.code] = errors.get(error.code, 0) + 1
                    continue
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        cpu_before = time.process_time()
        async with trio.open_nursery() as nursery:
            for _ in range(in_flight):
                nursery.start_soon(worker)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed, "cpu": cpu}


async def put_bench(
    cluster: LocalCluster, in_flight: int, duration: float, seed: int, client_procs: int = 1
) -> dict[str, Any]:
    """Puts with ``in_flight`` requests outstanding, from one client process or from
    ``client_procs`` of them (each its share of the workers): one CPython client is a
    single thread, a stage in series with the nodes in this closed loop; etcd's own
    benchmark client spreads its goroutines over every core."""
    procs = max(1, min(client_procs, in_flight))
    nodes_cpu_before = cluster.cpu_seconds()
    if procs == 1:
        shares = [await put_load(cluster.cluster, f"bench-{in_flight}", in_flight, duration, seed)]
    else:
        spec = ",".join(f"{n}={host}:{port}" for n, (host, port) in cluster.cluster.items())
        shares = [{} for _ in range(procs)]

        async def run_share(number: int) -> None:
            share = in_flight // procs + (1 if number < in_flight % procs else 0)
            argv = [
                sys.executable, __file__, "--load", spec, "--in-flight", str(share),
                "--duration", str(duration), "--seed", str(seed * 100 + number),
                "--client-id", f"bench-{in_flight}-{number}",
            ]  # fmt: skip
            result = await trio.run_process(argv, capture_stdout=True, cwd=ROOT)
            shares[number] = json.loads(result.stdout.decode().strip().splitlines()[-1])

        async with trio.open_nursery() as nursery:
            for number in range(procs):
                nursery.start_soon(run_share, number)
    nodes_cpu = cluster.cpu_seconds() - nodes_cpu_before
    latencies = sorted(latency for share in shares for latency in share["latencies"])
    errors: dict[str, int] = {}
    for share in shares:
        for code, count in share["errors"].items():
            errors[code] = errors.get(code, 0) + count
    elapsed = max(share["elapsed"] for share in shares)
    client_cpu = sum(share["cpu"] for share in shares)
    ops = max(len(latencies), 1)
    return {
        "bench": "put",
        "in_flight": in_flight,
        "client_processes": procs,
        "value_bytes": len(VALUE),
        "duration_s": round(elapsed, 3),
        "ops": len(latencies),
        "ops_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        # CPU per op (all three nodes; the clients): independent of the machine's load.
        "nodes_cpu_ms_per_op": round(nodes_cpu * 1000 / ops, 3),
        "client_cpu_ms_per_op": round(client_cpu * 1000 / ops, 3),
        "errors": errors,
    }


async def failover_trial(cluster: LocalCluster, trial: int) -> float:
    """Seconds from SIGKILL of the leader to the first write acknowledged after it."""
    leader = await cluster.leader()
    killed_at: float | None = None
    first_ack: float | None = None
    async with RaftClient(cluster.cluster, f"failover-{trial}", timeout=0.5) as client:
        await client.put("f", 0)

        async def writer() -> None:
            nonlocal first_ack
            i = 0
            while first_ack is None:
                i += 1
                try:
                    await client.put("f", i)
                except ClientError:
                    continue
                now = time.perf_counter()
                if killed_at is not None and client.last_node != leader:
                    first_ack = now

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            await trio.sleep(0.3)
            killed_at = time.perf_counter()
            cluster.kill(leader)
    assert first_ack is not None and killed_at is not None
    cluster.start(leader)
    await cluster.caught_up()
    return first_ack - killed_at


def fsync_latency(directory: Path, samples: int = 50) -> dict[str, Any]:
    """The floor under every write: one acknowledged put waits for two fsyncs in a row
    (the leader's, then a follower's) before the leader may apply and answer."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    timings = []
    try:
        for _ in range(samples):
            os.write(fd, b"x" * 128)
            start = time.perf_counter()
            os.fsync(fd)
            timings.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    timings.sort()
    return {
        "bench": "fsync",
        "p50_ms": round(percentile(timings, 0.5) * 1000, 3),
        "p99_ms": round(percentile(timings, 0.99) * 1000, 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }


async def main_async(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kv-bench-", dir=args.data_dir) as tmp:
        print(json.dumps(fsync_latency(Path(tmp))), flush=True)
        ports = free_ports(6, args.port_low, args.port_high)
        if args.in_flight:
            cluster = LocalCluster(Path(tmp) / "throughput", ports[:3], args.node_args.split())
            try:
                for node in cluster.ids:
                    cluster.start(node)
                await cluster.leader()
                for n in args.in_flight:
                    line = await put_bench(cluster, n, args.duration, seed=n)
                    results[f"put{n}"] = line
                    print(json.dumps(line), flush=True)
                    if args.client_procs > 1 and n >= args.client_procs:
                        line = await put_bench(
                            cluster, n, args.duration, seed=n, client_procs=args.client_procs
                        )
                        results[f"put{n}x{args.client_procs}"] = line
                        print(json.dumps(line), flush=True)
            finally:
                cluster.close()
        if args.trials:
            timing = ["--heartbeat-ms", "50", "--election-timeout-ms", "250"]
            cluster = LocalCluster(Path(tmp) / "failover", ports[3:], timing)
            try:
                for node in cluster.ids:
                    cluster.start(node)
                samples = []
                for trial in range(args.trials):
                    samples.append(await failover_trial(cluster, trial))
            finally:
                cluster.close()
            line = {
                "bench": "failover",
                "heartbeat_ms": 50,
                "election_timeout_ms": 250,
                "trials": len(samples),
                "median_s": round(statistics.median(samples), 3),
                "max_s": round(max(samples), 3),
                "samples_s": [round(s, 3) for s in samples],
            }
            results["failover"] = line
            print(json.dumps(line), flush=True)
    compare: dict[str, Any] = {"bench": "compare", "etcd_3_4": ETCD}
    if "put64" in results:
        compare["put64_ops_per_s_vs_etcd"] = round(
            results["put64"]["ops_per_s"] / ETCD["put_ops_per_s_64"], 3
        )
    for key, line in results.items():
        if key.startswith("put64x"):
            compare[f"{key}_ops_per_s_vs_etcd"] = round(
                line["ops_per_s"] / ETCD["put_ops_per_s_64"], 3
            )
    if "put1" in results:
        compare["put1_p50_vs_etcd"] = round(results["put1"]["p50_ms"] / ETCD["put_p50_ms_1"], 3)
    if "failover" in results:
        compare["failover_median_vs_etcd"] = round(
            results["failover"]["median_s"] / ETCD["failover_median_s"], 3
        )
    print(json.dumps(compare), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per put run")
    parser.add_argument(
        "--in-flight",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[1, 16, 64],
        help="comma-separated concurrency levels ('' to skip)",
    )
    parser.add_argument("--trials", type=int, default=8, help="failover trials (0 to skip)")
    parser.add_argument("--data-dir", default=None, help="where the WALs go (a real disk)")
    parser.add_argument(
        "--node-args", default="", help="extra 'raftlab node' flags for the put runs"
    )
    parser.add_argument("--port-low", type=int, default=17500)
    parser.add_argument("--port-high", type=int, default=17999)
    parser.add_argument(
        "--client-procs",
        type=int,
        default=1,
        help="also run each level of 2+ in flight from this many client processes (default 1: no)",
    )
    # Internal: one client process of a multi-process put run (prints its share as JSON).
    parser.add_argument("--load", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--client-id", default="bench", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load is not None:
        share = trio.run(
            put_load,
            parse_cluster(args.load),
            args.client_id,
            args.in_flight[0],
            args.duration,
            args.seed,
        )
        print(json.dumps(share))
        return
    trio.run(main_async, args)


if __name__ == "__main__":
    main()
