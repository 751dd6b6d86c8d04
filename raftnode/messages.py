"""Raft messages and the records the core exchanges with its drivers.

These dataclasses are the contract between the sans-I/O core (``raftnode.core``), the
drivers (the node process and the simulation), storage and the wire. They are plain data:
``to_wire``/``from_wire`` turn them into msgpack-friendly dicts and back, validating every
field, so a malformed frame becomes a ``MessageError`` and never a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class MessageError(ValueError):
    """A decoded frame does not describe a valid message."""


class EntryKind(StrEnum):
    NOOP = "noop"  # appended by every new leader (§5.4.2, §6.4)
    COMMAND = "command"  # opaque state-machine command (msgpack bytes)
    CONFIG = "config"  # a new configuration (ConfState, encoded by conf_to_bytes), §4.1


@dataclass(slots=True, frozen=True)
class Entry:
    term: int
    index: int
    kind: EntryKind = EntryKind.COMMAND
    data: bytes = b""


@dataclass(slots=True, frozen=True)
class HardState:
    """What must be durable before any message that depends on it leaves (§3.8)."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass(slots=True, frozen=True)
class ConfState:
    """A cluster configuration (§4): the voters, the learners (non-voting members that
    receive the log, §4.2.1) and each member's address. The core reads only ``voters``
    and ``learners``; ``addresses`` ("host:port" per id) rides along in the log so a
    driver learns where a new member listens."""

    voters: tuple[str, ...]
    learners: tuple[str, ...] = ()
    addresses: tuple[tuple[str, str], ...] = ()  # sorted (id, "host:port") pairs

    @property
    def members(self) -> tuple[str, ...]:
        return self.voters + self.learners

    def address_map(self) -> dict[str, str]:
        return dict(self.addresses)


def conf_to_wire(conf: ConfState) -> dict[str, Any]:
    return {
        "voters": list(conf.voters),
        "learners": list(conf.learners),
        "addresses": dict(conf.addresses),
    }


def conf_from_wire(raw: Any) -> ConfState:
    if not isinstance(raw, dict):
        raise MessageError("a configuration must be a map")
    voters, learners = raw.get("voters"), raw.get("learners", [])
    addresses = raw.get("addresses", {})
    if not isinstance(voters, list) or not isinstance(learners, list):
        raise MessageError("configuration voters and learners must be lists")
    ids = [*voters, *learners]
    if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
        raise MessageError(f"configuration members must be distinct non-empty ids, got {ids!r:.80}")
    if not isinstance(addresses, dict) or any(
        not isinstance(k, str) or not isinstance(v, str) for k, v in addresses.items()
    ):
        raise MessageError("configuration addresses must map ids to 'host:port' strings")
    return ConfState(tuple(voters), tuple(learners), tuple(sorted(addresses.items())))


def conf_to_bytes(conf: ConfState) -> bytes:
    """The data of an EntryKind.CONFIG entry: the whole new configuration (not a delta),
    so the configuration in force is simply the latest one in the log (§4.1)."""
    return json.dumps(conf_to_wire(conf), sort_keys=True, separators=(",", ":")).encode()


def conf_from_bytes(data: bytes) -> ConfState:
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"configuration entry is not JSON: {exc}") from None
    return conf_from_wire(raw)


@dataclass(slots=True, frozen=True)
class SnapshotMeta:
    index: int = 0  # last included index
    term: int = 0  # last included term
    # The configuration in force at ``index`` (§4.1, §5.1: a snapshot carries the latest
    # configuration it covers, since the config entries it replaces are gone). None only
    # for snapshots written before membership existed: the static peers then.
    conf: ConfState | None = None


@dataclass(slots=True, frozen=True)
class Snapshot:
    meta: SnapshotMeta
    data: bytes


