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
