"""The pages in a real browser: headless Chromium renders report.html, explanation.html and
the `raftlab serve` listing of an invalid run; the culprit must be inside the first
viewport and the page must make no network request.

A small hook script is appended to a copy of each page: once the page has loaded it writes
the culprit element's bounding box, the viewport and every resource the page fetched
(`performance.getEntriesByType("resource")`, which lists failed loads too; data: URIs are
not fetches) into the DOM, which `chromium --dump-dom` prints. Chromium is Debian's
`chromium` package, which `.ci/run` installs when it can.
"""

from __future__ import annotations

import html
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from campaign.results import campaign_document, new_run_dir, write_run_folder
from campaign.serve import listing_html
from campaign.verdict import results_document
from checker.op import NEMESIS, Op

pytestmark = pytest.mark.slow

S = 1_000_000_000
VIEWPORT = (1280, 900)

HOOK = """
<script>
window.addEventListener('load', () => setTimeout(() => {
  const el = document.querySelector(%s);
  const box = el ? el.getBoundingClientRect() : null;
  document.body.setAttribute('data-hook', JSON.stringify({
    found: !!el,
    box: box && {top: box.top, bottom: box.bottom, left: box.left, right: box.right},
    viewport: {width: innerWidth, height: innerHeight},
    resources: performance.getEntriesByType('resource').map(entry => entry.name),
  }));
}, 300));
</script>
"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "no Chromium on this machine: install Debian's `chromium` package "
        "(`apt-get install chromium`; .ci/run does it when it runs as root)"
    )


def _render(page: Path, selector: str, tmp_path: Path) -> dict:
    """Open a copy of `page` with the hook in headless Chromium; what the hook wrote."""
    text = page.read_text(encoding="utf-8")
    hooked = page.with_name(f"hooked-{page.name}")
    hooked.write_text(text.replace("</body>", HOOK % json.dumps(selector) + "</body>"), "utf-8")
    done = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            hooked.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'data-hook="([^"]*)"', done.stdout)
    assert match is not None, f"the hook did not run:\n{done.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1)))


def _assert_in_first_viewport(seen: dict, what: str) -> None:
    assert seen["found"], f"{what}: no culprit element"
    box, viewport = seen["box"], seen["viewport"]
    assert 0 <= box["top"] < box["bottom"] <= viewport["height"], (what, box, viewport)
    assert 0 <= box["left"] < box["right"] <= viewport["width"], (what, box, viewport)
    assert seen["resources"] == [], f"{what} fetched {seen['resources']}"


def _invalid_history() -> list[Op]:
    """Eight processes on one key with overlapping ops (valid by construction: each op takes
    effect at a point inside its interval), a partition, then one stale read."""
    rng = random.Random(5)
    planned = []
    for process in range(8):
        clock = rng.uniform(0, 0.2)
        for _ in range(6):
            start = clock + rng.uniform(0.01, 0.1)
            end = start + rng.uniform(0.05, 0.4)
            clock = end
            f = rng.choice(["read", "write", "write"])
            planned.append((rng.uniform(start, end), process, f, start, end))
    state = None
    events = []
    first_value = None
    for value, (_point, process, f, start, end) in enumerate(sorted(planned)):
        if f == "write":
            state = value
            first_value = value if first_value is None else first_value
            events += [
                (start, process, "invoke", f, [1, value]),
                (end, process, "ok", f, [1, value]),
            ]
        else:
            events += [
                (start, process, "invoke", f, [1, None]),
                (end, process, "ok", f, [1, state]),
            ]
    last = max(end for _, _, _, _, end in planned)
    # The stale read: long after every write was acknowledged, the first value written.
    events += [
        (last + 0.1, 8, "invoke", "read", [1, None]),
        (last + 0.15, 8, "ok", "read", [1, first_value]),
    ]
    events += [
        (0.5, NEMESIS, "invoke", "start-partition", "majority"),
        (0.501, NEMESIS, "info", "start-partition", [["n1"], ["n2", "n3"]]),
        (1.5, NEMESIS, "info", "stop-partition", None),
    ]
    events.sort(key=lambda event: event[0])
    return [
        Op(index, int(time * S), kind, process, f, value)
        for index, (time, process, kind, f, value) in enumerate(events)
    ]


@pytest.fixture(scope="module")
def invalid_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from checker.linearizable import check
    from checker.models import MODELS

    ops = _invalid_history()
    result = check(
        [op for op in ops if op.process != NEMESIS], MODELS["cas-register"], independent=True
    )
    assert result["valid"] is False
    root = tmp_path_factory.mktemp("browser-results")
    config = {"name": "browser", "workload": "register", "nemesis": "partition", "seed": 5}
    run_dir = new_run_dir(root, "browser")
    write_run_folder(
        run_dir,
        campaign=campaign_document(config, kind="test", argv=["raftlab", "test"]),
        ops=ops,
        results=results_document({"linearizable": result}),
        node_logs={"n1": ""},
    )
    return run_dir


def test_report_opens_on_the_culprit(invalid_run: Path, tmp_path: Path) -> None:
    page = (invalid_run / "report.html").read_text(encoding="utf-8")
    assert page.index('id="anomaly"') < page.index('id="culprit"') < page.index('id="timeline"')
    _assert_in_first_viewport(_render(invalid_run / "report.html", "#culprit", tmp_path), "report")
    _assert_in_first_viewport(_render(invalid_run / "report.html", "#anomaly", tmp_path), "report")


def test_explanation_opens_on_the_culprit(invalid_run: Path, tmp_path: Path) -> None:
    from campaign.results import read_history_file
    from checker import explain
    from checker.linearizable import check
    from checker.models import MODELS

    ops = read_history_file(invalid_run)
    result = check(ops, MODELS["cas-register"], independent=True)
    page = tmp_path / "explanation.html"
    document = {"valid": result["valid"], "model": "cas-register", "result": result}
    text = explain.render_html(ops, document)
    assert text.count('id="culprit"') == 1
    page.write_text(text, encoding="utf-8")
    _assert_in_first_viewport(_render(page, "#culprit", tmp_path), "explanation")
    # The culprit's bar (outlined) is that element.
    seen = _render(page, '#culprit > rect[stroke="#b71c1c"]', tmp_path)
    _assert_in_first_viewport(seen, "explanation")


def test_serve_listing_shows_the_invalid_run_first(invalid_run: Path, tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text(listing_html(invalid_run.parent.parent), encoding="utf-8")
    seen = _render(page, "tr.invalid td.anomaly", tmp_path)
    _assert_in_first_viewport(seen, "listing")
    assert "stale read" in page.read_text(encoding="utf-8")
