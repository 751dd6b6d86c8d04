"""The nemesis process: parse ``--nemesis``, then start and stop faults on an interval.

Jepsen's usual alternation: wait about ``interval`` seconds, start a fault chosen at random
from the enabled set, wait about ``interval`` again, stop it, and so on. Each wait is drawn
uniformly from [0.5, 1.5] x interval with the seeded RNG (Jepsen staggers its nemesis the
same way). Only one fault is active at a time, so each start has its matching stop.

Every action becomes a history op ``{"type": "info", "process": "nemesis", "f": ...,
"value": ...}`` through the injected ``record`` callback, and a line of ``nemesis.jsonl``
(with its time, wall-clock time and duration). ``heal_all`` ends a run: it stops the active
fault, heals every link, resumes paused nodes, resets skewed clocks and starts every node
that is down.

``--nemesis`` takes fault names (``partition,kill,pause,delay,loss,clock,disk``), ``all``
or ``none``; a fault may be narrowed to some of its variants by suffix:
``partition-leader``, ``partition-one-way``, ``kill-minority``, ``pause-leader``,
``clock-strobe``, ``disk-flip``… (a bare name enables every variant).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from nemesis.clock import NORMAL_CLOCK, ClockFaultError, set_clock
from nemesis.control import ClusterControl
from nemesis.faults import FAULTS
from nemesis.faults.base import Fault, FaultEvent, node_address

logger = logging.getLogger(__name__)

NEMESIS_PROCESS = "nemesis"
STOP_TIMEOUT_SECONDS = (
    30.0  # a stop (restarting nodes, resetting clocks) that hangs longer is abandoned
)
JITTER_LOW, JITTER_HIGH = 0.5, 1.5


class NemesisSpecError(ValueError):
    """A ``--nemesis`` value names something that does not exist."""


@dataclass(slots=True, frozen=True)
class FaultSpec:
    name: str
    variants: tuple[str, ...] = ()  # empty: every variant of the fault


def valid_names() -> list[str]:
    return [*FAULTS, "all", "none"]


def valid_variant_names() -> list[str]:
    return [f"{name}-{variant}" for name, fault in FAULTS.items() for variant in fault.variants]


def _spec_error(token: str) -> NemesisSpecError:
    return NemesisSpecError(
        f"unknown nemesis {token!r}; valid: {', '.join(valid_names())}; "
        f"or a fault narrowed to a variant: {', '.join(valid_variant_names())}"
    )


def parse_nemesis(spec: str) -> tuple[FaultSpec, ...]:
    """``"partition,kill"`` -> the fault specs, in ``FAULTS`` order; NemesisSpecError if bad."""
    tokens = [token.strip() for token in spec.split(",")]
    if not spec.strip() or any(not token for token in tokens):
        raise NemesisSpecError(f"empty nemesis name in {spec!r}; valid: {', '.join(valid_names())}")
    if "none" in tokens or "all" in tokens:
        if len(tokens) > 1:
            raise NemesisSpecError(f"'all' and 'none' stand alone, got {spec!r}")
        if tokens == ["none"]:
            return ()
        return tuple(FaultSpec(name) for name in FAULTS)
    chosen: dict[str, set[str] | None] = {}  # None: every variant
    for token in tokens:
        if token in FAULTS:
            chosen[token] = None
            continue
        for name, fault in FAULTS.items():
            prefix = f"{name}-"
            if token.startswith(prefix) and token[len(prefix) :] in fault.variants:
                variants = chosen.setdefault(name, set())
                if variants is not None:
                    variants.add(token[len(prefix) :])
                break
        else:
            raise _spec_error(token)
    specs: list[FaultSpec] = []
    for name, fault in FAULTS.items():
        if name in chosen:
            variants = chosen[name]
            ordered = () if variants is None else tuple(v for v in fault.variants if v in variants)
            specs.append(FaultSpec(name, ordered))
    return tuple(specs)


def build_faults(
    specs: Sequence[FaultSpec], options: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Fault]:
    """One fault object per spec; ``options[name]`` are extra keyword arguments."""
    options = options or {}
    return [FAULTS[spec.name](spec.variants, **options.get(spec.name, {})) for spec in specs]


def _wall_time() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_text(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_error_text(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"


class Nemesis:
    """The interval-driven nemesis of one run, bound to a cluster.

    ``await nursery.start(nemesis.run)`` (cancel it when the workload ends), then
    ``await nemesis.heal_all()``. ``record(op)`` gets each nemesis op (without index or
    time: the history recorder assigns them). ``time_ns()`` gives the run's clock for
    ``nemesis.jsonl`` (default: nanoseconds since this object was made). Records go to
    ``log_path`` as they happen and to ``records`` when a list is given.
    """

    def __init__(
        self,
        ctx: ClusterControl,
        spec: str | Sequence[FaultSpec],
        *,
        interval: float,
        seed: int,
        record: Callable[[dict[str, Any]], Any] | None = None,
        log_path: Path | None = None,
        records: list[dict[str, Any]] | None = None,
        time_ns: Callable[[], int] | None = None,
        fault_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"nemesis interval must be > 0 seconds, got {interval}")
        self.ctx = ctx
        self.specs = parse_nemesis(spec) if isinstance(spec, str) else tuple(spec)
        self.faults = build_faults(self.specs, fault_options)
        self.interval = interval
        self.rng = random.Random(seed)
        self._record = record
        self.log_path = log_path
        self.records = records
        started = time.monotonic_ns()
        self._time_ns = time_ns or (lambda: time.monotonic_ns() - started)
        self.active: Fault | None = None
        self.clock_touched = False
        self.history: list[dict[str, Any]] = []  # every nemesis.jsonl record of this run

    @property
    def active_faults(self) -> list[str]:
        return [] if self.active is None else [self.active.name]

    # -- recording ---------------------------------------------------------------------

    def _emit(
        self,
        phase: str,
        fault: str | None,
        event: FaultEvent,
        started_ns: int,
        error: str | None = None,
    ) -> None:
        op: dict[str, Any] = {
            "type": "info",
            "process": NEMESIS_PROCESS,
            "f": event.f,
            "value": event.value,
        }
        if error is not None:
            op["error"] = error
        if self._record is not None:
            try:
                self._record(op)
            except Exception:  # a recorder problem must not stop the healing
                logger.exception("recording a nemesis op failed")
        entry: dict[str, Any] = {
            "time": started_ns,
            "end_time": self._time_ns(),
            "wall_time": _wall_time(),
            "phase": phase,
            "fault": fault,
            "f": event.f,
            "value": event.value,
        }
        if error is not None:
            entry["error"] = error
        self.history.append(entry)
        if self.records is not None:
            self.records.append(entry)
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry, default=str, sort_keys=True) + "\n")
                log.flush()

    # -- one fault ---------------------------------------------------------------------

    async def start_fault(self, fault: Fault) -> FaultEvent:
        started_ns = self._time_ns()
        self.active = fault
        if fault.name == "clock":
            self.clock_touched = True
        try:
            event = await fault.start(self.ctx, self.rng)
        except Exception as error:  # a failed fault is recorded, never fatal to the run
            logger.warning("nemesis: starting %s failed: %s", fault.name, error)
            event = FaultEvent(f"start-{fault.name}", {"fault": fault.name})
            self._emit("start", fault.name, event, started_ns, _error_text(error))
            return event
        self._emit("start", fault.name, event, started_ns)
        return event

    async def stop_fault(self, fault: Fault) -> FaultEvent:
        started_ns = self._time_ns()
        with trio.CancelScope(shield=True):  # a stop must complete even during cancellation
            try:
                with trio.fail_after(STOP_TIMEOUT_SECONDS):
                    event = await fault.stop(self.ctx)
            except Exception as error:
                logger.warning("nemesis: stopping %s failed: %s", fault.name, error)
                event = FaultEvent(f"stop-{fault.name}", {"fault": fault.name})
                self._emit("stop", fault.name, event, started_ns, _error_text(error))
                return event
            finally:
                if self.active is fault:
                    self.active = None
            self._emit("stop", fault.name, event, started_ns)
            return event

    # -- the schedule ------------------------------------------------------------------

    def next_wait(self) -> float:
        return self.interval * self.rng.uniform(JITTER_LOW, JITTER_HIGH)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Alternate start and stop until cancelled; the active fault is stopped on exit."""
        task_status.started()
        if not self.faults:
            return
        try:
            while True:
                await trio.sleep(self.next_wait())
                fault = self.rng.choice(self.faults)
                await self.start_fault(fault)
                await trio.sleep(self.next_wait())
                await self.stop_fault(fault)
        finally:
            if self.active is not None:
                await self.stop_fault(self.active)

    async def heal_all(self, ctx: ClusterControl | None = None) -> FaultEvent:
        """Jepsen's final generator: every fault stopped, links healed, nodes up."""
        ctx = ctx or self.ctx
        started_ns = self._time_ns()
        if self.active is not None:
            await self.stop_fault(self.active)
        value: dict[str, Any] = {"fault": "all"}
        with trio.CancelScope(shield=True):
            value["links"] = ctx.mesh.describe()
            ctx.mesh.heal()
            resumed: list[str] = []
            for node_id in ctx.node_ids:
                process = ctx.processes[node_id]
                if process.running and process.paused:
                    process.resume()
                    resumed.append(node_id)
            value["resumed"] = resumed
            if self.clock_touched:
                value["clocks_reset"], clock_errors = await _reset_clocks(ctx)
                if clock_errors:
                    value["clock_errors"] = clock_errors
            started: list[str] = []
            start_errors: dict[str, str] = {}
            for node_id in ctx.node_ids:
                process = ctx.processes[node_id]
                if not process.running:
                    try:
                        await process.start()
                        started.append(node_id)
                    except Exception as error:
                        start_errors[node_id] = _error_text(error)
            value["started"] = started
            refused = sorted(
                node for fault in self.faults for node in getattr(fault, "refused", ())
            )
            if refused:
                # Started again, but they refused once after disk damage and likely will.
                value["refused_after_disk_damage"] = refused
            if start_errors:
                value["start_errors"] = start_errors
            event = FaultEvent("heal-all", value)
            self._emit("heal", None, event, started_ns)
        return event


async def _reset_clocks(ctx: ClusterControl) -> tuple[list[str], dict[str, str]]:
    reset: list[str] = []
    errors: dict[str, str] = {}
    for node_id in ctx.node_ids:
        process = ctx.processes[node_id]
        if not process.running or process.paused:
            continue  # a node that starts later starts with a normal clock
        host, port = node_address(ctx, node_id)
        try:
            await set_clock(host, port, cluster_id=ctx.cluster_id, setting=NORMAL_CLOCK)
            reset.append(node_id)
        except ClockFaultError as error:
            errors[node_id] = str(error)
    return reset, errors
