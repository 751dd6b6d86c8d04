"""The configuration (§4) survives restarts: configuration entries in the WAL and the
configuration at a snapshot's index in its snapshot file (FileStorage and MemoryStorage),
and a core restored from either puts the right configuration in force."""

from __future__ import annotations

import random
from pathlib import Path

from raftnode.core import RaftConfig, RaftCore
from raftnode.messages import (
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Snapshot,
    SnapshotMeta,
    conf_to_bytes,
)
from raftnode.storage import FileStorage, MemoryStorage

GROWN = ConfState(("n1", "n2", "n3"), ("n4",), (("n4", "127.0.0.1:7004"),))


def _log() -> list[Entry]:
    return [
        Entry(1, 1, EntryKind.NOOP),
        Entry(1, 2, EntryKind.COMMAND, b"x"),
        Entry(1, 3, EntryKind.CONFIG, conf_to_bytes(GROWN)),
        Entry(1, 4, EntryKind.COMMAND, b"y"),
    ]


def _core(restored) -> RaftCore:
    return RaftCore(RaftConfig("n1", ("n1", "n2", "n3")), random.Random(0), restored)


def test_config_entries_survive_a_wal_restart(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "d")
    storage.load()
    storage.persist(HardState(1, "n1", 4), _log())
    storage.close()
    storage = FileStorage(tmp_path / "d")
    restored = storage.load()
    storage.close()
    assert restored.entries == _log()
    assert _core(restored).conf_state() == GROWN


def test_the_snapshot_file_carries_the_configuration(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "d")
    storage.load()
    storage.persist(HardState(1, "n1", 4), _log())
    snap = Snapshot(SnapshotMeta(4, 1, GROWN), b"state")
    storage.compact(snap)
    storage.close()
    storage = FileStorage(tmp_path / "d")
    restored = storage.load()
    storage.close()
    assert restored.snapshot == snap and restored.entries == []
    assert _core(restored).conf_state() == GROWN


def test_a_snapshot_without_a_configuration_still_loads(tmp_path: Path) -> None:
    """Snapshots written before membership existed: the static peers are in force."""
    storage = FileStorage(tmp_path / "d")
    storage.load()
    storage.persist(HardState(1, "n1", 2), _log()[:2])
    storage.compact(Snapshot(SnapshotMeta(2, 1), b"old"))
    storage.close()
    storage = FileStorage(tmp_path / "d")
    restored = storage.load()
    storage.close()
    assert restored.snapshot is not None and restored.snapshot.meta.conf is None
    assert _core(restored).conf_state() == ConfState(("n1", "n2", "n3"))


def test_memory_storage_keeps_the_configuration_too() -> None:
    storage = MemoryStorage()
    storage.load()
    storage.persist(HardState(1, "n1", 4), _log())
    storage.compact(Snapshot(SnapshotMeta(2, 1, ConfState(("n1", "n2", "n3"))), b"s"))
    restored = storage.load()
    assert _core(restored).conf_state() == GROWN  # the entry at 3 is after the snapshot


def test_memory_storage_says_what_is_durable() -> None:
    """``durably_holds`` (the simulation's commit-quorum check) sees only what a crash
    would keep: with the no-fsync bug, nothing persisted since the last sync."""
    storage = MemoryStorage()
    storage.load()
    storage.persist(HardState(1, "n1", 0), _log())
    assert storage.durably_holds(4, 1) and not storage.durably_holds(4, 2)
    assert not storage.durably_holds(5, 1)
    storage.compact(Snapshot(SnapshotMeta(2, 1, ConfState(("n1", "n2", "n3"))), b"s"))
    assert storage.durably_holds(1, 1)  # covered by the snapshot
    unsynced = MemoryStorage(bugs=frozenset({"no-fsync"}))
    unsynced.load()
    unsynced.persist(HardState(1, "n1", 0), _log())
    assert not unsynced.durably_holds(4, 1)
