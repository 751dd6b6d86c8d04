"""The operator's way out of a refused WAL: cut it at a record boundary, knowing the cost.

A node refuses to start on a corrupt record (see ``raftnode.storage.wal``): the record
held something it acknowledged, and only a person can decide to give that up. ``plan``
says what a cut at ``(segment, offset)`` drops - how many records, which entry indexes,
which hard states, which later segments - and what the node then restarts from (the hard
state, the last index, whether damage remains); ``apply`` performs it under the data
directory's lock (never beside a running node), with fsyncs. Nothing else is touched:
snapshot files stay (a snapshot is only ever written for applied, committed entries); when
the cut drops the record naming the newest one, load (and so the plan) falls back to the
snapshot before it if that one and the log after it are still whole, as after a crash.

What a cut costs: a node that forgets a vote may vote twice in a term, and one that
forgets acknowledged entries may let a committed entry be lost if a majority forgets it
(the dissertation's §3.8 assumes durable storage). Rebuilding the node from an empty data
directory (it then catches up from the leader) is the other way out.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raftnode.messages import HardState, SnapshotMeta
from raftnode.storage.interface import StorageError
from raftnode.storage.wal import (
    SNAPSHOT_NAME,
    _fsync_dir,
    _read_snapshot,
    _Replay,
    _scan,
    _valid_record_after,
    segment_paths,
)


class TruncationError(ValueError):
    """The cut asked for cannot be made (no such segment, not a record boundary)."""


@dataclass(slots=True)
class TruncationPlan:
    data_dir: Path
    segment: Path
    offset: int
    segment_size: int
    dropped_records: int = 0  # readable records dropped (at and after the cut)
    damaged_bytes: int = 0  # unreadable bytes dropped
    removed_segments: list[Path] = field(default_factory=list)
    entry_range: tuple[int, int] | None = None  # lowest and highest entry index dropped
    dropped_hard_states: list[list[Any]] = field(default_factory=list)  # [term, vote, commit]
    kept_hard_state: HardState | None = None  # what the node restarts from
    kept_last_index: int | None = None
    kept_snapshot_index: int = 0
    remaining_damage: str | None = None  # why the node would still refuse, if it would

    @property
    def changes_anything(self) -> bool:
        return self.offset < self.segment_size or bool(self.removed_segments)

    def describe(self) -> str:
        """What the cut drops and keeps, in a few lines for a person deciding."""
        lines = [
            f"truncate {self.segment} at byte offset {self.offset} (of {self.segment_size} bytes)"
        ]
        if not self.changes_anything:
            lines.append("drops nothing: the offset is the end of the newest segment")
            return "\n".join(lines)
        dropped = [f"{self.dropped_records} readable record(s)"]
        if self.damaged_bytes:
            dropped.append(
                f"{self.damaged_bytes} unreadable byte(s) (damaged record(s): what they held "
                "cannot be known)"
            )
        lines.append("drops " + " and ".join(dropped))
        if self.entry_range is None:
            lines.append("  entries: none")
        else:
            first, last = self.entry_range
            lines.append(f"  entries: indexes {first}..{last} as written in those records")
        if self.dropped_hard_states:
            term, vote, commit = self.dropped_hard_states[-1]
            lines.append(
                f"  hard states: {len(self.dropped_hard_states)}, the newest term {term} "
                f"vote {vote!r} commit {commit}"
            )
        else:
            lines.append("  hard states: none")
        if self.removed_segments:
            names = ", ".join(path.name for path in self.removed_segments)
            lines.append(f"  removes the later segment(s) {names}")
        if self.kept_hard_state is not None:
            hs = self.kept_hard_state
            lines.append(
                f"keeps: term {hs.term} vote {hs.vote!r} commit {hs.commit}; log up to index "
                f"{self.kept_last_index} (snapshot index {self.kept_snapshot_index})"
            )
        if self.remaining_damage is not None:
            lines.append(f"the node will still refuse to start: {self.remaining_damage}")
        return "\n".join(lines)


def _records_from(data: bytes, start: int) -> tuple[list[Any], int]:
    """The payloads of the readable records at and after ``start``, and the bytes between
    them that are not (resynchronising on the record magic after damage)."""
    payloads: list[Any] = []
    damaged = 0
    position: int | None = start
    while position is not None and position < len(data):
        scan = _scan(data[position:])
        payloads.extend(payload for _, _, payload in scan.records)
        if scan.problem is None:
            break
        bad = position + scan.valid_end
        position = _valid_record_after(data, bad + 1)
        damaged += (len(data) if position is None else position) - bad
    return payloads, damaged


def _account(plan: TruncationPlan, payloads: list[Any]) -> None:
    for payload in payloads:
        plan.dropped_records += 1
        if not isinstance(payload, list) or not payload:
            continue
        if payload[0] != "persist" or len(payload) != 4:
            continue  # a segment header repeats the state before it; a snapshot marker
        parts = payload[2:4]
        entries_part, hard_state = parts
        try:
            if entries_part is not None:
                first, items = entries_part[0], entries_part[1]
                low, high = first, first + len(items) - 1
                if plan.entry_range is not None:
                    low = min(low, plan.entry_range[0])
                    high = max(high, plan.entry_range[1])
                plan.entry_range = (low, high)
            if hard_state is not None:
                plan.dropped_hard_states.append(list(hard_state))
        except (TypeError, IndexError):
            continue  # a record the replay would refuse anyway; counted, not described


def _snapshot_metas(data_dir: Path) -> list[SnapshotMeta]:
    """The newest snapshot's meta (read from the file) after the older ones' (from their
    names): the floors load may use."""
    snap_dir = data_dir / "snap"
    names = sorted(
        (
            (int(match.group(1)), int(match.group(2)), path)
            for path in (snap_dir.iterdir() if snap_dir.is_dir() else [])
            if (match := SNAPSHOT_NAME.match(path.name))
        ),
    )
    if not names:
        return []
    older = [SnapshotMeta(index=index, term=term) for index, term, _ in names[:-1]]
    return [*older, _read_snapshot(names[-1][2]).meta]


def boundaries(data: bytes) -> list[int]:
    """Where a segment may be cut: the start of each readable record up to the first
    damage, the damage itself, and the end of the file when it is whole."""
    scan = _scan(data)
    return [offset for offset, _, _ in scan.records] + [scan.valid_end]


def find_segment(data_dir: Path, name: str | None) -> Path:
    """The segment called ``name`` (``00000003.seg`` or ``3``); by default the first one
    with damage, else the newest."""
    paths = segment_paths(data_dir)
    if not paths:
        raise TruncationError(f"{data_dir / 'wal'}: no WAL segment")
    if name is None:
        for path in paths:
            if _scan(path.read_bytes()).problem is not None:
                return path
        return paths[-1]
    for path in paths:
        if name in (path.name, path.stem, str(path)) or (
            name.isdigit() and int(name) == int(path.stem)
        ):
            return path
    raise TruncationError(
        f"no segment {name!r} in {data_dir / 'wal'} (there are {', '.join(p.name for p in paths)})"
    )


def plan(
    data_dir: str | os.PathLike[str], offset: int, segment: str | None = None
) -> TruncationPlan:
    """What cutting ``segment`` at ``offset`` would drop and keep (nothing is changed)."""
    data_dir = Path(data_dir)
    path = find_segment(data_dir, segment)
    data = path.read_bytes()
    allowed = boundaries(data)
    if offset not in allowed:
        below = [b for b in allowed if b < offset]
        above = [b for b in allowed if b > offset]
        near = ", ".join(str(b) for b in (below[-1:] + above[:1]))
        raise TruncationError(
            f"byte offset {offset} is not a record boundary of {path} "
            f"(the nearest: {near or 'none'}; `raftlab wal inspect {data_dir}` lists them)"
        )
    paths = segment_paths(data_dir)
    later = paths[paths.index(path) + 1 :]
    result = TruncationPlan(data_dir, path, offset, len(data), removed_segments=list(later))
    payloads, damaged = _records_from(data, offset)
    _account(result, payloads)
    result.damaged_bytes += damaged
    for other in later:
        payloads, damaged = _records_from(other.read_bytes(), 0)
        _account(result, payloads)
        result.damaged_bytes += damaged
    _plan_kept(result, paths[: paths.index(path)], data[:offset])
    return result


def _plan_kept(result: TruncationPlan, earlier: list[Path], kept_tail: bytes) -> None:
    """Replay what the cut keeps, as ``FileStorage.load`` would."""
    try:
        floors = _snapshot_metas(result.data_dir)
    except StorageError as error:
        result.remaining_damage = str(error)
        return
    pieces = [(p, p.read_bytes()) for p in earlier] + [(result.segment, kept_tail)]
    floor = floors[-1] if floors else SnapshotMeta()
    replay = _replay_pieces(floor, pieces)
    if isinstance(replay, str):
        result.remaining_damage = replay
        return
    if floors and (floor.index, floor.term) not in replay.named:
        # As load does: a snapshot no kept record names gives way to the state before it
        # when that state is whole (see FileStorage.load).
        before = _replay_pieces(floors[-2] if len(floors) > 1 else SnapshotMeta(), pieces)
        if not isinstance(before, str):
            replay = before
    state = replay.finish()
    result.kept_hard_state = state.hard_state
    result.kept_last_index = state.last_index
    result.kept_snapshot_index = state.base.index


def _replay_pieces(floor: SnapshotMeta, pieces: list[tuple[Path, bytes]]) -> _Replay | str:
    """The replay of ``pieces`` above ``floor``, or why it fails."""
    replay = _Replay(floor)
    for path, data in pieces:
        scan = _scan(data)
        if scan.problem is not None:
            return f"{path}: damaged record at byte offset {scan.valid_end} ({scan.problem})"
        for offset, _, payload in scan.records:
            try:
                replay.apply(payload)
            except (ValueError, TypeError, StorageError) as error:
                return f"{path}: bad record at byte offset {offset}: {error}"
    return replay


def apply(result: TruncationPlan) -> None:
    """Make the cut: under the data directory's lock, the segment truncated and fsynced,
    the later segments removed (newest first), the directory fsynced."""
    lock_path = result.data_dir / "LOCK"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StorageError(
                f"{result.data_dir}: data directory is in use by another process (a running "
                "node?): stop it first"
            ) from None
        if result.segment.stat().st_size != result.segment_size:
            raise StorageError(f"{result.segment} changed since the plan was made; plan again")
        with open(result.segment, "r+b") as handle:
            handle.truncate(result.offset)
            handle.flush()
            os.fsync(handle.fileno())
        for path in reversed(result.removed_segments):
            path.unlink()
        _fsync_dir(result.segment.parent)
    finally:
        os.close(fd)  # releases the flock
