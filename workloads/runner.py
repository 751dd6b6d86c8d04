"""Drive a workload with concurrent client processes, as Jepsen does.

`run_workload` runs ``concurrency`` workers (one Trio task each) for ``time_limit``
seconds of Trio time. Worker ``w`` starts as process ``w``; when one of its ops ends in
``info`` the process is retired (it may still have a request in the cluster, so it must
never invoke again, conventions §1) and the worker continues as process
``w + concurrency``, then ``w + 2*concurrency``… with a new client and a new client id,
so the KV's sessions never mix two processes.

Rate: ``rate`` is the total ops/s over all workers. Each worker pauses a random time
drawn uniformly from [0, 2·concurrency/rate) before every op (Jepsen's stagger, averaging
concurrency/rate), scheduled from the previous op's planned start so that ops faster than
the pause keep the rate exact, while a worker that fell behind (a slow op under a
partition) starts again from now rather than bursting to catch up.

Time and randomness: only `trio.current_time()` / `trio.sleep_until` and the seeded
``rng`` passed in, so the deterministic simulation (MockClock) drives the same code.

Every invoke gets exactly one completion: client errors map through `workloads.outcome`;
at the end of the run ops still in flight get ``drain_timeout`` seconds to finish, then
are cancelled and recorded as ``info`` (``error: "cancelled"``), as are ops cut off by an
outer cancellation (Ctrl-C).
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from checker.op import Op
from workloads.base import OpRequest, Workload
from workloads.client import ClientFactory, KVClient, answering_node
from workloads.outcome import CANCELLED, INFO, OK, outcome_of_error
from workloads.recorder import HistoryRecorder

log = logging.getLogger("raftlab.workloads")

# How workers wait between ops: ``trio.sleep_until`` unless the caller has a cheaper clock.
SleepUntil = Callable[[float], Awaitable[None]]

_PER_NODE = re.compile(r"^\s*([0-9]+)\s*[nN]\s*$")
_PLAIN = re.compile(r"^\s*([0-9]+)\s*$")


class WorkloadConfigError(ValueError):
    """A bad --concurrency, --rate or --time-limit: the message says what is expected."""


class WorkloadSetupError(RuntimeError):
    """The workload could not prepare the cluster (e.g. bank accounts) in time."""


def parse_concurrency(spec: int | str, node_count: int) -> int:
    """``5`` → 5 processes; ``2n`` → 2 per node (Jepsen's ``--concurrency 2n``)."""
    if isinstance(spec, bool):
        raise WorkloadConfigError(f"--concurrency must be a number or Nn, got {spec!r}")
    if isinstance(spec, int):
        count = spec
    elif isinstance(spec, str) and (match := _PER_NODE.match(spec)):
        if node_count < 1:
            raise WorkloadConfigError(
                f"--concurrency {spec!r} is per node, but the cluster has {node_count} nodes"
            )
        count = int(match.group(1)) * node_count
    elif isinstance(spec, str) and (match := _PLAIN.match(spec)):
        count = int(match.group(1))
    else:
        raise WorkloadConfigError(
            f"--concurrency must be a positive integer (e.g. 10) or Nn for N clients per "
            f"node (e.g. 2n), got {spec!r}"
        )
    if count < 1:
        raise WorkloadConfigError(f"--concurrency must be at least 1 client, got {spec!r}")
    return count


def check_rate(rate: float | None) -> float | None:
    """``None`` means as fast as the clients go; otherwise a positive, finite ops/s."""
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise WorkloadConfigError(f"--rate must be a number of ops/s, got {rate!r}")
    if not math.isfinite(rate) or rate <= 0:
        raise WorkloadConfigError(f"--rate must be a positive number of ops/s, got {rate!r}")
    return float(rate)


def home_node(process: int, nodes: Sequence[str]) -> str | None:
    """Processes are spread over the nodes round-robin (Jepsen: process mod node count)."""
    return nodes[process % len(nodes)] if nodes else None


@dataclass(slots=True)
class RunSummary:
    concurrency: int
    invoked: int = 0  # ops invoked by the workers (setup and final ops excluded)
    retired_processes: int = 0  # processes retired after an info
    client_open_failures: int = 0
    next_process: int = 0  # the first process number no worker used


async def perform_op(
    workload: Workload,
    client: KVClient,
    recorder: HistoryRecorder,
    process: int,
    request: OpRequest,
) -> Op:
    """Invoke one op, record its invoke and its one completion; return the completion.

    The completion's ``node`` is the node that answered (the error's, or the client's
    ``last_node``) when the client knows it: the invoke cannot know it yet. A client's
    per-call metadata (`call_metadata`) becomes extra keys of the completion.
    """
    invocation = recorder.invoke(process, request.f, request.value)
    meta_before = getattr(client, "last_meta", None)
    try:
        outcome = await workload.invoke(client, request)
    except Exception as exc:  # a client error, or a client bug: mapped, never lost
        outcome = outcome_of_error(exc, read=workload.is_read(request.f), value=request.value)
        if outcome.error is not None and str(outcome.error).startswith("exception:"):
            log.warning("process %s: %s raised %r", process, request.f, exc)
    except BaseException:
        # Cancelled (end of the run, Ctrl-C) or KeyboardInterrupt: the request may be in
        # the cluster, so the op is indeterminate. Recording is synchronous, so it
        # happens even while cancelled.
        recorder.complete(invocation, INFO, request.value, error=CANCELLED)
        raise
    node = outcome.node
    if node is None and outcome.type == OK:  # last_node is only sure to be this op's on ok
        node = answering_node(client)
    return recorder.complete(
        invocation,
        outcome.type,
        outcome.value,
        error=outcome.error,
        node=node,
        extra=call_metadata(client, meta_before),
    )


# The keys of an op itself (conventions §1): metadata may never overwrite them.
_OP_KEYS = frozenset({"index", "time", "type", "process", "f", "value", "error", "node"})


def call_metadata(client: object, before: object) -> dict[str, object]:
    """The metadata of the client's last call, as extra keys for its op.

    A client may expose ``last_meta``: a dict it replaces with a new one at the start of
    every call and fills from the answers (the etcd client: ``revision`` and, for reads,
    ``mod_revision``). Only a dict other than the one seen before the op counts, so a
    client that never got to make its call (or has no metadata) adds nothing; keys that
    name an op field are dropped.
    """
    meta = getattr(client, "last_meta", None)
    if not isinstance(meta, dict) or meta is before or not meta:
        return {}
    return {str(k): v for k, v in meta.items() if str(k) not in _OP_KEYS}


async def using_client(
    client_factory: ClientFactory,
    *,
    process: int,
    client_id: str,
    node: str | None,
    body: Callable[[KVClient], Awaitable[None]],
) -> bool:
    """Run ``body`` with a fresh client of one process; False if the client did not open.

    Errors opening or closing a client (a node down, a refused connection) are logged and
    left to the caller to retry. Errors from ``body`` propagate: `perform_op` already maps
    every client error, so anything escaping it is a harness bug and must not be retried
    in a loop.
    """
    stage = "open"
    try:
        client = client_factory(process=process, client_id=client_id, node=node)
        async with client as opened:
            stage = "body"
            await body(opened)
            stage = "close"
    except Exception as exc:
        if stage == "body":
            raise
        log.info("process %s: could not %s its client: %r", process, stage, exc)
        return stage == "close"
    return True


async def run_setup(
    workload: Workload,
    client_factory: ClientFactory,
    *,
    nodes: Sequence[str],
    timeout: float = 60.0,
    retry_delay: float = 0.5,
    client_prefix: str = "p",
) -> None:
    """Run ``workload.setup`` until it succeeds (it must be idempotent).

    Retries run on the same client, so in one KV session: the KV refuses a write whose seq
    is below the last one applied (§6.3), so a put of an attempt that timed out can never
    land after a later attempt succeeded and the workers started (it would reset a bank
    balance mid-run). A new client, with a new id, is made only when one cannot be opened.
    """
    deadline = trio.current_time() + timeout
    opening = 0
    last_error: BaseException | None = None

    async def attempts(client: KVClient) -> None:
        nonlocal last_error
        while True:
            try:
                await workload.setup(client)
                return
            except Exception as exc:  # the cluster may still be electing a leader
                last_error = exc
                log.info("setup of %s failed: %r", workload.name, exc)
            await trio.sleep_until(min(trio.current_time() + retry_delay, deadline))

    with trio.move_on_at(deadline):
        while True:
            opening += 1
            opened = await using_client(
                client_factory,
                process=-1,
                client_id=f"{client_prefix}setup{opening}",
                node=home_node(0, nodes),
                body=attempts,
            )
            if opened:
                return
            await trio.sleep_until(min(trio.current_time() + retry_delay, deadline))
    raise WorkloadSetupError(
        f"the {workload.name} workload could not set up the cluster within {timeout:g} s "
        f"(last error: {last_error!r})"
    )


class _Workers:
    """The shared state of one `run_workload` call."""

    def __init__(
        self,
        workload: Workload,
        client_factory: ClientFactory,
        recorder: HistoryRecorder,
        *,
        concurrency: int,
        rate: float | None,
        deadline: float,
        rng: random.Random,
        nodes: Sequence[str],
        reopen_delay: float,
        client_prefix: str,
        sleep_until: SleepUntil,
    ) -> None:
        self.sleep_until = sleep_until
        self.workload = workload
        self.client_factory = client_factory
        self.recorder = recorder
        self.concurrency = concurrency
        self.mean_pause = concurrency / rate if rate is not None else 0.0
        self.deadline = deadline
        # One generator RNG (the workload's state is shared, so is its stream), one
        # stagger RNG per worker; all drawn from the run's seed before any task starts.
        self.generator_rng = random.Random(rng.getrandbits(64))
        self.stagger_rngs = [random.Random(rng.getrandbits(64)) for _ in range(concurrency)]
        self.nodes = list(nodes)
        self.reopen_delay = reopen_delay
        self.client_prefix = client_prefix
        self.summary = RunSummary(concurrency=concurrency, next_process=concurrency)

    async def worker(self, worker: int) -> None:
        process = worker
        stagger = self.stagger_rngs[worker]
        next_start = trio.current_time()
        while trio.current_time() < self.deadline:
            retired = False

            # Called at once, within this iteration; `process` is bound for clarity.
            async def ops(client: KVClient, process: int = process) -> None:
                nonlocal retired, next_start
                retired, next_start = await self._ops(client, process, stagger, next_start)

            opened = await using_client(
                self.client_factory,
                process=process,
                client_id=f"{self.client_prefix}{process}",
                node=home_node(process, self.nodes),
                body=ops,
            )
            if not opened:
                self.summary.client_open_failures += 1
                now = trio.current_time()
                await self.sleep_until(min(now + self.reopen_delay, self.deadline))
            if retired:
                self.summary.retired_processes += 1
                process += self.concurrency
                self.summary.next_process = max(self.summary.next_process, process + 1)

    async def _ops(
        self, client: KVClient, process: int, stagger: random.Random, next_start: float
    ) -> tuple[bool, float]:
        """Invoke ops on one process until one ends in info (True) or time is up (False)."""
        while True:
            if self.mean_pause > 0:
                pause = stagger.uniform(0.0, 2.0 * self.mean_pause)
                next_start = max(next_start + pause, trio.current_time())
                await self.sleep_until(min(next_start, self.deadline))
            else:
                await trio.lowlevel.checkpoint()
            if trio.current_time() >= self.deadline:
                return False, next_start
            request = self.workload.next_op(self.generator_rng)
            self.summary.invoked += 1
            completion = await perform_op(self.workload, client, self.recorder, process, request)
            if completion.type == INFO:
                return True, next_start


async def run_workload(
    workload: Workload,
    client_factory: ClientFactory,
    recorder: HistoryRecorder,
    *,
    concurrency: int | str,
    rate: float | None,
    time_limit: float,
    rng: random.Random,
    nodes: Sequence[str],
    drain_timeout: float = 5.0,
    reopen_delay: float = 0.5,
    setup_timeout: float = 60.0,
    client_prefix: str = "p",
    setup_done: trio.Event | None = None,
    sleep_until: SleepUntil = trio.sleep_until,
) -> RunSummary:
    """Set the workload up, then run it for ``time_limit`` seconds (Trio time).

    ``setup_done`` (optional) is set once setup succeeded and the workers start: a
    nemesis started on it never disturbs the setup. Returns when every worker has
    stopped: no op of this phase is left in flight. ``sleep_until`` is how the workers
    wait between ops (the simulation passes its network's timer, which is cheaper than
    a Trio deadline).
    """
    count = parse_concurrency(concurrency, len(nodes))
    checked_rate = check_rate(rate)
    if isinstance(time_limit, bool) or not isinstance(time_limit, int | float):
        raise WorkloadConfigError(f"--time-limit must be a number of seconds, got {time_limit!r}")
    if not math.isfinite(time_limit) or time_limit <= 0:
        raise WorkloadConfigError(f"--time-limit must be a positive duration, got {time_limit!r}")
    if drain_timeout < 0:
        raise WorkloadConfigError(f"drain_timeout must be >= 0, got {drain_timeout!r}")

    await run_setup(
        workload, client_factory, nodes=nodes, timeout=setup_timeout, client_prefix=client_prefix
    )
    if setup_done is not None:
        setup_done.set()
    deadline = trio.current_time() + time_limit
    workers = _Workers(
        workload,
        client_factory,
        recorder,
        concurrency=count,
        rate=checked_rate,
        deadline=deadline,
        rng=rng,
        nodes=nodes,
        reopen_delay=reopen_delay,
        client_prefix=client_prefix,
        sleep_until=sleep_until,
    )
    # Ops in flight at the deadline may finish within drain_timeout; then they are
    # cancelled and recorded as info by perform_op.
    with trio.move_on_at(deadline + drain_timeout):
        async with trio.open_nursery() as nursery:
            for worker in range(count):
                nursery.start_soon(workers.worker, worker, name=f"worker-{worker}")
    return workers.summary


async def run_final_ops(
    workload: Workload,
    client_factory: ClientFactory,
    recorder: HistoryRecorder,
    *,
    nodes: Sequence[str],
    time_limit: float = 30.0,
    retry_delay: float = 0.5,
    client_prefix: str = "p",
) -> list[Op | None]:
    """The final-read phase (after healing): each final op until it is ``ok``.

    Every final op runs on its own process, numbered after every process used so far; a
    ``fail`` retries on the same process after ``retry_delay``, an ``info`` retires it and
    retries on a new one. Returns, per final op, its ``ok`` completion or None when it
    never succeeded within ``time_limit`` (the checkers then say "unknown" where it
    matters).
    """
    requests = workload.final_ops()
    base = recorder.next_free_process()
    results: list[Op | None] = [None] * len(requests)
    deadline = trio.current_time() + time_limit

    async def final(slot: int, request: OpRequest) -> None:
        process = base + slot
        while trio.current_time() < deadline and results[slot] is None:
            retired = False

            async def attempts(client: KVClient, process: int = process) -> None:
                nonlocal retired
                while trio.current_time() < deadline:
                    completion = await perform_op(workload, client, recorder, process, request)
                    if completion.type == OK:
                        results[slot] = completion
                        return
                    if completion.type == INFO:
                        retired = True
                        return
                    await trio.sleep_until(min(trio.current_time() + retry_delay, deadline))

            opened = await using_client(
                client_factory,
                process=process,
                client_id=f"{client_prefix}{process}",
                node=home_node(process, nodes),
                body=attempts,
            )
            if not opened:
                await trio.sleep_until(min(trio.current_time() + retry_delay, deadline))
            if retired:
                process += len(requests)

    with trio.move_on_at(deadline):
        async with trio.open_nursery() as nursery:
            for slot, request in enumerate(requests):
                nursery.start_soon(final, slot, request, name=f"final-{slot}")
    return results
