"""One campaign, start to finish: the orchestration behind `raftlab test`.

1. a fresh results folder with campaign.json (config, argv, seed, versions) written first;
2. the target's cluster (``--target``, raftnode by default; see `campaign.targets`):
   fresh data directories, a proxy mesh, one node process per node (stdout/stderr to
   ``nodes/<id>.log``), and a wait until a leader is elected;
3. the workload for ``time_limit`` seconds while the nemesis breaks things, the history
   streamed to history.jsonl as it is recorded;
4. heal everything (Jepsen's final generator), a recovery pause, the final reads;
5. stop the nodes, judge the history, write results.json, junit.xml and report.html.

However the run ends — normally, by Ctrl-C or SIGTERM or by a crash of the harness — the
proxies stop, every node process group is SIGKILLed (no orphans, no ports left bound) and
what was recorded is written; an interrupted run's verdict is "unknown", and
`raftlab analyze` can judge its history later.

All randomness comes from the run's seed: the workload's generator, the nemesis's
choices, the proxies' drop and jitter draws and each node's election timeouts are seeded
from independent streams derived from it.
"""

from __future__ import annotations

import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import trio

from campaign.checking import build_workload, check_history
from campaign.cluster import (
    ClusterError,
    LocalCluster,
    ProcessCluster,
    choose_base_port,
    node_ids_for,
)
from campaign.progress import ProgressDisplay, ProgressState
from campaign.results import (
    CAMPAIGN_FILE,
    HISTORY_JSONL,
    NEMESIS_FILE,
    NODES_DIR,
    REPORT_FILE,
    campaign_document,
    count_completions,
    new_run_dir,
    write_json,
    write_run_folder,
)
from campaign.targets import (
    ClusterSpec,
    TargetError,
    check_faults,
    get_target,
    parse_target_options,
)
from campaign.verdict import UNKNOWN, exit_code, results_document

SEED_LIMIT = 2**63


@dataclass(slots=True)
class CampaignConfig:
    """Everything that defines a run; written whole to campaign.json."""

    name: str = "raftlab"
    workload: str = "register"
    workload_options: dict[str, Any] = field(default_factory=dict)
    nemesis: str = "partition,kill"
    nemesis_interval: float = 5.0
    # fault -> its keyword options (``--nemesis-option partition.modes=blackhole``)
    nemesis_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: int = 5
    time_limit: float = 60.0
    concurrency: str = "2n"
    rate: float = 200.0
    seed: int = 0
    results_dir: str = "results"
    leave_cluster_running: bool = False
    unsafe_local_reads: bool = False
    recovery_time: float = 5.0
    final_time_limit: float = 30.0
    check_time_limit: float | None = 120.0
    base_port: int = 0
    heartbeat_ms: float = 100.0
    election_timeout_ms: float = 1000.0
    leader_timeout: float = 30.0
    proxies: bool = True  # False only for bench/campaign_overhead.py's baseline (no link faults)
    target: str = "raftnode"  # the system under test (campaign.targets)
    target_options: dict[str, Any] = field(default_factory=dict)  # recorded with defaults
    net: str = "proxy"  # "netns": hosts mode (nemesis/netns.py), root only
    # Nodes beyond `nodes` the member fault may grow the cluster with (Jepsen's pool of
    # test nodes); None: 2 when the member fault runs on a target that takes spares, else 0.
    spares: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class CampaignOutcome:
    run_dir: Path
    valid: bool | str
    exit_code: int
    interrupted: str | None = None


def draw_seed() -> int:
    """A fresh seed when none was given (then recorded like a given one)."""
    return random.SystemRandom().randrange(SEED_LIMIT)


@dataclass(slots=True)
class Seeds:
    """Independent streams from the run's seed, so adding a draw to one part does not
    change what the others do."""

    ports: int
    workload: int
    nemesis: int
    proxies: int
    nodes: int

    @classmethod
    def derive(cls, seed: int) -> Seeds:
        rng = random.Random(seed)
        return cls(*(rng.getrandbits(63) for _ in range(5)))


