"""The file-backed storage: a CRC-checked write-ahead log in segments, plus snapshot files.

Layout of a data directory (stable: the disk nemesis and humans rely on it)::

    DATA_DIR/
      LOCK                                   flock'ed while a FileStorage has it open
      wal/00000001.seg, 00000002.seg, ...    WAL segments, numbered from 1, 8 digits; the
                                             highest number is the newest (the one appended to)
      snap/<index:020d>-<term:020d>.snap     the newest snapshot (older ones are deleted)
      snap/*.tmp                             a snapshot being written; ignored and removed on load

A segment is a sequence of records, each::

    magic b"RWAL" | payload length u32 | crc32(payload) u32 | crc32(first 12 bytes) u32 | payload

(big-endian; ``zlib.crc32``). The header has its own checksum so that a damaged length is
recognised as damage instead of being trusted. The payload is a msgpack list:

- ``["seg", number, term, vote, commit, snap_index, snap_term]`` - first record of every
  segment (written and fsynced on its own): the hard state and snapshot at the time the
  segment was opened, so that older segments can be deleted without losing the hard state.
- ``["persist", snapshot, entries, hard_state]`` - one ``persist`` call, each part ``nil``
  when absent, applied in this order:

  - ``snapshot = [index, term, keep]``: a snapshot marker: a snapshot now covers the log
    up to ``index``; ``keep`` says whether the entries after it survive (decided once,
    when the snapshot is persisted, from whether the log holds its last entry).
  - ``entries = [first_index, [[term, kind, data], ...]]``: entries from ``first_index``,
    which also means "discard every stored entry at or after first_index". Truncation and
    new entries are one record under one checksum, so no crash leaves a truncated but
    unrefilled log, and an overwrite costs nothing extra.
  - ``hard_state = [term, vote, commit]`` (§3.8: durable before any vote or append
    response that depends on it leaves).

- ``["snap", index, term, true]`` - the marker of a snapshot the node took (``compact``).

Why one record per ``persist`` (and not one per entry batch / hard state): a crash during
a write may persist its sectors out of order, so a torn write is not always a prefix.
With one write being one record, at most one record - the last - can be torn: a record
with anything after it was durable before the next write began (the next write starts
only after this one's fsync), and the torn record is wholly the write in progress (never
acknowledged), so dropping it drops nothing that was promised.

A snapshot file is ``b"RSNP" | payload length u64 | crc32(payload) u32 | payload``, the
payload a msgpack map ``{"index", "term", "data"}``; it is written to a temp file, fsynced,
renamed and the directory fsynced, so it is either wholly there or not at all. It is
written before the WAL record that names it (a ``persist`` marker or a ``snap`` record), and
that record is the commit point: a file no record names is the write of a crash that came
between the two, never acknowledged, and load reads the state before it (see ``load``).

Group commit: one ``persist`` call is one record, one ``write`` and one ``fsync`` (plus,
when it opens a new segment, the header's fsync and a directory fsync; and a received
snapshot's own file fsyncs).

Recovery (``load``): every record of every segment is checked. The first bad record is
either a torn write or corruption, told apart as etcd's WAL decoder does
(``server/storage/wal/decoder.go``: a short record, or a damaged one with a zero-filled
sector, in the last file only), with two refinements below (zeros at a record's end, and
an exact check when the zeros are few):

- A **torn write** is the one write in progress when the machine stopped: never fsynced,
  so never acknowledged. It sits at the tail of the newest segment with nothing but zeros
  after it, and it is what a crash can leave of one ``write``: a *prefix* of the record,
  possibly followed by zeros (file space whose new size reached the disk before its
  data), or with whole sectors that were not written and read as zeros (sectors persisted
  out of order) - never other bytes. So the bad record is torn when it is *short* (fewer
  bytes than a header, or fewer than its intact header announces), or when the bytes that
  fail lie in *zero-filled space*: with a damaged header, part of the header reads as
  zeros (a zero run to the end of the file, or a 512-byte sector aligned on the file, as
  etcd's ``minSectorSize``); with an intact header, the record ends in zeros or has a
  sector that reads as zeros. When those zeros are at most ``EXACT_CHECK_BYTES`` bytes
  (a record may end in zeros of its own: a commit index of 0 ends its hard state), the
  rule is checked exactly instead: some filling of them must give the record's checksum.
  A torn write is truncated (and logged); the node starts from the state before it.
- Anything else is **corruption** of data that was acknowledged (a flipped byte in a
  complete record: a vote granted, an append acknowledged; truncating it could make the
  node vote twice in a term): damage in a segment that is not the newest, damage followed
  by a valid record or by non-zero bytes, a complete record failing its checksum with no
  zero-filled part, a checksummed record that does not decode. ``load`` raises
  ``StorageError`` naming the file and the byte offset and changes nothing; the node
  refuses to start. The operator decides: ``raftlab wal inspect DIR`` shows the records,
  ``raftlab wal truncate DIR --at OFFSET`` drops a record and everything after it.

What the rule cannot see: a flipped byte in a complete last record that *also* holds
zeros of its own where a torn write leaves them (more than ``EXACT_CHECK_BYTES`` zero
bytes at its end, or an aligned sector of zero entry data) is taken for a torn write, as
in etcd; so is a byte whose flip leaves zeros there.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from raftnode.messages import (
    Entry,
    EntryKind,
    HardState,
    RestoredState,
    Snapshot,
    SnapshotMeta,
    conf_from_wire,
    conf_to_wire,
)
from raftnode.storage.interface import StorageError
from raftnode.storage.logstate import LogState, check_append, check_contiguous, trim_compacted

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024

RECORD_MAGIC = b"RWAL"
RECORD_HEADER = struct.Struct(">4sIII")  # magic, payload length, payload crc, header crc
SNAPSHOT_MAGIC = b"RSNP"
SNAPSHOT_HEADER = struct.Struct(">4sQI")  # magic, payload length, payload crc

# Torn-write detection (see the module docstring).
SECTOR_BYTES = 512  # the smallest sector a disk writes whole (etcd's minSectorSize)
EXACT_CHECK_BYTES = 2  # zero bytes few enough to try every filling of (65536 checksums)

SEGMENT_NAME = re.compile(r"^(\d{8})\.seg$")
SNAPSHOT_NAME = re.compile(r"^(\d{20})-(\d{20})\.snap$")

# "g" (configuration, §4.1): the core rebuilds the configuration from these on restart.
_KIND_CODES = {EntryKind.COMMAND: "c", EntryKind.NOOP: "n", EntryKind.CONFIG: "g"}
_KIND_FROM_CODE = {code: kind for kind, code in _KIND_CODES.items()}

_logger = logging.getLogger("raftnode.storage")


def segment_name(number: int) -> str:
    return f"{number:08d}.seg"


def snapshot_name(meta: SnapshotMeta) -> str:
    return f"{meta.index:020d}-{meta.term:020d}.snap"


def segment_paths(data_dir: str | os.PathLike[str]) -> list[Path]:
    """The WAL segment files of a data directory, oldest first."""
    wal_dir = Path(data_dir) / "wal"
    if not wal_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in wal_dir.iterdir() if (m := SEGMENT_NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def newest_segment(data_dir: str | os.PathLike[str]) -> Path | None:
    """The segment a node appends to (the disk nemesis truncates or flips bytes in it)."""
    paths = segment_paths(data_dir)
    return paths[-1] if paths else None


# --- records -------------------------------------------------------------------------


def encode_record(payload: list[Any]) -> bytes:
    body = msgpack.packb(payload, use_bin_type=True)
    head = struct.pack(">4sII", RECORD_MAGIC, len(body), zlib.crc32(body))
    return head + struct.pack(">I", zlib.crc32(head)) + body


def _hard_state_fields(hs: HardState) -> list[Any]:
    return [hs.term, hs.vote, hs.commit]


def _segment_record(number: int, state: LogState) -> list[Any]:
    base = state.base
    return ["seg", number, *_hard_state_fields(state.hard_state), base.index, base.term]


def _entries_part(entries: list[Entry]) -> list[Any]:
    return [entries[0].index, [[e.term, _KIND_CODES[e.kind], e.data] for e in entries]]


@dataclass(slots=True)
class _Scan:
    records: list[tuple[int, int, Any]]  # (offset, size in bytes, decoded payload)
    valid_end: int  # byte offset just after the last valid record
    problem: str | None  # why the scan stopped before the end of the file


def _record_at(data: bytes | memoryview, offset: int) -> tuple[int, Any] | str:
    """The (size, payload) of the record at ``offset``, or why there is none."""
    remaining = len(data) - offset
    if remaining < RECORD_HEADER.size:
        return f"incomplete record header ({remaining} of {RECORD_HEADER.size} bytes)"
    magic, length, payload_crc, header_crc = RECORD_HEADER.unpack_from(data, offset)
    if magic != RECORD_MAGIC:
        return f"bad record magic {bytes(magic)!r}"
    if zlib.crc32(data[offset : offset + 12]) != header_crc:
        return "record header checksum mismatch"
    end = offset + RECORD_HEADER.size + length
    if end > len(data):
        return f"record of {length} payload bytes extends past the end of the file"
    body = data[offset + RECORD_HEADER.size : end]
    if zlib.crc32(body) != payload_crc:
        return "record payload checksum mismatch"
    try:
        payload = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # any decoding failure of checksummed bytes is damage
        return f"undecodable record payload ({exc})"
    return end - offset, payload


def _scan(data: bytes) -> _Scan:
    records: list[tuple[int, int, Any]] = []
    offset = 0
    view = memoryview(data)
    while offset < len(data):
        found = _record_at(view, offset)
        if isinstance(found, str):
            return _Scan(records, offset, found)
        size, payload = found
        records.append((offset, size, payload))
        offset += size
    return _Scan(records, offset, None)


def _valid_record_after(data: bytes, start: int) -> int | None:
    """The offset of the first wholly valid record at or after ``start``, if any."""
    view = memoryview(data)
    position = data.find(RECORD_MAGIC, start)
    while position != -1:
        if not isinstance(_record_at(view, position), str):
            return position
        position = data.find(RECORD_MAGIC, position + 1)
    return None


@dataclass(slots=True, frozen=True)
class Damage:
    """The first bad record of a segment, judged: a torn write or corruption."""

    file: Path
    offset: int  # where the bad record starts (the end of the last valid one)
    problem: str  # what is wrong with the bytes there
    torn: bool  # True: the write in progress at a crash (truncated on load)
    reason: str  # why it is judged so
    following: int | None  # the offset of a valid record after it, if any

    def refusal(self) -> str:
        """The message of a node that will not start on this damage."""
        data_dir = self.file.parent.parent
        return (
            f"{self.file}: corrupt record at byte offset {self.offset} ({self.problem}): "
            f"{self.reason}. This is not a torn write but damage to data that was "
            "acknowledged; refusing to start rather than drop it (nothing was changed). "
            f"`raftlab wal inspect {data_dir}` lists the records; "
            f"`raftlab wal truncate {data_dir} --at {self.offset} --segment {self.file.name}` "
            "drops this record and everything after it, and with them what they held"
        )


def _header_length(data: bytes | memoryview, offset: int) -> int | None:
    """The payload length the header at ``offset`` announces, if that header is intact."""
    if len(data) - offset < RECORD_HEADER.size:
        return None
    magic, length, _, header_crc = RECORD_HEADER.unpack_from(data, offset)
    if magic != RECORD_MAGIC or zlib.crc32(data[offset : offset + 12]) != header_crc:
        return None
    return length


def _zero_sectors(data: bytes | memoryview, start: int, end: int) -> list[tuple[int, int]]:
    """The pieces of ``[start, end)``, split on file-aligned sector boundaries, that read
    as all zeros (etcd's ``isTornEntry`` splits a record the same way)."""
    zero = []
    position = start
    while position < end:
        stop = min(end, (position // SECTOR_BYTES + 1) * SECTOR_BYTES)
        if _all_zero(data[position:stop]):
            zero.append((position, stop))
        position = stop
    return zero


def _some_filling_matches(
    data: bytes, body_start: int, body_end: int, holes: list[tuple[int, int]], crc: int
) -> bool:
    """Could the zero bytes in ``holes`` have been anything that gives the body ``crc``?

    Only called with at most EXACT_CHECK_BYTES unknown bytes; a random filling matches a
    CRC-32 with probability 2^-32, so 65536 tries leave a 1.5e-5 chance of a false match.
    """
    positions = [p for start, stop in holes for p in range(max(start, body_start), stop)]
    if not positions:
        return False
    first = positions[0]
    prefix_crc = zlib.crc32(data[body_start:first])
    rest = bytearray(data[first:body_end])
    relative = [p - first for p in positions]
    for value in range(256 ** len(positions)):
        for slot, position in enumerate(relative):
            rest[position] = (value >> (8 * slot)) & 0xFF
        if zlib.crc32(rest, prefix_crc) == crc:
            return True
    return False


def _all_zero(piece: bytes | memoryview) -> bool:
    return bytes(piece).count(0) == len(piece)  # at C speed: a tail may be megabytes


def _zero_tail(data: bytes | memoryview, start: int, end: int) -> tuple[int, int] | None:
    """The run of zeros that ends ``[start, end)``, if there is one."""
    stop = start + len(bytes(data[start:end]).rstrip(b"\x00"))
    return (stop, end) if stop < end else None


def _merged(holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(holes):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def _torn_write(data: bytes, offset: int) -> tuple[bool, str]:
    """Is the bad record at ``offset`` (the last thing in the newest segment) what a crash
    in the middle of its one write can leave: a prefix of it, then zeros (file space whose
    size reached the disk before its data), or zeros in whole sectors that were not
    written? Never other bytes. Returns the answer and why."""
    size = len(data) - offset
    if size < RECORD_HEADER.size:
        return True, f"a short record ({size} bytes, less than a record header)"
    if _all_zero(data[offset:]):
        return True, f"zero-filled space ({size} bytes of zeros: nothing of the record landed)"
    length = _header_length(data, offset)
    if length is None:
        # The header fails its checksum: a torn write must have left zeros in it. (A whole
        # record never ends in zeros that reach into its header: its payload starts with a
        # msgpack array byte.)
        header_end = offset + RECORD_HEADER.size
        holes = _zero_sectors(data, offset, len(data))
        tail = _zero_tail(data, offset, len(data))
        if tail is not None:
            holes.append(tail)
        holes = [hole for hole in _merged(holes) if hole[0] < header_end]
        if holes:
            return True, f"its header reads as zeros from byte offset {holes[0][0]} (unwritten)"
        return False, "its header is damaged and no part of it reads as zeros (unwritten)"
    end = offset + RECORD_HEADER.size + length
    if end > len(data):
        return True, f"a short record ({size} of its {end - offset} bytes are in the file)"
    if not _all_zero(data[end:]):
        return False, (
            f"non-zero bytes follow it at byte offset {end}, so it is not the one write "
            "that was in progress"
        )
    _, _, payload_crc, _ = RECORD_HEADER.unpack_from(data, offset)
    holes = _zero_sectors(data, offset, end)
    tail = _zero_tail(data, offset, end)
    if tail is not None:
        holes.append(tail)
    holes = _merged(holes)
    if not holes:
        return False, (
            f"the record is complete ({end - offset} bytes) and no part of it reads as "
            "zeros (unwritten)"
        )
    unknown = sum(stop - start for start, stop in holes)
    if unknown <= EXACT_CHECK_BYTES:
        body_start = offset + RECORD_HEADER.size
        if _some_filling_matches(data, body_start, end, holes, payload_crc):
            return True, (
                f"{unknown} byte(s) at byte offset {holes[0][0]} read as zeros and a filling "
                "of them gives its checksum (not written)"
            )
        return False, (
            f"its only zero bytes ({unknown} at byte offset {holes[0][0]}) are its own data: "
            "no filling of them gives the record's checksum, so the damage is elsewhere"
        )
    return True, f"{unknown} bytes from byte offset {holes[0][0]} read as zeros (unwritten)"


def diagnose(path: Path, data: bytes, valid_end: int, problem: str, newest: bool) -> Damage:
    """Judge the first bad record of a segment (``valid_end``: where the scan stopped)."""
    length = _header_length(data, valid_end)
    after = valid_end + 1
    if length is not None:  # the record's own bytes are its payload, not another record
        after = max(after, min(len(data), valid_end + RECORD_HEADER.size + length))
    following = _valid_record_after(data, after)

    def judged(torn: bool, reason: str) -> Damage:
        return Damage(path, valid_end, problem, torn, reason, following)

    if problem.startswith("undecodable"):
        return judged(False, "its checksum matches, yet it does not decode")
    if following is not None:
        return judged(False, f"followed by a valid record at byte offset {following}")
    if not newest:
        return judged(
            False,
            "in a segment that is not the newest (a newer segment was opened after it was fsynced)",
        )
    return judged(*_torn_write(data, valid_end))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_hard_state(fields: list[Any]) -> HardState:
    term, vote, commit = fields
    if not (_is_int(term) and _is_int(commit) and (vote is None or isinstance(vote, str))):
        raise ValueError(f"bad hard state {fields!r}")
    return HardState(term=term, vote=vote, commit=commit)


def _parse_entries(first: Any, raw: Any) -> list[Entry]:
    if not _is_int(first) or not isinstance(raw, list) or not raw:
        raise ValueError("bad entries record")
    entries = []
    for offset, item in enumerate(raw):
        if not isinstance(item, list) or len(item) != 3:
            raise ValueError(f"bad entry {item!r:.60}")
        term, code, data = item
        if not _is_int(term) or code not in _KIND_FROM_CODE or not isinstance(data, bytes):
            raise ValueError(f"bad entry {item!r:.60}")
        entries.append(
            Entry(term=term, index=first + offset, kind=_KIND_FROM_CODE[code], data=data)
        )
    return entries


class _Replay:
    """Rebuilds the log from the records of the segments that are left.

    Compaction deletes the oldest segments whose entries all lie at or below a snapshot's
    index, so replay starts from the newest snapshot file ``floor`` (index S) and keeps
    only entries above S. Invariant: after each record, the replayed entries equal the
    entries above S that the running node had after writing that record. It holds at the
    first surviving segment (every deleted record wrote only entries <= S, and anything
    above S written before them would have kept its segment, and so theirs, alive), and
    every record below keeps it: an entries record from ``f`` discards everything from
    ``f`` (all of it above S when ``f <= S + 1``); a snapshot marker at ``m <= S`` with
    ``keep`` false discards everything above ``m``; with ``keep`` true it drops only
    entries <= m, which replay does not hold.

    Whether the log holds the snapshot's last entry (S, term) decides, at the end, whether
    the entries above S stay (§5.3, Figure 13 steps 6-7). That matters only when the
    snapshot file exists without its marker record: the marker, when present, settles it,
    and segments are only deleted after it is durable. ``named`` collects every snapshot
    a record names, so that load can tell a file whose record never landed (a crash
    between the two writes: the state before the write is read instead) from one whose
    record an operator's cut removed (the file stays the floor).
    """

    def __init__(self, floor: SnapshotMeta) -> None:
        self.floor = floor
        self.state = LogState(base=floor)
        self.floor_term: int | None = None  # the term of the entry at S, as replayed
        self.named: set[tuple[int, int]] = set()  # every snapshot a record names

    def entries(self, entries: list[Entry]) -> None:
        check_contiguous(entries)
        floor, log = self.floor.index, self.state.entries
        first, last = entries[0].index, entries[-1].index
        if first <= floor + 1:
            log.clear()
        else:
            if first > self.state.last_index + 1:
                raise ValueError(
                    f"entries from index {first} leave a gap after index {self.state.last_index}"
                )
            del log[first - floor - 1 :]
        if first <= floor:
            self.floor_term = entries[floor - first].term if last >= floor else None
        log.extend(entries[max(0, floor + 1 - first) :])

    def snapshot_marker(self, meta: SnapshotMeta, keep: bool) -> None:
        self.named.add((meta.index, meta.term))
        if meta.index > self.floor.index:
            raise ValueError(
                f"a snapshot at index {meta.index} is newer than the newest snapshot file "
                f"(index {self.floor.index}): the snapshot file is missing"
            )
        if not keep:
            self.state.entries.clear()
            self.floor_term = meta.term if meta.index == self.floor.index else None
        elif meta.index == self.floor.index:
            self.floor_term = meta.term

    def finish(self) -> LogState:
        if self.floor.index > 0 and self.floor_term != self.floor.term:
            self.state.entries.clear()  # the log never held the snapshot's last entry
        return self.state

    def apply(self, payload: Any) -> int:
        """Replay one record; returns the highest entry index it wrote (or 0).

        Raises ValueError when a checksummed record does not make sense.
        """
        if not isinstance(payload, list) or not payload or not isinstance(payload[0], str):
            raise ValueError(f"unknown record {payload!r:.60}")
        kind, fields = payload[0], payload[1:]
        if kind == "persist" and len(fields) == 3:
            snapshot, entries_part, hard_state = fields
            written = 0
            if snapshot is not None:
                self._marker(snapshot)
            if entries_part is not None:
                if not isinstance(entries_part, list) or len(entries_part) != 2:
                    raise ValueError(f"bad entries {entries_part!r:.60}")
                entries = _parse_entries(*entries_part)
                self.entries(entries)
                written = entries[-1].index
            if hard_state is not None:
                if not isinstance(hard_state, list) or len(hard_state) != 3:
                    raise ValueError(f"bad hard state {hard_state!r:.60}")
                self.state.set_hard_state(_parse_hard_state(hard_state))
            return written
        if kind == "snap" and len(fields) == 3:
            self._marker(fields)
            return 0
        if kind == "seg" and len(fields) == 6:
            self.state.set_hard_state(_parse_hard_state(fields[1:4]))
            index, term = fields[4], fields[5]
            if not (_is_int(index) and _is_int(term)):
                raise ValueError(f"bad segment header {payload!r}")
            if index > 0:
                self.snapshot_marker(SnapshotMeta(index=index, term=term), True)
            return 0
        raise ValueError(f"unknown record {payload!r:.60}")

    def _marker(self, fields: Any) -> None:
        if not (isinstance(fields, list) and len(fields) == 3):
            raise ValueError(f"bad snapshot marker {fields!r:.60}")
        index, term, keep = fields
        if not (_is_int(index) and _is_int(term) and isinstance(keep, bool)):
            raise ValueError(f"bad snapshot marker {fields!r:.60}")
        self.snapshot_marker(SnapshotMeta(index=index, term=term), keep)


# --- snapshot files ------------------------------------------------------------------


def _encode_snapshot(snapshot: Snapshot) -> bytes:
    fields: dict[str, Any] = {
        "index": snapshot.meta.index,
        "term": snapshot.meta.term,
        "data": snapshot.data,
    }
    if snapshot.meta.conf is not None:
        # The configuration at the snapshot's index (§4.1): the config entries it
        # replaces are gone from the WAL.
        fields["conf"] = conf_to_wire(snapshot.meta.conf)
    body = msgpack.packb(fields, use_bin_type=True)
    return SNAPSHOT_HEADER.pack(SNAPSHOT_MAGIC, len(body), zlib.crc32(body)) + body


def _read_snapshot(path: Path) -> Snapshot:
    data = path.read_bytes()
    if len(data) < SNAPSHOT_HEADER.size:
        raise StorageError(f"{path}: snapshot file damaged at byte offset 0: too short")
    magic, length, crc = SNAPSHOT_HEADER.unpack_from(data, 0)
    if magic != SNAPSHOT_MAGIC:
        raise StorageError(f"{path}: snapshot file damaged at byte offset 0: bad magic")
    body = data[SNAPSHOT_HEADER.size :]
    if len(body) != length or zlib.crc32(body) != crc:
        raise StorageError(
            f"{path}: snapshot file damaged at byte offset {SNAPSHOT_HEADER.size}: "
            "length or checksum mismatch"
        )
    try:
        raw = msgpack.unpackb(body, raw=False)
        conf = conf_from_wire(raw["conf"]) if raw.get("conf") is not None else None
        snapshot = Snapshot(
            SnapshotMeta(index=raw["index"], term=raw["term"], conf=conf), raw["data"]
        )
        if not (_is_int(raw["index"]) and _is_int(raw["term"]) and isinstance(raw["data"], bytes)):
            raise ValueError("bad field types")
    except Exception as exc:
        raise StorageError(
            f"{path}: snapshot file damaged at byte offset {SNAPSHOT_HEADER.size}: {exc}"
        ) from None
    return snapshot


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# --- the storage ---------------------------------------------------------------------


@dataclass(slots=True)
class _Segment:
    number: int
    path: Path
    max_index: int = 0  # highest entry index written in it (0: none)
    size: int = 0
    records: int = 0


@dataclass(slots=True)
class _Replayed:
    """What one replay of the segments gives: the log state, the segments, the (index,
    term) of every snapshot a record names, and the torn tail (if any) still to cut."""

    state: LogState
    segments: list[_Segment]
    named: set[tuple[int, int]]
    torn: tuple[Damage, int] | None


class FileStorage:
    """The ``Storage`` of the node process: WAL segments and snapshot files in ``data_dir``."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        bugs: frozenset[str] = frozenset(),
        log: Callable[[str], None] | None = None,
    ) -> None:
        if segment_bytes < RECORD_HEADER.size:
            raise ValueError(f"segment_bytes must be at least {RECORD_HEADER.size}")
        self.data_dir = Path(data_dir)
        self.wal_dir = self.data_dir / "wal"
        self.snap_dir = self.data_dir / "snap"
        self.segment_bytes = segment_bytes
        self.bugs = frozenset(bugs)
        self._log = log if log is not None else _logger.warning
        self._state = LogState()
        self._snapshot: Snapshot | None = None
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._loaded = False
        self._failed: str | None = None
        self._stale: list[tuple[Path, str]] = []  # files a successful load removes
        # Counters for tests and benchmarks.
        self.fsyncs = 0
        self.truncated_bytes = 0

    # -- loading

    def load(self) -> RestoredState:
        if self._loaded:
            raise StorageError(f"{self.data_dir}: load() called twice")
        self._lock()
        try:
            for directory in (self.data_dir, self.wal_dir, self.snap_dir):
                if not directory.is_dir():
                    directory.mkdir(parents=True, exist_ok=True)
                    _fsync_dir(directory.parent)
            self._stale = []
            candidates = self._snapshot_files()
            self._snapshot = self._load_snapshot(candidates)
            floor = self._snapshot.meta if self._snapshot else SnapshotMeta()
            replayed = self._replay(floor)
            if self._snapshot is not None and (floor.index, floor.term) not in replayed.named:
                # The WAL record naming a snapshot is its commit point: the file is
                # written (temp, fsync, rename) before the record, so a crash between the
                # two leaves a whole file that no record names, from a write that was
                # never acknowledged. Its state is not the node's: the commit index and
                # the entries after it live in the record that never landed. Read the
                # state before that write instead, from the snapshot it was to supersede:
                # that file and every segment after its record are still there, because
                # they are deleted only once the newer record is durable. Only the last
                # write can be unfinished, so one step back is the only one to try.
                try:
                    snapshot_before = self._load_snapshot(candidates[:-1])
                    replayed_before = self._replay(
                        snapshot_before.meta if snapshot_before else SnapshotMeta()
                    )
                except StorageError:
                    # Not there: the record was durable once (the older snapshot or a
                    # segment was deleted after it), and a cut by `raftlab wal truncate`
                    # dropped it. The snapshot holds only committed, applied state, so it
                    # stays the floor, as the cut's plan says.
                    pass
                else:
                    self._stale.append(
                        (candidates.pop()[2], "a snapshot file no WAL record names (its "
                         "record never became durable; the write was never acknowledged)")
                    )
                    self._snapshot, replayed = snapshot_before, replayed_before
            self._state, self._segments = replayed.state, replayed.segments
            torn = replayed.torn
            for _, _, older in candidates[:-1]:
                # Superseded: a crash came between writing the newer one and deleting this.
                self._stale.append((older, ""))
            if torn is not None:
                self._truncate_torn_tail(*torn)
            # Only a load that succeeds changes anything: a refusal leaves every file
            # as it found it, for the operator to look at.
            for path, what in self._stale:
                if what:
                    self._log(f"{path}: removing {what}")
                path.unlink()
            if not self._segments:
                # A fresh directory gets its first segment now, so that later a snapshot
                # without any segment can only mean a lost WAL (refused in _replay).
                self._append(None, sync=True)
        except BaseException:
            # Leave nothing half-loaded behind, and free the directory for a retry.
            self._state, self._segments, self._snapshot = LogState(), [], None
            self.close()
            raise
        self._loaded = True
        state = self._state
        return RestoredState(
            hard_state=state.hard_state, snapshot=self._snapshot, entries=list(state.entries)
        )

    def _lock(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StorageError(
                f"{self.data_dir}: data directory is in use by another process"
            ) from None
        self._lock_fd = fd

    def _snapshot_files(self) -> list[tuple[int, int, Path]]:
        """The snapshot files, oldest first; unfinished temp files go on the stale list."""
        candidates: list[tuple[int, int, Path]] = []
        for path in self.snap_dir.iterdir():
            if path.name.endswith(".tmp"):
                # A snapshot whose write never completed (no rename): never trusted.
                self._stale.append((path, "an unfinished snapshot temp file"))
            elif match := SNAPSHOT_NAME.match(path.name):
                candidates.append((int(match.group(1)), int(match.group(2)), path))
        candidates.sort()
        return candidates

    def _load_snapshot(self, candidates: list[tuple[int, int, Path]]) -> Snapshot | None:
        """Read the newest of ``candidates``."""
        if not candidates:
            return None
        index, term, path = candidates[-1]
        snapshot = _read_snapshot(path)
        if (snapshot.meta.index, snapshot.meta.term) != (index, term):
            raise StorageError(
                f"{path}: snapshot file damaged at byte offset {SNAPSHOT_HEADER.size}: "
                f"its contents say index {snapshot.meta.index} term {snapshot.meta.term}"
            )
        return snapshot

    def _replay(self, snapshot_meta: SnapshotMeta) -> _Replayed:
        """Replay every segment above ``snapshot_meta``, changing nothing (the torn tail
        is truncated by the caller once it accepts this replay)."""
        replay = _Replay(snapshot_meta)
        segments: list[_Segment] = []
        paths = segment_paths(self.data_dir)
        numbers = [int(p.name[:8]) for p in paths]
        for before, after in zip(numbers, numbers[1:], strict=False):
            if after != before + 1:
                raise StorageError(
                    f"{self.wal_dir}: segment {segment_name(before + 1)} is missing "
                    f"(found {segment_name(before)} and {segment_name(after)})"
                )
        if not paths and snapshot_meta.index > 0:
            raise StorageError(
                f"{self.wal_dir}: no WAL segment but a snapshot at index {snapshot_meta.index}: "
                "the WAL (with the term and vote) is lost; refusing to start"
            )
        torn: tuple[Damage, int] | None = None
        for position, path in enumerate(paths):
            is_last = position == len(paths) - 1
            data = path.read_bytes()
            scan = _scan(data)
            size = len(data)
            if scan.problem is not None:
                damage = diagnose(path, data, scan.valid_end, scan.problem, is_last)
                if not damage.torn:
                    raise StorageError(damage.refusal())
                torn = (damage, size)  # truncated once everything before it replays
                size = scan.valid_end
            segment = _Segment(int(path.name[:8]), path, size=size, records=len(scan.records))
            for offset, _, payload in scan.records:
                try:
                    if offset == 0 and isinstance(payload, list) and payload[:1] == ["seg"]:
                        if payload[1:2] != [segment.number]:
                            raise ValueError(f"segment header names segment {payload[1:2]}")
                    written = replay.apply(payload)
                except (ValueError, TypeError, StorageError) as exc:
                    raise StorageError(
                        f"{path}: bad record at byte offset {offset}: {exc}; refusing to start"
                    ) from None
                segment.max_index = max(segment.max_index, written)
            segments.append(segment)
        return _Replayed(replay.finish(), segments, replay.named, torn)

    def _truncate_torn_tail(self, damage: Damage, size: int) -> None:
        offset = damage.offset
        with open(damage.file, "r+b") as handle:
            handle.truncate(offset)
            handle.flush()
            os.fsync(handle.fileno())
        self.truncated_bytes += size - offset
        self._log(
            f"{damage.file}: truncated a torn record at byte offset {offset} "
            f"({damage.problem}; torn write: {damage.reason}); {size - offset} bytes dropped"
        )

    # -- writing

    def _ensure_ready(self) -> None:
        if self._failed is not None:
            raise StorageError(f"{self.data_dir}: storage failed earlier ({self._failed})")
        if not self._loaded:
            self.load()

    def _stored_hard_state(self, hard_state: HardState) -> HardState:
        if "forget-vote" in self.bugs:
            # Teaching bug (PySyncObj #202): term and vote are not persisted.
            return HardState(term=0, vote=None, commit=hard_state.commit)
        return hard_state

    def persist(
        self,
        hard_state: HardState | None,
        entries: list[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        self._ensure_ready()
        state = self._state
        base_index, last_index = state.base.index, state.last_index
        keep = False
        marker = None
        if snapshot is not None and snapshot.meta.index <= base_index:
            snapshot = None  # not newer than what we have
        if snapshot is not None:
            keep = state.contains(snapshot.meta)
            base_index = snapshot.meta.index
            last_index = max(last_index, base_index) if keep else base_index
            marker = [snapshot.meta.index, snapshot.meta.term, keep]
        entries = trim_compacted(entries, base_index)
        if entries:
            check_append(entries, base_index, last_index)
        stored_hard_state = None
        if hard_state is not None:
            stored_hard_state = self._stored_hard_state(hard_state)
        if marker is None and not entries and stored_hard_state is None:
            return
        if snapshot is not None:
            self._write_snapshot_file(snapshot)
        record = [
            "persist",
            marker,
            _entries_part(entries) if entries else None,
            None if stored_hard_state is None else _hard_state_fields(stored_hard_state),
        ]
        self._append(record, sync="no-fsync" not in self.bugs)
        if snapshot is not None:
            state.install_snapshot(snapshot.meta, keep)
            self._snapshot = snapshot
        if entries:
            state.append(entries)
            self._segments[-1].max_index = max(self._segments[-1].max_index, entries[-1].index)
        if stored_hard_state is not None:
            state.set_hard_state(stored_hard_state)
        if snapshot is not None:
            self._drop_below(snapshot.meta)

    def compact(self, snapshot: Snapshot) -> None:
        self._ensure_ready()
        state = self._state
        if snapshot.meta.index <= state.base.index:
            return
        if not state.contains(snapshot.meta):
            raise StorageError(
                f"compact: the log has no entry at index {snapshot.meta.index} with term "
                f"{snapshot.meta.term}; a node only snapshots what it applied"
            )
        self._write_snapshot_file(snapshot)
        self._append(["snap", snapshot.meta.index, snapshot.meta.term, True], sync=True)
        state.install_snapshot(snapshot.meta, True)
        self._snapshot = snapshot
        self._drop_below(snapshot.meta)

    def _write_snapshot_file(self, snapshot: Snapshot) -> None:
        final = self.snap_dir / snapshot_name(snapshot.meta)
        temp = final.with_name(final.name + ".tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, _encode_snapshot(snapshot))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, final)
            _fsync_dir(self.snap_dir)
            self.fsyncs += 2
        except OSError as exc:
            self._failed = f"writing {final}: {exc}"
            raise StorageError(f"{final}: cannot write snapshot: {exc}") from exc

    def _append(self, record: list[Any] | None, *, sync: bool) -> None:
        """Append one record with one write (and one fsync when ``sync``).

        ``None`` only makes sure a segment is open (a fresh directory's first one).
        """
        blob = b"" if record is None else encode_record(record)
        try:
            if self._fd is None:
                self._open_segment(roll=False, sync=sync)
            segment = self._segments[-1]
            if segment.records > 1 and segment.size + len(blob) > self.segment_bytes:
                # Roll over between records: a record never spans two files.
                self._open_segment(roll=True, sync=sync)
                segment = self._segments[-1]
            if not blob:
                return
            assert self._fd is not None
            _write_all(self._fd, blob)
            segment.size += len(blob)
            segment.records += 1
            if sync:
                os.fsync(self._fd)
                self.fsyncs += 1
        except OSError as exc:
            # After a failed write or fsync the file's state is unknown (fsyncgate): stop.
            self._failed = f"writing {self.wal_dir}: {exc}"
            raise StorageError(f"{self.wal_dir}: write failed: {exc}") from exc

    def _open_segment(self, *, roll: bool, sync: bool) -> None:
        """Open the newest segment for appending (a new one when ``roll`` or none exists).

        An empty segment first gets its header, as a write of its own: durable (with the
        file's directory entry) before any record follows it, so that damage to a header
        followed by valid records is never mistaken for a torn write.
        """
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if roll or not self._segments:
            number = self._segments[-1].number + 1 if self._segments else 1
            self._segments.append(_Segment(number, self.wal_dir / segment_name(number)))
        segment = self._segments[-1]
        self._fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if segment.size > 0:
            return
        header = encode_record(_segment_record(segment.number, self._state))
        _write_all(self._fd, header)
        segment.size += len(header)
        segment.records += 1
        if sync:
            os.fsync(self._fd)
            _fsync_dir(self.wal_dir)
            self.fsyncs += 2

    def _drop_below(self, meta: SnapshotMeta) -> None:
        """Delete older snapshot files and the oldest segments wholly covered by ``meta``."""
        removed = False
        for path in self.snap_dir.iterdir():
            match = SNAPSHOT_NAME.match(path.name)
            if match and int(match.group(1)) < meta.index:
                path.unlink()
                removed = True
        if removed:
            _fsync_dir(self.snap_dir)
        removed = False
        while len(self._segments) > 1 and self._segments[0].max_index <= meta.index:
            self._segments.pop(0).path.unlink()
            removed = True
        if removed:
            _fsync_dir(self.wal_dir)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> FileStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- introspection

    @property
    def last_index(self) -> int:
        return self._state.last_index

    @property
    def snapshot_meta(self) -> SnapshotMeta:
        return self._state.base


# --- inspection ----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class RecordSummary:
    """One record (or one damaged spot) of a WAL segment, for humans and the disk nemesis."""

    file: str
    offset: int
    size: int
    kind: str  # "seg", "persist", "snap", or "damaged"
    detail: str


def _describe(payload: Any) -> tuple[str, str]:
    if not isinstance(payload, list) or not payload:
        return "unknown", repr(payload)[:80]
    kind = str(payload[0])
    if kind == "persist" and len(payload) == 4:
        snapshot, entries_part, hard_state = payload[1:]
        parts = []
        try:
            if snapshot is not None:
                parts.append(f"snapshot index {snapshot[0]} term {snapshot[1]} keep {snapshot[2]}")
            if entries_part is not None:
                first, items = entries_part
                terms = sorted({item[0] for item in items})
                parts.append(f"entries {first}..{first + len(items) - 1} terms {terms}")
            if hard_state is not None:
                parts.append(f"term {hard_state[0]} vote {hard_state[1]!r} commit {hard_state[2]}")
        except (TypeError, ValueError, IndexError, KeyError):
            return kind, repr(payload)[:80]
        return kind, "; ".join(parts)
    if kind == "snap" and len(payload) == 4:
        return kind, f"snapshot index {payload[1]} term {payload[2]} keep {payload[3]}"
    if kind == "seg" and len(payload) == 7:
        return kind, (
            f"segment {payload[1]}: term {payload[2]} vote {payload[3]!r} commit {payload[4]} "
            f"snapshot index {payload[5]} term {payload[6]}"
        )
    return kind, repr(payload)[:80]


def segment_damage(data_dir: str | os.PathLike[str]) -> list[Damage]:
    """The first bad record of each segment that has one, judged as ``load`` judges it."""
    paths = segment_paths(data_dir)
    found = []
    for position, path in enumerate(paths):
        data = path.read_bytes()
        scan = _scan(data)
        if scan.problem is not None:
            newest = position == len(paths) - 1
            found.append(diagnose(path, data, scan.valid_end, scan.problem, newest))
    return found


def wal_inspect(data_dir: str | os.PathLike[str]) -> list[RecordSummary]:
    """Summaries of every record of every segment, oldest first; never raises on damage.

    A damaged spot appears as a ``"damaged"`` summary at its offset whose detail says
    whether it is a torn tail (truncated when the node starts) or corruption (the node
    refuses to start), and why. Valid records found after it are listed too (what a
    truncation there would drop).
    """
    summaries: list[RecordSummary] = []
    paths = segment_paths(data_dir)
    for position, path in enumerate(paths):
        data = path.read_bytes()
        scan = _scan(data)
        summaries.extend(
            RecordSummary(str(path), offset, size, *_describe(payload))
            for offset, size, payload in scan.records
        )
        if scan.problem is None:
            continue
        newest = position == len(paths) - 1
        damage = diagnose(path, data, scan.valid_end, scan.problem, newest)
        verdict = (
            f"torn tail (truncated when the node starts): {damage.reason}"
            if damage.torn
            else f"corrupt (the node refuses to start): {damage.reason}"
        )
        end = len(data) if damage.following is None else damage.following
        summaries.append(
            RecordSummary(
                str(path),
                damage.offset,
                end - damage.offset,
                "damaged",
                f"{scan.problem}; {verdict}",
            )
        )
        while damage.following is not None:  # resynchronise on the records after it
            rest = _scan(data[damage.following :])
            summaries.extend(
                RecordSummary(str(path), damage.following + offset, size, *_describe(payload))
                for offset, size, payload in rest.records
            )
            if rest.problem is None:
                break
            start = damage.following + rest.valid_end
            following = _valid_record_after(data, start + 1)
            end = len(data) if following is None else following
            summaries.append(RecordSummary(str(path), start, end - start, "damaged", rest.problem))
            damage = Damage(path, start, rest.problem, False, "", following)
    return summaries


def snapshot_inspect(data_dir: str | os.PathLike[str]) -> list[RecordSummary]:
    """One summary per snapshot file (temp files included); never raises on damage."""
    snap_dir = Path(data_dir) / "snap"
    if not snap_dir.is_dir():
        return []
    summaries = []
    for path in sorted(snap_dir.iterdir()):
        size = path.stat().st_size
        if path.name.endswith(".tmp"):
            summaries.append(RecordSummary(str(path), 0, size, "snapshot-temp", "ignored on load"))
            continue
        try:
            snapshot = _read_snapshot(path)
        except StorageError as exc:
            summaries.append(RecordSummary(str(path), 0, size, "damaged", str(exc)))
            continue
        detail = (
            f"index {snapshot.meta.index} term {snapshot.meta.term}, {len(snapshot.data)} bytes"
        )
        summaries.append(RecordSummary(str(path), 0, size, "snapshot", detail))
    return summaries


def format_inspection(summaries: Iterable[RecordSummary]) -> str:
    """One line per record: ``file  offset  size  kind  detail``."""
    return "\n".join(
        f"{Path(s.file).name}\t{s.offset}\t{s.size}\t{s.kind}\t{s.detail}" for s in summaries
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m raftnode.storage DATA_DIR``: as ``raftlab wal inspect DATA_DIR``."""
    import sys

    from raftnode.wal_cli import inspect_dir

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m raftnode.storage DATA_DIR", file=sys.stderr)
        return 254
    return inspect_dir(Path(args[0]))
