"""The one driver loop around a sans-I/O ``RaftCore``: the node process and the
deterministic simulation both run exactly this code.

It owns no socket, file or wall clock. Time is the current Trio clock (``trio.sleep``
for ticks, ``trio.current_time`` for rate limits), so under ``trio.testing.MockClock`` the
simulation drives it deterministically, and in the node process ``raftnode.clock`` can
skew it. Transport, storage, state machine and logger are injected.

Per ``Ready`` the order is fixed (Raft dissertation §3.8, §10.2.1):

1. persist hard state, entries and a received snapshot: one ``storage.persist`` call,
   one fsync. Nothing below happens before it returns, so no vote, no append response
   and no client acknowledgement ever depends on state that a crash could lose;
2. send the messages;
3. restore a received snapshot into the state machine;
4. apply committed entries, answering the proposals they carry;
5. answer ReadIndex reads whose index is now applied (§6.4);
6. ``core.advance(ready)``;
7. take a snapshot if ``should_snapshot`` (§5 of the dissertation's chapter 5, log
   compaction).

Client requests. A write is proposed with its (client, seq) and answered when this node
applies the entry at its index: the KV's reply if the entry there still has the term it
was proposed in, ``not_leader`` (definite) if another leader's entry replaced it. A write
whose leader loses leadership is *not* failed at once: it may still commit under the next
leader, so a definite error would be a lie. It stays pending until this node applies that
index (usually one heartbeat after the new leader commits) or the request timeout passes
(``TimeoutError``, indefinite; the ticker checks deadlines). Reads are never in doubt, so
pending ReadIndex reads fail with ``not_leader`` as soon as leadership is lost or the core
drops them. Requests are callbacks (``start``), not tasks: ``submit`` is the coroutine
form for callers that want one.

Group commit: one persist (one fsync) per Ready, and a Ready holds everything that
arrived since the last one. The node process fsyncs in the ready loop itself: what
arrives meanwhile waits in the socket buffers and joins the next Ready. With ``offload``
(e.g. ``trio.to_thread.run_sync``, for storage too slow to block the loop on) the fsync
runs off the Trio thread, and what arrives meanwhile (messages, ticks, proposals) queues
in an inbox and is fed to the core right after ``advance``. Either way the core is never
touched between ``ready()`` and ``advance()``.

Synchronous Readies: with ``defer`` (the simulation, whose storage is memory) there is no
ready-loop task. An action that leaves work asks ``defer`` to call ``flush`` once, and
``flush`` handles the Readies on the spot, in the same order. The simulation defers to the
end of its network's delivery batch, so what arrives together still shares one Ready,
and a message costs no extra scheduler round.
"""

from __future__ import annotations

import heapq
import itertools
import re
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import trio

from raftnode.core import ChangeRefused, ConfChange, NotLeader, RaftCore, Ready
from raftnode.kv import STALE_READS_BUG, TXN_OP, is_txn_read, with_reads_at_proposal
from raftnode.messages import (
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    Snapshot,
    conf_from_bytes,
    conf_to_wire,
)
from raftnode.statemachine import StateMachine
from raftnode.storage.interface import Storage

READ_OPS = frozenset({"get", "mget"})
WRITE_OPS = frozenset({"put", "cas", "append", "delete", "transfer"})
READ_MODES = ("read_index", "log")
DEFAULT_REQUEST_TIMEOUT = 10.0
# Readies end_batch() handles in the caller's task before leaving the rest to the loop.
INLINE_READIES = 4
# Messages only a leader sends, and which promise nothing about the sender's disk.
_LEADER_REQUESTS = frozenset({MessageType.APPEND, MessageType.SNAPSHOT})


class Transport(Protocol):
    def send(self, messages: list[Message]) -> None:
        """Queue messages for their destinations; never blocks, may drop (Raft resends)."""
        ...


Log = Callable[[str], None]
Offload = Callable[[Callable[[], Any]], Awaitable[Any]]
# Run a callable soon, outside the current call (the simulation's network: after the
# messages due now are all delivered).
Defer = Callable[[Callable[[], None]], None]


