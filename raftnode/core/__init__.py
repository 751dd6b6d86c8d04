"""The sans-I/O Raft core (ARCHITECTURE.md, "The core").

``RaftCore`` is a pure state machine: feed it ``tick()``, ``step(message)``,
``propose(data)`` and ``read_index(request_id)``; take a ``Ready`` (persist, then send,
then apply, then answer reads) and confirm it with ``advance``. Modules, one concept each:
``config`` (RaftConfig, bug switches), ``log`` (in-memory log with snapshot offset),
``progress`` (per-follower replication state), ``readonly`` (ReadIndex bookkeeping),
``ready`` (Ready, ReadState), ``status`` (Role, Status), ``raft`` (RaftCore).
"""

from raftnode.core.config import CORE_BUGS, KNOWN_BUGS, ConfigError, RaftConfig
from raftnode.core.errors import InvariantViolation, NotLeader
from raftnode.core.membership import ChangeRefused, ConfChange, ConfChangeType, apply_change
from raftnode.core.raft import RaftCore, RandomSource
from raftnode.core.ready import ReadState, Ready
from raftnode.core.status import Role, Status

__all__ = [
    "CORE_BUGS",
    "ChangeRefused",
    "ConfChange",
    "ConfChangeType",
    "apply_change",
    "KNOWN_BUGS",
    "ConfigError",
    "InvariantViolation",
    "NotLeader",
    "RaftConfig",
    "RaftCore",
    "RandomSource",
    "ReadState",
    "Ready",
    "Role",
    "Status",
]
