"""Role and Status: what a node is doing, for logs, the status command and tests."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"  # §9.6: polling before bumping the term
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(slots=True, frozen=True)
class Status:
    node_id: str
    role: Role
    term: int
    vote: str | None
    leader: str | None  # the leader known in the current term, if any
    commit_index: int
    applied_index: int
    last_log_index: int
    snapshot_index: int
    voters: tuple[str, ...] = ()  # the configuration in force (§4.1)
    learners: tuple[str, ...] = ()
    transferee: str | None = None  # leader: the target of a leadership transfer (§3.10)
