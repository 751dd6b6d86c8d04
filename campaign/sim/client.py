"""The simulation's client: raftnode's own ``RaftClient`` (leader hints, retries with the
same (client id, seq), definite versus unknown outcomes), with its TCP connections
replaced by the simulated network.

Only the transport differs from a real run, so the exactly-once logic under test is the
real one: a ``no-dedup`` node applies the client's genuine retries twice.
"""

from __future__ import annotations

import itertools
from typing import Any

import trio

from campaign.sim.cluster import CLIENT_PREFIX, ClientReply, ClientRequest, SimCluster
from raftnode.client import RaftClient, _ConnectFailed, _Lost


class SimClient(RaftClient):
    _addresses = itertools.count(1)

    def __init__(self, cluster: SimCluster, client_id: str, *, timeout: float, seed: int) -> None:
        super().__init__(
            {node_id: ("sim", 0) for node_id in cluster.all_ids},
            client_id,
            timeout=timeout,
            seed=seed,
        )
        self.sim = cluster
        self.address = f"{CLIENT_PREFIX}{client_id}#{next(self._addresses)}"
        self._waiting: dict[int, tuple[trio.Event, list[ClientReply]]] = {}
        self._sim_request_ids = itertools.count(1)

    async def __aenter__(self) -> SimClient:
        self.sim.network.attach(self.address, self._on_reply)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.sim.network.detach(self.address)
        for event, _ in self._waiting.values():
            event.set()
        self._waiting.clear()

    async def aclose(self) -> None:
        self.sim.network.detach(self.address)

    def _on_reply(self, src: str, payload: Any) -> None:
        if isinstance(payload, ClientReply):
            waiting = self._waiting.get(payload.request_id)
            if waiting is not None:
                waiting[1].append(payload)
                waiting[0].set()

    async def _send_to(self, node: str, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
        sim_node = self.sim.nodes[node]
        if not sim_node.running and not sim_node.paused:
            # A dead process: the connection is refused at once, nothing was sent. No
            # checkpoint: a refusal takes no simulated time, and the client's own backoff
            # (after one round of the cluster) is where it waits.
            raise _ConnectFailed(f"{node} is down")
        request_id = next(self._sim_request_ids)
        event = trio.Event()
        box: list[ClientReply] = []
        self._waiting[request_id] = (event, box)
        network = self.sim.network
        # The timeout is a timer on the network's heap, not a Trio deadline (whose expiry
        # is a cancellation: the costliest thing in a simulated round). Same effect.
        timed_out: list[bool] = []

        def expire() -> None:
            if not event.is_set():
                timed_out.append(True)
                event.set()

        try:
            network.send(
                self.address,
                node,
                ClientRequest(dict(frame), self.address, request_id),
                partitionable=False,
            )
            network.call_at(trio.current_time() + max(timeout, 0.0), expire)
            await event.wait()
        finally:
            self._waiting.pop(request_id, None)
        if timed_out:
            raise trio.TooSlowError
        if not box or box[0].reply is None:
            raise _Lost(True, f"connection to {node} lost")
        return box[0].reply

    async def _sleep(self, seconds: float) -> None:
        await self.sim.network.sleep_until(trio.current_time() + seconds)
