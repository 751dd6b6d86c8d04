"""The top of an invalid report: the anomaly in words and its counterexample, on screen.

`counterexample_html` draws, server-side as inline SVG (readable with scripts off), one lane
per process *involved* — the culprit, the operations concurrent with it, and the writes and
reads the anomaly's sentence names — over the failing window only, with a time axis, the
faults active then as bands naming their nodes, a short label on each bar and the full
operation on hover. The culprit's bar has ``id="culprit"``; the whole history stays
reachable in the interactive timeline below it (`timeline_html`).

`timeline_html` is Jepsen's timeline.html and Porcupine's view in one canvas: every
operation of every process, zoom (wheel, buttons) and pan (drag), faults as labelled bands,
hover for an operation's details, and the checker's partial linearizations stepped one
operation at a time. Inline JavaScript and JSON: the page stays one file and needs no
network.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checker.op import NEMESIS, Op

NANOS = 1_000_000_000
TYPE_COLOURS = {"ok": "#2e7d32", "fail": "#c62828", "info": "#ef6c00"}
MAX_TIMELINE_OPS = 150_000  # beyond this, the canvas gets the ops nearest the failure
MAX_LANES = 24


@dataclass(slots=True)
class PairedOp:
    index: int  # the invocation's index
    process: Any
    f: str
    value: Any
    type: str  # ok, fail or info (info: no answer, or an invoke never completed)
    start: int  # ns
    end: int | None  # ns; None when it never completed
    error: Any = None
    node: Any = None


def pair_ops(ops: Sequence[Op]) -> list[PairedOp]:
    """Client invocations with their completions (by process, conventions §1)."""
    pending: dict[Any, PairedOp] = {}
    paired: list[PairedOp] = []
    for op in ops:
        if op.process == NEMESIS:
            continue
        if op.type == "invoke":
            item = PairedOp(
                op.index, op.process, op.f, op.value, "info", op.time, None, None, op.node
            )
            pending[op.process] = item
            paired.append(item)
            continue
        item = pending.pop(op.process, None)
        if item is None:
            continue
        item.type = op.type
        item.end = op.time
        item.error = op.error
        if op.type == "ok" and op.value is not None:
            item.value = op.value
        if op.node is not None:
            item.node = op.node
    return paired


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _j(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_label(op: PairedOp) -> str:
    """'R 738', 'W 772', 'cas 1→2', 'append 5', keyed values without their key."""
    value = op.value
    if isinstance(value, list | tuple) and len(value) == 2 and not isinstance(value[0], list):
        value = value[1]  # Jepsen's independent [key, value]
    if op.f == "read":
        return f"R {_j(value, 18)}"
    if op.f == "write":
        return f"W {_j(value, 18)}"
    if op.f == "cas" and isinstance(value, list | tuple) and len(value) == 2:
        return f"cas {_j(value[0], 8)}→{_j(value[1], 8)}"
    return f"{op.f} {_j(value, 16)}"


def full_label(op: PairedOp) -> str:
    span = f"{op.start / NANOS:.3f}–" + (f"{op.end / NANOS:.3f} s" if op.end is not None else "?")
    parts = [
        f"op {op.index}: process {op.process} {op.f} {_j(op.value, 400)} → {op.type}",
        span,
    ]
    if op.error:
        parts.append(f"error {op.error}")
    if op.node:
        parts.append(f"node {op.node}")
    return ", ".join(parts)


def fault_nodes(value: Any) -> str:
    """The nodes a fault hit, in a few characters: 'n3 | n1 n2' for a partition."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        grudges = value.get("grudges", value.get("grudge"))  # the sim's / the real nemesis's
        if isinstance(grudges, Mapping) and grudges:
            return _components(grudges)
        for key in ("nodes", "targets", "node", "target", "groups", "components"):
            if key in value:
                return fault_nodes(value[key])
        shown = [
            f"{k}={fault_nodes(v)}"
            for k, v in value.items()
            if k != "fault" and not isinstance(v, Mapping)
        ]
        return " ".join(shown)[:60]
    if isinstance(value, list | tuple):
        if value and all(isinstance(item, list | tuple) for item in value):
            return " | ".join(" ".join(str(node) for node in group) for group in value)
        return " ".join(str(item) for item in value)
    return str(value)


