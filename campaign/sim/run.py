"""One simulated run, start to finish: the deterministic twin of ``campaign.run``.

Everything happens inside one ``trio.run`` on ``trio.testing.MockClock(autojump_threshold=0)``
with trio's scheduler seeded: time advances only when every task waits, so hours of
faults pass in seconds, and the seed fixes every choice — the network's delays and
losses, the nemesis's schedule and targets, each node's election timeouts, the
workload's operations and the interleaving of tasks. The same seed and configuration
give the same history byte for byte.

Phases mirror a real campaign: start the cluster and wait for a leader; the workload for
``time`` simulated seconds while the nemesis follows its schedule; heal everything;
wait for recovery (a liveness bound: a leader must answer within ``liveness_timeouts``
election timeouts of the heal); final reads; check. Nothing touches the disk or the wall
clock until the run is over: results are written afterwards.
"""

from __future__ import annotations

import random
import time as wall_time
from dataclasses import asdict, dataclass, field
from typing import Any

import trio
import trio.testing

from campaign.checking import build_workload, check_history
from campaign.results import count_completions
from campaign.sim.checks import availability, election_safety
from campaign.sim.client import SimClient
from campaign.sim.cluster import SimCluster, SimTiming
from campaign.sim.determinism import deterministic_scheduling
from campaign.sim.nemesis import FaultStep, SimNemesis, draw_schedule, parse_faults
from campaign.sim.network import LinkConditions, SimNetwork
from campaign.verdict import UNKNOWN, results_document
from checker.op import Op


@dataclass(slots=True)
class SimConfig:
    """Everything that defines a simulated run; written whole to campaign.json."""

    seed: int = 1
    time: float = 60.0  # simulated seconds of workload
    name: str = "sim"
    workload: str = "register"
    workload_options: dict[str, Any] = field(default_factory=dict)
    nemesis: str = "partition,kill"
    nemesis_interval: float = 5.0
    nodes: int = 5
    concurrency: str = "2n"
    rate: float = 100.0
    bugs: list[str] = field(default_factory=list)
    read_mode: str = "read_index"
    heartbeat_ms: float = 100.0
    election_timeout_ms: float = 1000.0
    snapshot_threshold: int = 512
    max_entries_per_append: int = 512  # RaftConfig's: entries per AppendEntries message
    client_timeout: float = 2.0
    base_delay: float = 0.0005
    jitter: float = 0.001
    loss: float = 0.0
    duplicate: float = 0.0
    recovery_time: float = 5.0
    liveness_timeouts: int = 10  # election timeouts after the heal before "no leader" fails
    final_time_limit: float = 30.0
    check_time_limit: float | None = 60.0
    schedule: list[dict[str, Any]] | None = None  # explicit fault steps (replays, shrinking)
    # The node process's "apply" log lines, and the acknowledged-writes checker over them
    # (campaign/node_checks.py): off by default, the lines cost memory and time.
    log_applied: bool = False
    # A crashed node's peers see its connections closed (as a killed process's kernel
    # closes its sockets) and a follower of it may start a pre-vote at once. Off by
    # default so recorded seeds keep their histories.
    connection_resets: bool = False
    # Spare nodes (n<nodes+1>...) that start empty outside the configuration; the member
    # fault grows the cluster with them. None: 2 when the nemesis has `member`, else 0.
    spares: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class SimOutcome:
    config: SimConfig
    ops: list[Op]
    checkers: dict[str, dict[str, Any]]
    results: dict[str, Any]
    nemesis_records: list[dict[str, Any]]
    node_logs: dict[str, str]
    schedule: list[FaultStep]
    simulated_seconds: float
    wall_seconds: float
    messages: int

    @property
    def valid(self) -> bool | str:
        return self.results["valid"]


@dataclass(slots=True)
class _Streams:
    """Independent random streams from the run's seed."""

    network: random.Random
    cluster: random.Random
    nemesis: random.Random
    schedule: random.Random
    workload: random.Random
    clients: random.Random

    @classmethod
    def derive(cls, seed: int) -> _Streams:
        root = random.Random(seed)
        return cls(*(random.Random(root.getrandbits(64)) for _ in range(6)))


