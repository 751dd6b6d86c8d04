"""report.html: one self-contained page per run (conventions §2).

The page holds the verdict, each checker's result and the checker's explanation when a
history is invalid, a table of ok / fail / info per function, a timeline of operations per
process, latency and rate plots with the nemesis periods shaded (as Jepsen's perf
graphs), and the role / term changes of every node. Plots are matplotlib figures embedded
as base64 PNG, so the file can be mailed or attached to a CI run and opened anywhere.

Only plain data goes in (`campaign.results.RunData`), so the simulation's runs get the
same report as real ones.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from campaign.counterexample import fault_nodes
from campaign.results import (
    CAMPAIGN_FILE,
    HISTORY_EDN,
    HISTORY_JSONL,
    HISTORY_TXT,
    JUNIT_FILE,
    NEMESIS_FILE,
    NODE_EVENTS_FILE,
    NODES_DIR,
    RESULTS_FILE,
    NodeEvent,
    RunData,
    count_completions,
    to_json,
)
from campaign.verdict import normalize_valid
from checker.op import NEMESIS, Op

NANOS = 1_000_000_000
TYPE_COLOURS = {"ok": "#2e7d32", "fail": "#c62828", "info": "#ef6c00", "invoke": "#757575"}
VERDICT_COLOURS = {True: "#2e7d32", False: "#c62828", "unknown": "#ef6c00"}
ROLE_COLOURS = {
    "leader": "#2e7d32",
    "candidate": "#ef6c00",
    "pre_candidate": "#fbc02d",
    "precandidate": "#fbc02d",
    "pre-candidate": "#fbc02d",
    "follower": "#90a4ae",
    "down": "#212121",
    "unreachable": "#bdbdbd",
    "starting": "#e0e0e0",
    "paused": "#6a1b9a",
}
# Nemesis shading per fault family; anything else gets the last colour.
FAULT_COLOURS = {
    "partition": "#1e88e5",
    "kill": "#e53935",
    "pause": "#8e24aa",
    "delay": "#fb8c00",
    "loss": "#f4511e",
    "clock": "#43a047",
    "disk": "#6d4c41",
    "heal": "#212121",
    "other": "#9e9e9e",
}
MAX_TABLE_ROWS = 300
MAX_EXPLANATION_CHARS = 200_000


# --- nemesis periods ------------------------------------------------------------------


@dataclass(slots=True)
class NemesisPeriod:
    kind: str  # the fault family: partition, kill, pause, ...
    start: int  # ns
    end: int  # ns
    label: str


@dataclass(slots=True)
class NemesisInstant:
    kind: str
    time: int
    label: str


def _fault_family(f: str) -> str:
    for family in FAULT_COLOURS:
        if family in f:
            return family
    return "other"


# f that opens a period -> (family, f values that close it). "start-X"/"stop-X" is the
# general rule; kill/start and pause/resume are Jepsen's process faults.
_CLOSERS: dict[str, str] = {"kill": "start", "pause": "resume"}


def _opening_kind(f: str) -> str | None:
    if f.startswith("start-"):
        return f[len("start-") :]
    if f in _CLOSERS:
        return f
    return None


def _closing_kind(f: str) -> str | None:
    if f.startswith("stop-"):
        return f[len("stop-") :]
    for opener, closer in _CLOSERS.items():
        if f == closer:
            return opener
    return None


def nemesis_periods(ops: Sequence[Op]) -> tuple[list[NemesisPeriod], list[NemesisInstant]]:
    """Fault periods (start to heal) and one-off faults (clock bumps, disk) from nemesis ops.

    A period opens at the first op of its opening function (the invoke) and closes at the
    last op of the closing function (the completion), so the shading covers the fault.
    A period still open at the end of the history runs to its end.
    """
    periods: list[NemesisPeriod] = []
    instants: list[NemesisInstant] = []
    open_periods: dict[str, int] = {}
    closing_periods: dict[str, int] = {}
    last_time = max((op.time for op in ops), default=0)
    for op in ops:
        if op.process != NEMESIS:
            continue
        opening = _opening_kind(op.f)
        closing = _closing_kind(op.f)
        if opening is not None:
            if opening not in open_periods:
                label = f"{opening} {fault_nodes(op.value)}".strip()
                periods.append(NemesisPeriod(_fault_family(opening), op.time, last_time, label))
                open_periods[opening] = len(periods) - 1
                closing_periods.pop(opening, None)
        elif closing is not None:
            if closing in open_periods:
                position = open_periods.pop(closing)
                periods[position].end = op.time
                closing_periods[closing] = position
            elif closing in closing_periods:
                periods[closing_periods[closing]].end = op.time
        elif op.type == "invoke" or op.type == "info":
            if op.type == "info" and instants and instants[-1].label.startswith(op.f):
                continue  # the completion of the instant just recorded
            label = f"{op.f} {fault_nodes(op.value)}".strip()
            instants.append(NemesisInstant(_fault_family(op.f), op.time, label))
    return periods, instants


# --- node logs ----------------------------------------------------------------------------

_KEY_VALUE = re.compile(r"\b(role|term|leader|node)=([^\s,;]+)")
_ISO_TIME = re.compile(r"^\[?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)")
_EPOCH_TIME = re.compile(r"^\[?(\d{9,11}\.\d+)\b")


_MARKER = re.compile(r"^=== raftlab (\S+): (.*) at (\S+) ===\s*$")


def _iso_seconds(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _line_time(line: str) -> float | None:
    """Epoch seconds of a log line's leading timestamp (ISO-8601 or epoch float), if any."""
    match = _ISO_TIME.match(line)
    if match:
        return _iso_seconds(match.group(1))
    match = _EPOCH_TIME.match(line)
    if match:
        return float(match.group(1))
    return None


