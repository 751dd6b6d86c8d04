"""The node's outbound peer link (``NodeServer._pump_link`` / ``_run_link``) when the peer
goes away: the error ends that one connection and never leaves the link's nursery as an
ExceptionGroup (issue 9, defect 4).

The streams here are scripted stand-ins for a socket (this unit's test only): one whose
send fails as a reset peer's does while its receive still waits, which is the order of
events that crashed a leader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from raftnode.server import NodeConfig, NodeServer
from raftnode.wire import FrameStream


class ResetPeerStream(trio.abc.Stream):
    """A stream whose peer reset the connection: sends fail, receives wait forever."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.sent = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self.sent += 1
        raise self.error

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def server(tmp_path: Path) -> NodeServer:
    config = NodeConfig(
        node_id="n1",
        listen_host="127.0.0.1",
        listen_port=0,
        peers={"n2": ("127.0.0.1", 1)},
        data_dir=tmp_path,
    )
    return NodeServer(config, log=lambda line: None)


@pytest.mark.parametrize(
    "error",
    [
        trio.BrokenResourceError("socket connection broken: [Errno 104] Connection reset"),
        BrokenPipeError(32, "Broken pipe"),
        trio.ClosedResourceError("closed"),
    ],
)
async def test_a_send_to_a_dead_peer_ends_the_link_with_a_reason(
    tmp_path: Path, error: BaseException
) -> None:
    node = server(tmp_path)
    link = node.links["n2"]
    raw = ResetPeerStream(error)
    link.backlog += b"\x00\x00\x00\x01x" * 1000  # data queued for the peer
    link.wakeup.set()
    with trio.fail_after(5):
        reason = await node._pump_link(link, FrameStream(raw))
    assert raw.sent == 1
    assert type(error).__name__ in reason
    assert link.stream is None


async def test_the_link_task_redials_after_a_dead_peer_instead_of_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_run_link`` over a peer that completes the hello and then resets on the first
    send: it logs the loss and dials again, forever, without raising."""
    node = server(tmp_path)
    lines: list[str] = []
    node.log = lines.append
    dials = [0]

    class HelloThenReset(ResetPeerStream):
        def __init__(self) -> None:
            super().__init__(trio.BrokenResourceError("connection reset by peer"))
            self.answered = False

        async def send_all(self, data: bytes | bytearray | memoryview) -> None:
            if not self.answered:  # the hello goes through
                await trio.lowlevel.checkpoint()
                return
            await super().send_all(data)

        async def receive_some(self, max_bytes: int | None = None) -> bytes:
            if not self.answered:
                self.answered = True
                from raftnode.wire import encode_frame

                return encode_frame({"type": "hello_ok", "node": "n2"})
            return await super().receive_some(max_bytes)

    async def fake_open_tcp_stream(host: str, port: int, **kwargs: Any) -> trio.abc.Stream:
        dials[0] += 1
        node.links["n2"].backlog += b"\x00\x00\x00\x01x"
        node.links["n2"].wakeup.set()
        await trio.lowlevel.checkpoint()
        return HelloThenReset()

    monkeypatch.setattr(trio, "open_tcp_stream", fake_open_tcp_stream)
    with trio.move_on_after(1.0):
        await node._run_link(node.links["n2"])  # would raise an ExceptionGroup before
    assert dials[0] >= 2
    assert any("lost: BrokenResourceError" in line for line in lines)


def test_peer_links_heal_on_the_election_timescale(tmp_path: Path) -> None:
    """A dial that hangs and the back-off between dials stay near the election timeout, so
    a link redialled after a healed black hole catches up within a few of them."""
    config = NodeConfig(
        "n1",
        "127.0.0.1",
        0,
        {"n2": ("127.0.0.1", 1)},
        tmp_path,
        heartbeat_ms=50,
        election_timeout_ms=300,
    )
    fast = NodeServer(config, log=lambda line: None)
    assert fast.silent_link_seconds == pytest.approx(0.6)
    assert fast.dial_timeout == pytest.approx(0.6)
    assert fast.backoff_max == pytest.approx(0.15)
    slow = NodeServer(
        NodeConfig("n1", "127.0.0.1", 0, {}, tmp_path, election_timeout_ms=10_000),
        log=lambda line: None,
    )
    assert slow.dial_timeout == 5.0 and slow.backoff_max == 1.0