class RunInterrupted(KeyboardInterrupt):
    """An interrupted run, re-raised once its partial results are written: a
    KeyboardInterrupt that knows its signal, so that the command exits 128 + that signal,
    as a shell reports it (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)


def _interrupt_signal(error: BaseException) -> int:
    """The signal behind an interrupt, possibly inside Trio's exception groups: the
    ``signum`` of a RunInterrupted or of the cluster's HarnessTerminated (SIGTERM, SIGHUP),
    else SIGINT (Ctrl-C)."""
    for leaf in _leaves(error):
        signum = getattr(leaf, "signum", None)
        if isinstance(leaf, KeyboardInterrupt) and isinstance(signum, int):
            return signum
    return int(signal.SIGINT)


async def _interrupt_on_ctrl_c(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Turn SIGINT (Ctrl-C) into a RunInterrupted raised here, in this one task.

    Why not Trio's default: it raises KeyboardInterrupt wherever the signal lands, in the
    middle of any task, a client's HTTP code say. A clean-up there that reaches a checkpoint
    inside a scope already cancelled (a request's timeout) raises Cancelled, which replaces
    the KeyboardInterrupt and is then swallowed by that scope: the Ctrl-C is lost and the
    run goes on (a CI run once saw a harness ignore its SIGINT for a minute). Raised from
    this task, the interrupt cancels the run's nursery as any task's error does, and every
    other task unwinds through Cancelled, as at the normal end of a run. (SIGTERM and
    SIGHUP are the cluster's: ProcessGroup.watch_signals kills every node at once and
    raises HarnessTerminated the same way.)
    """
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        task_status.started()
        async for _ in signals:
            raise RunInterrupted("SIGINT received", signal.SIGINT)


def _is_interrupt(error: BaseException) -> bool:
    if isinstance(error, KeyboardInterrupt):
        return True
    if isinstance(error, BaseExceptionGroup):
        return error.subgroup(KeyboardInterrupt) is not None
    return False


def _leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside Trio's (possibly nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _describe(error: BaseException) -> str:
    return "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in _leaves(error))


def _aborted_reason(error: BaseException) -> str | None:
    """The message of an expected abort (possibly inside a Trio exception group)."""
    from workloads.runner import WorkloadSetupError

    # The run could not go on (no leader, a workload that could not set up the cluster):
    # not a harness bug, so the verdict is "unknown" and the command exits 2.
    expected = (ClusterError, WorkloadSetupError)
    if isinstance(error, expected):
        return str(error)
    if isinstance(error, BaseExceptionGroup):
        matched = error.subgroup(lambda item: isinstance(item, expected))
        rest = error.subgroup(lambda item: not isinstance(item, (*expected, BaseExceptionGroup)))
        if matched is not None and rest is None:
            return "; ".join(str(leaf) for leaf in _leaves(matched))
    return None


@dataclass(slots=True)
class LoopLag:
    """How late the harness's Trio loop woke up: its proxies forward every peer message,
    so a stalled loop delays them all (a cluster whose election timeout is shorter than
    the worst lag may elect for no fault of its own). Recorded in results.json."""

    max_seconds: float = 0.0
    over_100ms: int = 0
    samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_ms": round(self.max_seconds * 1000, 1),
            "over_100ms": self.over_100ms,
            "samples": self.samples,
        }


async def _measure_lag(lag: LoopLag, period: float = 0.01) -> None:
    while True:
        asked = trio.current_time() + period
        await trio.sleep_until(asked)
        late = trio.current_time() - asked
        lag.samples += 1
        lag.max_seconds = max(lag.max_seconds, late)
        if late > 0.1:
            lag.over_100ms += 1


async def _follow(run: _Run) -> None:
    """Feed the progress display: new history ops, the active fault, the leader."""
    seen = 0
    while True:
        ops = run.recorder.ops
        for op in ops[seen:]:
            run.state.observe(op)
        seen = len(ops)
        if run.nemesis is not None:
            run.state.active_faults = list(run.nemesis.active_faults)
        run.state.leader, run.state.term = run.cluster.board.leader()
        await trio.sleep(0.2)


async def _within(scope: trio.CancelScope, task: Any) -> None:
    with scope:
        await task()


async def _after(event: trio.Event, task: Any) -> None:
    """Start `task` once `event` is set (the nemesis waits for the workload's setup)."""
    await event.wait()
    await task()


async def run_campaign(
    config: CampaignConfig,
    *,
    argv: list[str] | None = None,
    progress_stream: TextIO | None = None,
    force_terminal: bool | None = None,
) -> CampaignOutcome:
    """Run one campaign and write its results folder; never leaves a process behind.

    Ctrl-C, SIGTERM and SIGHUP (RunInterrupted, a KeyboardInterrupt) and harness crashes
    are re-raised after the results folder is written; an aborted run (no leader, failed
    setup) returns "unknown".
    """
    run = _Run(config, argv=argv, progress_stream=progress_stream, force_terminal=force_terminal)
    return await run.execute()


