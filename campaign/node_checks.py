"""Raft's own safety properties on real runs, read off raftnode's node logs.

A ``raftlab test`` run keeps every node's stdout/stderr in ``nodes/<id>.log``. The node
logs, among other things (``raftnode/driver.py``):

- ``role=ROLE term=N leader=L`` on every role/term/leader change;
- ``commit_index=N applied_index=M last_log_index=K`` when the commit index changed,
  at most once a second; and ``commit_index regressed from=A to=B`` at once, should it
  ever go down;
- ``apply index=I entries=TERM:CRC,TERM:CRC:CLIENT:SEQ,...`` before applying each batch
  of committed entries, so before any client hears of them (CRC: the CRC-32 of the
  entry's data; CLIENT:SEQ where this node proposed the write and will answer for it);
- ``starting ... snapshot_index=S`` when a process (re)starts: one incarnation;
- ``snapshot restored index=S ...`` when it installs a leader's snapshot;
- ``configuration voters=A,B,C learners=D`` whenever the configuration in force on the
  node changes (§4.1: the latest in its log, committed or not), and once in a process's
  first Ready; a Ready's role line comes first, then its configuration line.

This module parses those lines into ``checker.raft_events`` events (the simulation feeds
its in-memory log lines through the same parser) and runs the three checkers:
``election-safety``, ``commit-monotonic`` and ``acknowledged-writes``, and
``leader-is-voter``: every node that became leader in a term was a voter of the
configuration it knew then (§4.2.1: learners never campaign; §4.2.2: a server outside
the voters never campaigns). "Knew then": the configuration its log line showed last
before the ``role=leader`` line, or the one logged in the same Ready (the line right
after it); a leader that is a voter of neither is a violation, one with no configuration
logged in its incarnation makes the result "unknown".

Matching the history to the log (``acknowledged-writes``). The workload runner names
process P's client ``p<P>`` (``workloads.runner``), a process runs one operation at a
time, and ``raftnode.client.RaftClient`` numbers a sequential client's writes 1, 2, 3...
(every write takes the next seq, whatever its outcome; reads take none). So the k-th
write invoked by process P carried (``p<P>``, k). The mapping is checked against the
logs before it is used: a session seq beyond what its process invoked, or no ``p<P>``
session in the logs at all while writes were acknowledged, makes the checker
``unknown`` (the mapping does not hold), never ``false``.

Only the raftnode target logs this format; for any other target these checkers are not
run (absent from results.json: a checker that cannot read the logs says nothing, rather
than "unknown" for every run of that target).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from checker.op import NEMESIS, Op
from checker.raft_events import (
    UNKNOWN,
    Ack,
    Applied,
    CommitIndex,
    Event,
    Incarnation,
    Restored,
    RoleChange,
    acknowledged_writes,
    commit_monotonic,
    election_safety,
)

CHECKERS = ("election-safety", "commit-monotonic", "acknowledged-writes", "leader-is-voter")
CLIENT_PREFIX = "p"  # workloads.runner's default client_prefix

_LINE = re.compile(r"(?P<time>\S+) (?P<node>\S+) (?P<message>.*)")
_STARTING = re.compile(r"starting .*\bsnapshot_index=(?P<snapshot>\d+)")
_ROLE = re.compile(r"role=(?P<role>[a-z_]+) term=(?P<term>\d+) ")
_COMMIT = re.compile(r"commit_index=(?P<index>\d+) applied_index=\d+")
_REGRESSED = re.compile(r"commit_index regressed from=(?P<before>\d+) to=(?P<index>\d+)")
_APPLY = re.compile(r"apply index=(?P<index>\d+) entries=(?P<entries>\S+)")
_ENTRY = re.compile(r"(?P<term>\d+):(?P<digest>[0-9a-f]+)(?::(?P<client>[^:,]*):(?P<seq>\d+))?")
# Message starts that promise one of the lines above: such a line that does not parse
# is damage, and what it would have said is unknown.
_OURS = ("starting ", "role=", "commit_index", "apply ", "snapshot restored ", "configuration ")
_RESTORED = re.compile(r"snapshot restored index=(?P<index>\d+) ")
_CONFIGURATION = re.compile(r"configuration voters=(?P<voters>\S*) learners=(?P<learners>\S*)")


@dataclass(frozen=True, slots=True)
class Configuration:
    """The configuration in force on a node changed (it logs every change)."""

    node: str
    incarnation: int
    voters: tuple[str, ...]
    learners: tuple[str, ...] = ()
    time: str = ""


@dataclass(slots=True)
class Leadership:
    """A node became leader in ``term``; the configurations it knew then (see the module
    docstring): the last one logged before, and one logged in the same Ready."""

    node: str
    incarnation: int
    term: int
    time: str
    before: Configuration | None
    same_ready: Configuration | None = None


@dataclass(slots=True)
class ParsedLog:
    node: str
    events: list[Event] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # lines that promised an event
    incarnations: int = 0
    leaderships: list[Leadership] = field(default_factory=list)


def parse_node_log(node: str, lines: Iterable[str]) -> ParsedLog:
    """Events of one node's log, in order. Lines of other nodes, the process markers
    (``=== raftlab ...``), tracebacks and anything else are skipped."""
    parsed = ParsedLog(node)
    incarnation = 0
    conf: Configuration | None = None  # the latest configuration of this incarnation
    leader_line = -2  # number (among this node's lines) of the last role=leader line
    number = 0
    for raw in lines:
        match = _LINE.fullmatch(raw.rstrip("\n"))
        if match is None or match["node"] != node:
            continue
        number += 1
        time, message = match["time"], match["message"]
        if not message.startswith(_OURS):
            continue
        event = _event(node, incarnation, time, message)
        if event is None:
            parsed.damaged.append(raw.rstrip("\n")[:200])
            continue
        if isinstance(event, Configuration):
            if leader_line == number - 1:  # logged in the Ready that made it leader
                parsed.leaderships[-1].same_ready = event
            conf = event
            continue  # not a checker.raft_events event: kept out of ``events``
        if isinstance(event, Incarnation):
            incarnation += 1
            parsed.incarnations = incarnation
            conf = None
            event = Incarnation(node, incarnation, event.snapshot_index, time)
            parsed.events.append(event)
        elif isinstance(event, list):
            parsed.events.extend(event)
        else:
            parsed.events.append(event)
            if isinstance(event, RoleChange) and event.role == "leader":
                parsed.leaderships.append(
                    Leadership(node, incarnation, event.term, time, before=conf)
                )
                leader_line = number
    return parsed


def leader_is_voter(
    leaderships: Iterable[Leadership], *, complete: bool = True, missing: str = ""
) -> dict[str, Any]:
    """Every node that became leader was a voter of the configuration it knew then
    (module docstring). A violation is ``False`` whatever is missing; a leadership with
    no configuration logged, or missing logs, make a clean result ``"unknown"``."""
    violations: list[dict[str, Any]] = []
    unknown: list[str] = []
    count = 0
    for leadership in leaderships:
        count += 1
        known = [c for c in (leadership.before, leadership.same_ready) if c is not None]
        if not known:
            unknown.append(f"{leadership.node} term {leadership.term}")
        elif not any(leadership.node in conf.voters for conf in known):
            violations.append(
                {
                    "node": leadership.node,
                    "term": leadership.term,
                    "time": leadership.time,
                    "voters": list(known[-1].voters),
                    "learners": list(known[-1].learners),
                }
            )
    if violations:
        return {
            "valid": False,
            "error": (
                "a node became leader while not a voter of the configuration it knew "
                "(Raft §4.2.1-§4.2.2: learners and servers outside the voters never campaign)"
            ),
            "violations": len(violations),
            "leaders": violations[:20],
        }
    result: dict[str, Any] = {"leaderships": count}
    gaps = [missing] if not complete and missing else []
    if unknown:
        gaps.append(f"no configuration logged before {', '.join(unknown[:5])}")
    if gaps:
        result.update(valid=UNKNOWN, error=f"nothing wrong seen, but {'; '.join(gaps)}")
    else:
        result["valid"] = True
    return result


def _event(node: str, incarnation: int, time: str, message: str) -> Any:
    """The event(s) a message of ours reports, or None when it is damaged."""
    if message.startswith("starting "):
        match = _STARTING.match(message)
        return None if match is None else Incarnation(node, 0, int(match["snapshot"]), time)
    if message.startswith("snapshot restored "):
        match = _RESTORED.match(message + " ")
        return None if match is None else Restored(node, incarnation, int(match["index"]), time)
    if message.startswith("configuration "):
        match = _CONFIGURATION.fullmatch(message)
        if match is None:
            return None
        return Configuration(
            node,
            incarnation,
            tuple(filter(None, match["voters"].split(","))),
            tuple(filter(None, match["learners"].split(","))),
            time,
        )
    if message.startswith("role="):
        match = _ROLE.match(message + " ")
        if match is None:
            return None
        return RoleChange(node, incarnation, match["role"], int(match["term"]), time)
    if message.startswith("commit_index regressed"):
        match = _REGRESSED.fullmatch(message)
        if match is None:
            return None
        return CommitIndex(node, incarnation, int(match["index"]), int(match["before"]), time)
    if message.startswith("commit_index"):
        match = _COMMIT.match(message)
        if match is None:
            return None
        return CommitIndex(node, incarnation, int(match["index"]), time=time)
    match = _APPLY.fullmatch(message)
    if match is None:
        return None
    applied = []
    first = int(match["index"])
    for offset, item in enumerate(match["entries"].split(",")):
        entry = _ENTRY.fullmatch(item)
        if entry is None:
            return None
        session = None
        if entry["seq"] is not None:
            session = (unquote(entry["client"]), int(entry["seq"]))
        applied.append(
            Applied(
                node,
                incarnation,
                first + offset,
                int(entry["term"]),
                entry["digest"],
                session=session,
                time=time,
            )
        )
    return applied


def parse_node_logs(node_logs: Mapping[str, Iterable[str]]) -> dict[str, ParsedLog]:
    return {node: parse_node_log(node, lines) for node, lines in node_logs.items()}


def acknowledged_sessions(
    ops: Sequence[Op], is_read: Any, *, prefix: str = CLIENT_PREFIX
) -> tuple[list[Ack], dict[str, int]]:
    """The (client, seq) of every ok write, and how many writes each client invoked
    (the module docstring says why the k-th write of process P is (``p<P>``, k))."""
    invoked: dict[Any, int] = {}
    acks: list[Ack] = []
    for op in ops:
        if op.process == NEMESIS or not isinstance(op.process, int) or is_read(op.f):
            continue
        if op.type == "invoke":
            invoked[op.process] = invoked.get(op.process, 0) + 1
        elif op.type == "ok" and op.process in invoked:
            acks.append(Ack(op.index, f"{prefix}{op.process}", invoked[op.process]))
    return acks, {f"{prefix}{process}": count for process, count in invoked.items()}


def _mapping_problem(
    acks: Sequence[Ack], invoked: Mapping[str, int], events: Sequence[Event], prefix: str
) -> str | None:
    """Why the history's writes cannot be matched to the log's sessions, if they cannot."""
    pattern = re.compile(re.escape(prefix) + r"\d+")
    seen = False
    digests: dict[tuple[str, int], str] = {}
    for event in events:
        if not isinstance(event, Applied) or event.session is None:
            continue
        client, seq = event.session
        if not pattern.fullmatch(client):
            continue  # e.g. a workload's setup client: not in the history
        seen = True
        # A retry re-sends the same command; one seq on two different commands means a
        # client started its numbering again, and the k-th write is no longer seq k.
        if digests.setdefault(event.session, event.digest) != event.digest:
            return (
                f"{client} seq {seq} carried two different commands: the history cannot be "
                "matched to the log"
            )
        if seq > invoked.get(client, 0):
            return (
                f"the log has {client} seq {seq}, but that process invoked only "
                f"{invoked.get(client, 0)} writes: the history cannot be matched to the log"
            )
    if acks and not seen:
        return (
            f"no applied write carries a client id {prefix}<process>: the history cannot "
            "be matched to the log"
        )
    return None


def check_node_logs(
    node_logs: Mapping[str, Sequence[str] | None],
    ops: Sequence[Op],
    is_read: Any,
    *,
    prefix: str = CLIENT_PREFIX,
) -> dict[str, dict[str, Any]]:
    """The three checkers over every node's log lines (None: that log is missing)."""
    missing = sorted(node for node, lines in node_logs.items() if lines is None)
    parsed = parse_node_logs({n: lines for n, lines in node_logs.items() if lines is not None})
    never_started = sorted(node for node, log in parsed.items() if log.incarnations == 0)
    damaged = {node: log.damaged[:3] for node, log in parsed.items() if log.damaged}
    gaps = []
    if missing:
        gaps.append(f"no log for {', '.join(missing)}")
    if never_started:
        gaps.append(f"no start line in the log of {', '.join(never_started)}")
    if damaged:
        gaps.append(f"damaged lines in the log of {', '.join(sorted(damaged))}")
    complete = not gaps
    why = "; ".join(gaps)
    events = [event for log in parsed.values() for event in log.events]
    results = {
        "election-safety": election_safety(events, complete=complete, missing=why),
        "commit-monotonic": commit_monotonic(events, complete=complete, missing=why),
        "leader-is-voter": leader_is_voter(
            (item for log in parsed.values() for item in log.leaderships),
            complete=complete,
            missing=why,
        ),
    }
    acks, invoked = acknowledged_sessions(ops, is_read, prefix=prefix)
    problem = _mapping_problem(acks, invoked, events, prefix)
    if problem is not None:
        results["acknowledged-writes"] = {"valid": UNKNOWN, "error": problem}
    else:
        results["acknowledged-writes"] = acknowledged_writes(
            acks, events, complete=complete, missing=why
        )
    for result in results.values():
        result["source"] = "node logs"
        if damaged:
            result.setdefault("damaged_lines", damaged)
    return results


def node_log_checkers(
    nodes_dir: Path, config: Mapping[str, Any], ops: Sequence[Op]
) -> dict[str, dict[str, Any]]:
    """The checkers of a finished ``raftlab test`` run (never raises: a failure is an
    "unknown" result). Empty for targets other than raftnode (module docstring)."""
    if config.get("target", "raftnode") != "raftnode":
        return {}
    try:
        from campaign.checking import build_workload
        from campaign.cluster import node_ids_for

        workload = build_workload(config)
        node_logs: dict[str, list[str] | None] = {}
        nodes = int(config["nodes"])
        for position, node in enumerate(node_ids_for(nodes + int(config.get("spares") or 0))):
            path = nodes_dir / f"{node}.log"
            if not path.is_file() and position >= nodes:
                continue  # a spare the member fault never added: it never ran
            node_logs[node] = (
                path.read_text(encoding="utf-8", errors="replace").splitlines()
                if path.is_file()
                else None
            )
        return check_node_logs(node_logs, ops, workload.is_read)
    except Exception as error:  # noqa: BLE001 - a checker that raises is "unknown"
        reason = f"{type(error).__name__}: {error}"
        return {name: {"valid": UNKNOWN, "error": reason} for name in CHECKERS}