class ReadyFailed(RuntimeError):
    """Handling a Ready failed in ``end_batch`` (storage, state machine or an invariant):
    the node cannot go on. Not an OSError, so that no connection handler swallows it."""


class _Batch:
    """The context manager of ``NodeDriver.batch`` (a class: it runs per socket read)."""

    __slots__ = ("driver",)

    def __init__(self, driver: NodeDriver) -> None:
        self.driver = driver

    def __enter__(self) -> None:
        self.driver.begin_batch()

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.driver.end_batch(handle=exc_type is None)


class NotLeaderError(Exception):
    """Definite: this node did not accept the request. ``leader`` is the hint, if any."""

    def __init__(self, leader: str | None) -> None:
        super().__init__(f"not the leader (leader: {leader})" if leader else "no leader known")
        self.leader = leader
        self.code = "not_leader" if leader else "no_leader"


class OutcomeUnknownError(Exception):
    """Indefinite: the write was proposed but this node lost track of whether it committed
    (a snapshot from the new leader replaced the entries it was waiting on). The client
    retries with the same (client, seq): the session makes that safe (§6.3)."""

    code = "outcome_unknown"


Result = dict[str, Any] | Exception
OnDone = Callable[[Result], None]


@dataclass(slots=True, eq=False)
class _Request:
    """One client request the driver owes exactly one answer: ``on_done`` is called once,
    with the reply map or the exception (NotLeaderError, OutcomeUnknownError,
    TimeoutError). Callbacks instead of a task per request: at thousands of requests per
    second a task, an event and a cancel scope each cost more than the request's Raft
    work, and in the simulation every task wake-up is a scheduler round."""

    on_done: OnDone
    deadline: float
    read_id: int = 0  # a ReadIndex read's id (its entry in _pending_reads), 0 for writes
    done: bool = False

    def resolve(self, reply: dict[str, Any]) -> None:
        if not self.done:
            self.done = True
            self.on_done(reply)

    def fail(self, error: Exception) -> None:
        if not self.done:
            self.done = True
            self.on_done(error)


@dataclass(slots=True)
class _PendingProposal:
    term: int
    request: _Request
    session: tuple[str, int] | None = None  # the write's (client, seq), for applied_line


@dataclass(slots=True)
class _PendingRead:
    query: dict[str, Any]
    request: _Request
    index: int | None = None  # set once the core answers with a ReadState


def normalize_reply(reply: Any) -> dict[str, Any]:
    """The KV returns reply maps; anything else is wrapped as a successful value."""
    if isinstance(reply, dict) and isinstance(reply.get("ok"), bool):
        return reply
    return {"ok": True, "value": reply}