class _Run:
    """The state of one campaign while it runs (one instance per run)."""

    def __init__(
        self,
        config: CampaignConfig,
        *,
        argv: list[str] | None,
        progress_stream: TextIO | None,
        force_terminal: bool | None,
    ) -> None:
        self.config = config
        self.started = datetime.now(UTC)
        self.seeds = Seeds.derive(config.seed)
        self.workload = build_workload(config.to_dict())
        config.workload_options = dict(self.workload.config())
        self.node_ids = node_ids_for(config.nodes)
        # The target and its options are checked before anything exists on disk.
        self.target = resolve_target(config)
        pool = config.nodes + (config.spares or 0)
        self.spare_ids = node_ids_for(pool)[config.nodes :]
        # Only a target that takes spares gets any (resolve_spares), and the spares kwarg.
        ports = (
            self.target.ports_needed(config.nodes, spares=config.spares)
            if config.spares
            else self.target.ports_needed(config.nodes)
        )
        base_port = choose_base_port(
            pool, config.base_port, random.Random(self.seeds.ports), count=ports
        )
        self.run_dir = new_run_dir(Path(config.results_dir), config.name, self.started)
        self.campaign = campaign_document(
            config.to_dict(), kind="test", argv=argv, started=self.started
        )
        self.campaign["ports"] = {
            "base": base_port,
            "count": ports,
        }
        # Written first, so that even a crash says what ran.
        write_json(self.run_dir / CAMPAIGN_FILE, self.campaign)
        self.data_root = Path(tempfile.mkdtemp(prefix=f"raftlab-{config.name}-"))
        self.state = ProgressState(name=config.name, time_limit=config.time_limit)
        self.display = ProgressDisplay(
            self.state, stream=progress_stream, force_terminal=force_terminal
        )
        spec = ClusterSpec(
            node_ids=self.node_ids,
            base_port=base_port,
            data_root=self.data_root,
            log_dir=self.run_dir / NODES_DIR,
            cluster_id=f"raftlab-{config.seed % 1_000_000_007}",
            node_seed=self.seeds.nodes,
            proxy_seed=self.seeds.proxies,
            heartbeat_ms=config.heartbeat_ms,
            election_timeout_ms=config.election_timeout_ms,
            unsafe_local_reads=config.unsafe_local_reads,
            proxies=config.proxies,
            net=config.net,
            options=dict(config.target_options),
            spare_ids=self.spare_ids,
        )
        try:
            self.cluster: ProcessCluster = self.target.make_cluster(spec)
            self.client_factory = self.cluster.client_factory()
        except BaseException:
            shutil.rmtree(self.data_root, ignore_errors=True)
            raise
        # What exactly ran (e.g. etcd's binary, version and member ids), beside the config.
        self.campaign["target"] = {
            "name": self.target.name,
            "options": dict(config.target_options),
            **dict(getattr(self.cluster, "target_info", {})),
        }
        write_json(self.run_dir / CAMPAIGN_FILE, self.campaign)
        self.recorder: Any = None
        self.nemesis: Any = None
        self.nemesis_records: list[dict[str, Any]] = []
        self.outcome: CampaignOutcome | None = None
        self.phases: list[dict[str, Any]] = []
        self.lag = LoopLag()
        self._enter("preparing")

    def _enter(self, phase: str) -> None:
        """Name the current phase (for the display) and time it (for results.json)."""
        now = time.monotonic()
        if self.phases:
            last = self.phases[-1]
            last["seconds"] = round(now - last.pop("_started"), 3)
        self.phases.append({"phase": phase, "_started": now})
        self.state.phase = phase

    def _phase_times(self) -> dict[str, float]:
        now = time.monotonic()
        return {
            item["phase"]: item.get("seconds", round(now - item.get("_started", now), 3))
            for item in self.phases
        }

    async def execute(self) -> CampaignOutcome:
        interrupted: str | None = None
        aborted: str | None = None
        pending: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                # Signals reach the main thread only; an ignored SIGINT (inherited, as a
                # shell's background job has it) stays ignored, as it did before.
                if (
                    threading.current_thread() is threading.main_thread()
                    and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
                ):
                    await nursery.start(_interrupt_on_ctrl_c)
                await self._phases(nursery)
                nursery.cancel_scope.cancel()
        except BaseException as error:  # noqa: BLE001 - whatever happens, results get written
            aborted = _aborted_reason(error)
            if _is_interrupt(error) and self.outcome is not None:
                pass  # Ctrl-C ends a run whose cluster was left running: a normal end
            elif _is_interrupt(error):
                name = signal.Signals(_interrupt_signal(error)).name
                interrupted = f"interrupted ({'Ctrl-C' if name == 'SIGINT' else name})"
                pending = error
            elif aborted is None:
                interrupted = f"harness error: {_describe(error)}"
                pending = error
        finally:
            self.cluster.kill_all()  # synchronous, unconditional: no orphan, no cut link
            if self.recorder is not None:
                self.recorder.close()
            shutil.rmtree(self.data_root, ignore_errors=True)
        if self.outcome is None:
            self.outcome = self._finish(interrupted=interrupted, aborted=aborted)
        if pending is not None:
            print(f"raftlab: partial results written to {self.run_dir}", file=sys.stderr)
            if _is_interrupt(pending):
                raise RunInterrupted(interrupted, _interrupt_signal(pending)) from pending
            raise pending
        return self.outcome

    async def _phases(self, nursery: trio.Nursery) -> None:
        from workloads.recorder import HistoryRecorder
        from workloads.runner import run_final_ops, run_workload

        config, state, cluster = self.config, self.state, self.cluster
        self.recorder = recorder = HistoryRecorder()
        cluster.clock_zero = recorder.start_time
        # Node logs carry wall-clock stamps: record the wall time of the history's zero.
        self.campaign["history_zero_wall"] = time.time()
        write_json(self.run_dir / CAMPAIGN_FILE, self.campaign)
        state.started = time.monotonic()
        await nursery.start(recorder.write_to, self.run_dir / HISTORY_JSONL)
        display_scope = trio.CancelScope()
        nursery.start_soon(_within, display_scope, self.display.run)
        self._enter("starting nodes")
        await nursery.start(cluster.run)
        self._enter("electing")
        await cluster.wait_for_leader(config.leader_timeout)
        nursery.start_soon(_follow, self)
        nursery.start_soon(_measure_lag, self.lag)
        self.nemesis = make_nemesis(
            config,
            cluster,
            recorder,
            self.seeds.nemesis,
            self.nemesis_records,
            self.run_dir / NEMESIS_FILE,
        )
        self._enter("running")
        state.started = time.monotonic()  # elapsed / limit counts the workload's time
        setup_done = trio.Event()
        async with trio.open_nursery() as work:
            work.start_soon(_after, setup_done, self.nemesis.run)
            await run_workload(
                self.workload,
                self.client_factory,
                recorder,
                concurrency=config.concurrency,
                rate=config.rate,
                time_limit=config.time_limit,
                rng=random.Random(self.seeds.workload),
                nodes=self.node_ids,
                setup_done=setup_done,
            )
            work.cancel_scope.cancel()  # the nemesis stops with the workload
        self._enter("healing")
        await self.nemesis.heal_all()
        self._enter("recovering")
        await trio.sleep(config.recovery_time)
        self._enter("final reads")
        await run_final_ops(
            self.workload,
            self.client_factory,
            recorder,
            nodes=self.node_ids,
            time_limit=config.final_time_limit,
        )
        if config.leave_cluster_running:
            recorder.close()
            self.outcome = self._finish(interrupted=None, aborted=None)
            self._enter("cluster left running")
            display_scope.cancel()  # a quiet terminal while the cluster is left to the user
            _print_cluster(cluster, self.run_dir)
            await trio.sleep_forever()
        self._enter("stopping")
        await cluster.stop_all()
        recorder.close()

    def _finish(self, *, interrupted: str | None, aborted: str | None) -> CampaignOutcome:
        """Judge what was recorded and write the whole results folder."""
        ops = list(self.recorder.ops) if self.recorder is not None else []
        if interrupted is None and aborted is None:
            self._enter("checking")
            checkers = check_history(self.config.to_dict(), ops)
            from campaign.node_checks import node_log_checkers  # Raft's own invariants

            checkers.update(node_log_checkers(self.run_dir / NODES_DIR, self.config.to_dict(), ops))
        else:
            reason = interrupted or f"run aborted: {aborted}"
            checkers = {
                "run": {
                    "valid": UNKNOWN,
                    "error": f"{reason}; `raftlab analyze {self.run_dir}` checks what was recorded",
                }
            }
        results = results_document(
            checkers,
            counts=count_completions(ops),
            extra={
                "seed": self.config.seed,
                "interrupted": interrupted,
                "aborted": aborted,
                "phase_seconds": self._phase_times(),
                "harness_loop_lag": self.lag.to_dict(),
            },
        )
        write_run_folder(
            self.run_dir,
            campaign=self.campaign,
            ops=ops,
            results=results,
            nemesis_records=self.nemesis_records,
            node_events=self.cluster.board.events,
            history_streamed=self.recorder is not None,
        )
        valid = results["valid"]
        return CampaignOutcome(self.run_dir, valid, exit_code(valid), interrupted or aborted)