def _components(grudges: Mapping[str, Sequence[str]]) -> str:
    """Groups of nodes that can still talk both ways (a partition's sides)."""
    nodes = sorted({str(n) for n in grudges} | {str(n) for v in grudges.values() for n in v})

    def cut(a: str, b: str) -> bool:
        return b in (grudges.get(a) or ()) or a in (grudges.get(b) or ())

    groups: list[list[str]] = []
    for node in nodes:
        for group in groups:
            if all(not cut(node, other) for other in group):
                group.append(node)
                break
        else:
            groups.append([node])
    one_way = any(
        a in (grudges.get(b) or ()) and b not in (grudges.get(a) or ())
        for a in grudges
        for b in grudges
    )
    return " | ".join(" ".join(group) for group in groups) + (" (one way)" if one_way else "")


@dataclass(slots=True)
class FaultBand:
    kind: str
    start: int
    end: int
    nodes: str


def fault_bands(ops: Sequence[Op]) -> list[FaultBand]:
    """Fault periods from the nemesis ops, each with the nodes it hit."""
    closers = {"kill": "start", "pause": "resume"}
    bands: list[FaultBand] = []
    open_: dict[str, FaultBand] = {}
    last = max((op.time for op in ops), default=0)
    for op in ops:
        if op.process != NEMESIS:
            continue
        f = op.f
        opening = f[6:] if f.startswith("start-") else f if f in closers else None
        closing = (
            f[5:]
            if f.startswith("stop-")
            else next((k for k, v in closers.items() if v == f), None)
        )
        if opening is not None:
            band = open_.get(opening)
            if band is None:
                band = FaultBand(opening, op.time, last, fault_nodes(op.value))
                open_[opening] = band
                bands.append(band)
            elif op.type != "invoke" and op.value is not None:
                band.nodes = fault_nodes(op.value)  # the completion says what was done
        elif closing is not None and closing in open_:
            open_.pop(closing).end = op.time
        elif op.type != "invoke":
            bands.append(FaultBand(f, op.time, op.time, fault_nodes(op.value)))
    return bands


# --- the counterexample ---------------------------------------------------------------


def _involved(results: Mapping[str, Any], ops: Sequence[Op]) -> tuple[list[int], Any, list[Any]]:
    """(op indexes, culprit index, anomalies): the culprit first, then what the sentence
    names, then what ran concurrently with the culprit."""
    from checker.summary import _failures, checker_results, describe

    anomalies = describe(results, ops)
    indexes: list[int] = []
    culprit = None
    for anomaly in anomalies:
        result = checker_results(results).get(anomaly.checker, {})
        failures = _failures(result)
        if failures and isinstance(failures[0].get("op"), Mapping):
            failure = failures[0]
            culprit = failure["op"].get("index")
            indexes = [culprit, *anomaly.ops]
            indexes += [
                op.get("index") for op in failure.get("concurrent") or [] if isinstance(op, Mapping)
            ]
            break
        if anomaly.ops:
            culprit = anomaly.ops[0]
            indexes = list(anomaly.ops)
            break
    seen: list[int] = []
    for index in indexes:
        if isinstance(index, int) and index not in seen:
            seen.append(index)
    return seen, culprit, anomalies


