"""The one seam between the nemesis and a cluster: the campaign implements it.

The nemesis knows no Raft internals. It sees node ids, process handles, the proxy mesh,
where each node listens (for clock requests, sent straight to the node), each node's data
directory (for disk faults), and a way to ask who leads (the campaign sends status
requests; ``None`` when no node claims leadership or none answers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from nemesis.process import NodeProcess
from nemesis.proxy import ProxyMesh


class ClusterControl(Protocol):
    @property
    def node_ids(self) -> Sequence[str]:
        """Every node's id, in a stable order."""
        ...

    @property
    def processes(self) -> Mapping[str, NodeProcess]:
        """The process of each node."""
        ...

    @property
    def mesh(self) -> ProxyMesh:
        """The proxies of every directed peer link."""
        ...

    @property
    def cluster_id(self) -> str:
        """The id nodes expect in a hello (admin requests carry it)."""
        ...

    async def current_leader(self) -> str | None:
        """The node that leads now, as its peers report it; None if unknown."""
        ...

    def node_port(self, node_id: str) -> int:
        """The port a node really listens on (its host is ``mesh.nodes[node_id][0]``)."""
        ...

    def data_dir(self, node_id: str) -> Path:
        """The node's data directory (its WAL lives under it)."""
        ...
