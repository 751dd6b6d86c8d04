"""The storage seam (as hashicorp/raft's LogStore + StableStore + SnapshotStore, in one).

The node process uses the file-backed WAL (``raftnode.storage.wal``); the simulation uses
the in-memory version (``raftnode.storage.memory``). Both honour the same contract.
"""

from __future__ import annotations

from typing import Protocol

from raftnode.messages import Entry, HardState, RestoredState, Snapshot


class StorageError(Exception):
    """Storage cannot go on safely (e.g. damage before the tail of the WAL).

    The message names the file and the byte offset; the node refuses to start rather
    than drop committed data silently.
    """


class Storage(Protocol):
    def load(self) -> RestoredState:
        """Everything durable: hard state, latest snapshot, and the entries after it.

        A torn last record (the write in progress at a crash: short, or failing where it
        reads as zeros) is truncated and logged; any other damage - a complete record that
        fails its checksum included - raises StorageError naming the file and byte offset,
        and changes nothing.
        """
        ...

    def persist(
        self,
        hard_state: HardState | None,
        entries: list[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        """Make one Ready's worth of state durable with one fsync (group commit).

        ``entries`` may start at an index already on disk: every stored entry at or after
        ``entries[0].index`` is discarded first (a conflict the core has decided). A
        ``snapshot`` received from a leader replaces the log up to its index (and the whole
        log when the log does not contain the snapshot's last entry). When this returns,
        everything passed is durable.
        """
        ...

    def compact(self, snapshot: Snapshot) -> None:
        """Durably save a snapshot the node took itself, then drop entries <= its index."""
        ...

    def close(self) -> None: ...
