"""The file WAL: real files with real fsync under tmp_path."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_model import ModelStorage, apply_to_model, assert_restored_equal, operations

from raftnode.messages import Entry, EntryKind, HardState, Snapshot, SnapshotMeta
from raftnode.storage import (
    FileStorage,
    StorageError,
    newest_segment,
    repair,
    segment_paths,
    wal_inspect,
)
from raftnode.storage import wal as wal_module


def entries(first: int, last: int, term: int, tag: bytes = b"v") -> list[Entry]:
    return [
        Entry(term, i, EntryKind.COMMAND, tag + str(i).encode()) for i in range(first, last + 1)
    ]


class LogLines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


def open_storage(path: Path, **kwargs: object) -> tuple[FileStorage, LogLines]:
    log = LogLines()
    storage = FileStorage(path, log=log, **kwargs)  # type: ignore[arg-type]
    return storage, log


def reload(path: Path, **kwargs: object):
    storage, log = open_storage(path, **kwargs)
    try:
        return storage.load(), log
    finally:
        storage.close()


def test_fresh_directory_loads_empty_and_round_trips(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path / "d")
    restored = storage.load()
    assert restored.hard_state == HardState() and restored.snapshot is None
    assert restored.entries == []
    storage.persist(HardState(3, "n2", 2), entries(1, 5, 3))
    storage.close()
    restored, log = reload(tmp_path / "d")
    assert restored.hard_state == HardState(3, "n2", 2)
    assert restored.entries == entries(1, 5, 3)
    assert log.lines == []
    assert newest_segment(tmp_path / "d") == tmp_path / "d" / "wal" / "00000001.seg"


def test_one_fsync_per_persist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage, _ = open_storage(tmp_path)
    storage.load()
    storage.persist(HardState(1, None, 0), entries(1, 1, 1))  # opens the first segment
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(wal_module.os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    for index in range(2, 12):
        storage.persist(HardState(1, "n1", index - 1), entries(index, index, 1))
    assert len(calls) == 10  # group commit: hard state and entries share one fsync
    storage.close()


def test_no_fsync_bug_skips_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage, _ = open_storage(tmp_path, bugs=frozenset({"no-fsync"}))
    storage.load()
    calls: list[int] = []
    monkeypatch.setattr(wal_module.os, "fsync", lambda fd: calls.append(fd))
    for index in range(1, 6):
        storage.persist(HardState(1, "n1", index - 1), entries(index, index, 1))
    assert calls == []
    storage.close()


def test_forget_vote_bug_loses_term_and_vote(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path, bugs=frozenset({"forget-vote"}))
    storage.load()
    storage.persist(HardState(7, "n3", 4), entries(1, 4, 7))
    storage.close()
    restored, _ = reload(tmp_path)
    assert restored.hard_state == HardState(0, None, 4)
    assert restored.entries == entries(1, 4, 7)


def test_data_directory_is_locked(tmp_path: Path) -> None:
    first, _ = open_storage(tmp_path)
    first.load()
    second, _ = open_storage(tmp_path)
    with pytest.raises(StorageError, match="in use"):
        second.load()
    first.close()
    second.load()
    second.close()


def test_overwrite_truncates_from_index_across_segments(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path, segment_bytes=200)
    storage.load()
    for first in range(1, 30, 3):
        storage.persist(HardState(1, "n1", 0), entries(first, first + 2, 1))
    assert len(segment_paths(tmp_path)) > 3
    # A conflict at index 5 (in an early segment): everything from 5 on is replaced.
    storage.persist(HardState(2, "n2", 0), entries(5, 7, 2, b"new"))
    storage.persist(None, entries(8, 9, 2, b"new"))
    storage.close()
    restored, _ = reload(tmp_path, segment_bytes=200)
    assert restored.entries == entries(1, 4, 1) + entries(5, 9, 2, b"new")
    assert restored.hard_state == HardState(2, "n2", 0)


def test_persist_refuses_a_gap_and_skips_compacted_entries(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path)
    storage.load()
    storage.persist(None, entries(1, 3, 1))
    with pytest.raises(StorageError, match="gap"):
        storage.persist(None, entries(5, 6, 1))
    storage.compact(Snapshot(SnapshotMeta(2, 1), b"s"))
    storage.persist(None, entries(1, 4, 1))  # what the snapshot covers is skipped
    with pytest.raises(StorageError, match="contiguous"):
        storage.persist(None, [Entry(1, 4), Entry(1, 6)])
    storage.close()
    restored, _ = reload(tmp_path)
    assert restored.entries == entries(3, 4, 1)


# --- torn tails and damage --------------------------------------------------------------


def write_two_hard_states(path: Path) -> tuple[HardState, HardState, int]:
    """A log whose last record is a hard state; returns (old, new, offset of the last record)."""
    storage, _ = open_storage(path)
    storage.load()
    old = HardState(4, "n1", 3)
    storage.persist(old, entries(1, 3, 4))
    storage.persist(None, entries(4, 5, 4))
    new = HardState(5, "n2", 5)
    storage.persist(new, [])
    storage.close()
    last_record = wal_inspect(path)[-1]
    assert last_record.kind == "persist" and last_record.detail.startswith("term 5")
    return old, new, last_record.offset


def test_hard_state_survives_a_crash_at_every_byte_of_its_write(tmp_path: Path) -> None:
    original = tmp_path / "original"
    old, new, start = write_two_hard_states(original)
    segment = newest_segment(original)
    assert segment is not None
    full = segment.read_bytes()
    work = tmp_path / "work"
    for cut in range(start, len(full) + 1):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(original, work)
        (work / "wal" / segment.name).write_bytes(full[:cut])
        restored, log = reload(work)
        if cut == len(full):
            assert restored.hard_state == new and log.lines == []
        else:
            assert restored.hard_state == old, f"cut at {cut}"
            if cut > start:
                assert f"torn record at byte offset {start}" in log.lines[0]
            assert (work / "wal" / segment.name).stat().st_size == start
        assert [e.index for e in restored.entries] == [1, 2, 3, 4, 5]


def copy_with_segment(original: Path, work: Path, segment: Path, content: bytes) -> Path:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(original, work)
    target = work / "wal" / segment.name
    target.write_bytes(content)
    return target


def test_a_flipped_byte_in_a_complete_last_record_is_refused(tmp_path: Path) -> None:
    """Issue 9, defect 3: the last record (a vote) is complete and fsynced; a flipped byte
    in it is damage to acknowledged data, not a torn write. Truncating it would bring back
    the older term and vote and let the node vote twice: the node refuses to start, naming
    the file and the byte offset, and changes nothing."""
    original = tmp_path / "original"
    _, _, start = write_two_hard_states(original)
    segment = newest_segment(original)
    assert segment is not None
    full = segment.read_bytes()
    work = tmp_path / "work"
    for position in range(start, len(full)):
        damaged = bytearray(full)
        damaged[position] ^= 0x5A
        target = copy_with_segment(original, work, segment, bytes(damaged))
        with pytest.raises(StorageError) as raised:
            reload(work)
        message = str(raised.value)
        assert str(target) in message, f"byte {position}"
        assert f"corrupt record at byte offset {start}" in message, f"byte {position}"
        assert "refusing to start" in message
        assert f"raftlab wal truncate {work} --at {start}" in message
        assert target.read_bytes() == bytes(damaged)  # nothing was truncated
        # A second start refuses the same way: the refusal is not a one-off.
        with pytest.raises(StorageError, match=f"byte offset {start}"):
            reload(work)


def test_a_refusal_changes_no_file(tmp_path: Path) -> None:
    """A node that refuses to start leaves the directory as it found it: the operator
    inspects what was there (snapshot temp files and superseded snapshots included)."""
    storage, _ = open_storage(tmp_path)
    storage.load()
    storage.persist(HardState(1, "n1", 3), entries(1, 5, 1))
    storage.compact(Snapshot(SnapshotMeta(3, 1), b"three"))
    storage.persist(HardState(2, "n2", 5), [])
    storage.close()
    snap_dir = tmp_path / "snap"
    (snap_dir / (wal_module.snapshot_name(SnapshotMeta(5, 2)) + ".tmp")).write_bytes(b"RSNP")
    older = snap_dir / wal_module.snapshot_name(SnapshotMeta(2, 1))
    older.write_bytes(wal_module._encode_snapshot(Snapshot(SnapshotMeta(2, 1), b"two")))
    segment, offset = flip_last_record(tmp_path)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    with pytest.raises(StorageError, match=f"corrupt record at byte offset {offset}"):
        reload(tmp_path)
    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert after == before


def flip_last_record(path: Path) -> tuple[Path, int]:
    last = wal_inspect(path)[-1]
    segment = Path(last.file)
    data = bytearray(segment.read_bytes())
    data[last.offset + last.size // 2] ^= 0x10
    segment.write_bytes(bytes(data))
    return segment, last.offset


def test_a_torn_write_followed_by_zeros_is_recovered(tmp_path: Path) -> None:
    """A crash that persisted the file's new size but only a prefix of the data: the rest
    of the record reads as zeros (and the file may reach further, preallocated)."""
    original = tmp_path / "original"
    old, _, start = write_two_hard_states(original)
    segment = newest_segment(original)
    assert segment is not None
    full = segment.read_bytes()
    work = tmp_path / "work"
    for extra in (0, 700):
        for written in range(start, len(full)):
            content = full[:written] + bytes(len(full) - written + extra)
            target = copy_with_segment(original, work, segment, content)
            restored, log = reload(work)
            assert restored.hard_state == old, f"written up to {written}, {extra} extra"
            assert f"torn record at byte offset {start}" in log.lines[0]
            assert target.stat().st_size == start
            assert [e.index for e in restored.entries] == [1, 2, 3, 4, 5]


def test_a_record_ending_in_zeros_of_its_own_is_told_apart(tmp_path: Path) -> None:
    """A hard state with commit 0 ends its record in a zero byte. A flipped byte elsewhere
    is still refused (no filling of that zero gives the checksum), while the same record
    with its last byte unwritten (and so zero) is a torn write."""
    original = tmp_path / "original"
    storage, _ = open_storage(original)
    storage.load()
    old = HardState(1, "n1", 0)
    storage.persist(old, entries(1, 2, 1))
    new = HardState(2, "n2", 0)  # a vote granted in term 2: acknowledged once fsynced
    storage.persist(new, [])
    storage.close()
    segment = newest_segment(original)
    assert segment is not None
    full = segment.read_bytes()
    start = wal_inspect(original)[-1].offset
    assert full[-1] == 0  # the commit index 0
    work = tmp_path / "work"
    for position in range(start, len(full) - 1):
        damaged = bytearray(full)
        damaged[position] ^= 0x01
        copy_with_segment(original, work, segment, bytes(damaged))
        with pytest.raises(StorageError, match=f"corrupt record at byte offset {start}"):
            reload(work)
    # The byte before the zero unwritten: a torn write.
    damaged = bytearray(full)
    damaged[-2] = 0
    copy_with_segment(original, work, segment, bytes(damaged))
    restored, log = reload(work)
    assert restored.hard_state == old and "torn record" in log.lines[0]


def test_a_sector_not_written_in_the_middle_of_a_record_is_a_torn_write(tmp_path: Path) -> None:
    """Sectors persisted out of order: one whole 512-byte sector of a large last record
    reads as zeros while the sectors after it landed. That is still the write in progress."""
    original = tmp_path / "original"
    storage, _ = open_storage(original)
    storage.load()
    storage.persist(HardState(1, "n1", 0), entries(1, 2, 1))
    storage.persist(HardState(1, "n1", 2), entries(3, 40, 1, b"x" * 60))  # > 2 sectors
    storage.close()
    segment = newest_segment(original)
    assert segment is not None
    full = segment.read_bytes()
    last = wal_inspect(original)[-1]
    assert last.size > 3 * wal_module.SECTOR_BYTES
    sector = (last.offset // wal_module.SECTOR_BYTES + 2) * wal_module.SECTOR_BYTES
    damaged = bytearray(full)
    damaged[sector : sector + wal_module.SECTOR_BYTES] = bytes(wal_module.SECTOR_BYTES)
    work = tmp_path / "work"
    copy_with_segment(original, work, segment, bytes(damaged))
    restored, log = reload(work)
    assert restored.hard_state == HardState(1, "n1", 0)
    assert [e.index for e in restored.entries] == [1, 2]
    assert f"torn record at byte offset {last.offset}" in log.lines[0]
    # Non-zero bytes after the record mean more than one write was under way: refused.
    copy_with_segment(original, work, segment, bytes(damaged) + b"\x01")
    with pytest.raises(StorageError, match="non-zero bytes follow it"):
        reload(work)


def test_a_damaged_header_is_torn_only_where_it_reads_as_zeros(tmp_path: Path) -> None:
    original = tmp_path / "original"
    old, new, start = write_two_hard_states(original)
    segment = newest_segment(original)
    assert segment is not None
    full = segment.read_bytes()
    work = tmp_path / "work"
    # Only the magic landed: the rest of the header and the payload read as zeros.
    copy_with_segment(original, work, segment, full[: start + 4] + bytes(len(full) - start - 4))
    restored, _ = reload(work)
    assert restored.hard_state == old
    # The header's checksum byte flipped, the payload intact: corruption.
    damaged = bytearray(full)
    damaged[start + 13] ^= 0xFF
    copy_with_segment(original, work, segment, bytes(damaged))
    with pytest.raises(StorageError, match="its header is damaged"):
        reload(work)


def test_after_truncating_a_torn_tail_the_log_goes_on(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path)
    storage.load()
    storage.persist(HardState(1, "n1", 0), entries(1, 3, 1))
    storage.close()
    segment = newest_segment(tmp_path)
    assert segment is not None
    with open(segment, "ab") as handle:
        handle.write(b"RWAL\x00\x00")  # a write cut short
    storage, log = open_storage(tmp_path)
    restored = storage.load()
    assert restored.entries == entries(1, 3, 1)
    assert "truncated a torn record" in log.lines[0]
    storage.persist(HardState(1, "n1", 4), entries(4, 4, 1))
    storage.close()
    restored, log = reload(tmp_path)
    assert restored.entries == entries(1, 4, 1) and log.lines == []


def test_damage_before_the_tail_is_refused_naming_file_and_offset(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path)
    storage.load()
    for index in range(1, 6):
        storage.persist(HardState(1, "n1", index), entries(index, index, 1))
    storage.close()
    records = wal_inspect(tmp_path)
    victim = records[3]  # a committed record in the middle
    segment = Path(victim.file)
    data = bytearray(segment.read_bytes())
    data[victim.offset + victim.size - 2] ^= 0xFF  # inside its payload
    segment.write_bytes(bytes(data))
    storage, _ = open_storage(tmp_path)
    with pytest.raises(StorageError) as raised:
        storage.load()
    storage.close()
    second_try, _ = open_storage(tmp_path)  # a failed load released the directory
    with pytest.raises(StorageError):
        second_try.load()
    message = str(raised.value)
    assert str(segment) in message
    assert f"byte offset {victim.offset}" in message
    assert "followed by a valid record" in message
    assert segment.read_bytes() == bytes(data)  # nothing was truncated


def test_damage_in_an_older_segment_is_refused(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path, segment_bytes=150)
    storage.load()
    for index in range(1, 20):
        storage.persist(HardState(1, "n1", index), entries(index, index, 1))
    storage.close()
    paths = segment_paths(tmp_path)
    assert len(paths) >= 3
    older = paths[0]
    size = older.stat().st_size
    older.write_bytes(older.read_bytes()[: size - 3])  # its tail cut: not a torn tail
    with pytest.raises(StorageError) as raised:
        reload(tmp_path, segment_bytes=150)
    assert str(older) in str(raised.value) and "not the newest" in str(raised.value)


def test_a_missing_segment_is_refused(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path, segment_bytes=150)
    storage.load()
    for index in range(1, 20):
        storage.persist(None, entries(index, index, 1))
    storage.close()
    paths = segment_paths(tmp_path)
    paths[1].unlink()
    with pytest.raises(StorageError, match="missing"):
        reload(tmp_path, segment_bytes=150)


def test_wal_inspect_reports_records_and_damage(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path)
    storage.load()
    storage.persist(HardState(2, "n1", 1), entries(1, 2, 2))
    storage.compact(Snapshot(SnapshotMeta(1, 2), b"x"))
    storage.close()
    summaries = wal_inspect(tmp_path)
    assert [s.kind for s in summaries] == ["seg", "persist", "snap"]
    assert summaries[1].detail == "entries 1..2 terms [2]; term 2 vote 'n1' commit 1"
    segment = newest_segment(tmp_path)
    assert segment is not None
    segment.write_bytes(segment.read_bytes()[:-3])
    damaged = wal_inspect(tmp_path)[-1]
    assert damaged.kind == "damaged" and "torn tail" in damaged.detail
    assert damaged.offset == summaries[-1].offset


# --- snapshots and compaction ------------------------------------------------------------


def test_compaction_deletes_segments_wholly_below_the_snapshot(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path, segment_bytes=200)
    storage.load()
    for first in range(1, 60, 3):
        storage.persist(HardState(3, "n1", first), entries(first, first + 2, 3))
    before = segment_paths(tmp_path)
    storage.compact(Snapshot(SnapshotMeta(40, 3), b"state@40"))
    after = segment_paths(tmp_path)
    assert len(after) < len(before)
    assert before[0] not in after and before[-1] in after
    # Whatever survived still holds every entry after the snapshot.
    storage.persist(HardState(3, "n1", 60), entries(61, 62, 3))
    storage.close()
    restored, log = reload(tmp_path, segment_bytes=200)
    assert restored.snapshot == Snapshot(SnapshotMeta(40, 3), b"state@40")
    assert restored.entries == entries(41, 62, 3)
    assert restored.hard_state == HardState(3, "n1", 60)
    assert log.lines == []
    assert [p.name for p in (tmp_path / "snap").iterdir()] == [
        wal_module.snapshot_name(SnapshotMeta(40, 3))
    ]


def test_load_after_compacting_everything(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path, segment_bytes=120)
    storage.load()
    for index in range(1, 30):
        storage.persist(HardState(1, "n1", index), entries(index, index, 1))
    storage.compact(Snapshot(SnapshotMeta(29, 1), b"all"))
    storage.close()
    assert len(segment_paths(tmp_path)) == 1
    restored, _ = reload(tmp_path, segment_bytes=120)
    assert restored.snapshot == Snapshot(SnapshotMeta(29, 1), b"all")
    assert restored.entries == []
    assert restored.hard_state == HardState(1, "n1", 29)


def test_leftover_snapshot_temp_file_is_ignored(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path)
    storage.load()
    storage.persist(HardState(1, None, 3), entries(1, 5, 1))
    storage.compact(Snapshot(SnapshotMeta(2, 1), b"good"))
    storage.close()
    # A crash in the middle of writing a newer snapshot: only the temp file exists.
    temp = tmp_path / "snap" / (wal_module.snapshot_name(SnapshotMeta(4, 1)) + ".tmp")
    temp.write_bytes(b"RSNP half a snapsh")
    restored, log = reload(tmp_path)
    assert restored.snapshot == Snapshot(SnapshotMeta(2, 1), b"good")
    assert restored.entries == entries(3, 5, 1)
    assert not temp.exists() and "unfinished snapshot" in log.lines[0]


def test_snapshot_file_without_its_marker_is_a_write_that_never_committed(
    tmp_path: Path,
) -> None:
    """A crash between the snapshot's rename and its WAL marker record: the record is the
    commit point, so load gives the state before the write and removes the file."""
    storage, _ = open_storage(tmp_path)
    storage.load()
    storage.persist(HardState(1, None, 3), entries(1, 5, 1))
    storage._write_snapshot_file(Snapshot(SnapshotMeta(3, 1), b"three"))
    storage.close()
    restored, log = reload(tmp_path)
    assert restored.snapshot is None
    assert restored.entries == entries(1, 5, 1)
    assert restored.hard_state == HardState(1, None, 3)
    assert not any((tmp_path / "snap").iterdir())
    assert any("no WAL record names" in line for line in log.lines)


def test_damaged_snapshot_file_is_refused(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path)
    storage.load()
    storage.persist(HardState(1, None, 3), entries(1, 5, 1))
    storage.compact(Snapshot(SnapshotMeta(3, 1), b"three"))
    storage.close()
    snap = tmp_path / "snap" / wal_module.snapshot_name(SnapshotMeta(3, 1))
    data = bytearray(snap.read_bytes())
    data[-1] ^= 1
    snap.write_bytes(bytes(data))
    with pytest.raises(StorageError) as raised:
        reload(tmp_path)
    assert str(snap) in str(raised.value) and "byte offset" in str(raised.value)


def test_leader_snapshot_keeps_matching_log_and_replaces_a_conflicting_one(
    tmp_path: Path,
) -> None:
    storage, _ = open_storage(tmp_path)
    storage.load()
    storage.persist(HardState(2, None, 0), entries(1, 8, 2))
    # The log holds (5, term 2): entries after 5 survive.
    storage.persist(HardState(2, None, 5), [], Snapshot(SnapshotMeta(5, 2), b"five"))
    storage.close()
    restored, _ = reload(tmp_path)
    assert restored.entries == entries(6, 8, 2)
    storage, _ = open_storage(tmp_path)
    storage.load()
    # (7, term 3) is not in the log: the whole log goes.
    storage.persist(HardState(3, None, 7), [], Snapshot(SnapshotMeta(7, 3), b"seven"))
    storage.persist(None, entries(8, 9, 3))
    storage.close()
    restored, _ = reload(tmp_path)
    assert restored.snapshot == Snapshot(SnapshotMeta(7, 3), b"seven")
    assert restored.entries == entries(8, 9, 3)


# --- against the model ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations())
def test_file_storage_matches_the_model(ops: list) -> None:
    with tempfile.TemporaryDirectory() as directory:
        model = ModelStorage()
        storage = FileStorage(directory, segment_bytes=256, log=lambda line: None)
        assert_restored_equal(storage.load(), model.restored())
        try:
            for op in ops:
                if op[0] == "persist":
                    storage.persist(op[1], op[2], op[3])
                elif op[0] == "compact":
                    storage.compact(op[1])
                else:
                    storage.close()
                    storage = FileStorage(directory, segment_bytes=256, log=lambda line: None)
                    assert_restored_equal(storage.load(), model.restored())
                apply_to_model(model, op)
        finally:
            storage.close()
        storage = FileStorage(directory, segment_bytes=256, log=lambda line: None)
        assert_restored_equal(storage.load(), model.restored())
        storage.close()


def test_inspection_command_lists_records_and_snapshots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage, _ = open_storage(tmp_path)
    storage.load()
    storage.persist(HardState(2, "n1", 1), entries(1, 2, 2))
    storage.compact(Snapshot(SnapshotMeta(1, 2), b"x"))
    storage.close()
    assert wal_module.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("00000001.seg\t0\t") and "\tseg\t" in out[0]
    assert out[-1].endswith("snapshot\tindex 1 term 2, 1 bytes")
    assert wal_module.main([str(tmp_path / "absent")]) == 254


def test_hard_state_survives_a_crash_while_opening_a_new_segment(tmp_path: Path) -> None:
    """The write that opens a segment (its header, then the hard state) cut at every byte."""
    original = tmp_path / "original"
    storage, _ = open_storage(original, segment_bytes=160)
    storage.load()
    old = HardState(4, "n1", 3)
    storage.persist(old, entries(1, 3, 4))
    storage.persist(None, entries(4, 5, 4))
    before = segment_paths(original)
    new = HardState(5, "n2", 5)
    storage.persist(new, [])
    storage.close()
    after = segment_paths(original)
    assert len(after) == len(before) + 1  # the hard state opened a new segment
    full = after[-1].read_bytes()
    work = tmp_path / "work"
    for cut in range(len(full) + 1):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(original, work)
        (work / "wal" / after[-1].name).write_bytes(full[:cut])
        restored, _ = reload(work, segment_bytes=160)
        assert restored.hard_state == (new if cut == len(full) else old), f"cut at {cut}"
        assert [e.index for e in restored.entries] == [1, 2, 3, 4, 5]
        # And the storage goes on from there.
        storage, _ = open_storage(work, segment_bytes=160)
        storage.load()
        storage.persist(HardState(6, None, 5), entries(6, 6, 6))
        storage.close()
        assert reload(work, segment_bytes=160)[0].entries[-1] == entries(6, 6, 6)[0]


def test_a_lost_wal_next_to_a_snapshot_is_refused(tmp_path: Path) -> None:
    storage, _ = open_storage(tmp_path)
    assert len(segment_paths(tmp_path)) == 0
    storage.load()
    assert len(segment_paths(tmp_path)) == 1  # a fresh directory gets its segment at once
    storage.persist(HardState(3, "n1", 2), entries(1, 3, 3))
    storage.compact(Snapshot(SnapshotMeta(2, 3), b"two"))
    storage.close()
    shutil.rmtree(tmp_path / "wal")
    with pytest.raises(StorageError, match="no WAL segment"):
        reload(tmp_path)


def split_into_records(op: tuple) -> list[tuple]:
    """A persist is up to three records (snapshot, entries, hard state) written in order."""
    _, hard_state, batch, snapshot = op
    parts: list[tuple] = []
    if snapshot is not None:
        parts.append(("persist", None, [], snapshot))
    if batch:
        parts.append(("persist", None, batch, None))
    if hard_state is not None:
        parts.append(("persist", hard_state, [], None))
    return parts


def _damage_can_look_torn(record: bytes, record_start: int) -> bool:
    """Written independently of the WAL's rule: does the record hold zeros where a torn
    write leaves them (its last byte, or a whole file-aligned sector)?"""
    if record[-1] == 0:
        return True
    sector = 512
    first = (record_start + sector - 1) // sector * sector
    return any(
        not any(record[s - record_start : s - record_start + sector])
        for s in range(first, record_start + len(record) - sector + 1, sector)
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    ops=operations(),
    where=st.integers(0, 2**16),
    shape=st.sampled_from(["cut", "zero-tail", "flip"]),
)
def test_a_crash_during_the_last_write_leaves_a_prefix_of_it(
    ops: list, where: int, shape: str
) -> None:
    """Tear the last persist's record as a crash can (a prefix, or a prefix then zeros):
    load gives the state after some prefix of its writes, never anything else, and never
    refuses to start. Flip a byte in it instead (damage to a complete, fsynced record):
    load refuses, naming the file and offset, unless the record holds zeros where a torn
    write leaves them (then it may be taken for torn, as in etcd)."""
    persists = [i for i, op in enumerate(ops) if op[0] == "persist"]
    if not persists:
        return
    ops = ops[: persists[-1] + 1]
    with tempfile.TemporaryDirectory() as directory:
        model = ModelStorage()
        storage = FileStorage(directory, segment_bytes=256, log=lambda line: None)
        storage.load()
        for op in ops[:-1]:
            if op[0] == "persist":
                storage.persist(op[1], op[2], op[3])
            elif op[0] == "compact":
                storage.compact(op[1])
            apply_to_model(model, op)
        records_before = len(wal_inspect(directory))
        if shape == "flip":
            storage.persist(*ops[-1][1:])  # complete and fsynced, then damaged
        else:
            persist_until_the_record_is_written(storage, *ops[-1][1:])
        storage.close()
        summaries = wal_inspect(directory)
        if len(summaries) == records_before:
            return  # nothing was written (a stale snapshot, say)
        segment, start = Path(summaries[-1].file), summaries[-1].offset
        data = segment.read_bytes()
        position = start + where % (len(data) - start)
        if shape == "flip":
            damaged = bytearray(data)
            damaged[position] ^= 1 + where % 255
            segment.write_bytes(bytes(damaged))
        elif shape == "zero-tail":
            segment.write_bytes(data[:position] + bytes(len(data) - position))
        else:
            segment.write_bytes(data[:position])
        options = [model.restored()]
        for record in split_into_records(ops[-1]):
            apply_to_model(model, record)
            options.append(model.restored())
        if shape == "flip":
            damaged_record = segment.read_bytes()[start:]
            try:
                restored, _ = reload(Path(directory), segment_bytes=256)
            except StorageError as error:
                assert f"{segment}: corrupt record at byte offset {start}" in str(error)
                assert segment.read_bytes()[start:] == damaged_record  # nothing changed
                return
            assert _damage_can_look_torn(damaged_record, start), "a flip was taken for torn"
        else:
            restored, _ = reload(Path(directory), segment_bytes=256)
        assert any(_same(restored, option) for option in options)


class _ProcessDied(Exception):
    """Stands for the process's death in the middle of a persist."""


