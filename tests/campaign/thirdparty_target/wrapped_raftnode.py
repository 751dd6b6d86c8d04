"""A third-party target, as another package would ship it: raftnode's nodes, wrapped.

It is registered only through the entry-point group ``raftlab.targets`` (the test writes
a dist-info with ``wrapped = wrapped_raftnode:WrappedRaftnode``), never imported by raftlab
itself. It takes one option of its own and refuses one fault, to show both paths.
"""

from __future__ import annotations

from campaign.cluster import LocalCluster, ports_needed
from campaign.targets.base import ClusterSpec, TargetOption, parse_positive_float


class WrappedRaftnode:
    name = "wrapped"
    description = "raftnode under another name (the entry-point test)"
    options = {
        "election_ms": TargetOption("election_ms", 300.0, "election timeout", parse_positive_float)
    }
    unsupported_faults = {
        "disk": "this wrapper keeps its data somewhere the disk faults cannot see"
    }
    campaign_settings = frozenset()

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
            heartbeat_ms=spec.options["election_ms"] / 10,
            election_timeout_ms=spec.options["election_ms"],
        )
