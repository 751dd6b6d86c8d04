"""raftnode, the reference target: `raftlab node` processes behind the frame proxies.

Everything raftnode-specific lives in `campaign.cluster.LocalCluster` (its command lines,
status requests and `RaftClient` factory); this file is its registration as a target.
raftnode takes every fault: its admin port takes clock requests and its WAL layout is
what the disk faults damage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar

from campaign.cluster import LocalCluster, ports_needed
from campaign.targets.base import ClusterSpec, TargetOption


def parse_bugs(text: str) -> tuple[str, ...]:
    """Teaching bug switches (ARCHITECTURE.md "Bug switches"): comma-separated, or the
    JSON list campaign.json records."""
    from raftnode.core import KNOWN_BUGS

    names = json.loads(text) if text.strip().startswith("[") else text.split(",")
    bugs = tuple(sorted({str(bug).strip() for bug in names if str(bug).strip()}))
    unknown = [bug for bug in bugs if bug not in KNOWN_BUGS]
    if unknown:
        known = ", ".join(sorted(KNOWN_BUGS))
        raise ValueError(f"unknown bug switch {', '.join(unknown)}; known: {known}")
    return bugs


class RaftnodeTarget:
    name: ClassVar[str] = "raftnode"
    description: ClassVar[str] = "raftlab's own Raft KV store (the reference target)"
    options: ClassVar[Mapping[str, TargetOption]] = {
        "unsafe_bugs": TargetOption(
            "unsafe_bugs",
            (),
            "teaching bug switches on every node, comma-separated (raftlab node --unsafe "
            "--bug ...): the cluster may lose data or isolation on purpose",
            parse_bugs,
        ),
    }
    unsupported_faults: ClassVar[Mapping[str, str]] = {}
    nets: ClassVar[tuple[str, ...]] = ("proxy", "netns")  # --net: see nemesis/netns.py
    campaign_settings: ClassVar[frozenset[str]] = frozenset(
        {"heartbeat_ms", "election_timeout_ms", "unsafe_local_reads"}
    )

    # Spare nodes (raftlab test --spares): the member fault starts one as a brand-new
    # `raftlab node --join` and adds it through its hello router (campaign.cluster).
    supports_spares: ClassVar[bool] = True

    def ports_needed(self, node_count: int, spares: int = 0) -> int:
        return ports_needed(node_count, spares)

    def make_cluster(self, spec: ClusterSpec) -> LocalCluster:
        return LocalCluster(
            node_ids=spec.node_ids,
            base_port=spec.base_port,
            data_root=spec.data_root,
            log_dir=spec.log_dir,
            cluster_id=spec.cluster_id,
            node_seed=spec.node_seed,
            proxy_seed=spec.proxy_seed,
            heartbeat_ms=spec.heartbeat_ms,
            election_timeout_ms=spec.election_timeout_ms,
            unsafe_local_reads=spec.unsafe_local_reads,
            proxies=spec.proxies,
            bugs=spec.options.get("unsafe_bugs", ()),
            net=spec.net,
            spare_ids=spec.spare_ids,
        )
