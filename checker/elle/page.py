"""A self-contained HTML page of an Elle result: verdict, models, each cycle drawn.

Each cycle is an SVG: its txns on a circle, one labelled arrow per dependency, and the
sentences of its edges under it. Nothing is loaded from outside the page.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

KIND_COLOURS = {
    "ww": "#1f77b4",
    "wr": "#2ca02c",
    "rw": "#d62728",
    "process": "#7f7f7f",
    "realtime": "#9467bd",
}


def cycle_svg(steps: list[dict[str, Any]], size: int = 260) -> str:
    names = [step["from"] for step in steps]
    n = len(names)
    centre, radius = size / 2, size / 2 - 40
    points = [
        (
            centre + radius * math.cos(2 * math.pi * i / n - math.pi / 2),
            centre + radius * math.sin(2 * math.pi * i / n - math.pi / 2),
        )
        for i in range(n)
    ]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}">',
        "<defs>",
    ]
    for kind, colour in KIND_COLOURS.items():
        parts.append(
            f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="10" refY="5" '
            f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M 0 0 L 10 5 L 0 10 z" fill="{colour}"/></marker>'
        )
    parts.append("</defs>")
    for i, step in enumerate(steps):
        (x1, y1), (x2, y2) = points[i], points[(i + 1) % n]
        kind = step.get("type", "ww")
        colour = KIND_COLOURS.get(kind, "#000")
        dx, dy = x2 - x1, y2 - y1
        length = math.hypot(dx, dy) or 1.0
        ux, uy = dx / length, dy / length
        # Bend the arrow outwards a little so that two-txn cycles show both edges.
        mx, my = (x1 + x2) / 2 - uy * 18, (y1 + y2) / 2 + ux * 18
        sx, sy, ex, ey = x1 + ux * 18, y1 + uy * 18, x2 - ux * 18, y2 - uy * 18
        parts.append(
            f'<path d="M {sx:.1f} {sy:.1f} Q {mx:.1f} {my:.1f} {ex:.1f} {ey:.1f}" '
            f'fill="none" stroke="{colour}" stroke-width="2" marker-end="url(#arrow-{kind})"/>'
        )
        parts.append(
            f'<text x="{mx:.1f}" y="{my:.1f}" font-size="11" fill="{colour}" '
            f'text-anchor="middle">{escape(kind)}</text>'
        )
    for name, (x, y) in zip(names, points, strict=True):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="16" fill="#fff" stroke="#333"/>'
            f'<text x="{x:.1f}" y="{y + 4:.1f}" font-size="11" text-anchor="middle">'
            f"{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(document: dict[str, Any], *, title: str) -> str:
    result = document.get("result", document)
    valid = result.get("valid")
    word = {True: "valid", False: "invalid"}.get(valid, "unknown")
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p class='verdict {word}'>{escape(word.upper())} under "
        f"{escape(str(result.get('consistency-model')))} ({escape(str(result.get('checker')))})</p>",
    ]
    for label, key in (("Not", "not"), ("Also not", "also-not"), ("Still possible", "possible")):
        if result.get(key):
            body.append(f"<p><b>{label}:</b> {escape(', '.join(result[key]))}</p>")
    if result.get("error"):
        body.append(f"<p><b>Reason:</b> {escape(str(result['error']))}</p>")
    for kind in result.get("anomaly-types", []):
        cases = result["anomalies"][kind]
        count = result.get("anomaly-counts", {}).get(kind, len(cases))
        body.append(f"<h2>{escape(kind)} ({count})</h2>")
        for case in cases:
            if "steps" in case:
                body.append("<div class='cycle'>" + cycle_svg(case["steps"]) + "<ol>")
                body.extend(f"<li>{escape(step['text'])}</li>" for step in case["steps"])
                body.append("</ol></div>")
            elif "text" in case:
                body.append(f"<p>{escape(case['text'])}</p>")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        ".verdict{font-size:1.4em;font-weight:bold}.invalid{color:#b00}.valid{color:#070}"
        ".unknown{color:#a60}.cycle{display:flex;gap:1em;align-items:center;"
        "border-top:1px solid #ddd;padding:.5em 0}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{style}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
