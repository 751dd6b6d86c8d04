"""A reference model of the Storage contract and a generator of valid operation sequences.

The model is deliberately naive (a dict of index -> entry), written from the protocol's
docstring rather than from ``LogState``, so that the storages are checked against an
independent reading of the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from raftnode.messages import Entry, EntryKind, HardState, RestoredState, Snapshot, SnapshotMeta


@dataclass
class ModelStorage:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: dict[int, Entry] = field(default_factory=dict)

    @property
    def snapshot_index(self) -> int:
        return self.snapshot.meta.index if self.snapshot else 0

    @property
    def last_index(self) -> int:
        return max(self.entries, default=self.snapshot_index)

    def term_at(self, index: int) -> int | None:
        if self.snapshot and index == self.snapshot.meta.index:
            return self.snapshot.meta.term
        entry = self.entries.get(index)
        return entry.term if entry else None

    def persist(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None
    ) -> None:
        if snapshot is not None and snapshot.meta.index > self.snapshot_index:
            if self.term_at(snapshot.meta.index) == snapshot.meta.term:
                self.entries = {i: e for i, e in self.entries.items() if i > snapshot.meta.index}
            else:
                self.entries = {}
            self.snapshot = snapshot
        if entries:
            first = entries[0].index
            self.entries = {i: e for i, e in self.entries.items() if i < first}
            self.entries.update({e.index: e for e in entries})
        if hard_state is not None:
            self.hard_state = hard_state

    def compact(self, snapshot: Snapshot) -> None:
        self.persist(None, [], snapshot)

    def restored(self) -> RestoredState:
        return RestoredState(
            hard_state=self.hard_state,
            snapshot=self.snapshot,
            entries=[self.entries[i] for i in sorted(self.entries)],
        )


def assert_restored_equal(actual: RestoredState, expected: RestoredState) -> None:
    assert actual.hard_state == expected.hard_state
    assert actual.snapshot == expected.snapshot
    assert [(e.index, e.term) for e in actual.entries] == [
        (e.index, e.term) for e in expected.entries
    ]
    assert actual.entries == expected.entries


# An operation: ("persist", hard_state, entries, snapshot) | ("compact", snapshot) | ("reopen",)
Operation = tuple[Any, ...]


@st.composite
def operations(draw: st.DrawFn, max_ops: int = 25) -> list[Operation]:
    """A sequence of operations the core could ask for, generated against the model."""
    model = ModelStorage()
    ops: list[Operation] = []
    for _ in range(draw(st.integers(1, max_ops))):
        choice = draw(
            st.sampled_from(["append", "append", "append", "hs", "compact", "install", "reopen"])
        )
        last_term = max([e.term for e in model.entries.values()] + [model.hard_state.term, 1])
        if choice == "append":
            first = draw(st.integers(model.snapshot_index + 1, model.last_index + 1))
            term = last_term + draw(st.integers(0, 1))
            count = draw(st.integers(1, 6))
            entries = [
                Entry(
                    term=term,
                    index=first + k,
                    kind=draw(st.sampled_from([EntryKind.COMMAND, EntryKind.NOOP])),
                    data=draw(st.binary(max_size=40)),
                )
                for k in range(count)
            ]
            hard_state = None
            if draw(st.booleans()):
                hard_state = HardState(term, draw(st.sampled_from([None, "n1", "n2"])), first)
            op: Operation = ("persist", hard_state, entries, None)
        elif choice == "hs":
            vote = draw(st.sampled_from([None, "n1", "n2", "n3"]))
            hs = HardState(last_term + draw(st.integers(0, 2)), vote, draw(st.integers(0, 50)))
            op = ("persist", hs, [], None)
        elif choice == "compact":
            if model.last_index <= model.snapshot_index:
                continue
            index = draw(st.integers(model.snapshot_index + 1, model.last_index))
            term = model.term_at(index)
            assert term is not None
            op = ("compact", Snapshot(SnapshotMeta(index, term), draw(st.binary(max_size=30))))
        elif choice == "install":
            index = draw(st.integers(model.snapshot_index + 1, model.last_index + 4))
            known = model.term_at(index)
            term = known if known is not None and draw(st.booleans()) else last_term + 1
            snapshot = Snapshot(SnapshotMeta(index, term), draw(st.binary(max_size=30)))
            entries = []
            if draw(st.booleans()):
                # A leader's snapshot followed by the entries after it, in one Ready.
                entries = [
                    Entry(term, index + 1 + k, EntryKind.COMMAND, b"after") for k in range(2)
                ]
            op = ("persist", HardState(term, None, index), entries, snapshot)
        else:
            op = ("reopen",)
        apply_to_model(model, op)
        ops.append(op)
    return ops


def apply_to_model(model: ModelStorage, op: Operation) -> None:
    if op[0] == "persist":
        model.persist(op[1], op[2], op[3])
    elif op[0] == "compact":
        model.compact(op[1])
