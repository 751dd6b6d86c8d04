"""RaftLog: the in-memory log of one node, with its snapshot offset.

Indexes start at 1; index 0 (term 0) is the empty prefix every log shares. Entries at or
below ``snapshot_index`` are compacted away: their terms are unknown except the last one
(``snapshot_term``). The log also tracks three cursors for the driver:

- ``committed``: highest index known committed (§5.3); never regresses.
- ``applied``: highest index the driver has applied (or restored from a snapshot).
- ``unstable_from``: entries at or after it have not yet been handed out to persist.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from raftnode.core.errors import InvariantViolation
from raftnode.messages import Entry, Snapshot, SnapshotMeta


def _term_of(entry: Entry) -> int:
    return entry.term


class RaftLog:
    __slots__ = (
        "snapshot",
        "snapshot_index",
        "snapshot_term",
        "_entries",
        "committed",
        "applied",
        "unstable_from",
        "strict",
    )

    def __init__(
        self,
        snapshot: Snapshot | None = None,
        entries: list[Entry] | None = None,
        committed: int = 0,
        strict: bool = True,
    ) -> None:
        self.snapshot: Snapshot | None = snapshot
        meta = snapshot.meta if snapshot is not None else SnapshotMeta()
        self.snapshot_index = meta.index
        self.snapshot_term = meta.term
        self._entries: list[Entry] = list(entries or [])
        self.strict = strict
        expected = self.snapshot_index + 1
        previous_term = self.snapshot_term
        for entry in self._entries:
            if entry.index != expected:
                raise ValueError(
                    f"restored log is not contiguous: expected index {expected}, got {entry.index}"
                )
            if entry.term < previous_term and strict:
                # Only a log damaged by a teaching bug (two leaders in one term, lost
                # writes) looks like this; with a bug on, carry on so the harness sees it.
                raise ValueError(
                    f"restored log has terms going backwards at index {entry.index} "
                    f"({previous_term} then {entry.term})"
                )
            expected += 1
            previous_term = entry.term
        self.committed = max(committed, self.snapshot_index)
        if self.committed > self.last_index:
            # Only possible if storage lost entries it had acknowledged (e.g. the no-fsync
            # teaching bug). Refuse in strict mode rather than claim what we do not hold.
            if strict:
                raise ValueError(
                    f"restored commit index {self.committed} is beyond the last log index "
                    f"{self.last_index}: storage lost committed entries"
                )
            self.committed = self.last_index
        self.applied = self.snapshot_index
        self.unstable_from = self.last_index + 1

    # ----------------------------------------------------------------- queries

    @property
    def first_index(self) -> int:
        return self.snapshot_index + 1

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.snapshot_term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index``; None if compacted away or beyond the end."""
        if index == self.snapshot_index:
            return self.snapshot_term
        if index < self.snapshot_index or index > self.last_index:
            return None
        return self._entries[index - self.snapshot_index - 1].term

    def entry_at(self, index: int) -> Entry | None:
        if index <= self.snapshot_index or index > self.last_index:
            return None
        return self._entries[index - self.snapshot_index - 1]

    def slice(self, low: int, high: int) -> list[Entry]:
        """Entries with low <= index < high (both within first_index..last_index+1)."""
        if low < self.first_index or high > self.last_index + 1 or low > high:
            raise IndexError(
                f"slice [{low}, {high}) outside the log [{self.first_index}, {self.last_index + 1})"
            )
        offset = self.snapshot_index + 1
        return self._entries[low - offset : high - offset]

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """The election restriction (§5.4.1): is a log ending at (last_index, last_term)
        at least as up-to-date as ours? Later last term wins; equal terms, longer log wins."""
        return (last_term, last_index) >= (self.last_term, self.last_index)

    def find_conflict(self, entries: list[Entry]) -> int:
        """Index of the first entry that is new or whose term differs from ours; 0 if all
        of ``entries`` are already in the log (§5.3: delete only on a real conflict)."""
        for entry in entries:
            if self.term_at(entry.index) != entry.term:
                return entry.index
        return 0

    def conflict_hint(self, prev_index: int) -> tuple[int, int]:
        """The fast back-off hint a follower returns when (prev_index, prev_term) does not
        match (§5.3, end: "the follower can include the term of the conflicting entry and
        the first index it stores for that term"). Returns (conflict_index, conflict_term):
        our last index + 1 and term 0 when the log is too short."""
        if prev_index > self.last_index:
            return self.last_index + 1, 0
        term = self.term_at(prev_index)
        if term is None:  # compacted: everything up to the snapshot is committed
            return self.snapshot_index + 1, 0
        position = bisect_left(self._entries, term, key=_term_of)
        return self.snapshot_index + 1 + position, term

    def last_index_of_term(self, term: int) -> int:
        """The last index whose entry has ``term`` (0 if none in the uncompacted log)."""
        position = bisect_right(self._entries, term, key=_term_of)
        if position > 0 and self._entries[position - 1].term == term:
            return self.snapshot_index + position
        if position == 0 and self.snapshot_term == term and self.snapshot_index > 0:
            return self.snapshot_index
        return 0

    # ----------------------------------------------------------------- changes

    def append(self, entries: list[Entry]) -> None:
        """Store ``entries``, which start at most one past our last index, discarding
        every entry from ``entries[0].index`` on (the caller decided it conflicts)."""
        if not entries:
            return
        start = entries[0].index
        if start > self.last_index + 1 or start <= self.snapshot_index:
            raise InvariantViolation(
                f"log matching: append at index {start} to a log spanning "
                f"[{self.first_index}, {self.last_index}]"
            )
        if start <= self.committed and self.strict:
            raise InvariantViolation(
                f"would overwrite committed entry {start} (commit index {self.committed})"
            )
        del self._entries[start - self.snapshot_index - 1 :]
        self._entries.extend(entries)
        self.unstable_from = min(self.unstable_from, start)
        if self.committed > self.last_index:  # only reachable with a bug switch on
            self.committed = self.last_index

    def truncate_after(self, index: int) -> None:
        """Drop every entry after ``index``. Only the truncate-always bug calls this
        directly; correct code truncates through ``append`` on a real conflict."""
        if index < self.last_index:
            del self._entries[max(index - self.snapshot_index, 0) :]
            self.unstable_from = min(self.unstable_from, index + 1)

    def commit_to(self, index: int, allow_regress: bool = False) -> bool:
        """Raise the commit index; True if it moved. Commit never regresses (§5.3) and
        never points past the log."""
        if index > self.last_index:
            raise InvariantViolation(
                f"commit index {index} beyond the last log index {self.last_index}"
            )
        if index < self.committed:
            if allow_regress:  # the commit-regress teaching bug
                # Even that bug cannot un-commit what a snapshot already holds.
                self.committed = max(index, self.snapshot_index)
                return True
            raise InvariantViolation(f"commit index would regress from {self.committed} to {index}")
        if index == self.committed:
            return False
        self.committed = index
        return True

    # ------------------------------------------------------- driver hand-off

    def unstable_entries(self) -> list[Entry]:
        if self.unstable_from > self.last_index:
            return []
        return self.slice(max(self.unstable_from, self.first_index), self.last_index + 1)

    def stable_to(self, index: int, term: int) -> None:
        """The driver made entries up to (index, term) durable. Ignored if the log changed
        under that index in the meantime (a truncation between ready() and advance())."""
        if self.term_at(index) == term and index >= self.unstable_from:
            self.unstable_from = index + 1

    def next_committed_entries(self, limit: int) -> list[Entry]:
        """Committed entries not yet applied (at most ``limit``), after any snapshot."""
        start = max(self.applied, self.snapshot_index) + 1
        end = min(self.committed, self.last_index, start + limit - 1)
        if end < start:
            return []
        return self.slice(start, end + 1)

    def has_next_committed(self) -> bool:
        return min(self.committed, self.last_index) > max(self.applied, self.snapshot_index)

    def applied_to(self, index: int) -> None:
        if index < self.applied:
            return  # a snapshot restored meanwhile moved applied further
        if index > self.committed and self.strict:
            raise InvariantViolation(f"applied {index} beyond the commit index {self.committed}")
        self.applied = index

    # -------------------------------------------------------------- snapshots

    def compact(self, snapshot: Snapshot) -> bool:
        """Drop entries up to the snapshot the driver took at an applied index. False (and
        nothing changes) if we already hold a snapshot at least as recent."""
        index, term = snapshot.meta.index, snapshot.meta.term
        if index <= self.snapshot_index:
            return False
        if index > self.applied:
            raise ValueError(
                f"compact at index {index} beyond the applied index {self.applied}: a snapshot "
                "must be taken from the state machine at an applied index"
            )
        if self.term_at(index) != term:
            raise ValueError(
                f"compact at index {index} with term {term}, but the log has term "
                f"{self.term_at(index)} there"
            )
        del self._entries[: index - self.snapshot_index]
        self.snapshot = snapshot
        self.snapshot_index = index
        self.snapshot_term = term
        return True

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log with a snapshot received from the leader (§7)."""
        self._entries = []
        self.snapshot = snapshot
        self.snapshot_index = snapshot.meta.index
        self.snapshot_term = snapshot.meta.term
        self.committed = max(self.committed, snapshot.meta.index)
        self.unstable_from = snapshot.meta.index + 1
