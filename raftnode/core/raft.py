"""RaftCore: the sans-I/O Raft state machine (in the style of etcd-io/raft).

Inputs are ``tick()`` (one logical clock tick), ``step(message)``, ``propose(data)`` and
``read_index(request_id)``; the output is a ``Ready`` (what to persist, send, apply and
answer), confirmed with ``advance``. The core owns no socket, file, clock, thread or
global random: time is ticks and randomness comes from the injected ``RandomSource``.

Roles are not classes: ``become_follower`` / ``become_pre_candidate`` /
``become_candidate`` / ``become_leader`` set ``self._step`` and ``self._tick`` to the
role's functions, as etcd does. Term handling common to all roles happens in ``step``
before the role function sees a message.

Teaching bug switches (``RaftConfig.bugs``) are each a few lines guarded by
``self._bug(name)`` and a comment citing the real bug.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from raftnode.core.config import RaftConfig
from raftnode.core.errors import InvariantViolation, NotLeader
from raftnode.core.log import RaftLog
from raftnode.core.membership import (
    ChangeRefused,
    ConfChange,
    ConfHistory,
    apply_change,
)
from raftnode.core.progress import Progress, ProgressState
from raftnode.core.readonly import ReadOnly
from raftnode.core.ready import ReadState, Ready
from raftnode.core.status import Role, Status
from raftnode.messages import (
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    RestoredState,
    Snapshot,
    SnapshotMeta,
    conf_from_bytes,
    conf_to_bytes,
)

# Committed entries handed out per Ready, so a restart with a long log does not build one
# enormous batch; the rest follow in the next Ready.
MAX_COMMITTED_PER_READY = 8192


# After a reset from the leader, the ticks between one follower's pre-vote and the next
# one's (peer_connection_reset): well over a pre-vote round trip (a millisecond), so the
# first has won or lost before the next starts, yet a small part of the election timeout.
RESET_RANK_TICKS = 2

# Messages only a leader of their term sends.
_FROM_LEADER = (MessageType.APPEND, MessageType.SNAPSHOT, MessageType.TIMEOUT_NOW)


class RandomSource(Protocol):
    """random.Random satisfies it; the core never builds one (all randomness is seeded
    by the driver, so the simulation replays exactly)."""

    def randrange(self, start: int, stop: int) -> int: ...


class RaftCore:
    def __init__(
        self, config: RaftConfig, rng: RandomSource, restored: RestoredState | None = None
    ) -> None:
        self.config = config
        self.id = config.node_id
        self._rng = rng
        self._pre_vote = config.effective_pre_vote
        self._check_quorum = config.effective_check_quorum
        # Invariant checks that a teaching bug is meant to break are relaxed when any
        # bug switch is on, so the damage reaches the checker instead of a crash.
        self._strict = not config.bugs

        restored = restored or RestoredState()
        hard = restored.hard_state
        self.log = RaftLog(restored.snapshot, restored.entries, hard.commit, self._strict)
        # The configuration (§4): the snapshot's (or the bootstrap peers), then every
        # configuration entry in the log; the latest is in force, committed or not (§4.1).
        snapshot_conf = restored.snapshot.meta.conf if restored.snapshot is not None else None
        self._confs = ConfHistory(
            self.log.snapshot_index,
            snapshot_conf if snapshot_conf is not None else ConfState(tuple(config.peers)),
        )
        for entry in restored.entries:
            if entry.kind is EntryKind.CONFIG:
                try:
                    self._confs.add(entry.index, conf_from_bytes(entry.data))
                except ValueError as exc:
                    raise ValueError(f"restored config entry {entry.index}: {exc}") from None
        self._voters: frozenset[str] = frozenset()
        self._others: tuple[str, ...] = ()  # every other member: voters and learners
        self._other_voters: tuple[str, ...] = ()
        self._is_voter = False
        self._quorum = 1
        self.term: int = hard.term
        self.vote: str | None = hard.vote
        if self.log.last_term > self.term:
            raise ValueError(
                f"restored log has an entry of term {self.log.last_term} beyond the restored "
                f"term {self.term}"
            )
        self.leader: str | None = None
        self.role: Role = Role.FOLLOWER
        self._step: Callable[[Message], None] = self._step_follower
        self._tick: Callable[[], None] = self._tick_election

        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_election_timeout = config.election_ticks
        self._votes: dict[str, bool] = {}
        self._progress: dict[str, Progress] = {}
        self._readonly = ReadOnly()
        self._broadcast_pending = False  # leader: new entries or commit to send (batched)
        # Leader: the commit index each follower was last sent (every append carries it).
        # A commit moved by an append response is not broadcast on its own; it rides on
        # the next append or, at the latest, goes out at the next tick (_tell_commit).
        self._commit_sent: dict[str, int] = {}
        # Leadership transfer (§3.10): the target, and ticks since it began.
        self._transferee: str | None = None
        self._transfer_elapsed = 0
        self._timeout_now_sent = False

        # What the driver has been handed / confirmed.
        self._outbox: list[Message] = []
        self._read_states: list[ReadState] = []
        self._dropped_reads: list[int] = []
        self._snapshot_to_persist: Snapshot | None = None
        self._handed_hard_state = HardState(self.term, self.vote, self.log.committed)
        self._role_changed = False
        self._ready_in_progress: Ready | None = None

        self._use_conf(self._confs.current)
        self._reset_election_timer()

    # =================================================================== public API

    def tick(self) -> None:
        """One logical clock tick."""
        self._tick()

    def step(self, msg: Message) -> None:
        """Feed one message from a peer. Never raises on a stale, foreign or malformed
        message: it is dropped (a real Raft invariant violation still raises)."""
        if not self._acceptable(msg):
            return
        if msg.term > self.term:
            if msg.type is MessageType.VOTE:
                # §6 "disruptive servers" / etcd's lease: with check-quorum, a node that
                # heard from a live leader within the election timeout ignores higher-term
                # vote requests, so a returning partitioned node cannot depose it.
                # A campaign TimeoutNow started (§3.10) was asked for by the leader itself.
                if self._check_quorum and self._in_leader_lease() and not msg.transfer:
                    return
                if msg.pre_vote:
                    self._handle_vote(msg)  # a pre-vote never changes our term (§9.6)
                    return
            if msg.type is MessageType.VOTE_RESP and msg.pre_vote and msg.granted:
                pass  # a granted pre-vote carries the term we would campaign in
            else:
                leader = msg.src if msg.type in _FROM_LEADER else None
                self.become_follower(msg.term, leader)
        elif msg.term < self.term:
            self._answer_stale(msg)
            return
        if msg.type is MessageType.VOTE:
            self._handle_vote(msg)
        else:
            self._step(msg)

    def propose(self, data: bytes) -> tuple[int, int]:
        """Append a command; returns (index, term). Raises NotLeader(leader_hint)."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if not isinstance(data, bytes):
            raise TypeError(f"a proposal is bytes, got {type(data).__name__}")
        if self._transferee is not None:
            # §3.10: the leader stops accepting proposals while it hands over, or the
            # target could never catch up; the client retries at the target.
            raise NotLeader(self._transferee)
        entry = self._append_local(EntryKind.COMMAND, data)
        return entry.index, entry.term

    def propose_conf_change(self, change: ConfChange) -> tuple[int, int]:
        """Append a configuration change (single-server, §4.1; see ``membership``); it is
        in force at once, here and on each follower as it appends it. Returns (index,
        term). Raises NotLeader, or ChangeRefused with the reason."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if self._transferee is not None:
            raise NotLeader(self._transferee)
        if self._confs.latest_index > self.log.committed:
            raise ChangeRefused(
                "change_pending",
                f"the change at index {self._confs.latest_index} is not committed yet "
                f"(commit index {self.log.committed})",
            )
        if not self._committed_in_current_term():
            raise ChangeRefused(
                "term_not_committed",
                "this leader has not yet committed an entry of its term",
            )
        conf = apply_change(self._confs.current, change)
        entry = self._append_local(EntryKind.CONFIG, conf_to_bytes(conf))
        return entry.index, entry.term

    def transfer_leadership(self, target: str) -> None:
        """§3.10: hand leadership to ``target``. Proposals are refused meanwhile; the
        target is brought up to date and then sent TimeoutNow, on which it campaigns at
        once. Abandoned after an election timeout. Raises NotLeader or ChangeRefused."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if target == self.id:
            return  # already the leader
        if target not in self._voters:
            raise ChangeRefused("not_a_voter", f"{target} is not a voter in {self._voters}")
        if self._transferee == target:
            return  # already under way
        self._transferee = target
        self._transfer_elapsed = 0
        self._timeout_now_sent = False
        if self._progress[target].match == self.log.last_index:
            self._send_timeout_now()
        else:
            self._broadcast_pending = True  # bring it up to date first

    def peer_connection_reset(self, peer: str) -> None:
        """The driver saw ``peer``'s connection closed by the peer's host (a reset or an
        end of stream: the process died), not a timeout. If ``peer`` is our leader, a
        follower need not wait out its election timeout: it forgets the leader (so it
        grants others' pre-votes) and starts a pre-vote (§9.6) after a delay set by its
        rank among the other voters (sorted ids, the dead leader left out): the first
        at once, each next one RESET_RANK_TICKS later. The followers that all saw the
        same reset then never start together (two pre-candidates grant each other's
        pre-votes, run at once and split the real vote, §5.2: a random 0..E/2 draw did
        that when two drew the same tick), and the first need not wait for a draw; a
        later one takes over if the first cannot win (its log is behind, or it is gone).

        Safety does not depend on it: Raft's safety never depends on timing, and only
        the timing of a pre-vote changes. Nor does it disrupt a live leader: the
        pre-vote needs a majority, and every voter that heard from the leader within its
        election timeout refuses it (and the leader ignores it, check-quorum's lease), so
        a reset of one healthy link only makes this follower poll and fall back when the
        next heartbeat comes. Without pre-vote this hint is ignored (a real campaign
        would bump the term and depose a live leader)."""
        if (
            self.role is not Role.FOLLOWER
            or peer != self.leader
            or not self._pre_vote
            or not self._is_voter
        ):
            return
        self.leader = None
        others = sorted(v for v in self._voters if v != peer)
        delay = min(RESET_RANK_TICKS * others.index(self.id), self.config.election_ticks - 1)
        # The timer fires on the delay-th tick from now (the first comes within a tick).
        self._election_elapsed = max(
            self._election_elapsed, self._randomized_election_timeout - delay
        )
        if delay == 0:
            self._campaign(pre_vote=True)
            if self.role is Role.PRE_CANDIDATE:
                # Ask once more at the next tick if undecided by then: a voter that read
                # our request before it read the same reset still held its leader's
                # lease and refused; by then it has seen the reset too.
                self._election_elapsed = self._randomized_election_timeout - 1

    def best_transfer_target(self) -> str | None:
        """Leader: the other voter whose log matches most of ours (for a hand-over on
        shutdown), or None if there is no other voter or this is not the leader."""
        if self.role is not Role.LEADER or not self._other_voters:
            return None
        return max(self._other_voters, key=lambda v: self._progress[v].match)

    def conf_state(self) -> ConfState:
        """The configuration in force (the latest in the log, committed or not)."""
        return self._confs.current

    def conf_at(self, index: int) -> ConfState:
        """The configuration in force at ``index``: what a snapshot taken there carries."""
        return self._confs.at(index)

    def snapshot_meta(self, index: int, term: int) -> SnapshotMeta:
        """The metadata of a snapshot the driver takes at applied ``index``."""
        return SnapshotMeta(index=index, term=term, conf=self._confs.at(index))

    def read_index(self, request_id: int) -> None:
        """Ask for a linearizable read point (§6.4); answered in Ready.read_states (or
        Ready.dropped_reads if leadership is lost first). Raises NotLeader."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if self._committed_in_current_term() or self._bug("readindex-before-noop"):
            # Bug readindex-before-noop (etcd #7331): answering before the leader has
            # committed an entry of its term uses a commit index that may lag entries an
            # earlier leader committed, so the read can miss acknowledged writes.
            self._readonly.add(request_id, self.log.committed)
            self._release_confirmed_reads()
        else:
            self._readonly.waiting_for_commit.append(request_id)

    def has_ready(self) -> bool:
        if self._ready_in_progress is not None:
            return False
        return bool(
            self._outbox
            or self._read_states
            or self._dropped_reads
            or self._role_changed
            or self._snapshot_to_persist is not None
            or (
                self.role is Role.LEADER
                and (self._broadcast_pending or self._readonly.broadcast_needed)
            )
            or self._hard_state_changed()
            or self.log.unstable_from <= self.log.last_index
            or self.log.has_next_committed()
        )

    def ready(self) -> Ready:
        """The next batch of work (see Ready for the order the driver must follow)."""
        if self._ready_in_progress is not None:
            raise RuntimeError("ready() called again before advance() of the previous Ready")
        if self.role is Role.LEADER:
            self._flush_leader_sends()
            self._maybe_step_down_removed()
        hard_state = self._current_hard_state()
        committed = self.log.next_committed_entries(MAX_COMMITTED_PER_READY)
        rd = Ready(
            hard_state=hard_state if hard_state != self._handed_hard_state else None,
            entries=self.log.unstable_entries(),
            snapshot=self._snapshot_to_persist,
            messages=self._outbox,
            committed_entries=committed,
            read_states=self._read_states,
            dropped_reads=self._dropped_reads,
            should_snapshot=bool(committed)
            and committed[-1].index - self.log.snapshot_index >= self.config.snapshot_threshold,
            role_changed=self._role_changed,
        )
        self._outbox = []
        self._read_states = []
        self._dropped_reads = []
        self._role_changed = False
        self._ready_in_progress = rd
        return rd

    def advance(self, ready: Ready) -> None:
        """The driver has done everything ``ready`` asked."""
        if ready is not self._ready_in_progress:
            raise RuntimeError("advance() must be given the Ready last returned by ready()")
        self._ready_in_progress = None
        if ready.hard_state is not None:
            self._handed_hard_state = ready.hard_state
        if ready.snapshot is not None:
            if self._snapshot_to_persist is ready.snapshot:
                self._snapshot_to_persist = None
            self.log.applied_to(max(self.log.applied, ready.snapshot.meta.index))
        # The longest prefix of the persisted entries still in the log is stable; a
        # conflict resolved meanwhile leaves the overwritten suffix to the next Ready.
        for entry in reversed(ready.entries):
            if self.log.term_at(entry.index) == entry.term:
                self.log.stable_to(entry.index, entry.term)
                break
        if ready.committed_entries:
            self.log.applied_to(ready.committed_entries[-1].index)

    def compact(self, snapshot: Snapshot) -> None:
        """The driver snapshotted the state machine at an applied index: drop the log
        prefix it covers. The snapshot is kept to send to followers that fall behind it.
        A snapshot without a configuration gets the one in force at its index."""
        index = snapshot.meta.index
        if index > self.log.snapshot_index and index <= self.log.last_index:
            conf = self._confs.at(index)
            if snapshot.meta.conf is None:
                snapshot = Snapshot(
                    SnapshotMeta(index=index, term=snapshot.meta.term, conf=conf), snapshot.data
                )
            elif snapshot.meta.conf != conf:
                raise ValueError(
                    f"snapshot at {index} carries configuration {snapshot.meta.conf}, but the "
                    f"log has {conf} there"
                )
        if self.log.compact(snapshot):
            self._confs.compact(index)

    def status(self) -> Status:
        return Status(
            node_id=self.id,
            role=self.role,
            term=self.term,
            vote=self.vote,
            leader=self.leader,
            commit_index=self.log.committed,
            applied_index=self.log.applied,
            last_log_index=self.log.last_index,
            snapshot_index=self.log.snapshot_index,
            voters=self._confs.current.voters,
            learners=self._confs.current.learners,
            transferee=self._transferee,
        )

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index`` (None if compacted or absent)."""
        return self.log.term_at(index)

    # ========================================================== role transitions

    def become_follower(self, term: int, leader: str | None) -> None:
        was_leader = self.role is Role.LEADER
        self._reset(term)
        self.leader = leader
        self._set_role(Role.FOLLOWER, self._step_follower, self._tick_election)
        if was_leader:
            self._dropped_reads.extend(self._readonly.drop_all())

    def become_pre_candidate(self) -> None:
        """§9.6: poll the voters at term + 1 without changing our term or vote, so a node
        that cannot win (partitioned, or behind) never disrupts the cluster's term."""
        if self.role is Role.LEADER:
            raise InvariantViolation("a leader cannot become a pre-candidate")
        self._votes = {}
        self.leader = None
        self._reset_election_timer()
        self._set_role(Role.PRE_CANDIDATE, self._step_candidate, self._tick_election)

    def become_candidate(self) -> None:
        if self.role is Role.LEADER:
            raise InvariantViolation("a leader cannot become a candidate")
        self._reset(self.term + 1)
        self.vote = self.id
        self.leader = None
        self._set_role(Role.CANDIDATE, self._step_candidate, self._tick_election)

    def become_leader(self) -> None:
        if self.role is not Role.CANDIDATE:
            raise InvariantViolation(f"only a candidate can become leader (was {self.role})")
        self._reset(self.term)
        self.leader = self.id
        last = self.log.last_index
        self._progress = {
            peer: Progress(next=last + 1, max_inflight=self.config.max_inflight_appends)
            for peer in (self.id, *self._others)
        }
        self._progress[self.id].match = last
        self._progress[self.id].become_replicate()
        self._readonly = ReadOnly(round=self._readonly.round)
        self._set_role(Role.LEADER, self._step_leader, self._tick_heartbeat)
        # §5.4.2 / §6.4: a no-op at the start of the term lets the leader commit (and so
        # learn the commit index of) everything earlier leaders committed.
        self._append_local(EntryKind.NOOP, b"")

    def _set_role(
        self, role: Role, step: Callable[[Message], None], tick: Callable[[], None]
    ) -> None:
        if role is not self.role:
            self._role_changed = True
        self.role = role
        self._step = step
        self._tick = tick

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
        elif self._bug("vote-twice"):
            # Bug vote-twice (etcd PR #2461): reset() cleared the vote even when the term
            # did not change — on becoming leader, or a candidate stepping down to
            # follower in its term — so the node could grant a second vote in that term
            # to a late competing candidate: two leaders for one term.
            self.vote = None
        self._votes = {}
        self._broadcast_pending = False
        self._commit_sent = {}
        self._heartbeat_elapsed = 0
        self._transferee = None
        self._reset_election_timer()

    def _reset_election_timer(self) -> None:
        self._election_elapsed = 0
        # §5.2: randomized timeouts make split votes rare and short.
        election = self.config.election_ticks
        self._randomized_election_timeout = self._rng.randrange(election, 2 * election)

    # ================================================================ elections

    def _tick_election(self) -> None:
        """Follower / (pre-)candidate tick: start an election after a randomized timeout."""
        self._election_elapsed += 1
        if self._election_elapsed >= self._randomized_election_timeout:
            if not self._is_voter:
                # Learners and removed servers never campaign (§4.2.1, §4.2.3): their
                # votes would not count, and a removed server must not disrupt.
                self._election_elapsed = 0
                return
            self._campaign(pre_vote=self._pre_vote)

    def _campaign(self, pre_vote: bool, transfer: bool = False) -> None:
        if pre_vote:
            self.become_pre_candidate()
            campaign_term = self.term + 1
        else:
            self.become_candidate()
            campaign_term = self.term
        self._record_vote(self.id, True)
        if self._tally_votes():
            return
        for peer in self._other_voters:
            self._send(
                MessageType.VOTE,
                peer,
                term=campaign_term,
                last_log_index=self.log.last_index,
                last_log_term=self.log.last_term,
                pre_vote=pre_vote,
                transfer=transfer,
            )

    def _record_vote(self, voter: str, granted: bool) -> None:
        # Only the voters of the configuration in force count (§4.2.1: a learner's, or a
        # stranger's, answer is no vote).
        if voter in self._voters:
            self._votes.setdefault(voter, granted)

    def _tally_votes(self) -> bool:
        """Act on a decided election; True if it was decided."""
        granted = sum(1 for g in self._votes.values() if g)
        rejected = len(self._votes) - granted
        if granted >= self._quorum:
            if self.role is Role.PRE_CANDIDATE:
                self._campaign(pre_vote=False)  # the real election, at term + 1
            else:
                self.become_leader()
            return True
        if rejected >= self._quorum:
            self.become_follower(self.term, None)
            return True
        return False

    def _handle_vote(self, msg: Message) -> None:
        """RequestVote / PreVote, whatever our role (msg.term >= self.term here)."""
        if msg.pre_vote:
            # §9.6: grant a pre-vote only to a log at least as up-to-date as ours, for a
            # term above ours, and only if we have not heard from a leader within the
            # election timeout (a live leader means no election is needed).
            can_vote = (msg.term > self.term or self.vote in (None, msg.src)) and not (
                self._in_leader_lease()
            )
        else:
            can_vote = self.vote in (None, msg.src)
        granted = can_vote and self.log.is_up_to_date(msg.last_log_index, msg.last_log_term)
        if granted and not msg.pre_vote:
            # The grant is persisted (Ready.hard_state) before this response leaves (§3.8).
            self.vote = msg.src
            self._election_elapsed = 0
        self._send(
            MessageType.VOTE_RESP,
            msg.src,
            # A granted pre-vote answers in the term the candidate would run in.
            term=msg.term if granted else self.term,
            pre_vote=msg.pre_vote,
            granted=granted,
        )

    def _in_leader_lease(self) -> bool:
        return self.leader is not None and self._election_elapsed < self.config.election_ticks

    # ============================================================ role behaviour

    def _step_follower(self, msg: Message) -> None:
        if msg.type is MessageType.TIMEOUT_NOW:
            # §3.10: our leader asks us to take over: campaign at once, skipping the
            # pre-vote (the leader is alive, so a pre-vote would be refused).
            if self._is_voter and msg.src == self.leader:
                self._campaign(pre_vote=False, transfer=True)
            return
        if msg.type is MessageType.APPEND:
            self._election_elapsed = 0
            self.leader = msg.src
            self._handle_append(msg)
        elif msg.type is MessageType.SNAPSHOT:
            self._election_elapsed = 0
            self.leader = msg.src
            self._handle_snapshot(msg)
        # Responses and anything else are stale for a follower: dropped.

    def _step_candidate(self, msg: Message) -> None:
        """Shared by pre-candidates and candidates."""
        if msg.type in (MessageType.APPEND, MessageType.SNAPSHOT):
            # A leader exists in our term (§5.2): step down and follow it.
            self.become_follower(msg.term, msg.src)
            self._step_follower(msg)
        elif msg.type is MessageType.VOTE_RESP:
            pre = self.role is Role.PRE_CANDIDATE
            if msg.pre_vote != pre:
                return  # an answer to an earlier campaign of the other kind
            if pre and msg.granted and msg.term != self.term + 1:
                return  # a grant for some other pre-campaign
            self._record_vote(msg.src, msg.granted)
            self._tally_votes()

    def _step_leader(self, msg: Message) -> None:
        if msg.src not in self._progress:
            return  # not a member of the configuration in force (removed, or a stranger)
        if msg.type is MessageType.APPEND_RESP:
            self._handle_append_response(msg)
        elif msg.type is MessageType.SNAPSHOT_RESP:
            self._handle_snapshot_response(msg)
        # APPEND/SNAPSHOT from another leader of our term cannot happen in correct Raft
        # (one vote per term); with a bug switch on it can, and we ignore it.

    def _answer_stale(self, msg: Message) -> None:
        """A message from an older term. Answer requests with our term so a stale leader
        or candidate learns it is behind (§5.1); drop stale responses."""
        if msg.type in (MessageType.APPEND, MessageType.SNAPSHOT):
            self._send(MessageType.APPEND_RESP, msg.src, success=False)
        elif msg.type is MessageType.VOTE:
            self._send(MessageType.VOTE_RESP, msg.src, pre_vote=msg.pre_vote, granted=False)

    # =================================================== follower: replication

    def _handle_append(self, msg: Message) -> None:
        prev_index, prev_term, entries = msg.prev_log_index, msg.prev_log_term, msg.entries
        log = self.log
        if prev_index < log.committed:
            # Entries up to our commit index are committed, hence identical to the
            # leader's (Leader Completeness, §5.4.3): skip them, match from commit.
            skip = log.committed - prev_index
            entries = entries[skip:]
            prev_index = log.committed
            prev_term = log.term_at(prev_index) or 0
        if log.term_at(prev_index) != prev_term:
            # §5.3 consistency check failed: reject with a hint so the leader can skip a
            # whole conflicting term per round trip instead of one entry.
            conflict_index, conflict_term = log.conflict_hint(prev_index)
            self._send(
                MessageType.APPEND_RESP,
                msg.src,
                success=False,
                conflict_index=conflict_index,
                conflict_term=conflict_term,
                read_ctx=msg.read_ctx,
            )
            return
        last_new_index = prev_index + len(entries)
        if entries and self._bug("truncate-always"):
            # Bug truncate-always (hashicorp/raft PR #113): drop everything after the
            # prev index even when it matches, so a stale, reordered append erases
            # entries the follower already acknowledged — which the leader may have
            # counted toward commitment.
            log.truncate_after(prev_index)
            log.append(entries)
            self._track_confs(prev_index + 1, entries)
        else:
            # §5.3 step 3: delete only from the first real conflict; entries already
            # present (a duplicate or reordered append) are left alone.
            conflict = log.find_conflict(entries)
            if conflict:
                appended = entries[conflict - prev_index - 1 :]
                log.append(appended)
                self._track_confs(conflict, appended)
        new_commit = min(msg.leader_commit, last_new_index)
        if self._bug("commit-regress"):
            # Bug commit-regress (PySyncObj #166): commit = min(leader_commit, last new)
            # without the max, so a stale append moves the commit index backwards.
            if new_commit != log.committed:
                log.commit_to(new_commit, allow_regress=True)
        elif new_commit > log.committed:
            log.commit_to(new_commit)
        self._send(
            MessageType.APPEND_RESP,
            msg.src,
            success=True,
            match_index=last_new_index,
            read_ctx=msg.read_ctx,
        )

    def _handle_snapshot(self, msg: Message) -> None:
        snapshot = msg.snapshot
        assert snapshot is not None  # checked in _acceptable
        index, term = snapshot.meta.index, snapshot.meta.term
        log = self.log
        if index <= max(log.committed, log.applied):
            # Stale: we already hold (and committed) that prefix. (``applied`` only
            # matters under the commit-regress bug, where commit may fall below it.)
            match = max(log.committed, log.applied)
        elif log.term_at(index) == term:
            # §7: we hold the snapshot's last entry: keep the log after it, commit up to it.
            log.commit_to(index)
            match = index
        else:
            # §7: discard the whole log and adopt the snapshot; the driver persists it
            # and restores the state machine from it (Ready.snapshot).
            log.restore(snapshot)
            self._snapshot_to_persist = snapshot
            conf = snapshot.meta.conf
            # A snapshot without a configuration predates membership: the static peers.
            self._confs.reset(index, conf if conf is not None else ConfState(self.config.peers))
            self._use_conf(self._confs.current)
            match = index
        self._send(
            MessageType.SNAPSHOT_RESP,
            msg.src,
            success=True,
            match_index=match,
            read_ctx=msg.read_ctx,
        )

    # ===================================================== leader: replication

    def _tick_heartbeat(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        for progress in self._progress.values():
            if progress.state is ProgressState.SNAPSHOT:
                progress.snapshot_elapsed += 1
                if progress.snapshot_elapsed >= 2 * self.config.election_ticks:
                    # The snapshot or its answer was lost: probe again (which re-sends
                    # the snapshot if the follower still needs it).
                    progress.become_probe()
        if self._transferee is not None:
            self._transfer_elapsed += 1
            if self._transfer_elapsed >= self.config.election_ticks:
                # §3.10: the target did not take over within an election timeout (it
                # may be down or cut off): abort and accept proposals again.
                self._transferee = None
        if self._election_elapsed >= self.config.election_ticks:
            self._election_elapsed = 0
            if self._check_quorum:
                # §6.2: a leader that has not heard from a quorum within an election
                # timeout steps down, so clients stop waiting on a cut-off leader. Only
                # voters of the configuration in force count, the leader among them only
                # if it is one (§4.2.2: a leader being removed still manages the cluster).
                active = int(self._is_voter) + sum(
                    1 for p in self._other_voters if self._progress[p].recent_active
                )
                if active < self._quorum:
                    self.become_follower(self.term, None)
                    return
            for peer in self._others:
                self._progress[peer].recent_active = False
        if self._heartbeat_elapsed >= self.config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat(periodic=True)
        else:
            self._tell_commit()

    def _tell_commit(self) -> None:
        """Followers not yet sent the current commit index get it in an empty append,
        once per tick at most: the lazy half of commit propagation (see
        _handle_append_response). A follower still waiting for an append's answer
        (flow control) gets it with the next append instead."""
        committed = self.log.committed
        for peer in self._others:
            if self._commit_sent.get(peer, 0) < committed:
                self._send_append(peer, send_if_empty=True)

    def _broadcast_heartbeat(self, periodic: bool) -> None:
        """Empty appends to everyone, carrying a fresh read round (§6.4)."""
        self._readonly.start_round()
        for peer in self._others:
            progress = self._progress[peer]
            if periodic and progress.state is ProgressState.PROBE:
                progress.probe_sent = False  # a heartbeat period passed: probe again
            # In REPLICATE, check the log where the next append will go: on a FIFO link
            # this arrives after the appends in flight, so a rejection means some were
            # lost and the leader falls back to probing instead of stalling. Otherwise
            # check at ``match`` (known to agree): the heartbeat confirms leadership
            # (check-quorum, ReadIndex) even while the follower's log is unknown.
            if progress.state is ProgressState.REPLICATE:
                prev_index = progress.next - 1
            else:
                prev_index = progress.match
            prev_term = self.log.term_at(prev_index)
            if prev_term is None:  # compacted below match: the empty prefix always agrees
                prev_index, prev_term = 0, 0
            self._send_append_message(peer, prev_index, prev_term, [])

    def _flush_leader_sends(self) -> None:
        """Batched sends, once per Ready: pending reads' heartbeat round, then new
        entries / the new commit index for every follower (many entries per message)."""
        if self._readonly.broadcast_needed:
            self._broadcast_heartbeat(periodic=False)
        if self._broadcast_pending:
            self._broadcast_pending = False
            for peer in self._others:
                if self._send_append(peer, send_if_empty=True):
                    while self._send_append(peer):  # fill the pipeline
                        pass

    def _send_append(self, peer: str, send_if_empty: bool = False) -> bool:
        """Send the follower what it lacks, within flow control; True if sent."""
        progress = self._progress[peer]
        if progress.is_paused():
            return False
        log = self.log
        prev_index = progress.next - 1
        prev_term = log.term_at(prev_index)
        if prev_term is None:
            if prev_index < log.snapshot_index:
                self._send_snapshot(peer, progress)
                return True
            progress.back_off_to(log.last_index + 1, log.last_index)  # next ran past our log
            prev_index = progress.next - 1
            prev_term = log.term_at(prev_index) or 0
        high = min(log.last_index + 1, progress.next + self.config.max_entries_per_append)
        entries = log.slice(progress.next, high)
        if not entries and not send_if_empty:
            return False
        self._send_append_message(peer, prev_index, prev_term, entries)
        if entries:
            progress.sent_entries(entries[-1].index)
        elif progress.state is ProgressState.PROBE:
            progress.probe_sent = True
        return True

    def _send_append_message(
        self, peer: str, prev_index: int, prev_term: int, entries: list[Entry]
    ) -> None:
        self._commit_sent[peer] = self.log.committed
        self._send(
            MessageType.APPEND,
            peer,
            prev_log_index=prev_index,
            prev_log_term=prev_term,
            entries=entries,
            # Safe to send in full: the follower commits at most up to the last entry
            # this message proves it holds (min with the last new index, §5.3).
            leader_commit=self.log.committed,
            read_ctx=self._readonly.round,
        )

    def _send_snapshot(self, peer: str, progress: Progress) -> None:
        snapshot = self.log.snapshot
        if snapshot is None:
            raise InvariantViolation(
                f"follower {peer} needs compacted entries but the leader holds no snapshot"
            )
        progress.become_snapshot(snapshot.meta.index)
        self._send(MessageType.SNAPSHOT, peer, snapshot=snapshot, read_ctx=self._readonly.round)

    def _handle_append_response(self, msg: Message) -> None:
        peer = msg.src
        progress = self._progress[peer]
        if msg.match_index > self.log.last_index:
            return  # claims entries we never sent: not a real answer, drop it
        progress.recent_active = True
        if msg.read_ctx:
            self._readonly.ack(peer, msg.read_ctx)
            self._release_confirmed_reads()
        if not msg.success:
            if progress.state is ProgressState.SNAPSHOT:
                return  # an answer to an append sent before the snapshot: stale
            if msg.conflict_index == 0 or msg.conflict_index <= progress.match:
                return  # stale: the follower has since acknowledged more than that
            next_index = msg.conflict_index
            if msg.conflict_term:
                # Skip the follower's whole conflicting term; if we hold that term too,
                # resume just after our last entry of it (entries of one term at one
                # index are identical, §5.3 Log Matching).
                ours = self.log.last_index_of_term(msg.conflict_term)
                if ours:
                    next_index = ours + 1
            # Never move forward on a rejection: at most one before the last try.
            next_index = min(next_index, progress.next - 1)
            progress.back_off_to(next_index, self.log.last_index)
            self._send_append(peer, send_if_empty=True)
            return
        if progress.maybe_update(msg.match_index):
            if progress.state is ProgressState.PROBE:
                progress.become_replicate()
            elif progress.state is ProgressState.SNAPSHOT:
                if progress.match >= progress.pending_snapshot:
                    progress.become_replicate()
            else:
                progress.free_inflight_to(progress.match)
            # A new commit index is not broadcast in empty appends of its own (§5.3:
            # the leader "includes that index in future AppendEntries RPCs (including
            # heartbeats)"): it rides on the next append, which under load follows at
            # once, or goes out at the next tick (_tell_commit). Eagerly, every entry
            # cost each follower a second append, fsync-free but a round trip, and the
            # leader a second answer to read: half the peer messages of a lone put.
            # Nothing waits on a follower's commit index: the leader answers clients
            # and confirms reads itself, and a new leader commits its own no-op first.
            self._maybe_commit()
            if (
                peer == self._transferee
                and progress.match == self.log.last_index
                and not self._timeout_now_sent
            ):
                self._send_timeout_now()  # §3.10: the target is up to date
        else:
            # No news (a heartbeat answer, or a duplicate): unblock flow control so a
            # lost append cannot stall the follower forever.
            if progress.state is ProgressState.PROBE:
                progress.probe_sent = False
                if progress.match < self.log.last_index:
                    # The follower answers, but our probe at ``next - 1`` was lost (a
                    # heartbeat checks only ``match``): probe again, even with nothing
                    # new to send, or an idle leader never finds where its log and the
                    # follower's meet and a new member never catches up (etcd answers a
                    # heartbeat response the same way: sendAppend when match < last).
                    self._send_append(peer, send_if_empty=True)
            elif progress.state is ProgressState.REPLICATE and progress.is_paused():
                progress.inflight.popleft()
        # Keep the pipeline full: many entries per message, up to the in-flight bound.
        while self._send_append(peer):
            pass

    def _handle_snapshot_response(self, msg: Message) -> None:
        progress = self._progress[msg.src]
        if msg.match_index > self.log.last_index:
            return  # claims entries we never sent: not a real answer, drop it
        progress.recent_active = True
        if msg.read_ctx:
            self._readonly.ack(msg.src, msg.read_ctx)
            self._release_confirmed_reads()
        if progress.maybe_update(msg.match_index) or progress.state is ProgressState.SNAPSHOT:
            progress.become_replicate()
            if self._maybe_commit():
                self._broadcast_pending = True
        while self._send_append(msg.src):
            pass

    def _maybe_commit(self) -> bool:
        """Advance the commit index to the highest index a majority holds — but only if
        that entry is of the current term (§5.4.2, Figure 8): counting replicas of an
        older-term entry does not make it safe. True if the commit index moved."""
        # Quorums count over the voters of the configuration in force (§4.1), never
        # learners, and the leader itself only if it is one of them (§4.2.2).
        progress = self._progress
        if self._bug("learner-quorum"):
            # Bug learner-quorum: learners' replicas counted like voters' (as if every
            # member voted), so a leader and a learner commit an entry no majority of
            # the voters holds; a new leader elected by the voters overwrites it.
            matches = sorted((p.match for p in progress.values()), reverse=True)
        else:
            matches = sorted((progress[v].match for v in self._voters), reverse=True)
        candidate = matches[self._quorum - 1]
        if candidate <= self.log.committed:
            return False
        if self.log.term_at(candidate) != self.term and not self._bug("commit-old-term"):
            return False
        # Bug commit-old-term (Figure 8, PySyncObj #169): committing an earlier term's
        # entry because a majority holds it; a later leader may still overwrite it.
        was_committed_in_term = self._committed_in_current_term()
        self.log.commit_to(candidate)
        if not was_committed_in_term and self._committed_in_current_term():
            # The no-op is committed: reads waiting for it may now get a read index.
            for request_id in self._readonly.waiting_for_commit:
                self._readonly.add(request_id, self.log.committed)
            self._readonly.waiting_for_commit.clear()
            self._release_confirmed_reads()
        return True

    def _append_local(self, kind: EntryKind, data: bytes) -> Entry:
        entry = Entry(term=self.term, index=self.log.last_index + 1, kind=kind, data=data)
        self.log.append([entry])
        self._progress[self.id].match = entry.index
        self._progress[self.id].next = entry.index + 1
        if kind is EntryKind.CONFIG:
            self._track_confs(entry.index, [entry])  # in force once appended (§4.1)
        if self._quorum == 1:
            self._maybe_commit()  # a single-node cluster commits at once
        # Sent at the next ready(): proposals made in between share one append (batching).
        self._broadcast_pending = True
        return entry

    # ================================================================ ReadIndex

    def _committed_in_current_term(self) -> bool:
        return self.log.term_at(self.log.committed) == self.term

    def _release_confirmed_reads(self) -> None:
        for read in self._readonly.release_confirmed(
            self._other_voters, self._quorum, self_counts=self._is_voter
        ):
            self._read_states.append(ReadState(read.request_id, read.index))

    # ================================================================ membership

    def _track_confs(self, first_index: int, entries: list[Entry]) -> None:
        """Entries from ``first_index`` on were (re)written as ``entries``: forget the
        configurations of what they replaced and adopt any they carry (§4.1)."""
        before = self._confs.latest_index
        self._confs.truncate_from(first_index)
        for entry in entries:
            if entry.kind is EntryKind.CONFIG:
                self._confs.add(entry.index, conf_from_bytes(entry.data))
        if self._confs.latest_index != before or before >= first_index:
            self._use_conf(self._confs.current)

    def _use_conf(self, conf: ConfState) -> None:
        """Put ``conf`` in force: who votes, the quorum, whom the leader replicates to."""
        self._voters = frozenset(conf.voters)
        self._is_voter = self.id in self._voters
        self._other_voters = tuple(v for v in conf.voters if v != self.id)
        self._others = tuple(m for m in conf.members if m != self.id)
        self._quorum = len(conf.voters) // 2 + 1
        if self.role is Role.LEADER:
            last = self.log.last_index
            for member in self._others:
                if member not in self._progress:
                    self._progress[member] = Progress(
                        next=last + 1, max_inflight=self.config.max_inflight_appends
                    )
                    self._broadcast_pending = True
            for member in [m for m in self._progress if m != self.id and m not in conf.members]:
                del self._progress[member]
                self._readonly.acked_round.pop(member, None)
            if self._transferee is not None and self._transferee not in self._voters:
                self._transferee = None
            # Fewer voters may mean a smaller quorum that is already met.
            if self._maybe_commit():
                self._broadcast_pending = True
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE) and not self._is_voter:
            self.become_follower(self.term, None)

    def _maybe_step_down_removed(self) -> None:
        """§4.2.2: a leader not in the configuration in force steps down once that
        configuration is committed (until then it manages the cluster without counting
        itself). It hands over at once to an up-to-date voter if there is one, so the
        cluster need not wait out an election timeout."""
        if self._is_voter or self._confs.latest_index > self.log.committed:
            return
        last = self.log.last_index
        successor = next(
            (v for v in self._other_voters if self._progress[v].match == last), None
        )
        if successor is not None:
            self._send(MessageType.TIMEOUT_NOW, successor)
        self.become_follower(self.term, None)

    def _send_timeout_now(self) -> None:
        assert self._transferee is not None
        self._timeout_now_sent = True
        self._send(MessageType.TIMEOUT_NOW, self._transferee)

    # ================================================================== helpers

    def _bug(self, name: str) -> bool:
        return name in self.config.bugs

    def _hard_state_changed(self) -> bool:
        """``_current_hard_state() != _handed_hard_state`` without building one: has_ready
        runs after every input."""
        handed = self._handed_hard_state
        return (
            self.term != handed.term
            or self.vote != handed.vote
            or self.log.committed != handed.commit
        )

    def _current_hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.log.committed)

    def _send(
        self, msg_type: MessageType, dst: str, term: int | None = None, **fields: Any
    ) -> None:
        """Queue a message from us, in our current term unless told otherwise."""
        self._outbox.append(
            Message(
                type=msg_type,
                term=self.term if term is None else term,
                src=self.id,
                dst=dst,
                **fields,
            )
        )

    def _acceptable(self, msg: Message) -> bool:
        """Drop anything not addressed to us, or malformed: a malformed message must never
        change our state (not even our term). The sender need not be a member of the
        configuration we hold: a lagging server must hear from a leader added by a
        change it has not seen yet (§4.1); the leader ignores answers from non-members
        (``_step_leader``) and candidates count only voters (``_record_vote``)."""
        if not isinstance(msg, Message) or not isinstance(msg.type, MessageType):
            return False
        if msg.dst != self.id or msg.src == self.id:
            return False
        if not isinstance(msg.src, str) or not msg.src:
            return False
        if not isinstance(msg.term, int) or msg.term < 0:
            return False
        if msg.type is MessageType.SNAPSHOT:
            return msg.snapshot is not None and msg.snapshot.meta.term <= msg.term
        if msg.type is MessageType.APPEND:
            if msg.prev_log_term > msg.term:
                return False
            expected_index, previous_term = msg.prev_log_index + 1, msg.prev_log_term
            for entry in msg.entries:
                if (
                    entry.index != expected_index
                    or entry.term < previous_term
                    or entry.term > msg.term
                ):
                    return False
                if entry.kind is EntryKind.CONFIG:
                    try:
                        conf_from_bytes(entry.data)
                    except ValueError:
                        return False
                expected_index += 1
                previous_term = entry.term
        return True
