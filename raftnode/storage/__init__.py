"""Storage behind one interface: the file WAL for the node process, memory for the simulation.

See ``raftnode.storage.wal`` for the on-disk layout and recovery rules.
"""

from raftnode.storage.interface import Storage, StorageError
from raftnode.storage.memory import MemoryStorage
from raftnode.storage.wal import (
    FileStorage,
    RecordSummary,
    format_inspection,
    newest_segment,
    segment_paths,
    snapshot_inspect,
    wal_inspect,
)

__all__ = [
    "FileStorage",
    "MemoryStorage",
    "RecordSummary",
    "Storage",
    "StorageError",
    "format_inspection",
    "newest_segment",
    "segment_paths",
    "snapshot_inspect",
    "wal_inspect",
]
