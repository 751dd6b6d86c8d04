"""raftnode.wire: frames, limits and validation on hostile input."""

from __future__ import annotations

import struct

import msgpack
import pytest
import trio
import trio.testing

from raftnode.wire import (
    FrameDecoder,
    FrameError,
    FrameStream,
    decode_body,
    encode_frame,
    hello_frame,
    optional_number,
    parse_hello,
    require_int,
    require_key,
    require_str,
)


def frame_of(obj: object) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def test_round_trip_keeps_types() -> None:
    obj = {"type": "request", "id": 7, "value": [1, "x", b"\x00\xff", None, 2.5, {"k": True}]}
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(obj)) == [obj]
    assert decoder.buffered == 0


def test_byte_by_byte_and_many_frames_in_one_chunk() -> None:
    frames = [{"type": "a", "n": i} for i in range(5)]
    data = b"".join(encode_frame(f) for f in frames)
    decoder = FrameDecoder()
    out: list[dict[str, object]] = []
    for i in range(len(data)):
        out.extend(decoder.feed(data[i : i + 1]))
    assert out == frames
    assert FrameDecoder().feed(data) == frames


def test_oversized_length_is_refused_before_the_body_arrives() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    with pytest.raises(FrameError) as info:
        decoder.feed(struct.pack(">I", 1025))
    assert info.value.code == "too_large"
    assert "1025" in info.value.reason


def test_encode_refuses_oversized_frames() -> None:
    with pytest.raises(FrameError) as info:
        encode_frame({"type": "x", "blob": b"x" * 2000}, max_frame_bytes=1000)
    assert info.value.code == "too_large"


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1",  # never-used msgpack byte
        b"\x92\x01",  # array announcing two items, holding one
        b"\x81\xa4type\xa1x\x00",  # trailing byte after the map
        b"\xd4\x01\x00",  # ext type
        b"\xa2\xff\xfe",  # invalid UTF-8 str
    ],
)
def test_garbage_bodies_are_malformed(payload: bytes) -> None:
    with pytest.raises(FrameError) as info:
        FrameDecoder().feed(struct.pack(">I", len(payload)) + payload)
    assert info.value.code == "malformed"


@pytest.mark.parametrize(
    "obj, why",
    [
        ([1, 2, 3], "map"),
        ("hello", "map"),
        ({"kind": "hello"}, "type"),
        ({"type": 5}, "type"),
        ({"type": ""}, "type"),
    ],
)
def test_wrong_shapes_are_malformed(obj: object, why: str) -> None:
    with pytest.raises(FrameError) as info:
        FrameDecoder().feed(frame_of(obj))
    assert why in info.value.reason


def test_non_string_map_keys_and_zero_length() -> None:
    with pytest.raises(FrameError):
        FrameDecoder().feed(frame_of({1: "x", "type": "a"}))
    with pytest.raises(FrameError):
        FrameDecoder().feed(struct.pack(">I", 0))


def test_container_limits_hold_for_hostile_lengths() -> None:
    # A 5-byte body announcing an array of 2**32-1 elements must not allocate them.
    body = b"\xdd\xff\xff\xff\xff"
    with pytest.raises(FrameError):
        decode_body(body, 1024)


def test_truncated_stream_is_reported_at_eof() -> None:
    decoder = FrameDecoder()
    data = encode_frame({"type": "x", "v": "abc"})
    assert decoder.feed(data[:-2]) == []
    with pytest.raises(FrameError) as info:
        decoder.check_eof()
    assert info.value.code == "truncated"


def test_validators() -> None:
    frame = {"type": "request", "s": "x", "e": "", "i": 3, "b": True, "n": -1, "f": 1.5}
    assert require_str(frame, "s") == "x"
    assert require_str(frame, "e", allow_empty=True) == ""
    with pytest.raises(FrameError, match="'e'"):
        require_str(frame, "e")
    assert require_int(frame, "i") == 3
    with pytest.raises(FrameError):
        require_int(frame, "b")  # bool is not an int here
    with pytest.raises(FrameError):
        require_int(frame, "n")
    assert require_int(frame, "n", minimum=None) == -1
    assert optional_number(frame, "f") == 1.5
    assert optional_number(frame, "missing") is None
    with pytest.raises(FrameError):
        optional_number({"x": float("nan")}, "x")
    assert require_key(frame, "s") == "x"
    with pytest.raises(FrameError):
        require_key({"k": [1]}, "k")
    with pytest.raises(FrameError):
        require_key({}, "k")


def test_hello_parsing() -> None:
    hello = parse_hello(hello_frame("c1", "n2", "peer"))
    assert (hello.cluster, hello.sender, hello.role) == ("c1", "n2", "peer")
    with pytest.raises(FrameError, match="first frame"):
        parse_hello({"type": "request"})
    with pytest.raises(FrameError, match="role"):
        parse_hello({"type": "hello", "cluster": "c", "from": "x", "role": "king"})
    with pytest.raises(FrameError, match="cluster"):
        parse_hello({"type": "hello", "from": "x", "role": "peer"})


