"""The log as storage sees it while running, shared by the WAL and the in-memory storage.

``LogState`` holds the hard state, the snapshot the log starts after (its "base"), and
the entries after it. Both storages describe every change as one of three operations,
applied in the order they were written:

- ``install_snapshot(meta, keep)``: a snapshot now covers everything up to ``meta.index``.
  ``keep`` says whether the entries after it survive; it is decided once, when the
  snapshot is persisted (the log contained the snapshot's last entry, §5.3 / Figure 13
  step 6-7), and written down, so that the WAL's replay never has to re-decide it from a
  log whose oldest segments may already have been deleted.
- ``append(entries)``: every stored entry at or after ``entries[0].index`` is discarded,
  then the entries are added (the truncation the core decided on a conflict, §5.3).
- ``set_hard_state(hs)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raftnode.messages import Entry, HardState, SnapshotMeta
from raftnode.storage.interface import StorageError


@dataclass(slots=True)
class LogState:
    hard_state: HardState = field(default_factory=HardState)
    base: SnapshotMeta = field(default_factory=SnapshotMeta)
    entries: list[Entry] = field(default_factory=list)  # contiguous from base.index + 1

    @property
    def last_index(self) -> int:
        return self.base.index + len(self.entries)

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index`` if the log (or its base) has it."""
        if index == self.base.index:
            return self.base.term
        if self.base.index < index <= self.last_index:
            return self.entries[index - self.base.index - 1].term
        return None

    def contains(self, meta: SnapshotMeta) -> bool:
        """Does the log hold the snapshot's last entry (same index and term)?"""
        return self.term_at(meta.index) == meta.term

    def copy(self) -> LogState:
        return LogState(self.hard_state, self.base, list(self.entries))

    def set_hard_state(self, hard_state: HardState) -> None:
        self.hard_state = hard_state

    def install_snapshot(self, meta: SnapshotMeta, keep: bool) -> None:
        if meta.index < self.base.index:
            return  # older than what we have: nothing to do
        if keep and meta.index <= self.last_index:
            del self.entries[: meta.index - self.base.index]
        else:
            self.entries.clear()
        self.base = meta

    def append(self, entries: list[Entry]) -> None:
        """Discard every entry at or after ``entries[0].index``, then add ``entries``."""
        if not entries:
            return
        check_append(entries, self.base.index, self.last_index)
        first = entries[0].index
        del self.entries[first - self.base.index - 1 :]
        self.entries.extend(entries)


def check_contiguous(entries: list[Entry]) -> None:
    for before, after in zip(entries, entries[1:], strict=False):
        if after.index != before.index + 1:
            raise StorageError(
                f"entries must be contiguous: index {after.index} follows {before.index}"
            )
        if after.term < before.term:
            raise StorageError(
                f"entry terms must not decrease: term {after.term} at index {after.index} "
                f"follows term {before.term}"
            )


def check_append(entries: list[Entry], base_index: int, last_index: int) -> None:
    """Loudly refuse a batch that would leave a hole or rewrite compacted entries."""
    check_contiguous(entries)
    first = entries[0].index
    if first <= base_index:
        raise StorageError(
            f"entries from index {first} would rewrite the log at or below the "
            f"snapshot index {base_index}"
        )
    if first > last_index + 1:
        raise StorageError(
            f"entries from index {first} would leave a gap after the last index {last_index}"
        )


def trim_compacted(entries: list[Entry], base_index: int) -> list[Entry]:
    """Drop the entries at or below the snapshot index: the snapshot already covers them.

    They are committed, so they equal what the snapshot holds (as etcd's MemoryStorage
    ignores appended entries below its first index, instead of failing the node).
    """
    if entries and entries[0].index <= base_index:
        return entries[base_index - entries[0].index + 1 :]
    return entries
