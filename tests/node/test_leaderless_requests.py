"""A client request that reaches a node knowing no leader (an election under way after
the leader died) waits there, a heartbeat at most, for a leader to be known
(``NodeServer._answer_or_park``): then it is started again (``not_leader`` naming the
new leader, or proposed if this node won); if none is known by then it is answered
``no_leader``, as before. In-process: one NodeServer whose peers never answer, its
driver fed by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from raftnode.messages import Message, MessageType
from raftnode.server import NodeConfig, NodeServer


class Writer:
    """Stands in for the connection's ResponseWriter: collects the replies."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def put(self, frame: dict[str, Any], *, last: bool = True) -> None:
        self.frames.append(frame)


def lone_node(tmp_path: Path, heartbeat_ms: float = 100.0) -> NodeServer:
    config = NodeConfig(
        node_id="n1",
        listen_host="127.0.0.1",
        listen_port=0,
        peers={"n2": ("127.0.0.1", 1), "n3": ("127.0.0.1", 1)},
        data_dir=tmp_path,
        heartbeat_ms=heartbeat_ms,
        election_timeout_ms=10 * heartbeat_ms,
    )
    node = NodeServer(config, log=lambda line: None)
    node.prepare()
    return node


def put_frame(request_id: int) -> dict[str, Any]:
    return {
        "type": "request",
        "id": request_id,
        "op": "put",
        "key": "k",
        "value": "v",
        "client": "c1",
        "seq": request_id,
    }


async def test_a_request_waits_for_a_leader_and_is_then_sent_to_it(tmp_path: Path) -> None:
    node = lone_node(tmp_path)
    assert node.driver is not None and node.driver.core.leader is None
    writer, in_flight = Writer(), [0]
    async with trio.open_nursery() as nursery:
        node._nursery = nursery
        node._client_frames([put_frame(1)], writer, in_flight, "client")  # type: ignore[arg-type]
        assert writer.frames == [] and len(node._parked) == 1  # no no_leader at once
        # n2 wins the election and its first append reaches us: the parked request is
        # started again and answered with the new leader's name.
        append = Message(MessageType.APPEND, term=1, src="n2", dst="n1")
        with node.driver.batch():
            node.driver.receive(append)
        assert writer.frames == [
            {"type": "response", "id": 1, "ok": False, "error": "not_leader", "leader": "n2"}
        ]
        assert node._parked == [] and in_flight == [0]
        nursery.cancel_scope.cancel()


async def test_with_no_leader_known_within_a_heartbeat_it_is_answered_no_leader(
    tmp_path: Path,
) -> None:
    node = lone_node(tmp_path, heartbeat_ms=20.0)
    writer, in_flight = Writer(), [0]
    async with trio.open_nursery() as nursery:
        node._nursery = nursery
        started = trio.current_time()
        node._client_frames([put_frame(1), put_frame(2)], writer, in_flight, "client")  # type: ignore[arg-type]
        assert writer.frames == []
        with trio.fail_after(5):
            while len(writer.frames) < 2:
                await trio.sleep(0.005)
        assert trio.current_time() - started >= 0.02
        assert [(f["id"], f["error"], f["leader"]) for f in writer.frames] == [
            (1, "no_leader", None),
            (2, "no_leader", None),
        ]
        assert node._parked == [] and in_flight == [0]
        nursery.cancel_scope.cancel()


async def test_a_node_that_knows_the_leader_answers_at_once(tmp_path: Path) -> None:
    node = lone_node(tmp_path)
    assert node.driver is not None
    with node.driver.batch():
        node.driver.receive(Message(MessageType.APPEND, term=1, src="n3", dst="n1"))
    writer, in_flight = Writer(), [0]
    node._client_frames([put_frame(1)], writer, in_flight, "client")  # type: ignore[arg-type]
    assert writer.frames == [
        {"type": "response", "id": 1, "ok": False, "error": "not_leader", "leader": "n3"}
    ]
    assert node._parked == []
