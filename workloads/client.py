"""The client seam of the workloads: what a workload calls, whoever answers.

`raftnode.client.RaftClient` (real TCP to node processes) and the simulation's in-process
client both satisfy these protocols structurally, so one runner and one set of workloads
drive either. Parameters are positional-only so that implementations may name them as
they like (`cas(key, from_value, to_value)` or `cas(key, expected, new)`).

Errors: a client raises an exception carrying ``code`` (a conventions §3 code such as
``not_leader`` or ``timeout``) and ``definite`` (True when the operation certainly did
not take effect). `workloads.outcome` maps those onto ``fail`` / ``info``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable


@runtime_checkable
class ClientErrorLike(Protocol):
    """What the workloads read from a client's error (`raftnode.client.ClientError`)."""

    code: str
    definite: bool


class KVClient(Protocol):
    """The key-value operations of ARCHITECTURE.md "Client" that the workloads use.

    Each returns the reply's value on success and raises a `ClientErrorLike` exception
    on failure. ``last_node`` (optional) names the node that answered, recorded as the
    op's ``node``.
    """

    async def get(self, key: str, /) -> Any: ...

    async def put(self, key: str, value: Any, /) -> Any: ...

    async def cas(self, key: str, expected: Any, new: Any, /) -> Any: ...

    async def append(self, key: str, value: Any, /) -> Any: ...

    async def transfer(self, from_key: str, to_key: str, amount: int, /) -> Any: ...

    async def mget(self, keys: list[str], /) -> Any: ...

    async def txn(self, ops: list[Any], /) -> Any:
        """Micro-ops ``[f, k, v]`` applied atomically; returns them with reads filled
        (the list-append and rw-register workloads)."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> Any: ...


class ClientFactory(Protocol):
    """Makes the client of one process.

    ``client_id`` is unique per process (a new one after every retired process), so the
    KV's exactly-once sessions (§6.3) never mix two processes. ``node`` is the process's
    home node (processes are spread over the nodes round-robin, as in Jepsen); a client
    may start there and follow leader hints.
    """

    def __call__(self, *, process: int, client_id: str, node: str | None) -> KVClient: ...


def answering_node(client: object) -> str | None:
    """The node that answered the last request, when the client knows it."""
    node = getattr(client, "last_node", None)
    return node if isinstance(node, str) else None
