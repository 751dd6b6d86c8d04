"""explanation.html opens on the culprit: the lanes come right after the culprit in words,
fit a 1280 px window, and the culprit's bar carries ``id="culprit"`` (render_html only)."""

from __future__ import annotations

import re

from checker import explain
from checker.linearizable import check
from checker.op import Op


def _long_history_with_a_stale_read_at_the_end() -> list[Op]:
    """Three processes writing in turn for 400 ops, then a stale read overlapping a write."""
    ops: list[Op] = []

    def add(type_: str, process: int, f: str, value: object) -> None:
        ops.append(Op(len(ops), len(ops) * 10, type_, process, f, value, None))

    for value in range(200):
        add("invoke", value % 3, "write", value)
        add("ok", value % 3, "write", value)
    add("invoke", 3, "read", None)
    add("invoke", 0, "write", 500)
    add("ok", 3, "read", 7)  # 7 was overwritten long before this read began
    add("ok", 0, "write", 500)
    return ops


def test_the_lanes_fit_the_window_and_mark_the_culprit() -> None:
    ops = _long_history_with_a_stale_read_at_the_end()
    result = check(ops, "register")
    assert result["valid"] is False
    page = explain.render_html(ops, result)
    widths = [int(w) for w in re.findall(r'<svg [^>]*width="(\d+)"', page)]
    assert widths and max(widths) <= explain.MAX_LANES_WIDTH
    assert page.count('id="culprit"') == 1
    culprit = re.search(r'<g id="culprit"><title>([^<]*)</title>', page)
    assert culprit is not None and "process 3: read 7" in culprit.group(1)
    # The picture comes before the search's figures and the long lists.
    assert page.index("Operations per process") < page.index("The search")
    assert page.index("Operations per process") < page.index("Partial linearizations")
    # The write concurrent with the culprit is drawn too.
    assert "process 0: write 500" in page
    # A fragment (embedded in report.html, which has its own #culprit) carries no id.
    assert 'id="culprit"' not in explain.render_fragment(result, ops)