def parse_node_log(text: str, node_id: str, started_wall: float) -> list[NodeEvent]:
    """Role and term changes from a node's log.

    A line counts when it starts with a timestamp (ISO-8601 or epoch seconds) and carries
    ``role=...`` and/or ``term=...`` (``leader=...`` optional), as raftnode's driver logs
    them: ``2026-11-26T08:30:01.123Z n1 role=leader term=3 leader=n1``. The process
    controller's marker lines (``=== raftlab n1: killed (SIGKILL)… at TIME ===``) give
    the times a node was down, paused or starting.
    Only lines that change something become events, so a chatty log stays cheap.
    """
    events: list[NodeEvent] = []
    role: str | None = None
    term: int | None = None
    leader: str | None = None
    role_before_pause: str | None = None
    for line in text.splitlines():
        marker = _MARKER.match(line)
        if marker is not None:
            # The process controller's own lines (nemesis/process.py): the node's life
            # as the harness saw it, which the node itself cannot log (SIGKILL, SIGSTOP).
            moment = _iso_seconds(marker.group(3))
            action = marker.group(2)
            if moment is None or (marker.group(1) != node_id):
                continue
            if action.startswith(("killed", "stopped")):
                new_role, new_leader = "down", None
            elif action.startswith("start"):
                new_role, new_leader = "starting", None
            elif action.startswith("paused"):
                role_before_pause = role
                new_role, new_leader = "paused", leader
            elif action.startswith("resumed"):
                new_role, new_leader = role_before_pause or role, leader
            else:
                continue
            if (new_role, new_leader) != (role, leader):
                role, leader = new_role, new_leader
                time_ns = int((moment - started_wall) * NANOS)
                events.append(NodeEvent(time_ns, node_id, role, term, leader, source="log"))
            continue
        if "role=" not in line and "term=" not in line:
            continue
        moment = _line_time(line)
        if moment is None:
            continue
        fields = dict(_KEY_VALUE.findall(line))
        if fields.get("node") not in (None, node_id):
            continue
        new_role = fields.get("role", role)
        new_leader = fields.get("leader", leader)
        if new_leader in ("None", "none", "-", ""):
            new_leader = None
        try:
            new_term = int(fields["term"]) if "term" in fields else term
        except ValueError:
            new_term = term
        if (new_role, new_term, new_leader) == (role, term, leader):
            continue
        role, term, leader = new_role, new_term, new_leader
        time_ns = int((moment - started_wall) * NANOS)
        events.append(NodeEvent(time_ns, node_id, role, term, leader, source="log"))
    return events


def node_events_for_report(data: RunData) -> list[NodeEvent]:
    """The node logs' events when they have any (finer-grained), else the polled ones."""
    # The wall-clock instant of the history's zero (recorded when the recorder started),
    # else the run's start: node logs carry wall-clock stamps.
    started_wall = data.config.get("history_zero_wall", data.config.get("started_wall"))
    from_logs: list[NodeEvent] = []
    if isinstance(started_wall, (int, float)):
        for node_id, text in data.node_logs.items():
            from_logs.extend(parse_node_log(text, node_id, float(started_wall)))
    logged_nodes = {event.node for event in from_logs}
    events = from_logs + [event for event in data.node_events if event.node not in logged_nodes]
    return sorted(events, key=lambda event: (event.time, event.node))


