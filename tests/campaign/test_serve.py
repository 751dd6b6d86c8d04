"""`raftlab serve`: the listing coloured by verdict and static files, on a real socket."""

from __future__ import annotations

import json
import urllib.request

import trio

from campaign.serve import find_runs, listing_html, make_server, serve_forever

PORT = 19410


def make_run(root, name, stamp, valid):
    run = root / name / stamp
    (run / "nodes").mkdir(parents=True)
    (run / "campaign.json").write_text(
        json.dumps(
            {
                "seed": 3,
                "started": f"2026-11-26T{stamp[-6:-4]}:00:00+00:00",
                "config": {"name": name, "workload": "register"},
            }
        )
    )
    if valid is not None:
        (run / "results.json").write_text(json.dumps({"valid": valid}))
    (run / "report.html").write_text(f"<html><body>report of {name}</body></html>")
    return run


def test_listing_coloured_by_verdict(tmp_path):
    make_run(tmp_path, "good", "20261126T080000", True)
    make_run(tmp_path, "bad", "20261126T090000", False)
    make_run(tmp_path, "odd", "20261126T100000", "unknown")
    make_run(tmp_path, "crashed", "20261126T110000", None)
    (tmp_path / "good" / "latest").symlink_to("20261126T080000")
    (tmp_path / "latest").symlink_to("good/20261126T080000")
    runs = find_runs(tmp_path)
    assert [run.name for run in runs] == [
        "crashed",
        "odd",
        "bad",
        "good",
    ]  # newest first, no links twice
    page = listing_html(tmp_path)
    assert 'class="valid" style="background:#c8e6c9"' in page
    assert 'class="invalid" style="background:#ffcdd2"' in page
    assert 'class="unknown"' in page and 'class="no-result"' in page
    assert 'href="bad/20261126T090000/report.html"' in page


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


async def test_serves_listing_and_reports_then_releases_the_port(tmp_path):
    make_run(tmp_path, "good", "20261126T080000", True)
    for _attempt in range(2):  # a second server on the same port proves the first let go
        server = make_server(tmp_path, "127.0.0.1", PORT)
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_forever, server)
            status, body = await trio.to_thread.run_sync(_get, f"http://127.0.0.1:{PORT}/")
            assert status == 200 and "good" in body and "valid" in body
            status, body = await trio.to_thread.run_sync(
                _get, f"http://127.0.0.1:{PORT}/good/20261126T080000/report.html"
            )
            assert status == 200 and "report of good" in body
            nursery.cancel_scope.cancel()
