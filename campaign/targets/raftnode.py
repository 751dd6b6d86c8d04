"""raftnode, the reference target: `raftlab node` processes behind the frame proxies.

Everything raftnode-specific lives in `campaign.cluster.LocalCluster` (its command lines,
status requests and `RaftClient` factory); this file is its registration as a target.
raftnode takes every fault: its admin port takes clock requests and its WAL layout is
what the disk faults damage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from campaign.cluster import LocalCluster, ports_needed
from campaign.targets.base import ClusterSpec, TargetOption


class RaftnodeTarget:
    name: ClassVar[str] = "raftnode"
    description: ClassVar[str] = "raftlab's own Raft KV store (the reference target)"
    options: ClassVar[Mapping[str, TargetOption]] = {}
    unsupported_faults: ClassVar[Mapping[str, str]] = {}
    campaign_settings: ClassVar[frozenset[str]] = frozenset(
        {"heartbeat_ms", "election_timeout_ms", "unsafe_local_reads"}
    )

    def ports_needed(self, node_count: int) -> int:
        return ports_needed(node_count)

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
        )
