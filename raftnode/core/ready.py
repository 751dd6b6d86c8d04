"""Ready: one batch of work the core hands its driver, and ReadState."""

from __future__ import annotations

from dataclasses import dataclass, field

from raftnode.messages import Entry, HardState, Message, Snapshot


@dataclass(slots=True, frozen=True)
class ReadState:
    """A ReadIndex answer (§6.4): the read ``request_id`` may be served from local state
    once the driver has applied up to ``index``."""

    request_id: int
    index: int


@dataclass(slots=True)
class Ready:
    """Everything the driver must do, in this order (the persist-before-send contract):

    1. Persist ``hard_state`` (if not None), ``entries`` (overwriting every stored entry
       from ``entries[0].index`` on) and ``snapshot`` (if not None) — one durable write,
       one fsync. ``entries`` are all after ``snapshot``'s index when both are set.
    2. Only THEN send ``messages``. A vote grant depends on the vote being durable, an
       append response on the entries being durable (Raft dissertation §3.8); sending
       before the fsync returns lets a crash undo a promise another node already counted.
    3. Restore the state machine from ``snapshot`` if set, then apply
       ``committed_entries`` in order (noop entries advance the applied index only).
    4. Answer each ``ReadState`` once the applied index is >= its index; fail the
       ``dropped_reads`` (the client retries elsewhere).
    5. Call ``core.advance(ready)``. Then, if ``should_snapshot``, take a state-machine
       snapshot at ``committed_entries[-1]`` (its index and term), store it, and hand it
       to ``core.compact``.

    ``ready()`` may not be called again before ``advance()``; ``step``/``tick``/``propose``
    may be called in between (their effects come in the next Ready).
    """

    hard_state: HardState | None = None  # persist if not None
    entries: list[Entry] = field(
        default_factory=list
    )  # persist (overwriting from entries[0].index)
    snapshot: Snapshot | None = (
        None  # received from the leader: persist, then restore the state machine
    )
    messages: list[Message] = field(
        default_factory=list
    )  # send only AFTER the three above are durable (§3.8)
    committed_entries: list[Entry] = field(default_factory=list)  # apply in order after persisting
    read_states: list[ReadState] = field(default_factory=list)  # answer once applied >= index
    dropped_reads: list[int] = field(default_factory=list)  # request ids given up (leadership lost)
    should_snapshot: bool = False  # applied - snapshot index >= snapshot_threshold
    role_changed: bool = False  # for logging: see status()

    def is_empty(self) -> bool:
        return not (
            self.hard_state is not None
            or self.entries
            or self.snapshot is not None
            or self.messages
            or self.committed_entries
            or self.read_states
            or self.dropped_reads
            or self.should_snapshot
            or self.role_changed
        )
