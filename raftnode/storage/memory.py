"""In-memory storage for the deterministic simulation, with a model of durability.

Same contract as the WAL (``raftnode.storage.wal``): the same record semantics (one record
per ``persist``: a snapshot marker with its ``keep`` decision, entries that overwrite from
their first index, hard state), applied by the same ``LogState``. What differs is the medium:

- ``persist`` is durable when it returns (it "fsyncs"), unless the ``no-fsync`` teaching
  bug is on: then its records sit in an unsynced buffer, visible to the running node but
  not yet on "disk".
- ``crash(rng)`` is a power loss: every unsynced record is lost (with ``writeback=True``
  a prefix the rng picks survives: the page cache wrote some back), and when the rng says
  so the crash also leaves a torn record at the tail (a write in progress, never
  acknowledged), which the next ``load()`` truncates and logs, as the WAL does.
  ``sync()`` models a writeback of everything (an fsync).
- ``compact`` always syncs (as the WAL's does): a snapshot is written with fsync even
  under ``no-fsync``.

No wall clock, no global random: all randomness comes from the rng passed to ``crash``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from raftnode.messages import Entry, HardState, RestoredState, Snapshot
from raftnode.storage.interface import StorageError
from raftnode.storage.logstate import LogState, check_append, trim_compacted


class CrashRandom(Protocol):
    """What ``crash`` needs of an rng (``random.Random`` satisfies it)."""

    def randrange(self, start: int, stop: int) -> int: ...


@dataclass(slots=True, frozen=True)
class _Record:
    """One persist (or compaction) call, like one WAL record: all of it survives or none."""

    snapshot: Snapshot | None = None
    keep: bool = True  # does the log after the snapshot survive (decided at persist time)
    entries: tuple[Entry, ...] = ()
    hard_state: HardState | None = None


@dataclass(slots=True)
class _Medium:
    """One copy of everything: the log state and the snapshot it starts after."""

    state: LogState
    snapshot: Snapshot | None = None

    def apply(self, record: _Record) -> None:
        if record.snapshot is not None:
            self.state.install_snapshot(record.snapshot.meta, record.keep)
            self.snapshot = record.snapshot
        if record.entries:
            self.state.append(list(record.entries))
        if record.hard_state is not None:
            self.state.set_hard_state(record.hard_state)

    def copy(self) -> _Medium:
        return _Medium(self.state.copy(), self.snapshot)


class MemoryStorage:
    """The ``Storage`` of the simulation: durable state in memory, crashes on demand."""

    # A crash leaves a torn tail record with probability 1 / TORN_TAIL_ODDS.
    TORN_TAIL_ODDS = 2

    def __init__(
        self,
        bugs: frozenset[str] = frozenset(),
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.bugs = frozenset(bugs)
        self._log = log if log is not None else (lambda message: None)
        self._durable = _Medium(LogState())
        # What the running node sees: the durable state plus unsynced records. Without
        # no-fsync nothing is ever unsynced, so it is the same object (no copying).
        self._visible = self._durable
        self._unsynced: list[_Record] = []
        self._torn_tail = False
        # Counters for tests and reports.
        self.syncs = 0
        self.crashes = 0
        self.lost_records = 0
        self.torn_tails_truncated = 0

    @property
    def _defers_sync(self) -> bool:
        return "no-fsync" in self.bugs

    # -- the Storage protocol

    def load(self) -> RestoredState:
        if self._torn_tail:
            self._torn_tail = False
            self.torn_tails_truncated += 1
            self._log("memory wal: truncated a torn record at the tail (crash during a write)")
        medium = self._visible
        return RestoredState(
            hard_state=medium.state.hard_state,
            snapshot=medium.snapshot,
            entries=list(medium.state.entries),
        )

    def persist(
        self,
        hard_state: HardState | None,
        entries: list[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        state = self._visible.state
        base_index, last_index = state.base.index, state.last_index
        keep = True
        if snapshot is not None and snapshot.meta.index <= base_index:
            snapshot = None  # not newer than what we have
        if snapshot is not None:
            keep = state.contains(snapshot.meta)
            base_index = snapshot.meta.index
            last_index = max(last_index, base_index) if keep else base_index
        entries = trim_compacted(entries, base_index)
        if entries:
            check_append(entries, base_index, last_index)
        if hard_state is not None and "forget-vote" in self.bugs:
            # Teaching bug (PySyncObj #202): term and vote are not persisted.
            hard_state = HardState(term=0, vote=None, commit=hard_state.commit)
        if snapshot is None and not entries and hard_state is None:
            return
        record = _Record(snapshot, keep, tuple(entries), hard_state)
        if self._defers_sync:
            if self._visible is self._durable:
                self._visible = self._durable.copy()
            self._unsynced.append(record)
            self._visible.apply(record)
        else:
            self._durable.apply(record)
            self.syncs += 1

    def compact(self, snapshot: Snapshot) -> None:
        state = self._visible.state
        if snapshot.meta.index <= state.base.index:
            return
        if not state.contains(snapshot.meta):
            raise StorageError(
                f"compact: the log has no entry at index {snapshot.meta.index} with term "
                f"{snapshot.meta.term}; a node only snapshots what it applied"
            )
        # The snapshot is written with fsync, which also makes every earlier write durable.
        self.sync()
        self._durable.apply(_Record(snapshot=snapshot, keep=True))

    def close(self) -> None:
        pass

    # -- durability model

    def sync(self) -> None:
        """Make every unsynced record durable (an fsync)."""
        if self._unsynced:
            for record in self._unsynced:
                self._durable.apply(record)
            self._unsynced.clear()
        self._visible = self._durable
        self.syncs += 1

    @property
    def unsynced_records(self) -> int:
        return len(self._unsynced)

    def durably_holds(self, index: int, term: int) -> bool:
        """Does the durable state (what a crash now would keep) hold entry (index, term),
        or a snapshot covering it? For the simulation's invariant checks."""
        state = self._durable.state
        return index <= state.base.index or state.term_at(index) == term

    def crash(self, rng: CrashRandom, *, writeback: bool = False) -> None:
        """Power loss: every unsynced record is lost; maybe a torn tail record.

        With ``writeback`` the page cache had written some of them back: a prefix the rng
        picks survives (never a reordering). The next ``load()`` returns what survived.
        """
        self.crashes += 1
        survivors = 0
        if writeback and self._unsynced:
            survivors = rng.randrange(0, len(self._unsynced) + 1)
        for record in self._unsynced[:survivors]:
            self._durable.apply(record)
        self.lost_records += len(self._unsynced) - survivors
        self._unsynced.clear()
        self._visible = self._durable
        # A torn record is a write in progress at the moment of the crash; it was never
        # acknowledged, so truncating it loses nothing anyone was promised. (The highest
        # answer tears, so an rng that always answers ``stop - 1`` forces a torn tail.)
        last = self.TORN_TAIL_ODDS - 1
        self._torn_tail = rng.randrange(0, self.TORN_TAIL_ODDS) == last

    # -- introspection

    @property
    def last_index(self) -> int:
        return self._visible.state.last_index

    @property
    def durable_hard_state(self) -> HardState:
        return self._durable.state.hard_state

    @property
    def durable_last_index(self) -> int:
        return self._durable.state.last_index