async def test_frame_stream_over_a_memory_pipe() -> None:
    left, right = trio.testing.memory_stream_pair()
    sender, receiver = FrameStream(left), FrameStream(right)
    await sender.send_many([{"type": "a", "n": 1}, {"type": "a", "n": 2}])
    await sender.send({"type": "b"})
    assert await receiver.receive() == {"type": "a", "n": 1}
    batch = await receiver.receive_batch()
    assert batch[0] == {"type": "a", "n": 2}
    if len(batch) == 1:
        batch += await receiver.receive_batch()
    assert batch[-1] == {"type": "b"}
    await sender.aclose()
    assert await receiver.receive() is None


async def test_frame_stream_reports_truncation() -> None:
    left, right = trio.testing.memory_stream_pair()
    receiver = FrameStream(right)
    await left.send_all(encode_frame({"type": "x"})[:-1])
    await left.aclose()
    with pytest.raises(FrameError) as info:
        await receiver.receive()
    assert info.value.code == "truncated"


def test_good_frames_before_an_error_are_delivered_first() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    data = encode_frame({"type": "hello"}) + struct.pack(">I", 4096)
    assert decoder.feed(data) == [{"type": "hello"}]
    with pytest.raises(FrameError) as info:
        decoder.feed(b"")
    assert info.value.code == "too_large"


async def _socket_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    left, right = trio.socket.socketpair()
    return trio.SocketStream(left), trio.SocketStream(right)


async def test_write_nowait_writes_what_the_socket_takes_and_never_after_close() -> None:
    left, right = await _socket_pair()
    sender, receiver = FrameStream(left), FrameStream(right)
    data = encode_frame({"type": "a", "n": 1})
    assert sender.write_nowait(data) == len(data)  # room in the buffer: all of it, now
    assert await receiver.receive() == {"type": "a", "n": 1}
    # A full socket takes part or nothing; nothing blocks.
    chunk = b"x" * 65536
    taken = [sender.write_nowait(chunk) for _ in range(200)]
    assert taken[-1] == 0 and sum(taken) < 200 * len(chunk)
    await left.aclose()
    assert sender.write_nowait(data) == 0  # closed: no write to a recycled descriptor
    await right.aclose()


async def test_replies_the_socket_does_not_take_follow_in_order() -> None:
    """ResponseWriter writes at once while the socket takes it, keeps the rest in a
    backlog for its task, and queues later replies behind it: the client sees them all
    in order even when it stops reading for a while."""
    from raftnode.server import ResponseWriter

    left, right = await _socket_pair()
    broken: list[bool] = []
    writer = ResponseWriter(FrameStream(left), lambda: broken.append(True))
    big = "v" * 4000
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        for number in range(400):  # ~1.6 MB: far more than the socket buffers hold
            writer.put({"type": "response", "id": number, "value": big})
        assert writer.busy  # the socket filled up: the rest waits for the writer task
        receiver = FrameStream(right)
        seen = [(await receiver.receive())["id"] for _ in range(400)]
        assert seen == list(range(400))
        with trio.fail_after(5):
            while writer.busy:
                await trio.sleep(0.001)
        nursery.cancel_scope.cancel()
    assert not broken
    await left.aclose()
    await right.aclose()


async def test_peer_messages_keep_their_order_through_a_full_socket() -> None:
    from raftnode.messages import Message, MessageType
    from raftnode.server import PeerLink, PeerTransport

    left, right = await _socket_pair()
    stream = FrameStream(left)
    link = PeerLink("n2", ("127.0.0.1", 1), connected=True, stream=stream)
    transport = PeerTransport(
        {"n2": link},
        lambda msg: encode_frame({"type": "raft", "n": msg.leader_commit, "pad": "p" * 4000}),
    )

    async def pump() -> None:  # the part of NodeServer._pump_link that drains the link
        while True:
            await link.wakeup.wait()
            link.wakeup = trio.Event()
            data = bytes(link.backlog) + b"".join(map(transport.encode, link.queue))
            link.backlog.clear()
            link.queue.clear()
            await stream.send_raw(data)

    def message(number: int) -> Message:
        return Message(MessageType.APPEND, 1, "n1", "n2", leader_commit=number)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump)
        for number in range(1, 301):
            transport.send([message(number)])
        assert link.backlog or link.queue or stream.sending
        receiver = FrameStream(right)
        seen = [(await receiver.receive())["n"] for _ in range(300)]
        assert seen == list(range(1, 301))
        nursery.cancel_scope.cancel()
    await left.aclose()
    await right.aclose()