def persist_until_the_record_is_written(storage: FileStorage, *args: object) -> None:
    """Run ``persist`` and "crash" right after its record is written: nothing that persist
    does after the write runs (no older snapshot or segment is deleted), as when the
    process dies during the write; the test then tears the record."""
    write_record = storage._append

    def write_then_die(record, *, sync: bool) -> None:
        write_record(record, sync=sync)
        if record is not None:
            raise _ProcessDied

    storage._append = write_then_die
    try:
        storage.persist(*args)
    except _ProcessDied:
        pass


def _same(actual, expected) -> bool:
    try:
        assert_restored_equal(actual, expected)
    except AssertionError:
        return False
    return True


def test_a_cut_before_a_received_snapshots_record_keeps_acknowledged_entries(tmp_path):
    """Found by Hypothesis in the crash-point test above. Entries 15..24 are persisted
    (acknowledged appends); then a snapshot at 18 arrives and its WAL record is cut whole
    (a crash after the snapshot file's rename, before the record). Load must give the
    state before that write (snapshot 14, entries 15..24) or after it; the old load gave
    snapshot 18 with commit 12, a state never written (the commit index below the
    snapshot). In the Hypothesis example, after compactions, the entries past the
    snapshot were lost too. The fix: the record is the commit point, so load reads the
    state before the write (snapshot 14, entries 15..24, commit 12)."""
    entries = [Entry(term=3, index=i, kind=EntryKind.COMMAND, data=b"") for i in range(15, 25)]
    storage = FileStorage(tmp_path, segment_bytes=256, log=lambda line: None)
    storage.load()
    storage.persist(
        HardState(term=3, vote=None, commit=12),
        [],
        Snapshot(meta=SnapshotMeta(index=14, term=3, conf=None), data=b""),
    )
    storage.persist(None, entries, None)
    records_before = len(wal_inspect(tmp_path))
    persist_until_the_record_is_written(
        storage,
        HardState(term=3, vote=None, commit=18),
        [],
        Snapshot(meta=SnapshotMeta(index=18, term=3, conf=None), data=b""),
    )
    storage.close()
    summaries = wal_inspect(tmp_path)
    assert len(summaries) > records_before
    segment, start = Path(summaries[-1].file), summaries[-1].offset
    segment.write_bytes(segment.read_bytes()[:start])
    restored, _ = reload(tmp_path, segment_bytes=256)
    kept = [entry.index for entry in restored.entries]
    snapshot_index = restored.snapshot.meta.index if restored.snapshot else 0
    assert all(index in kept or index <= snapshot_index for index in range(15, 25))
    assert snapshot_index <= 14 or restored.hard_state.commit >= 18
    assert (snapshot_index, kept, restored.hard_state.commit) == (14, list(range(15, 25)), 12)
    # The unnamed file is gone, so a later load cannot pick it up either.
    assert sorted(p.name for p in (tmp_path / "snap").iterdir()) == [
        wal_module.snapshot_name(SnapshotMeta(index=14, term=3))
    ]


