"""RaftClient against scripted fake nodes (real TCP on loopback, in-process)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from raftnode.client import ClientError, RaftClient, parse_cluster
from raftnode.wire import FrameStream

Behaviour = Callable[[dict[str, Any]], Any]  # reply fields | "close" | "hang"


class FakeNode:
    def __init__(self, node_id: str, behaviour: Behaviour, hello_reply: dict[str, Any] | None):
        self.node_id = node_id
        self.behaviour = behaviour
        self.hello_reply = hello_reply or {"type": "hello_ok", "node": node_id}
        self.requests: list[dict[str, Any]] = []
        self.port = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        frames = FrameStream(stream)
        try:
            hello = await frames.receive()
            assert hello is not None and hello["type"] == "hello"
            await frames.send(self.hello_reply)
            if self.hello_reply["type"] != "hello_ok":
                return
            while True:
                frame = await frames.receive()
                if frame is None:
                    return
                self.requests.append(frame)
                action = self.behaviour(frame)
                if action == "close":
                    return
                if action == "hang":
                    continue
                await frames.send({"type": "response", "id": frame["id"], **action})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()


@asynccontextmanager
async def fake_cluster(
    behaviours: dict[str, Behaviour], hello_reply: dict[str, Any] | None = None
) -> AsyncIterator[tuple[dict[str, tuple[str, int]], dict[str, FakeNode]]]:
    async with trio.open_nursery() as nursery:
        nodes = {n: FakeNode(n, b, hello_reply) for n, b in behaviours.items()}
        for node in nodes.values():
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, node.handle, 0, host="127.0.0.1")
            )
            node.port = listeners[0].socket.getsockname()[1]
        yield {n: ("127.0.0.1", node.port) for n, node in nodes.items()}, nodes
        nursery.cancel_scope.cancel()


def ok(value: Any = None) -> Behaviour:
    return lambda frame: {"ok": True, "value": value}


def not_leader(hint: str | None) -> Behaviour:
    return lambda frame: {
        "ok": False,
        "error": "not_leader" if hint else "no_leader",
        "leader": hint,
    }


def writes(node: FakeNode) -> list[tuple[str, int]]:
    return [(r["client"], r["seq"]) for r in node.requests if "seq" in r]


async def test_follows_leader_hints_with_the_same_client_and_seq() -> None:
    async with fake_cluster({"n1": not_leader("n2"), "n2": ok()}) as (cluster, nodes):
        async with RaftClient(cluster, "cli", node="n1") as client:
            assert await client.put("k", 1) is None
            assert client.last_node == "n2"
            assert await client.put("k", 2) is None  # goes straight to the known leader
        assert writes(nodes["n1"]) == [("cli", 1)]
        assert writes(nodes["n2"]) == [("cli", 1), ("cli", 2)]


class SleepRecordingClient(RaftClient):
    def __init__(self, *args: Any, events: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events = events

    async def _sleep(self, seconds: float) -> None:
        self.events.append("sleep")
        await super()._sleep(seconds)


async def test_a_new_leaders_name_is_followed_at_once_even_after_back_offs() -> None:
    """After a leader's crash the client backs off between leaderless answers; the first
    node that names the new leader (n3, elected once n1 has answered three times) sends
    it there at once, not after one more back-off."""
    events: list[str] = []

    def elected() -> bool:
        return events.count("n1") > 3

    def behaviour(node: str) -> Behaviour:
        def answer(frame: dict[str, Any]) -> Any:
            events.append(node)
            if node == "n3" and elected():
                return {"ok": True, "value": None}
            if node == "n1" and elected():
                return {"ok": False, "error": "not_leader", "leader": "n3"}
            return {"ok": False, "error": "no_leader", "leader": None}

        return answer

    async with fake_cluster({n: behaviour(n) for n in ("n1", "n2", "n3")}) as (cluster, _):
        async with SleepRecordingClient(cluster, "cli", timeout=30.0, events=events) as client:
            assert await client.put("k", 1) is None
    assert events.count("sleep") >= 2  # it did back off while no node knew a leader
    hint = max(i for i, e in enumerate(events) if e == "n1")
    assert events[hint + 1 :] == ["n3"], events  # then straight to the named leader


async def test_hints_naming_each_other_in_a_ring_back_off_instead_of_spinning() -> None:
    events: list[str] = []
    behaviours = {"n1": not_leader("n2"), "n2": not_leader("n1")}
    async with fake_cluster(behaviours) as (cluster, nodes):
        async with SleepRecordingClient(
            cluster, "cli", timeout=30.0, max_attempts=12, events=events
        ) as client:
            with pytest.raises(ClientError) as info:
                await client.put("k", 1)
    assert info.value.code == "not_leader" and info.value.definite is True
    assert events.count("sleep") >= 3


async def test_retry_after_a_lost_connection_reuses_the_seq() -> None:
    async with fake_cluster({"n1": lambda f: "close", "n2": ok("done")}) as (cluster, nodes):
        async with RaftClient(cluster, "cli", node="n1") as client:
            assert await client.append("k", 1) == "done"
        assert writes(nodes["n1"]) == writes(nodes["n2"]) == [("cli", 1)]


async def test_not_leader_after_a_possibly_delivered_attempt_is_not_definite() -> None:
    behaviours = {"n1": lambda f: "close", "n2": not_leader("n1")}
    async with fake_cluster(behaviours) as (cluster, nodes):
        async with RaftClient(cluster, "cli", node="n1", timeout=0.5, max_attempts=4) as client:
            with pytest.raises(ClientError) as info:
                await client.put("k", 1)
        assert info.value.definite is False
        # Every attempt carried the same (client, seq).
        assert set(writes(nodes["n1"]) + writes(nodes["n2"])) == {("cli", 1)}


async def test_reads_never_carry_sessions_and_definite_errors_stop_retries() -> None:
    behaviours = {"n1": lambda f: {"ok": False, "error": "cas_mismatch"}}
    async with fake_cluster(behaviours) as (cluster, nodes):
        async with RaftClient(cluster, "cli") as client:
            with pytest.raises(ClientError) as info:
                await client.cas("k", 1, 2)
            assert (info.value.code, info.value.definite) == ("cas_mismatch", True)
            with pytest.raises(ClientError):
                await client.get("k")
        assert len(nodes["n1"].requests) == 2
        assert "seq" not in nodes["n1"].requests[1]


async def test_no_leader_everywhere_is_definite() -> None:
    behaviours = {"n1": not_leader(None), "n2": not_leader(None)}
    async with fake_cluster(behaviours) as (cluster, nodes):
        # A bound on attempts, not on time: a deadline that expires while an attempt is in
        # flight rightly makes the outcome unknown, and a loaded machine may hit it.
        async with RaftClient(cluster, "cli", timeout=30.0, max_attempts=4) as client:
            with pytest.raises(ClientError) as info:
                await client.put("k", 1)
        assert info.value.definite is True
        assert info.value.code == "no_leader"
        assert len(nodes["n1"].requests) + len(nodes["n2"].requests) == 4  # it kept trying


async def test_unreachable_cluster_is_definite_and_timeout_is_not() -> None:
    async with fake_cluster({"n1": ok()}) as (cluster, _):
        dead_port = cluster["n1"][1]
    async with RaftClient({"n1": ("127.0.0.1", dead_port)}, timeout=0.3) as client:
        with pytest.raises(ClientError) as info:
            await client.put("k", 1)
    assert (info.value.code, info.value.definite) == ("unavailable", True)

    async with fake_cluster({"n1": lambda f: "hang"}) as (cluster, _):
        async with RaftClient(cluster, timeout=1.0, connect_timeout=1.0) as client:
            with pytest.raises(ClientError) as info:
                await client.put("k", 1)
    assert (info.value.code, info.value.definite) == ("timeout", False)


async def test_cluster_mismatch_is_refused_without_sending() -> None:
    refusal = {"type": "error", "error": "cluster_mismatch"}
    async with fake_cluster({"n1": ok()}, hello_reply=refusal) as (cluster, nodes):
        async with RaftClient(cluster, timeout=0.2, cluster_id="other") as client:
            with pytest.raises(ClientError) as info:
                await client.put("k", 1)
        assert info.value.definite is True
        assert nodes["n1"].requests == []


async def test_concurrent_writes_use_separate_sessions() -> None:
    async with fake_cluster({"n1": ok()}) as (cluster, nodes):
        async with RaftClient(cluster, "p7") as client:
            async with trio.open_nursery() as nursery:
                for i in range(4):
                    nursery.start_soon(client.put, f"k{i}", i)
            await client.put("k", "after")
        seen = writes(nodes["n1"])
        assert sorted(seen[:4]) == [("p7", 1), ("p7.1", 1), ("p7.2", 1), ("p7.3", 1)]
        assert seen[4][1] == 2  # a released session continues its own sequence


def test_parse_cluster() -> None:
    assert parse_cluster("n1=127.0.0.1:7001, n2=localhost:7002") == {
        "n1": ("127.0.0.1", 7001),
        "n2": ("localhost", 7002),
    }
    for bad in ("", "n1", "n1=host", "n1=h:x", "n1=h:1,n1=h:2", "n1=h:70000"):
        with pytest.raises(ValueError):
            parse_cluster(bad)


async def test_a_hint_to_a_node_outside_the_clients_map_is_still_reported() -> None:
    # Issue 12: a client given only a follower got `not_leader` with `"leader": null`
    # although the follower named its leader: the hint must reach the caller.
    async with fake_cluster({"n1": not_leader("n2")}) as (cluster, nodes):
        async with RaftClient(cluster, "cli", timeout=30.0, max_attempts=3) as client:
            with pytest.raises(ClientError) as info:
                await client.put("k", 1)
        assert (info.value.code, info.value.definite) == ("not_leader", True)
        assert info.value.leader == "n2"
        assert info.value.to_dict()["leader"] == "n2"
        assert len(nodes["n1"].requests) == 3  # it cannot follow the hint: it retries n1


async def test_an_error_inside_async_with_comes_out_as_raised() -> None:
    # The client's nursery must not wrap the caller's own exception in an ExceptionGroup.
    async with fake_cluster({"n1": lambda f: {"ok": False, "error": "cas_mismatch"}}) as (
        cluster,
        _,
    ):
        with pytest.raises(ClientError) as info:
            async with RaftClient(cluster, "cli") as client:
                await client.cas("k", 1, 2)
        assert info.value.code == "cas_mismatch"
        with pytest.raises(KeyError):
            async with RaftClient(cluster, "cli"):
                raise KeyError("mine")
