"""The one seam between the nemesis and a cluster: the campaign implements it.

The nemesis knows no Raft internals and no target. It sees node ids, process handles, the
links' fault controls (a `LinkMesh`: raftnode's frame proxies `nemesis.proxy.ProxyMesh`,
or an HTTP target's byte-stream proxies `nemesis.http_peer.HttpPeerMesh`), where each node
listens (for clock requests, sent straight to the node), each node's data directory (for
disk faults), and a way to ask who leads (the campaign asks the target; ``None`` when no
node claims leadership or none answers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from nemesis.process import NodeProcess

Address = tuple[str, int]
Link = tuple[str, str]  # (source, destination): the direction messages flow


class LinkMesh(Protocol):
    """The fault controls of every directed peer link, whatever carries them."""

    @property
    def nodes(self) -> Mapping[str, Address]:
        """Where each node really listens (its host is used for clock requests)."""
        ...

    def apply_grudge(
        self, grudge: Mapping[str, set[str] | list[str] | tuple[str, ...]], *, mode: str = "drop"
    ) -> None:
        """Replace the partition: ``grudge[j]`` is the set of nodes whose traffic j never gets.

        ``mode`` is how the cut links fail (`nemesis.proxy.PARTITION_MODES`): ``drop`` or
        ``blackhole`` (nothing read or forwarded, so the sender's TCP backs off). A mesh
        that cannot do a mode raises ValueError naming the ones it can.
        """
        ...

    def links_touching(self, nodes: set[str] | list[str] | tuple[str, ...]) -> list[Link]: ...

    def set_loss(self, probability: float, links: list[Link] | None = None) -> None: ...

    def set_delay(
        self,
        delay: float,
        jitter: float = 0.0,
        *,
        reorder: bool = False,
        links: list[Link] | None = None,
    ) -> None: ...

    def set_cut(self, mode: str | None, links: list[Link] | None = None) -> None: ...

    def heal(self) -> None:
        """Every link passes again."""
        ...

    def describe(self) -> dict[str, object]:
        """The links that do not simply pass (for nemesis records)."""
        ...


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
    def mesh(self) -> LinkMesh:
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