@dataclass(slots=True)
class RestoredState:
    """What storage hands to the core on start."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)  # all after snapshot.meta.index


class MessageType(StrEnum):
    VOTE = "vote"  # RequestVote, or PreVote when pre_vote is set (§9.6)
    VOTE_RESP = "vote_resp"
    APPEND = "append"  # AppendEntries; an empty one is a heartbeat
    APPEND_RESP = "append_resp"
    SNAPSHOT = "snapshot"  # InstallSnapshot, one chunk
    SNAPSHOT_RESP = "snapshot_resp"
    TIMEOUT_NOW = "timeout_now"  # leadership transfer (§3.10): campaign now


@dataclass(slots=True)
class Message:
    """One Raft message. Which fields matter depends on ``type`` (as in etcd's raftpb)."""

    type: MessageType
    term: int
    src: str
    dst: str
    # VOTE
    last_log_index: int = 0
    last_log_term: int = 0
    pre_vote: bool = False
    # VOTE: a campaign started by TimeoutNow (§3.10); voters do not hold it off with their
    # leader lease, since the leader itself asked for it.
    transfer: bool = False
    # VOTE_RESP
    granted: bool = False
    # APPEND
    prev_log_index: int = 0
    prev_log_term: int = 0
    entries: list[Entry] = field(default_factory=list)
    leader_commit: int = 0
    # APPEND / APPEND_RESP: the leader's heartbeat round, echoed back, used to confirm
    # leadership for ReadIndex (§6.4) without a separate message type. 0 = none.
    read_ctx: int = 0
    # APPEND_RESP / SNAPSHOT_RESP
    success: bool = False
    match_index: int = 0
    conflict_index: int = 0  # fast back-off hint (§5.3, "optimization")
    conflict_term: int = 0
    # SNAPSHOT
    snapshot: Snapshot | None = None


def _int(d: dict[str, Any], key: str, default: int = 0) -> int:
    value = d.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MessageError(f"field {key!r} must be a non-negative integer, got {value!r}")
    return value


def _str(d: dict[str, Any], key: str) -> str:
    value = d.get(key)
    if not isinstance(value, str) or not value:
        raise MessageError(f"field {key!r} must be a non-empty string, got {value!r}")
    return value


def _bool(d: dict[str, Any], key: str) -> bool:
    value = d.get(key, False)
    if not isinstance(value, bool):
        raise MessageError(f"field {key!r} must be a boolean, got {value!r}")
    return value


def entry_to_wire(entry: Entry) -> list[Any]:
    return [entry.term, entry.index, entry.kind.value, entry.data]


_ENTRY_KINDS = {kind.value: kind for kind in EntryKind}


def entry_from_wire(raw: Any) -> Entry:
    if not isinstance(raw, list | tuple) or len(raw) != 4:
        raise MessageError(f"an entry is [term, index, kind, data], got {raw!r:.80}")
    term, index, kind, data = raw
    # Fast path for what msgpack decodes (plain ints, str kind, bytes): the checks below
    # in full otherwise. Same verdicts, fewer calls: this runs for every entry received.
    if (
        type(term) is not int
        or type(index) is not int
        or term < 0
        or index < 0
        or type(data) is not bytes
        or type(kind) is not str
        or kind not in _ENTRY_KINDS
    ):
        for name, value in (("term", term), ("index", index)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise MessageError(f"entry {name} must be a non-negative integer, got {value!r}")
        try:
            kind = EntryKind(kind)
        except ValueError:
            raise MessageError(f"unknown entry kind {kind!r}") from None
        if not isinstance(data, bytes):
            raise MessageError("entry data must be bytes")
        return Entry(term=term, index=index, kind=kind, data=data)
    return Entry(term, index, _ENTRY_KINDS[kind], data)


def snapshot_to_wire(snapshot: Snapshot) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": snapshot.meta.index,
        "term": snapshot.meta.term,
        "data": snapshot.data,
    }
    if snapshot.meta.conf is not None:
        out["conf"] = conf_to_wire(snapshot.meta.conf)
    return out


def snapshot_from_wire(raw: Any) -> Snapshot:
    if not isinstance(raw, dict):
        raise MessageError("a snapshot must be a map")
    data = raw.get("data")
    if not isinstance(data, bytes):
        raise MessageError("snapshot data must be bytes")
    conf_raw = raw.get("conf")
    conf = None if conf_raw is None else conf_from_wire(conf_raw)
    return Snapshot(SnapshotMeta(index=_int(raw, "index"), term=_int(raw, "term"), conf=conf), data)


# The optional fields of a Message on the wire, left out when 0 / False.
_OPTIONAL_INT_FIELDS = (
    "last_log_index",
    "last_log_term",
    "prev_log_index",
    "prev_log_term",
    "leader_commit",
    "read_ctx",
    "match_index",
    "conflict_index",
    "conflict_term",
)
_OPTIONAL_BOOL_FIELDS = ("pre_vote", "transfer", "granted", "success")


def message_to_wire(msg: Message) -> dict[str, Any]:
    """A compact dict: defaults are left out."""
    out: dict[str, Any] = {"type": msg.type.value, "term": msg.term, "src": msg.src, "dst": msg.dst}
    for name in _OPTIONAL_INT_FIELDS:
        value = getattr(msg, name)
        if value:
            out[name] = value
    for name in _OPTIONAL_BOOL_FIELDS:
        if getattr(msg, name):
            out[name] = True
    if msg.entries:
        out["entries"] = [entry_to_wire(e) for e in msg.entries]
    if msg.snapshot is not None:
        out["snapshot"] = snapshot_to_wire(msg.snapshot)
    return out


_MESSAGE_TYPES = {mtype.value: mtype for mtype in MessageType}
_INT_FIELDS = frozenset(("term", *_OPTIONAL_INT_FIELDS))
_BOOL_FIELDS = frozenset(_OPTIONAL_BOOL_FIELDS)


def message_from_wire(raw: Any) -> Message:
    """Validate and build a Message; raises MessageError on anything malformed.

    Every field present is checked (absent ones take their defaults; unknown keys are
    ignored); one pass over the map's keys, since this runs for every Raft message."""
    if not isinstance(raw, dict):
        raise MessageError("a raft message must be a map")
    type_raw = raw.get("type")
    mtype = _MESSAGE_TYPES.get(type_raw) if type(type_raw) is str else None
    if mtype is None:
        raise MessageError(f"unknown raft message type {type_raw!r:.40}")
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _INT_FIELDS:
            # type() is int: not a bool, nor a subclass (those take _int's full check)
            fields[key] = value if type(value) is int and value >= 0 else _int(raw, key)
        elif key in _BOOL_FIELDS:
            fields[key] = _bool(raw, key)
        elif key == "entries":
            if not isinstance(value, list):
                raise MessageError("entries must be a list")
            fields[key] = [entry_from_wire(e) for e in value]
        elif key == "snapshot":
            if value is not None:
                fields[key] = snapshot_from_wire(value)
    return Message(
        type=mtype, term=fields.pop("term", 0), src=_str(raw, "src"), dst=_str(raw, "dst"), **fields
    )
