"""ReadIndex bookkeeping on the leader (§6.4).

A linearizable read without a log entry needs three things:

1. The leader has committed an entry of its own term (its no-op), so its commit index is
   at least that of every earlier leader. Until then reads wait in ``waiting_for_commit``.
2. Leadership is confirmed after the read arrived: a quorum answered a message sent after
   it. Every append the leader sends carries the current heartbeat *round*
   (``Message.read_ctx``) and followers echo it. A read registered while the latest round
   was r needs round r + 1, which is only ever attached to messages sent after the read:
   an echo of >= r + 1 from a quorum (the leader counting itself) confirms it. Many reads
   share one round, so a burst of reads costs one heartbeat broadcast.
3. The driver applies up to the read index before serving (not tracked here).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True, frozen=True)
class PendingRead:
    request_id: int
    index: int  # the commit index when the read was registered
    round: int  # heartbeat round whose echo by a quorum confirms it


@dataclass(slots=True)
class ReadOnly:
    waiting_for_commit: list[int] = field(default_factory=list)
    pending: deque[PendingRead] = field(default_factory=deque)
    acked_round: dict[str, int] = field(default_factory=dict)  # peer -> highest round echoed
    round: int = 0  # last round broadcast (monotonic across terms)
    broadcast_needed: bool = False

    def add(self, request_id: int, commit_index: int) -> None:
        self.pending.append(PendingRead(request_id, commit_index, self.round + 1))
        self.broadcast_needed = True

    def start_round(self) -> int:
        """A heartbeat broadcast is about to leave: it carries a fresh round."""
        self.round += 1
        self.broadcast_needed = False
        return self.round

    def ack(self, peer: str, round_echoed: int) -> None:
        if round_echoed > self.acked_round.get(peer, 0):
            self.acked_round[peer] = round_echoed

    def release_confirmed(
        self, other_voters: tuple[str, ...], quorum: int, self_counts: bool = True
    ) -> list[PendingRead]:
        """Pop, in order, every pending read a quorum has confirmed. The leader counts
        itself only if it is a voter (a leader being removed is not, §4.2.2)."""
        if not self.pending:
            return []
        needed_from_others = quorum - int(self_counts)
        if needed_from_others <= 0:
            confirmed_round = self.pending[-1].round
        else:
            rounds = sorted((self.acked_round.get(p, 0) for p in other_voters), reverse=True)
            confirmed_round = rounds[needed_from_others - 1]
        released: list[PendingRead] = []
        while self.pending and self.pending[0].round <= confirmed_round:
            released.append(self.pending.popleft())
        return released

    def drop_all(self) -> list[int]:
        """Leadership is lost: every read not yet answered is given up."""
        dropped = list(self.waiting_for_commit) + [read.request_id for read in self.pending]
        self.waiting_for_commit.clear()
        self.pending.clear()
        self.acked_round.clear()
        self.broadcast_needed = False
        return dropped
