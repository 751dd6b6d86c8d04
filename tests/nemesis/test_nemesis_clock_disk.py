"""Clock faults against a fake admin endpoint; disk faults on temporary WAL files."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
from nemesis_helpers import FakeAdminNode, free_port

from nemesis.clock import ClockFaultError, ClockSetting, bump, reset, set_clock, strobe
from nemesis.disk import DiskFaultError, flip_byte, newest_segment, truncate_tail

CLUSTER = "test-cluster"


async def test_set_clock_sends_the_admin_hello_and_request() -> None:
    node = FakeAdminNode(free_port())
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        reply = await set_clock(
            "127.0.0.1", node.port, cluster_id=CLUSTER, setting=ClockSetting(offset=-2.5, rate=2.0)
        )
        nursery.cancel_scope.cancel()
    assert reply["ok"] is True
    assert node.hellos == [
        {"type": "hello", "cluster": CLUSTER, "from": "nemesis", "role": "admin"}
    ]
    (request,) = node.clock
    assert request["type"] == "admin" and request["action"] == "clock"
    assert (request["offset"], request["rate"]) == (-2.5, 2.0)
    assert request["id"] == reply["id"]


async def test_bump_and_reset_set_absolute_settings() -> None:
    node = FakeAdminNode(free_port())
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await bump("127.0.0.1", node.port, cluster_id=CLUSTER, offset=30.0)
        await reset("127.0.0.1", node.port, cluster_id=CLUSTER)
        nursery.cancel_scope.cancel()
    assert [(r["offset"], r["rate"]) for r in node.clock] == [(30.0, 1.0), (0.0, 1.0)]


@pytest.mark.parametrize(
    ("mode", "message"),
    [("refuse", "refused the clock request"), ("mismatch", "refused the admin hello")],
)
async def test_refusals_are_clear_errors(mode: str, message: str) -> None:
    node = FakeAdminNode(free_port(), mode=mode)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        with pytest.raises(ClockFaultError, match=message):
            await set_clock("127.0.0.1", node.port, cluster_id=CLUSTER, setting=ClockSetting())
        nursery.cancel_scope.cancel()


async def test_silent_or_absent_nodes_are_clear_errors() -> None:
    with pytest.raises(ClockFaultError, match="cannot reach"):
        await set_clock("127.0.0.1", free_port(), cluster_id=CLUSTER, setting=ClockSetting())
    node = FakeAdminNode(free_port(), mode="silent")
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        with pytest.raises(ClockFaultError, match="did not answer"):
            await set_clock(
                "127.0.0.1", node.port, cluster_id=CLUSTER, setting=ClockSetting(), timeout=0.2
            )
        nursery.cancel_scope.cancel()


async def test_bad_settings_are_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        await set_clock("127.0.0.1", 1, cluster_id=CLUSTER, setting=ClockSetting(rate=0.0))
    with pytest.raises(ValueError, match="finite"):
        await set_clock(
            "127.0.0.1", 1, cluster_id=CLUSTER, setting=ClockSetting(offset=float("nan"))
        )


async def test_strobe_alternates_and_ends_reset() -> None:
    node = FakeAdminNode(free_port())
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        flips = await strobe(
            "127.0.0.1", node.port, cluster_id=CLUSTER, delta=5.0, period=0.02, duration=0.2
        )
        nursery.cancel_scope.cancel()
    offsets = [request["offset"] for request in node.clock]
    assert flips >= 1
    assert len(offsets) == flips + 1
    assert offsets[:-1] == [5.0 if i % 2 == 0 else 0.0 for i in range(flips)]
    assert offsets[-1] == 0.0 and node.clock[-1]["rate"] == 1.0


# -- disk ------------------------------------------------------------------------------


def make_wal(tmp_path: Path) -> Path:
    wal = tmp_path / "wal"
    wal.mkdir()
    (wal / "00000001.seg").write_bytes(b"A" * 100)
    (wal / "00000002.seg").write_bytes(bytes(range(200)))
    (wal / "notes.txt").write_bytes(b"not a segment")
    return wal / "00000002.seg"


def test_newest_segment_is_the_lexicographically_last(tmp_path: Path) -> None:
    newest = make_wal(tmp_path)
    assert newest_segment(tmp_path) == newest
    assert newest_segment(tmp_path, "wal/*.txt").name == "notes.txt"
    with pytest.raises(DiskFaultError, match="no WAL segment"):
        newest_segment(tmp_path / "elsewhere")


def test_truncate_tail_removes_the_last_bytes_and_records_them(tmp_path: Path) -> None:
    newest = make_wal(tmp_path)
    damage = truncate_tail(tmp_path, 7)
    assert newest.read_bytes() == bytes(range(193))
    assert (tmp_path / "wal" / "00000001.seg").read_bytes() == b"A" * 100
    assert damage.action == "truncate" and damage.file == str(newest)
    assert (damage.offset, damage.length, damage.size_before, damage.size_after) == (
        193,
        7,
        200,
        193,
    )
    assert damage.before_hex == bytes(range(193, 200)).hex()
    # More than the file holds empties it; then there is nothing left to truncate.
    assert truncate_tail(tmp_path, 10_000).length == 193
    with pytest.raises(DiskFaultError, match="empty"):
        truncate_tail(tmp_path, 1)
    with pytest.raises(DiskFaultError, match="positive"):
        truncate_tail(tmp_path, 0)


def test_flip_byte_inverts_one_byte_at_a_seeded_offset(tmp_path: Path) -> None:
    newest = make_wal(tmp_path)
    original = newest.read_bytes()
    damage = flip_byte(tmp_path, random.Random(5))
    expected_offset = random.Random(5).randrange(200)
    assert damage.offset == expected_offset
    changed = newest.read_bytes()
    differences = [i for i in range(200) if changed[i] != original[i]]
    assert differences == [expected_offset]
    assert changed[expected_offset] == original[expected_offset] ^ 0xFF
    assert (damage.before_hex, damage.after_hex) == (
        bytes([original[expected_offset]]).hex(),
        bytes([changed[expected_offset]]).hex(),
    )
    # Flipping the same byte again restores the file.
    flip_byte(tmp_path, random.Random(0), offset=expected_offset)
    assert newest.read_bytes() == original
    with pytest.raises(DiskFaultError, match="outside"):
        flip_byte(tmp_path, random.Random(0), offset=200)