def _print_cluster(cluster: ProcessCluster, run_dir: Path) -> None:
    print(f"results written to {run_dir / REPORT_FILE}")
    hint = ", e.g. for `raftlab status --cluster-id`" if isinstance(cluster, LocalCluster) else ""
    print(f"cluster {cluster.cluster_id!r} left running (Ctrl-C stops it); client addresses{hint}:")
    for node_id, endpoint in cluster.client_endpoints().items():
        print(f"  {node_id} {endpoint}")


def check_nemesis_options(nemesis: str, options: dict[str, dict[str, Any]]) -> None:
    """Refuse (TargetError: bad arguments, nothing started) options for a fault the run
    does not use, and options its fault class does not take or rejects."""
    from nemesis.faults import FAULTS
    from nemesis.schedule import build_faults, parse_nemesis

    specs = parse_nemesis(nemesis)
    chosen = {spec.name for spec in specs}
    for name in options:
        if name not in FAULTS:
            raise TargetError(
                f"--nemesis-option: unknown fault {name!r}; known: {', '.join(FAULTS)}"
            )
        if name not in chosen:
            raise TargetError(f"--nemesis-option: fault {name!r} is not in --nemesis {nemesis}")
    try:
        build_faults(specs, options)
    except (TypeError, ValueError) as error:
        raise TargetError(f"--nemesis-option: {error}") from None