def schedule_for(config: SimConfig) -> list[FaultStep]:
    """The fault schedule a configuration runs: explicit, or drawn from its seed."""
    if config.schedule is not None:
        return [FaultStep(**step) for step in config.schedule]
    return draw_schedule(
        parse_faults(config.nemesis),
        _Streams.derive(config.seed).schedule,
        interval=config.nemesis_interval,
        time_limit=config.time,
    )


def run_simulation(config: SimConfig) -> SimOutcome:
    """Run one simulation (synchronously: it owns its ``trio.run``) and check it."""
    from workloads.recorder import HistoryRecorder
    from workloads.runner import run_final_ops, run_workload

    streams = _Streams.derive(config.seed)
    workload = build_workload(config.to_dict())
    config.workload_options = dict(workload.config())
    schedule = schedule_for(config)
    node_ids = tuple(f"n{number}" for number in range(1, config.nodes + 1))
    network = SimNetwork(
        rng=streams.network,
        conditions=LinkConditions(
            base_delay=config.base_delay,
            jitter=config.jitter,
            loss=config.loss,
            duplicate=config.duplicate,
        ),
    )
    cluster = SimCluster(
        node_ids,
        network,
        streams.cluster,
        timing=SimTiming(
            heartbeat_ms=config.heartbeat_ms,
            election_timeout_ms=config.election_timeout_ms,
            snapshot_threshold=config.snapshot_threshold,
            max_entries_per_append=config.max_entries_per_append,
        ),
        bugs=frozenset(config.bugs),
        read_mode=config.read_mode,
        log_applied=config.log_applied,
        connection_resets=config.connection_resets,
        spares=tuple(f"n{config.nodes + 1 + i}" for i in range(_spare_count(config))),
    )
    state: dict[str, Any] = {"liveness": None, "ops": [], "records": []}

    def client_factory(*, process: int, client_id: str, node: str | None) -> SimClient:
        return SimClient(
            cluster,
            client_id,
            timeout=config.client_timeout,
            seed=streams.clients.getrandbits(32),
        )

    async def main() -> None:
        recorder = HistoryRecorder()
        state["recorder"] = recorder
        nemesis = SimNemesis(cluster, streams.nemesis, lambda f, value: recorder.nemesis(f, value))
        state["records"] = nemesis.records
        async with trio.open_nursery() as nursery:
            nursery.start_soon(network.run)
            await cluster.start(nursery)
            setup_done = trio.Event()

            async def nemesis_after_setup() -> None:
                # Fault times count from the workload's start, once its setup is done.
                await setup_done.wait()
                await nemesis.run(schedule, trio.current_time())

            async with trio.open_nursery() as work:
                work.start_soon(nemesis_after_setup)
                await run_workload(
                    workload,
                    client_factory,
                    recorder,
                    concurrency=config.concurrency,
                    rate=config.rate,
                    time_limit=config.time,
                    rng=streams.workload,
                    nodes=node_ids,
                    setup_timeout=config.final_time_limit,
                    setup_done=setup_done,
                    sleep_until=network.sleep_until,
                )
                work.cancel_scope.cancel()
            await nemesis.heal_all()
            state["liveness"] = await _measure_recovery(cluster, config)
            await trio.sleep(config.recovery_time)
            await run_final_ops(
                workload,
                client_factory,
                recorder,
                nodes=node_ids,
                time_limit=config.final_time_limit,
            )
            state["ops"] = list(recorder.ops)
            nursery.cancel_scope.cancel()

    started = wall_time.perf_counter()
    clock = trio.testing.MockClock(autojump_threshold=0)
    with deterministic_scheduling(config.seed):
        trio.run(main, clock=clock)
    wall_seconds = wall_time.perf_counter() - started
    ops: list[Op] = state["ops"]
    checkers = check_history(config.to_dict(), ops)
    checkers["liveness"] = _liveness_result(state["liveness"], config)
    checkers["node-crashes"] = _crash_result(cluster)
    checkers["commit-monotonic"] = _commit_result(cluster)
    checkers["election-safety"] = election_safety(cluster.log_lines)
    checkers["state-machine-safety"] = _state_machine_safety_result(cluster)
    checkers["commit-quorum"] = _commit_quorum_result(cluster)
    checkers["availability"] = availability(
        ops,
        node_ids,
        bound_seconds=config.liveness_timeouts * config.election_timeout_ms / 1000.0,
        is_read=workload.is_read,
    )
    if config.log_applied:
        from campaign.node_checks import check_node_logs

        by_logs = check_node_logs(cluster.log_lines, ops, workload.is_read)
        checkers["acknowledged-writes"] = by_logs["acknowledged-writes"]
    results = results_document(
        checkers,
        counts=count_completions(ops),
        extra={"seed": config.seed, "bugs": list(config.bugs)},
    )
    return SimOutcome(
        config=config,
        ops=ops,
        checkers=checkers,
        results=results,
        nemesis_records=state["records"],
        node_logs={
            node_id: "\n".join(lines) + "\n" for node_id, lines in cluster.log_lines.items()
        },
        schedule=schedule,
        simulated_seconds=clock.current_time(),
        wall_seconds=wall_seconds,
        messages=network.stats.sent,
    )


