"""Disk faults on a stopped node's write-ahead log: truncate its tail, flip a byte.

Run only while the node is down (the disk fault package kills it first). Every function
returns a ``DiskDamage`` saying exactly what was done (file, offset, bytes before and
after) so the campaign can record it beside whether the node then recovered or refused
to start. The WAL is assumed at ``<data-dir>/wal/*.seg`` with the newest segment last in
lexicographic order (raftnode's segments are numbered with 8 digits); the glob is a
parameter so nothing here knows more about the WAL than its file names.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_WAL_GLOB = "wal/*.seg"


class DiskFaultError(Exception):
    """Nothing could be damaged (no segment, empty segment, bad argument)."""


@dataclass(slots=True, frozen=True)
class DiskDamage:
    action: str  # "truncate" or "flip"
    file: str
    offset: int  # first byte affected
    length: int  # bytes removed or changed
    size_before: int
    size_after: int
    before_hex: str  # the affected bytes before (at most 64 shown for a truncation)
    after_hex: str  # the affected bytes after ("" for a truncation)
    window: int | None = None  # a flip aimed at the file's last ``window`` bytes

    def describe(self) -> dict[str, object]:
        return asdict(self)


def newest_segment(data_dir: Path, wal_glob: str = DEFAULT_WAL_GLOB) -> Path:
    """The lexicographically last file matching ``wal_glob`` under ``data_dir``."""
    segments = sorted(path for path in data_dir.glob(wal_glob) if path.is_file())
    if not segments:
        raise DiskFaultError(f"no WAL segment matches {data_dir / wal_glob}")
    return segments[-1]


def _fsync_file_and_directory(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def truncate_tail(data_dir: Path, byte_count: int, wal_glob: str = DEFAULT_WAL_GLOB) -> DiskDamage:
    """Remove the last ``byte_count`` bytes of the newest segment (at most all of it)."""
    if byte_count <= 0:
        raise DiskFaultError(f"truncate needs a positive byte count, got {byte_count}")
    segment = newest_segment(data_dir, wal_glob)
    size = segment.stat().st_size
    if size == 0:
        raise DiskFaultError(f"{segment} is empty: nothing to truncate")
    removed = min(byte_count, size)
    with open(segment, "rb+") as handle:
        handle.seek(size - removed)
        lost = handle.read(removed)
        handle.truncate(size - removed)
    _fsync_file_and_directory(segment)
    return DiskDamage(
        action="truncate",
        file=str(segment),
        offset=size - removed,
        length=removed,
        size_before=size,
        size_after=size - removed,
        before_hex=lost[-64:].hex(),
        after_hex="",
    )


def flip_byte(
    data_dir: Path,
    rng: random.Random,
    wal_glob: str = DEFAULT_WAL_GLOB,
    offset: int | None = None,
    window: int | None = None,
) -> DiskDamage:
    """Invert every bit of one byte of the newest segment, at ``offset`` or at a seeded one
    (among the last ``window`` bytes when given: the tail, where a torn write would be, so
    that a flip there tests that the node tells the two apart)."""
    segment = newest_segment(data_dir, wal_glob)
    size = segment.stat().st_size
    if size == 0:
        raise DiskFaultError(f"{segment} is empty: no byte to flip")
    if window is not None and window <= 0:
        raise DiskFaultError(f"flip needs a positive window, got {window}")
    if offset is None:
        offset = rng.randrange(0 if window is None else max(0, size - window), size)
    if not 0 <= offset < size:
        raise DiskFaultError(f"offset {offset} is outside {segment} ({size} bytes)")
    with open(segment, "rb+") as handle:
        handle.seek(offset)
        before = handle.read(1)
        after = bytes([before[0] ^ 0xFF])
        handle.seek(offset)
        handle.write(after)
    _fsync_file_and_directory(segment)
    return DiskDamage(
        action="flip",
        file=str(segment),
        offset=offset,
        length=1,
        size_before=size,
        size_after=size,
        before_hex=before.hex(),
        after_hex=after.hex(),
        window=window,
    )
