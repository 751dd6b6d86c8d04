"""The key-value state machine with client sessions (Raft dissertation §6.3).

Commands are msgpack maps (``encode_command`` / ``decode_command``) with an ``op`` and its
fields; replies are maps ``{"ok": True, "value": ...}`` or ``{"ok": False, "error": CODE}``:

=========  =============================  ==============  ==========================================
op         fields                         reply value     definite failure error
=========  =============================  ==============  ==========================================
get        key                            value or None   -
put        key, value                     None            -
cas        key, from, to                  None            cas_mismatch (differs), not_found (absent)
append     key, value                     the new list    malformed (current value is not a list)
delete     key                            None            -
transfer   from_key, to_key, amount       None            insufficient_funds
mget       keys                           {key: value}    -
txn        ops (micro-ops, below)         the micro-ops,  malformed (bad shape, too many micro-ops,
                                          reads filled    an append to a key holding a non-list)
=========  =============================  ==============  ==========================================

Transactions (Jepsen's/Elle's shape): ``ops`` is a list of 1 to ``MAX_TXN_MOPS`` micro-ops
``["append", k, v]``, ``["w", k, v]`` and ``["r", k, null]``, applied atomically, in order,
as one log command: either every micro-op takes effect or (``malformed``) none does. The
reply is the micro-ops with each read filled in (``["r", k, [1, 2]]``; an absent key reads
``None``). A read sees the txn's own earlier writes (Elle's internal consistency: a read
after an append of 3 in the same txn ends in 3). A txn with any write is a write (session,
dedup); a read-only txn sent without a session is a read (ReadIndex, ``query``). Reads of
one txn are never split from its writes, so a serial order of whole txns explains every
reply (strict serializability, given the log order is the real-time order).

Keys are strings, integers or bytes (as the wire accepts them: Jepsen's keyed workloads
use integers). Values are msgpack data (None, bool, int, float, str, bytes, lists, maps
with string keys). Comparison in ``cas`` is exact: ``1``, ``1.0`` and ``True`` differ.
``transfer`` treats an absent account as a balance of 0; balances are integers.

Sessions: a write carries ``client`` (str) and ``seq`` (int, increasing per client). The
session keeps the last seq applied and its reply: the same seq again returns the cached
reply without applying (a retry applies once), a lower seq returns ``stale_seq``. One
cached reply per client means a client id has one write outstanding at a time. A write
without ``client`` and ``seq`` is applied without a session. Reads (get, mget) never use
sessions: applying a read twice changes nothing.

Expiry is by log position, never by clocks, so every replica expires the same sessions at
the same entry: before applying the entry at index ``i``, every session whose last entry
is more than ``session_ttl_entries`` before ``i`` is dropped. A client retrying after its
session expired would be applied again: the TTL (100,000 entries by default) must exceed
any client's retry window. Sessions are part of the snapshot.

A malformed command returns ``{"ok": False, "error": "malformed"}``; ``apply`` never raises,
because a command that crashed one replica would crash them all.

Teaching bug ``no-dedup``: sessions are ignored, so a retried write is applied twice.

Teaching bug ``txn-stale-reads``: the leader evaluates a txn's reads on its applied state
when it *proposes* the txn (``with_reads_at_proposal``), and the command carries those
values; the KV answers the reads with them while it applies the writes at commit, on the
state then. Durability is intact (no acknowledged write is lost), isolation is not: writes
committed between proposal and commit are invisible to the reads, so a txn can read x and
append to it without the appends in between (lost update, G-single).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgpack

READ_OPS = frozenset({"get", "mget"})
WRITE_OPS = frozenset({"put", "cas", "append", "delete", "transfer"})
TXN_OP = "txn"
OPS = READ_OPS | WRITE_OPS | {TXN_OP}
TXN_MOPS = frozenset({"r", "append", "w"})
MAX_TXN_MOPS = 256  # micro-ops per txn: a bound on one entry's work, well above Elle's 1-4
STALE_READS_BUG = "txn-stale-reads"

SNAPSHOT_FORMAT = "raftlab-kv/1"
MAX_VALUE_DEPTH = 32
INT64_MAX = 2**63 - 1

MALFORMED: dict[str, Any] = {"ok": False, "error": "malformed"}


class MalformedCommand(ValueError):
    """Bytes or a map that do not describe a KV command."""


def encode_command(command: dict[str, Any]) -> bytes:
    """The entry data for a command map."""
    return msgpack.packb(command, use_bin_type=True)


def _unpack(data: bytes, *, strict_map_key: bool = True) -> Any:
    # unpackb bounds every length by the size of the input, and the C unpacker bounds
    # nesting. Any failure is the input's fault.
    return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=strict_map_key)


def decode_command(data: bytes) -> dict[str, Any]:
    """The command map in an entry's data; raises MalformedCommand (a ValueError)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedCommand(f"a command must be bytes, got {type(data).__name__}")
    try:
        command = _unpack(bytes(data))
    except Exception as exc:
        raise MalformedCommand(f"not a msgpack map: {exc}") from None
    if not isinstance(command, dict):
        raise MalformedCommand(f"a command must be a map, got {type(command).__name__}")
    return command


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_key(value: Any) -> bool:
    return isinstance(value, str | bytes) or _is_int(value)


