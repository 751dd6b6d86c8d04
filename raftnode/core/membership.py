"""Membership: the configuration in force, and single-server changes to it (§4).

**Why single-server changes, not joint consensus.** The dissertation's §4.1 shows that
when each change adds or removes *one voter*, any majority of the old voter set and any
majority of the new one overlap, so the two configurations can never elect two leaders
or commit two different entries at one index - with no intermediate joint configuration.
etcd uses joint consensus because it wants arbitrary changes (replace several voters at
once) in one step; our operators add, promote and remove one member at a time (`raftlab
member ...`), so the simpler rule covers every command we offer, and its three rules are
few enough to check loudly:

1. A configuration takes effect on a server as soon as its entry is in that server's log
   (appended), committed or not (§4.1). If a new leader overwrites the entry, the server
   falls back to the latest configuration left in its log (``ConfHistory.truncate_from``).
2. A leader refuses a change while an earlier one is not yet committed (§4.1).
3. A leader refuses a change until it has committed an entry of its own term (Ongaro's
   2015 raft-dev correction to §4.1: without it, a change begun by a deposed leader and
   one begun by its successor can together form disjoint majorities).

Learners (§4.2.1) are members that receive the log but never vote and never count toward
a commit or an election; a learner is promoted with one more single-voter change.

Every configuration entry holds the *whole* new configuration (``conf_to_bytes``), so the
configuration at any index is simply the latest entry at or below it, or the snapshot's.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from enum import StrEnum

from raftnode.messages import ConfState


class ConfChangeType(StrEnum):
    ADD_LEARNER = "add_learner"  # a new non-voting member (§4.2.1)
    ADD_VOTER = "add_voter"  # a new voter, or a learner promoted (one voter added)
    PROMOTE = "promote"  # an existing learner becomes a voter (one voter added)
    REMOVE = "remove"  # a voter or learner leaves (at most one voter removed)


class ChangeRefused(Exception):
    """A configuration change or leadership transfer was refused; nothing was appended.
    ``reason`` is a short code: ``change_pending``, ``term_not_committed``, ``invalid``,
    ``transfer_in_progress``, ``not_a_voter``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True, frozen=True)
class ConfChange:
    type: ConfChangeType
    node_id: str
    address: str = ""  # "host:port" of a new member (kept in ConfState.addresses)


def apply_change(conf: ConfState, change: ConfChange) -> ConfState:
    """The configuration after ``change``; raises ChangeRefused(invalid) if it makes no
    sense. Each result differs from ``conf`` by at most one voter (the §4.1 premise)."""
    node = change.node_id
    if not isinstance(node, str) or not node:
        raise ChangeRefused("invalid", f"member id must be a non-empty string, got {node!r}")
    voters, learners = list(conf.voters), list(conf.learners)
    addresses = conf.address_map()
    kind = ConfChangeType(change.type)
    if kind is ConfChangeType.ADD_LEARNER:
        if node in voters or node in learners:
            raise ChangeRefused("invalid", f"{node} is already a member")
        learners.append(node)
    elif kind is ConfChangeType.ADD_VOTER:
        if node in voters:
            raise ChangeRefused("invalid", f"{node} is already a voter")
        if node in learners:
            learners.remove(node)
        voters.append(node)
    elif kind is ConfChangeType.PROMOTE:
        if node not in learners:
            raise ChangeRefused("invalid", f"{node} is not a learner")
        learners.remove(node)
        voters.append(node)
    else:
        if node in voters:
            if len(voters) == 1:
                raise ChangeRefused("invalid", f"{node} is the last voter")
            voters.remove(node)
        elif node in learners:
            learners.remove(node)
        else:
            raise ChangeRefused("invalid", f"{node} is not a member")
        addresses.pop(node, None)
    if kind is not ConfChangeType.REMOVE and change.address:
        addresses[node] = change.address
    return ConfState(tuple(voters), tuple(learners), tuple(sorted(addresses.items())))


class ConfHistory:
    """The configurations a log holds: a base (the snapshot's, or the bootstrap one) and
    the index of every configuration entry after it, in order. The one in force is the
    last (§4.1: the latest in the log, committed or not)."""

    __slots__ = ("base_index", "base", "_indexes", "_confs")

    def __init__(self, base_index: int, base: ConfState) -> None:
        self.base_index = base_index
        self.base = base
        self._indexes: list[int] = []
        self._confs: list[ConfState] = []

    @property
    def current(self) -> ConfState:
        return self._confs[-1] if self._confs else self.base

    @property
    def latest_index(self) -> int:
        """Index of the entry of the configuration in force (the base's index if none)."""
        return self._indexes[-1] if self._indexes else self.base_index

    def at(self, index: int) -> ConfState:
        """The configuration in force once the log ends at ``index``."""
        position = bisect_right(self._indexes, index)
        return self._confs[position - 1] if position else self.base

    def add(self, index: int, conf: ConfState) -> None:
        if self._indexes and index <= self._indexes[-1]:
            raise ValueError(f"configuration at {index} after one at {self._indexes[-1]}")
        self._indexes.append(index)
        self._confs.append(conf)

    def truncate_from(self, index: int) -> None:
        """Entries from ``index`` on were overwritten: forget their configurations."""
        position = bisect_right(self._indexes, index - 1)
        del self._indexes[position:]
        del self._confs[position:]

    def compact(self, index: int) -> None:
        """A snapshot now covers everything up to ``index``: it becomes the base."""
        if index <= self.base_index:
            return
        conf = self.at(index)
        position = bisect_right(self._indexes, index)
        del self._indexes[:position]
        del self._confs[:position]
        self.base_index, self.base = index, conf

    def reset(self, index: int, conf: ConfState) -> None:
        """The whole log was replaced by a snapshot at ``index`` carrying ``conf``."""
        self.base_index, self.base = index, conf
        self._indexes.clear()
        self._confs.clear()
