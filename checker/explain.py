"""One self-contained HTML page that shows why a history is (or is not) linearizable.

In the spirit of Knossos' ``linear.svg`` and Porcupine's visualizer, but a single file with
inline CSS and SVG (no script, no network), so it opens from a CI artifact or a mail:

- the verdict, the model, and for an ``unknown`` result why the search stopped;
- for a violation: the operation that cannot be linearized, the key (component) it
  belongs to, a lane per process with each operation as a bar from its invoke to its
  completion (``info`` bars run open-ended), the failing window shaded and the culprit
  outlined; the longest linearizable prefixes the search found (the partial
  linearizations) with the model state after each step; and the states the model could
  be in when the culprit had to take effect.

The page opens on the violation: the culprit in words, then the lanes (drawn within
``MAX_LANES_WIDTH``, so the failing window is on screen without scrolling), then the
search's figures and the lists. In :func:`render_html` the culprit's bar has
``id="culprit"`` (``explanation.html#culprit``).

:func:`render_html` gives the whole page; :func:`render_fragment` the same content as a
``<section>`` (with its own scoped style) for the campaign's report. Both accept the
result straight from :func:`checker.linearizable.check` or read back from
``results.json`` (plain JSON), and never raise on an unexpected shape: what cannot be
drawn is shown as JSON.
"""

from __future__ import annotations

import bisect
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checker.history import HistoryError, Op, pair_operations, to_jsonable

TYPE_COLOURS = {"ok": "#2e7d32", "fail": "#c62828", "info": "#ef6c00", "invoke": "#757575"}
VERDICT_COLOURS = {"valid": "#2e7d32", "invalid": "#c62828", "unknown": "#ef6c00"}
MAX_LANE_OPS = 120  # bars drawn around the failing window; more would not be readable
# The lanes' drawing fits this width, so a 1280 px window (less the page's margins) shows
# the failing window and the culprit without scrolling sideways: context earlier and later
# than the window is drawn only as far as it fits (the whole history is in report.html).
MAX_LANES_WIDTH = 1180
LANE_LEFT, LANE_RIGHT_MARGIN, MIN_SLOT_WIDTH = 70, 120, 14.0
MAX_AFTER_WINDOW = 10  # bars kept after the failing window, when room is short
MAX_PATHS = 12  # partial linearizations listed
MAX_PATH_STEPS = 40  # steps shown of each (the last ones: those next to the failure)
MAX_STATES = 50
MAX_RAW_CHARS = 200_000

_STYLE = """
.rl-explain{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#212121}
.rl-explain h2{font-size:1.25em;margin:.8em 0 .4em}
.rl-explain h3{font-size:1.05em;margin:.9em 0 .3em}
.rl-explain .verdict{display:inline-block;padding:.2em .7em;border-radius:4px;color:#fff;font-weight:600}
.rl-explain table{border-collapse:collapse;margin:.3em 0}
.rl-explain td,.rl-explain th{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}
.rl-explain th{background:#f5f5f5}
.rl-explain code,.rl-explain pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.rl-explain pre{background:#fafafa;border:1px solid #eee;padding:6px;overflow:auto;max-height:30em}
.rl-explain .culprit{background:#ffebee}
.rl-explain .muted{color:#757575}
.rl-explain .path{margin:.2em 0 .6em}
.rl-explain .step{display:inline-block;border:1px solid #ccc;border-radius:3px;padding:0 4px;margin:1px;background:#fff}
.rl-explain .step .state{color:#1565c0}
.rl-explain .arrow{color:#9e9e9e}
.rl-explain .lanes{overflow-x:auto;border:1px solid #eee}
.rl-explain .legend span{display:inline-block;margin-right:1em}
.rl-explain .swatch{display:inline-block;width:.9em;height:.9em;vertical-align:-.1em;margin-right:.3em;border-radius:2px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _j(value: Any, limit: int = 200) -> str:
    """Compact JSON text of a value, shortened for a label or a cell."""
    try:
        text = json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _verdict_key(valid: Any) -> str:
    if valid is True:
        return "valid"
    if valid is False:
        return "invalid"
    return "unknown"


# --------------------------------------------------------------------------- reading the result


@dataclass(slots=True)
class _Bar:
    """One operation drawn in a lane: positions are in the history's event order."""

    process: Any
    f: str
    value: Any
    outcome: str  # ok | fail | info
    start: float
    end: float | None  # None: no completion (open-ended)
    invoke_index: int | None
    complete_index: int | None


