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
from raftnode.storage import FileStorage, StorageError, newest_segment, segment_paths, wal_inspect
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


def test_hard_state_survives_a_flipped_byte_anywhere_in_its_record(tmp_path: Path) -> None:
    original = tmp_path / "original"
    old, _, start = write_two_hard_states(original)
    segment = newest_segment(original)
    assert segment is not None
    full = segment.read_bytes()
    work = tmp_path / "work"
    for position in range(start, len(full)):
        damaged = bytearray(full)
        damaged[position] ^= 0x5A
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(original, work)
        (work / "wal" / segment.name).write_bytes(bytes(damaged))
        restored, log = reload(work)
        assert restored.hard_state == old, f"byte {position}"
        assert len(log.lines) == 1 and "torn record" in log.lines[0]


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


def test_snapshot_file_without_its_marker_is_used(tmp_path: Path) -> None:
    """A crash between the snapshot's rename and its WAL marker record."""
    storage, _ = open_storage(tmp_path)
    storage.load()
    storage.persist(HardState(1, None, 3), entries(1, 5, 1))
    storage._write_snapshot_file(Snapshot(SnapshotMeta(3, 1), b"three"))
    storage.close()
    restored, _ = reload(tmp_path)
    assert restored.snapshot == Snapshot(SnapshotMeta(3, 1), b"three")
    assert restored.entries == entries(4, 5, 1)


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


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations(), where=st.integers(0, 2**16), flip=st.booleans())
def test_a_crash_during_the_last_write_leaves_a_prefix_of_it(
    ops: list, where: int, flip: bool
) -> None:
    """Tear (or flip a byte in) the last persist's bytes: load gives the state after some
    prefix of its records, never anything else, and never refuses to start."""
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
        storage.persist(*ops[-1][1:])
        storage.close()
        summaries = wal_inspect(directory)
        if len(summaries) == records_before:
            return  # nothing was written (a stale snapshot, say)
        segment, start = Path(summaries[-1].file), summaries[-1].offset
        data = segment.read_bytes()
        position = start + where % (len(data) - start)
        if flip:
            damaged = bytearray(data)
            damaged[position] ^= 1 + where % 255
            segment.write_bytes(bytes(damaged))
        else:
            segment.write_bytes(data[:position])
        options = [model.restored()]
        for record in split_into_records(ops[-1]):
            apply_to_model(model, record)
            options.append(model.restored())
        restored, _ = reload(Path(directory), segment_bytes=256)
        assert any(_same(restored, option) for option in options)


def _same(actual, expected) -> bool:
    try:
        assert_restored_equal(actual, expected)
    except AssertionError:
        return False
    return True
