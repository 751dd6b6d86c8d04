"""MemoryStorage: the same contract as the WAL, and a model of what a crash loses."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storage_model import (
    ModelStorage,
    Operation,
    apply_to_model,
    assert_restored_equal,
    operations,
)

from raftnode.messages import Entry, EntryKind, HardState, Snapshot, SnapshotMeta
from raftnode.storage import MemoryStorage, StorageError


class FixedRandom:
    """An rng whose answers are scripted: randrange returns the next one (clamped)."""

    def __init__(self, *answers: int) -> None:
        self.answers = list(answers)

    def randrange(self, start: int, stop: int) -> int:
        value = self.answers.pop(0)
        return max(start, min(stop - 1, value))


def entries(first: int, last: int, term: int) -> list[Entry]:
    return [Entry(term, i, EntryKind.COMMAND, b"%d" % i) for i in range(first, last + 1)]


def test_persisted_state_survives_a_crash() -> None:
    storage = MemoryStorage()
    storage.persist(HardState(2, "n1", 1), entries(1, 4, 2))
    storage.persist(HardState(2, "n1", 3), [])
    storage.crash(FixedRandom(0))  # no torn tail
    restored = storage.load()
    assert restored.hard_state == HardState(2, "n1", 3)
    assert restored.entries == entries(1, 4, 2)
    assert storage.lost_records == 0


def test_a_torn_tail_is_truncated_and_logged_on_load() -> None:
    lines: list[str] = []
    storage = MemoryStorage(log=lines.append)
    storage.persist(HardState(1, None, 0), entries(1, 2, 1))
    storage.crash(FixedRandom(1))  # the rng says: torn tail
    restored = storage.load()
    assert restored.entries == entries(1, 2, 1)  # only an unacknowledged write was torn
    assert storage.torn_tails_truncated == 1 and "torn record" in lines[0]
    storage.load()
    assert len(lines) == 1  # truncated once


def test_no_fsync_loses_acknowledged_writes_on_crash() -> None:
    storage = MemoryStorage(bugs=frozenset({"no-fsync"}))
    storage.persist(HardState(1, "n1", 0), entries(1, 2, 1))
    storage.persist(HardState(2, "n2", 2), entries(3, 5, 2))
    # The running node sees its own writes...
    assert storage.load().entries == entries(1, 2, 1) + entries(3, 5, 2)
    assert storage.unsynced_records == 2
    storage.crash(FixedRandom(1))  # ...but none reached the disk.
    restored = storage.load()
    assert restored.hard_state == HardState() and restored.entries == []
    assert storage.lost_records == 2


def test_no_fsync_keeps_the_prefix_the_rng_chooses() -> None:
    storage = MemoryStorage(bugs=frozenset({"no-fsync"}))
    storage.persist(HardState(1, "n1", 0), entries(1, 2, 1))
    storage.persist(HardState(2, "n2", 2), entries(3, 5, 2))
    storage.persist(HardState(2, "n2", 5), [])
    # The first two writes reached the disk, the third not.
    storage.crash(FixedRandom(2, 1), writeback=True)
    restored = storage.load()
    assert restored.hard_state == HardState(2, "n2", 2)
    assert restored.entries == entries(1, 2, 1) + entries(3, 5, 2)
    # After the crash the storage works as before (and still defers syncs).
    storage.persist(HardState(2, "n2", 5), entries(6, 6, 2))
    assert storage.load().entries[-1].index == 6
    storage.crash(FixedRandom(1))
    assert storage.load().entries[-1].index == 5


def test_compaction_syncs_even_under_no_fsync() -> None:
    storage = MemoryStorage(bugs=frozenset({"no-fsync"}))
    storage.persist(HardState(1, "n1", 3), entries(1, 5, 1))
    storage.compact(Snapshot(SnapshotMeta(3, 1), b"three"))
    storage.crash(FixedRandom(1))
    restored = storage.load()
    assert restored.snapshot == Snapshot(SnapshotMeta(3, 1), b"three")
    assert restored.entries == entries(4, 5, 1)
    assert restored.hard_state == HardState(1, "n1", 3)


def test_forget_vote_bug() -> None:
    storage = MemoryStorage(bugs=frozenset({"forget-vote"}))
    storage.persist(HardState(9, "n2", 4), entries(1, 4, 9))
    storage.crash(FixedRandom(1))
    assert storage.load().hard_state == HardState(0, None, 4)


def test_invalid_batches_are_refused() -> None:
    storage = MemoryStorage()
    storage.persist(None, entries(1, 3, 1))
    with pytest.raises(StorageError, match="gap"):
        storage.persist(None, entries(6, 7, 1))
    with pytest.raises(StorageError):
        storage.compact(Snapshot(SnapshotMeta(2, 5), b"wrong term"))


def test_crash_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[int]:
        storage = MemoryStorage(bugs=frozenset({"no-fsync"}))
        rng = random.Random(seed)
        lasts = []
        for round_ in range(20):
            first = storage.last_index + 1
            storage.persist(HardState(round_, None, 0), entries(first, first + 2, round_))
            if round_ % 3 == 2:
                storage.crash(rng, writeback=True)
                lasts.append(storage.load().entries[-1].index if storage.last_index else 0)
        return lasts

    assert run(7) == run(7)
    assert len({tuple(run(seed)) for seed in range(8)}) > 1


# --- against the model ---------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(ops=operations(), seed=st.integers(0, 2**32))
def test_memory_storage_matches_the_model_and_crashes_lose_nothing(
    ops: list[Operation], seed: int
) -> None:
    rng = random.Random(seed)
    storage = MemoryStorage()
    model = ModelStorage()
    for op in ops:
        if op[0] == "persist":
            storage.persist(op[1], op[2], op[3])
        elif op[0] == "compact":
            storage.compact(op[1])
        else:
            storage.crash(rng)
            assert_restored_equal(storage.load(), model.restored())
        apply_to_model(model, op)
    storage.crash(rng)
    assert_restored_equal(storage.load(), model.restored())


@settings(max_examples=100, deadline=None)
@given(ops=operations(), seed=st.integers(0, 2**32))
def test_no_fsync_crash_keeps_a_prefix_of_the_unsynced_records(
    ops: list[Operation], seed: int
) -> None:
    """Under no-fsync a crash returns the state after SOME prefix of the persist calls since
    the last sync (each whole), never anything else (no reordering, no invented state)."""
    rng = random.Random(seed)
    storage = MemoryStorage(bugs=frozenset({"no-fsync"}))
    synced = ModelStorage()  # the state as of the last sync
    pending: list[Operation] = []  # records written since

    def candidates() -> list[ModelStorage]:
        states = []
        model = ModelStorage(synced.hard_state, synced.snapshot, dict(synced.entries))
        states.append(ModelStorage(model.hard_state, model.snapshot, dict(model.entries)))
        for record in pending:
            apply_to_model(model, record)
            states.append(ModelStorage(model.hard_state, model.snapshot, dict(model.entries)))
        return states

    for op in ops:
        if op[0] == "persist":
            storage.persist(op[1], op[2], op[3])
            pending.append(op)
            continue
        # A compaction syncs; so does an explicit writeback (the generated "reopen": a
        # crash here would make the rest of the generated operations invalid).
        if op[0] == "compact":
            storage.compact(op[1])
        else:
            storage.sync()
        for record in pending:
            apply_to_model(synced, record)
        pending.clear()
        if op[0] == "compact":
            apply_to_model(synced, op)
    options = candidates()
    storage.crash(rng, writeback=True)
    restored = storage.load()
    # Exactly the writes before the first lost one survive: no reordering, nothing invented.
    survivors = len(pending) - storage.lost_records
    assert _equal(restored, options[survivors]), f"not the state after {survivors} writes"


def _equal(restored, model: ModelStorage) -> bool:
    try:
        assert_restored_equal(restored, model.restored())
    except AssertionError:
        return False
    return True
