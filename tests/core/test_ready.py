"""The Ready hand-off: what must be durable travels in the same Ready as the messages
that depend on it (§3.8), and ready()/advance() stay consistent when steps come in
between."""

from __future__ import annotations

import random

import pytest
from raftcore_harness import log_of

from raftnode.core import RaftConfig, RaftCore, Ready
from raftnode.messages import Entry, Message, MessageType


def _core() -> RaftCore:
    return RaftCore(RaftConfig("f", ("f", "l", "x")), random.Random(0))


def test_vote_grant_travels_with_the_durable_vote() -> None:
    core = _core()
    core.step(Message(MessageType.VOTE, 3, "x", "f", last_log_index=0, last_log_term=0))
    rd = core.ready()
    (grant,) = rd.messages
    assert grant.granted and grant.term == 3
    assert rd.hard_state is not None and (rd.hard_state.term, rd.hard_state.vote) == (3, "x")


def test_append_ack_travels_with_the_entries() -> None:
    core = _core()
    entries = log_of(1, 1)
    core.step(Message(MessageType.APPEND, 1, "l", "f", entries=entries, leader_commit=1))
    rd = core.ready()
    assert rd.entries == entries
    (ack,) = rd.messages
    assert ack.success and ack.match_index == 2
    assert rd.committed_entries == entries[:1]  # applied after the persist, same Ready


def test_steps_between_ready_and_advance() -> None:
    """A conflicting append arrives while the driver persists the previous Ready: the
    overwritten suffix is handed out again, from the conflict on."""
    core = _core()
    core.step(Message(MessageType.APPEND, 1, "l", "f", entries=log_of(1, 1, 1)))
    first = core.ready()
    assert [e.index for e in first.entries] == [1, 2, 3]
    replacement = [Entry(term=2, index=2, data=b"b"), Entry(term=2, index=3, data=b"c")]
    core.step(
        Message(
            MessageType.APPEND, 2, "x", "f", prev_log_index=1, prev_log_term=1, entries=replacement
        )
    )
    assert not core.has_ready()  # nothing new until the driver calls advance
    core.advance(first)
    second = core.ready()
    assert second.entries == replacement
    assert second.hard_state is not None and second.hard_state.term == 2
    core.advance(second)
    assert not core.has_ready()


def test_advance_needs_the_ready_it_was_given() -> None:
    core = _core()
    core.step(Message(MessageType.APPEND, 1, "l", "f", entries=log_of(1)))
    core.ready()
    with pytest.raises(RuntimeError, match="advance"):
        core.advance(Ready())


def test_nothing_to_do_means_no_ready() -> None:
    core = _core()
    assert not core.has_ready()
    rd = core.ready()
    assert rd.is_empty()
    core.advance(rd)