# --- operations --------------------------------------------------------------------------


@dataclass(slots=True)
class CompletedOp:
    process: int | str
    f: str
    type: str  # the completion's type; "info" for an invoke that never completed
    start: int  # ns
    end: int  # ns


def pair_client_ops(ops: Sequence[Op]) -> list[CompletedOp]:
    """Invocations matched with their completions, per process (conventions §1)."""
    pending: dict[int | str, Op] = {}
    paired: list[CompletedOp] = []
    last_time = max((op.time for op in ops), default=0)
    for op in ops:
        if op.process == NEMESIS:
            continue
        if op.type == "invoke":
            pending[op.process] = op
            continue
        invoke = pending.pop(op.process, None)
        if invoke is not None:
            paired.append(CompletedOp(op.process, invoke.f, op.type, invoke.time, op.time))
    for invoke in pending.values():
        paired.append(CompletedOp(invoke.process, invoke.f, "info", invoke.time, last_time))
    paired.sort(key=lambda item: item.start)
    return paired


# --- plots -----------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    # Figure without pyplot: no global state, no GUI backend, safe off the main thread.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=90)
    return figure


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    # Fixed margins rather than bbox_inches="tight": the tight box measures every tick
    # label twice, which made a report several times slower to draw.
    width, height = figure.get_size_inches()
    figure.subplots_adjust(
        left=0.8 / width, right=1 - 0.15 / width, top=1 - 0.55 / height, bottom=0.6 / height
    )
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _shade(axes: Any, periods: Sequence[NemesisPeriod], instants: Sequence[NemesisInstant]) -> None:
    """Faults on a plot: a light band over the plot, and at its top one strip per fault
    family (so overlapping faults stay apart), each bar naming the nodes it hit."""
    from matplotlib.transforms import blended_transform_factory

    strip = blended_transform_factory(axes.transData, axes.transAxes)
    families = sorted({p.kind for p in periods} | {i.kind for i in instants})
    row_of = {kind: row for row, kind in enumerate(families)}
    row_height = 0.055
    seen: set[str] = set()
    for period in periods:
        colour = FAULT_COLOURS.get(period.kind, FAULT_COLOURS["other"])
        label = period.kind if period.kind not in seen else None
        seen.add(period.kind)
        start, stop = period.start / NANOS, max(period.end, period.start + 1) / NANOS
        axes.axvspan(start, stop, color=colour, alpha=0.08, label=label, lw=0)
        bottom = 1 - (row_of[period.kind] + 1) * row_height
        axes.add_patch(_rectangle((start, bottom), stop - start, row_height * 0.9, colour, strip))
        nodes = period.label.split(" ", 1)[1] if " " in period.label else ""
        if nodes:
            axes.text(
                start,
                bottom + row_height * 0.45,
                f" {nodes}",
                transform=strip,
                fontsize=7,
                va="center",
                ha="left",
                color="#212121",
                clip_on=True,
                zorder=6,
            )
    for instant in instants:
        colour = FAULT_COLOURS.get(instant.kind, FAULT_COLOURS["other"])
        label = instant.kind if instant.kind not in seen else None
        seen.add(instant.kind)
        axes.axvline(instant.time / NANOS, color=colour, alpha=0.6, lw=1, ls="--", label=label)


def _legend_above(axes: Any, **options: Any) -> None:
    """The legend over the plot, outside it: the fault strips along the top stay readable."""
    axes.legend(
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        fontsize="small",
        ncols=8,
        frameon=False,
        borderaxespad=0.2,
        **options,
    )


def _rectangle(
    xy: tuple[float, float], width: float, height: float, colour: str, transform: Any
) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle(
        xy, width, height, color=colour, alpha=0.45, lw=0, transform=transform, zorder=5
    )


def _end_seconds(ops: Sequence[Op]) -> float:
    return max((op.time for op in ops), default=0) / NANOS