class NodeDriver:
    def __init__(
        self,
        core: RaftCore,
        storage: Storage,
        state_machine: StateMachine,
        transport: Transport,
        *,
        tick_seconds: float,
        log: Log,
        encode_command: Callable[[dict[str, Any]], bytes] | None = None,
        read_mode: str = "read_index",
        bugs: frozenset[str] = frozenset(),
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        offload: Offload | None = None,
        defer: Defer | None = None,
        external_ticks: bool = False,
        commit_log_interval: float = 1.0,
        log_applied: bool = False,
        applied_index: int = 0,
        applied_term: int = 0,
    ) -> None:
        if read_mode not in READ_MODES:
            raise ValueError(f"read_mode must be one of {READ_MODES}, got {read_mode!r}")
        if tick_seconds <= 0:
            raise ValueError("tick_seconds must be positive")
        if defer is not None and offload is not None:
            raise ValueError(
                "defer (synchronous Readies) and offload (a persist off the loop) exclude each other"
            )
        self.core = core
        self.storage = storage
        self.state_machine = state_machine
        self.transport = transport
        self.tick_seconds = tick_seconds
        self.log = log
        if encode_command is None:
            from raftnode.kv import encode_command as kv_encode_command

            encode_command = kv_encode_command
        self.encode_command = encode_command
        self.read_mode = read_mode
        self.bugs = bugs
        self.request_timeout = request_timeout
        self.offload = offload
        self.defer = defer
        # The caller calls tick() every tick_seconds instead of a ticker task (the
        # simulation's event heap: ticks then share scheduler rounds with deliveries).
        self.external_ticks = external_ticks
        self.commit_log_interval = commit_log_interval
        # One "apply" line per Ready with committed entries, before any answer (the
        # campaign's acknowledged-writes checker reads them; see applied_line).
        self.log_applied = log_applied
        # What the state machine holds: the snapshot it was restored from, plus entries
        # applied since (the caller restores the state machine from the stored snapshot
        # before starting the driver and passes its index/term here).
        self.applied_index = applied_index
        self.applied_term = applied_term

        self._busy = False  # between core.ready() and core.advance(): the core is off limits
        # Term and vote as last made durable; None until the first persist, so that the
        # first hard state is always written.
        self._durable_term_vote: tuple[int, str | None] | None = None
        self._inbox: deque[Callable[[], None]] = deque()
        self._wakeup = trio.Event()
        self._flush_deferred = False  # with ``defer``: a flush is already asked for
        # Inside begin_batch()/end_batch(): work the core has is handled at end_batch()
        # in the caller's task instead of waking the ready-loop task (see end_batch).
        self._batching = False
        self._batch_has_work = False
        self._pending_proposals: dict[int, _PendingProposal] = {}
        self._pending_reads: dict[int, _PendingRead] = {}
        # Every unanswered request by deadline: the ticker fails the overdue ones.
        self._deadlines: list[tuple[float, int, _Request]] = []
        self._request_numbers = itertools.count(1)
        self._read_ids = itertools.count(1)
        self._last_seen: tuple[Any, int, str | None] | None = None
        self._last_commit_logged = -1
        self._next_commit_log_time = float("-inf")
        self._highest_commit = 0  # a regression is logged at once, not sampled
        # Membership (§4): called with the new ConfState whenever the configuration in
        # force changes (the node process dials new members and drops removed ones).
        self.on_conf_change: Callable[[ConfState], None] | None = None
        # Called when this node's role, term or known leader changes (after the Ready
        # that changed it is persisted and sent), e.g. to retry what waited for a leader.
        self.on_leader_change: Callable[[], None] | None = None
        self._last_conf: ConfState | None = None
        self.stopped = False

    # --- inputs ----------------------------------------------------------------------

    def receive(self, msg: Message) -> None:
        """A Raft message from a peer (already validated by the transport)."""
        self._do(partial(self.core.step, msg))

    def start(
        self, request: dict[str, Any], on_done: OnDone, encoded: bytes | None = None
    ) -> None:
        """Start one client request; ``on_done`` is called exactly once, now or later,
        with the KV reply map or the exception: NotLeaderError (definite),
        OutcomeUnknownError or TimeoutError (indefinite).

        ``request`` is a validated map: ``op`` plus the op's fields, and for writes
        ``client`` and ``seq``. ``encoded``, if given, is ``encode_command(request)``
        already computed by the caller (the server sizes every request): a write's entry
        data is then not encoded a second time. Never blocks; the answer comes from the
        driver loop (on apply, on a confirmed read index, on losing leadership, at the
        request timeout or when the driver stops).
        """
        if self.stopped:
            on_done(OutcomeUnknownError("node stopping"))
            return
        op = request.get("op")
        txn_read = is_txn_read(request)  # a read-only txn without a session (raftnode/kv.py)
        if op in WRITE_OPS or (op == TXN_OP and not txn_read):
            if op == TXN_OP and STALE_READS_BUG in self.bugs:
                # Teaching bug: the txn's reads are taken now, on this leader's applied
                # state, while its writes apply at commit (raftnode/kv.py).
                request = with_reads_at_proposal(self.state_machine, request)
                encoded = None
            self._propose(request, self._new_request(on_done), encoded)
        elif op in READ_OPS or txn_read:
            if "stale-local-reads" in self.bugs:
                # Teaching bug (etcd #741): answer from whatever this replica has applied,
                # without confirming leadership or waiting for the commit index.
                on_done(normalize_reply(self.state_machine.query(request)))
            elif self.read_mode == "log":
                # A read is a log command (§6.4, the alternative to ReadIndex).
                self._propose(request, self._new_request(on_done), encoded)
            else:
                self._read_index(request, self._new_request(on_done))
        else:
            on_done({"ok": False, "error": "malformed"})

    async def submit(self, request: dict[str, Any]) -> dict[str, Any]:
        """``start`` as a coroutine: returns the KV reply map or raises its exception."""
        answered = trio.Event()
        results: list[Result] = []

        def on_done(result: Result) -> None:
            results.append(result)
            answered.set()

        self.start(request, on_done)
        if not answered.is_set():
            # The ticker fails overdue requests; this bound also holds for a driver whose
            # loop is not running (yet).
            with trio.move_on_after(self.request_timeout):
                await answered.wait()
        if not results:
            on_done(TimeoutError(f"no outcome within {self.request_timeout} s"))
        result = results[0]
        if isinstance(result, Exception):
            raise result
        return result

    def status(self) -> dict[str, Any]:
        status = self.core.status()
        return {
            "role": _role_name(status.role),
            "term": status.term,
            "leader": status.leader,
            "commit_index": status.commit_index,
            "applied_index": self.applied_index,
            "last_log_index": status.last_log_index,
            "snapshot_index": status.snapshot_index,
            "voters": list(status.voters),
            "learners": list(status.learners),
        }

    # --- membership and leadership transfer (§4, §3.10) --------------------------

    def start_conf_change(self, change: ConfChange, on_done: OnDone) -> None:
        """Propose a single-server configuration change; ``on_done`` gets
        ``{"ok": True, "value": {"index", "voters", "learners", "addresses"}}`` once it is
        committed and applied here, ``{"ok": False, "error": REASON}`` if the core
        refused it, or NotLeaderError / TimeoutError as for writes."""
        request = self._new_request(on_done)

        def propose() -> None:
            try:
                index, term = self.core.propose_conf_change(change)
            except NotLeader as error:
                request.fail(NotLeaderError(_hint_of(error)))
                return
            except ChangeRefused as error:
                request.resolve({"ok": False, "error": error.reason, "reason": error.detail})
                return
            self._pending_proposals[index] = _PendingProposal(term, request, None)

        self._do(propose)

    def peer_connection_reset(self, peer: str) -> None:
        """``peer`` closed its connection to us (its process ended or died), as opposed
        to going silent: if it was our leader, the core may start a pre-vote early
        (``RaftCore.peer_connection_reset``)."""
        self._do(partial(self.core.peer_connection_reset, peer))

    def start_transfer(self, target: str, on_done: OnDone) -> None:
        """Begin a leadership transfer (§3.10); answered at once (``{"ok": True}`` when
        it began): watch the status for the new leader."""

        def begin() -> None:
            try:
                self.core.transfer_leadership(target)
            except NotLeader as error:
                on_done(NotLeaderError(_hint_of(error)))
                return
            except ChangeRefused as error:
                on_done({"ok": False, "error": error.reason, "reason": error.detail})
                return
            on_done({"ok": True, "value": None})

        self._do(begin)

    # --- the loop --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick and process Readies until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                if not self.external_ticks:
                    nursery.start_soon(self._ticker)
                if self.defer is None:
                    nursery.start_soon(self._ready_loop)
                    self._wakeup.set()  # the restored core may have work (e.g. re-apply)
                else:
                    # A flush asked for before a pause was dropped: ask afresh.
                    self._flush_deferred = False
                    if self.core.has_ready():
                        self._ask_flush()
                task_status.started()
                await trio.sleep_forever()  # the loop may have no task of its own (defer)
        finally:
            self.stopped = True
            for pending in list(self._pending_proposals.values()):
                pending.request.fail(OutcomeUnknownError("node stopping"))
            for read in list(self._pending_reads.values()):
                read.request.fail(NotLeaderError(None))
            self._pending_proposals.clear()
            self._pending_reads.clear()
            self._deadlines.clear()

    def tick(self) -> None:
        """One tick of this node's clock: the core's tick, then overdue requests."""
        self._do(self.core.tick)
        if self._deadlines:
            self._expire_requests(trio.current_time())

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(self.tick_seconds)
            with self.batch():
                self.tick()

    async def _ready_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            while self.core.has_ready():
                await self._handle_ready(self.core.ready())
                if self.core.has_ready():
                    # Let receivers and clients run between Readies: fair to the network
                    # tasks, and what they bring lands in one bigger next Ready.
                    await trio.lowlevel.checkpoint()

    def flush(self) -> None:
        """With ``defer``: handle every Ready now, synchronously (the simulation calls
        it once its network has delivered everything due at this instant, so that what
        arrived together lands in one Ready, as the node's inbox makes it do)."""
        self._flush_deferred = False
        while self.core.has_ready():
            self._handle_ready_now(self.core.ready())

    def _do(self, action: Callable[[], None]) -> None:
        """Run an action on the core now, or right after the Ready in progress.

        The loop is woken only when the action left work: most ticks and many messages
        leave none, and a wake-up that finds nothing costs a scheduler round (which is
        what bounds the simulation's speed)."""
        if self._busy:
            self._inbox.append(action)  # the loop re-checks has_ready() after the inbox
            return
        action()
        if self.core.has_ready():
            if self._batching:
                self._batch_has_work = True
            elif self.defer is None:
                self._wakeup.set()
            elif not self._flush_deferred:
                self._ask_flush()

    def batch(self) -> _Batch:
        """``with driver.batch(): ...`` feeds a batch: ``begin_batch`` on entry,
        ``end_batch`` on exit (``handle=False`` when the block raised: the ready-loop
        task then takes what the batch left)."""
        return _Batch(self)

    def begin_batch(self) -> None:
        """The caller is about to feed a batch of inputs (the frames of one socket read,
        one tick) and will call ``end_batch()`` right after, in the same task, without a
        checkpoint in between. Work they leave is then handled by ``end_batch`` on the
        spot instead of by the ready-loop task: at one request in flight, waking that
        task was a third of a node's scheduler rounds per put (two per node per put),
        for a Ready that runs the same code either way. Only without ``offload`` and
        ``defer`` (a no-op otherwise): the persist blocks the loop as the ready loop's
        does, and the order within a Ready (persist → send → apply → answer) is the
        same, so every guarantee of the module docstring holds."""
        if self.offload is None and self.defer is None:
            self._batching = True

    def end_batch(self, *, handle: bool = True) -> None:
        """Handle the Readies the batch left (``handle=False``, e.g. when the batch ended
        in an error: leave them to the ready-loop task)."""
        self._batching = False
        if not self._batch_has_work:
            return
        self._batch_has_work = False
        if not handle or self._busy:
            self._wakeup.set()
            return
        for _ in range(INLINE_READIES):
            if not self.core.has_ready():
                return
            try:
                self._handle_ready_now(self.core.ready())
            except Exception as error:
                # Fatal to the node, as it was in the ready-loop task: never let the
                # caller's connection handler take an OSError from the disk for a peer
                # that went away (the Ready would stay un-advanced and the node wedged).
                raise ReadyFailed(f"handling a Ready: {type(error).__name__}: {error}") from error
        if self.core.has_ready():
            self._wakeup.set()  # more keeps coming: let the loop take turns with the rest

    def _ask_flush(self) -> None:
        assert self.defer is not None
        self._flush_deferred = True
        self.defer(self.flush)

    async def _blocking(self, call: Callable[[], Any]) -> Any:
        if self.offload is None:
            return call()
        return await self.offload(call)

    async def _handle_ready(self, ready: Ready) -> None:
        self._busy = True
        try:
            hard_state, must_persist, sent_early = self._before_persist(ready)
            if must_persist:
                await self._blocking(
                    partial(self.storage.persist, hard_state, ready.entries, ready.snapshot)
                )
            self._after_persist(ready, hard_state, sent_early)
            if ready.should_snapshot:
                snapshot = self._snapshot_of_state_machine()
                await self._blocking(partial(self.storage.compact, snapshot))
                self._snapshot_stored(snapshot)
        finally:
            self._busy = False
        self._run_inbox()

    def _handle_ready_now(self, ready: Ready) -> None:
        """``_handle_ready`` without a Trio checkpoint (``defer`` mode, storage in memory;
        ``end_batch`` without ``offload``, where ``_handle_ready`` has none either)."""
        self._busy = True
        try:
            hard_state, must_persist, sent_early = self._before_persist(ready)
            if must_persist:
                self.storage.persist(hard_state, ready.entries, ready.snapshot)
            self._after_persist(ready, hard_state, sent_early)
            if ready.should_snapshot:
                snapshot = self._snapshot_of_state_machine()
                self.storage.compact(snapshot)
                self._snapshot_stored(snapshot)
        finally:
            self._busy = False
        self._run_inbox()

    def _run_inbox(self) -> None:
        while self._inbox:
            self._inbox.popleft()()

    def _before_persist(self, ready: Ready) -> tuple[HardState | None, bool, bool]:
        """What to persist, whether to, and whether the messages already left."""
        hard_state = ready.hard_state
        if (
            hard_state is not None
            and not ready.entries
            and ready.snapshot is None
            and (hard_state.term, hard_state.vote) == self._durable_term_vote
        ):
            # Only the commit index moved. It is volatile state in Raft (Figure 2): a
            # restarted node relearns it from the leader, and a stale one on disk is
            # harmless. So no fsync for it alone (etcd's MustSync makes the same
            # call); it rides along with the next entries or vote for free.
            hard_state = None
        must_persist = hard_state is not None or bool(ready.entries) or ready.snapshot is not None
        sent_early = False
        if must_persist and ready.messages and self._leader_appends_only(ready, hard_state):
            # Dissertation §10.2.1: the leader may replicate while it writes its own
            # disk, so the followers' fsyncs overlap the leader's. Safe here because
            # the core is not touched until this persist returns (the inbox): no
            # append response is counted, so nothing commits, before the leader's own
            # copy is durable. Votes and append responses never leave early (§3.8).
            self.transport.send(ready.messages)
            sent_early = True
        return hard_state, must_persist, sent_early

    def _after_persist(self, ready: Ready, hard_state: HardState | None, sent_early: bool) -> None:
        """Steps 2-6 of the Ready order (module docstring), once the persist returned."""
        if hard_state is not None:
            self._durable_term_vote = (hard_state.term, hard_state.vote)
        if ready.messages and not sent_early:
            self.transport.send(ready.messages)
        if ready.snapshot is not None:
            self._restore(ready.snapshot)
        if self.log_applied and ready.committed_entries:
            # Before any client's answer (the campaign's acknowledged-writes checker).
            self.log(applied_line(ready.committed_entries, self._pending_proposals))
        for entry in ready.committed_entries:
            self._apply(entry)
        for read_state in ready.read_states:
            pending = self._pending_reads.get(read_state.request_id)
            if pending is not None:
                pending.index = read_state.index
        for read_id in ready.dropped_reads:
            self._fail_read(read_id)
        self._answer_reads()
        self._observe(ready)
        self.core.advance(ready)

    def _leader_appends_only(self, ready: Ready, hard_state: HardState | None) -> bool:
        """True when every message is a leader's AppendEntries/InstallSnapshot and the
        Ready changes neither term nor vote: nothing in it promises anything that a crash
        before the fsync could take back."""
        if hard_state is not None and (hard_state.term, hard_state.vote) != self._durable_term_vote:
            return False
        return all(msg.type in _LEADER_REQUESTS for msg in ready.messages)

    def _restore(self, snapshot: Snapshot) -> None:
        self.state_machine.restore(snapshot.data)
        self.applied_index = snapshot.meta.index
        self.applied_term = snapshot.meta.term
        self.log(f"snapshot restored index={snapshot.meta.index} term={snapshot.meta.term}")
        # Proposals inside the snapshot: their entries are gone, so whether each committed
        # cannot be read off the log any more. Indefinite; the client's retry is deduped.
        for index in [i for i in self._pending_proposals if i <= snapshot.meta.index]:
            pending = self._pending_proposals.pop(index)
            pending.request.fail(OutcomeUnknownError("entry compacted into a snapshot"))

    def _apply(self, entry: Entry) -> None:
        if entry.index <= self.applied_index:
            return  # already in the state machine through a snapshot
        if entry.index != self.applied_index + 1:
            raise AssertionError(
                f"applying index {entry.index} after {self.applied_index}: a gap in the log"
            )
        reply: Any = None
        if entry.kind == EntryKind.COMMAND:
            reply = self.state_machine.apply(entry.index, entry.data)
        self.applied_index = entry.index
        self.applied_term = entry.term
        pending = self._pending_proposals.pop(entry.index, None)
        if pending is not None:
            if pending.term == entry.term and entry.kind == EntryKind.COMMAND:
                pending.request.resolve(normalize_reply(reply))
            elif pending.term == entry.term and entry.kind == EntryKind.CONFIG:
                value = {"index": entry.index, **conf_to_wire(conf_from_bytes(entry.data))}
                pending.request.resolve({"ok": True, "value": value})
            else:
                # Another leader's entry sits at our index: ours was overwritten and can
                # never commit (Log Matching, §5.3). Definite failure.
                pending.request.fail(NotLeaderError(self._leader_hint()))

    def _answer_reads(self) -> None:
        if not self._pending_reads:
            return
        for read_id, pending in list(self._pending_reads.items()):
            if pending.index is not None and pending.index <= self.applied_index:
                del self._pending_reads[read_id]
                pending.request.resolve(normalize_reply(self.state_machine.query(pending.query)))

    def _fail_read(self, read_id: int) -> None:
        pending = self._pending_reads.pop(read_id, None)
        if pending is not None:
            pending.request.fail(NotLeaderError(self._leader_hint()))

    def _observe(self, ready: Ready) -> None:
        """Log role/term/leader changes and (rate-limited) commits; fail reads that a lost
        leadership can no longer confirm."""
        core = self.core  # fields, not status(): this runs on every Ready
        seen = (core.role, core.term, core.leader)
        if seen != self._last_seen:
            role = _role_name(core.role)
            self.log(f"role={role} term={core.term} leader={core.leader}")
            self._last_seen = seen
            if role != "leader" and self._pending_reads:
                for read_id in list(self._pending_reads):
                    self._fail_read(read_id)
            if self.on_leader_change is not None:
                self.on_leader_change()
        conf = core.conf_state()
        if conf is not self._last_conf:
            if conf != self._last_conf:
                self.log(
                    f"configuration voters={','.join(conf.voters)} "
                    f"learners={','.join(conf.learners)}"
                )
                if self.on_conf_change is not None:
                    self.on_conf_change(conf)
            self._last_conf = conf
        commit_index = core.log.committed
        if commit_index < self._highest_commit:  # Raft never lowers it (Figure 2)
            self.log(f"commit_index regressed from={self._highest_commit} to={commit_index}")
        self._highest_commit = max(self._highest_commit, commit_index)
        if commit_index != self._last_commit_logged:
            now = trio.current_time()
            if now >= self._next_commit_log_time:
                self.log(
                    f"commit_index={commit_index} applied_index={self.applied_index} "
                    f"last_log_index={core.log.last_index}"
                )
                self._last_commit_logged = commit_index
                self._next_commit_log_time = now + self.commit_log_interval

    def _snapshot_of_state_machine(self) -> Snapshot:
        data = self.state_machine.snapshot()
        # The core's meta carries the configuration at that index (§4.1).
        return Snapshot(self.core.snapshot_meta(self.applied_index, self.applied_term), data)

    def _snapshot_stored(self, snapshot: Snapshot) -> None:
        self.core.compact(snapshot)
        self.log(
            f"snapshot taken index={snapshot.meta.index} term={snapshot.meta.term} "
            f"bytes={len(snapshot.data)}"
        )

    def _leader_hint(self) -> str | None:
        status = self.core.status()
        return status.leader if status.leader != status.node_id else None

    # --- client requests -------------------------------------------------------------

    def _new_request(self, on_done: OnDone, read_id: int = 0) -> _Request:
        request = _Request(on_done, trio.current_time() + self.request_timeout, read_id)
        heapq.heappush(self._deadlines, (request.deadline, next(self._request_numbers), request))
        return request

    def _expire_requests(self, now: float) -> None:
        """Fail requests past their deadline: indefinite, the write may still commit."""
        deadlines = self._deadlines
        while deadlines and (deadlines[0][0] <= now or deadlines[0][2].done):
            request = heapq.heappop(deadlines)[2]
            if request.done:
                continue
            if request.read_id:
                self._pending_reads.pop(request.read_id, None)
            request.fail(TimeoutError(f"no outcome within {self.request_timeout} s"))

    def _propose(
        self, command: dict[str, Any], request: _Request, encoded: bytes | None = None
    ) -> None:
        data = self.encode_command(command) if encoded is None else encoded

        def propose() -> None:
            try:
                index, term = self.core.propose(data)
            except NotLeader as error:
                request.fail(NotLeaderError(_hint_of(error)))
                return
            previous = self._pending_proposals.get(index)
            if previous is not None:
                # Our index is being reused by a newer term: the older entry there was
                # truncated and never committed.
                previous.request.fail(NotLeaderError(None))
            session = (command.get("client"), command.get("seq"))
            known = isinstance(session[0], str) and type(session[1]) is int
            self._pending_proposals[index] = _PendingProposal(
                term, request, session if known else None
            )

        self._do(propose)

    def _read_index(self, query: dict[str, Any], request: _Request) -> None:
        read_id = next(self._read_ids)
        request.read_id = read_id

        def ask() -> None:
            try:
                self.core.read_index(read_id)
            except NotLeader as error:
                request.fail(NotLeaderError(_hint_of(error)))
                return
            self._pending_reads[read_id] = _PendingRead(query, request)

        self._do(ask)


