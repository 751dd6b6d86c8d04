"""``raftlab node``, ``raftlab kv``, ``raftlab status`` and ``raftlab cluster up``.

Exit codes follow conventions §2: bad arguments raise ``click.UsageError`` (254, mapped
by ``campaign/cli.py``); ``kv`` exits 0 ok, 1 definite failure, 2 unknown outcome.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import trio

from raftnode.client import ClientError, RaftClient, parse_address, parse_cluster

DEFAULT_CLUSTER_ID = "raftlab"
EXIT_OK = 0
EXIT_DEFINITE = 1
EXIT_UNKNOWN = 2
STOP_GRACE_SECONDS = 5.0


def _known_bugs() -> frozenset[str]:
    from raftnode.core import KNOWN_BUGS

    return KNOWN_BUGS


def _json_value(value: Any) -> Any:
    """msgpack values as JSON: bytes become text (or hex if not UTF-8)."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, dict):
        return {str(_json_value(k)): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _echo_json(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(_json_value(obj), sort_keys=False))


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses as JSON (``42``, ``[1,2]``, ``"x"``,
    ``null``), the plain string otherwise (``hello``)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _cluster_option(text: str) -> dict[str, tuple[str, int]]:
    try:
        return parse_cluster(text)
    except ValueError as error:
        raise click.UsageError(f"--cluster: {error}") from None


# --- raftlab node -------------------------------------------------------------------


@click.command("node")
@click.option("--id", "node_id", required=True, help="This node's id, e.g. n1.")
@click.option(
    "--listen",
    required=True,
    metavar="HOST:PORT",
    help="Where this node listens for peers, clients and admin (one port). Port 0 picks one.",
)
@click.option(
    "--peer",
    "peers",
    multiple=True,
    metavar="ID=HOST:PORT",
    help="Another voter and where to dial it (repeat per peer). The address may be a proxy "
    "rather than where the peer listens.",
)
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="WAL segments and snapshots. Created if absent; reused on restart.",
)
@click.option(
    "--cluster-id",
    default=DEFAULT_CLUSTER_ID,
    show_default=True,
    help="Every hello must name it; connections from another cluster are refused.",
)
@click.option(
    "--heartbeat-ms",
    type=float,
    default=100.0,
    show_default=True,
    help="Leader heartbeat interval. 100 ms is etcd's default: far above a loopback or LAN "
    "round trip, cheap with a few followers.",
)
@click.option(
    "--election-timeout-ms",
    type=float,
    default=1000.0,
    show_default=True,
    help="Base election timeout, drawn per election from [T, 2T). 1000 ms (10 heartbeats, "
    "etcd's default) rides out several lost heartbeats or a slow fsync without a needless "
    "election (thesis §9.3: broadcast time << election timeout); failover takes ~1-2 s.",
)
@click.option(
    "--snapshot-threshold",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Entries applied since the last snapshot before the node snapshots and compacts "
    "its log. 4096 keeps restart replay and catch-up short while snapshots of a test-sized "
    "KV stay rare.",
)
@click.option(
    "--read-mode",
    type=click.Choice(["read_index", "log"]),
    default="read_index",
    show_default=True,
    help="read_index: linearizable reads confirmed by a heartbeat quorum, no log write "
    "(§6.4); log: every read is a log entry (slower, simplest to trust).",
)
@click.option(
    "--bug",
    "bugs",
    multiple=True,
    metavar="NAME",
    help="Teaching bug switch (repeatable); refused without --unsafe. See ARCHITECTURE.md "
    "'Bug switches'.",
)
@click.option("--unsafe", is_flag=True, help="Allow --bug switches: this node may lose data.")
@click.option(
    "--unsafe-local-reads",
    is_flag=True,
    help="Teaching switch: serve reads from local state without ReadIndex (stale reads, "
    "etcd #741). Same as --unsafe --bug stale-local-reads.",
)
@click.option("--seed", type=int, default=None, help="Seed of the node's randomness (logged).")
@click.option(
    "--join",
    default=None,
    metavar="ID=HOST:PORT,...",
    help="Start as a new, empty member of a running cluster (these are its members); it "
    "catches up as a learner once `raftlab member add` adds it.",
)
@click.option(
    "--max-frame-bytes",
    type=click.IntRange(min=1024),
    default=32 * 1024 * 1024,
    show_default=True,
    help="Largest frame accepted on the port.",
)
@click.option(
    "--request-timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds a client request may wait inside the node before 'timeout'.",
)
def node_command(
    node_id: str,
    listen: str,
    peers: tuple[str, ...],
    data_dir: Path,
    cluster_id: str,
    heartbeat_ms: float,
    election_timeout_ms: float,
    snapshot_threshold: int,
    read_mode: str,
    bugs: tuple[str, ...],
    unsafe: bool,
    unsafe_local_reads: bool,
    seed: int | None,
    join: str | None,
    max_frame_bytes: int,
    request_timeout: float,
) -> None:
    """Run one raftnode (a Raft KV voter) in the foreground until SIGTERM or Ctrl-C."""
    from raftnode.server import NodeConfig, Timing, run_node

    try:
        host, port = parse_address(listen)
    except ValueError as error:
        raise click.UsageError(f"--listen: {error}") from None
    peer_map: dict[str, tuple[str, int]] = {}
    for item in peers:
        peer_id, sep, address = item.partition("=")
        if not sep or not peer_id:
            raise click.UsageError(f"--peer: expected ID=HOST:PORT, got {item!r}")
        if peer_id == node_id:
            raise click.UsageError(f"--peer: {peer_id!r} is this node's own id")
        if peer_id in peer_map:
            raise click.UsageError(f"--peer: {peer_id!r} given twice")
        try:
            peer_map[peer_id] = parse_address(address)
        except ValueError as error:
            raise click.UsageError(f"--peer {peer_id}: {error}") from None
    if join is not None:
        for peer_id, address in _cluster_option(join).items():
            if peer_id != node_id:
                peer_map.setdefault(peer_id, address)
    try:
        Timing.from_ms(heartbeat_ms, election_timeout_ms)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if not (request_timeout > 0 and math.isfinite(request_timeout)):
        raise click.UsageError("--request-timeout must be a positive number of seconds")
    bug_set = set(bugs)
    if unsafe_local_reads:
        bug_set.add("stale-local-reads")
        unsafe = True
    unknown = sorted(bug_set - _known_bugs())
    if unknown:
        raise click.UsageError(
            f"unknown --bug {', '.join(unknown)}; known: {', '.join(sorted(_known_bugs()))}"
        )
    if bug_set and not unsafe:
        raise click.UsageError(
            f"--bug {', '.join(sorted(bug_set))} makes this node unsafe on purpose; "
            "add --unsafe to confirm"
        )
    config = NodeConfig(
        node_id=node_id,
        listen_host=host,
        listen_port=port,
        peers=peer_map,
        data_dir=data_dir,
        cluster_id=cluster_id,
        heartbeat_ms=heartbeat_ms,
        election_timeout_ms=election_timeout_ms,
        snapshot_threshold=snapshot_threshold,
        read_mode=read_mode,
        bugs=frozenset(bug_set),
        max_frame_bytes=max_frame_bytes,
        request_timeout=request_timeout,
        seed=seed,
        join=join is not None,
    )
    sys.exit(run_node(config))