def plot_latency(completed: Sequence[CompletedOp], periods, instants, end: float) -> str | None:
    """Latency of every operation against its invocation time, log scale (Jepsen's latency-raw)."""
    if not completed:
        return None
    figure = _figure(12, 4.5)
    axes = figure.add_subplot()
    _shade(axes, periods, instants)
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    functions = sorted({item.f for item in completed})
    for position, f in enumerate(functions):
        for kind in ("ok", "fail", "info"):
            chosen = [item for item in completed if item.f == f and item.type == kind]
            if not chosen:
                continue
            axes.scatter(
                [item.start / NANOS for item in chosen],
                [max((item.end - item.start) / 1e6, 0.01) for item in chosen],
                s=6,
                marker=markers[position % len(markers)],
                color=TYPE_COLOURS[kind],
                alpha=0.6,
                label=f"{f} {kind}",
                linewidths=0,
            )
    axes.set_yscale("log")
    # Plain numbers rather than mathtext powers of ten: mathtext costs a second to load.
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_xlim(0, max(end, 0.001))
    axes.set_xlabel("time (s)")
    axes.set_ylabel("latency (ms)")
    _legend_above(axes, markerscale=2)
    return _png(figure)


def plot_rate(completed: Sequence[CompletedOp], periods, instants, end: float) -> str | None:
    """Completions per second, per function and outcome (Jepsen's rate graph)."""
    if not completed:
        return None
    bucket = max(end / 120.0, 0.25)  # at most ~120 points; no bucket shorter than 250 ms
    buckets = int(end / bucket) + 1
    figure = _figure(12, 4)
    axes = figure.add_subplot()
    _shade(axes, periods, instants)
    # Colour says the outcome (ok green, fail red, info orange, as on every plot); the
    # line style says the function.
    line_styles = ["-", "--", ":", "-."]
    xs = [(position + 0.5) * bucket for position in range(buckets)]
    for position, f in enumerate(sorted({item.f for item in completed})):
        for kind in ("ok", "fail", "info"):
            counts = [0] * buckets
            for item in completed:
                if item.f == f and item.type == kind:
                    counts[min(int(item.end / NANOS / bucket), buckets - 1)] += 1
            if any(counts):
                axes.plot(
                    xs,
                    [count / bucket for count in counts],
                    line_styles[position % len(line_styles)],
                    color=TYPE_COLOURS[kind],
                    label=f"{f} {kind}",
                    lw=1.2,
                )
    axes.set_xlim(0, max(end, 0.001))
    axes.set_xlabel("time (s)")
    axes.set_ylabel(f"ops/s ({bucket:.2f} s buckets)")
    _legend_above(axes)
    return _png(figure)


def plot_nodes(events: Sequence[NodeEvent], periods, instants, end: float) -> str | None:
    """Per node: its role over time (coloured bars) and its term (a step line)."""
    if not events:
        return None
    nodes = sorted({event.node for event in events})
    end = max(end, max(event.time for event in events) / NANOS)
    figure = _figure(12, 2.0 + 0.5 * len(nodes) + 2.5)
    roles_axes, terms_axes = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [max(len(nodes), 2), 3]}
    )
    _shade(roles_axes, periods, instants)
    _shade(terms_axes, periods, instants)
    labelled: set[str] = set()
    for row, node in enumerate(nodes):
        own = [event for event in events if event.node == node]
        times: list[float] = []
        terms: list[int] = []
        for position, event in enumerate(own):
            stop = own[position + 1].time / NANOS if position + 1 < len(own) else end
            role = event.role or "unknown"
            colour = ROLE_COLOURS.get(role, "#e0e0e0")
            roles_axes.broken_barh(
                [(event.time / NANOS, max(stop - event.time / NANOS, 1e-4))],
                (row - 0.35, 0.7),
                color=colour,
                label=role if role not in labelled else None,
            )
            labelled.add(role)
            if event.term is not None:
                times.append(event.time / NANOS)
                terms.append(int(event.term))
        if times:
            times.append(end)
            terms.append(terms[-1])
            terms_axes.step(times, terms, where="post", label=node, lw=1.2)
    roles_axes.set_yticks(range(len(nodes)), nodes)
    _legend_above(roles_axes)
    from matplotlib.ticker import MaxNLocator

    terms_axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    terms_axes.set_ylabel("term")
    terms_axes.set_xlabel("time (s)")
    terms_axes.set_xlim(0, max(end, 0.001))
    if terms_axes.get_legend_handles_labels()[0]:  # no node logged a term: no legend
        terms_axes.legend(loc="lower right", fontsize="small", ncols=8)
    return _png(figure)


