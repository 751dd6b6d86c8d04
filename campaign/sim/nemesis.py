"""The simulation's nemesis: conventions §4's vocabulary acted out on a ``SimCluster``.

The fault names, partition shapes and targets are the real campaigns' own
(``nemesis.schedule`` parses ``--nemesis`` for both); here they act on simulated links and
nodes instead of proxies and processes. One addition: ``crash``, a kill that also loses
the unsynced tail of the disk (and may tear its last record), which only a simulation
can do on purpose.

Like Jepsen's usual nemesis, faults alternate: start one, wait an interval, stop it, wait
an interval. A schedule is a list of ``FaultStep`` (fault, shape/target, when), drawn
from the seed or given explicitly (the shrinker does that).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from campaign.sim.cluster import SimCluster
from campaign.sim.network import LinkConditions
from raftnode.core import ConfChange, ConfChangeType

SIM_FAULTS = (
    "partition", "kill", "pause", "delay", "loss", "clock", "disk", "crash", "transfer", "member",
)  # fmt: skip
# The member fault never leaves fewer voters than this (Jepsen's etcd member nemesis).
MIN_VOTERS = 3
PARTITION_SHAPES = (
    "one",
    "majority",
    "majorities-ring",
    "minority-third",
    "bridge",
    "leader",
    "one-way",
)
TARGETS = ("one", "minority", "majority", "leader", "all")

# Explicit options, for hand-built schedules (a replayed Figure 8 needs exact nodes):
# a target may name nodes (``n2``, ``n1+n3``); a partition may list groups
# (``n1|n2+n3``: each group hears only itself, unlisted nodes form one more group) or
# directed cuts (``n1>n2|n3>n2``: what n1 and n3 send n2 is dropped).
_NODES = r"n\d+(?:\+n\d+)*"
EXPLICIT_TARGET = re.compile(rf"^{_NODES}$")
EXPLICIT_GROUPS = re.compile(rf"^{_NODES}(?:\|{_NODES})+$")
EXPLICIT_CUTS = re.compile(rf"^{_NODES}>{_NODES}(?:\|{_NODES}>{_NODES})*$")


def is_explicit_option(fault: str, option: str) -> bool:
    if fault == "partition":
        return bool(EXPLICIT_GROUPS.match(option) or EXPLICIT_CUTS.match(option))
    if fault in ("kill", "pause", "crash", "disk"):
        return bool(EXPLICIT_TARGET.match(option))
    if fault == "member":
        return option == "learner"
    return False


def _named(spec: str, nodes: list[str]) -> list[str]:
    named = spec.split("+")
    unknown = [node for node in named if node not in nodes]
    if unknown:
        raise NemesisSpecError(f"unknown node(s) {', '.join(unknown)} (nodes: {', '.join(nodes)})")
    return named


def explicit_grudges(option: str, nodes: list[str]) -> dict[str, set[str]]:
    """``n1|n2+n3`` (groups) or ``n1>n2|n3>n2`` (directed cuts) as grudges."""
    if ">" in option:
        grudges: dict[str, set[str]] = {}
        for cut in option.split("|"):
            sources, _, destinations = cut.partition(">")
            for dst in _named(destinations, nodes):
                grudges.setdefault(dst, set()).update(_named(sources, nodes))
        return grudges
    groups = [_named(group, nodes) for group in option.split("|")]
    listed = {node for group in groups for node in group}
    rest = [node for node in nodes if node not in listed]
    return _cut_between(groups + ([rest] if rest else []))


class NemesisSpecError(ValueError):
    """An unknown fault name in ``--nemesis``."""


def _colon_form(name: str) -> str:
    """``partition-leader`` (the real campaigns' spelling) → ``partition:leader``."""
    if ":" not in name:
        for fault in SIM_FAULTS:
            if name.startswith(f"{fault}-"):
                return f"{fault}:{name[len(fault) + 1 :]}"
    return name


def parse_faults(spec: str) -> tuple[str, ...]:
    """``partition,kill`` | ``all`` | ``none`` → fault names (validated).

    A fault may be narrowed to one shape or target with a colon: ``partition:leader``,
    ``kill:leader``, ``pause:minority``, ``loss:severe``; ``raftlab test``'s spelling with a
    hyphen (``partition-leader``, ``partition-one-way``) means the same.
    """
    names = [_colon_form(part.strip()) for part in spec.split(",") if part.strip()]
    if names == ["none"] or not names:
        return ()
    if names == ["all"]:
        return SIM_FAULTS
    problems = []
    for name in names:
        fault, _, option = name.partition(":")
        if fault not in SIM_FAULTS:
            problems.append(f"unknown fault {fault!r}")
        elif option and option not in options_for(fault) and not is_explicit_option(fault, option):
            problems.append(
                f"{fault} has no option {option!r} (options: {', '.join(options_for(fault))})"
            )
    if problems:
        raise NemesisSpecError(
            "; ".join(problems) + f". Faults: {', '.join(SIM_FAULTS)}, all, none"
        )
    return tuple(dict.fromkeys(names))


# --- partition shapes (grudges: dst -> the sources it drops) --------------------------


def _cut_between(groups: list[list[str]]) -> dict[str, set[str]]:
    """Every node drops what comes from nodes outside its own group."""
    grudges: dict[str, set[str]] = {}
    everyone = [node for group in groups for node in group]
    for group in groups:
        for node in group:
            grudges[node] = {other for other in everyone if other not in group}
    return grudges


def partition_grudges(
    shape: str, nodes: list[str], rng: random.Random, leader: str | None
) -> dict[str, set[str]]:
    """Jepsen's partition shapes as directed grudges."""
    if is_explicit_option("partition", shape):
        return explicit_grudges(shape, nodes)
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    n = len(nodes)
    if shape == "one" or (shape == "leader" and leader is None):
        isolated = shuffled[0]
        return _cut_between([[isolated], [x for x in nodes if x != isolated]])
    if shape == "leader":
        assert leader is not None
        return _cut_between([[leader], [x for x in nodes if x != leader]])
    if shape == "majority":
        cut = n // 2
        return _cut_between([shuffled[:cut], shuffled[cut:]])
    if shape == "minority-third":
        cut = max(1, n // 3)
        return _cut_between([shuffled[:cut], shuffled[cut:]])
    if shape == "majorities-ring":
        # Each node sees a majority (its ring neighbours), but no two nodes see the same
        # one (Jepsen's majorities-ring).
        majority = n // 2 + 1
        offsets = range(-(majority // 2), majority - majority // 2)
        return {
            node: set(nodes) - {shuffled[(position + d) % n] for d in offsets}
            for position, node in enumerate(shuffled)
        }
    if shape == "bridge":
        # Two halves joined by one node that sees both.
        half = n // 2
        bridge = shuffled[half]
        left, right = shuffled[:half], shuffled[half + 1 :]
        grudges = _cut_between([left, right])
        grudges[bridge] = set()
        for node in left + right:
            grudges[node].discard(bridge)
        return grudges
    if shape == "one-way":
        # A directed cut: one node stops hearing from everyone else (its messages go out).
        victim = shuffled[0]
        return {victim: {other for other in nodes if other != victim}}
    raise NemesisSpecError(f"unknown partition shape {shape!r}")


def pick_targets(
    target: str, nodes: list[str], rng: random.Random, leader: str | None
) -> list[str]:
    if EXPLICIT_TARGET.match(target):
        return _named(target, nodes)
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    n = len(nodes)
    if target == "one":
        return shuffled[:1]
    if target == "leader":
        return [leader] if leader is not None else shuffled[:1]
    if target == "minority":
        return shuffled[: max(1, (n - 1) // 2)]
    if target == "majority":
        return shuffled[: n // 2 + 1]
    if target == "all":
        return shuffled
    raise NemesisSpecError(f"unknown target {target!r}")


@dataclass(slots=True)
class FaultStep:
    """One fault of a schedule: started at ``start``, stopped ``duration`` later."""

    fault: str
    option: str  # a partition shape, a target, or a level
    start: float  # simulated seconds after the workload starts
    duration: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "option": self.option,
            "start": self.start,
            "duration": self.duration,
        }


def options_for(fault: str) -> tuple[str, ...]:
    if fault == "partition":
        return PARTITION_SHAPES
    if fault in ("kill", "pause", "crash"):
        return TARGETS[:-1] + ("all",)
    if fault in ("disk",):
        return ("one",)
    if fault in ("delay", "loss"):
        return ("mild", "severe")
    if fault == "clock":
        return ("fast", "slow", "strobe")
    if fault == "transfer":
        return ("any",)
    if fault == "member":
        return ("grow", "shrink")  # "member:learner" (explicit only): grow, never promote
    raise NemesisSpecError(f"unknown fault {fault!r}")


def draw_schedule(
    faults: tuple[str, ...], rng: random.Random, *, interval: float, time_limit: float
) -> list[FaultStep]:
    """Jepsen's alternation: a fault for ~interval, then ~interval of calm, repeated."""
    steps: list[FaultStep] = []
    if not faults:
        return steps
    at = interval * rng.uniform(0.5, 1.5)
    while at < time_limit:
        fault, _, option = faults[rng.randrange(len(faults))].partition(":")
        options = (option,) if option else options_for(fault)
        duration = interval * rng.uniform(0.5, 1.5)
        steps.append(FaultStep(fault, options[rng.randrange(len(options))], at, duration))
        at += duration + interval * rng.uniform(0.5, 1.5)
    return steps


def validate_schedule(steps: list[dict[str, Any]], node_count: int) -> list[FaultStep]:
    """An explicit schedule (``--schedule``) as FaultSteps, or a NemesisSpecError naming
    the first bad step."""
    nodes = [f"n{number}" for number in range(1, node_count + 1)]
    parsed = []
    for number, step in enumerate(steps, 1):
        try:
            fault_step = FaultStep(**step)
            spec = f"{fault_step.fault}:{fault_step.option}"
            parse_faults(spec)
            if fault_step.fault == "partition" and is_explicit_option(
                "partition", fault_step.option
            ):
                explicit_grudges(fault_step.option, nodes)
            elif EXPLICIT_TARGET.match(fault_step.option):
                _named(fault_step.option, nodes)
            if not (fault_step.start >= 0 and fault_step.duration >= 0):
                raise NemesisSpecError("start and duration must be non-negative")
        except (TypeError, NemesisSpecError) as error:
            raise NemesisSpecError(f"schedule step {number} ({step!r}): {error}") from None
        parsed.append(fault_step)
    return parsed


def _overlapping(schedule: list[FaultStep]) -> bool:
    ordered = sorted(schedule, key=lambda step: step.start)
    return (
        any(
            later.start < earlier.start + earlier.duration
            for earlier, later in zip(ordered, ordered[1:], strict=False)
        )
        or ordered != schedule
    )


@dataclass(slots=True)
class SimNemesis:
    cluster: SimCluster
    rng: random.Random
    record: Callable[[str, Any], None]  # (f, value) -> a nemesis op in the history
    records: list[dict[str, Any]] = field(default_factory=list)  # nemesis.jsonl
    _undo: list[Callable[[], Any]] = field(default_factory=list)
    _partition_in_force: dict[str, set[str]] | None = None

    def _log(self, f: str, value: Any) -> None:
        self.record(f, value)
        # nemesis.jsonl in the one format `raftlab test` writes (ARCHITECTURE.md, results):
        # nanoseconds on the history's clock (the recorder's zero is trio time 0 here), the
        # phase (start / stop / heal) and the fault family; no wall time in a simulation.
        now = round(trio.current_time() * 1_000_000_000)
        closes = {"start": "kill", "resume": "pause", "restart": "crash"}
        if f == "heal":
            phase, fault = "heal", None
        elif f.startswith("stop-") or f in closes:
            phase, fault = "stop", f[5:] if f.startswith("stop-") else closes[f]
        else:
            phase, fault = "start", f[6:] if f.startswith("start-") else f
        self.records.append(
            {
                "time": now,
                "end_time": now,
                "wall_time": None,
                "phase": phase,
                "fault": fault,
                "f": f,
                "value": value,
            }
        )

    async def run(self, schedule: list[FaultStep], started_at: float) -> None:
        if not _overlapping(schedule):
            for step in schedule:
                await self._run_step(step, started_at)
            return
        # A hand-built schedule may overlap faults (a node paused while a partition
        # holds): each step runs on its own timeline. Overlapping partitions replace one
        # another; a partition's stop heals only if its own cut is still the one in force.
        async with trio.open_nursery() as nursery:
            for step in schedule:
                nursery.start_soon(self._run_step, step, started_at)

    async def _run_step(self, step: FaultStep, started_at: float) -> None:
        await trio.sleep_until(started_at + step.start)
        await self.start(step)
        await trio.sleep_until(started_at + step.start + step.duration)
        await self.stop(step)

    async def start(self, step: FaultStep) -> None:
        cluster, rng = self.cluster, self.rng
        nodes = list(cluster.node_ids)
        leader = cluster.leader()
        fault = step.fault
        if fault == "partition":
            grudges = partition_grudges(step.option, nodes, rng, leader)
            cluster.network.grudges = grudges
            self._partition_in_force = grudges
            self._log(
                "start-partition",
                {"shape": step.option, "grudges": {k: sorted(v) for k, v in grudges.items()}},
            )
        elif fault in ("kill", "crash", "disk"):
            targets = pick_targets(step.option, nodes, rng, leader)
            for node_id in targets:
                node = cluster.nodes[node_id]
                # kill: SIGKILL of a process whose every acknowledged write was fsynced;
                # crash: the power goes too, so unsynced writes are lost; disk: and the
                # last record is torn.
                node.crash(rng, tear=fault == "disk")
            self._log("kill" if fault == "kill" else f"start-{fault}", {"nodes": targets})
        elif fault == "pause":
            targets = [
                t for t in pick_targets(step.option, nodes, rng, leader) if cluster.nodes[t].running
            ]
            for node_id in targets:
                cluster.nodes[node_id].pause()
            self._log("pause", {"nodes": targets})
        elif fault in ("delay", "loss"):
            severe = step.option == "severe"
            base = cluster.network.conditions
            if fault == "delay":
                conditions = LinkConditions(
                    base_delay=0.05 if severe else 0.01,
                    jitter=0.2 if severe else 0.05,
                    loss=base.loss,
                    duplicate=base.duplicate,
                )
            else:
                conditions = LinkConditions(
                    base_delay=base.base_delay,
                    jitter=base.jitter,
                    loss=0.4 if severe else 0.1,
                    duplicate=base.duplicate,
                )
            cluster.network.conditions = conditions
            self._undo.append(lambda base=base: setattr(cluster.network, "conditions", base))
            self._log(f"start-{fault}", {"level": step.option})
        elif fault == "clock":
            target = pick_targets("one", nodes, rng, leader)[0]
            rate = {"fast": 2.0, "slow": 0.5, "strobe": 4.0}[step.option]
            await self._set_rate(target, rate)
            self._log("start-clock", {"node": target, "rate": rate})
        elif fault == "transfer":
            # §3.10, as an operator's rolling restart asks: the leader hands over to
            # another running node (the transfer nemesis of `raftlab test`).
            others = [n for n in nodes if n != leader and cluster.nodes[n].running]
            value: dict[str, Any] = {"from": leader}
            if leader is None or not others:
                value["note"] = "no leader or no other running node: nothing to transfer"
            else:
                value["to"] = to = others[rng.randrange(len(others))]
                driver = cluster.nodes[leader].driver
                assert driver is not None
                driver.start_transfer(to, lambda result: None)
            self._log("start-transfer", value)
        elif fault == "member":
            self._log("start-member", self._change_membership(step.option, leader))
        else:
            raise NemesisSpecError(f"unknown fault {fault!r}")

    # --- the member fault (§4): one single-server change per step, through the leader

    def _conf(self, leader: str | None) -> Any:
        driver = self.cluster.nodes[leader].driver if leader else None
        return driver.core.conf_state() if driver is not None else None

    def _propose(self, leader: str | None, kind: Any, node: str) -> dict[str, Any]:
        value: dict[str, Any] = {"change": str(kind), "node": node}
        driver = self.cluster.nodes[leader].driver if leader else None
        if driver is None:
            value["result"] = "no leader"
            return value
        outcome: list[Any] = []
        driver.start_conf_change(ConfChange(kind, node), outcome.append)
        # Refusals come back at once (change_pending while the last one commits).
        if outcome and isinstance(outcome[0], dict) and not outcome[0].get("ok"):
            value["result"] = f"refused: {outcome[0].get('error')}"
        else:
            value["result"] = "proposed"
        return value

    def _change_membership(self, option: str, leader: str | None) -> dict[str, Any]:
        """grow: add a non-member as a learner (promoted when the step stops); shrink:
        remove a random voter (the leader too) while more than MIN_VOTERS remain."""
        conf = self._conf(leader)
        if conf is None:
            return {"option": option, "result": "no leader"}
        outside = [n for n in self.cluster.all_ids if n not in conf.members]
        if option == "learner":
            option = "grow"  # the stop leaves it a learner
        if option == "grow" and not outside and len(conf.voters) > MIN_VOTERS:
            option = "shrink"
        if option == "shrink" and len(conf.voters) <= MIN_VOTERS:
            option = "grow"
        if option == "grow":
            if not outside:
                return {"option": option, "result": "no node outside the configuration"}
            node = outside[self.rng.randrange(len(outside))]
            return {"option": option, **self._propose(leader, ConfChangeType.ADD_LEARNER, node)}
        node = conf.voters[self.rng.randrange(len(conf.voters))]
        return {"option": option, **self._propose(leader, ConfChangeType.REMOVE, node)}

    async def _set_rate(self, node_id: str, rate: float) -> None:
        self.cluster.nodes[node_id].set_clock_rate(rate)

    async def stop(self, step: FaultStep) -> None:
        cluster = self.cluster
        fault = step.fault
        if fault == "partition":
            if cluster.network.grudges is self._partition_in_force:
                cluster.network.grudges = {}
            self._log("stop-partition", None)
        elif fault in ("kill", "crash", "disk"):
            # Named targets restart alone (another fault may hold other nodes down).
            named = (
                _named(step.option, list(cluster.node_ids))
                if EXPLICIT_TARGET.match(step.option)
                else None
            )
            restarted = await self._restart_down(only=named)
            self._log("start" if fault == "kill" else f"stop-{fault}", {"nodes": restarted})
        elif fault == "pause":
            resumed = await self._restart_down(paused_only=True)
            self._log("resume", {"nodes": resumed})
        elif fault in ("delay", "loss"):
            while self._undo:
                self._undo.pop()()
            self._log(f"stop-{fault}", None)
        elif fault == "clock":
            for node_id in cluster.node_ids:
                await self._set_rate(node_id, 1.0)
            self._log("stop-clock", None)
        elif fault == "transfer":
            self._log("stop-transfer", {"leader": cluster.leader()})  # nothing to undo
        elif fault == "member" and step.option == "learner":
            self._log("stop-member", {"leader": cluster.leader()})  # left a learner
        elif fault == "member":
            # A learner added by start is promoted now that it had time to catch up.
            leader = cluster.leader()
            learners = self._conf(leader).learners if leader else ()
            value: dict[str, Any] = {"leader": leader}
            if learners:
                value.update(self._propose(leader, ConfChangeType.PROMOTE, learners[0]))
            self._log("stop-member", value)

    async def _restart_down(
        self, *, paused_only: bool = False, only: list[str] | None = None
    ) -> list[str]:
        restarted = []
        for node_id, node in self.cluster.nodes.items():
            if only is not None and node_id not in only:
                continue
            if not node.running and (node.paused or not paused_only):
                await self.cluster.restart(node_id)
                restarted.append(node_id)
        return restarted

    async def heal_all(self) -> None:
        """The final generator: every link healed, every node running, clocks reset."""
        cluster = self.cluster
        cluster.network.heal()
        while self._undo:
            self._undo.pop()()
        for node_id in cluster.node_ids:
            await self._set_rate(node_id, 1.0)
        restarted = await self._restart_down()
        self._log("heal", {"restarted": restarted})
