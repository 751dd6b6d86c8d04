"""junit.xml for CI: one test case per checker, so a CI page shows which property broke.

The suite is the run's name; each case is a checker named with the run's workload,
nemesis and seed (``linearizable [register, nemesis partition,kill, seed 5]``), so two runs
in one CI page stay apart. A checker that says `false` is a ``<failure>`` whose message is
the anomaly in one line (`checker.summary`, the same words the terminal and the report
use) and whose body is a short excerpt: every anomaly found, the culprit and the
operations concurrent with it, the report and the replay command. One that says
"unknown" is an ``<error>`` (the run proved nothing, and a gate must not pass on it);
`true` is a pass.

`write_junit` reads campaign.json and history.jsonl next to the file it writes when they
are not given (the results folder writes them first), so the anomaly is named with the
history at hand.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from campaign.verdict import normalize_valid

MAX_BODY_LINES = 40
MAX_LINE_CHARS = 300
MAX_CONCURRENT = 8


def _clip(text: str, limit: int = MAX_LINE_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _op_line(op: Mapping[str, Any]) -> str:
    start, end = op.get("invoke_time"), op.get("complete_time")
    span = ""
    if isinstance(start, int | float):
        span = f" {start / 1e9:.3f}"
        span += f"–{end / 1e9:.3f} s" if isinstance(end, int | float) else " s– (no answer)"
    value = json.dumps(op.get("value"), ensure_ascii=False, default=repr)
    error = f" {op.get('error')}" if op.get("error") else ""
    return _clip(
        f"op {op.get('index')}: process {op.get('process')} {op.get('f')} {value} "
        f"{op.get('type')}{error}{span}"
    )


def _scalars(result: Mapping[str, Any]) -> str:
    """The result's plain fields on one line (no nested dumps)."""
    shown = []
    for key, value in result.items():
        if key in ("valid", "traceback") or isinstance(value, Mapping | list | tuple):
            continue
        shown.append(f"{key}={value}")
    return _clip(", ".join(shown), 400)


def failure_body(
    checker: str,
    result: Mapping[str, Any],
    anomalies: Sequence[str],
    *,
    campaign: Mapping[str, Any] | None = None,
    report: str | None = None,
) -> str:
    """A short excerpt for a person reading a CI page: no JSON dump, nothing cut mid-way."""
    lines = list(anomalies)
    failures = result.get("failures")
    first = failures[0] if isinstance(failures, list) and failures else result
    if isinstance(first, Mapping) and isinstance(first.get("op"), Mapping):
        if first.get("key") is not None:
            lines.append(f"key: {json.dumps(first.get('key'), default=repr)}")
        lines.append("culprit: " + _op_line(first["op"]))
        concurrent = [op for op in first.get("concurrent") or [] if isinstance(op, Mapping)]
        if concurrent:
            lines.append(f"concurrent with it ({len(concurrent)}):")
            lines += ["  " + _op_line(op) for op in concurrent[:MAX_CONCURRENT]]
            if len(concurrent) > MAX_CONCURRENT:
                lines.append(f"  … and {len(concurrent) - MAX_CONCURRENT} more (see the report)")
        states = first.get("states")
        if isinstance(states, list) and states:
            shown = ", ".join(json.dumps(s, default=repr) for s in states[:8])
            lines.append(_clip(f"model states possible there: {shown}"))
    elif result.get("traceback"):
        lines.append(_clip(str(result.get("error", ""))))
        lines += [_clip(line) for line in str(result["traceback"]).splitlines()[-6:]]
    details = _scalars(result)
    if details:
        lines.append(f"{checker}: {details}")
    if campaign:
        if campaign.get("replay"):
            lines.append(f"replay: {campaign['replay']}")
        elif campaign.get("argv"):
            lines.append("command: " + " ".join(str(word) for word in campaign["argv"]))
    lines.append(f"report: {report or 'report.html in the run folder'}")
    if len(lines) > MAX_BODY_LINES:
        lines = lines[: MAX_BODY_LINES - 1] + [f"… {len(lines) - MAX_BODY_LINES + 1} more lines"]
    return "\n".join(lines)