def _valid_value(value: Any, depth: int = 0) -> bool:
    """msgpack plain data (no ext types), nested at most MAX_VALUE_DEPTH deep."""
    if depth > MAX_VALUE_DEPTH:
        return False
    if value is None or isinstance(value, bool | float | str | bytes):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    if isinstance(value, list):
        return all(_valid_value(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _valid_value(v, depth + 1) for k, v in value.items())
    return False


def same_value(a: Any, b: Any) -> bool:
    """Exact equality: types must match too (Python's ``1 == True == 1.0`` is not ours)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return bool(a == b)


def validate_txn_ops(ops: Any) -> list[list[Any]]:
    """The micro-ops of a txn as lists ``[f, key, value]``; raises MalformedCommand (a
    ValueError) naming what is wrong. Reads must carry ``None`` (the reply fills them)."""
    if not isinstance(ops, list | tuple):
        raise MalformedCommand("a txn's ops must be a list of micro-ops")
    if not 1 <= len(ops) <= MAX_TXN_MOPS:
        raise MalformedCommand(f"a txn has 1 to {MAX_TXN_MOPS} micro-ops, got {len(ops)}")
    mops: list[list[Any]] = []
    for position, mop in enumerate(ops):
        if not isinstance(mop, list | tuple) or len(mop) != 3:
            raise MalformedCommand(f"micro-op {position}: expected [f, key, value]")
        f, key, value = mop
        if f not in TXN_MOPS:
            raise MalformedCommand(f"micro-op {position}: f must be r, append or w")
        if not _is_key(key):
            raise MalformedCommand(f"micro-op {position}: a key is a string, integer or bytes")
        if f == "r" and value is not None:
            raise MalformedCommand(f"micro-op {position}: a read's value must be null")
        if f != "r" and not _valid_value(value):
            raise MalformedCommand(f"micro-op {position}: not a storable value")
        mops.append([f, key, value])
    return mops


def txn_has_writes(ops: Any) -> bool:
    """Whether a (validated) txn writes: then it is a log command with a session."""
    return any(mop[0] != "r" for mop in ops)


def is_txn_read(request: dict[str, Any]) -> bool:
    """A read-only txn sent without a session: answered as a read (ReadIndex)."""
    if request.get("op") != TXN_OP or "client" in request:
        return False
    ops = request.get("ops")
    return isinstance(ops, list) and not any(
        isinstance(mop, list | tuple) and mop[:1] != ["r"] and mop[:1] != ("r",) for mop in ops
    )


def with_reads_at_proposal(state_machine: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Teaching bug ``txn-stale-reads`` (module doc): the txn command, carrying the values
    its reads have on ``state_machine`` now. Unchanged when the txn is malformed or the
    state machine is not this KV."""
    reads_now = getattr(state_machine, "txn_reads_now", None)
    if reads_now is None:
        return request
    try:
        return {**request, "reads_at_proposal": reads_now(request.get("ops"))}
    except Exception:  # a malformed txn: the KV refuses it at apply
        return request


def _ok(value: Any = None) -> dict[str, Any]:
    return {"ok": True, "value": value}


def _fail(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}


@dataclass(slots=True)
class Session:
    seq: int  # the last seq applied for this client
    reply: dict[str, Any]  # its reply, returned again to a retry
    last_index: int  # index of the last entry of this client (for expiry)


class KVStateMachine:
    """Implements ``raftnode.statemachine.StateMachine``."""

    def __init__(
        self, session_ttl_entries: int = 100_000, bugs: frozenset[str] = frozenset()
    ) -> None:
        if session_ttl_entries < 1:
            raise ValueError("session_ttl_entries must be at least 1")
        self.session_ttl_entries = session_ttl_entries
        self.bugs = frozenset(bugs)
        self._data: dict[str, Any] = {}
        # In order of last use, so expiry pops from the front (indexes only grow).
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self.applied_index = 0

    @property
    def _dedup(self) -> bool:
        return "no-dedup" not in self.bugs

    # -- the StateMachine protocol

    def apply(self, index: int, data: bytes) -> dict[str, Any]:
        self._expire_sessions(index)
        self.applied_index = max(self.applied_index, index)
        try:
            command = decode_command(data)
            return self._execute(index, command)
        except Exception:  # never let a command take a replica down (see module doc)
            return dict(MALFORMED)

    def query(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            if not isinstance(request, dict):
                return dict(MALFORMED)
            if request.get("op") == TXN_OP:
                ops = validate_txn_ops(request.get("ops"))
                return dict(MALFORMED) if txn_has_writes(ops) else self._txn(ops, None)
            if request.get("op") not in READ_OPS:
                return dict(MALFORMED)
            return self._read(request)
        except Exception:
            return dict(MALFORMED)

    def snapshot(self) -> bytes:
        return msgpack.packb(
            {
                "format": SNAPSHOT_FORMAT,
                "applied": self.applied_index,
                "data": self._data,
                "sessions": [
                    [client, s.seq, s.reply, s.last_index] for client, s in self._sessions.items()
                ],
            },
            use_bin_type=True,
        )

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot's; raises ValueError on a foreign snapshot."""
        if not data:  # an empty snapshot is the empty state
            self._data, self._sessions, self.applied_index = {}, OrderedDict(), 0
            return
        try:
            # Integer keys (and replies holding them) are ours to store: not strict.
            raw = _unpack(bytes(data), strict_map_key=False)
        except Exception as exc:
            raise ValueError(f"KV snapshot is not msgpack: {exc}") from None
        if not isinstance(raw, dict) or raw.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"not a KV snapshot (format {SNAPSHOT_FORMAT!r} expected)")
        applied, values, sessions_raw = raw.get("applied"), raw.get("data"), raw.get("sessions")
        if (
            not _is_int(applied)
            or not isinstance(values, dict)
            or not isinstance(sessions_raw, list)
        ):
            raise ValueError("KV snapshot: bad applied index, data or sessions")
        sessions: OrderedDict[str, Session] = OrderedDict()
        for item in sessions_raw:
            if not (
                isinstance(item, list)
                and len(item) == 4
                and isinstance(item[0], str)
                and _is_int(item[1])
                and isinstance(item[2], dict)
                and _is_int(item[3])
            ):
                raise ValueError(f"KV snapshot: bad session {item!r:.80}")
            sessions[item[0]] = Session(seq=item[1], reply=item[2], last_index=item[3])
        self._data, self._sessions, self.applied_index = values, sessions, applied

    # -- introspection (tests, status)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def session(self, client: str) -> Session | None:
        return self._sessions.get(client)

    def __len__(self) -> int:
        return len(self._data)

    def txn_reads_now(self, ops: Any) -> list[Any]:
        """The values the txn's reads would see on the state applied now, the txn's own
        earlier writes included; changes nothing (the ``txn-stale-reads`` bug's hook)."""
        reply = self._txn(validate_txn_ops(ops), None, dry_run=True)
        if not reply.get("ok"):
            raise MalformedCommand("the txn cannot apply on this state")
        return [mop[2] for mop in reply["value"] if mop[0] == "r"]

    # -- commands

    def _expire_sessions(self, index: int) -> None:
        horizon = index - self.session_ttl_entries
        sessions = self._sessions
        while sessions:
            client, oldest = next(iter(sessions.items()))
            if oldest.last_index >= horizon:
                break
            del sessions[client]

    def _execute(self, index: int, command: dict[str, Any]) -> dict[str, Any]:
        op = command.get("op")
        if op not in OPS:
            return dict(MALFORMED)
        if op in READ_OPS:
            return self._read(command)  # a read through the log: no session needed
        client, seq = command.get("client"), command.get("seq")
        if client is None and seq is None:
            return self._write(op, command)
        if not (isinstance(client, str) and client and _is_int(seq) and seq >= 0):
            return dict(MALFORMED)
        if not self._dedup:
            return self._write(op, command)
        session = self._sessions.get(client)
        if session is not None:
            session.last_index = index
            self._sessions.move_to_end(client)
            if seq == session.seq:
                # §6.3: a retry gets the first reply and is not applied again. Copies, so
                # that a caller decorating its reply cannot change the cached one.
                return dict(session.reply)
            if seq < session.seq:
                return _fail("stale_seq")
        reply = self._write(op, command)
        if session is None:
            self._sessions[client] = Session(seq=seq, reply=dict(reply), last_index=index)
        else:
            session.seq, session.reply = seq, dict(reply)
        return reply

    def _read(self, command: dict[str, Any]) -> dict[str, Any]:
        if command.get("op") == "get":
            key = command.get("key")
            if not _is_key(key):
                return dict(MALFORMED)
            return _ok(self._data.get(key))
        keys = command.get("keys")
        if not isinstance(keys, list) or not all(_is_key(k) for k in keys):
            return dict(MALFORMED)
        return _ok({key: self._data.get(key) for key in keys})

    def _write(self, op: str, command: dict[str, Any]) -> dict[str, Any]:
        """Validate everything first, then change state: a failure changes nothing."""
        data = self._data
        if op == "transfer":
            return self._transfer(command)
        if op == TXN_OP:
            stale = command.get("reads_at_proposal") if STALE_READS_BUG in self.bugs else None
            if stale is not None and not isinstance(stale, list):
                return dict(MALFORMED)
            return self._txn(validate_txn_ops(command.get("ops")), stale)
        key = command.get("key")
        if not _is_key(key):
            return dict(MALFORMED)
        if op == "delete":
            data.pop(key, None)
            return _ok()
        if op == "cas":
            if "from" not in command or "to" not in command:
                return dict(MALFORMED)
            expected, new = command["from"], command["to"]
            if not _valid_value(new):
                return dict(MALFORMED)
            if key not in data:
                return _fail("not_found")
            if not same_value(data[key], expected):
                return _fail("cas_mismatch")
            data[key] = new
            return _ok()
        if "value" not in command or not _valid_value(command["value"]):
            return dict(MALFORMED)
        value = command["value"]
        if op == "put":
            data[key] = value
            return _ok()
        # append: never mutate a stored list in place; a cached reply may hold it.
        current = data.get(key, [])
        if not isinstance(current, list):
            return dict(MALFORMED)
        new_list = [*current, value]
        data[key] = new_list
        return _ok(new_list)

    def _transfer(self, command: dict[str, Any]) -> dict[str, Any]:
        source, target, amount = (
            command.get("from_key"),
            command.get("to_key"),
            command.get("amount"),
        )
        if not (_is_key(source) and _is_key(target) and _is_int(amount)):
            return dict(MALFORMED)
        data = self._data
        source_balance, target_balance = data.get(source, 0), data.get(target, 0)
        if amount < 0 or not (_is_int(source_balance) and _is_int(target_balance)):
            return dict(MALFORMED)
        if source_balance < amount:
            return _fail("insufficient_funds")
        if source != target:
            if target_balance + amount > INT64_MAX:
                return dict(MALFORMED)  # would not fit a msgpack integer in the snapshot
            data[source] = source_balance - amount
            data[target] = target_balance + amount
        return _ok()

    def _txn(
        self, ops: list[list[Any]], stale_reads: list[Any] | None, *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Apply validated micro-ops atomically: writes go to an overlay that replaces the
        stored values only once every micro-op succeeded, and reads look in the overlay
        first (a txn sees its own writes). With ``stale_reads`` (the teaching bug) the
        reads answer those values in order instead; the writes still apply to the state
        as it is now."""
        data = self._data
        overlay: dict[Any, Any] = {}
        done: list[list[Any]] = []
        reads = iter(stale_reads) if stale_reads is not None else None
        for f, key, value in ops:
            current = overlay[key] if key in overlay else data.get(key)
            if f == "r":
                if reads is not None:
                    current = next(reads, None)
                done.append(["r", key, current])
            elif f == "w":
                overlay[key] = value
                done.append(["w", key, value])
            else:
                if current is None:
                    current = []
                if not isinstance(current, list):
                    return dict(MALFORMED)  # nothing applied: the overlay is dropped
                # A new list: never mutate a stored one (a cached reply may hold it).
                overlay[key] = [*current, value]
                done.append(["append", key, value])
        if not dry_run:
            data.update(overlay)
        return _ok(done)