async def _measure_recovery(cluster: SimCluster, config: SimConfig) -> float | None:
    """Simulated seconds from the heal until a leader commits a write, within the bound."""
    bound = config.liveness_timeouts * config.election_timeout_ms / 1000.0
    healed = trio.current_time()
    with trio.move_on_after(bound):
        async with SimClient(cluster, "liveness-probe", timeout=1.0, seed=0) as client:
            while True:
                try:
                    await client.put("__liveness__", 1)
                    return trio.current_time() - healed
                except Exception:  # noqa: BLE001 - any failure: not recovered yet
                    await trio.sleep(0.05)
    return None


def _crash_result(cluster: SimCluster) -> dict[str, Any]:
    """A node that died of an exception (a broken invariant) is a finding in itself."""
    failures = {node_id: node.failures for node_id, node in cluster.nodes.items() if node.failures}
    if failures:
        return {"valid": False, "error": "a node crashed on an exception", "failures": failures}
    return {"valid": True}


def _commit_result(cluster: SimCluster) -> dict[str, Any]:
    """Raft's commit index is monotonic within a node's life (§5.3, Figure 2)."""
    regressions = [line for node in cluster.nodes.values() for line in node.commit_regressions]
    if regressions:
        return {
            "valid": False,
            "error": "a commit index went backwards",
            "regressions": regressions,
        }
    return {"valid": True}


def _state_machine_safety_result(cluster: SimCluster) -> dict[str, Any]:
    """State Machine Safety (Raft Figure 3, §5.4.3): no two nodes commit (and so apply)
    different entries at one index. Entries are named by (index, term): Log Matching."""
    violations = [line for node in cluster.nodes.values() for line in node.safety_violations]
    if violations:
        return {
            "valid": False,
            "error": "two nodes committed different entries at one index",
            "violations": violations,
        }
    return {"valid": True, "indices": len(cluster.committed_terms)}


def _commit_quorum_result(cluster: SimCluster) -> dict[str, Any]:
    """Configuration-aware commitment (§4.1, §5.3): each index a leader commits is
    durable on a majority of the voters of the configuration in force on that leader
    (learners and removed servers do not count), read from the nodes' storage."""
    violations = [line for node in cluster.nodes.values() for line in node.quorum_violations]
    if violations:
        return {
            "valid": False,
            "error": "an index was committed without a majority of the voters holding it",
            "violations": violations,
        }
    return {"valid": True}


def _liveness_result(recovered_after: float | None, config: SimConfig) -> dict[str, Any]:
    bound = config.liveness_timeouts * config.election_timeout_ms / 1000.0
    if recovered_after is None:
        return {
            "valid": False,
            "error": (
                f"no write was committed within {config.liveness_timeouts} election timeouts "
                f"({bound:g} s) after every fault was healed"
            ),
            "bound_seconds": bound,
        }
    return {"valid": True, "recovered_after": round(recovered_after, 6), "bound_seconds": bound}


__all__ = ["SimConfig", "SimOutcome", "run_simulation", "UNKNOWN"]


def _spare_count(config: SimConfig) -> int:
    if config.spares is not None:
        return config.spares
    faults = parse_faults(config.nemesis) if config.nemesis else ()
    return 2 if any(f.partition(":")[0] == "member" for f in faults) else 0