def _case_label(checker: str, config: Mapping[str, Any], seed: Any) -> str:
    parts = []
    if config.get("workload"):
        parts.append(str(config["workload"]))
    if config.get("nemesis") is not None:
        parts.append(f"nemesis {config.get('nemesis') or 'none'}")
    if seed is not None:
        parts.append(f"seed {seed}")
    return f"{checker} [{', '.join(parts)}]" if parts else checker


def junit_tree(
    results: Mapping[str, Any],
    *,
    name: str,
    campaign: Mapping[str, Any] | None = None,
    ops: Sequence[Any] | None = None,
    report: str | None = None,
) -> ElementTree.ElementTree:
    from checker.summary import describe

    campaign = campaign or {}
    config = campaign.get("config") if isinstance(campaign.get("config"), Mapping) else {}
    run_name = str(config.get("name") or name)
    seed = campaign.get("seed", results.get("seed"))
    checkers: Mapping[str, Mapping[str, Any]] = results.get("checkers", {}) or {}
    cases = dict(checkers) or {
        "verdict": {"valid": results.get("valid"), "error": "no checker ran"}
    }
    anomalies = describe({"checkers": cases}, ops)
    failures = sum(1 for result in cases.values() if normalize_valid(result.get("valid")) is False)
    errors = sum(
        1 for result in cases.values() if normalize_valid(result.get("valid")) == "unknown"
    )
    seconds = sum(float(result.get("seconds", 0) or 0) for result in cases.values())
    suites = ElementTree.Element("testsuites", name="raftlab")
    suite = ElementTree.SubElement(
        suites,
        "testsuite",
        name=run_name,
        tests=str(len(cases)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{seconds:.3f}",
    )
    for checker_name, result in cases.items():
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=f"raftlab.{run_name}",
            name=_case_label(str(checker_name), config, seed),
            time=f"{float(result.get('seconds', 0) or 0):.3f}",
        )
        valid = normalize_valid(result.get("valid"))
        if valid is True:
            continue
        mine = [a.text for a in anomalies if a.checker == str(checker_name)]
        message = mine[0] if mine else f"{checker_name}: {'invalid' if valid is False else valid}"
        element = ElementTree.SubElement(
            case,
            "failure" if valid is False else "error",
            message=_clip(message, 500),
            type="invalid" if valid is False else "unknown",
        )
        element.text = failure_body(
            str(checker_name), result, mine, campaign=campaign, report=report
        )
    ElementTree.indent(suites)
    return ElementTree.ElementTree(suites)


def _read_beside(path: Path) -> tuple[Mapping[str, Any] | None, list[Any] | None]:
    campaign = None
    try:
        loaded = json.loads((path.parent / "campaign.json").read_text(encoding="utf-8"))
        campaign = loaded if isinstance(loaded, Mapping) else None
    except (OSError, ValueError):
        pass
    ops = None
    history = path.parent / "history.jsonl"
    if history.is_file():
        from checker.history import HistoryError, read_jsonl

        try:
            ops = read_jsonl(history, allow_torn_tail=True)
        except (HistoryError, OSError, ValueError):
            ops = None
    return campaign, ops


def write_junit(
    path: Path,
    results: Mapping[str, Any],
    *,
    name: str,
    campaign: Mapping[str, Any] | None = None,
    ops: Sequence[Any] | None = None,
) -> None:
    path = Path(path)
    if campaign is None or ops is None:
        beside_campaign, beside_ops = _read_beside(path)
        campaign = campaign if campaign is not None else beside_campaign
        needs_ops = normalize_valid(results.get("valid")) is not True
        ops = ops if ops is not None or not needs_ops else beside_ops
    report = str(path.parent / "report.html")
    tree = junit_tree(results, name=name, campaign=campaign, ops=ops, report=report)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def first_message(path: Path) -> str | None:
    """The message of the first failure (else error) in a junit.xml, or None."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    for tag in ("failure", "error"):
        found = root.find(f".//{tag}")
        if found is not None and found.get("message"):
            return found.get("message")
    return None
