"""RaftConfig: the knobs of one Raft voter, validated when built.

Bad configuration is a programming or user error, never something to limp along with:
``RaftConfig`` raises ``ConfigError`` (a ``ValueError``) naming the field and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Every teaching bug switch raftlab knows (ARCHITECTURE.md, "Bug switches"). The core
# acts on CORE_BUGS; the others belong to the driver, storage or the KV, but a core config
# may carry them (one set is handed to every part), so they are accepted here too.
KNOWN_BUGS: frozenset[str] = frozenset(
    {
        "stale-local-reads",  # driver: reads served from local state (etcd #741)
        "readindex-before-noop",  # core: ReadIndex before the term's first commit (etcd #7331)
        "commit-old-term",  # core: count replicas of old-term entries (Figure 8, PySyncObj #169)
        "forget-vote",  # storage/driver: term and vote not persisted (PySyncObj #202)
        "vote-twice",  # core: vote reset on a same-term step-down (etcd PR #2461)
        "truncate-always",  # core: truncate after prev index without a conflict (hashicorp/raft PR #113)
        "commit-regress",  # core: follower commit = leader_commit without max (PySyncObj #166)
        "no-fsync",  # storage: acknowledge before the WAL is durable
        "no-dedup",  # KV: client sessions ignored
        "txn-stale-reads",  # driver/KV: a txn's reads at proposal, its writes at commit
        "no-prevote-checkquorum",  # core: pre-vote and check-quorum both off (etcd #9241)
        "learner-quorum",  # core: learners' replicas count toward commit (§4.2.1)
    }
)

CORE_BUGS: frozenset[str] = frozenset(
    {
        "readindex-before-noop",
        "commit-old-term",
        "vote-twice",
        "truncate-always",
        "commit-regress",
        "no-prevote-checkquorum",
        "learner-quorum",
    }
)

READ_MODES: tuple[str, ...] = ("read_index", "log")


class ConfigError(ValueError):
    """A RaftConfig field is invalid; the message names the field."""


@dataclass(slots=True)
class RaftConfig:
    node_id: str
    # The bootstrap voters, self included: the configuration until the log or a snapshot
    # holds one (§4). A joining node (``joining``) lists the members it was told of and
    # is not among them: it learns its role from the leader's log.
    peers: tuple[str, ...]
    election_ticks: int = 10  # timeout drawn uniformly from [election_ticks, 2*election_ticks)
    heartbeat_ticks: int = 1
    pre_vote: bool = True  # §9.6
    check_quorum: bool = (
        True  # §6.2: leader steps down without a quorum heard within an election timeout
    )
    max_entries_per_append: int = 512
    max_inflight_appends: int = 64  # per follower, in replicate state
    snapshot_threshold: int = (
        4096  # entries applied since the last snapshot before Ready.should_snapshot
    )
    # "read_index": ReadIndex (§6.4) through RaftCore.read_index. "log": the driver proposes
    # each read as a command and answers it when applied; the core needs nothing special
    # for that (a read is then an ordinary entry), so this field only informs the driver.
    read_mode: str = "read_index"
    bugs: frozenset[str] = frozenset()  # teaching bug switches (see KNOWN_BUGS)
    joining: bool = False  # a new, empty node added by a config change (never campaigns first)

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, str) or not self.node_id:
            raise ConfigError(f"node_id must be a non-empty string, got {self.node_id!r}")
        if isinstance(self.peers, str) or not isinstance(self.peers, Iterable):
            raise ConfigError(f"peers must be a sequence of node ids, got {self.peers!r}")
        self.peers = tuple(self.peers)
        if any(not isinstance(p, str) or not p for p in self.peers):
            raise ConfigError(f"every peer id must be a non-empty string, got {self.peers!r}")
        if len(set(self.peers)) != len(self.peers):
            raise ConfigError(f"peers must be distinct, got {self.peers!r}")
        if self.node_id not in self.peers and not self.joining:
            raise ConfigError(
                f"peers must include this node's own id {self.node_id!r}, got {self.peers!r}"
            )
        for name in (
            "election_ticks",
            "heartbeat_ticks",
            "max_entries_per_append",
            "max_inflight_appends",
            "snapshot_threshold",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.heartbeat_ticks >= self.election_ticks:
            # Followers would time out between heartbeats and elections would never settle.
            raise ConfigError(
                f"heartbeat_ticks ({self.heartbeat_ticks}) must be below election_ticks "
                f"({self.election_ticks})"
            )
        if self.read_mode not in READ_MODES:
            raise ConfigError(
                f"read_mode must be one of {', '.join(READ_MODES)}, got {self.read_mode!r}"
            )
        if isinstance(self.bugs, str) or not isinstance(self.bugs, Iterable):
            raise ConfigError(f"bugs must be a set of bug names, got {self.bugs!r}")
        self.bugs = frozenset(self.bugs)
        unknown = sorted(self.bugs - KNOWN_BUGS)
        if unknown:
            raise ConfigError(
                f"unknown bug switch(es) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_BUGS))}"
            )

    @property
    def quorum(self) -> int:
        """Votes (or matches) needed: a strict majority of the voters."""
        return len(self.peers) // 2 + 1

    @property
    def effective_pre_vote(self) -> bool:
        return self.pre_vote and "no-prevote-checkquorum" not in self.bugs

    @property
    def effective_check_quorum(self) -> bool:
        return self.check_quorum and "no-prevote-checkquorum" not in self.bugs