def _first(mapping: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in mapping and mapping[name] is not None:
            return mapping[name]
    return None


def _op_view(item: Any) -> dict[str, Any] | None:
    """A flat dict (process, f, value, type, index, ...) for any op-like thing in a result."""
    item = to_jsonable(item)
    if not isinstance(item, Mapping):
        return None
    if "invoke" in item and isinstance(item["invoke"], Mapping):  # an invoke/completion pair
        invoke = dict(item["invoke"])
        completion = item.get("completion") or item.get("complete")
        view = dict(invoke)
        view["invoke_index"] = invoke.get("index")
        if isinstance(completion, Mapping):
            view["type"] = completion.get("type", "info")
            view["complete_index"] = completion.get("index")
            if completion.get("type") == "ok" and completion.get("value") is not None:
                view["value"] = completion.get("value")
        else:
            view["type"] = item.get("type", "info")
        return view
    if "op" in item and isinstance(item["op"], Mapping) and "f" not in item:
        return _op_view(item["op"])
    if "f" not in item:
        return None
    view = dict(item)
    # checker.linearizable's op records: "index" is the invoke's, "completion_index" the
    # completion's.
    if "completion_index" in view:
        view.setdefault("invoke_index", view.get("index"))
        view.setdefault("complete_index", view.get("completion_index"))
    return view


def _op_text(view: Mapping[str, Any] | None) -> str:
    if view is None:
        return "?"
    text = f"{view.get('f')} {_j(view.get('value'), 80)}"
    outcome = view.get("type")
    if outcome and outcome != "invoke":
        text += f" ({outcome})"
    return text


def _op_label(view: Mapping[str, Any] | None) -> str:
    if view is None:
        return "?"
    index = view.get("invoke_index", view.get("index"))
    where = f", op index {index}" if index is not None else ""
    return f"process {view.get('process')}: {_op_text(view)}{where}"


def find_violation(result: Mapping[str, Any]) -> tuple[Mapping[str, Any], Any]:
    """The part of a (possibly per-key, possibly nested) result that holds the violation."""
    if _first(result, "op", "failed_op", "culprit") is not None:
        return result, result.get("key")
    failures = result.get("failures")  # checker.linearizable: one per invalid component
    if isinstance(failures, list) and failures and isinstance(failures[0], Mapping):
        return failures[0], failures[0].get("key")
    for container_name in ("failures", "keys", "results", "components", "checkers", "subresults"):
        container = result.get(container_name)
        items: list[tuple[Any, Any]] = []
        if isinstance(container, Mapping):
            items = list(container.items())
        elif isinstance(container, list):
            items = [(None, item) for item in container]
        for key, sub in items:
            if isinstance(sub, Mapping) and sub.get("valid") is False:
                found, found_key = find_violation(sub)
                return found, found_key if found_key is not None else (sub.get("key", key))
    return result, result.get("key")


def _paths(
    violation: Mapping[str, Any], by_index: Mapping[int, dict[str, Any]]
) -> list[tuple[int, list[dict[str, Any]]]]:
    """Partial linearizations: (how many ops they linearize, their steps {op, state}).

    checker.linearizable gives each as ``{"ops": [index, ...], "state": final state,
    "steps": [{"op": record, "state": state after it}, ...]}`` with only the last steps
    spelled out; the steps are shown when present, else the op indexes.
    """
    raw = _first(
        violation,
        "final_paths",
        "partial_linearizations",
        "linearizations",
        "paths",
    )
    if raw is None:
        prefix = _first(violation, "longest_prefix", "linearizable_prefix", "prefix")
        if prefix is None:
            prefix = violation.get("linearized")
        raw = [prefix] if prefix is not None else []
    paths: list[tuple[int, list[dict[str, Any]]]] = []
    for path in to_jsonable(raw) if isinstance(raw, list | tuple) else []:
        total: int | None = None
        if isinstance(path, Mapping):
            steps_raw = path.get("steps") or path.get("ops") or path.get("path") or []
            final_state = path.get("state", path.get("model"))
            if isinstance(path.get("ops"), list):
                total = len(path["ops"])
        else:
            steps_raw, final_state = path, None
        steps: list[dict[str, Any]] = []
        for step in steps_raw if isinstance(steps_raw, list) else []:
            if isinstance(step, Mapping) and ("op" in step or "state" in step or "model" in step):
                view = _op_view(step.get("op"))
                steps.append(
                    {"op": view, "state": step.get("state", step.get("model")), "has_state": True}
                )
            elif isinstance(step, int) and not isinstance(step, bool):  # an op's invoke index
                view = by_index.get(step) or {"f": f"op {step}", "value": None, "index": step}
                steps.append({"op": view, "state": None, "has_state": False})
            else:
                steps.append({"op": _op_view(step), "state": None, "has_state": False})
        if final_state is not None and steps and not steps[-1]["has_state"]:
            steps[-1]["state"] = final_state
            steps[-1]["has_state"] = True
        paths.append((max(total or 0, len(steps)), steps))
    return paths


def _states(violation: Mapping[str, Any]) -> list[Any]:
    raw = _first(violation, "states", "model_states", "last_states", "configs")
    if raw is None:
        return []
    raw = to_jsonable(raw)
    if not isinstance(raw, list):
        return [raw]
    states = []
    for item in raw:
        if isinstance(item, Mapping) and ("model" in item or "state" in item) and len(item) <= 4:
            states.append(item.get("state", item.get("model")))
        else:
            states.append(item)
    return states


def _involved(violation: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = _first(violation, "concurrent", "concurrent_ops", "pending", "window_ops", "involved")
    views = []
    for item in to_jsonable(raw) if isinstance(raw, list | tuple) else []:
        view = _op_view(item)
        if view is not None:
            views.append(view)
    return views


# --------------------------------------------------------------------------- lanes


def _bars_from_history(ops: Sequence[Op]) -> list[_Bar]:
    try:
        paired = pair_operations(ops)
    except HistoryError:
        return []
    bars = []
    for pair in paired.operations:
        bars.append(
            _Bar(
                process=pair.process,
                f=pair.f,
                value=pair.value,
                outcome=pair.type,
                start=pair.invoke_position,
                end=pair.complete_position,
                invoke_index=pair.invoke.index,
                complete_index=None if pair.completion is None else pair.completion.index,
            )
        )
    return bars


def _bars_from_views(views: list[dict[str, Any]]) -> list[_Bar]:
    """Bars from the explanation alone (no history at hand): op indexes stand for positions."""
    bars: dict[tuple[Any, Any], _Bar] = {}
    for view in views:
        start = view.get("invoke_index", view.get("index"))
        if not isinstance(start, int | float):
            continue
        end = view.get("complete_index")
        key = (view.get("process"), start)
        if key in bars:
            continue
        bars[key] = _Bar(
            process=view.get("process"),
            f=str(view.get("f")),
            value=view.get("value"),
            outcome=str(view.get("type") or "ok"),
            start=start,
            end=end if isinstance(end, int | float) else None,
            invoke_index=start if isinstance(start, int) else None,
            complete_index=end if isinstance(end, int) else None,
        )
    return sorted(bars.values(), key=lambda bar: bar.start)


def _matches(bar: _Bar, view: Mapping[str, Any] | None) -> bool:
    if view is None:
        return False
    indexes = {view.get("invoke_index"), view.get("index"), view.get("complete_index")} - {None}
    return (
        bool(indexes & {bar.invoke_index, bar.complete_index} - {None})
        and view.get("process") == bar.process
    )


def _lanes_svg(
    bars: list[_Bar],
    culprit: Mapping[str, Any] | None,
    involved: list[dict[str, Any]],
    window_override: tuple[float, float] | None = None,
    key: Any = None,
    culprit_id: str | None = None,
) -> str:
    """A lane per process, each op a bar; the failing window shaded, the culprit outlined.

    The x axis is the order of events (invokes and completions), compressed to the events
    drawn: real-time precedence is all that linearizability looks at, and gaps between
    events carry no meaning. An ``info`` bar is drawn up to its info completion and then
    continues as a dashed line: it may take effect at any later time.
    """
    if not bars:
        return ""
    culprit_bar = next((bar for bar in bars if _matches(bar, culprit)), None)
    involved_bars = [bar for bar in bars if any(_matches(bar, view) for view in involved)]
    history_end = max(max(bar.start, bar.end or bar.start) for bar in bars) + 1

    def bar_end(bar: _Bar) -> float:
        return bar.end if bar.end is not None else history_end

    window: tuple[float, float] | None = None
    if culprit_bar is not None:
        culprit_end = bar_end(culprit_bar)
        window_start = min(bar.start for bar in [culprit_bar, *involved_bars])
        # Everything concurrent with the culprit belongs to the window (Knossos' :window).
        for bar in bars:
            if bar.start <= culprit_end and bar_end(bar) >= culprit_bar.start:
                window_start = min(window_start, bar.start)
        window = (window_start, culprit_end)
    if window_override is not None:
        window = window_override
    # Keep the picture readable and on the failure: every bar overlapping the window, then
    # a few that followed it and what led up to it (nearest first), as far as the drawing
    # stays within MAX_LANES_WIDTH and MAX_LANE_OPS.
    if window is not None:
        low, high = window
        centre = [bar for bar in bars if bar.start <= high and bar_end(bar) >= low]
        centre_ids = {id(bar) for bar in centre}
        before = sorted(
            (bar for bar in bars if id(bar) not in centre_ids and bar.start < low),
            key=lambda bar: low - bar_end(bar),
        )
        after = [bar for bar in bars if id(bar) not in centre_ids and bar.start > high]
        keep = centre[:MAX_LANE_OPS]
        if culprit_bar is not None and culprit_bar not in keep:
            keep.append(culprit_bar)
        drawn = {bar.start for bar in keep} | {bar.end for bar in keep if bar.end is not None}
        max_slots = int((MAX_LANES_WIDTH - LANE_LEFT - LANE_RIGHT_MARGIN) / MIN_SLOT_WIDTH) - 1

        def take(candidates: list[_Bar]) -> None:
            for bar in candidates:  # nearest first: stop at the first that does not fit
                new = {bar.start} | ({bar.end} if bar.end is not None else set())
                if len(keep) >= MAX_LANE_OPS or len(drawn | new) > max_slots:
                    return
                keep.append(bar)
                drawn.update(new)

        take(after[:3])
        take(before)
        take(after[3:MAX_AFTER_WINDOW])
        bars = sorted(keep, key=lambda bar: bar.start)
    elif len(bars) > MAX_LANE_OPS:
        bars = bars[:MAX_LANE_OPS]
    # Compress the axis to the events drawn.
    events = sorted({bar.start for bar in bars} | {bar.end for bar in bars if bar.end is not None})
    rank = {position: number for number, position in enumerate(events)}
    last_slot = len(events)  # open-ended bars run to here

    def slot(position: float) -> float:
        if position in rank:
            return float(rank[position])
        return float(bisect.bisect_left(events, position))

    processes = sorted(
        {bar.process for bar in bars}, key=lambda p: (isinstance(p, str), str(p).zfill(12))
    )
    lane_of = {process: number for number, process in enumerate(processes)}
    lane_height, bar_height, top = 26, 18, 22
    left, right_margin = LANE_LEFT, LANE_RIGHT_MARGIN
    room = MAX_LANES_WIDTH - left - right_margin
    unit = max(MIN_SLOT_WIDTH, min(60.0, room / max(1, last_slot + 1)))
    width = left + int((last_slot + 1) * unit) + right_margin
    height = top + lane_height * len(processes) + 10

    def x(position_slot: float) -> float:
        return left + position_slot * unit

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="operations per process">'
    ]
    parts.append(
        '<defs><pattern id="rl-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="3" height="6" fill="#ef6c00" '
        'fill-opacity="0.55"/></pattern></defs>'
    )
    if window is not None:
        wx = x(slot(window[0]))
        ww = max(unit, x(slot(window[1]) + 1) - wx)
        parts.append(
            f'<rect x="{wx:.1f}" y="4" width="{ww:.1f}" height="{height - 8}" fill="#ffcdd2" '
            'fill-opacity="0.45" stroke="#e57373" stroke-dasharray="4 3"><title>failing window: '
            "the culprit and every operation concurrent with it</title></rect>"
        )
        parts.append(
            f'<text x="{wx + 3:.1f}" y="15" font-size="11" fill="#c62828">failing window</text>'
        )
    for process, lane in lane_of.items():
        y = top + lane * lane_height
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y + bar_height / 2}" '
            f'y2="{y + bar_height / 2}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="6" y="{y + 13}" font-size="12" fill="#424242">p {_e(process)}</text>'
        )
    culprit_label: tuple[float, float, str] | None = None
    for bar in bars:
        y = top + lane_of[bar.process] * lane_height
        start_slot = slot(bar.start)
        end_slot = slot(bar.end) if bar.end is not None else float(last_slot)
        start = x(start_slot) + 1
        bar_width = max(4.0, (end_slot - start_slot + 1) * unit - 2)
        colour = TYPE_COLOURS.get(bar.outcome, "#757575")
        fill = "url(#rl-hatch)" if bar.outcome == "info" else colour
        is_culprit = culprit_bar is bar
        stroke = ' stroke="#b71c1c" stroke-width="3"' if is_culprit else f' stroke="{colour}"'
        opacity = "0.35" if bar.outcome == "fail" else "0.85"
        shown_value = bar.value
        if key is not None and _same_key(_value_key(bar.value), key):  # lanes of one key
            shown_value = bar.value[1]
        label = f"{bar.f} {_j(shown_value, 24)}"
        title = (
            f"process {bar.process}: {bar.f} {_j(bar.value, 300)} → {bar.outcome}"
            f" (op index {bar.invoke_index}"
            + (f"–{bar.complete_index}" if bar.complete_index is not None else ", never completed")
            + ")"
            + (" — cannot be linearized" if is_culprit else "")
        )
        element_id = f' id="{_e(culprit_id)}"' if is_culprit and culprit_id else ""
        parts.append(
            f'<g{element_id}><title>{_e(title)}</title><rect x="{start:.1f}" y="{y}" width="{bar_width:.1f}" '
            f'height="{bar_height}" rx="3" fill="{fill}" fill-opacity="{opacity}"{stroke}/>'
        )
        if bar.outcome == "info" and bar.end is not None:
            tail_y = y + bar_height / 2
            parts.append(
                f'<line x1="{start + bar_width:.1f}" x2="{x(last_slot) + unit:.1f}" y1="{tail_y}" '
                f'y2="{tail_y}" stroke="#ef6c00" stroke-dasharray="2 3"/>'
            )
        if bar_width > 24:
            max_chars = int(bar_width / 6.5)
            shown = label if len(label) <= max_chars else label[: max(1, max_chars - 1)] + "…"
            text_colour = "#212121" if bar.outcome in ("info", "fail") else "#fff"
            parts.append(
                f'<text x="{start + 3:.1f}" y="{y + 13}" font-size="11" '
                f'fill="{text_colour}">{_e(shown)}</text>'
            )
        if is_culprit:  # named in full beside the bar, on top of everything
            culprit_label = (start + bar_width + 4, y, f"✗ {label}")
        parts.append("</g>")
    if culprit_label is not None:
        label_x, label_y, text = culprit_label
        parts.append(
            f'<rect x="{label_x - 2:.1f}" y="{label_y + 1}" width="{len(text) * 6.6 + 4:.1f}" '
            f'height="{bar_height - 2}" fill="#fff" fill-opacity="0.9"/>'
            f'<text x="{label_x:.1f}" y="{label_y + 13}" font-size="11" font-weight="bold" '
            f'fill="#b71c1c">{_e(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> str:
    items = [
        ("ok", TYPE_COLOURS["ok"], "ok: took effect"),
        ("fail", TYPE_COLOURS["fail"], "fail: did not happen"),
        ("info", TYPE_COLOURS["info"], "info: may have happened, any time after its invoke"),
    ]
    spans = "".join(
        f'<span><i class="swatch" style="background:{colour}"></i>{_e(text)}</span>'
        for _, colour, text in items
    )
    return (
        f'<p class="legend muted">{spans}<span><i class="swatch" style="border:2px solid #b71c1c"></i>'
        "the operation that cannot be linearized</span></p>"
    )


# --------------------------------------------------------------------------- the page


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _summary_rows(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    names = {
        "model": "model",
        "init": "initial value",
        "file": "history file",
        "format": "format",
        "ops": "history ops",
        "op_count": "operations searched",
        "dropped": "left out (fail, no-op reads)",
        "independent": "split by [key, value]",
        "component_count": "independent components",
        "configs": "configurations visited",
        "seconds": "seconds",
        "cpu_seconds": "CPU seconds",
        "time_limit": "time limit (s)",
        "unknown_keys": "undecided keys",
        "skipped_keys": "components not searched (the verdict was already known)",
    }
    for key, label in names.items():
        value = result.get(key)
        if (
            value is None
            or isinstance(value, list)
            and key not in ("init", "unknown_keys", "skipped_keys")
        ):
            continue
        if key == "unknown_keys" and not any(k is not None for k in value):
            continue  # the history was checked whole: no key to name
        if key == "skipped_keys":
            value = len(value)
        shown = value if isinstance(value, str) else _j(value, 300)
        rows.append((label, f"<code>{_e(shown)}</code>"))
    return rows


def _path_html(total: int, steps: list[dict[str, Any]], index: int) -> str:
    shown = steps[-MAX_PATH_STEPS:]
    skipped = total - len(shown)
    parts = [f'<div class="path"><span class="muted">#{index + 1}, {total} ops linearized']
    if skipped:
        parts.append(f" (the first {skipped} not shown)")
    parts.append(":</span><br>")
    for position, step in enumerate(shown):
        if position:
            parts.append('<span class="arrow"> → </span>')
        op_view = step["op"]
        state = (
            f' <span class="state">⇒ {_e(_j(step["state"], 80))}</span>'
            if step.get("has_state")
            else ""
        )
        title = _op_label(op_view)
        parts.append(
            f'<span class="step" title="{_e(title)}">{_e(_op_text(op_view))}{state}</span>'
        )
    parts.append("</div>")
    return "".join(parts)


def _pair_views(history_ops: Sequence[Op] | None) -> dict[int, dict[str, Any]]:
    """Views of the history's operations by invoke index (for linearizations given as indexes)."""
    views: dict[int, dict[str, Any]] = {}
    for bar in _bars_from_history(history_ops) if history_ops else []:
        if bar.invoke_index is not None:
            views[bar.invoke_index] = {
                "process": bar.process,
                "f": bar.f,
                "value": bar.value,
                "type": bar.outcome,
                "index": bar.invoke_index,
                "invoke_index": bar.invoke_index,
                "complete_index": bar.complete_index,
            }
    return views


def _window_positions(
    violation: Mapping[str, Any], history_ops: Sequence[Op] | None
) -> tuple[float, float] | None:
    """The failing window ``[first, last]`` (history indexes) as positions in the lanes."""
    window = violation.get("window")
    if not (isinstance(window, list | tuple) and len(window) == 2):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in window):
        return None
    first, last = window
    if history_ops:
        position_of = {op.index: position for position, op in enumerate(history_ops)}
        if first not in position_of or last not in position_of:
            return None
        return float(position_of[first]), float(position_of[last])
    return float(first), float(last)


def _explain_invalid(
    result: Mapping[str, Any],
    history_ops: Sequence[Op] | None,
    *,
    after_picture: Sequence[str] = (),
    culprit_id: str | None = None,
) -> list[str]:
    """The violation, laid out so the page opens on it: the culprit in words, then the
    lanes around the failing window; ``after_picture`` (the search's figures) and the rest
    (concurrent ops, partial linearizations, states) follow below."""
    violation, key = find_violation(result)
    culprit = _op_view(_first(violation, "op", "failed_op", "culprit"))
    previous_ok = _op_view(violation.get("previous_ok"))
    involved = _involved(violation)
    by_index = _pair_views(history_ops)
    for view in [culprit, previous_ok, *involved]:
        index = None if view is None else view.get("invoke_index", view.get("index"))
        if isinstance(index, int) and index not in by_index:
            by_index[index] = view  # type: ignore[assignment]
    paths = _paths(violation, by_index)
    states = _states(violation)
    out: list[str] = []
    failures = result.get("failures")
    if isinstance(failures, list) and len(failures) > 1:
        keys = ", ".join(_j(f.get("key"), 40) for f in failures[:20] if isinstance(f, Mapping))
        more = " …" if len(failures) > 20 else ""
        out.append(
            f"<p>{len(failures)} independent components are not linearizable (keys {_e(keys)}{more}); "
            "the first is explained below, the others are in the JSON at the end.</p>"
        )
    out.append("<h3>The operation that cannot be linearized</h3>")
    rows = [
        (
            "operation",
            f"<code>{_e(_op_label(culprit))}</code>"
            if culprit
            else '<span class="muted">not given</span>',
        )
    ]
    if key is not None:
        rows.append(("key", f"<code>{_e(_j(key))}</code>"))
    if previous_ok is not None:
        rows.append(
            (
                "last ok op of the longest partial linearization",
                f"<code>{_e(_op_label(previous_ok))}</code>",
            )
        )
    reason = _first(violation, "reason", "message", "cause")
    if isinstance(reason, str):
        rows.append(("why", _e(reason)))
    out.append(_table(rows))
    bars = _bars_from_history(history_ops) if history_ops else []
    if key is not None and not isinstance(to_jsonable(key), list) and bars:
        # One key's operations (a multi-key component, keyed by a list, keeps them all).
        keyed = [
            bar
            for bar in bars
            if _same_key(_value_key(bar.value), to_jsonable(key))
            or _matches(bar, culprit)
            or any(_matches(bar, v) for v in involved)
        ]
        if len(keyed) > 1:
            bars = keyed
    if not bars:
        views = [v for v in [culprit, previous_ok, *involved] if v is not None]
        for _, steps in paths[:1]:  # what led up to the failure, as far as the result tells
            views.extend(step["op"] for step in steps if step["op"] is not None)
        bars = _bars_from_views(views)
    lanes = _lanes_svg(
        bars,
        culprit,
        involved,
        _window_positions(violation, history_ops),
        key=to_jsonable(key),
        culprit_id=culprit_id,
    )
    if lanes:
        heading = "Operations per process"
        if key is not None and history_ops and not isinstance(to_jsonable(key), list):
            heading += f' <span class="muted">(on key <code>{_e(_j(key))}</code> only)</span>'
        out.append(f"<h3>{heading}</h3>")
        out.append(_legend())
        out.append(f'<div class="lanes">{lanes}</div>')
        if not history_ops:
            out.append(
                '<p class="muted">Drawn from the operations the explanation names '
                "(the culprit and those concurrent with it); positions are history indexes.</p>"
            )
    out.append(
        '<p class="muted">Every order of the operations that respects real time was tried. '
        "Each partial linearization below is a longest prefix the model accepts, ending in "
        "the state shown; the culprit could not be appended to any of them, nor could any "
        "operation concurrent with it have made room.</p>"
    )
    out.extend(after_picture)
    out.append("<h3>Concurrent operations involved</h3>")
    if involved:
        out.append("<table><tr><th>process</th><th>operation</th><th>op index</th></tr>")
        for view in involved[:100]:
            index = view.get("invoke_index", view.get("index"))
            out.append(
                f"<tr><td>{_e(view.get('process'))}</td><td><code>{_e(_op_text(view))}</code></td>"
                f"<td>{_e(index)}</td></tr>"
            )
        out.append("</table>")
        if len(involved) > 100:
            out.append(f'<p class="muted">… and {len(involved) - 100} more.</p>')
    else:
        out.append('<p class="muted">none: the culprit overlaps no other operation</p>')
    out.append("<h3>Partial linearizations</h3>")
    if paths:
        for index, (total, steps) in enumerate(paths[:MAX_PATHS]):
            out.append(_path_html(total, steps, index))
        if len(paths) > MAX_PATHS:
            out.append(f'<p class="muted">… and {len(paths) - MAX_PATHS} more.</p>')
    else:
        out.append('<p class="muted">none recorded</p>')
    out.append("<h3>States the model could be in</h3>")
    if states:
        # Aligned with the states: why the culprit cannot happen in each (Model.step_reason).
        reasons = violation.get("reasons")
        if not isinstance(reasons, list) or len(reasons) != len(states):
            reasons = [None] * len(states)
        out.append(
            "<ul>"
            + "".join(
                f"<li><code>{_e(_j(state, 300))}</code>"
                + (f" — {_e(reason)}" if isinstance(reason, str) else "")
                + "</li>"
                for state, reason in list(zip(states, reasons, strict=True))[:MAX_STATES]
            )
            + "</ul>"
        )
        if len(states) > MAX_STATES:
            out.append(f'<p class="muted">… and {len(states) - MAX_STATES} more.</p>')
    else:
        out.append('<p class="muted">none recorded</p>')
    return out


def _same_key(a: Any, b: Any) -> bool:
    """Keys compare as Clojure's ``=`` (checker.values): ``true``, ``1`` and ``1.0`` differ."""
    if a is None or b is None:
        return False
    try:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    except (TypeError, ValueError):
        return bool(a == b)


def _value_key(value: Any) -> Any:
    if isinstance(value, list | tuple) and len(value) == 2:
        return to_jsonable(value[0])
    return None


def _body(
    result: Mapping[str, Any],
    history_ops: Sequence[Op] | None,
    *,
    heading: str,
    culprit_id: str | None = None,
) -> str:
    plain = to_jsonable(result) if not isinstance(result, Mapping) else result
    if not isinstance(plain, Mapping):
        plain = {"valid": "unknown", "error": f"not a check result: {_j(result)}"}
    verdict = _verdict_key(plain.get("valid"))
    words = {
        "valid": "valid: the history is linearizable",
        "invalid": "invalid: the history is not linearizable",
        "unknown": "unknown: the search did not finish",
    }
    out = [
        f"<h2>{_e(heading)}</h2>",
        f'<p><span class="verdict" style="background:{VERDICT_COLOURS[verdict]}">{_e(words[verdict])}</span></p>',
    ]
    rows = _summary_rows(plain)
    nested = plain.get("result")
    if isinstance(nested, Mapping):  # a results.json document from `raftlab check --out`
        rows = rows + [row for row in _summary_rows(nested) if row not in rows]
    inner = nested if isinstance(nested, Mapping) and "valid" in nested else plain
    if verdict == "invalid":  # the violation first; the search's figures below its picture
        search = ["<h3>The search</h3>", _table(rows)] if rows else []
        out.extend(
            _explain_invalid(inner, history_ops, after_picture=search, culprit_id=culprit_id)
        )
    elif verdict == "unknown":
        if rows:
            out.append(_table(rows))
        reason = _first(inner, "reason", "error", "cause", "message")
        out.append(
            "<p>The checker could not decide: "
            + (_e(reason) if reason else "the search was cut short (a time or memory budget)")
            + ". An unknown result is never reported as valid; rerun with a larger "
            "<code>--time-limit</code> to decide.</p>"
        )
    else:
        if rows:
            out.append(_table(rows))
        out.append(
            "<p>Every operation was placed in an order that respects real time and that the "
            "model accepts; info operations were either placed or left out.</p>"
        )
    raw = json.dumps(to_jsonable(plain), indent=2, ensure_ascii=False, default=str)
    if len(raw) > MAX_RAW_CHARS:
        raw = raw[:MAX_RAW_CHARS] + "\n… (cut)"
    out.append(f"<details><summary>the result as JSON</summary><pre>{_e(raw)}</pre></details>")
    return "\n".join(out)


def render_fragment(
    result: Mapping[str, Any],
    history_ops: Sequence[Op] | None = None,
    *,
    heading: str = "Linearizability",
    culprit_id: str | None = None,
) -> str:
    """The explanation as one ``<section>`` with its own scoped style (for other pages).

    ``culprit_id``: an ``id`` for the culprit's bar (render_html gives ``culprit``; a page
    that embeds several fragments, or has its own culprit, leaves it out)."""
    body = _body(result, history_ops, heading=heading, culprit_id=culprit_id)
    return f'<section class="rl-explain"><style>{_STYLE}</style>\n{body}\n</section>'


def render_html(
    history_ops: Sequence[Op] | None, result: Mapping[str, Any], *, title: str = "raftlab check"
) -> str:
    """A whole self-contained page (inline CSS and SVG, no script, no network)."""
    verdict = _verdict_key(result.get("valid") if isinstance(result, Mapping) else None)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}: {verdict}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<style>body{margin:1.5em;max-width:1500px}</style></head><body>\n"
        f"{render_fragment(result, history_ops, heading=title, culprit_id='culprit')}\n"
        "</body></html>\n"
    )