# --- HTML --------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #212121; }
h1 { margin-bottom: 0.2em; }
.verdict { color: white; padding: 0.15em 0.6em; border-radius: 6px; font-size: 0.8em; font-weight: bold; vertical-align: middle; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #2e7d32; } .fail { color: #c62828; } .info { color: #ef6c00; }
pre { background: #fafafa; border: 1px solid #eee; padding: 0.6em; overflow-x: auto; max-height: 40em; }
img { max-width: 100%; }
nav a { margin-right: 1em; }
.muted { color: #757575; }
.elle-cycle { display: flex; gap: 1em; align-items: center; border-top: 1px solid #ddd; padding: 0.4em 0; }
.elle-cycle svg { flex: none; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _verdict_text(valid: Any) -> str:
    valid = normalize_valid(valid)
    return {True: "VALID", False: "INVALID"}.get(valid, "UNKNOWN")  # type: ignore[arg-type]


def _verdict_colour(valid: Any) -> str:
    return VERDICT_COLOURS[normalize_valid(valid)]


def _image(png: str | None, alt: str) -> str:
    if png is None:
        return f'<p class="muted">no data for {_e(alt)}</p>'
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{png}">'


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()
) -> str:
    parts = ["<table><thead><tr>"]
    parts.extend(f"<th>{_e(header)}</th>" for header in headers)
    parts.append("</tr></thead><tbody>")
    for row in rows:
        parts.append("<tr>")
        for position, cell in enumerate(row):
            css = ' class="num"' if position in numeric else ""
            parts.append(f"<td{css}>{_e(cell)}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _explanation(name: str, result: Mapping[str, Any], ops: Sequence[Op]) -> str:
    """The checker's own HTML account of a violation (linearizability), or its result as JSON."""
    raw = f"<pre>{_e(to_json(result)[:MAX_EXPLANATION_CHARS])}</pre>"
    if "linear" not in name:
        return f"<h3>{_e(name)}</h3>{raw}"
    try:
        from checker.explain import render_fragment

        fragment = render_fragment(result, ops, heading=f"{name}: why")
    except Exception as error:  # noqa: BLE001 - the page must survive an explainer bug
        fragment = f'<p class="fail">the explanation could not be drawn: {_e(error)}</p>{raw}'
    return fragment


MAX_ELLE_CASES = 3  # cycles drawn per anomaly kind (the rest are in results.json)


def _elle_results(results: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(checker name, result) of every Elle-style checker result that found anomalies."""
    from checker.summary import checker_results

    return [
        (name, result)
        for name, result in checker_results(results).items()
        if isinstance(result.get("anomalies"), Mapping) and result.get("anomaly-types")
    ]


def elle_anomalies_html(results: Mapping[str, Any]) -> str:
    """Each Elle anomaly named, with its cycle drawn (checker.elle.page.cycle_svg) and
    every edge in words; anomalies without a cycle (G1a, G1b, incompatible order, ...)
    in words only. Empty when no checker found any."""
    found = _elle_results(results)
    if not found:
        return ""
    from checker.elle.page import cycle_svg

    parts = ['<section id="elle">']
    for name, result in found:
        ruled_out = [*(result.get("not") or []), *(result.get("also-not") or [])]
        parts.append(
            f"<h2>Transactional anomalies <span class=\"muted\">[{_e(name)}, checked as "
            f"{_e(result.get('consistency-model', '?'))}]</span></h2>"
        )
        if ruled_out:
            possible = ", ".join(result.get("possible") or []) or "none of the models checked"
            parts.append(
                f"<p>Ruled out: <b>{_e(', '.join(ruled_out))}</b>. Still possible: "
                f"{_e(possible)}.</p>"
            )
        counts = result.get("anomaly-counts") or {}
        for kind in result["anomaly-types"]:
            cases = result["anomalies"].get(kind) or []
            if not isinstance(cases, list):
                continue
            parts.append(f'<h3 class="elle-kind">{_e(kind)} ({_e(counts.get(kind, len(cases)))})</h3>')
            for case in cases[:MAX_ELLE_CASES]:
                if not isinstance(case, Mapping):
                    continue
                steps = [step for step in case.get("steps") or [] if isinstance(step, Mapping)]
                if steps and all("from" in step for step in steps):
                    cycle = " → ".join(str(t) for t in case.get("cycle") or [])
                    sentences = "".join(f"<li>{_e(step.get('text', step))}</li>" for step in steps)
                    parts.append(
                        f'<div class="elle-cycle">{cycle_svg([dict(step) for step in steps])}'
                        f"<div><p><b>{_e(kind)}</b>: <code>{_e(cycle)}</code></p>"
                        f"<ol>{sentences}</ol></div></div>"
                    )
                else:
                    parts.append(f"<p>{_e(case.get('text') or _short(case, 300))}</p>")
            if len(cases) > MAX_ELLE_CASES:
                parts.append(
                    f'<p class="muted">{len(cases) - MAX_ELLE_CASES} more {_e(kind)} in '
                    "results.json</p>"
                )
    parts.append("</section>")
    return "".join(parts)


def _checker_summary(result: Mapping[str, Any]) -> str:
    if "error" in result and normalize_valid(result.get("valid")) == "unknown":
        return f"error: {_short(result['error'], 200)}"
    skip = {
        "valid",
        "checker",
        "seconds",
        "traceback",
        "explanation",
        "configs",
        "final-paths",
        "previous-ok",
        "op",
    }
    interesting = {
        key: value
        for key, value in result.items()
        if key not in skip and not isinstance(value, (dict, list)) or key in ("lost", "unexpected")
    }
    return _short(interesting, 240) if interesting else ""


def render_report(data: RunData, *, run_dir: Path | None = None) -> str:
    """The whole page as one string."""
    campaign = data.config
    config = campaign.get("config", campaign) if isinstance(campaign, dict) else {}
    results = data.results or {"valid": "unknown", "checkers": {}}
    valid = normalize_valid(results.get("valid"))
    ops = data.ops
    name = config.get("name", "raftlab")
    end = _end_seconds(ops)
    periods, instants = nemesis_periods(ops)
    completed = pair_client_ops(ops)
    events = node_events_for_report(data)
    # One time span for every plot: the history's, stretched to the last node event.
    end = max([end] + [event.time / NANOS for event in events])
    checkers: Mapping[str, Mapping[str, Any]] = results.get("checkers", {}) or {}

    from campaign.counterexample import TIMELINE_CSS, counterexample_html, timeline_html

    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>raftlab {_e(name)}: {_verdict_text(valid)}</title>",
        f"<style>{_STYLE}{TIMELINE_CSS}</style></head><body>",
        f'<h1>raftlab run <code>{_e(name)}</code> <span class="verdict" '
        f'style="background:{_verdict_colour(valid)}">{_verdict_text(valid)}</span></h1>',
        f'<p class="muted">{_e(config.get("workload", "?"))} under '
        f"{_e(config.get('nemesis', '?'))}, started {_e(campaign.get('started', '?'))}, "
        f"seed {_e(campaign.get('seed', config.get('seed', '?')))}</p>",
    ]
    # The anomaly in words and its counterexample come first: what a reader opens the page for.
    if valid is not True:
        try:
            out.append(counterexample_html(results, ops))
        except Exception as error:  # noqa: BLE001 - the page must survive a drawing bug
            out.append(f'<p class="fail">the counterexample could not be drawn: {_e(error)}</p>')
        try:  # Elle's anomalies: each cycle drawn, its edges in words
            out.append(elle_anomalies_html(results))
        except Exception as error:  # noqa: BLE001 - the page must survive a drawing bug
            out.append(f'<p class="fail">the anomalies could not be drawn: {_e(error)}</p>')
    if campaign.get("replay"):
        out.append(f"<p>Replay this run exactly: <code>{_e(campaign['replay'])}</code></p>")
    out.append(
        '<nav><a href="#timeline">timeline</a><a href="#checkers">checkers</a><a href="#counts">counts</a>'
        '<a href="#latency">latency</a><a href="#rate">rate</a><a href="#nodes">nodes</a>'
        '<a href="#nemesis">nemesis</a><a href="#config">configuration</a><a href="#files">files</a></nav>'
    )

    summary_keys = (
        "workload",
        "nemesis",
        "nemesis_interval",
        "nodes",
        "time_limit",
        "concurrency",
        "rate",
        "unsafe_local_reads",
    )
    summary_rows = [(key, _short(config[key])) for key in summary_keys if key in config]
    summary_rows.append(
        ("operations", sum(1 for op in ops if op.process != NEMESIS and op.type == "invoke"))
    )
    summary_rows.append(("duration (s)", f"{end:.1f}"))
    out.append('<h2 id="timeline">Timeline</h2>')
    out.append(timeline_html(results, ops) if completed else '<p class="muted">no operations</p>')
    out.append(_table(["", ""], summary_rows))

    out.append('<h2 id="checkers">Checkers</h2>')
    checker_rows = [
        (checker_name, _verdict_text(result.get("valid")), _checker_summary(result))
        for checker_name, result in checkers.items()
    ]
    out.append(
        _table(["checker", "verdict", "details"], checker_rows)
        if checker_rows
        else "<p>no checker ran</p>"
    )
    invalid = [
        (checker_name, result)
        for checker_name, result in checkers.items()
        if normalize_valid(result.get("valid")) is not True
    ]
    if invalid:
        out.append("<h2>Why</h2>")
        for checker_name, result in invalid:
            out.append(_explanation(checker_name, result, ops))

    out.append('<h2 id="counts">Operations</h2>')
    counts = count_completions(ops)
    count_rows = [
        (f, row.get("ok", 0), row.get("fail", 0), row.get("info", 0), sum(row.values()))
        for f, row in counts.items()
    ]
    if count_rows:
        totals = [sum(row[position] for row in count_rows) for position in range(1, 5)]
        count_rows.append(("all", *totals))
    out.append(_table(["f", "ok", "fail", "info", "total"], count_rows, numeric=(1, 2, 3, 4)))

    out.append('<h2 id="latency">Latency</h2>')
    out.append(_image(plot_latency(completed, periods, instants, end), "latency"))
    out.append('<h2 id="rate">Rate</h2>')
    out.append(_image(plot_rate(completed, periods, instants, end), "rate"))

    out.append('<h2 id="nodes">Nodes: roles and terms</h2>')
    out.append(_image(plot_nodes(events, periods, instants, end), "node roles"))
    event_rows = [
        (
            f"{event.time / NANOS:.3f}",
            event.node,
            event.role or "",
            "" if event.term is None else event.term,
            event.leader or "",
            event.source,
        )
        for event in events[:MAX_TABLE_ROWS]
    ]
    if event_rows:
        out.append(f"<details><summary>{len(events)} role and term changes</summary>")
        out.append(_table(["time (s)", "node", "role", "term", "leader", "from"], event_rows))
        if len(events) > MAX_TABLE_ROWS:
            out.append(
                f'<p class="muted">{len(events) - MAX_TABLE_ROWS} more changes in {NODE_EVENTS_FILE} and the node logs</p>'
            )
        out.append("</details>")

    out.append('<h2 id="nemesis">Nemesis</h2>')
    nemesis_ops = [op for op in ops if op.process == NEMESIS]
    nemesis_rows = [
        (
            f"{op.time / NANOS:.3f}",
            op.type,
            op.f,
            _short(op.value, 160),
            "" if op.error is None else _short(op.error, 80),
        )
        for op in nemesis_ops[:MAX_TABLE_ROWS]
    ]
    out.append(
        _table(["time (s)", "type", "f", "value", "error"], nemesis_rows)
        if nemesis_rows
        else "<p>no faults</p>"
    )

    out.append('<h2 id="config">Configuration</h2>')
    out.append(f"<pre>{_e(to_json(campaign))}</pre>")

    out.append('<h2 id="files">Files</h2><ul>')
    names = [
        CAMPAIGN_FILE,
        RESULTS_FILE,
        HISTORY_JSONL,
        HISTORY_EDN,
        HISTORY_TXT,
        NEMESIS_FILE,
        NODE_EVENTS_FILE,
        JUNIT_FILE,
    ]
    names += [f"{NODES_DIR}/{node_id}.log" for node_id in sorted(data.node_logs)]
    for file_name in names:
        if run_dir is None or (Path(run_dir) / file_name).exists():
            out.append(f'<li><a href="{_e(file_name)}">{_e(file_name)}</a></li>')
    out.append("</ul>")
    out.append(
        f'<p class="muted">generated {_e(datetime.now(UTC).isoformat(timespec="seconds"))} by raftlab</p>'
    )
    out.append("</body></html>")
    return "\n".join(out)


def write_report(path: Path, data: RunData, *, run_dir: Path | None = None) -> None:
    Path(path).write_text(render_report(data, run_dir=run_dir), encoding="utf-8")
