"""Progress: the leader's view of one follower (as etcd-io/raft's tracker.Progress).

A follower is in one of three states:

- PROBE: we do not know where its log matches ours. Send one append at a time (the
  "probe") and wait for its answer or the next heartbeat before sending another; each
  rejection moves ``next`` back using the follower's conflict hint.
- REPLICATE: its log matches up to ``match``; stream appends optimistically (``next``
  runs ahead of ``match``), at most ``max_inflight`` unacknowledged at once — the
  pipelining bound, so a slow follower cannot make the leader queue without limit.
- SNAPSHOT: the entries it needs are compacted; an InstallSnapshot is in flight and
  nothing else is sent until it is answered (or times out and we probe again).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class ProgressState(StrEnum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@dataclass(slots=True)
class Progress:
    next: int  # index of the next entry to send
    max_inflight: int
    match: int = 0  # highest index known to be replicated on the follower
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False  # PROBE: an append is outstanding
    inflight: deque[int] = field(
        default_factory=deque
    )  # REPLICATE: last index of each append in flight
    pending_snapshot: int = 0  # SNAPSHOT: index of the snapshot sent
    snapshot_elapsed: int = 0  # SNAPSHOT: ticks since it was sent
    recent_active: bool = False  # heard from within the current check-quorum window (§6.2)

    def become_probe(self) -> None:
        self.state = ProgressState.PROBE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflight.clear()
        self.pending_snapshot = 0

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflight.clear()

    def become_snapshot(self, snapshot_index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = snapshot_index
        self.snapshot_elapsed = 0
        self.probe_sent = False
        self.inflight.clear()

    def is_paused(self) -> bool:
        """May nothing more be sent right now (flow control)?"""
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return len(self.inflight) >= self.max_inflight
        return True

    def maybe_update(self, match: int) -> bool:
        """The follower acknowledged up to ``match``; True if that is news."""
        if match <= self.match:
            return False
        self.match = match
        self.next = max(self.next, match + 1)
        self.probe_sent = False
        return True

    def sent_entries(self, last_index: int) -> None:
        """An append carrying entries up to ``last_index`` just left."""
        if self.state is ProgressState.REPLICATE:
            self.next = last_index + 1
            self.inflight.append(last_index)
        else:
            self.probe_sent = True

    def free_inflight_to(self, index: int) -> None:
        while self.inflight and self.inflight[0] <= index:
            self.inflight.popleft()

    def back_off_to(self, next_index: int, last_index: int) -> None:
        """After a rejection: resume probing at ``next_index`` (kept within
        match+1 .. last_index+1: never below what the follower has acknowledged)."""
        self.state = ProgressState.PROBE
        self.inflight.clear()
        self.probe_sent = False
        self.next = min(max(next_index, self.match + 1), last_index + 1)