def counterexample_html(results: Mapping[str, Any], ops: Sequence[Op]) -> str:
    """The anomaly's sentence and, when it names operations, their lanes (see the module)."""
    indexes, culprit, anomalies = _involved(results, ops)
    named = set(anomalies[0].ops[1:]) if anomalies else set()
    if not anomalies:
        return ""
    first_id = ' id="anomaly"'
    sentences = "".join(
        f"<li{first_id if n == 0 else ''}>{_e(a.text)} "
        f'<span class="muted">[{_e(a.checker)}]</span></li>'
        for n, a in enumerate(anomalies[:4])
    )
    parts = [f'<section id="counterexample"><ul class="anomalies">{sentences}</ul>']
    paired = {op.index: op for op in pair_ops(ops)}
    involved = [paired[i] for i in indexes if i in paired]
    if involved:
        parts.append(_lanes_svg(involved, culprit, paired, fault_bands(ops), named))
        parts.append(
            '<p class="muted">Only the processes involved, over the failing window; hover a bar '
            'for the whole operation. <a href="#timeline">The whole history</a> is below '
            "(zoom, pan, and the checker's partial linearizations step by step).</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _lanes_svg(
    involved: list[PairedOp],
    culprit: Any,
    paired: Mapping[int, PairedOp],
    bands: list[FaultBand],
    named: set[int],
) -> str:
    processes: list[Any] = []
    for op in involved:
        if op.process not in processes:
            processes.append(op.process)
    processes = processes[:MAX_LANES]
    starts = [op.start for op in involved]
    ends = [op.end for op in involved if op.end is not None]
    culprit_op = paired.get(culprit) if culprit is not None else None
    t0 = min(starts)
    t1 = max(ends + starts)
    if culprit_op is not None:  # the window ends shortly after the culprit
        t1 = max(culprit_op.end or culprit_op.start, max(starts))
    span = max(t1 - t0, 1_000_000)
    t0 -= span // 20
    t1 += span // 20
    span = t1 - t0
    width, left, right = 1100, 70, 20
    lane_h = 24 if len(processes) <= 14 else 18
    band_rows = 1 if bands else 0
    top = 26 + band_rows * 16
    height = top + lane_h * len(processes) + 8

    def x(t: float) -> float:
        return left + (min(max(t, t0), t1) - t0) / span * (width - left - right)

    out = [
        f'<svg id="counterexample-lanes" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="the failing window" font-family="system-ui,sans-serif">'
    ]
    # time axis
    step = _nice_step(span / NANOS / 8)
    first_tick = math.ceil(t0 / NANOS / step) * step
    tick = first_tick
    while tick * NANOS <= t1:
        px = x(tick * NANOS)
        out.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="18" y2="{height - 4}" stroke="#e0e0e0"/>'
            f'<text x="{px:.1f}" y="13" font-size="11" text-anchor="middle" fill="#616161">'
            f"{tick:.{_decimals(step)}f} s</text>"
        )
        tick += step
    # faults active in the window: one row of bands naming their nodes
    for band in bands:
        if band.end < t0 or band.start > t1:
            continue
        bx, bw = x(band.start), max(x(band.end) - x(band.start), 3)
        colour = "#1e88e5" if "partition" in band.kind else "#8e24aa"
        label = f"{band.kind} {band.nodes}".strip()
        out.append(
            f"<g><title>{_e(label)}: {band.start / NANOS:.3f}–{band.end / NANOS:.3f} s</title>"
            f'<rect x="{bx:.1f}" y="20" width="{bw:.1f}" height="{height - 24}" '
            f'fill="{colour}" fill-opacity="0.07"/>'
            f'<rect x="{bx:.1f}" y="20" width="{bw:.1f}" height="14" fill="{colour}" '
            f'fill-opacity="0.25"/><text x="{bx + 3:.1f}" y="31" font-size="10" fill="#0d47a1">'
            f"{_e(label[: max(int(bw / 6), 0)])}</text></g>"
        )
    involved_set = {op.index for op in involved}
    lanes = {process: row for row, process in enumerate(processes)}
    context = [
        op
        for op in paired.values()
        if op.process in lanes
        and op.start <= t1
        and (op.end is None or op.end >= t0)
        and op.index not in involved_set
    ]
    for op in [*context, *involved]:
        if op.process not in lanes:
            continue
        y = top + lanes[op.process] * lane_h + 3
        bx = x(op.start)
        bw = max(x(op.end if op.end is not None else t1) - bx, 4)
        colour = TYPE_COLOURS.get(op.type, "#757575")
        is_culprit = op.index == culprit
        faded = op.index not in involved_set
        attributes = ' id="culprit"' if is_culprit else ""
        stroke = (
            ' stroke="#b71c1c" stroke-width="3"'
            if is_culprit
            else ' stroke="#0d47a1" stroke-width="2"'  # the ops the anomaly's sentence names
            if op.index in named
            else ""
        )
        dash = ' stroke-dasharray="4 3" stroke="#ef6c00"' if op.end is None else ""
        opacity = 0.3 if faded else (0.5 if op.type == "fail" else 0.9)
        label = short_label(op)
        out.append(
            f'<g class="op" data-index="{op.index}"><title>{_e(full_label(op))}'
            f"{' — the culprit' if is_culprit else ''}</title>"
            f'<rect{attributes} x="{bx:.1f}" y="{y}" width="{bw:.1f}" height="{lane_h - 6}" rx="3" '
            f'fill="{colour}" fill-opacity="{opacity}"{stroke}{dash}/>'
        )
        if is_culprit:  # named in full beside its bar, whatever its width
            after = bx + bw + 4 + 7 * (len(label) + 2) < width
            out.append(
                f'<text x="{bx + bw + 4 if after else bx - 4:.1f}" y="{y + lane_h - 11}" '
                f'font-size="12" font-weight="bold" fill="#b71c1c" '
                f'text-anchor="{"start" if after else "end"}">✗ {_e(label)}</text>'
            )
        if bw > 28:
            shown = label[: int(bw / 6.5)]
            out.append(
                f'<text x="{bx + 4:.1f}" y="{y + lane_h - 11}" font-size="11" fill="#fff" '
                f'pointer-events="none">{_e(shown)}</text>'
            )
        out.append("</g>")
    for process, row in lanes.items():
        y = top + row * lane_h + lane_h - 9
        out.append(
            f'<text x="4" y="{y}" font-size="11" fill="#424242">process {_e(process)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step))) if step < 1 else 0


# --- the interactive timeline --------------------------------------------------------------


def _linearizations(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The checker's partial linearizations of the first failure, as steps to replay."""
    from checker.summary import _failures, checker_results

    for result in checker_results(results).values():
        failures = _failures(result)
        if not failures:
            continue
        out = []
        for partial in failures[0].get("partial_linearizations") or []:
            if not isinstance(partial, Mapping):
                continue
            steps = [
                {"index": step["op"].get("index"), "state": _j(step.get("state"), 80)}
                for step in partial.get("steps") or []
                if isinstance(step, Mapping) and isinstance(step.get("op"), Mapping)
            ]
            out.append(
                {
                    "ops": [i for i in partial.get("ops") or [] if isinstance(i, int)],
                    "steps": steps,
                    "state": _j(partial.get("state"), 80),
                }
            )
        return out[:12]
    return []


def timeline_data(results: Mapping[str, Any], ops: Sequence[Op]) -> dict[str, Any]:
    paired = pair_ops(ops)
    indexes, culprit, _ = _involved(results, ops) if results else ([], None, [])
    if len(paired) > MAX_TIMELINE_OPS:
        centre = next((op.start for op in paired if op.index == culprit), paired[0].start)
        paired = sorted(paired, key=lambda op: abs(op.start - centre))[:MAX_TIMELINE_OPS]
        paired.sort(key=lambda op: op.start)
    processes = sorted({op.process for op in paired}, key=lambda p: (str(type(p)), p))
    lane = {process: row for row, process in enumerate(processes)}
    end = max((op.time for op in ops), default=0)
    return {
        "lanes": [str(p) for p in processes],
        "ops": [
            [
                op.index,
                lane[op.process],
                "ofi".index(op.type[0]) if op.type in ("ok", "fail", "info") else 2,
                round(op.start / 1e6, 3),
                round(op.end / 1e6, 3) if op.end is not None else -1,
                short_label(op),
                full_label(op),
            ]
            for op in paired
        ],
        "bands": [
            [b.kind, round(b.start / 1e6, 3), round(b.end / 1e6, 3), b.nodes]
            for b in fault_bands(ops)
        ],
        "end": round(end / 1e6, 3),
        "culprit": culprit,
        "involved": indexes,
        "linearizations": _linearizations(results) if results else [],
    }


def timeline_html(results: Mapping[str, Any], ops: Sequence[Op]) -> str:
    data = timeline_data(results, ops)
    # No "<" at all inside the script element: nothing in the data can close or confuse it.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    stepper = (
        '<div id="tl-stepper"><b>Partial linearizations</b> '
        '<select id="tl-path"></select> <button id="tl-prev">◀ step</button> '
        '<button id="tl-next">step ▶</button> <span id="tl-step"></span></div>'
        if data["linearizations"]
        else ""
    )
    return (
        '<div id="tl-controls"><button id="tl-zoom-in">zoom in</button> '
        '<button id="tl-zoom-out">zoom out</button> <button id="tl-all">whole history</button> '
        + ('<button id="tl-failure">the failure</button> ' if data["culprit"] is not None else "")
        + '<span class="muted">wheel zooms, drag pans, hover for details</span></div>'
        + stepper
        + '<div id="tl-wrap"><canvas id="tl-canvas" height="420"></canvas>'
        '<div id="tl-tip" hidden></div></div>'
        f'<script type="application/json" id="tl-data">{payload}</script>'
        f"<script>{_TIMELINE_JS}</script>"
    )


TIMELINE_CSS = """
#tl-wrap { position: relative; border: 1px solid #ddd; max-height: 520px; overflow-y: auto; }
#tl-canvas { width: 100%; display: block; cursor: grab; }
#tl-tip { position: absolute; background: #fff; border: 1px solid #999; padding: .3em .5em;
  font-size: .85em; pointer-events: none; max-width: 36em; box-shadow: 0 1px 4px #0003; }
#tl-controls, #tl-stepper { margin: .4em 0; }
#counterexample .anomalies { font-size: 1.05em; margin: .5em 0; padding-left: 1.2em; }
#counterexample .anomalies li:first-child { font-weight: 600; }
#counterexample svg { border: 1px solid #eee; background: #fff; }
"""

_TIMELINE_JS = r"""
(() => {
  const D = JSON.parse(document.getElementById('tl-data').textContent);
  const cv = document.getElementById('tl-canvas'), tip = document.getElementById('tl-tip');
  const ctx = cv.getContext('2d');
  const COL = ['#2e7d32', '#c62828', '#ef6c00'];
  const LEFT = 64, TOP = 34;
  // Lanes stay legible (12-18 px); a long list of processes scrolls inside its frame.
  const laneH = Math.max(12, Math.min(18, 360 / Math.max(1, D.lanes.length)));
  cv.height = TOP + laneH * D.lanes.length + 8;
  let t0 = 0, t1 = Math.max(D.end, 1), hl = null, hover = null;
  const byIndex = new Map(D.ops.map(o => [o[0], o]));
  const involved = new Set(D.involved);
  const end = o => o[4] < 0 ? D.end : o[4];
  function size() { cv.width = cv.clientWidth * (window.devicePixelRatio || 1); }
  function X(t) { return LEFT + (t - t0) / (t1 - t0) * (cv.clientWidth - LEFT - 8); }
  function T(px) { return t0 + (px - LEFT) / (cv.clientWidth - LEFT - 8) * (t1 - t0); }
  function draw() {
    const s = window.devicePixelRatio || 1; ctx.setTransform(s, 0, 0, s, 0, 0);
    ctx.clearRect(0, 0, cv.clientWidth, cv.height); ctx.font = '10px system-ui,sans-serif';
    const step = nice((t1 - t0) / 10);
    ctx.fillStyle = '#616161'; ctx.strokeStyle = '#eee';
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const x = X(t); ctx.beginPath(); ctx.moveTo(x, 12); ctx.lineTo(x, cv.height); ctx.stroke();
    }
    D.bands.forEach(b => {
      const x0 = X(b[1]), x1 = Math.max(X(b[2]), x0 + 2);
      if (x1 < LEFT || x0 > cv.clientWidth) return;
      ctx.fillStyle = b[0].includes('partition') ? '#1e88e522' : '#8e24aa22';
      ctx.fillRect(x0, TOP, x1 - x0, cv.height - TOP);
    });
    ctx.fillStyle = '#424242';
    D.lanes.forEach((p, i) => { if (laneH >= 9) ctx.fillText(p, 2, TOP + i * laneH + laneH - 3); });
    for (const o of D.ops) {
      const x0 = X(o[3]), x1 = Math.max(X(end(o)), x0 + 1.5);
      if (x1 < LEFT || x0 > cv.clientWidth) continue;
      const y = TOP + o[1] * laneH + 1, h = laneH - 2;
      ctx.globalAlpha = o[2] === 1 ? 0.45 : (involved.size && !involved.has(o[0]) ? 0.55 : 0.9);
      ctx.fillStyle = COL[o[2]]; ctx.fillRect(Math.max(x0, LEFT), y, x1 - Math.max(x0, LEFT), h);
      ctx.globalAlpha = 1;
      if (x1 - x0 > 30 && h >= 9) { ctx.fillStyle = '#fff'; ctx.fillText(clip(o[5], x1 - x0 - 4), x0 + 2, y + h - 2); }
      if (o[0] === D.culprit || o[0] === hl) {
        ctx.strokeStyle = o[0] === D.culprit ? '#b71c1c' : '#1565c0'; ctx.lineWidth = 2.5;
        ctx.strokeRect(x0 - 1, y - 1, x1 - x0 + 2, h + 2); ctx.lineWidth = 1; ctx.strokeStyle = '#eee';
      }
    }
    // The axis and the fault strips stay at the top of the frame as the lanes scroll.
    const oy = cv.parentElement.scrollTop;
    ctx.fillStyle = '#fff'; ctx.fillRect(0, oy, cv.clientWidth, TOP - 2);
    ctx.fillStyle = '#616161';
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      ctx.fillText((t / 1000).toFixed(step < 1000 ? 3 : 1) + ' s', X(t) + 2, oy + 10);
    }
    D.bands.forEach((b, i) => {
      const x0 = X(b[1]), x1 = Math.max(X(b[2]), x0 + 2);
      if (x1 < LEFT || x0 > cv.clientWidth) return;
      ctx.fillStyle = b[0].includes('partition') ? '#1e88e566' : '#8e24aa66';
      const row = oy + 14 + (i % 2) * 9; ctx.fillRect(x0, row, x1 - x0, 8);
      ctx.fillStyle = '#0d47a1'; ctx.fillText(clip(b[0] + ' ' + b[3], x1 - x0), x0 + 2, row + 7);
    });
  }
  function clip(s, w) { const n = Math.floor(w / 5.5); return s.length <= n ? s : s.slice(0, Math.max(0, n - 1)) + '…'; }
  function nice(r) { const m = Math.pow(10, Math.floor(Math.log10(r || 1))); for (const f of [1, 2, 5, 10]) if (r <= f * m) return f * m; return 10 * m; }
  function zoom(f, at) { const c = at ?? (t0 + t1) / 2; t0 = c - (c - t0) * f; t1 = c + (t1 - c) * f; draw(); }
  function show(index, pad) {
    const o = byIndex.get(index); if (!o) return; hl = index;
    const w = Math.max(end(o) - o[3], 1) * (pad || 8); t0 = o[3] - w; t1 = end(o) + w; draw();
    const wrap = cv.parentElement, y = TOP + o[1] * laneH;
    if (y < wrap.scrollTop + TOP || y > wrap.scrollTop + wrap.clientHeight - laneH) wrap.scrollTop = Math.max(0, y - wrap.clientHeight / 2);
  }
  cv.addEventListener('wheel', e => { e.preventDefault(); const r = cv.getBoundingClientRect(); zoom(e.deltaY > 0 ? 1.25 : 0.8, T(e.clientX - r.left)); }, {passive: false});
  let drag = null;
  cv.addEventListener('mousedown', e => { drag = {x: e.clientX, t0, t1}; cv.style.cursor = 'grabbing'; });
  window.addEventListener('mouseup', () => { drag = null; cv.style.cursor = 'grab'; });
  cv.addEventListener('mousemove', e => {
    const r = cv.getBoundingClientRect(), px = e.clientX - r.left, py = e.clientY - r.top;
    if (drag) { const dt = (drag.x - e.clientX) / (cv.clientWidth - LEFT - 8) * (drag.t1 - drag.t0); t0 = drag.t0 + dt; t1 = drag.t1 + dt; draw(); return; }
    const lane = Math.floor((py - TOP) / laneH), t = T(px);
    hover = py - cv.parentElement.scrollTop < TOP
      ? D.bands.find(b => b[1] <= t && b[2] >= t)
      : D.ops.find(o => o[1] === lane && o[3] <= t && end(o) >= t);
    if (!hover) { tip.hidden = true; return; }
    tip.textContent = typeof hover[0] === 'number' ? hover[6] : hover[0] + ' ' + hover[3] + ': ' + (hover[1] / 1000).toFixed(3) + '–' + (hover[2] / 1000).toFixed(3) + ' s';
    tip.hidden = false; tip.style.left = Math.min(px + 12, cv.clientWidth - 300) + 'px'; tip.style.top = (py + 14) + 'px';
  });
  cv.addEventListener('mouseleave', () => { tip.hidden = true; });
  const on = (id, f) => { const b = document.getElementById(id); if (b) b.addEventListener('click', f); };
  on('tl-zoom-in', () => zoom(0.5)); on('tl-zoom-out', () => zoom(2));
  on('tl-all', () => { t0 = 0; t1 = Math.max(D.end, 1); hl = null; draw(); });
  on('tl-failure', () => show(D.culprit, 6));
  const sel = document.getElementById('tl-path');
  let step = -1;
  function stepTo(n) {
    const path = D.linearizations[+sel.value]; if (!path || !path.steps.length) return;
    step = Math.max(0, Math.min(n, path.steps.length - 1)); const s = path.steps[step];
    const skipped = path.ops.length - path.steps.length;
    document.getElementById('tl-step').textContent = 'op ' + s.index + ' (step ' + (skipped + step + 1) + ' of ' + path.ops.length + ') → state ' + s.state;
    show(s.index, 4);
  }
  if (sel) {
    D.linearizations.forEach((p, i) => { const o = document.createElement('option'); o.value = i; o.textContent = 'path ' + (i + 1) + ': ' + p.ops.length + ' ops, ends in ' + p.state; sel.appendChild(o); });
    sel.addEventListener('change', () => stepTo(0)); on('tl-prev', () => stepTo(step - 1)); on('tl-next', () => stepTo(step + 1));
  }
  window.addEventListener('resize', () => { size(); draw(); });
  cv.parentElement.addEventListener('scroll', draw);
  size(); if (D.culprit !== null && byIndex.has(D.culprit)) show(D.culprit, 6); else draw();
})();
"""