def applied_line(entries: list[Entry], pending: dict[int, _PendingProposal]) -> str:
    """``apply index=I entries=E,E,...``: the committed entries from index I on, each
    ``TERM:CRC`` (CRC-32 of its data, hex: two nodes that applied different entries at
    one index show different pairs, up to a 2^-32 collision) and, where this node
    proposed that entry and answers a client for it, ``TERM:CRC:CLIENT:SEQ``. Nothing
    is decoded: a CRC and a dict lookup per entry. A client id outside
    ``[A-Za-z0-9._-]`` is percent-encoded, so the line always parses."""
    items = []
    for entry in entries:
        item = f"{entry.term}:{zlib.crc32(entry.data):x}"
        proposal = pending.get(entry.index)
        if proposal is not None and proposal.session is not None and proposal.term == entry.term:
            client, seq = proposal.session
            if not _PLAIN_CLIENT.fullmatch(client):
                from urllib.parse import quote

                client = quote(client, safe="")
            item = f"{item}:{client}:{seq}"
        items.append(item)
    return f"apply index={entries[0].index} entries={','.join(items)}"


_PLAIN_CLIENT = re.compile(r"[A-Za-z0-9._-]{1,200}")


def _hint_of(error: NotLeader) -> str | None:
    # The core's NotLeader says None when no leader is known: that None is the answer
    # (no_leader), not a reason to read the message text ("not the leader") as a node id.
    if hasattr(error, "leader_hint"):
        hint = error.leader_hint
    else:
        hint = error.args[0] if error.args else None
    return hint if isinstance(hint, str) and hint else None


def _role_name(role: Any) -> str:
    value = getattr(role, "value", role)
    return str(value).lower()