def test_a_snapshot_whose_record_an_operators_cut_dropped_stays_the_floor(tmp_path):
    """The fall-back to the older snapshot is only for a crash between the two writes. Once
    the record was durable, compaction deleted the older segments; a `raftlab wal
    truncate` that cuts the record then leaves a file whose state is committed and the
    only one whole: it stays the floor, and the plan says what load will give."""
    storage = FileStorage(tmp_path, segment_bytes=256, log=lambda line: None)
    storage.load()
    entries = [Entry(term=2, index=i, kind=EntryKind.COMMAND, data=b"x" * 40) for i in range(1, 21)]
    for entry in entries:
        storage.persist(HardState(term=2, vote="n1", commit=entry.index), [entry])
    storage.compact(Snapshot(meta=SnapshotMeta(index=15, term=2, conf=None), data=b"s"))
    storage.close()
    summaries = wal_inspect(tmp_path)
    assert int(Path(summaries[0].file).name[:8]) > 1  # older segments were deleted
    marker = summaries[-1]
    cut = repair.plan(tmp_path, marker.offset, Path(marker.file).name)
    assert cut.remaining_damage is None
    assert cut.kept_snapshot_index == 15
    repair.apply(cut)
    restored, _ = reload(tmp_path, segment_bytes=256)
    assert restored.snapshot is not None and restored.snapshot.meta.index == 15
    assert [e.index for e in restored.entries] == list(range(16, 21))