# --- raftlab kv ---------------------------------------------------------------------

KV_ARITY = {"get": 1, "put": 2, "cas": 3, "append": 2, "delete": 1, "txn": 1}


@click.command("kv")
@click.option(
    "--cluster",
    required=True,
    metavar="ID=HOST:PORT,...",
    help="The nodes, e.g. n1=127.0.0.1:7001,n2=127.0.0.1:7002.",
)
@click.option("--cluster-id", default=DEFAULT_CLUSTER_ID, show_default=True)
@click.option(
    "--timeout", type=float, default=5.0, show_default=True, help="Seconds for the operation."
)
@click.option("--client-id", default=None, help="Session id (default: random).")
@click.argument("op", type=click.Choice(sorted(KV_ARITY)))
@click.argument("args", nargs=-1)
def kv_command(
    cluster: str,
    cluster_id: str,
    timeout: float,
    client_id: str | None,
    op: str,
    args: tuple[str, ...],
) -> None:
    """One operation: get KEY | put KEY VALUE | cas KEY FROM TO | append KEY VALUE |
    delete KEY | txn MICRO-OPS. Values are JSON when they parse as JSON, else strings;
    a txn is a JSON list of micro-ops, e.g. '[["append","x",1],["r","y",null]]', applied
    atomically (the reply fills the reads). Prints one JSON object; exits 0 ok, 1
    definite failure, 2 unknown outcome."""
    nodes = _cluster_option(cluster)
    if len(args) != KV_ARITY[op]:
        usage = {
            "get": "get KEY",
            "put": "put KEY VALUE",
            "cas": "cas KEY FROM TO",
            "append": "append KEY VALUE",
            "delete": "delete KEY",
            "txn": "txn '[[\"append\",\"x\",1],[\"r\",\"y\",null]]'",
        }[op]
        raise click.UsageError(f"expected: raftlab kv --cluster ... {usage}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise click.UsageError("--timeout must be a positive number of seconds")
    key = args[0]
    values = [parse_value(text) for text in args[1:]]
    if op == "txn":
        key, values = None, [_txn_argument(args[0])]

    async def run() -> tuple[int, dict[str, Any]]:
        async with RaftClient(nodes, client_id, timeout=timeout, cluster_id=cluster_id) as client:
            try:
                call = getattr(client, op)
                value = await (call(*values) if op == "txn" else call(key, *values))
            except ClientError as error:
                result = {"op": op, "key": key, **error.to_dict()}
                if op == "txn":
                    del result["key"]
                return (EXIT_DEFINITE if error.definite else EXIT_UNKNOWN), result
            return EXIT_OK, {
                "ok": True,
                "op": op,
                **({} if op == "txn" else {"key": key}),
                "value": value,
                "node": client.last_node,
            }

    code, result = trio.run(run)
    _echo_json(result)
    sys.exit(code)


def _txn_argument(text: str) -> list[Any]:
    """The micro-ops of ``raftlab kv txn``: a JSON list of [f, key, value] lists."""
    try:
        ops = json.loads(text)
    except ValueError as error:
        raise click.UsageError(f"txn: the micro-ops must be JSON ({error})") from None
    from raftnode.kv import validate_txn_ops

    try:
        return validate_txn_ops(ops)
    except ValueError as error:
        raise click.UsageError(f"txn: {error}") from None


# --- raftlab status -----------------------------------------------------------------


@click.command("status")
@click.option("--cluster", required=True, metavar="ID=HOST:PORT,...")
@click.option("--cluster-id", default=DEFAULT_CLUSTER_ID, show_default=True)
@click.option("--timeout", type=float, default=1.0, show_default=True)
def status_command(cluster: str, cluster_id: str, timeout: float) -> None:
    """One JSON object per node: role, term, leader, commit/applied/last log/snapshot
    index, or ``"reachable": false`` with the reason. Exits 0 when every node answered,
    1 otherwise."""
    nodes = _cluster_option(cluster)
    if not (timeout > 0 and math.isfinite(timeout)):
        raise click.UsageError("--timeout must be a positive number of seconds")
    results: dict[str, dict[str, Any]] = {}

    async def ask(client: RaftClient, node_id: str) -> None:
        try:
            reply = await client.status(node_id, timeout)
        except ClientError as error:
            results[node_id] = {
                "id": node_id,
                "reachable": False,
                "error": error.code,
                "detail": error.detail,
            }
            return
        reply.pop("node", None)
        results[node_id] = {"id": node_id, "reachable": True, **reply}

    async def run() -> None:
        async with RaftClient(nodes, timeout=timeout, cluster_id=cluster_id) as client:
            async with trio.open_nursery() as nursery:
                for node_id in nodes:
                    nursery.start_soon(ask, client, node_id)

    trio.run(run)
    for node_id in nodes:
        _echo_json(results[node_id])
    sys.exit(EXIT_OK if all(r["reachable"] for r in results.values()) else EXIT_DEFINITE)


# --- raftlab cluster up -------------------------------------------------------------


@click.group("cluster")
def cluster_group() -> None:
    """Local clusters of node processes."""


def _set_parent_death_signal() -> None:
    """Linux: the child gets SIGTERM if ``cluster up`` dies (even by SIGKILL): no orphans."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def node_argv(
    node_id: str,
    port: int,
    cluster: dict[str, tuple[str, int]],
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    cluster_id: str = DEFAULT_CLUSTER_ID,
    extra: list[str] | None = None,
) -> list[str]:
    """The command line that starts one node of a local cluster."""
    argv = [
        sys.executable,
        "-m",
        "campaign",
        "node",
        "--id",
        node_id,
        "--listen",
        f"{host}:{port}",
        "--data-dir",
        str(data_dir),
        "--cluster-id",
        cluster_id,
    ]
    for peer_id, (peer_host, peer_port) in cluster.items():
        if peer_id != node_id:
            argv += ["--peer", f"{peer_id}={peer_host}:{peer_port}"]
    return argv + list(extra or [])


@cluster_group.command("up")
@click.option("--nodes", type=click.IntRange(1, 99), default=3, show_default=True)
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="One sub-directory per node (n1, n2, …); reused on restart.",
)
@click.option("--base-port", type=click.IntRange(1, 65535 - 99), default=7001, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--cluster-id", default=DEFAULT_CLUSTER_ID, show_default=True)
@click.option("--heartbeat-ms", type=float, default=None, help="Passed to every node.")
@click.option("--election-timeout-ms", type=float, default=None, help="Passed to every node.")
@click.option("--snapshot-threshold", type=int, default=None, help="Passed to every node.")
@click.option("--read-mode", type=click.Choice(["read_index", "log"]), default=None)
def cluster_up_command(
    nodes: int,
    data_dir: Path,
    base_port: int,
    host: str,
    cluster_id: str,
    heartbeat_ms: float | None,
    election_timeout_ms: float | None,
    snapshot_threshold: int | None,
    read_mode: str | None,
) -> None:
    """Start a local cluster in the foreground; print its --cluster string; stop every
    node on Ctrl-C or SIGTERM."""
    node_ids = [f"n{i}" for i in range(1, nodes + 1)]
    cluster = {node_id: (host, base_port + i) for i, node_id in enumerate(node_ids)}
    extra: list[str] = []
    for flag, value in (
        ("--heartbeat-ms", heartbeat_ms),
        ("--election-timeout-ms", election_timeout_ms),
        ("--snapshot-threshold", snapshot_threshold),
        ("--read-mode", read_mode),
    ):
        if value is not None:
            extra += [flag, str(value)]
    cluster_text = ",".join(f"{n}={h}:{p}" for n, (h, p) in cluster.items())

    async def run() -> int:
        # subprocess.Popen in the main thread (not trio.lowlevel.open_process, which forks
        # from a worker thread): the parent-death signal is tied to the forking thread.
        processes: dict[str, subprocess.Popen[bytes]] = {}
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            try:
                for node_id in node_ids:
                    processes[node_id] = subprocess.Popen(
                        node_argv(
                            node_id,
                            cluster[node_id][1],
                            cluster,
                            data_dir / node_id,
                            host=host,
                            cluster_id=cluster_id,
                            extra=extra,
                        ),
                        stdin=subprocess.DEVNULL,
                        preexec_fn=_set_parent_death_signal,
                    )
                click.echo(cluster_text)
                sys.stdout.flush()
                click.echo(
                    f"cluster up: {nodes} node(s), data in {data_dir}; Ctrl-C stops them",
                    err=True,
                )
                with trio.CancelScope() as scope:

                    async def stop_on_signal() -> None:
                        async for signum in signals:
                            click.echo(
                                f"cluster up: {signal.Signals(signum).name}, stopping", err=True
                            )
                            scope.cancel()
                            return

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(stop_on_signal)
                        reported: set[str] = set()
                        while len(reported) < len(processes):
                            for node_id, process in processes.items():
                                code = process.poll()
                                if code is not None and node_id not in reported:
                                    reported.add(node_id)
                                    click.echo(
                                        f"cluster up: {node_id} exited with status {code}",
                                        err=True,
                                    )
                            await trio.sleep(0.2)
                        nursery.cancel_scope.cancel()  # every node gone on its own
                    return 1
                return EXIT_OK
            finally:
                with trio.CancelScope(shield=True):
                    await stop_processes(list(processes.values()))

    sys.exit(trio.run(run))


async def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every live process, wait for a grace period, then SIGKILL the rest."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = trio.current_time() + STOP_GRACE_SECONDS
    while trio.current_time() < deadline and any(p.poll() is None for p in processes):
        await trio.sleep(0.05)
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