def resolve_target(config: CampaignConfig) -> Any:
    """The run's target, with ``config.target_options`` validated and completed with the
    defaults (so campaign.json records every option), and the nemesis's faults checked
    against what the target can take. Raises `campaign.targets.TargetError` (bad
    arguments: nothing has started)."""
    from campaign.targets.base import check_workload
    from nemesis.schedule import parse_nemesis

    target = get_target(config.target)
    config.target_options = parse_target_options(target, config.target_options)
    check_faults(target, [spec.name for spec in parse_nemesis(config.nemesis)])
    check_workload(target, config.workload)
    check_nemesis_options(config.nemesis, config.nemesis_options)
    config.spares = resolve_spares(config, target)
    if config.net != "proxy":
        if config.net not in getattr(target, "nets", ("proxy",)):
            raise TargetError(f"target {target.name!r} does not run with --net {config.net}")
        from nemesis.netns import unsupported_reason

        reason = unsupported_reason(spec.name for spec in parse_nemesis(config.nemesis))
        if reason is not None:
            raise TargetError(reason)
    defaults = CampaignConfig()
    for setting in ("heartbeat_ms", "election_timeout_ms", "unsafe_local_reads"):
        ignored = setting not in target.campaign_settings
        if ignored and getattr(config, setting) != getattr(defaults, setting):
            raise TargetError(
                f"target {target.name!r} does not take the campaign setting {setting}; "
                f"its options: {', '.join(sorted(target.options)) or '(none)'}"
            )
    return target


def resolve_spares(config: CampaignConfig, target: Any) -> int:
    """``--spares``, checked: only targets that take spares get any (TargetError); None
    becomes 2 when the member fault runs on such a target (as in `raftlab sim`), else 0."""
    from nemesis.schedule import parse_nemesis

    takes = bool(getattr(target, "supports_spares", False)) and config.net == "proxy"
    if config.spares is None:
        member = any(spec.name == "member" for spec in parse_nemesis(config.nemesis))
        return 2 if member and takes else 0
    if config.spares < 0:
        raise TargetError(f"--spares must be >= 0, got {config.spares}")
    if config.spares and not takes:
        where = f"target {target.name!r}" if config.net == "proxy" else f"--net {config.net}"
        raise TargetError(f"{where} does not take spare nodes (--spares {config.spares})")
    return config.spares


def make_nemesis(
    config: CampaignConfig,
    cluster: ProcessCluster,
    recorder: Any,
    seed: int,
    records: list[dict[str, Any]],
    log_path: Path,
) -> Any:
    """The run's nemesis (`nemesis.schedule.Nemesis`), recording into the history and
    nemesis.jsonl (written line by line as faults happen, so a crash keeps them).

    ``--nemesis none`` gives a nemesis with no faults: it still heals at the end.
    """
    from nemesis.schedule import Nemesis

    def record(op: dict[str, Any]) -> None:
        recorder.nemesis(op["f"], op.get("value"), error=op.get("error"))

    return Nemesis(
        cluster,
        config.nemesis,
        interval=config.nemesis_interval,
        seed=seed,
        record=record,
        log_path=log_path,
        records=records,
        time_ns=cluster.time_ns,
        fault_options=config.nemesis_options,
    )
